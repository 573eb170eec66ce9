-- Canonical event envelopes of one stream view, built by DuckDB so that JavaScript receives one
-- text per event instead of a row object (turning DuckDB values into JS objects is the slow part;
-- each string crossing over costs a native call, so everything a row needs travels in one):
--
--   line            `<envelope JSON>` + "\n" + `<filename>` — JSON text never holds a raw newline,
--                   so the first "\n" splits the two; event_id and ts_utc are read back from
--                   fixed offsets of the envelope's constant-length prefix
--   ts_us           epoch microseconds of ts_utc as a DOUBLE (exact until the year 2255), for pacing
--   file_row_number the row's place in its source file, as a DOUBLE (a JS number, not a bigint)
--
-- Rows come in view order strictly after the position ($after_ts, $after_file, $after_row), with
-- the same seek as stream_view_read.sql: `ts_utc >= $after_ts` skips earlier row groups from their
-- statistics, and a scan of the parts in list order keeps the view's order without an ORDER BY.
-- A bounded read (a replay's window) also ends at a position ($until_ts, $until_file, $until_row),
-- inclusive: the UNTIL placeholder below then holds the clause of sql/duckdb/envelope_until.sql,
-- whose `ts_utc <= $until_ts` skips every later row group the same way, so DuckDB builds the
-- envelopes of the window's rows only instead of a streaming buffer of rows past it before the
-- first chunk is handed out. An unbounded read leaves UNTIL empty.
--
-- event_id = sha256_hex(join("|", [output_id] + [str(row[k]) for k in primary_key] +
-- [manifest_fingerprint, parameter_hash, str(seed), scenario_id])), the platform's rule. `str()`
-- is Python's text form of the value pyarrow hands it: CAST(... AS VARCHAR) gives exactly that for
-- VARCHAR, every integer type (plain decimal, "-" for negatives) and DOUBLE (shortest round-trip
-- repr: 1.0, 0.30000000000000004, 1e+16, 1e-05, inf, nan — the same as Python's); BOOLEAN is
-- spelled True/False by the caller's key expression. Other key types have no equal text form
-- here and are refused before this query is built. A NULL key fails the query with
-- PRIMARY_KEY_MISSING (the platform refuses a None key; concat_ws would silently skip it).
--
-- Three placeholder comments, PK, PAYLOAD and UNTIL, are filled only with identifiers checked
-- against the catalogue, the row schema and the view's own DESCRIBE (/^[a-z_][a-z0-9_]*$/,
-- double-quoted) or a fixed clause; every value is a $parameter:
--   PK       one text expression per primary key column, in catalogue order
--   PAYLOAD  `'name', "name"` pairs, one per source column in view order (not filename or
--            file_row_number), so the payload is the source row with its JSON types
--   UNTIL    empty, or envelope_until.sql for a bounded read (see above)
-- $header_before_ts and $header_after_ts are the run's constant fields from envelope_header.sql.
--
-- An envelope longer than $max_envelope_bytes (the largest body the gate takes) fails the query
-- with the ENVELOPE_TOO_LARGE marker, its event id, source file, row and size: it never reaches
-- JavaScript, whose heap a 70 MB string would exhaust, and nothing of it is sent.
SELECT
  CASE WHEN strlen(line) - strlen(filename) - 1 > $max_envelope_bytes
    THEN error(concat('ENVELOPE_TOO_LARGE: ', substr(line, 14, 64), ' ', filename, ' ',
      file_row_number, ' ', strlen(line) - strlen(filename) - 1))
    ELSE line END AS line,
  ts_us,
  file_row_number::DOUBLE AS file_row_number
FROM (
SELECT
  concat(
    '{"event_id":"',
    sha256(concat_ws('|',
      $output_id,
      /*PK*/,
      $manifest_fingerprint, $parameter_hash, CAST($seed AS VARCHAR), $scenario_id)),
    '",', $header_before_ts,
    ',"ts_utc":', to_json(ts_utc)::VARCHAR,
    ',', $header_after_ts,
    ',"payload":', json_object(/*PAYLOAD*/)::VARCHAR,
    '}', chr(10), filename
  ) AS line,
  epoch_us(strptime(ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ'))::DOUBLE AS ts_us,
  filename,
  file_row_number
FROM read_parquet($files, hive_partitioning = false)
WHERE ts_utc >= $after_ts
  AND (ts_utc > $after_ts
    OR filename > $after_file
    OR (filename = $after_file AND file_row_number > $after_row))
  /*UNTIL*/
)

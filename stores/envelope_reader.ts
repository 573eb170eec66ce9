/**
 * Reads a stream view as canonical event envelopes, the streamer's hot path. DuckDB builds each
 * envelope's JSON text, event_id included (sql/duckdb/envelope_rows.sql); JavaScript receives one
 * string per event plus two numbers and only slices it, so no row object is ever made.
 *
 * Everything is checked before the query is sent: the pins (a malformed pin would be answered by
 * the ingestion gate with a 500 that a retrying client resends forever), the view's receipt (the
 * same checks as the plain reader), and every identifier spliced into the SQL text.
 */
import { Effect, Fiber, Schema, type Scope } from "effect";
import { boundedString, Hex32, Hex64, PlatformRunId } from "../schemas/common.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { INTEGER_TYPES } from "../core/row_shape.ts";
import { type Pseudonymizer, pseudonymSql } from "../core/pseudonymize.ts";
import { DuckDb, type DuckSession, duckSql, type LazyChunk } from "./duckdb.ts";
import { MAX_BODY_BYTES_DEFAULT } from "./ig_client.ts";
import {
  checkView,
  PROVENANCE_COLUMNS,
  type ViewExpectation,
  type ViewPosition,
} from "./stream_view_read.ts";

/** The producer every envelope names unless the pins say otherwise. */
export const DEFAULT_PRODUCER = "svc:world_stream_producer";

const SafeSeed = Schema.Number.check(
  Schema.makeFilter((n: number) => Number.isSafeInteger(n) && n >= 0, {
    expected: "a non-negative integer (at most 2^53 - 1)",
  }),
);

/** What every envelope of a run carries besides the row (checked before anything is built). */
export const EnvelopePins = Schema.Struct({
  manifest_fingerprint: Hex64,
  parameter_hash: Hex64,
  seed: SafeSeed,
  scenario_id: boundedString(1, 256),
  /** The engine run receipt's run_id. */
  run_id: Hex32,
  platform_run_id: PlatformRunId,
  scenario_run_id: Hex32,
  /** Defaults to {@link DEFAULT_PRODUCER}. */
  producer: Schema.optionalKey(boundedString(1, 128)),
  /** The oracle pack id, else sha256_hex(engine_run_root). */
  trace_id: boundedString(1, 128),
  /** The engine release, when known. */
  span_id: Schema.optionalKey(boundedString(1, 128)),
  output_id: Schema.String.check(
    Schema.isPattern(/^[A-Za-z0-9_]{1,128}$/, { expected: "a catalogue output id" }),
  ),
});
export type EnvelopePins = typeof EnvelopePins.Type;

/** How to read: the catalogue's key, the row schema's columns and where to start. */
export interface EnvelopeReadOptions {
  /** The catalogue's `primary_key` for the output, in order. */
  readonly primaryKey: ReadonlyArray<string>;
  /** The columns the output's row schema declares. */
  readonly payloadColumns: ReadonlyArray<string>;
  /**
   * The row schema's `additionalProperties`: when true, view columns it does not declare are
   * still part of the row (and so of the payload); when false (default) they fail the open.
   */
  readonly undeclaredColumns?: boolean;
  /** Read strictly after this position (or from the first row). */
  readonly after?: ViewPosition;
  /** Yield at most this many envelopes. */
  readonly limit?: number;
  /**
   * Read no row after this position (a replay window's last row): the query itself ends there,
   * so DuckDB skips the row groups after it and builds no envelope past it.
   */
  readonly until?: ViewPosition;
  /**
   * The largest envelope the gate takes, in bytes (default {@link MAX_BODY_BYTES_DEFAULT}): a
   * larger one fails the read with ENVELOPE_TOO_LARGE before it is handed out.
   */
  readonly maxEnvelopeBytes?: number;
  /**
   * Privacy tier `minimized`: these payload fields are pseudonymized in the query
   * (core/pseudonymize.ts); envelope fields and event ids are built from the raw row.
   */
  readonly pseudonymize?: Pseudonymizer;
}

/** Where each envelope of a batch sits in the view (parallel arrays). */
export interface BatchPositions {
  /** View sequence of the batch's first row; row i has `firstSeq + i`. */
  readonly firstSeq: number;
  readonly ts_utc: ReadonlyArray<string>;
  readonly filename: ReadonlyArray<string>;
  readonly file_row_number: ReadonlyArray<number>;
}

/** Envelopes of consecutive view rows, as parallel arrays. */
export interface EnvelopeBatch {
  /** The envelope JSON text of each event. */
  readonly envelopes: ReadonlyArray<string>;
  readonly eventIds: ReadonlyArray<string>;
  /** Epoch microseconds of each event's ts_utc. */
  readonly tsMicros: ReadonlyArray<number>;
  readonly positions: BatchPositions;
  /** The view position of envelope i (for checkpoints). */
  readonly positionAt: (i: number) => ViewPosition;
}

/** A pull cursor over envelopes, one batch (≤256) at a time; `undefined` at the end. */
export interface EnvelopeCursor {
  /** Rows in the whole view (not only those after the start position). */
  readonly rowCount: number;
  readonly next: Effect.Effect<EnvelopeBatch | undefined, WorldstreamError>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
// Key types whose DuckDB text form equals Python's str() of the value pyarrow reads.
const CAST_KEY_TYPES = new Set([...INTEGER_TYPES, "VARCHAR", "DOUBLE"]);
// `"event_id":"` opens every envelope; the id is always 64 hex characters.
const ID_AT = 13;
const ID_END = ID_AT + 64;
const TS_LENGTH = "YYYY-MM-DDTHH:MM:SS.ffffffZ".length;
const PK_NULL_MARK = "PRIMARY_KEY_MISSING:";
// Rows turned into JS strings per call: a fraction of a millisecond of the event loop, so a
// paced stream never waits behind a whole 2048-row chunk's conversion (5–20 ms), and a slice's
// strings die young (13 ms of a 5,000 events/s stream) instead of being promoted to old space.
const SLICE = 64;

/** Opens a view for reading envelopes after `options.after` (or from its first row). */
export const openEnvelopeReader = Effect.fn("openEnvelopeReader")(function* (
  dir: string,
  expected: ViewExpectation,
  pins: EnvelopePins,
  options: EnvelopeReadOptions,
): Effect.fn.Return<EnvelopeCursor, WorldstreamError, DuckDb | Scope.Scope> {
  const checked = yield* decodeWith(EnvelopePins, "PINS_INVALID", "Envelope pins")(pins);
  if (checked.output_id !== expected.outputId) {
    return yield* fail(
      "PINS_INVALID",
      `Envelope pins: output_id ${checked.output_id} is not the view's output ${expected.outputId}`,
    );
  }
  const limit = options.limit ?? Infinity;
  if (limit !== Infinity && !(Number.isSafeInteger(limit) && limit >= 0)) {
    return yield* fail("BAD_ARGS", `Envelope limit must be a non-negative integer, got ${limit}`);
  }
  const { rowCount, parts } = yield* checkView(dir, expected);
  const session = yield* (yield* DuckDb).session;
  // Column names first: a second query on the session would end an open streaming result.
  const described = yield* session.rows<{ column_name: string; column_type: string }>(
    duckSql("parquet_columns"),
    { files: parts.slice(0, 1) },
  );
  const sql = yield* envelopeSql(dir, described, options);
  const [header] = yield* session.rows<{ before_ts: string; after_ts: string }>(
    duckSql("envelope_header"),
    {
      output_id: checked.output_id,
      manifest_fingerprint: checked.manifest_fingerprint,
      parameter_hash: checked.parameter_hash,
      seed: checked.seed,
      scenario_id: checked.scenario_id,
      run_id: checked.run_id,
      platform_run_id: checked.platform_run_id,
      scenario_run_id: checked.scenario_run_id,
      producer: checked.producer ?? DEFAULT_PRODUCER,
      trace_id: checked.trace_id,
      span_id: checked.span_id ?? "",
    },
  );
  yield* session.exec(duckSql("envelope_session"));
  const after = options.after;
  const cursor = yield* session.lazyCursor(sql, {
    files: parts,
    output_id: checked.output_id,
    manifest_fingerprint: checked.manifest_fingerprint,
    parameter_hash: checked.parameter_hash,
    seed: checked.seed,
    scenario_id: checked.scenario_id,
    header_before_ts: header.before_ts,
    header_after_ts: header.after_ts,
    after_ts: after?.ts_utc ?? "",
    after_file: after?.filename ?? "",
    after_row: after?.file_row_number ?? -1,
    ...(options.until === undefined ? {} : {
      until_ts: options.until.ts_utc,
      until_file: options.until.filename,
      until_row: options.until.file_row_number,
    }),
    max_envelope_bytes: options.maxEnvelopeBytes ?? MAX_BODY_BYTES_DEFAULT,
    ...(options.pseudonymize === undefined ? {} : {
      pseudonym_ipad: options.pseudonymize.ipadHex,
      pseudonym_opad: options.pseudonymize.opadHex,
    }),
  }).pipe(Effect.catch(readError(dir, checked.output_id, session, parts, options)));

  // One fetch is always under way while the previous chunk is sliced: DuckDB computes only while
  // a fetch is pending, so this is what lets its hashing overlap with the JavaScript side. The
  // fetch cannot be interrupted, so closing the scope waits for it before the session closes.
  const scope = yield* Effect.scope;
  const fetch = Effect.forkIn(
    cursor.next.pipe(Effect.catch(readError(dir, checked.output_id, session, parts, options))),
    scope,
    {
      startImmediately: true,
      uninterruptible: true,
    },
  );
  let ahead = yield* fetch;
  // The chunk being handed out, SLICE rows per call, and where the next slice starts in it.
  let current: LazyChunk | undefined;
  let offset = 0;

  let seq = after ? after.seq + 1 : 0;
  let left = limit;
  // Offset of the ts_utc value: the prefix before it has the same length on every row.
  let tsAt = -1;
  const next = Effect.gen(function* () {
    if (left <= 0) return undefined;
    if (current === undefined || offset >= current.rowCount) {
      current = yield* Fiber.join(ahead);
      offset = 0;
      if (current === undefined) return undefined;
      if (current.rowCount < left) ahead = yield* fetch;
    }
    const n = Math.min(SLICE, current.rowCount - offset, left);
    const lines = current.slice(0, offset, offset + n) as ReadonlyArray<string>;
    const tsMicros = current.slice(1, offset, offset + n) as ReadonlyArray<number>;
    const fileRow = current.slice(2, offset, offset + n) as ReadonlyArray<number>;
    offset += n;
    if (offset >= current.rowCount) current.release();
    if (tsAt < 0) tsAt = lines[0].indexOf('"ts_utc":"') + 10;
    const envelopes: string[] = new Array(n);
    const eventIds: string[] = new Array(n);
    const tsUtc: string[] = new Array(n);
    const filename: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const line = lines[i];
      const cut = line.indexOf("\n");
      // 34 is '"': the id and the timestamp must end where the fixed layout says they do.
      if (line.charCodeAt(ID_END) !== 34 || line.charCodeAt(tsAt + TS_LENGTH) !== 34) {
        return yield* fail(
          "TS_UTC_INVALID",
          `Stream view ${dir}: row ${seq + i} has a ts_utc that is not YYYY-MM-DDTHH:MM:SS.ffffffZ`,
        );
      }
      envelopes[i] = line.slice(0, cut);
      eventIds[i] = line.slice(ID_AT, ID_END);
      tsUtc[i] = line.slice(tsAt, tsAt + TS_LENGTH);
      filename[i] = line.slice(cut + 1);
    }
    const firstSeq = seq;
    seq += n;
    left -= n;
    const positions: BatchPositions = {
      firstSeq,
      ts_utc: tsUtc,
      filename,
      file_row_number: fileRow,
    };
    return {
      envelopes,
      eventIds,
      tsMicros,
      positions,
      positionAt: (i: number): ViewPosition => ({
        seq: firstSeq + i,
        ts_utc: tsUtc[i],
        filename: filename[i],
        file_row_number: fileRow[i],
      }),
    } satisfies EnvelopeBatch;
  });
  return { rowCount, next };
});

/**
 * Fills the query's placeholders with identifiers the catalogue, the row schema and the view
 * all agree on; anything else fails before a query is sent.
 */
function envelopeSql(
  dir: string,
  described: ReadonlyArray<{ column_name: string; column_type: string }>,
  options: EnvelopeReadOptions,
): Effect.Effect<string, WorldstreamError> {
  return Effect.gen(function* () {
    const types = new Map(described.map((c) => [c.column_name, c.column_type]));
    const keyExprs: string[] = [];
    for (const key of options.primaryKey) {
      if (!IDENTIFIER.test(key)) {
        return yield* fail(
          "PRIMARY_KEY_INVALID",
          `Primary key column ${JSON.stringify(key)} is not a plain column name`,
        );
      }
      const type = types.get(key);
      if (type === undefined || PROVENANCE_COLUMNS.has(key)) {
        return yield* fail(
          "PRIMARY_KEY_MISSING",
          `Stream view ${dir} has no primary key column ${key}`,
        );
      }
      const text = type === "BOOLEAN"
        ? `CASE WHEN "${key}" THEN 'True' ELSE 'False' END`
        : CAST_KEY_TYPES.has(type)
        ? `CAST("${key}" AS VARCHAR)`
        : undefined;
      if (text === undefined) {
        return yield* fail(
          "PRIMARY_KEY_TYPE_UNSUPPORTED",
          `Stream view ${dir}: primary key column ${key} is ${type}, whose text form may differ from the platform's`,
        );
      }
      keyExprs.push(
        `CASE WHEN "${key}" IS NULL THEN error('${PK_NULL_MARK} ${key} is null') ELSE ${text} END`,
      );
    }
    if (keyExprs.length === 0) {
      return yield* fail("PRIMARY_KEY_MISSING", `Stream view ${dir}: the primary key is empty`);
    }
    const declared = new Set(options.payloadColumns);
    const pairs: string[] = [];
    for (const { column_name: col } of described) {
      if (PROVENANCE_COLUMNS.has(col)) continue;
      if (!IDENTIFIER.test(col)) {
        return yield* fail(
          "PAYLOAD_COLUMN_INVALID",
          `Stream view ${dir} has a column ${JSON.stringify(col)} that is not a plain name`,
        );
      }
      if (!declared.has(col) && !options.undeclaredColumns) {
        return yield* fail(
          "PAYLOAD_COLUMN_UNDECLARED",
          `Stream view ${dir} has a column ${col} that the output's row schema does not declare`,
        );
      }
      if (options.pseudonymize?.fields.has(col)) {
        const type = types.get(col) ?? "";
        const expr = pseudonymSql(col, type);
        if (expr === undefined) {
          return yield* fail(
            "MINIMIZED_FIELDS_INVALID",
            `Stream view ${dir}: column ${col} is ${type}; only integer and VARCHAR columns can be pseudonymized`,
          );
        }
        pairs.push(`'${col}', ${expr}`);
      } else pairs.push(`'${col}', "${col}"`);
    }
    return fillOnce(
      fillOnce(
        fillOnce(duckSql("envelope_rows"), "/*PK*/", keyExprs.join(", ")),
        "/*PAYLOAD*/",
        pairs.join(", "),
      ),
      "/*UNTIL*/",
      options.until === undefined ? "" : duckSql("envelope_until").replace(/^--.*\n/gm, ""),
    );
  });
}

function fillOnce(sql: string, placeholder: string, text: string): string {
  const at = sql.indexOf(placeholder);
  if (at < 0 || sql.indexOf(placeholder, at + 1) >= 0) {
    throw new Error(`envelope_rows.sql must hold ${placeholder} exactly once`);
  }
  return sql.slice(0, at) + text + sql.slice(at + placeholder.length);
}

/**
 * What a failed read means: a NULL key stops the query with our marker (the platform's reason is
 * PRIMARY_KEY_MISSING), so does an envelope too large for the gate; DuckDB running out of memory
 * (a huge value) is said with the output, its largest column and the knob that gives it more.
 */
function readError(
  dir: string,
  outputId: string,
  session: DuckSession,
  parts: ReadonlyArray<string>,
  options: EnvelopeReadOptions,
) {
  return (e: WorldstreamError): Effect.Effect<never, WorldstreamError> => {
    const at = e.message.indexOf(PK_NULL_MARK);
    if (at >= 0) {
      return Effect.fail(fail(
        "PRIMARY_KEY_MISSING",
        `Stream view ${dir}: primary key column${e.message.slice(at + PK_NULL_MARK.length)}`,
      ));
    }
    const big = /ENVELOPE_TOO_LARGE: ([0-9a-f]{64}) (.*) (\d+) (\d+)/.exec(e.message);
    if (big !== null) {
      const [, eventId, file, row, bytes] = big;
      const max = options.maxEnvelopeBytes ?? MAX_BODY_BYTES_DEFAULT;
      return Effect.fail(fail(
        "ENVELOPE_TOO_LARGE",
        `Output ${outputId}: the envelope of event ${eventId} (${file} row ${row}) is ${bytes} ` +
          `bytes, more than the ${max} the gate takes (wiring.wsp_courier.max_body_bytes); it ` +
          `was not sent, nor anything after it`,
      ));
    }
    if (!/out of memory/i.test(e.message)) return Effect.fail(e);
    return largestColumn(session, parts).pipe(
      Effect.flatMap((largest) =>
        Effect.fail(fail(
          "DUCKDB_OUT_OF_MEMORY",
          `Output ${outputId}: DuckDB ran out of memory building envelopes${
            largest ? ` (largest column: ${largest})` : ""
          }; give it more with WORLDSTREAM_DUCKDB_MEMORY (default 192MB): ${e.message}`,
        ))
      ),
    );
  };
}

/** The column holding the most bytes in one row group of the view, from the parquet footers. */
function largestColumn(
  session: DuckSession,
  parts: ReadonlyArray<string>,
): Effect.Effect<string | undefined> {
  return session.rows<{ path_in_schema: string; bytes: bigint }>(
    duckSql("parquet_largest_column"),
    { files: parts },
  ).pipe(
    Effect.map((rows) =>
      rows[0] === undefined
        ? undefined
        : `${rows[0].path_in_schema}, ${
          (Number(rows[0].bytes) / 1e6).toFixed(1)
        } MB uncompressed in one row group`
    ),
    Effect.orElseSucceed(() => undefined),
  );
}

/**
 * The source parts of a stream view, as the build sees them before it trusts or sorts them:
 * their columns (DuckDB's DESCRIBE of each part, checked by core/row_shape.ts) and what
 * identifies each one (size, modification time, sha256 of its parquet footer), recorded in the
 * view's receipt and compared on every later use, so a view whose sources were rewritten is
 * refused (`STREAM_VIEW_STALE`) instead of streaming the old rows.
 *
 * Why the footer and not a digest of the whole file: the footer holds the schema, the row
 * groups with their sizes, offsets and per-column statistics, so rewritten rows change it (or
 * the size) in practice, and reading it costs a few kilobytes per part where a content digest
 * would read the whole world on every start. The modification time catches the rest (a rewrite
 * that keeps every statistic and size); a copy that does not keep modification times (`cp`
 * without `-p`) therefore needs `sort --repair`, while a move (`mv`) keeps the view valid.
 */
import { Effect } from "effect";
import { sha256Hex } from "../core/hash.ts";
import type { PartColumns } from "../core/row_shape.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { StreamViewSource } from "../schemas/stream_view.ts";
import { type DuckSession, duckSql } from "./duckdb.ts";

/** One source part: its absolute path and its path relative to the engine run root. */
export interface SourcePart {
  readonly path: string;
  readonly relative: string;
}

/** Each part's columns and DuckDB types, in the order given. */
export function describeParts(
  session: DuckSession,
  outputId: string,
  parts: ReadonlyArray<SourcePart>,
): Effect.Effect<ReadonlyArray<PartColumns>, WorldstreamError> {
  return Effect.forEach(
    parts,
    (part) =>
      session.rows<{ column_name: string; column_type: string }>(duckSql("parquet_columns"), {
        files: [part.path],
      }).pipe(
        Effect.map((rows): PartColumns => ({
          part: part.relative,
          columns: rows.map((r) => ({ name: r.column_name, type: r.column_type })),
        })),
        Effect.mapError((e) =>
          fail("PARQUET_UNREADABLE", `Output ${outputId}, part ${part.relative}: ${e.message}`)
        ),
      ),
  );
}

/** What identifies each part now, in the order given. */
export function fingerprintParts(
  outputId: string,
  parts: ReadonlyArray<SourcePart>,
): Effect.Effect<ReadonlyArray<StreamViewSource>, WorldstreamError> {
  return Effect.forEach(parts, (part) =>
    Effect.tryPromise({
      try: () => fingerprint(part),
      catch: (e) =>
        fail(
          "PARQUET_UNREADABLE",
          `Output ${outputId}, part ${part.relative}: ${e instanceof Error ? e.message : e}`,
        ),
    }));
}

/**
 * Fails `STREAM_VIEW_STALE` naming the first part that was added, removed or changed since
 * `recorded` was taken (`when` says when that was, for the message).
 */
export function compareSources(
  dir: string,
  recorded: ReadonlyArray<StreamViewSource>,
  current: ReadonlyArray<StreamViewSource>,
  when = "since the view was built",
): Effect.Effect<void, WorldstreamError> {
  const stale = (detail: string) =>
    Effect.fail(
      fail(
        "STREAM_VIEW_STALE",
        `Stream view ${dir}: ${detail} ${when} (sort --repair rebuilds the view)`,
      ),
    );
  const before = new Map(recorded.map((s) => [s.path, s]));
  const now = new Map(current.map((s) => [s.path, s]));
  for (const s of recorded) {
    if (!now.has(s.path)) return stale(`source part ${s.path} was removed`);
  }
  for (const s of current) {
    const old = before.get(s.path);
    if (old === undefined) return stale(`source part ${s.path} was added`);
    const changed = (["size", "mtime_utc", "footer_sha256"] as const).filter((k) =>
      old[k] !== s[k]
    );
    if (changed.length > 0) {
      const what = changed.map((k) => `${k} ${old[k]} -> ${s[k]}`).join(", ");
      return stale(`source part ${s.path} changed (${what})`);
    }
  }
  return Effect.void;
}

const MAGIC = "PAR1";

async function fingerprint(part: SourcePart): Promise<StreamViewSource> {
  using file = await Deno.open(part.path, { read: true });
  const info = await file.stat();
  if (!info.isFile) throw new Error("is not a file");
  // A parquet file ends with the footer, its length (4 bytes, little-endian) and "PAR1".
  const size = info.size;
  const tail = size >= 12 ? await readAt(file, size - 8, 8) : undefined;
  const footerLength = tail && new DataView(tail.buffer).getUint32(0, true);
  if (
    tail === undefined || new TextDecoder().decode(tail.subarray(4)) !== MAGIC ||
    footerLength === undefined || footerLength > size - 12
  ) {
    throw new Error("is not a parquet file (no PAR1 footer)");
  }
  const footer = await readAt(file, size - 8 - footerLength, footerLength);
  return {
    path: part.relative,
    size,
    mtime_utc: info.mtime?.toISOString() ?? "unknown",
    footer_sha256: sha256Hex(footer),
  };
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(out.subarray(filled));
    if (n === null) throw new Error(`ends before byte ${offset + length}`);
    filled += n;
  }
  return out;
}

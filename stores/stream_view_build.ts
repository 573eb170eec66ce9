/**
 * Builds an output's stream view: its parquet parts checked (columns against the row schema and
 * each other), sorted into one time-ordered view with DuckDB, checked again (raw vs sorted
 * stats) and published atomically, with a receipt that records what identifies each source.
 *
 * An existing view is used only while its receipt and manifest still name this world and output
 * and every source part is the one it was built from; a stale view is refused
 * (`STREAM_VIEW_STALE`), and rebuilt when the caller asks for a repair.
 *
 * Publication: everything is written into a staging folder beside the view (parts, then the
 * manifest, then the receipt, each fsynced) and the folder is renamed into place in one step. A
 * crash leaves only a staging folder, which the next build removes and redoes; a view folder
 * without a receipt was not made by this code path and is refused (`STREAM_VIEW_PARTIAL_EXISTS`)
 * unless the caller asks for a repair.
 */
import { Clock, Effect } from "effect";
import { basename, join } from "node:path";
import { sha256Hex } from "../core/hash.ts";
import type { RowShape, WorldKey } from "../core/catalogue.ts";
import { checkPartColumns } from "../core/row_shape.ts";
import { decodeJsonText } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import {
  STREAM_SORT_KEYS,
  StreamSortReceipt,
  type StreamSortStats,
  type StreamViewSource,
} from "../schemas/stream_view.ts";
import { DuckDb, type DuckSession, duckSql, sqlLiteral } from "./duckdb.ts";
import { OracleStore } from "./oracle.ts";
import { writeFileAtomic } from "./oracle_fs.ts";
import { checkManifest, listParts, streamViewId } from "./stream_view_read.ts";
import {
  compareSources,
  describeParts,
  fingerprintParts,
  type SourcePart,
} from "./stream_view_sources.ts";

/** The sort keys of every stream view, in order. */
export const SORT_KEYS = STREAM_SORT_KEYS;

/** What a stream view is built from. */
export interface ViewSource {
  /** Engine run root as recorded in the view: an absolute path or `s3://bucket/prefix`. */
  readonly engineRunRoot: string;
  /** The local folder `parts` lie under (an S3 world's mirror); defaults to `engineRunRoot`. */
  readonly localRunRoot?: string;
  /** The engine run receipt's run_id. */
  readonly engineRunId: string;
  readonly worldKey: WorldKey;
  readonly outputId: string;
  /** Absolute paths of the output's parts, in lexicographic order. */
  readonly parts: ReadonlyArray<string>;
  /** Folder holding the views, e.g. `<root>/stream_view/ts_utc` (recorded; may be `s3://`). */
  readonly streamViewRoot: string;
  /** The local folder the build works in; defaults to `streamViewRoot`. */
  readonly localViewRoot?: string;
  /** The output's row schema: every part must fit it before a view is built or used. */
  readonly rowShape: RowShape;
}

/** Row count, hash sums and time range of a set of rows (raw sources or a sorted view). */
export type ViewStats = StreamSortStats;

/** Outcome of one output's build. */
export interface BuildResult {
  readonly output_id: string;
  readonly stream_view_id: string;
  readonly row_count: number;
  readonly status: "BUILT" | "SKIPPED";
  readonly view_dir: string;
}

/** Options of a build. */
export interface BuildOptions {
  /**
   * Remove a view folder that has parts but no receipt, or whose receipt or manifest no longer
   * matches this world's sources (stale, edited, built for another id), then rebuild it.
   */
  readonly repair?: boolean;
  /** Called with 0–100 while DuckDB sorts. */
  readonly onProgress?: (percentage: number, rows: number) => Effect.Effect<void>;
}

/** The folder of an output's view under a stream view root. */
export function viewDir(streamViewRoot: string, outputId: string): string {
  return join(streamViewRoot, `output_id=${outputId}`);
}

/** sha256 of the parts' paths relative to the run root, sorted, joined by "\n". */
export function sourceLocatorDigest(engineRunRoot: string, parts: ReadonlyArray<string>): string {
  return sha256Hex(parts.map((p) => relativeTo(engineRunRoot, p)).sort().join("\n"));
}

/** Builds (or verifies and skips) one output's stream view. */
export const buildStreamView = Effect.fn("buildStreamView")(function* (
  source: ViewSource,
  options: BuildOptions = {},
) {
  const db = yield* DuckDb;
  return yield* Effect.scoped(Effect.gen(function* () {
    const session = yield* db.session;
    const id = streamViewId(source);
    const runRoot = source.localRunRoot ?? source.engineRunRoot;
    const viewRoot = source.localViewRoot ?? source.streamViewRoot;
    const dir = viewDir(viewRoot, source.outputId);
    const digest = sourceLocatorDigest(runRoot, source.parts);
    if (source.parts.length === 0) {
      return yield* fail("OUTPUT_PARTS_MISSING", `Output ${source.outputId} has no part files`);
    }
    const parts: ReadonlyArray<SourcePart> = source.parts.map((path) => ({
      path,
      relative: relativeTo(runRoot, path),
    }));
    // What identifies the sources is taken before anything reads them, so a part rewritten
    // while the view is built shows up as a change (below, and on the next use).
    const sources = yield* fingerprintParts(source.outputId, parts);
    yield* checkPartColumns(
      source.outputId,
      source.rowShape,
      yield* describeParts(session, source.outputId, parts),
    );

    let existing = yield* inspectExisting(dir);
    if (existing === "complete") {
      const verified = yield* verifyExisting(session, source, { id, dir, digest, sources }).pipe(
        Effect.catch((e: WorldstreamError) =>
          options.repair && REPAIRABLE.has(e.reason)
            ? Effect.logWarning("removing a stream view that no longer matches its world").pipe(
              Effect.annotateLogs({ output_id: source.outputId, view_dir: dir, reason: e.reason }),
              Effect.andThen(removeDir(dir)),
              Effect.as(undefined),
            )
            : Effect.fail(e)
        ),
      );
      if (verified !== undefined) return verified;
      existing = "absent";
    }
    if (existing === "partial") {
      if (!options.repair) {
        return yield* fail(
          "STREAM_VIEW_PARTIAL_EXISTS",
          `Stream view ${dir} has files but no receipt (rerun with --repair to rebuild it)`,
        );
      }
      yield* Effect.logWarning("removing a stream view without receipt").pipe(
        Effect.annotateLogs({ output_id: source.outputId, view_dir: dir }),
      );
      yield* removeDir(dir);
    }
    yield* removeStaleStaging(viewRoot, source.outputId);

    const prefixLen = runRoot.replace(/\/?$/, "/").length + 1;
    const raw = yield* rawStats(session, source, prefixLen);

    const staging = join(
      viewRoot,
      "_staging",
      `output_id=${source.outputId}.${crypto.randomUUID()}`,
    );
    yield* mkdir(staging);
    // A failed build (unreadable part, stats mismatch, interruption) must not leave its staging
    // behind; only a crash does, and the next build removes that.
    const published = yield* Effect.gen(function* () {
      const partPath = join(staging, "part-00000.parquet");
      const copy = `COPY (${duckSql("stream_view_sort")}) TO ${
        sqlLiteral(partPath)
      } (FORMAT parquet, COMPRESSION zstd)`;
      const params = { files: source.parts, prefix_len: prefixLen };
      // Reading every column can still fail where the ts_utc-only stats pass (a part whose
      // other columns are corrupt or differ from the first part's schema).
      yield* (options.onProgress
        ? session.execWithProgress(copy, params, (pct) => options.onProgress!(pct, raw.row_count))
        : session.exec(copy, params)).pipe(Effect.mapError((e) => readError(source.outputId, e)));

      const sorted = yield* statsOf(session, "stream_view_sorted_stats", { files: [partPath] });
      yield* compareStats(source.outputId, raw, sorted);
      yield* compareSources(
        dir,
        sources,
        yield* fingerprintParts(source.outputId, parts),
        "while the view was built",
      );

      const now = new Date(yield* Clock.currentTimeMillis).toISOString();
      const manifest = {
        stream_view_id: id,
        engine_run_root: source.engineRunRoot,
        stream_view_root: source.streamViewRoot,
        engine_run_id: source.engineRunId,
        scenario_id: source.worldKey.scenario_id,
        output_id: source.outputId,
        world_key: source.worldKey,
        output_ids: [source.outputId],
        sort_keys: SORT_KEYS,
        partition_granularity: "flat",
        created_utc: now,
      };
      const receipt = {
        stream_view_id: id,
        engine_run_root: source.engineRunRoot,
        stream_view_root: source.streamViewRoot,
        output_id: source.outputId,
        output_ids: [source.outputId],
        sort_keys: SORT_KEYS,
        partition_granularity: "flat",
        source_locator_digest: digest,
        sources,
        raw_stats: raw,
        sorted_stats: sorted,
        created_utc: now,
        status: "OK",
      };
      yield* writeFileAtomic(join(staging, "_stream_view_manifest.json"), pretty(manifest));
      yield* writeFileAtomic(join(staging, "_stream_sort_receipt.json"), pretty(receipt));
      return yield* publish(staging, dir);
    }).pipe(Effect.onError(() => removeDir(staging).pipe(Effect.ignore)));
    if (!published) {
      // Another build published first; it must have built the same view.
      yield* removeDir(staging);
      return yield* verifyExisting(session, source, { id, dir, digest, sources });
    }
    return {
      output_id: source.outputId,
      stream_view_id: id,
      // compareStats made the sorted count equal to this one.
      row_count: raw.row_count,
      status: "BUILT",
      view_dir: dir,
    } satisfies BuildResult as BuildResult;
  }));
});

/**
 * Builds (or verifies and skips) one output's view under a view root of any store: an S3 view is
 * pulled to a local folder first (so an existing one is verified like a local one) and published
 * back when it was built (stores/oracle_s3.ts: parts, manifest, receipt last). `view_dir` is the
 * local folder readers open.
 */
export const buildStreamViewAt = Effect.fn("buildStreamViewAt")(function* (
  source: ViewSource,
  options: BuildOptions = {},
) {
  const folder = yield* (yield* OracleStore).views(source.streamViewRoot);
  yield* folder.pull(source.outputId);
  const result = yield* buildStreamView({ ...source, localViewRoot: folder.localRoot }, options);
  if (result.status === "BUILT") yield* folder.publish(source.outputId);
  return result;
});

const RECEIPT = "_stream_sort_receipt.json";

// What a repair may remove and rebuild: a view that no longer matches its world. A view that
// matches but is unreadable or empty is a different problem and is left for a person to see.
const REPAIRABLE: ReadonlySet<string> = new Set([
  "STREAM_RECEIPT_MISMATCH",
  "STREAM_VIEW_STALE",
  "STREAM_VIEW_MANIFEST_INVALID",
  "STREAM_VIEW_ID_MISMATCH",
  "STREAM_VIEW_OUTPUT_MISMATCH",
]);

function inspectExisting(dir: string): Effect.Effect<"absent" | "partial" | "complete"> {
  return Effect.promise(async () => {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch {
      return "absent";
    }
    if (names.includes(RECEIPT)) return "complete";
    return names.length === 0 ? "absent" : "partial";
  });
}

/**
 * A view with a receipt is trusted only if the receipt and the manifest still name this view,
 * and the receipt still describes these sources (each part's identity) and the view's parts.
 */
function verifyExisting(
  session: DuckSession,
  source: ViewSource,
  expected: {
    readonly id: string;
    readonly dir: string;
    readonly digest: string;
    readonly sources: ReadonlyArray<StreamViewSource>;
  },
): Effect.Effect<BuildResult, WorldstreamError> {
  const { id, dir, digest, sources } = expected;
  return Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => Deno.readTextFile(join(dir, RECEIPT)),
      catch: (e) => fail("STREAM_RECEIPT_MISMATCH", `Cannot read ${dir}/${RECEIPT}: ${String(e)}`),
    });
    const receipt = yield* decodeJsonText(
      StreamSortReceipt,
      "STREAM_RECEIPT_MISMATCH",
      `${dir}/${RECEIPT}`,
    )(text);
    const mismatch = (what: string) =>
      fail(
        "STREAM_RECEIPT_MISMATCH",
        `Stream view ${dir}: receipt ${what} does not match this build`,
      );
    if (receipt.stream_view_id !== id) return yield* mismatch("stream_view_id");
    if (receipt.output_id !== source.outputId) return yield* mismatch("output_id");
    yield* checkManifest(dir, {
      streamViewId: id,
      outputId: source.outputId,
      world: { engineRunId: source.engineRunId, worldKey: source.worldKey },
    });
    yield* compareSources(dir, receipt.sources, sources);
    if (receipt.source_locator_digest !== digest) return yield* mismatch("source_locator_digest");
    const rawCount = yield* footerRowCount(session, source.parts);
    const viewParts = yield* listParts(dir);
    const viewCount = viewParts.length === 0 ? -1 : yield* footerRowCount(session, viewParts);
    if (receipt.raw_stats.row_count !== rawCount) return yield* mismatch("raw_stats.row_count");
    if (receipt.sorted_stats.row_count !== viewCount) {
      return yield* mismatch("sorted_stats.row_count");
    }
    return {
      output_id: source.outputId,
      stream_view_id: id,
      row_count: viewCount,
      status: "SKIPPED",
      view_dir: dir,
    };
  });
}

function footerRowCount(session: DuckSession, files: ReadonlyArray<string>) {
  return session.rows<{ row_count: bigint }>(duckSql("parquet_row_count"), { files }).pipe(
    Effect.map((rows) => Number(rows[0].row_count)),
    Effect.mapError((e) => fail("PARQUET_UNREADABLE", e.message)),
  );
}

function rawStats(session: DuckSession, source: ViewSource, prefixLen: number) {
  return Effect.gen(function* () {
    const types = yield* session.rows<{ column_type: string }>(duckSql("ts_column_type"), {
      files: source.parts,
    }).pipe(Effect.mapError((e) => readError(source.outputId, e)));
    if (types[0]?.column_type !== "VARCHAR") {
      return yield* fail(
        "TS_UTC_INVALID",
        `Output ${source.outputId}: ts_utc must be a VARCHAR in RFC 3339 micros form, found ${
          types[0]?.column_type
        }`,
      );
    }
    const rows = yield* session.rows<Record<string, unknown>>(duckSql("stream_view_raw_stats"), {
      files: source.parts,
      prefix_len: prefixLen,
    }).pipe(Effect.mapError((e) => readError(source.outputId, e)));
    const r = rows[0];
    if (Number(r.row_count) === 0) {
      return yield* fail("OUTPUT_EMPTY", `Output ${source.outputId} has no rows`);
    }
    if (Number(r.null_ts) > 0) {
      return yield* fail(
        "TS_UTC_NULL",
        `Output ${source.outputId} has ${r.null_ts} rows with a null ts_utc`,
      );
    }
    if (Number(r.bad_ts) > 0) {
      return yield* fail(
        "TS_UTC_INVALID",
        `Output ${source.outputId} has ${r.bad_ts} rows whose ts_utc is not YYYY-MM-DDTHH:MM:SS.ffffffZ`,
      );
    }
    return toStats(r);
  });
}

function readError(outputId: string, e: WorldstreamError): WorldstreamError {
  // A fine file with a huge value is not unreadable: say what would let DuckDB read it.
  if (/out of memory/i.test(e.message)) {
    return fail(
      "DUCKDB_OUT_OF_MEMORY",
      `Output ${outputId}: DuckDB ran out of memory reading its parts (a huge value?); give it ` +
        `more with WORLDSTREAM_DUCKDB_MEMORY (default 192MB): ${e.message}`,
    );
  }
  return fail("PARQUET_UNREADABLE", `Output ${outputId}: ${e.message}`);
}

function statsOf(session: DuckSession, query: string, params: { files: ReadonlyArray<string> }) {
  return session.rows<Record<string, unknown>>(duckSql(query), params).pipe(
    Effect.map((rows) => toStats(rows[0])),
  );
}

function toStats(r: Record<string, unknown>): ViewStats {
  return {
    row_count: Number(r.row_count),
    hash_sum: String(r.hash_sum),
    hash_sum2: String(r.hash_sum2),
    min_ts_utc: (r.min_ts_utc as string | null) ?? null,
    max_ts_utc: (r.max_ts_utc as string | null) ?? null,
  };
}

/** Fails `STREAM_SORT_STATS_MISMATCH` naming every stat in which the sorted view differs. */
export function compareStats(
  outputId: string,
  raw: ViewStats,
  sorted: ViewStats,
): Effect.Effect<void, WorldstreamError> {
  const diff = (Object.keys(raw) as Array<keyof ViewStats>).filter((k) => raw[k] !== sorted[k]);
  return diff.length === 0 ? Effect.void : Effect.fail(
    fail(
      "STREAM_SORT_STATS_MISMATCH",
      `Output ${outputId}: sorted view differs from its sources in ${diff.join(", ")}`,
    ),
  );
}

function publish(staging: string, dir: string): Effect.Effect<boolean, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      try {
        await Deno.rename(staging, dir);
        return true;
      } catch (e) {
        // A concurrent build won the race: the folder exists and is not empty.
        if (e instanceof Deno.errors.AlreadyExists || /not empty|exists/i.test(String(e))) {
          return false;
        }
        throw e;
      }
    },
    catch: (e) => fail("WRITE_FAILED", `Cannot publish stream view ${dir}: ${String(e)}`),
  });
}

function removeStaleStaging(streamViewRoot: string, outputId: string) {
  const stagingRoot = join(streamViewRoot, "_staging");
  return Effect.gen(function* () {
    const stale = yield* Effect.promise(async () => {
      const found: string[] = [];
      try {
        for await (const e of Deno.readDir(stagingRoot)) {
          if (e.name.startsWith(`output_id=${outputId}.`)) found.push(join(stagingRoot, e.name));
        }
      } catch {
        // No staging folder yet.
      }
      return found;
    });
    for (const path of stale) {
      yield* Effect.logWarning("removing staging left by an interrupted build").pipe(
        Effect.annotateLogs({ output_id: outputId, staging: basename(path) }),
      );
      yield* removeDir(path);
    }
  });
}

function mkdir(path: string) {
  return Effect.tryPromise({
    try: () => Deno.mkdir(path, { recursive: true }),
    catch: (e) => fail("WRITE_FAILED", `Cannot create ${path}: ${String(e)}`),
  });
}

function removeDir(path: string) {
  return Effect.tryPromise({
    try: () => Deno.remove(path, { recursive: true }),
    catch: (e) => fail("WRITE_FAILED", `Cannot remove ${path}: ${String(e)}`),
  });
}

function relativeTo(root: string, path: string): string {
  const prefix = root.replace(/\/?$/, "/");
  return path.startsWith(prefix) ? path.slice(prefix.length) : path;
}

function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

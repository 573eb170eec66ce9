/**
 * Reads a built stream view in order from a position, without rescanning what came before it
 * (see sql/duckdb/stream_view_read.sql). Fails closed when the view is missing, is for another
 * output or world (by its receipt and by its manifest, both read back), or is empty.
 */
import { Effect, type Scope } from "effect";
import { join } from "node:path";
import type { WorldKey } from "../core/catalogue.ts";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { decodeJsonText } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { STREAM_SORT_KEYS, StreamSortReceipt, StreamViewManifest } from "../schemas/stream_view.ts";
import { DuckDb, duckSql } from "./duckdb.ts";

/** What a stream view is the view of: one output of one engine run's world. */
export interface ViewIdentity {
  /** The engine run receipt's run_id. */
  readonly engineRunId: string;
  readonly worldKey: WorldKey;
  readonly outputId: string;
}

/**
 * `sha256_hex(canonical JSON of {engine_run_id, world_key, output_id, sort_keys,
 * partition_granularity: "flat"})`. Nothing in it depends on where the world sits: a world that
 * is moved, or reached through a symlink, keeps its views (the platform's id hashes the
 * absolute engine run root instead, which made a moved world's views unusable).
 */
export function streamViewId(view: ViewIdentity): string {
  return sha256Hex(canonicalJson({
    engine_run_id: view.engineRunId,
    world_key: {
      manifest_fingerprint: view.worldKey.manifest_fingerprint,
      parameter_hash: view.worldKey.parameter_hash,
      seed: view.worldKey.seed,
      scenario_id: view.worldKey.scenario_id,
    },
    output_id: view.outputId,
    sort_keys: STREAM_SORT_KEYS,
    partition_granularity: "flat",
  }));
}

/** Where a reader stands: the last row already handled (its view sequence and sort key). */
export interface ViewPosition {
  /** 0-based index of the row in the view. */
  readonly seq: number;
  readonly ts_utc: string;
  readonly filename: string;
  readonly file_row_number: number;
}

/** One row of a view with its position. `row` holds the source columns only. */
export interface ViewRow {
  readonly position: ViewPosition;
  readonly row: Readonly<Record<string, unknown>>;
}

/** What the reader expects to find. */
export interface ViewExpectation {
  readonly streamViewId: string;
  readonly outputId: string;
  /**
   * The world being streamed. The manifest must name it in any case (its fields must derive the
   * expected id); given here, a mismatch is reported field by field.
   */
  readonly world?: { readonly engineRunId: string; readonly worldKey: WorldKey };
}

/** A pull cursor over view rows, one batch (≤2048 rows) at a time; `undefined` at the end. */
export interface ViewCursor {
  readonly rowCount: number;
  readonly next: Effect.Effect<ReadonlyArray<ViewRow> | undefined, WorldstreamError>;
}

/** Columns the view adds to every source row to order it; they are not part of the row. */
export const PROVENANCE_COLUMNS: ReadonlySet<string> = new Set(["filename", "file_row_number"]);

/** A view that passed the readers' checks. */
export interface CheckedView {
  /** Rows in the view, from its receipt. */
  readonly rowCount: number;
  /** Part files in lexicographic (= view) order. */
  readonly parts: ReadonlyArray<string>;
}

/**
 * The checks every reader makes before reading a view: the receipt exists and decodes, names the
 * expected view and output, the manifest agrees (see {@link checkManifest}), and the view has
 * rows and parts.
 */
export const checkView = Effect.fn("checkView")(function* (
  dir: string,
  expected: ViewExpectation,
): Effect.fn.Return<CheckedView, WorldstreamError> {
  const receipt = yield* readReceipt(dir);
  if (receipt.stream_view_id !== expected.streamViewId) {
    return yield* fail(
      "STREAM_VIEW_ID_MISMATCH",
      `Stream view ${dir} has id ${receipt.stream_view_id}, expected ${expected.streamViewId}`,
    );
  }
  if (receipt.output_id !== expected.outputId) {
    return yield* fail(
      "STREAM_VIEW_OUTPUT_MISMATCH",
      `Stream view ${dir} is for ${receipt.output_id}, expected ${expected.outputId}`,
    );
  }
  yield* checkManifest(dir, expected);
  const rowCount = receipt.sorted_stats.row_count;
  const parts = yield* listParts(dir);
  if (rowCount === 0 || parts.length === 0) {
    return yield* fail("STREAM_VIEW_EMPTY", `Stream view ${dir} has no rows`);
  }
  return { rowCount, parts };
});

/** Opens a view folder for reading after `after` (or from its first row). */
export const openViewReader = Effect.fn("openViewReader")(function* (
  dir: string,
  expected: ViewExpectation,
  after?: ViewPosition,
): Effect.fn.Return<ViewCursor, WorldstreamError, DuckDb | Scope.Scope> {
  const { rowCount, parts } = yield* checkView(dir, expected);
  const session = yield* (yield* DuckDb).session;
  // Column names first: a second query on the session would end an open streaming result.
  const cols = yield* session.rows<{ column_name: string }>(
    duckSql("parquet_columns"),
    { files: parts.slice(0, 1) },
  ).pipe(Effect.map((rows) => rows.map((r) => r.column_name)));
  const tsIdx = cols.indexOf("ts_utc");
  const fileIdx = cols.indexOf("filename");
  const rowIdx = cols.indexOf("file_row_number");
  const cursor = yield* session.cursor(duckSql("stream_view_read"), {
    files: parts,
    after_ts: after?.ts_utc ?? "",
    after_file: after?.filename ?? "",
    after_row: after?.file_row_number ?? -1,
  });
  let seq = after ? after.seq + 1 : 0;
  const next = Effect.gen(function* () {
    const chunk = yield* cursor.next;
    if (chunk === undefined) return undefined;
    const n = chunk[0].length;
    const out: ViewRow[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const row: Record<string, unknown> = {};
      for (let c = 0; c < cols.length; c++) {
        if (!PROVENANCE_COLUMNS.has(cols[c])) row[cols[c]] = plain(chunk[c][i]);
      }
      out[i] = {
        position: {
          seq: seq++,
          ts_utc: chunk[tsIdx][i] as string,
          filename: chunk[fileIdx][i] as string,
          file_row_number: Number(chunk[rowIdx][i]),
        },
        row,
      };
    }
    return out;
  });
  return { rowCount, next };
});

function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v !== null && typeof v === "object" && "toString" in v) return String(v);
  return v;
}

const MANIFEST = "_stream_view_manifest.json";

/**
 * Reads a view's manifest back and checks it names what is being streamed: the expected id and
 * output, an id its own world key, engine run id and output derive, the expected world (when
 * given), and a scenario and output list that agree with the rest. A view is only as good as
 * what it says it is: an edited manifest is refused, never streamed.
 */
export const checkManifest = Effect.fn("checkManifest")(function* (
  dir: string,
  expected: ViewExpectation,
): Effect.fn.Return<StreamViewManifest, WorldstreamError> {
  const path = join(dir, MANIFEST);
  const text = yield* Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: (e) =>
      fail(
        "STREAM_VIEW_MANIFEST_INVALID",
        `Stream view ${dir}: cannot read ${MANIFEST} (${e instanceof Error ? e.message : e})`,
      ),
  });
  const manifest = yield* decodeJsonText(StreamViewManifest, "STREAM_VIEW_MANIFEST_INVALID", path)(
    text,
  );
  const wrong = (field: string, found: unknown, wanted: unknown) =>
    `Stream view ${dir}: ${MANIFEST} ${field} is ${JSON.stringify(found)}, expected ${
      JSON.stringify(wanted)
    }`;
  if (manifest.output_id !== expected.outputId) {
    return yield* fail(
      "STREAM_VIEW_OUTPUT_MISMATCH",
      wrong("output_id", manifest.output_id, expected.outputId),
    );
  }
  if (expected.world !== undefined) {
    const { engineRunId, worldKey } = expected.world;
    if (manifest.engine_run_id !== engineRunId) {
      return yield* fail(
        "STREAM_VIEW_ID_MISMATCH",
        wrong("engine_run_id", manifest.engine_run_id, engineRunId),
      );
    }
    for (const k of ["manifest_fingerprint", "parameter_hash", "seed", "scenario_id"] as const) {
      if (manifest.world_key[k] !== worldKey[k]) {
        return yield* fail(
          "STREAM_VIEW_ID_MISMATCH",
          wrong(`world_key.${k}`, manifest.world_key[k], worldKey[k]),
        );
      }
    }
  }
  if (manifest.stream_view_id !== expected.streamViewId) {
    return yield* fail(
      "STREAM_VIEW_ID_MISMATCH",
      wrong("stream_view_id", manifest.stream_view_id, expected.streamViewId),
    );
  }
  const derived = streamViewId({
    engineRunId: manifest.engine_run_id,
    worldKey: manifest.world_key,
    outputId: manifest.output_id,
  });
  if (derived !== manifest.stream_view_id) {
    return yield* fail(
      "STREAM_VIEW_ID_MISMATCH",
      `Stream view ${dir}: ${MANIFEST} engine_run_id, world_key and output_id do not derive its stream_view_id (the manifest was edited)`,
    );
  }
  if (manifest.scenario_id !== manifest.world_key.scenario_id) {
    return yield* fail(
      "STREAM_VIEW_MANIFEST_INVALID",
      wrong("scenario_id", manifest.scenario_id, manifest.world_key.scenario_id),
    );
  }
  if (manifest.output_ids.length !== 1 || manifest.output_ids[0] !== manifest.output_id) {
    return yield* fail(
      "STREAM_VIEW_MANIFEST_INVALID",
      wrong("output_ids", manifest.output_ids, [manifest.output_id]),
    );
  }
  return manifest;
});

function readReceipt(dir: string) {
  const path = join(dir, "_stream_sort_receipt.json");
  return Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: () => fail("STREAM_VIEW_MISSING", `No complete stream view at ${dir}`),
  }).pipe(Effect.flatMap(decodeJsonText(StreamSortReceipt, "STREAM_VIEW_MISSING", path)));
}

/** The view's part files in lexicographic order (absolute paths). */
export function listParts(dir: string): Effect.Effect<ReadonlyArray<string>> {
  return Effect.promise(async () => {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.isFile && /^part-.*\.parquet$/.test(e.name)) names.push(e.name);
      }
    } catch {
      // A missing folder has no parts.
    }
    return names.sort().map((n) => join(dir, n));
  });
}

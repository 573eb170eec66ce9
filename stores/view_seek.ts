/**
 * Finds a window of a stream view without reading the view from its start: a replay of an hour
 * deep in a 5M-event view must start delivering at once. The parquet footers say how many rows
 * each row group holds and its ts_utc min/max (sql/duckdb/view_row_groups.sql); a row group whose
 * first ts_utc is later than everything before it starts at a known sequence number with a known
 * timestamp, so seeking to it (`ts_utc >= its min`) lets DuckDB skip every earlier row group from
 * its statistics, and what is left to count or skip is a row group or two.
 *
 * A window is either a half-open time window `[from_ts, to_ts)` on ts_utc or a half-open sequence
 * range `[from_seq, to_seq)` of the view (row 0 is its first row). Both end as a sequence range
 * and the position just before it, which the envelope reader takes as `after` with a limit.
 */
import { Effect } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type DuckSession, duckSql } from "./duckdb.ts";
import type { ViewPosition } from "./stream_view_read.ts";
import { WorldCache } from "./world_cache.ts";

/** A window as asked for: by event time or by view sequence, both half-open. */
export type WindowBounds =
  | { readonly from_ts: string; readonly to_ts: string }
  | { readonly from_seq: number; readonly to_seq: number };

/**
 * A window found in a view: rows `[fromSeq, toSeq)`, read after `after` (none: from row 0) up to
 * and including `last`, its last row. The reader bounds its query with both, so DuckDB prunes the
 * row groups after the window too and builds envelopes for the window's rows only.
 */
export interface ViewWindow {
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly after: ViewPosition | undefined;
  readonly last: ViewPosition;
}

interface RowGroup {
  readonly startSeq: number;
  readonly rows: number;
  readonly minTs: string | null;
  readonly maxTs: string | null;
  /** Every row before this group has an earlier ts_utc than its first row. */
  readonly clean: boolean;
}

/** Canonical `YYYY-MM-DDTHH:MM:SS.ffffffZ` (what views hold), so text order is time order. */
export function canonicalTs(text: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:Z|\+00:00)$/.exec(text);
  if (m === null || Number.isNaN(Date.parse(`${m[1]}T${m[2]}Z`))) return undefined;
  const [y, mo, d] = m[1].split("-").map(Number);
  const probe = new Date(Date.UTC(y, mo - 1, d));
  if (probe.getUTCMonth() !== mo - 1 || probe.getUTCDate() !== d) return undefined;
  return `${m[1]}T${m[2]}.${(m[3] ?? "").padEnd(6, "0")}Z`;
}

/**
 * Finds `bounds` in the view made of `parts` (`rowCount` rows): REPLAY_WINDOW_OUTSIDE_VIEW when
 * it lies outside the view, REPLAY_WINDOW_EMPTY when it holds no row, REPLAY_WINDOW_REVERSED
 * when it ends before it starts.
 */
export const seekWindow = Effect.fn("seekWindow")(function* (
  session: DuckSession,
  parts: ReadonlyArray<string>,
  rowCount: number,
  bounds: WindowBounds,
  label: string,
): Effect.fn.Return<ViewWindow, WorldstreamError> {
  const groups = yield* rowGroups(session, parts);
  let fromSeq: number;
  let toSeq: number;
  if ("from_seq" in bounds) {
    ({ from_seq: fromSeq, to_seq: toSeq } = bounds);
    if (fromSeq > toSeq) {
      return yield* fail(
        "REPLAY_WINDOW_REVERSED",
        `${label}: from_seq ${fromSeq} is after to_seq ${toSeq}`,
      );
    }
    if (toSeq > rowCount) {
      return yield* fail(
        "REPLAY_WINDOW_OUTSIDE_VIEW",
        `${label}: rows [${fromSeq}, ${toSeq}) reach past the view's ${rowCount} rows`,
      );
    }
  } else {
    if (bounds.from_ts > bounds.to_ts) {
      return yield* fail(
        "REPLAY_WINDOW_REVERSED",
        `${label}: from_ts ${bounds.from_ts} is after to_ts ${bounds.to_ts}`,
      );
    }
    const first = groups[0]?.minTs ?? "";
    const last = groups[groups.length - 1]?.maxTs ?? "";
    if (bounds.to_ts <= first || bounds.from_ts > last) {
      return yield* fail(
        "REPLAY_WINDOW_OUTSIDE_VIEW",
        `${label}: [${bounds.from_ts}, ${bounds.to_ts}) is outside the view's events, ${first} to ${last}`,
      );
    }
    fromSeq = yield* rowsBefore(session, parts, groups, bounds.from_ts);
    toSeq = yield* rowsBefore(session, parts, groups, bounds.to_ts);
  }
  if (toSeq <= fromSeq) {
    return yield* fail(
      "REPLAY_WINDOW_EMPTY",
      `${label}: the window ${describe(bounds)} holds no event`,
    );
  }
  const after = fromSeq === 0 ? undefined : yield* positionAt(session, parts, groups, fromSeq - 1);
  const last = after === undefined
    ? yield* positionAt(session, parts, groups, toSeq - 1)
    : yield* positionAfter(session, parts, after, toSeq - 1);
  return { fromSeq, toSeq, after, last };
});

/** A checkpoint target: a row of the view, or the last row before an event time. */
export type PositionTarget = { readonly seq: number } | { readonly before_ts: string };

/**
 * The view position `target` names, found by seeking like {@link seekWindow}:
 * CHECKPOINT_RESET_OUTSIDE_VIEW when the row is past the view's end, or no event is before
 * `before_ts`. `before_ts` must be canonical (see {@link canonicalTs}).
 */
export const seekPosition = Effect.fn("seekPosition")(function* (
  session: DuckSession,
  parts: ReadonlyArray<string>,
  rowCount: number,
  target: PositionTarget,
  label: string,
): Effect.fn.Return<ViewPosition, WorldstreamError> {
  const groups = yield* rowGroups(session, parts);
  if ("seq" in target) {
    if (target.seq >= rowCount) {
      return yield* fail(
        "CHECKPOINT_RESET_OUTSIDE_VIEW",
        `${label}: row ${target.seq} is past the view's last row ${rowCount - 1}`,
      );
    }
    return yield* positionAt(session, parts, groups, target.seq);
  }
  const before = yield* rowsBefore(session, parts, groups, target.before_ts);
  if (before === 0) {
    return yield* fail(
      "CHECKPOINT_RESET_OUTSIDE_VIEW",
      `${label}: no event of the view is before ${target.before_ts} (the first is at ${
        groups[0]?.minTs ?? "none"
      })`,
    );
  }
  return yield* positionAt(session, parts, groups, before - 1);
});

function describe(bounds: WindowBounds): string {
  return "from_seq" in bounds
    ? `[${bounds.from_seq}, ${bounds.to_seq})`
    : `[${bounds.from_ts}, ${bounds.to_ts})`;
}

/**
 * The view's row-group map, read from its parts' footers once per runtime while the parts are
 * unchanged (stores/world_cache.ts): every replay and checkpoint reset of the view starts here.
 */
function rowGroups(session: DuckSession, parts: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    return yield* (yield* WorldCache).footers(parts, readRowGroups(session, parts));
  });
}

function readRowGroups(session: DuckSession, parts: ReadonlyArray<string>) {
  return session.rows<{ num_rows: number; min_ts: string | null; max_ts: string | null }>(
    duckSql("view_row_groups"),
    { files: parts },
  ).pipe(Effect.map((rows) => {
    const groups: RowGroup[] = [];
    let seq = 0;
    let prevMax: string | null = "";
    for (const r of rows) {
      const rows_ = Number(r.num_rows);
      if (rows_ === 0) continue;
      groups.push({
        startSeq: seq,
        rows: rows_,
        minTs: r.min_ts,
        maxTs: r.max_ts,
        clean: seq === 0 || (r.min_ts !== null && prevMax !== null && r.min_ts > prevMax),
      });
      seq += rows_;
      prevMax = r.max_ts;
    }
    return groups;
  }));
}

/** The last clean row group satisfying `fits` (the view's start when none does). */
function anchorWhere(groups: ReadonlyArray<RowGroup>, fits: (g: RowGroup) => boolean) {
  let anchor = { seq: 0, ts: "" };
  for (const g of groups) {
    if (!fits(g)) break;
    if (g.clean && g.startSeq > 0) anchor = { seq: g.startSeq, ts: g.minTs! };
  }
  return anchor;
}

/** How many rows of the view have a ts_utc before `ts`. */
function rowsBefore(
  session: DuckSession,
  parts: ReadonlyArray<string>,
  groups: ReadonlyArray<RowGroup>,
  ts: string,
) {
  const anchor = anchorWhere(groups, (g) => g.minTs !== null && g.minTs <= ts);
  return session.rows<{ n: number }>(duckSql("view_count_before"), {
    files: parts,
    anchor_ts: anchor.ts,
    ts,
  }).pipe(Effect.map(([r]) => anchor.seq + Number(r.n)));
}

/** The sort key of the row at `seq`. */
function positionAt(
  session: DuckSession,
  parts: ReadonlyArray<string>,
  groups: ReadonlyArray<RowGroup>,
  seq: number,
): Effect.Effect<ViewPosition, WorldstreamError> {
  const anchor = anchorWhere(groups, (g) => g.startSeq <= seq);
  return session.rows<{ ts_utc: string; filename: string; file_row_number: number }>(
    duckSql("view_position_at"),
    { files: parts, anchor_ts: anchor.ts, offset: seq - anchor.seq },
  ).pipe(Effect.flatMap(([r]) => found(r, seq)));
}

/** The sort key of the row at `seq`, counted on from `from`, a row at or before it. */
function positionAfter(
  session: DuckSession,
  parts: ReadonlyArray<string>,
  from: ViewPosition,
  seq: number,
): Effect.Effect<ViewPosition, WorldstreamError> {
  return session.rows<{ ts_utc: string; filename: string; file_row_number: number }>(
    duckSql("view_position_after"),
    {
      files: parts,
      after_ts: from.ts_utc,
      after_file: from.filename,
      after_row: from.file_row_number,
      offset: seq - from.seq - 1,
    },
  ).pipe(Effect.flatMap(([r]) => found(r, seq)));
}

function found(
  r: { ts_utc: string; filename: string; file_row_number: number } | undefined,
  seq: number,
): Effect.Effect<ViewPosition, WorldstreamError> {
  return r === undefined
    ? Effect.fail(fail("STREAM_VIEW_EMPTY", `The view has no row ${seq}`))
    : Effect.succeed({
      seq,
      ts_utc: r.ts_utc,
      filename: r.filename,
      file_row_number: Number(r.file_row_number),
    });
}

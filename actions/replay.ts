/**
 * Action `replay`: re-sends exactly one window of one output of a world — a half-open time
 * window `[from_ts, to_ts)` on ts_utc, or a half-open range `[from_seq, to_seq)` of the output's
 * stream view — at a chosen speed, with the same event ids as the original stream, through the
 * same courier lane (retries, WAL, receipts, dead letters). It runs as a run of the Supervisor
 * (kind `replay`, beside the run in flight rather than behind it) in a checkpoint scope of its
 * own, so it never moves the world stream's checkpoint; its id is its run id, under which its
 * progress shows among the runs in flight. The view is found by seeking (stores/view_seek.ts).
 *
 * Shared by `worldstream replay` (cli/replay.ts) and the admin API's `POST /v1/replay`: the
 * answer comes once the window is found in the view; bad windows fail before anything is sent.
 */
import { Clock, Effect, Schema } from "effect";
import { replayBounds } from "../actors/plan.ts";
import { randomId, Supervisor } from "../actors/supervisor.ts";
import { platformRunIdAt } from "../core/platform_ids.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { RunState } from "../schemas/messages.ts";
import { type Asker, governed } from "./governed.ts";

const NonEmpty = Schema.String.check(Schema.isMinLength(1));
const SeqBound = Schema.Number.check(
  Schema.makeFilter((n: number) => Number.isSafeInteger(n) && n >= 0, {
    expected: "a non-negative integer",
  }),
);

/** What to replay. Give from_ts and to_ts, or from_seq and to_seq, never both. */
export const ReplayRequest = Schema.Struct({
  engine_run_root: NonEmpty,
  scenario_id: Schema.optionalKey(NonEmpty),
  output_id: NonEmpty,
  /** Inclusive start on ts_utc, e.g. 2026-01-02T03:04:05Z (microseconds allowed). */
  from_ts: Schema.optionalKey(Schema.String),
  /** Exclusive end on ts_utc. */
  to_ts: Schema.optionalKey(Schema.String),
  /** Inclusive first row of the view (0-based). */
  from_seq: Schema.optionalKey(SeqBound),
  /** Exclusive end row of the view. */
  to_seq: Schema.optionalKey(SeqBound),
  /** Speed against event time; 0 is as fast as possible (default: the profile's). */
  speedup: Schema.optionalKey(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))),
  /** The platform run the events go to (default: a new one for now). */
  platform_run_id: Schema.optionalKey(NonEmpty),
});
export type ReplayRequest = typeof ReplayRequest.Type;

/** A replay started: its id (also its run id) and the window found in the view. */
export const ReplayAnswer = Schema.Struct({
  replay_id: Schema.String,
  state: RunState,
  run_key: Schema.NullOr(Schema.String),
  platform_run_id: Schema.String,
  output_id: Schema.String,
  /** The window in the view's sequence, `[from_seq, to_seq)`. */
  from_seq: Schema.Number,
  to_seq: Schema.Number,
  /** Events it re-sends: to_seq - from_seq. */
  events: Schema.Number,
});
export type ReplayAnswer = typeof ReplayAnswer.Type;

/**
 * The replay through the door that can park it (actions/governed.ts), as `wsp.replay`: a
 * malformed window fails first, then the policy runs it, parks it or refuses it.
 */
export const governedReplay = (request: ReplayRequest, who: Asker) =>
  replayBounds(request).pipe(
    Effect.andThen(governed("wsp.replay", { ...request }, who, replay(request))),
  );

/** Starts a replay on the Supervisor; answers once its window is found, before it ends. */
export const replay = Effect.fn("replay")(function* (
  request: ReplayRequest,
): Effect.fn.Return<ReplayAnswer, WorldstreamError, Supervisor> {
  // The pure checks first, so a malformed window fails before any world is opened.
  yield* replayBounds(request);
  const platformRunId = request.platform_run_id ??
    platformRunIdAt(yield* Clock.currentTimeMillis);
  const replayId = yield* randomId("replay");
  const info = yield* (yield* Supervisor).launch({
    _tag: "RunRequested",
    source: "operator",
    engine_run_root: request.engine_run_root,
    ...(request.scenario_id ? { scenario_id: request.scenario_id } : {}),
    platform_run_id: platformRunId,
    output_ids: [request.output_id],
    ...(request.speedup === undefined ? {} : { speedup: request.speedup }),
    replay: {
      replay_id: replayId,
      ...(request.from_ts === undefined ? {} : { from_ts: request.from_ts }),
      ...(request.to_ts === undefined ? {} : { to_ts: request.to_ts }),
      ...(request.from_seq === undefined ? {} : { from_seq: request.from_seq }),
      ...(request.to_seq === undefined ? {} : { to_seq: request.to_seq }),
    },
  });
  const window = info.windows[0];
  if (window === undefined) {
    return yield* fail("INTERNAL_ERROR", `Replay ${replayId} was planned without its window`);
  }
  yield* Effect.logInfo("replay_started").pipe(Effect.annotateLogs({
    replay_id: replayId,
    output_id: window.output_id,
    from_seq: window.from_seq,
    to_seq: window.to_seq,
    platform_run_id: platformRunId,
  }));
  return {
    replay_id: replayId,
    state: info.state,
    run_key: info.run_key,
    platform_run_id: platformRunId,
    output_id: window.output_id,
    from_seq: window.from_seq,
    to_seq: window.to_seq,
    events: window.to_seq - window.from_seq,
  } satisfies ReplayAnswer;
});

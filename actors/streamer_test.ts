import assert from "node:assert/strict";
import { Clock, Deferred, Effect, Fiber, Ref } from "effect";
import { TestClock } from "effect/testing";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import type { EmitBatch, Lane, LaneStats } from "./courier.ts";
import { LatenessStats } from "./lateness.ts";
import { type Caps, type EnvelopeSource, runGaps, runStreamer } from "./streamer.ts";

// These tests check the streamer's own logic (pacing, caps, stop) against a lane that records
// what it is handed and when; the courier has its own tests against the reference gate.

const SECOND_US = 1_000_000;
/** Event time of the first event of every test world, epoch µs (2026-01-01). */
const T0_US = Date.UTC(2026, 0, 1) * 1000;
/** Wall (TestClock) time a run starts at. */
const W0_MS = 1_000_000;

/** A view of events at `offsetsUs` after T0 (ids `<prefix><i>`), read `chunkSize` at a time. */
function source(offsetsUs: ReadonlyArray<number>, prefix = "e", chunkSize = 4): EnvelopeSource {
  let at = 0;
  return {
    next: Effect.sync(() => {
      if (at >= offsetsUs.length) return undefined;
      const start = at;
      const ids = offsetsUs.slice(start, start + chunkSize).map((_, i) => `${prefix}${start + i}`);
      at += ids.length;
      return {
        envelopes: ids.map((id) => `{"event_id":"${id}"}`),
        eventIds: ids,
        tsMicros: offsetsUs.slice(start, start + chunkSize).map((o) => T0_US + o),
        positionAt: (i: number): ViewPosition => ({
          seq: start + i,
          ts_utc: "",
          filename: "part-00000.parquet",
          file_row_number: start + i,
        }),
      };
    }),
  };
}

interface Handed {
  /** TestClock time of the hand-over. */
  readonly atMs: number;
  readonly batch: EmitBatch<ViewPosition>;
}

/** A lane that records each hand-over; each `send` takes `sendMs` of (test) time. */
function recordingLane(sendMs = 0) {
  const handed: Array<Handed> = [];
  const stats: LaneStats = {
    emitted: 0,
    admitted: 0,
    duplicate: 0,
    quarantined: 0,
    requests: 0,
    retries: 0,
    deadLettered: 0,
    pacing: new LatenessStats(),
    lateness: new LatenessStats(),
  };
  const lane: Lane<ViewPosition> = {
    send: (batch) =>
      Effect.gen(function* () {
        handed.push({ atMs: yield* Clock.currentTimeMillis, batch });
        if (sendMs > 0) yield* Effect.sleep(sendMs);
      }),
    finish: Effect.succeed(stats),
    stats: Effect.succeed(stats),
  };
  /** `[event id, hand-over time]` of every event, in hand-over order. */
  const timeline = () =>
    handed.flatMap(({ atMs, batch }) => batch.eventIds.map((id) => [id, atMs] as const));
  const ids = () => handed.flatMap(({ batch }) => batch.eventIds);
  return { lane, handed, timeline, ids };
}

interface Run {
  readonly offsetsUs: ReadonlyArray<number>;
  readonly speedup: number;
  readonly maxGapSeconds?: number;
  readonly t0Us?: number;
  readonly caps?: Caps;
  readonly batchSize?: number;
  readonly sendMs?: number;
}

/** Runs one streamer from W0 while a forked fiber moves the TestClock far ahead. */
function paced(run: Run) {
  return Effect.gen(function* () {
    yield* TestClock.setTime(W0_MS);
    const recorder = recordingLane(run.sendMs);
    const stop = yield* Deferred.make<void>();
    yield* Effect.forkChild(TestClock.adjust("30 days"));
    const outcome = yield* runStreamer({
      outputId: "out",
      source: source(run.offsetsUs),
      pacing: {
        speedup: run.speedup,
        w0Ms: W0_MS,
        t0Us: run.t0Us ?? T0_US,
        ...(run.maxGapSeconds === undefined ? {} : { maxGapSeconds: run.maxGapSeconds }),
      },
      caps: run.caps ?? {},
      batchSize: run.batchSize ?? 100,
      lane: recorder.lane,
      stop,
    });
    return { outcome, ...recorder };
  });
}

const onTestClock = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(effect.pipe(Effect.provide(TestClock.layer())));

// ---------------------------------------------------------------------------------------------
// Pacing

Deno.test("with speedup S each event is handed over at W0 + (ts − T0) / S exactly", async () => {
  // Event seconds after T0: two at once, a few close together, long and short gaps.
  const seconds = [0, 0, 6, 6.06, 60, 61.2, 61.2, 600, 3_600];
  const run = await onTestClock(
    paced({ offsetsUs: seconds.map((s) => s * SECOND_US), speedup: 60 }),
  );
  assert.deepEqual(
    run.timeline(),
    seconds.map((s, i) => [`e${i}`, W0_MS + (s * 1000) / 60]),
  );
  assert.deepEqual(run.outcome, { outputId: "out", read: 9, handedOver: 9, stoppedBy: "end" });
  // Each batch carries when its events were due, for the lane's lateness figures.
  for (const { atMs, batch } of run.handed) assert.ok(batch.dueMs.every((due) => due === atMs));
});

Deno.test("the run-wide T0 delays an output whose first event comes later", async () => {
  const run = await onTestClock(paced({
    offsetsUs: [30, 31].map((s) => s * SECOND_US),
    t0Us: T0_US,
    speedup: 10,
  }));
  assert.deepEqual(run.timeline(), [["e0", W0_MS + 3_000], ["e1", W0_MS + 3_100]]);
});

Deno.test("pacing is anchored: a slow lane does not push later events back", async () => {
  // Events 100 ms apart at this speed; every hand-over takes 30 ms. Sleeping the gap after each
  // send would drift by 30 ms an event; anchored pacing does not drift at all.
  const seconds = Array.from({ length: 10 }, (_, i) => i * 6);
  const run = await onTestClock(paced({
    offsetsUs: seconds.map((s) => s * SECOND_US),
    speedup: 60,
    sendMs: 30,
  }));
  assert.deepEqual(run.timeline(), seconds.map((s, i) => [`e${i}`, W0_MS + (s * 1000) / 60]));
});

Deno.test("a lane slower than the events catches up instead of falling further behind", async () => {
  // Due every 100 ms, each hand-over takes 150 ms: overdue events go out together.
  const seconds = Array.from({ length: 8 }, (_, i) => i * 6);
  const run = await onTestClock(paced({
    offsetsUs: seconds.map((s) => s * SECOND_US),
    speedup: 60,
    sendMs: 150,
  }));
  const last = run.handed.at(-1)!;
  assert.ok(last.atMs - W0_MS <= 700 + 150, `last hand-over at +${last.atMs - W0_MS} ms`);
  assert.ok(run.handed.length < 8, "overdue events were batched");
  for (const [id, at] of run.timeline()) {
    const due = W0_MS + Number(id.slice(1)) * 100;
    assert.ok(at >= due, `${id} handed over at ${at}, before it was due (${due})`);
  }
  assert.equal(run.ids().length, 8);
});

Deno.test("max_gap compresses a long idle gap to max_gap wall seconds", async () => {
  // At speedup 10 a 2 s max gap is 20 s of event time; the 3600 s gap shrinks to 20 s.
  const seconds = [0, 10, 3_610, 3_620];
  const run = await onTestClock(paced({
    offsetsUs: seconds.map((s) => s * SECOND_US),
    speedup: 10,
    maxGapSeconds: 2,
  }));
  assert.deepEqual(run.timeline(), [
    ["e0", W0_MS],
    ["e1", W0_MS + 1_000],
    ["e2", W0_MS + 3_000],
    ["e3", W0_MS + 4_000],
  ]);
});

Deno.test("speedup 0 hands everything over at once, in batches of batchSize", async () => {
  const offsets = Array.from({ length: 25 }, (_, i) => i * 3_600 * SECOND_US);
  const run = await onTestClock(paced({ offsetsUs: offsets, speedup: 0, batchSize: 3 }));
  assert.ok(run.handed.every((h) => h.atMs === W0_MS), "no waiting");
  assert.ok(run.handed.every((h) => h.batch.eventIds.length <= 3));
  assert.deepEqual(run.ids(), offsets.map((_, i) => `e${i}`));
  assert.ok(run.handed.every((h) => h.batch.dueMs.length === 0), "unpaced batches carry no due");
  assert.deepEqual(
    run.handed.map((h) => h.batch.last.seq),
    run.handed.map((h) => {
      const id = h.batch.eventIds.at(-1)!;
      return Number(id.slice(1));
    }),
  );
});

// ---------------------------------------------------------------------------------------------
// Caps

const hundred = Array.from({ length: 100 }, (_, i) => i * SECOND_US);

Deno.test("a per-output cap stops the output after exactly N events", async () => {
  for (const speedup of [0, 1_000]) {
    const run = await onTestClock(paced({
      offsetsUs: hundred,
      speedup,
      batchSize: 10,
      caps: { perOutput: 37 },
    }));
    assert.equal(run.outcome.stoppedBy, "cap");
    assert.equal(run.outcome.handedOver, 37);
    assert.deepEqual(run.ids(), hundred.slice(0, 37).map((_, i) => `e${i}`));
    assert.equal(run.handed.at(-1)!.batch.last.seq, 36, "the last position is the 37th event");
  }
});

Deno.test("a per-output cap above the view's size lets the output end normally", async () => {
  const run = await onTestClock(
    paced({ offsetsUs: hundred, speedup: 0, caps: { perOutput: 500 } }),
  );
  assert.deepEqual(run.outcome, { outputId: "out", read: 100, handedOver: 100, stoppedBy: "end" });
});

Deno.test("a global cap shared by two outputs stops the run after exactly N events", async () => {
  const outcome = await onTestClock(Effect.gen(function* () {
    const left = yield* Ref.make(50);
    const stop = yield* Deferred.make<void>();
    const lanes = [recordingLane(), recordingLane()];
    const outcomes = yield* Effect.all(
      lanes.map((recorder, n) =>
        runStreamer({
          outputId: `out${n}`,
          source: source(hundred, `o${n}-`, 7),
          pacing: { speedup: 0, w0Ms: 0, t0Us: T0_US },
          caps: { global: left },
          batchSize: 8,
          lane: recorder.lane,
          stop,
        })
      ),
      { concurrency: "unbounded" },
    );
    return { outcomes, lanes, left: yield* Ref.get(left) };
  }));
  const handed = outcome.lanes.map((l) => l.ids());
  assert.equal(handed[0].length + handed[1].length, 50);
  assert.equal(outcome.left, 0);
  handed.forEach((ids, n) => {
    assert.deepEqual(ids, ids.map((_, i) => `o${n}-${i}`), `out${n} hands over a prefix`);
    assert.equal(outcome.outcomes[n].handedOver, ids.length);
    assert.equal(outcome.outcomes[n].stoppedBy, "cap");
  });
});

Deno.test("per-output and global caps together: each output within its cap, the run within N", async () => {
  const result = await onTestClock(Effect.gen(function* () {
    const left = yield* Ref.make(30);
    const stop = yield* Deferred.make<void>();
    const lanes = [recordingLane(), recordingLane()];
    yield* Effect.all(
      lanes.map((recorder, n) =>
        runStreamer({
          outputId: `out${n}`,
          source: source(hundred, `o${n}-`),
          pacing: { speedup: 0, w0Ms: 0, t0Us: T0_US },
          caps: { perOutput: 20, global: left },
          batchSize: 6,
          lane: recorder.lane,
          stop,
        })
      ),
      { concurrency: "unbounded" },
    );
    return lanes.map((l) => l.ids().length);
  }));
  assert.ok(result.every((n) => n <= 20), `${result}`);
  assert.equal(result[0] + result[1], 30);
});

// ---------------------------------------------------------------------------------------------
// Stop

Deno.test("a stop request ends a paced stream while it waits for the next event", async () => {
  const result = await onTestClock(Effect.gen(function* () {
    yield* TestClock.setTime(W0_MS);
    const recorder = recordingLane();
    const stop = yield* Deferred.make<void>();
    const fiber = yield* Effect.forkChild(runStreamer({
      outputId: "out",
      source: source([0, 3_600, 7_200].map((s) => s * SECOND_US)),
      pacing: { speedup: 1, w0Ms: W0_MS, t0Us: T0_US },
      caps: {},
      batchSize: 100,
      lane: recorder.lane,
      stop,
    }));
    // The first event is due at once; the next one an hour later.
    yield* TestClock.adjust("1 minute");
    assert.deepEqual(recorder.ids(), ["e0"]);
    yield* Deferred.succeed(stop, undefined);
    const outcome = yield* Fiber.join(fiber);
    return { outcome, ids: recorder.ids(), now: yield* Clock.currentTimeMillis };
  }));
  assert.equal(result.outcome.stoppedBy, "shutdown");
  assert.equal(result.outcome.handedOver, 1);
  assert.deepEqual(result.ids, ["e0"]);
  assert.equal(result.now, W0_MS + 60_000, "it stopped without waiting out the hour");
});

Deno.test("a stop request ends an unpaced stream after the chunk in hand", async () => {
  const result = await onTestClock(Effect.gen(function* () {
    const recorder = recordingLane();
    const stop = yield* Deferred.make<void>();
    yield* Deferred.succeed(stop, undefined);
    const outcome = yield* runStreamer({
      outputId: "out",
      source: source(hundred),
      pacing: { speedup: 0, w0Ms: 0, t0Us: T0_US },
      caps: {},
      batchSize: 100,
      lane: recorder.lane,
      stop,
    });
    return { outcome, ids: recorder.ids() };
  }));
  assert.equal(result.outcome.stoppedBy, "shutdown");
  assert.deepEqual(result.ids, ["e0", "e1", "e2", "e3"], "the first chunk only");
});

// ---------------------------------------------------------------------------------------------
// max_gap across the outputs of a run

/**
 * Runs one streamer per output concurrently, sharing the run's gaps as the supervisor does,
 * and returns each output's `[event id, hand-over time]` timeline.
 */
function pacedTogether(run: {
  readonly outputs: ReadonlyArray<ReadonlyArray<number>>;
  readonly speedup: number;
  readonly maxGapSeconds: number;
  readonly chunkSize?: number;
}) {
  return Effect.gen(function* () {
    yield* TestClock.setTime(W0_MS);
    const stop = yield* Deferred.make<void>();
    const pacing = {
      speedup: run.speedup,
      w0Ms: W0_MS,
      t0Us: T0_US + Math.min(...run.outputs.map((o) => o[0])),
      maxGapSeconds: run.maxGapSeconds,
    };
    const gaps = runGaps(pacing, run.outputs.length)!;
    const recorders = run.outputs.map(() => recordingLane());
    const fibers = yield* Effect.forEach(
      run.outputs,
      (offsets, k) =>
        Effect.forkChild(runStreamer({
          outputId: `out${k}`,
          source: source(offsets, `${"AB"[k]}`, run.chunkSize ?? 4),
          pacing,
          caps: {},
          batchSize: 100,
          lane: recorders[k].lane,
          stop,
          gaps: gaps.output(k),
        })),
    );
    yield* TestClock.adjust("30 days");
    for (const fiber of fibers) yield* Fiber.join(fiber);
    return recorders.map((r) => r.timeline().map(([id, at]) => [id, at - W0_MS] as const));
  });
}

Deno.test("max_gap compresses a gap once for the whole run: events at the same time in two outputs are due together", async () => {
  // A idles from 10 s to 1000 s, B from 0 to 500 s and 500 s to 1000 s; the run is idle only
  // from 10 s to 500 s and from 500 s to 1000 s. With max_gap 60 s (speedup 1) these shrink to
  // 60 s each: 430 s and 440 s compressed, so event time 500 s is due at 70 s and 1000 s at
  // 130 s, in both outputs. (Compressing each output's own gaps would send A's 1000 s event at
  // 70 s and B's at 120 s.)
  const [a, b] = await onTestClock(pacedTogether({
    outputs: [[0, 10, 1_000].map((s) => s * SECOND_US), [0, 500, 1_000].map((s) => s * SECOND_US)],
    speedup: 1,
    maxGapSeconds: 60,
  }));
  assert.deepEqual(a, [["A0", 0], ["A1", 10_000], ["A2", 130_000]]);
  assert.deepEqual(b, [["B0", 0], ["B1", 70_000], ["B2", 130_000]]);
});

Deno.test("max_gap leaves alone a gap of one output that another output's events fill", async () => {
  // A has nothing between 0 and 1000 s, but B has an event every 100 s: the run's idle gaps are
  // 100 s each, 40 s over max_gap, so ten of them shift 1000 s by 400 s, not by A's 940 s.
  const bSeconds = Array.from({ length: 11 }, (_, i) => i * 100);
  const [a, b] = await onTestClock(pacedTogether({
    outputs: [[0, 1_000].map((s) => s * SECOND_US), bSeconds.map((s) => s * SECOND_US)],
    speedup: 1,
    maxGapSeconds: 60,
    chunkSize: 2,
  }));
  assert.deepEqual(a, [["A0", 0], ["A1", 600_000]]);
  assert.deepEqual(b, bSeconds.map((s, i) => [`B${i}`, s * 600]));
});

Deno.test("max_gap treats the time after an output's last event as idle for that output", async () => {
  // A ends at 10 s; from then on only B counts. At speedup 10 max_gap 6 s is 60 s of event time.
  const [a, b] = await onTestClock(pacedTogether({
    outputs: [[0, 10].map((s) => s * SECOND_US), [5, 500, 1_000].map((s) => s * SECOND_US)],
    speedup: 10,
    maxGapSeconds: 6,
    chunkSize: 1,
  }));
  assert.deepEqual(a, [["A0", 0], ["A1", 1_000]]);
  // 10 s → 500 s: 430 s compressed; 500 s → 1000 s: 440 s compressed.
  assert.deepEqual(b, [["B0", 500], ["B1", 7_000], ["B2", 13_000]]);
});

Deno.test("max_gap compresses nothing where two outputs take turns, over thousands of gaps", async () => {
  // Each output alone idles 100 s between events (over max_gap), but together they have an
  // event every 50 s: the run is never idle for longer than max_gap, so nothing shifts. Enough
  // gaps that the run's record of them is trimmed along the way.
  const n = 3_000;
  const aSeconds = Array.from({ length: n }, (_, i) => i * 100);
  const bSeconds = aSeconds.map((s) => s + 50);
  const [a, b] = await onTestClock(pacedTogether({
    outputs: [aSeconds.map((s) => s * SECOND_US), bSeconds.map((s) => s * SECOND_US)],
    speedup: 100,
    maxGapSeconds: 0.6,
  }));
  assert.deepEqual(a, aSeconds.map((s, i) => [`A${i}`, s * 10]));
  assert.deepEqual(b, bSeconds.map((s, i) => [`B${i}`, s * 10]));
});

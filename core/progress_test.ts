import assert from "node:assert/strict";
import { Clock, Effect, Logger, References } from "effect";
import { TestClock } from "effect/testing";
import {
  formatEta,
  progressFields,
  type ProgressItem,
  progressLine,
  RateMeter,
  redraw,
  withProgress,
} from "./progress.ts";

Deno.test("a terminal line shows the bar, percent, count, rate and ETA of an output", () => {
  const meter = new RateMeter();
  const item = (done: number): ProgressItem => ({
    id: "s3_event_stream_with_fraud_6B",
    done,
    total: 20_000,
    detail: "adm 9000 dup 0",
  });
  meter.observe([item(0)], 1_000);
  const [row] = meter.observe([item(9_000)], 4_000);
  assert.equal(row.rate, 3_000);
  assert.ok(Math.abs(row.etaSeconds! - 11_000 / 3_000) < 1e-9);
  assert.equal(
    progressLine(row),
    "s3_event_stream_with_fraud_6B  █████████░░░░░░░░░░░  45% 9,000/20,000 3,000/s ETA 0:04 adm 9000 dup 0",
  );
});

Deno.test("before a rate is known the ETA is unknown, and a finished output has none left", () => {
  const meter = new RateMeter();
  const [first] = meter.observe([{ id: "a", done: 10, total: 100 }], 0);
  assert.equal(first.rate, 0);
  assert.equal(first.etaSeconds, undefined);
  assert.match(progressLine(first), / 10% 10\/100 0\/s ETA --:--$/);
  const [done] = meter.observe([{ id: "a", done: 100, total: 100 }], 1000);
  assert.equal(done.etaSeconds, 0);
  assert.match(progressLine(done), /█{20} 100% 100\/100 90\/s ETA 0:00$/);
  const [unknownTotal] = meter.observe([{ id: "b", done: 7, total: 0 }], 1000);
  assert.match(progressLine(unknownTotal), /░{20} {3}0% 7 0\/s ETA --:--$/);
});

Deno.test("the rate follows the last few seconds, and a restarted output starts afresh", () => {
  const meter = new RateMeter(5000);
  // 100/s for 10 s, then 1,000/s: after five more seconds the old pace is forgotten.
  for (let t = 0; t <= 10_000; t += 1000) meter.observe([{ id: "a", done: t / 10, total: 0 }], t);
  let row;
  for (let t = 11_000; t <= 16_000; t += 1000) {
    [row] = meter.observe([{ id: "a", done: 1000 + (t - 10_000), total: 0 }], t);
  }
  assert.equal(row!.rate, 1000);
  const [restarted] = meter.observe([{ id: "a", done: 5, total: 10 }], 17_000);
  assert.equal(restarted.rate, 0);
});

Deno.test("ETAs read as minutes and seconds, or hours when long", () => {
  assert.deepEqual([0, 4.2, 65, 7389, undefined, Infinity].map(formatEta), [
    "0:00",
    "0:05",
    "1:05",
    "2:03:09",
    "--:--",
    "--:--",
  ]);
});

Deno.test("a redraw moves up over the lines drawn before and clears each line it writes", () => {
  assert.equal(redraw(["a", "b"], 0), "\x1b[2Ka\n\x1b[2Kb\n");
  assert.equal(redraw(["a", "b"], 2), "\x1b[2F\x1b[2Ka\n\x1b[2Kb\n");
});

Deno.test("off a terminal, progress is a log line per output every interval and a final one with the result's counts", async () => {
  const logged: Array<{ message: string; fields: Record<string, unknown> }> = [];
  const capture = Logger.layer([
    Logger.make((o) => {
      const [message] = o.message as ReadonlyArray<unknown>;
      logged.push({
        message: String(message),
        fields: { ...o.fiber.getRef(References.CurrentLogAnnotations) },
      });
    }),
  ]);
  // 1,000 events over 12 s of TestClock time; the result says all 1,000 were done.
  const source = Clock.currentTimeMillis.pipe(
    Effect.map((t): Array<ProgressItem> => [{ id: "a", done: Math.floor(t / 12), total: 1000 }]),
  );
  const work = Effect.sleep("12 seconds").pipe(Effect.as(1000));
  const result = await Effect.runPromise(
    Effect.gen(function* () {
      yield* Effect.forkChild(TestClock.adjust("1 minute"));
      return yield* withProgress(source, work, {
        tty: false,
        final: (n, last) => last.map((item) => ({ ...item, done: n })),
      });
    }).pipe(Effect.provide(TestClock.layer()), Effect.provide(capture)),
  );
  assert.equal(result, 1000);
  assert.deepEqual(logged.map((l) => [l.message, l.fields]), [
    ["output progress", {
      output_id: "a",
      done: 416,
      total: 1000,
      percent: 41.6,
      rate_per_s: 0,
      eta_s: null,
    }],
    ["output progress", {
      output_id: "a",
      done: 833,
      total: 1000,
      percent: 83.3,
      rate_per_s: 83,
      eta_s: 3,
    }],
    ["output progress", {
      output_id: "a",
      done: 1000,
      total: 1000,
      percent: 100,
      rate_per_s: 83,
      eta_s: 0,
    }],
  ]);
  assert.deepEqual(
    progressFields({ id: "b", done: 1, total: 0, rate: 0.4, etaSeconds: undefined }),
    {
      output_id: "b",
      done: 1,
      total: 0,
      percent: null,
      rate_per_s: 0,
      eta_s: null,
    },
  );
});

import assert from "node:assert/strict";
import { Clock, Effect, Fiber, Logger, References } from "effect";
import { TestClock } from "effect/testing";
import { describeCause, supervised } from "./supervise.ts";
import { fail } from "../schemas/errors.ts";

interface Line {
  readonly level: string;
  readonly message: string;
  readonly annotations: Record<string, unknown>;
}

/** Runs `body` on a TestClock with its log lines captured. */
function run<A, E>(body: (logged: Array<Line>) => Effect.Effect<A, E>) {
  const logged: Array<Line> = [];
  const capture = Logger.layer([
    Logger.make((o) => {
      const [first] = o.message as ReadonlyArray<unknown>;
      logged.push({
        level: o.logLevel,
        message: String(first),
        annotations: { ...o.fiber.getRef(References.CurrentLogAnnotations) },
      });
    }),
  ]);
  return Effect.runPromise(
    body(logged).pipe(Effect.provide(TestClock.layer()), Effect.provide(capture)),
  );
}

Deno.test("an actor that dies of a defect is restarted after a growing backoff, and each restart is logged", async () => {
  const { starts, result, logged } = await run((logged) =>
    Effect.gen(function* () {
      const starts: Array<number> = [];
      // Dies twice (a thrown exception, then a typed failure nobody handled), then ends.
      const body = Effect.gen(function* () {
        starts.push(yield* Clock.currentTimeMillis);
        if (starts.length === 1) yield* Effect.sync(() => JSON.parse("{oops"));
        if (starts.length === 2) return yield* fail("WAL_IO_FAILED", "Disk went away");
        return "served";
      });
      const fiber = yield* Effect.forkChild(supervised("test_actor", body));
      yield* TestClock.adjust("1 minute");
      return { starts, result: yield* Fiber.join(fiber), logged };
    })
  );
  assert.equal(result, "served");
  // 100 ms before the first restart, 200 ms before the second.
  assert.deepEqual(starts, [0, 100, 300]);
  const restarts = logged.filter((l) => l.message === "actor_restart");
  assert.equal(restarts.length, 2);
  for (const [i, line] of restarts.entries()) {
    assert.equal(line.level, "Error");
    assert.equal(line.annotations.actor, "test_actor");
    assert.equal(line.annotations.restarts, i + 1);
  }
  assert.match(String(restarts[0].annotations.defect), /JSON/);
  assert.equal(restarts[1].annotations.defect, "Disk went away");
});

Deno.test("the backoff is capped at 30 s however often an actor dies", async () => {
  const { starts } = await run(() =>
    Effect.gen(function* () {
      const starts: Array<number> = [];
      const body = Effect.gen(function* () {
        starts.push(yield* Clock.currentTimeMillis);
        return yield* Effect.die(new Error("always broken"));
      });
      const fiber = yield* Effect.forkChild(supervised("broken", body));
      yield* TestClock.adjust("10 minutes");
      yield* Fiber.interrupt(fiber);
      return { starts };
    })
  );
  const waits = starts.slice(1).map((t, i) => t - starts[i]);
  assert.deepEqual(waits.slice(0, 5), [100, 200, 400, 800, 1600]);
  assert.ok(waits.every((w) => w <= 30_000), `waits ${waits.join(",")}`);
  assert.equal(waits.at(-1), 30_000);
});

Deno.test("an interrupted actor is not restarted", async () => {
  const { starts, logged, exit } = await run((logged) =>
    Effect.gen(function* () {
      let starts = 0;
      const body = Effect.sync(() => starts++).pipe(Effect.andThen(Effect.never));
      const fiber = yield* Effect.forkChild(supervised("idle", body));
      yield* TestClock.adjust("1 second");
      yield* Fiber.interrupt(fiber);
      const exit = yield* Fiber.await(fiber);
      yield* TestClock.adjust("1 minute");
      return { starts, logged, exit };
    })
  );
  assert.equal(starts, 1);
  assert.equal(exit._tag, "Failure");
  assert.equal(logged.filter((l) => l.message === "actor_restart").length, 0);
});

Deno.test("a cause is described by its defect's first line, else its error's message", () => {
  const died = Effect.runSync(Effect.exit(Effect.die(new Error("first\nsecond"))));
  assert.equal(died._tag, "Failure");
  if (died._tag === "Failure") assert.equal(describeCause(died.cause), "first");
  const failed = Effect.runSync(Effect.exit(Effect.fail(fail("BAD_ARGS", "Typed"))));
  if (failed._tag === "Failure") assert.equal(describeCause(failed.cause), "Typed");
  const odd = Effect.runSync(Effect.exit(Effect.die("a string")));
  if (odd._tag === "Failure") assert.equal(describeCause(odd.cause), "a string");
});

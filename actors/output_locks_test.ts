import assert from "node:assert/strict";
import { Deferred, Effect, Fiber, Option, Ref } from "effect";
import { makeOutputLocks, OutputLocks } from "./output_locks.ts";

const run = <A, E>(body: Effect.Effect<A, E>) => Effect.runPromise(body);

Deno.test("an output lock held by a run's scope refuses a reset until the run ends, and only for that scope and output", () =>
  run(Effect.gen(function* () {
    const locks = makeOutputLocks();
    const reset = (scope: string, output: string) =>
      locks.ifFree(scope, output, Effect.succeed("moved"));
    yield* Effect.scoped(Effect.gen(function* () {
      yield* locks.hold("scope-a", "out-1");
      assert.ok(Option.isNone(yield* reset("scope-a", "out-1")), "held: the reset is refused");
      assert.deepEqual(yield* reset("scope-a", "out-2"), Option.some("moved"));
      assert.deepEqual(yield* reset("scope-b", "out-1"), Option.some("moved"));
    }));
    assert.deepEqual(yield* reset("scope-a", "out-1"), Option.some("moved"), "released");
  })));

Deno.test("a run that starts while a reset holds the lock waits until the reset is written", () =>
  run(Effect.gen(function* () {
    const locks = makeOutputLocks();
    const writing = yield* Deferred.make<void>();
    const written = yield* Deferred.make<void>();
    const held = yield* Ref.make(false);
    const resetFiber = yield* Effect.forkChild(locks.ifFree(
      "scope",
      "out",
      Deferred.succeed(writing, undefined).pipe(Effect.andThen(Deferred.await(written))),
    ));
    yield* Deferred.await(writing);
    const runFiber = yield* Effect.forkChild(Effect.scoped(
      locks.hold("scope", "out").pipe(Effect.andThen(Ref.set(held, true))),
    ));
    for (let i = 0; i < 50; i++) yield* Effect.yieldNow;
    assert.equal(yield* Ref.get(held), false, "the run waits while the reset writes");
    yield* Deferred.succeed(written, undefined);
    assert.ok(Option.isSome(yield* Fiber.join(resetFiber)));
    yield* Fiber.join(runFiber);
    assert.equal(yield* Ref.get(held), true, "then it holds the lock");
  })));

Deno.test("outside a runtime every output lock is free", () =>
  run(Effect.gen(function* () {
    const locks = yield* OutputLocks;
    yield* Effect.scoped(Effect.gen(function* () {
      yield* locks.hold("scope", "out");
      assert.deepEqual(yield* locks.ifFree("scope", "out", Effect.succeed(1)), Option.some(1));
    }));
  })));

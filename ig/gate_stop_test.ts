import assert from "node:assert/strict";
import { Context, Effect, Exit, Fiber, Layer } from "effect";
import { WorldstreamError } from "../schemas/errors.ts";
import { pgTest } from "../stores/postgres_testing.ts";
import { envelope, gateLayer } from "./_testing.ts";
import { IgGate } from "./gate.ts";

// A gate that stops while pushes wait must answer every one of them: the ones it decided with
// their decision, the rest with IG_STOPPING (a 503 on the wire, so the sender retries), none
// left waiting.

const PUSHES = 200;

pgTest(
  "pushes still waiting when the gate stops are answered IG_STOPPING, and none is left waiting",
  () =>
    Effect.gen(function* () {
      // One push decided at a time, so the others queue behind it.
      const pushes = yield* Effect.scoped(Effect.gen(function* () {
        const gate = Context.get(yield* Layer.build(gateLayer({ maxCoalesce: 1 })), IgGate);
        const fibers = [];
        for (let i = 0; i < PUSHES; i++) {
          fibers.push(yield* Effect.forkDetach(gate.push(envelope(i))));
        }
        // Every push is queued once its fiber has run; the gate then stops as the scope closes.
        yield* Effect.sleep("1 millis");
        return fibers;
      }));
      const exits = yield* Effect.forEach(pushes, Fiber.await).pipe(Effect.timeout("10 seconds"));
      const stopped = exits.filter((exit) =>
        Exit.isFailure(exit) &&
        exit.cause.reasons.some((r) =>
          r._tag === "Fail" && r.error instanceof WorldstreamError &&
          r.error.reason === "IG_STOPPING"
        )
      );
      const decided = exits.filter(Exit.isSuccess);
      assert.ok(stopped.length > 0, "some pushes were still waiting when the gate stopped");
      assert.equal(decided.length + stopped.length, PUSHES, "every push is decided or stopped");
      for (const exit of decided) assert.equal(exit.value.decision, "ADMIT");
    }),
  { only: "pglite" },
);

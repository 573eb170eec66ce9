import assert from "node:assert/strict";
import { Effect } from "effect";
import { parseGenWorldArgs } from "./gen_world.ts";

Deno.test("gen-world arguments parse, and bad ones fail with BAD_ARGS", async () => {
  const ok = await Effect.runPromise(
    parseGenWorldArgs(["--out", "w", "--events=500", "--seed", "3", "--scenario-id", "s1"]),
  );
  assert.deepEqual(ok, { out: "w", events: 500, seed: 3, scenarioId: "s1" });
  for (
    const argv of [
      [],
      ["--events", "10"],
      ["--out", "w", "--events", "ten"],
      ["--out", "w", "--seed", "-1"],
      ["--out", "w", "--bogus", "1"],
      ["--out", "w", "extra"],
    ]
  ) {
    const e = await Effect.runPromise(Effect.flip(parseGenWorldArgs(argv)));
    assert.equal(e.reason, "BAD_ARGS", argv.join(" "));
  }
});

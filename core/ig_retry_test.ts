import assert from "node:assert/strict";
import { Duration, Effect, Exit, Random, Schedule } from "effect";
import { isRetryable, type RetryInput, retrySchedule } from "./ig_retry.ts";

const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000, retryAfterCapMs: 500 };

/** The waits the schedule chooses for a sequence of failed answers, until it stops. */
function waits(inputs: ReadonlyArray<RetryInput>, seed = 1) {
  return Effect.runPromise(
    Effect.gen(function* () {
      const step = yield* Schedule.toStep(retrySchedule(policy));
      const out: Array<number> = [];
      for (const input of inputs) {
        const exit = yield* Effect.exit(step(0, input));
        if (Exit.isFailure(exit)) break;
        out.push(Duration.toMillis(exit.value[1]));
      }
      return out;
    }).pipe(Random.withSeed(seed)),
  );
}

Deno.test("the waits are full jitter: uniform below min(cap, base·2^(n−1))", async () => {
  const draws: Array<Array<number>> = [[], [], [], []];
  for (let seed = 0; seed < 300; seed++) {
    const got = await waits(Array(4).fill({ status: 503 }), seed);
    assert.equal(got.length, 4, "four retries after the first of five attempts");
    got.forEach((d, n) => draws[n].push(d));
  }
  draws.forEach((ds, n) => {
    const ceiling = Math.min(1_000, 100 * 2 ** n);
    for (const d of ds) assert.ok(Number.isInteger(d) && d >= 0 && d < ceiling, `retry ${n}: ${d}`);
    // Spread over the whole range, not clustered at the ceiling (that would be no jitter).
    assert.ok(Math.min(...ds) < ceiling * 0.1, `retry ${n + 1} min ${Math.min(...ds)}`);
    assert.ok(Math.max(...ds) > ceiling * 0.9, `retry ${n + 1} max ${Math.max(...ds)}`);
  });
});

Deno.test("a Retry-After is waited as asked, up to its cap", async () => {
  assert.deepEqual(
    await waits([
      { status: 429, retryAfterMs: 200 },
      { status: 503, retryAfterMs: 0 },
      { status: 429, retryAfterMs: 3_000 },
      { status: 503, retryAfterMs: 60_000 },
    ]),
    [200, 0, 500, 500],
  );
});

Deno.test("the schedule stops at maxAttempts and at the first answer not worth retrying", async () => {
  assert.equal((await waits(Array(10).fill({ status: 0 }))).length, 4);
  assert.deepEqual(await waits([{ status: 404 }]), []);
  assert.equal((await waits([{ status: 503 }, { status: 400 }, { status: 503 }])).length, 1);
});

Deno.test("408, 429, 5xx and no answer are retryable; other 4xx are not", () => {
  for (const status of [0, 408, 429, 500, 502, 503, 504]) {
    assert.equal(isRetryable(status), true, `${status}`);
  }
  for (const status of [400, 401, 403, 404, 405, 409, 413, 422]) {
    assert.equal(isRetryable(status), false, `${status}`);
  }
});

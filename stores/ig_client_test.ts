import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Cause, Effect, Exit, type Scope } from "effect";
import { RETRY_DEFAULTS } from "../core/ig_retry.ts";
import { envelope, RUN } from "../ig/_testing.ts";
import { type RunningIg, type ServeOptions, startIg } from "../ig/server.ts";
import { onRetryClock } from "../tests/retry_clock.ts";
import { type IgClientOptions, igHealthy, IgSendFailed, makeIgClient } from "./ig_client.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

/** A real HTTP server on a free loopback port answering `/v1/ops/health` with `status`. */
function healthServer(status: number | "hang") {
  let release!: () => void;
  const hung = new Promise<void>((r) => release = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    if (status === "hang") {
      await hung;
      return new Response("late");
    }
    return new Response("{}", { status });
  });
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}`,
    close: async () => {
      release();
      await server.shutdown();
    },
  };
}

Deno.test("igHealthy: 200 is up, 503 and no answer in time are down", async () => {
  for (const [status, expected] of [[200, true], [503, false], ["hang", false]] as const) {
    const server = healthServer(status);
    try {
      const up = await Effect.runPromise(
        igHealthy({ baseUrl: server.baseUrl, timeoutMs: status === "hang" ? 200 : 30_000 }),
      );
      assert.equal(up, expected, `status ${status}`);
    } finally {
      await server.close();
    }
  }
  // Nothing listening.
  const gone = healthServer(200);
  await gone.close();
  assert.equal(
    await Effect.runPromise(igHealthy({ baseUrl: gone.baseUrl, timeoutMs: 30_000 })),
    false,
  );
});

// ---------------------------------------------------------------------------------------------
// The IgClient against the reference gate, with retry waits on a TestClock

// Every gate here starts from a copy of one initialised PGlite folder.
const TMP = await Deno.makeTempDir({ prefix: "ig_client_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);
let gates = 0;

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

/** The reference gate over its own copy of the database, served until the scope closes. */
function gate(options: ServeOptions = {}) {
  return Effect.gen(function* () {
    const db = join(TMP, `ig-${++gates}`);
    cpSync(BARE_DB, db, { recursive: true });
    return yield* startIg({ db, ...options });
  });
}

/** A client with the platform's retry defaults (250 ms base, 5 s cap, 5 attempts). */
function client(ig: RunningIg, overrides: Partial<IgClientOptions> = {}) {
  return makeIgClient({
    ...RETRY_DEFAULTS,
    endpoint: { baseUrl: ig.url, timeoutMs: 5_000 },
    mode: "batch",
    pushConcurrency: 1,
    ...overrides,
  });
}

const texts = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => JSON.stringify(envelope(from + i)));

/** Event ids the gate admitted for the test run, in admission order. */
function admitted(ig: RunningIg) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/admitted?platform_run_id=${RUN}`);
    const text = await res.text();
    return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).event_id as string);
  });
}

function failureOf<A>(exit: Exit.Exit<A, IgSendFailed>): IgSendFailed {
  assert.ok(Exit.isFailure(exit), "expected a failure");
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error;
  assert.ok(error instanceof IgSendFailed, Cause.pretty(exit.cause));
  return error;
}

const ids = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => `ev-${from + i}`);

test(
  "a gate answering 503, 503, then deciding gets exactly two retries, each wait within its full-jitter bound",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { script: [{ status: 503 }, { status: 503 }] } });
    const c = yield* client(ig);
    const run = yield* onRetryClock(c.send(texts(0, 5)));
    assert.ok(Exit.isSuccess(run.exit), String(run.exit));
    assert.deepEqual(run.exit.value.decisions, Array(5).fill("ADMIT"));
    assert.equal(run.exit.value.requests, 3);
    assert.equal(run.waits.length, 2);
    // Full jitter: uniform below min(5 s, 250 ms · 2^(n−1)).
    assert.ok(run.waits[0] >= 0 && run.waits[0] < 250, `first wait ${run.waits[0]}`);
    assert.ok(run.waits[1] >= 0 && run.waits[1] < 500, `second wait ${run.waits[1]}`);
    assert.equal(run.elapsedMs, run.waits[0] + run.waits[1], "it slept exactly what it chose");
    assert.deepEqual(yield* admitted(ig), ids(0, 5));
  }),
);

test(
  "a Retry-After of 2 s is waited instead of the jitter, and one beyond the cap is cut to it",
  Effect.gen(function* () {
    const ig = yield* gate({
      faults: { script: [{ status: 429, retryAfter: "2" }, { status: 503, retryAfter: "60" }] },
    });
    const c = yield* client(ig);
    const run = yield* onRetryClock(c.send(texts(0, 3)));
    assert.ok(Exit.isSuccess(run.exit), String(run.exit));
    assert.deepEqual(run.waits, [2_000, 5_000]);
    assert.equal(run.elapsedMs, 7_000);
    assert.deepEqual(yield* admitted(ig), ids(0, 3));
  }),
);

test(
  "a 400 is never retried: IG_PUSH_REJECTED after one request",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { script: [{ status: 400 }] } });
    const c = yield* client(ig);
    const run = yield* onRetryClock(c.send(texts(0, 3)));
    const failure = failureOf(run.exit);
    assert.equal(failure.reason, "IG_PUSH_REJECTED");
    assert.equal(failure.requests, 1);
    assert.equal(failure.answer.status, 400);
    assert.deepEqual(run.waits, []);
    assert.equal(run.elapsedMs, 0);
    assert.deepEqual(yield* admitted(ig), []);
  }),
);

test(
  "a gate failing every attempt ends IG_PUSH_RETRY_EXHAUSTED after five requests and four waits",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { script: Array(5).fill({ status: 503 }) } });
    const c = yield* client(ig);
    const run = yield* onRetryClock(c.send(texts(0, 3)));
    const failure = failureOf(run.exit);
    assert.equal(failure.reason, "IG_PUSH_RETRY_EXHAUSTED");
    assert.equal(failure.requests, 5);
    assert.match(failure.message, /IG answered 503 on \/v1\/ingest\/batch .*after 5 attempts/);
    assert.equal(run.waits.length, 4);
    run.waits.forEach((wait, n) => {
      assert.ok(wait >= 0 && wait < Math.min(5_000, 250 * 2 ** n), `wait ${n + 1}: ${wait}`);
    });
    assert.equal(run.elapsedMs, run.waits.reduce((a, b) => a + b, 0));
    assert.deepEqual(yield* admitted(ig), []);
  }),
);

test(
  "auto mode against a gate without a batch route pushes every envelope once, in order, and says so once",
  Effect.gen(function* () {
    const ig = yield* gate({ batchRoute: false });
    const c = yield* client(ig, { mode: "auto" });
    const first = yield* onRetryClock(c.send(texts(0, 4)));
    const second = yield* onRetryClock(c.send(texts(4, 4)));
    assert.ok(Exit.isSuccess(first.exit) && Exit.isSuccess(second.exit));
    assert.deepEqual(first.exit.value.decisions, Array(4).fill("ADMIT"));
    assert.deepEqual(second.exit.value.requests, 4, "one push per envelope, no batch tried again");
    const switched = [...first.logs, ...second.logs].filter((l) =>
      String(l.message).startsWith("IG has no batch route")
    );
    assert.equal(switched.length, 1);
    assert.deepEqual(yield* admitted(ig), ids(0, 8));
  }),
);

test(
  "auto mode against a gate with a batch route keeps sending batches",
  Effect.gen(function* () {
    const ig = yield* gate();
    const c = yield* client(ig, { mode: "auto" });
    const run = yield* onRetryClock(c.send(texts(0, 50)));
    assert.ok(Exit.isSuccess(run.exit));
    assert.equal(run.exit.value.requests, 1, "fifty envelopes, one request");
    assert.deepEqual(yield* admitted(ig), ids(0, 50));
  }),
);

test(
  "batch mode against a gate without a batch route is rejected with what to change",
  Effect.gen(function* () {
    const ig = yield* gate({ batchRoute: false });
    const c = yield* client(ig, { mode: "batch" });
    const run = yield* onRetryClock(c.send(texts(0, 3)));
    const failure = failureOf(run.exit);
    assert.equal(failure.reason, "IG_PUSH_REJECTED");
    assert.equal(failure.answer.status, 404);
    assert.match(failure.message, /no batch route; set WSP_COURIER_MODE=push/);
    assert.deepEqual(yield* admitted(ig), []);
  }),
);

test(
  "a batch larger than the gate's body limit goes as several requests in order; an envelope above it is refused ENVELOPE_TOO_LARGE and nothing is sent",
  Effect.gen(function* () {
    const ig = yield* gate();
    const sent = texts(0, 10);
    // Room for about three envelopes per body.
    const maxBodyBytes = Math.max(1024, sent[0].length * 3 + 40);
    const c = yield* client(ig, { maxBodyBytes });
    const decided = yield* c.send(sent);
    assert.deepEqual(decided.decisions, sent.map(() => "ADMIT"));
    assert.equal(decided.requests, Math.ceil(10 / 3));
    assert.deepEqual(yield* admitted(ig), ids(0, 10));

    const huge = JSON.stringify(envelope(10, { payload: { note: "x".repeat(maxBodyBytes) } }));
    const refused = failureOf(yield* Effect.exit(c.send([...texts(11, 2), huge])));
    assert.equal(refused.reason, "ENVELOPE_TOO_LARGE");
    assert.equal(refused.index, 2);
    assert.equal(refused.requests, 0);
    assert.match(refused.message, /max_body_bytes/);
    assert.deepEqual(yield* admitted(ig), ids(0, 10));
  }),
);

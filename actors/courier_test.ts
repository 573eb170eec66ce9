import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Cause, Deferred, Effect, Exit, Logger, type Scope } from "effect";
import { envelope, RUN } from "../ig/_testing.ts";
import { type RunningIg, type ServeOptions, startIg } from "../ig/server.ts";
import { WorldstreamError } from "../schemas/errors.ts";
import { IgClient } from "../stores/ig_client.ts";
import { onRetryClock } from "../tests/retry_clock.ts";
import {
  COURIER_DEFAULTS,
  type CourierOptions,
  type EmitBatch,
  type LaneStats,
  openLane,
} from "./courier.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

// Every gate of this file starts from a copy of one initialised PGlite folder (initdb costs
// seconds, a copy a fraction of one).
const TMP = await Deno.makeTempDir({ prefix: "courier_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);

const OUTPUT = "s3_event_stream_with_fraud_6B";
const API_KEY = "courier-test-key";

// Retry warnings are expected here; keep them off the test output.
const quiet = Logger.layer([Logger.make(() => undefined)]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(quiet))));
}

let gates = 0;

/** The reference gate over its own copy of the database, served until the scope closes. */
function gate(options: ServeOptions = {}) {
  return Effect.gen(function* () {
    const db = join(TMP, `ig-${++gates}`);
    cpSync(BARE_DB, db, { recursive: true });
    return yield* startIg({ db, ...options });
  });
}

/** A port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function laneOptions(baseUrl: string, overrides: Partial<CourierOptions> = {}): CourierOptions {
  return {
    ...COURIER_DEFAULTS,
    mode: "batch",
    endpoint: { baseUrl, timeoutMs: 5_000 },
    batchSize: 10,
    baseDelayMs: 1,
    maxDelayMs: 5,
    maxAttempts: 20,
    ...overrides,
  };
}

/** `count` batches of `size` admissible envelopes, numbered from 0; `last` is the batch index. */
function batches(count: number, size: number): Array<EmitBatch<number>> {
  return Array.from({ length: count }, (_, b) => {
    const ns = Array.from({ length: size }, (_, i) => b * size + i);
    return {
      envelopes: ns.map((n) => JSON.stringify(envelope(n))),
      eventIds: ns.map((n) => `ev-${n}`),
      dueMs: [],
      last: b,
    };
  });
}

const idsOf = (list: ReadonlyArray<EmitBatch<number>>) => list.flatMap((b) => b.eventIds);

interface Delivery {
  readonly exit: Exit.Exit<LaneStats, WorldstreamError>;
  /** Batches in the order onDelivered saw them. */
  readonly acknowledged: ReadonlyArray<EmitBatch<number>>;
  readonly stats: LaneStats;
}

/** Sends every batch through one lane with a gate client of its own, then finishes it. */
function deliver(options: CourierOptions, list: ReadonlyArray<EmitBatch<number>>) {
  return deliverWith(options, list).pipe(Effect.provide(IgClient.layer(options)));
}

/** Sends every batch through one lane using the IgClient in context, then finishes it. */
function deliverWith(options: CourierOptions, list: ReadonlyArray<EmitBatch<number>>) {
  return Effect.scoped(Effect.gen(function* () {
    const acknowledged: Array<EmitBatch<number>> = [];
    const l = yield* openLane<number>(
      options,
      OUTPUT,
      (batch) => Effect.sync(() => void acknowledged.push(batch)),
    );
    const exit = yield* Effect.forEach(list, (b) => l.send(b)).pipe(
      Effect.andThen(l.finish),
      Effect.exit,
    );
    return { exit, acknowledged, stats: yield* l.stats } satisfies Delivery;
  }));
}

function reasonOf(exit: Exit.Exit<unknown, unknown>): string | undefined {
  if (Exit.isSuccess(exit)) return undefined;
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error;
  return error instanceof WorldstreamError ? error.reason : Cause.pretty(exit.cause);
}

function headers(apiKey?: string): HeadersInit {
  return apiKey ? { "X-IG-Api-Key": apiKey } : {};
}

/** The gate's counts for the test run. */
function runCounts(ig: RunningIg, apiKey?: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/stats`, { headers: headers(apiKey) });
    const all = await res.json() as Record<string, Record<string, number>>;
    return all[RUN] ?? { admitted: 0, duplicate: 0, quarantined: 0 };
  });
}

/** Event ids the gate admitted for the test run, in admission order. */
function admittedIds(ig: RunningIg) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/admitted?platform_run_id=${RUN}`);
    const text = await res.text();
    return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).event_id as string);
  });
}

// ---------------------------------------------------------------------------------------------
// Delivery

test(
  "a lane delivers batches to the gate in order and acknowledges each once, in order",
  Effect.gen(function* () {
    // A slow gate: batches pile up in the queue meanwhile and go out merged.
    const ig = yield* gate({ faults: { latencyMs: 20 } });
    const sent = batches(20, 10);
    const { exit, acknowledged, stats } = yield* deliver(
      laneOptions(ig.url, { batchSize: 100 }),
      sent,
    );
    assert.equal(reasonOf(exit), undefined);
    assert.deepEqual(idsOf(acknowledged), idsOf(sent), "every event acknowledged once, in order");
    const lasts = acknowledged.map((b) => b.last);
    assert.deepEqual(lasts, [...lasts].sort((a, b) => a - b));
    assert.equal(lasts.at(-1), 19, "the last acknowledgement names the last batch");
    assert.ok(stats.requests < sent.length, `merged: ${stats.requests} requests`);
    assert.equal(stats.admitted, 200);
    assert.deepEqual(yield* admittedIds(ig), idsOf(sent), "the gate admitted them in order");
    assert.deepEqual(yield* runCounts(ig), { admitted: 200, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "a 503 burst is retried until everything is delivered, still in order",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { failRate: 0.5, failStatus: 503, seed: 11 } });
    const sent = batches(20, 10);
    const { exit, acknowledged, stats } = yield* deliver(laneOptions(ig.url), sent);
    assert.equal(reasonOf(exit), undefined);
    assert.ok(stats.retries > 0, "some requests were retried");
    assert.equal(stats.requests, stats.retries + acknowledged.length);
    assert.deepEqual(idsOf(acknowledged), idsOf(sent));
    assert.deepEqual(yield* admittedIds(ig), idsOf(sent));
    assert.deepEqual(yield* runCounts(ig), { admitted: 200, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "with four requests in flight, acknowledgements stay a contiguous prefix while retries finish out of order",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { failRate: 0.4, failStatus: 503, seed: 5 } });
    const sent = batches(30, 5);
    const options = laneOptions(ig.url, { maxInFlight: 4, batchSize: 5, baseDelayMs: 5 });
    const { exit, acknowledged, stats } = yield* deliver(options, sent);
    assert.equal(reasonOf(exit), undefined);
    assert.ok(stats.retries > 0);
    assert.deepEqual(acknowledged.map((b) => b.last), sent.map((b) => b.last));
    assert.deepEqual((yield* admittedIds(ig)).sort(), idsOf(sent).sort());
    assert.deepEqual(yield* runCounts(ig), { admitted: 150, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "a 429 is retried after its Retry-After, cut to the cap (on the TestClock)",
  Effect.gen(function* () {
    // The gate asks for 1 s; the lane waits the 60 ms cap instead (its own jitter is below 5 ms).
    const ig = yield* gate({ faults: { failRate: 0.5, failStatus: 429, seed: 3 } });
    const sent = batches(10, 5);
    const run = yield* onRetryClock(
      deliver(laneOptions(ig.url, { batchSize: 5, retryAfterCapMs: 60 }), sent),
    );
    assert.ok(Exit.isSuccess(run.exit));
    const { exit, stats } = run.exit.value;
    assert.equal(reasonOf(exit), undefined);
    assert.ok(stats.retries >= 2, `retries: ${stats.retries}`);
    assert.deepEqual(run.waits, Array(stats.retries).fill(60), "every wait is the capped 1 s");
    assert.equal(run.elapsedMs, stats.retries * 60);
    assert.deepEqual(yield* admittedIds(ig), idsOf(sent));
  }),
);

test(
  "an unreachable gate fails the lane with IG_PUSH_RETRY_EXHAUSTED after maxAttempts",
  Effect.gen(function* () {
    const { exit, acknowledged, stats } = yield* deliver(
      laneOptions(`http://127.0.0.1:${closedPort()}`, { maxAttempts: 3 }),
      batches(3, 5),
    );
    assert.equal(reasonOf(exit), "IG_PUSH_RETRY_EXHAUSTED");
    assert.equal(stats.requests, 3, "three attempts of the first batch, nothing after it");
    assert.deepEqual(acknowledged, []);
  }),
);

test(
  "a terminal 4xx fails the lane with IG_PUSH_REJECTED at once, and nothing is acknowledged",
  Effect.gen(function* () {
    const ig = yield* gate({ apiKey: API_KEY });
    const { exit, acknowledged, stats } = yield* deliver(laneOptions(ig.url), batches(3, 5));
    assert.equal(reasonOf(exit), "IG_PUSH_REJECTED");
    assert.equal(stats.retries, 0, "a 401 is never retried");
    assert.deepEqual(acknowledged, []);
    assert.deepEqual(yield* runCounts(ig, API_KEY), { admitted: 0, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "after a rejected batch nothing later is sent, even before the lane's owner closes it",
  Effect.gen(function* () {
    const ig = yield* gate();
    const sent = batches(12, 5);
    // The gate answers 400 to a body that is not JSON.
    sent[4] = { ...sent[4], envelopes: ["{not json", ...sent[4].envelopes.slice(1)] };
    const acknowledged: Array<number> = [];
    const lane = yield* openLane<number>(
      laneOptions(ig.url, { batchSize: 5, bufferEvents: 10 }),
      OUTPUT,
      (batch) => Effect.sync(() => void acknowledged.push(batch.last)),
    ).pipe(Effect.provide(IgClient.layer(laneOptions(ig.url))));
    // Like a streamer: send until the lane refuses, then look before closing it.
    let refused: string | undefined;
    for (const batch of sent) {
      const exit = yield* Effect.exit(lane.send(batch));
      if (Exit.isFailure(exit)) {
        refused = reasonOf(exit);
        break;
      }
    }
    assert.equal(refused, "IG_PUSH_REJECTED");
    for (let i = 0; i < 20; i++) yield* Effect.yieldNow;
    assert.equal((yield* lane.stats).requests, 5, "batches 0 to 4, one request each");
    assert.equal(reasonOf(yield* Effect.exit(lane.finish)), "IG_PUSH_REJECTED");
    assert.deepEqual(acknowledged, [0, 1, 2, 3]);
    assert.deepEqual(yield* admittedIds(ig), idsOf(sent.slice(0, 4)));
  }),
);

test(
  "a lane that has failed refuses further batches",
  Effect.gen(function* () {
    const ig = yield* gate({ apiKey: API_KEY });
    const lane = yield* openLane<number>(laneOptions(ig.url), OUTPUT, () => Effect.void).pipe(
      Effect.provide(IgClient.layer(laneOptions(ig.url))),
    );
    const [first, second] = batches(2, 5);
    yield* lane.send(first);
    assert.equal(reasonOf(yield* Effect.exit(lane.finish)), "IG_PUSH_REJECTED");
    assert.equal(reasonOf(yield* Effect.exit(lane.send(second))), "IG_PUSH_REJECTED");
  }),
);

test(
  "push mode with four pushes at a time delivers every event, batch after batch",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { failRate: 0.2, failStatus: 503, seed: 9 } });
    const sent = batches(8, 20);
    const { exit, acknowledged, stats } = yield* deliver(
      laneOptions(ig.url, { mode: "push", pushConcurrency: 4, batchSize: 20 }),
      sent,
    );
    assert.equal(reasonOf(exit), undefined);
    assert.equal(stats.admitted, 160);
    assert.deepEqual(acknowledged.map((b) => b.last), sent.map((b) => b.last));
    // Within a batch pushes race; batches themselves go one after another.
    const batchOf = (id: string) => Math.floor(Number(id.slice(3)) / 20);
    const admitted = yield* admittedIds(ig);
    assert.deepEqual([...admitted].sort(), idsOf(sent).sort());
    const order = admitted.map(batchOf);
    assert.deepEqual(order, [...order].sort((a, b) => a - b));
    assert.deepEqual(yield* runCounts(ig), { admitted: 160, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "auto mode: two lanes against a gate without a batch route switch to pushes once, losing and repeating nothing",
  Effect.gen(function* () {
    const ig = yield* gate({ batchRoute: false });
    const options = laneOptions(ig.url, { mode: "auto", batchSize: 10 });
    const sentA = batches(10, 10);
    const sentB = batches(20, 10).slice(10);
    const run = yield* onRetryClock(
      Effect.all([deliverWith(options, sentA), deliverWith(options, sentB)], {
        concurrency: 2,
      }).pipe(
        Effect.provide(IgClient.layer(options)),
      ),
    );
    assert.ok(Exit.isSuccess(run.exit), String(run.exit));
    for (
      const [{ exit, acknowledged, stats }, sent] of [
        [run.exit.value[0], sentA],
        [run.exit.value[1], sentB],
      ] as const
    ) {
      assert.equal(reasonOf(exit), undefined);
      assert.deepEqual(idsOf(acknowledged), idsOf(sent), "every event acknowledged once, in order");
      assert.equal(stats.admitted, 100);
    }
    const switched = run.logs.filter((l) => String(l.message).startsWith("IG has no batch route"));
    assert.equal(switched.length, 1, "the switch is logged once");
    const admitted = yield* admittedIds(ig);
    const inA = new Set(idsOf(sentA));
    assert.deepEqual(admitted.filter((id) => inA.has(id)), idsOf(sentA), "lane A in order");
    assert.deepEqual(admitted.filter((id) => !inA.has(id)), idsOf(sentB), "lane B in order");
    assert.deepEqual(yield* runCounts(ig), { admitted: 200, duplicate: 0, quarantined: 0 });
  }),
);

test(
  "connection resets after the gate decided end with every event admitted exactly once",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { resetRate: 0.3, seed: 4 } });
    const sent = batches(20, 10);
    const { exit, acknowledged, stats } = yield* deliver(laneOptions(ig.url), sent);
    assert.equal(reasonOf(exit), undefined);
    assert.deepEqual(idsOf(acknowledged), idsOf(sent));
    // A lost answer is resent, by the lane or by fetch itself on a pooled connection.
    const counts = yield* runCounts(ig);
    assert.equal(counts.admitted, 200, "each distinct event admitted once");
    assert.ok(counts.duplicate > 0, "the gate saw resent batches it had already decided");
    assert.equal(stats.admitted + stats.duplicate, 200, "the lane counts final answers only");
    assert.deepEqual(yield* admittedIds(ig), idsOf(sent));
  }),
);

test(
  "the ack window counts events, not batches: small paced batches keep flowing while a checkpoint waits on a slow fsync",
  Effect.gen(function* () {
    const ig = yield* gate();
    // Window: (max in flight 1 + 1) × batch size 10 = 20 events ahead of the durable checkpoint.
    const options = laneOptions(ig.url, { batchSize: 10, maxInFlight: 1 });
    const sent = batches(10, 2);
    const durable = yield* Deferred.make<void>();
    yield* Effect.scoped(Effect.gen(function* () {
      const l = yield* openLane<number>(options, OUTPUT, {
        // The first checkpoint is not durable until the test says so: a very slow fsync.
        onDelivered: () => Deferred.await(durable),
      });
      // One small batch at a time, as a paced stream hands them over: each reaches the gate
      // though none is acknowledged, until 20 events are out (a window of 2 batches stopped at 4).
      for (const [i, b] of sent.entries()) {
        yield* l.send(b);
        const deadline = Date.now() + 10_000;
        while ((yield* runCounts(ig)).admitted < 2 * (i + 1)) {
          assert.ok(Date.now() < deadline, `batch ${i} never reached the gate`);
          yield* Effect.sleep("5 millis");
        }
      }
      assert.equal((yield* runCounts(ig)).admitted, 20);
      yield* Deferred.succeed(durable, undefined);
      yield* l.finish;
    })).pipe(Effect.provide(IgClient.layer(options)));
    assert.deepEqual(yield* admittedIds(ig), idsOf(sent));
  }),
);

test(
  "a stop request ends a push lane after the requests already out: queued batches are dropped, not pushed",
  Effect.gen(function* () {
    const ig = yield* gate({ faults: { latencyMs: 5 } });
    const options = laneOptions(ig.url, { mode: "push", batchSize: 10, maxInFlight: 1 });
    const sent = batches(50, 10);
    const stop = yield* Deferred.make<void>();
    const acknowledged: Array<EmitBatch<number>> = [];
    const stats = yield* Effect.scoped(Effect.gen(function* () {
      const l = yield* openLane<number>(options, OUTPUT, {
        // The operator stops the run as the first batch is acknowledged.
        onDelivered: (batch) =>
          Effect.sync(() => void acknowledged.push(batch)).pipe(
            Effect.andThen(Deferred.succeed(stop, undefined)),
          ),
        stop,
      });
      yield* Effect.forEach(sent, (b) => l.send(b));
      return yield* l.finish;
    })).pipe(Effect.provide(IgClient.layer(options)));
    // Only the batch acknowledged first and what was already out (at most max in flight + 1
    // batches ahead of the acknowledgement) reach the gate; the other ~47 batches are left for the
    // next start, which reads them again after the checkpoint.
    assert.ok(acknowledged.length >= 1 && acknowledged.length <= 3, `${acknowledged.length} acked`);
    assert.deepEqual(
      acknowledged.map((b) => b.last),
      acknowledged.map((_, i) => i),
      "the acknowledged batches are a prefix of what was sent",
    );
    assert.deepEqual(
      yield* admittedIds(ig),
      idsOf(acknowledged),
      "nothing unacknowledged was sent",
    );
    assert.equal(stats.admitted, acknowledged.length * 10);
    // A send after the stop is dropped at once instead of waiting for room.
    assert.deepEqual(yield* admittedIds(ig), idsOf(acknowledged));
  }),
);

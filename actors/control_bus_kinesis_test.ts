import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer, Logger, References, type Scope } from "effect";
import { kinesisBusOf, loadProfile, type Profile } from "../core/profile.ts";
import { readyContext } from "../core/ready.ts";
import { publishReady } from "../actions/publish_ready.ts";
import { startIg } from "../ig/server.ts";
import { KinesisBus } from "../stores/control_bus_kinesis.ts";
import {
  copyDb,
  fileTempDir,
  freePort,
  gateCounts,
  makeWorld,
  pgliteTemplate,
  scopedTempDir,
} from "../tests/_testing.ts";
import {
  agedIterator,
  createStream,
  type Kinesalite,
  KINESIS_ENV,
  kinesisProfile,
  listShards,
  mergeShards,
  putRecord,
  splitShard,
  startKinesalite,
} from "../tests/kinesalite.ts";
import { BusPositions } from "./bus_positions.ts";
import { ControlBus } from "./control_bus.ts";
import { kinesisControlBus, type KinesisListenerOptions } from "./control_bus_kinesis.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { runConfigOf } from "./run_config.ts";
import { coreLayer } from "./runtime.ts";

// The Kinesis listener in process, against kinesalite on loopback and the reference gate: what
// happens per shard (expired iterators, throttling, deferral, resharding) and what is saved.
// Credentials come from the environment, as in production.
for (const [k, v] of Object.entries(KINESIS_ENV)) Deno.env.set(k, v);

const TMP = await fileTempDir("control_bus_kinesis_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE, ROWS] = await Promise.all([
  pgliteTemplate(join(TMP, "bare")),
  makeWorld(WORLD, 200),
]);
const TRAFFIC = "s3_event_stream_with_fraud_6B";
const CONTEXT = "arrival_events_5B";
const EVENTS = ROWS[TRAFFIC] + ROWS[CONTEXT];

let logged: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = [];
const capture = Logger.layer([
  Logger.make((o) => {
    const [first] = o.message as ReadonlyArray<unknown>;
    logged.push({
      message: String(first),
      annotations: Object.fromEntries(
        Object.entries(o.fiber.getRef(References.CurrentLogAnnotations) ?? {}),
      ),
    });
  }),
]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => {
    logged = [];
    return Effect.runPromise(Effect.scoped(body).pipe(Effect.provide(capture)));
  });
}

let sites = 0;

/** A stream and a profile of their own (local, so the runs root makes its own receipt key). */
function site(k: Kinesalite, shards = 1, endpoint?: string) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, `site-${++sites}`);
    const stream = `fp-control-${sites}`;
    yield* Effect.promise(() => createStream(k, stream, shards));
    const path = kinesisProfile(join(dir, "kinesis.yaml"), {
      endpoint: endpoint ?? k.endpoint,
      stream,
      runsRoot: join(dir, "runs"),
      pgliteDir: copyDb(TEMPLATE, join(dir, "pg")),
      igUrl: "http://127.0.0.1:1",
    });
    const loaded = yield* loadProfile(path, { WSP_COURIER_MODE: "batch" });
    const profile: Profile = {
      ...loaded,
      profile_id: "local",
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [CONTEXT] },
    };
    return { dir, stream, profile, igDb: copyDb(TEMPLATE, join(dir, "ig")) };
  });
}

function listener(
  profile: Profile,
  igUrl: string,
  options: Partial<KinesisListenerOptions> = {},
) {
  return kinesisControlBus({
    context: readyContext(profile),
    pollIntervalMs: 50,
    deferRetryMs: 100,
    ...options,
  }).pipe(
    Layer.provideMerge(Layer.merge(KinesisBus.layer(kinesisBusOf(profile)!), BusPositions.layer)),
    Layer.provideMerge(coreLayer(runConfigOf(profile, { igUrl, speedup: 0 }))),
  );
}

function eventually<A, E, R>(what: string, probe: Effect.Effect<A | undefined, E, R>) {
  return Effect.gen(function* () {
    const deadline = performance.now() + 30_000;
    while (true) {
      const value = yield* probe;
      if (value !== undefined) return value;
      if (performance.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
      yield* Effect.sleep(20);
    }
  });
}

let runs = 0;
function publish(profile: Profile) {
  return publishReady({
    engineRunRoot: WORLD,
    profile,
    platformRunId: `platform_20260401T0000${String(++runs).padStart(2, "0")}Z`,
  });
}

test(
  "an expired shard iterator is re-acquired after the last settled record and the READY behind it is streamed",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k);
    const ig = yield* startIg({ db: s.igDb });
    const ready = yield* publish(s.profile);
    const shard = ready.shard_id!;
    const aged = yield* Effect.promise(() => agedIterator(k, s.stream, shard, 6 * 60_000));

    // What Kinesis answers to it.
    const refused = yield* Effect.flip(
      Effect.gen(function* () {
        return yield* (yield* KinesisBus).records(shard, aged, 10);
      }).pipe(Effect.provide(KinesisBus.layer(kinesisBusOf(s.profile)!))),
    );
    assert.equal(refused.reason, "CONTROL_BUS_ITERATOR_EXPIRED");
    assert.match(refused.message, new RegExp(s.stream));

    const settled = yield* Effect.gen(function* () {
      return yield* (yield* ControlBus).settled(ready.message_id);
    }).pipe(
      Effect.provide(listener(s.profile, ig.url, { startIterators: new Map([[shard, aged]]) })),
    );
    assert.equal(settled.status, "STREAMED", JSON.stringify(settled));
    assert.equal((yield* gateCounts(ig, ready.platform_run_id)).admitted, EVENTS);
    const expired = logged.find((l) => l.message.startsWith("shard iterator expired"));
    assert.equal(expired?.annotations.reason, "CONTROL_BUS_ITERATOR_EXPIRED");
    assert.equal(expired?.annotations.shard_id, shard);
  }),
);

test(
  "a READY deferred while the gate is down holds its shard: no position is saved past it, the next READY waits behind it, both stream once the gate is up",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k);
    const port = freePort();
    const first = yield* publish(s.profile);
    const second = yield* publish(s.profile);
    assert.equal(first.shard_id, second.shard_id);
    const outcome = yield* Effect.gen(function* () {
      const ledger = yield* ReadyLedger;
      const positions = yield* BusPositions;
      const deferred = yield* eventually(
        "a deferral",
        ledger.latest(first.message_id).pipe(
          Effect.map((l) => l?.status === "DEFERRED_DOWNSTREAM_NOT_READY" ? l : undefined),
        ),
      );
      // Deferred again at least once more: the shard was read again from the same place.
      yield* eventually(
        "a second deferral",
        ledger.latest(first.message_id).pipe(
          Effect.map((l) => (l?.attempts ?? 0) >= 2 ? l : undefined),
        ),
      );
      const whileDown = (yield* positions.load(s.stream)).get(first.shard_id!);
      const secondWhileDown = yield* ledger.latest(second.message_id);
      const ig = yield* startIg({ db: s.igDb, port });
      const bus = yield* ControlBus;
      const a = yield* bus.settled(first.message_id);
      const b = yield* bus.settled(second.message_id);
      const after = (yield* positions.load(s.stream)).get(first.shard_id!);
      return { deferred, whileDown, secondWhileDown, a, b, after, ig };
    }).pipe(Effect.provide(listener(s.profile, `http://127.0.0.1:${port}`)));
    assert.equal(outcome.deferred.reason, "IG_UNREACHABLE");
    assert.equal(outcome.whileDown?.sequenceNumber, undefined, "no position past the deferral");
    assert.equal(outcome.secondWhileDown, undefined, "the second READY waited behind the first");
    assert.equal(outcome.a.status, "STREAMED");
    assert.equal(outcome.b.status, "STREAMED");
    assert.equal(outcome.after?.sequenceNumber, second.sequence_number);
    assert.equal((yield* gateCounts(outcome.ig, second.platform_run_id)).admitted, EVENTS);
  }),
);

test(
  "a split shard is read to its end before its children, and merged parents before the merged shard",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k);
    const ig = yield* startIg({ db: s.igDb });
    // More records on the parent than one poll reads (page limit 1, 20 pages a poll), so only
    // the parents-first rule keeps the child's READY behind the parent's.
    for (let i = 0; i < 25; i++) {
      yield* Effect.promise(() => putRecord(k, s.stream, `junk ${i}`, `key-${i}`));
    }
    const a = yield* publish(s.profile);
    const [parent] = yield* Effect.promise(() => listShards(k, s.stream));
    yield* Effect.promise(() => splitShard(k, s.stream, parent.shardId));
    const b = yield* publish(s.profile);
    const children = (yield* Effect.promise(() => listShards(k, s.stream))).filter((x) =>
      x.parent === parent.shardId
    );
    assert.equal(children.length, 2);
    assert.ok(children.some((c) => c.shardId === b.shard_id), "B is on a child");
    yield* Effect.promise(() => mergeShards(k, s.stream, children[0].shardId, children[1].shardId));
    const c = yield* publish(s.profile);
    const merged = (yield* Effect.promise(() => listShards(k, s.stream))).find((x) =>
      x.shardId === c.shard_id
    );
    assert.ok(merged?.parent && merged.adjacentParent, "C is on the merged shard");

    const seen = yield* Effect.gen(function* () {
      const bus = yield* ControlBus;
      const ledger = yield* ReadyLedger;
      const order = [];
      for (const r of [a, b, c]) {
        assert.equal((yield* bus.settled(r.message_id)).status, "STREAMED");
        order.push((yield* ledger.latest(r.message_id))!.recorded_at.getTime());
      }
      const positions = yield* (yield* BusPositions).load(s.stream);
      return { order, positions };
    }).pipe(Effect.provide(listener(s.profile, ig.url, { pageLimit: 1 })));
    assert.ok(seen.order[0] < seen.order[1] && seen.order[1] < seen.order[2], `${seen.order}`);
    for (const shard of [parent.shardId, ...children.map((x) => x.shardId)]) {
      assert.equal(seen.positions.get(shard)?.finished, true, `${shard} finished`);
    }
    assert.equal(seen.positions.get(c.shard_id!)?.sequenceNumber, c.sequence_number);
  }),
);

test(
  "a throttled shard read backs off with CONTROL_BUS_THROTTLED and reads on",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    // A proxy in front of kinesalite that answers the first GetRecords calls as Kinesis does
    // when a shard's read limit is exceeded (kinesalite itself never throttles).
    let throttle = 4;
    const proxy = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
          const target = req.headers.get("x-amz-target") ?? "";
          if (target.endsWith(".GetRecords") && throttle > 0) {
            throttle -= 1;
            await req.arrayBuffer();
            return new Response(
              JSON.stringify({
                __type: "ProvisionedThroughputExceededException",
                message: "Rate exceeded for shard",
              }),
              { status: 400, headers: { "content-type": "application/x-amz-json-1.1" } },
            );
          }
          const url = new URL(req.url);
          const res = await fetch(`${k.endpoint}${url.pathname}`, {
            method: req.method,
            headers: req.headers,
            body: await req.arrayBuffer(),
          });
          return new Response(await res.arrayBuffer(), {
            status: res.status,
            headers: res.headers,
          });
        })
      ),
      (server) => Effect.promise(() => server.shutdown()),
    );
    const s = yield* site(k, 1, `http://127.0.0.1:${proxy.addr.port}`);
    const ig = yield* startIg({ db: s.igDb });
    const ready = yield* publish(s.profile);
    const settled = yield* Effect.gen(function* () {
      return yield* (yield* ControlBus).settled(ready.message_id);
    }).pipe(Effect.provide(listener(s.profile, ig.url)));
    assert.equal(settled.status, "STREAMED");
    assert.equal(throttle, 0, "every throttled answer was seen");
    const backoffs = logged.filter((l) => l.message.startsWith("shard read throttled"));
    assert.ok(backoffs.length >= 1, "backed off");
    assert.equal(backoffs[0].annotations.reason, "CONTROL_BUS_THROTTLED");
  }),
);

test(
  "a Kinesis endpoint that does not answer is CONTROL_BUS_UNAVAILABLE naming the stream",
  Effect.gen(function* () {
    const port = freePort();
    const error = yield* Effect.flip(
      Effect.gen(function* () {
        return yield* (yield* KinesisBus).check;
      }).pipe(
        Effect.provide(
          KinesisBus.layer({
            stream: "fp-control",
            region: "us-east-1",
            endpoint: `http://127.0.0.1:${port}`,
          }),
        ),
      ),
    );
    assert.equal(error.reason, "CONTROL_BUS_UNAVAILABLE");
    assert.match(error.message, new RegExp(`fp-control at http://127.0.0.1:${port}`));
  }),
);

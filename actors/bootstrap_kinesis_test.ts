/**
 * The Kinesis control bus stream as a bootstrap dependency, against kinesalite on loopback: it is
 * looked at with DescribeStreamSummary; a missing stream makes `edge` mode start degraded and
 * `backend` mode wait, then fail CONTROL_BUS_STREAM_MISSING naming the stream.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Fiber, type Scope } from "effect";
import { loadProfile, type Profile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { failure } from "../stores/postgres_testing.ts";
import { copyDb, fileTempDir, freePort, pgliteTemplate } from "../tests/_testing.ts";
import {
  createStream,
  type Kinesalite,
  KINESIS_ENV,
  kinesisProfile,
  startKinesalite,
} from "../tests/kinesalite.ts";
import { bootstrap, checkDependencies } from "./bootstrap.ts";
import { Health } from "./health.ts";

const TMP = await fileTempDir("bootstrap_kinesis_test_");
const TEMPLATE = await pgliteTemplate(join(TMP, "bare"));
// The SDK reads credentials and the region from the environment, as in production.
for (const [k, v] of Object.entries(KINESIS_ENV)) Deno.env.set(k, v);

let sites = 0;

/** A loaded profile whose control bus is `stream` on kinesalite, and a gate that answers. */
function site(k: Kinesalite, stream: string) {
  return Effect.gen(function* () {
    const dir = join(TMP, `site-${++sites}`);
    yield* Effect.promise(() => Deno.mkdir(dir, { recursive: true }));
    const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
    const path = kinesisProfile(join(dir, "kinesis.yaml"), {
      endpoint: k.endpoint,
      stream,
      runsRoot: join(dir, "runs"),
      pgliteDir: join(dir, "pg"),
      igUrl: ig.url,
    });
    const profile: Profile = yield* loadProfile(path, {});
    return { profile, ig: { baseUrl: ig.url, timeoutMs: 2000 } };
  });
}

const busOf = (report: ReadonlyArray<{ name: string }>) =>
  report.find((d) => d.name === "control_bus") as
    | { ok: boolean; detail: string; reason?: string }
    | undefined;

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

test(
  "a stream that exists is a healthy control bus, named in the report",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    yield* Effect.promise(() => createStream(k, "fp-present", 1));
    const s = yield* site(k, "fp-present");
    const report = yield* bootstrap(s.profile, s.ig, {
      mode: "backend",
      pollIntervalMs: 50,
      timeoutMs: 5000,
    });
    assert.deepEqual(busOf(report), {
      name: "control_bus",
      ok: true,
      detail: `Kinesis stream fp-present at ${k.endpoint}`,
    });
    assert.ok(report.every((d) => d.ok), JSON.stringify(report));
  }),
);

test(
  "a missing stream: edge mode starts at once, degraded, naming it; backend mode waits its timeout, then fails CONTROL_BUS_STREAM_MISSING naming it",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k, "fp-missing");
    const health = yield* Health.make;
    const edge = yield* bootstrap(s.profile, s.ig, {
      mode: "edge",
      pollIntervalMs: 60_000,
      timeoutMs: 1,
    }).pipe(Effect.provideService(Health, health));
    const bus = busOf(edge);
    assert.equal(bus?.ok, false);
    assert.equal(bus?.reason, "CONTROL_BUS_STREAM_MISSING");
    assert.match(
      bus?.detail ?? "",
      /Kinesis stream fp-missing at http:\/\/127\.0\.0\.1:\d+ does not exist/,
    );
    const readiness = yield* health.readiness;
    assert.equal(readiness.status, "degraded", JSON.stringify(readiness));
    assert.ok(
      readiness.problems.some((p) => p.includes("fp-missing")),
      readiness.problems.join("\n"),
    );

    const started = performance.now();
    const error = yield* failure(bootstrap(s.profile, s.ig, {
      mode: "backend",
      pollIntervalMs: 100,
      timeoutMs: 600,
    }));
    assert.equal(error.reason, "CONTROL_BUS_STREAM_MISSING");
    assert.match(error.message, /Kinesis stream fp-missing at .* does not exist/);
    assert.match(error.message, /down: control_bus/);
    assert.ok(performance.now() - started >= 600, "it waited for the timeout first");
  }),
);

test(
  "backend mode waits for a stream being made and starts once it exists",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k, "fp-later");
    const waiting = yield* Effect.forkChild(
      bootstrap(s.profile, s.ig, { mode: "backend", pollIntervalMs: 100, timeoutMs: 60_000 }),
    );
    const before = yield* checkDependencies(s.profile, s.ig);
    assert.equal(busOf(before)?.ok, false);
    yield* Effect.promise(() => createStream(k, "fp-later", 2));
    const report = yield* Fiber.join(waiting);
    assert.equal(busOf(report)?.ok, true);
  }),
);

test(
  "a Kinesis endpoint that does not answer is CONTROL_BUS_UNAVAILABLE, and backend mode fails with it",
  Effect.gen(function* () {
    const k = yield* startKinesalite();
    const s = yield* site(k, "fp-nowhere");
    const closed = `http://127.0.0.1:${freePort()}`;
    const profile: Profile = {
      ...s.profile,
      wiring: {
        ...s.profile.wiring,
        control_bus: { ...s.profile.wiring.control_bus, endpoint_url: closed },
      },
    };
    const report = yield* checkDependencies(profile, s.ig);
    assert.equal(busOf(report)?.reason, "CONTROL_BUS_UNAVAILABLE");
    const error = yield* failure(bootstrap(profile, s.ig, {
      mode: "backend",
      pollIntervalMs: 100,
      timeoutMs: 300,
    }));
    assert.equal(error.reason, "CONTROL_BUS_UNAVAILABLE");
    assert.match(error.message, /fp-nowhere/);
  }),
);

import assert from "node:assert/strict";
import { Effect } from "effect";
import { type DependencyHealth, Health } from "../../actors/health.ts";
import { healthApp } from "./health.ts";
import { serveAdmin } from "../server.ts";

const DEPENDENCIES: ReadonlyArray<DependencyHealth> = [
  { name: "postgres", ok: true, detail: "127.0.0.1:5432" },
  { name: "ig", ok: true, detail: "http://127.0.0.1:8081" },
];

function healthWith(dependencies: ReadonlyArray<DependencyHealth>, started = true) {
  return Effect.gen(function* () {
    const health = yield* Health.make;
    yield* health.reportDependencies(dependencies);
    if (started) yield* health.markStarted;
    yield* health.watchWal(Effect.succeed({
      pending_records: 12,
      pending_bytes: 3456,
      quota_bytes: 1 << 20,
      drain_failures: 0,
      last_drain_error: null,
      last_drain_reason: null,
      last_drain_wrote_at: null,
    }));
    return health;
  });
}

Deno.test("GET /healthz answers 200 whatever the dependencies", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const app = healthApp(yield* healthWith([], false));
    const res = yield* Effect.promise(async () => await app.request("/healthz"));
    assert.equal(res.status, 200);
    assert.deepEqual(yield* Effect.promise(() => res.json()), { status: "alive" });
  })));
});

Deno.test("GET /readyz is 200 ready with the dependencies and the WAL backlog", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const app = healthApp(yield* healthWith(DEPENDENCIES));
    const res = yield* Effect.promise(async () => await app.request("/readyz"));
    assert.equal(res.status, 200);
    assert.deepEqual(yield* Effect.promise(() => res.json()), {
      status: "ready",
      problems: [],
      dependencies: DEPENDENCIES,
      wal: { pending_records: 12, pending_bytes: 3456, last_drain_error: null },
    });
  })));
});

Deno.test("GET /readyz is 200 degraded while Postgres is down, and 503 down while the IG is", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const pgDown = healthApp(
      yield* healthWith(DEPENDENCIES.map((d) => d.name === "postgres" ? { ...d, ok: false } : d)),
    );
    const degraded = yield* Effect.promise(async () => await pgDown.request("/readyz"));
    assert.equal(degraded.status, 200);
    assert.equal((yield* Effect.promise(() => degraded.json())).status, "degraded");

    const igDown = healthApp(
      yield* healthWith(DEPENDENCIES.map((d) => d.name === "ig" ? { ...d, ok: false } : d)),
    );
    const down = yield* Effect.promise(async () => await igDown.request("/readyz"));
    assert.equal(down.status, 503);
    const body = yield* Effect.promise(() => down.json());
    assert.equal(body.status, "down");
    assert.match(body.problems.join("\n"), /ig unreachable/);
  })));
});

Deno.test("served for real on loopback, both routes answer, and closing the scope stops the server", async () => {
  let url = "";
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const admin = yield* serveAdmin(healthApp(yield* healthWith(DEPENDENCIES)), { port: 0 });
    url = admin.url;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    for (const [path, status] of [["/healthz", 200], ["/readyz", 200], ["/nope", 404]] as const) {
      const res = yield* Effect.promise(() => fetch(`${url}${path}`));
      yield* Effect.promise(() => res.body?.cancel() ?? Promise.resolve());
      assert.equal(res.status, status, path);
    }
  })));
  await assert.rejects(() => fetch(`${url}/healthz`));
});

Deno.test("an admin port out of range is refused", async () => {
  const exit = await Effect.runPromiseExit(Effect.scoped(Effect.gen(function* () {
    return yield* serveAdmin(healthApp(yield* Health.make), { port: 70000 });
  })));
  assert.equal(exit._tag, "Failure");
});

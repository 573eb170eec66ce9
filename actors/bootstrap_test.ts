import assert from "node:assert/strict";
import { Effect, Exit, Fiber } from "effect";
import { loadProfile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { bootstrap, checkDependencies } from "./bootstrap.ts";
import { Health } from "./health.ts";

const base = await Deno.makeTempDir({ prefix: "ws-bootstrap-" });
const profile = await Effect.runPromise(loadProfile("local", {
  WORLDSTREAM_RUNS_ROOT: base,
  CONTROL_BUS_ROOT: `${base}/bus`,
}));

/** A loopback port nothing listens on (bound, read, released). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const endpoint = (port: number) => ({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 1000 });

Deno.test("backend mode gives up with BOOTSTRAP_TIMEOUT naming the dependency that stayed down", async () => {
  const exit = await Effect.runPromiseExit(Effect.scoped(
    bootstrap(profile, endpoint(freePort()), {
      mode: "backend",
      pollIntervalMs: 50,
      timeoutMs: 200,
    }),
  ));
  assert.ok(Exit.isFailure(exit));
  const error = exit.cause.reasons.find((r) => r._tag === "Fail");
  const e = (error?._tag === "Fail" ? error.error : {}) as { reason?: string; message?: string };
  assert.equal(e.reason, "BOOTSTRAP_TIMEOUT");
  assert.match(e.message ?? "", /\big\b/);
});

Deno.test("backend mode waits for the IG and starts once it answers", async () => {
  const port = freePort();
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const waiting = yield* Effect.forkChild(
      bootstrap(profile, endpoint(port), {
        mode: "backend",
        pollIntervalMs: 100,
        timeoutMs: 60_000,
      }),
    );
    // The first checks fail; then the gate comes up on that port.
    const before = yield* checkDependencies(profile, endpoint(port));
    assert.equal(before.find((d) => d.name === "ig")?.ok, false);
    yield* startIg({ port, db: `${base}/ig` });
    const report = yield* Fiber.join(waiting);
    assert.ok(report.every((d) => d.ok), JSON.stringify(report));
  })));
});

Deno.test("edge mode starts at once and reports what is down", async () => {
  const report = await Effect.runPromise(Effect.scoped(
    bootstrap(profile, endpoint(freePort()), {
      mode: "edge",
      pollIntervalMs: 60_000,
      timeoutMs: 1,
    }),
  ));
  assert.deepEqual(
    report.map((d) => [d.name, d.ok]),
    [["postgres", true], ["ig", false], ["control_bus", true]],
  );
});

Deno.test("backend mode gives up with BOOTSTRAP_TIMEOUT naming postgres when its server stays down", async () => {
  const ig = freePort();
  const serverProfile = await Effect.runPromise(loadProfile("local", {
    WORLDSTREAM_RUNS_ROOT: base,
    CONTROL_BUS_ROOT: `${base}/bus`,
    WORLDSTREAM_DB_BACKEND: "server",
    DATABASE_URL: `postgres://postgres@127.0.0.1:${freePort()}/worldstream`,
  }));
  const exit = await Effect.runPromiseExit(Effect.scoped(Effect.gen(function* () {
    yield* startIg({ port: ig, db: `${base}/ig-pg` });
    return yield* bootstrap(serverProfile, endpoint(ig), {
      mode: "backend",
      pollIntervalMs: 50,
      timeoutMs: 200,
    });
  })));
  assert.ok(Exit.isFailure(exit));
  const error = exit.cause.reasons.find((r) => r._tag === "Fail");
  const e = (error?._tag === "Fail" ? error.error : {}) as { reason?: string; message?: string };
  assert.equal(e.reason, "BOOTSTRAP_TIMEOUT");
  assert.match(e.message ?? "", /: postgres$/);
});

Deno.test("every check goes to the Health record: down while backend mode waits, then whatever each later check finds", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const health = yield* Health.make;
    const port = freePort();
    const waiting = yield* Effect.forkChild(
      bootstrap(profile, endpoint(port), {
        mode: "backend",
        pollIntervalMs: 50,
        timeoutMs: 150,
      }).pipe(Effect.provideService(Health, health), Effect.ignore),
    );
    const during = yield* health.readiness;
    yield* Fiber.join(waiting);
    assert.equal(during.status, "down");
    assert.equal((yield* health.readiness).status, "down", "never started");

    yield* bootstrap(profile, endpoint(port), {
      mode: "edge",
      pollIntervalMs: 60_000,
      timeoutMs: 1,
    }).pipe(Effect.provideService(Health, health));
    const started = yield* health.readiness;
    assert.equal(started.status, "down", "the IG is still down");
    assert.deepEqual(started.dependencies.map((d) => [d.name, d.ok]), [
      ["postgres", true],
      ["ig", false],
      ["control_bus", true],
    ]);
    yield* startIg({ port, db: `${base}/ig-health` });
    yield* bootstrap(profile, endpoint(port), {
      mode: "edge",
      pollIntervalMs: 60_000,
      timeoutMs: 1,
    }).pipe(Effect.provideService(Health, health));
    assert.equal((yield* health.readiness).status, "healthy");
  })));
});

globalThis.addEventListener("unload", () => Deno.removeSync(base, { recursive: true }));

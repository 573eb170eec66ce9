import assert from "node:assert/strict";
import { Effect } from "effect";
import { assess, type DependencyHealth, Health, type WalBacklog } from "./health.ts";

const UP: ReadonlyArray<DependencyHealth> = [
  { name: "postgres", ok: true, detail: "127.0.0.1:5432" },
  { name: "ig", ok: true, detail: "http://127.0.0.1:8081" },
  { name: "control_bus", ok: true, detail: "/bus" },
];

const WAL: WalBacklog = {
  pending_records: 0,
  pending_bytes: 0,
  quota_bytes: 1024,
  drain_failures: 0,
  last_drain_error: null,
  last_drain_reason: null,
  last_drain_wrote_at: null,
};

const down = (name: DependencyHealth["name"]) =>
  UP.map((d) => d.name === name ? { ...d, ok: false } : d);

function judge(
  overrides: Partial<Parameters<typeof assess>[0]> = {},
) {
  return assess({ started: true, dependencies: UP, conditions: new Map(), wal: WAL, ...overrides });
}

Deno.test("everything up and the WAL drained is healthy, with no problems", () => {
  const r = judge();
  assert.equal(r.status, "healthy");
  assert.deepEqual(r.problems, []);
});

Deno.test("Postgres down is degraded: streaming goes on while the WAL buffers", () => {
  const r = judge({
    dependencies: down("postgres"),
    wal: { ...WAL, pending_records: 7, pending_bytes: 700 },
  });
  assert.equal(r.status, "degraded");
  assert.match(r.problems.join("\n"), /postgres unreachable .*WAL buffers/);
});

Deno.test("the drain failing with PG_UNAVAILABLE marks Postgres down before the next re-check does", () => {
  const r = judge({
    wal: {
      ...WAL,
      pending_records: 3,
      drain_failures: 2,
      last_drain_error: "Postgres is unavailable [ECONNREFUSED]",
      last_drain_reason: "PG_UNAVAILABLE",
    },
  });
  assert.equal(r.status, "degraded");
  assert.equal(r.dependencies.find((d) => d.name === "postgres")?.ok, false);
});

Deno.test("records drained into Postgres after the last check mark it back before the next re-check", () => {
  const back = judge({
    dependencies: down("postgres"),
    checkedAt: 1_000,
    wal: { ...WAL, last_drain_wrote_at: 2_000 },
  });
  assert.equal(back.status, "healthy");
  assert.match(
    back.dependencies.find((d) => d.name === "postgres")?.detail ?? "",
    /reachable again/,
  );
  // Written before the check that found it down: no news, still degraded.
  const stale = judge({
    dependencies: down("postgres"),
    checkedAt: 3_000,
    wal: { ...WAL, last_drain_wrote_at: 2_000 },
  });
  assert.equal(stale.status, "degraded");
  // Never written: degraded.
  assert.equal(judge({ dependencies: down("postgres"), checkedAt: 3_000 }).status, "degraded");
});

Deno.test("the drain failing for another reason is degraded and names the error", () => {
  const r = judge({
    wal: {
      ...WAL,
      drain_failures: 1,
      last_drain_error: "fork",
      last_drain_reason: "RECEIPT_CHAIN_FORK",
    },
  });
  assert.equal(r.status, "degraded");
  assert.match(r.problems.join("\n"), /WAL drain failing .*fork/);
});

Deno.test("the IG down, a full WAL, a blocking condition or not yet started is down", () => {
  assert.equal(judge({ dependencies: down("ig") }).status, "down");
  assert.equal(judge({ wal: { ...WAL, pending_bytes: 1024 } }).status, "down");
  assert.equal(judge({ conditions: new Map([["x", "waiting for something"]]) }).status, "down");
  assert.equal(judge({ started: false }).status, "down");
});

Deno.test("a health record is down until started, follows reports, and reads the WAL it watches", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const health = yield* Health.make;
    assert.equal((yield* health.readiness).status, "down");
    yield* health.reportDependencies(down("postgres"));
    yield* health.markStarted;
    const before = yield* health.readiness;
    assert.equal(before.status, "degraded");
    assert.equal(before.wal, null);
    yield* Effect.scoped(
      health.watchWal(Effect.succeed({ ...WAL, pending_records: 5 })).pipe(
        Effect.andThen(health.readiness),
        Effect.tap((r) => Effect.sync(() => assert.equal(r.wal?.pending_records, 5))),
      ),
    );
    assert.equal((yield* health.readiness).wal, null, "unwatched when its scope closed");
    yield* health.reportDependencies(UP);
    assert.equal((yield* health.readiness).status, "healthy");
  })));
});

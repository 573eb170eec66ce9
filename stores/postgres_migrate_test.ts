import assert from "node:assert/strict";
import { Effect, Fiber } from "effect";
import { Postgres } from "./postgres.ts";
import {
  loadMigrations,
  migrate,
  migrateFrom,
  migratingOnFirstUse,
  MIGRATION_LOCK_KEY,
  type MigrationReport,
  MIGRATIONS_DIR,
} from "./postgres_migrate.ts";
import { failure, pgTest, tempDir, unreachablePostgres } from "./postgres_testing.ts";

const FOUNDATION_TABLES = [
  "ws_approvals",
  "ws_audit_events",
  "ws_budget_ledger",
  "ws_checkpoints",
  "ws_dead_letters",
  "ws_output_leases",
  "ws_policy_snapshots",
  "ws_ready_ledger",
  "ws_receipts",
  "ws_schema_migrations",
];

/** Every table once all of the project's migrations have run. */
const PROJECT_TABLES = [
  ...FOUNDATION_TABLES,
  "ws_dead_letter_retries",
  "ws_control_bus_positions",
].sort();

const tables = Effect.gen(function* () {
  const pg = yield* Postgres;
  const rows = yield* pg.query<{ name: string }>(
    "select table_name as name from information_schema.tables " +
      "where table_schema = current_schema() and table_name like 'ws\\_%' order by table_name",
  );
  return rows.map((r) => r.name);
});

const recorded = Effect.gen(function* () {
  const pg = yield* Postgres;
  return yield* pg.query<{ version: number; name: string; checksum: string }>(
    "select version, name, checksum from ws_schema_migrations order by version",
  );
});

/**
 * A scratch copy of the foundation migration that a test may edit and add files to (the project's
 * later migrations are left out, so the version numbers a test writes stay free).
 */
const scratchMigrations = Effect.gen(function* () {
  const dir = yield* tempDir;
  for (const m of (yield* loadMigrations(MIGRATIONS_DIR)).slice(0, 1)) {
    yield* Effect.promise(() => Deno.writeTextFile(`${dir}/${m.name}.sql`, m.sql));
  }
  return dir;
});

function write(dir: string, file: string, sql: string) {
  return Effect.promise(() => Deno.writeTextFile(`${dir}/${file}`, sql));
}

pgTest(
  "migrate creates every table of the project's migrations and records each file with its sha256",
  () =>
    Effect.gen(function* () {
      const report = yield* migrate;
      const files = yield* loadMigrations(MIGRATIONS_DIR);
      assert.equal(files[0].name, "0001_foundation");
      assert.deepEqual(report, { applied: files.map((f) => f.name), version: files.length });
      assert.deepEqual(yield* tables, PROJECT_TABLES);
      assert.deepEqual(
        yield* recorded,
        files.map((f) => ({ version: f.version, name: f.name, checksum: f.checksum })),
      );
      for (const f of files) assert.match(f.checksum, /^[0-9a-f]{64}$/);
    }),
);

pgTest("a second run applies nothing", () =>
  Effect.gen(function* () {
    yield* migrate;
    const again = yield* migrate;
    const files = yield* loadMigrations(MIGRATIONS_DIR);
    assert.deepEqual(again, { applied: [], version: files.length });
    assert.equal((yield* recorded).length, files.length);
  }));

pgTest("a new file applies on top of those already applied", () =>
  Effect.gen(function* () {
    const dir = yield* scratchMigrations;
    yield* migrateFrom(dir);
    yield* write(dir, "0002_extra.sql", "-- A test table.\ncreate table ws_extra (id int);");
    const report = yield* migrateFrom(dir);
    assert.deepEqual(report, { applied: ["0002_extra"], version: 2 });
    assert.ok((yield* tables).includes("ws_extra"));
  }));

pgTest(
  "an applied file that was edited is refused with MIGRATION_CHECKSUM_MISMATCH",
  () =>
    Effect.gen(function* () {
      const dir = yield* scratchMigrations;
      yield* migrateFrom(dir);
      const original = yield* Effect.promise(() => Deno.readTextFile(`${dir}/0001_foundation.sql`));
      yield* write(dir, "0001_foundation.sql", `${original}\n-- an innocent-looking edit\n`);
      yield* write(dir, "0002_extra.sql", "-- A test table.\ncreate table ws_extra (id int);");
      const error = yield* failure(migrateFrom(dir));
      assert.equal(error.reason, "MIGRATION_CHECKSUM_MISMATCH");
      assert.ok(error.message.includes("0001_foundation"), error.message);
      assert.equal((yield* recorded).length, 1);
      assert.ok(!(yield* tables).includes("ws_extra"));
    }),
);

pgTest(
  "pending files apply in one transaction: a failing file leaves nothing behind",
  () =>
    Effect.gen(function* () {
      const dir = yield* scratchMigrations;
      yield* write(dir, "0002_broken.sql", "-- Broken on purpose.\nselect * from no_such_table;");
      const error = yield* failure(migrateFrom(dir));
      assert.equal(error.reason, "MIGRATION_FAILED");
      assert.ok(error.message.includes("0002_broken"), error.message);
      assert.ok(error.message.includes("42P01"), error.message);
      assert.deepEqual(yield* tables, ["ws_schema_migrations"]);
      assert.deepEqual(yield* recorded, []);
    }),
);

pgTest(
  "a file numbered below the applied version is refused as out of order",
  () =>
    Effect.gen(function* () {
      const dir = yield* scratchMigrations;
      yield* write(dir, "0003_later.sql", "-- Later.\ncreate table ws_later (id int);");
      yield* migrateFrom(dir);
      yield* write(dir, "0002_forgotten.sql", "-- Forgotten.\ncreate table ws_forgotten (id int);");
      const error = yield* failure(migrateFrom(dir));
      assert.equal(error.reason, "MIGRATION_FAILED");
      assert.ok(error.message.includes("0002_forgotten"), error.message);
    }),
);

pgTest(
  "two files with one version number are refused before touching the database",
  () =>
    Effect.gen(function* () {
      const dir = yield* scratchMigrations;
      yield* write(dir, "0001_twin.sql", "-- Twin.\nselect 1;");
      const error = yield* failure(migrateFrom(dir));
      assert.equal(error.reason, "MIGRATION_FAILED");
      assert.deepEqual(yield* tables, []);
    }),
);

pgTest(
  "concurrent runners on one database apply each migration once",
  (ctx) =>
    Effect.gen(function* () {
      // On the server the runners use separate pools, so only the advisory lock keeps them apart;
      // PGlite has one connection, so there they share it.
      const runners = [0, 1, 2, 3].map((i) =>
        ctx.connectAgain !== undefined && i % 2 === 1
          ? migrate.pipe(Effect.provide(ctx.connectAgain()))
          : migrate
      );
      const reports: ReadonlyArray<MigrationReport> = yield* Effect.all(runners, {
        concurrency: "unbounded",
      });
      const files = yield* loadMigrations(MIGRATIONS_DIR);
      assert.deepEqual(
        reports.map((r) => r.applied.length).sort(),
        [0, 0, 0, files.length],
      );
      assert.equal((yield* recorded).length, files.length);
    }),
);

pgTest(
  "a current database is seen as current without the runners' lock; a pending file still takes it",
  (ctx) =>
    Effect.gen(function* () {
      yield* migrate;
      const other = ctx.connectAgain!();
      const pg = yield* Postgres;
      // Another session holds the runners' lock (say, a runner stuck mid-migration).
      yield* pg.session((session) =>
        Effect.gen(function* () {
          yield* session.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
          const waiting = session.query<{ n: number }>(
            "select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted",
          );
          // Current: one read answers, so this returns instead of waiting for the lock.
          const current = yield* Effect.forkChild(migrate.pipe(Effect.provide(other)));
          const deadline = Date.now() + 20_000;
          while (current.pollUnsafe() === undefined) {
            if ((yield* waiting)[0].n > 0 || Date.now() > deadline) {
              yield* session.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
              yield* Fiber.join(current);
              throw new Error("a current database waited for the runners' lock");
            }
            yield* Effect.sleep("20 millis");
          }
          const report = yield* Fiber.join(current);
          const files = yield* loadMigrations(MIGRATIONS_DIR);
          assert.deepEqual(report, { applied: [], version: files.at(-1)!.version });
          // A pending file goes the locked way: it waits for the lock, then applies.
          const dir = yield* scratchMigrations;
          yield* write(dir, "9001_extra.sql", "create table ws_extra_fast_path (id int)");
          const runner = yield* Effect.forkChild(migrateFrom(dir).pipe(Effect.provide(other)));
          const until = Date.now() + 20_000;
          while ((yield* waiting)[0].n === 0) {
            if (Date.now() > until) {
              throw new Error("the runner never waited for the lock");
            }
            yield* Effect.sleep("20 millis");
          }
          yield* session.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
          const applied = yield* Fiber.join(runner);
          assert.deepEqual(applied.applied, ["9001_extra"]);
        })
      );
    }),
  { only: "server" },
);

pgTest("log tables are append-only", () =>
  Effect.gen(function* () {
    yield* migrate;
    const pg = yield* Postgres;
    yield* pg.query(
      "insert into ws_receipts (record_id, kind, body, hash, at) values ($1, $2, $3, $4, $5)",
      ["r1", "delivered", { n: 1 }, "h1", new Date(0)],
    );
    // Replaying the same WAL record is a no-op, not an error.
    yield* pg.query(
      "insert into ws_receipts (record_id, kind, body, hash, at) values ($1, $2, $3, $4, $5) " +
        "on conflict (record_id) do nothing",
      ["r1", "delivered", { n: 1 }, "h1", new Date(0)],
    );
    const edit = yield* failure(pg.query("update ws_receipts set hash = 'forged'"));
    assert.equal(edit.reason, "PG_QUERY_FAILED");
    assert.ok(edit.message.includes("append-only"), edit.message);
    const erase = yield* failure(pg.query("delete from ws_receipts"));
    assert.ok(erase.message.includes("append-only"), erase.message);
    const rows = yield* pg.query<{ seq: number; hash: string }>(
      "select seq, hash from ws_receipts",
    );
    assert.deepEqual(rows, [{ seq: 1, hash: "h1" }]);
  }));

pgTest("the foundation schema takes the rows later stores write", () =>
  Effect.gen(function* () {
    yield* migrate;
    const pg = yield* Postgres;
    const at = new Date("2026-01-02T03:04:05Z");
    yield* pg.query(
      "insert into ws_checkpoints values ($1, $2, $3, $4, $5, $6, $7)",
      ["pack-1", "out-a", 41, "part-0.parquet", 7, "2026-01-02T03:04:05.000001Z", at],
    );
    yield* pg.query(
      "insert into ws_checkpoints (pack_key, output_id, last_seq, updated_at_utc) " +
        "values ($1, $2, $3, $4) on conflict (pack_key, output_id) do update " +
        "set last_seq = excluded.last_seq where ws_checkpoints.last_seq < excluded.last_seq",
      ["pack-1", "out-a", 42, at],
    );
    yield* pg.query(
      "insert into ws_dead_letters (record_id, run_key, output_id, event_id, envelope, attempts, " +
        "last_status, reason, at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      ["d1", "run-1", "out-a", "e1", { event_id: "e1" }, 5, 503, "IG_PUSH_RETRY_EXHAUSTED", at],
    );
    yield* pg.query(
      "insert into ws_approvals (approval_id, capability, principal, request, created_at) " +
        "values ($1, $2, $3, $4, $5)",
      ["a1", "deadletter.purge", "ops@example", { ids: ["d1"] }, at],
    );
    const bad = yield* failure(pg.query("update ws_approvals set status = 'MAYBE'"));
    assert.ok(bad.message.includes("[23514]"), bad.message);
    const [checkpoint] = yield* pg.query("select last_seq, last_ts_utc from ws_checkpoints");
    assert.deepEqual(checkpoint, { last_seq: 42, last_ts_utc: "2026-01-02T03:04:05.000001Z" });
    const [letter] = yield* pg.query("select status, envelope from ws_dead_letters");
    assert.deepEqual(letter, { status: "OPEN", envelope: { event_id: "e1" } });
  }));

Deno.test("loadMigrations reads the project's files in version order", async () => {
  const migrations = await Effect.runPromise(loadMigrations(MIGRATIONS_DIR));
  assert.deepEqual(migrations.map((m) => m.version), [...migrations.keys()].map((i) => i + 1));
  for (const m of migrations) {
    assert.ok(m.sql.startsWith(`-- ${m.name}:`), `${m.name} must open with a comment on its model`);
  }
});

pgTest(
  "a Postgres migrating on first use migrates on its first statement, once",
  () =>
    Effect.gen(function* () {
      assert.deepEqual(yield* tables, [], "nothing before the first statement");
      let runs = 0;
      const counted = migrate.pipe(Effect.tap(() => Effect.sync(() => runs++)));
      const lazy = yield* migratingOnFirstUse(counted);
      const [row] = yield* lazy.query<{ n: number }>("select count(*)::int as n from ws_receipts");
      assert.equal(row.n, 0);
      yield* Effect.all([
        lazy.query("select 1"),
        lazy.transaction((tx) => tx.query("select 1")),
        lazy.session((s) => s.query("select 1")),
      ], { concurrency: "unbounded" });
      assert.equal(runs, 1);
      assert.deepEqual(yield* tables, PROJECT_TABLES);
    }),
);

Deno.test("a Postgres migrating on first use that cannot connect fails each statement PG_UNAVAILABLE and migrates nothing", async () => {
  await Effect.runPromise(Effect.scoped(
    Effect.gen(function* () {
      const pg = yield* Postgres;
      const error = yield* failure(pg.query("select 1"));
      assert.equal(error.reason, "PG_UNAVAILABLE");
      assert.equal((yield* failure(pg.health)).reason, "PG_UNAVAILABLE");
      assert.equal((yield* failure(pg.query("select 1"))).reason, "PG_UNAVAILABLE");
    }).pipe(Effect.provide(unreachablePostgres())),
  ));
});

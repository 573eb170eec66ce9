/**
 * Forward-only migrations from `sql/postgres/NNNN_name.sql`. One runner at a time per database
 * (a session advisory lock); all pending files apply in one transaction, so a run either lands
 * completely or not at all; each applied file is recorded with its sha256 and may never change.
 */
import { Clock, Effect, Result, Semaphore } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type PgParam, type PgSql, Postgres } from "./postgres.ts";

/** One migration file. */
export interface Migration {
  readonly version: number;
  /** File name without `.sql`, e.g. `0001_foundation`. */
  readonly name: string;
  readonly sql: string;
  /** Hex sha256 of the file's bytes. */
  readonly checksum: string;
}

/** What a run did. */
export interface MigrationReport {
  /** Names applied by this run, in order (empty when the database was already current). */
  readonly applied: ReadonlyArray<string>;
  /** Highest version now recorded (0 for an empty directory). */
  readonly version: number;
}

/** Where the project's migrations live. */
export const MIGRATIONS_DIR: URL = new URL("../sql/postgres/", import.meta.url);

/** Session advisory lock key every migration runner takes ("wsmigr" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x77736d696772;

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

const CREATE_TABLE = `create table if not exists ws_schema_migrations (
  version int primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null
)`;

/** Applies the project's pending migrations. */
export const migrate: Effect.Effect<MigrationReport, WorldstreamError, Postgres> = Effect.suspend(
  () => migrateFrom(MIGRATIONS_DIR),
);

/** Applies the pending migrations found in `dir`. */
export const migrateFrom = Effect.fn("migrateFrom")(function* (dir: URL | string) {
  const migrations = yield* loadMigrations(dir);
  const pg = yield* Postgres;
  // Nearly every start finds the database current: one read says so, where the locked path
  // takes ~8 statements (each a round trip to PGlite's process on a restart's critical path).
  const current = yield* Effect.result(alreadyCurrent(pg, migrations));
  if (Result.isSuccess(current) && current.success !== undefined) return current.success;
  return yield* pg.session((session) =>
    Effect.acquireUseRelease(
      session.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]),
      () =>
        Effect.gen(function* () {
          yield* session.exec(CREATE_TABLE).pipe(Effect.mapError(asMigrationFailure("setup")));
          return yield* session.transaction((tx) => applyPending(tx, migrations));
        }),
      () =>
        session.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).pipe(Effect.ignore),
    )
  );
});

/**
 * The Postgres in context, migrating itself on first use: every statement first makes sure
 * `migration` (default: the project's migrations) has succeeded once, so a runtime can start
 * while its server is down and migrate when the server first answers. Concurrent first users
 * wait for one run; a failed run is tried again by the next statement. `health` never migrates.
 */
export const migratingOnFirstUse = Effect.fn("migratingOnFirstUse")(function* (
  migration: Effect.Effect<MigrationReport, WorldstreamError, Postgres> = migrate,
) {
  const raw = yield* Postgres;
  const lock = yield* Semaphore.make(1);
  let done = false;
  // A plain statement first: while the server is down that fails at once, whereas a failed
  // `session` (postgres.js `reserve`) leaves the pool waiting out its whole end timeout on close.
  const run = raw.health.pipe(
    Effect.andThen(migration),
    Effect.provideService(Postgres, raw),
    Effect.tap((report) =>
      report.applied.length === 0 ? Effect.void : Effect.logInfo("Postgres migrated").pipe(
        Effect.annotateLogs({ applied: report.applied.join(","), version: report.version }),
      )
    ),
    Effect.tap(() => Effect.sync(() => (done = true))),
  );
  const ready: Effect.Effect<void, WorldstreamError> = Effect.suspend(() =>
    done
      ? Effect.void
      : lock.withPermit(Effect.suspend(() => done ? Effect.void : Effect.asVoid(run)))
  );
  return Postgres.of({
    backend: raw.backend,
    query: <A>(text: string, params?: ReadonlyArray<PgParam>) =>
      Effect.andThen(ready, raw.query<A>(text, params)),
    exec: (script) => Effect.andThen(ready, raw.exec(script)),
    transaction: (f) => Effect.andThen(ready, raw.transaction(f)),
    session: (f) => Effect.andThen(ready, raw.session(f)),
    health: raw.health,
  });
});

/** Reads and orders the `NNNN_name.sql` files in `dir`; other files are ignored. */
export const loadMigrations = Effect.fn("loadMigrations")(function* (dir: URL | string) {
  const entries = yield* Effect.tryPromise({
    try: () => Array.fromAsync(Deno.readDir(dir)),
    catch: (e) => fail("MIGRATION_FAILED", `Migrations directory ${dir} is unreadable: ${e}`),
  });
  const names = entries.filter((e) => e.isFile && FILE_NAME.test(e.name)).map((e) => e.name)
    .sort();
  const migrations: Array<Migration> = [];
  for (const file of names) {
    const bytes = yield* Effect.tryPromise({
      try: () => Deno.readFile(inDir(dir, file)),
      catch: (e) => fail("MIGRATION_FAILED", `Migration ${file} is unreadable: ${e}`),
    });
    const version = Number(FILE_NAME.exec(file)![1]);
    const previous = migrations.at(-1);
    if (previous?.version === version) {
      return yield* fail(
        "MIGRATION_FAILED",
        `Migrations ${previous.name} and ${file} share version ${version}`,
      );
    }
    migrations.push({
      version,
      name: file.slice(0, -".sql".length),
      sql: new TextDecoder().decode(bytes),
      checksum: yield* sha256Hex(bytes),
    });
  }
  return migrations as ReadonlyArray<Migration>;
});

/**
 * The report of a run that would apply nothing (every file recorded with its checksum), read
 * without the lock; `undefined` when anything is pending, differs or is unknown, for the locked
 * path to apply or refuse. A runner committing meanwhile is seen by that path, not missed: what
 * this read saw was already current.
 */
function alreadyCurrent(
  pg: PgSql,
  migrations: ReadonlyArray<Migration>,
): Effect.Effect<MigrationReport | undefined, WorldstreamError> {
  return pg.query<{ version: number; checksum: string }>(
    "select version, checksum from ws_schema_migrations",
  ).pipe(Effect.map((recorded) => {
    const byVersion = new Map(recorded.map((r) => [r.version, r.checksum]));
    if (!migrations.every((m) => byVersion.get(m.version) === m.checksum)) return undefined;
    return { applied: [], version: recorded.reduce((max, r) => Math.max(max, r.version), 0) };
  }));
}

function applyPending(
  tx: PgSql,
  migrations: ReadonlyArray<Migration>,
): Effect.Effect<MigrationReport, WorldstreamError> {
  return Effect.gen(function* () {
    // Read under the lock and inside the transaction: a runner that waited sees what the previous
    // one committed.
    const recorded = yield* tx.query<{ version: number; name: string; checksum: string }>(
      "select version, name, checksum from ws_schema_migrations order by version",
    );
    const byVersion = new Map(recorded.map((r) => [r.version, r]));
    for (const m of migrations) {
      const row = byVersion.get(m.version);
      if (row !== undefined && row.checksum !== m.checksum) {
        return yield* fail(
          "MIGRATION_CHECKSUM_MISMATCH",
          `Migration ${m.name} was edited after it was applied ` +
            `(recorded sha256 ${row.checksum.slice(0, 12)}…, file now ${m.checksum.slice(0, 12)}…)`,
        );
      }
    }
    // Versions the database has but this build lacks belong to a newer build; they are left alone.
    const latest = recorded.reduce((max, r) => Math.max(max, r.version), 0);
    const pending = migrations.filter((m) => !byVersion.has(m.version));
    const late = pending.find((m) => m.version < latest);
    if (late !== undefined) {
      return yield* fail(
        "MIGRATION_FAILED",
        `Migration ${late.name} is older than applied version ${latest}; migrations are forward-only`,
      );
    }
    for (const m of pending) {
      yield* tx.exec(m.sql).pipe(Effect.mapError(asMigrationFailure(m.name)));
      const now = yield* Clock.currentTimeMillis;
      yield* tx.query(
        "insert into ws_schema_migrations (version, name, checksum, applied_at) values ($1, $2, $3, $4)",
        [m.version, m.name, m.checksum, new Date(now)],
      ).pipe(Effect.mapError(asMigrationFailure(m.name)));
    }
    return {
      applied: pending.map((m) => m.name),
      version: Math.max(latest, ...pending.map((m) => m.version)),
    };
  });
}

function asMigrationFailure(what: string) {
  return (e: WorldstreamError): WorldstreamError =>
    e.reason === "PG_QUERY_FAILED"
      ? fail("MIGRATION_FAILED", `Migration ${what}: ${e.message}`)
      : e;
}

function sha256Hex(bytes: Uint8Array): Effect.Effect<string> {
  return Effect.promise(async () => {
    const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  });
}

function inDir(dir: URL | string, file: string): URL | string {
  if (typeof dir === "string") return `${dir.replace(/\/+$/, "")}/${file}`;
  return new URL(file, dir.href.endsWith("/") ? dir : `${dir.href}/`);
}

/**
 * Test support: one test body, run against both Postgres backends on a database nobody else
 * touches. PGlite gets a fresh folder (copied from a template initialised once per process,
 * because initdb costs seconds and reopening costs ~200 ms); the server gets a freshly created
 * database, dropped afterwards. Server tests need `DATABASE_URL` (see scripts/pg_cluster.sh) and
 * are ignored without it.
 */
import { cpSync } from "node:fs";
import { Effect, Layer, type Scope } from "effect";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { type PgBackend, Postgres } from "./postgres.ts";
import { migrate, migratingOnFirstUse } from "./postgres_migrate.ts";

/** The admin DSN for server tests, if any. */
export const SERVER_URL: string | undefined = Deno.env.get("DATABASE_URL") || undefined;

/** What a test body knows about the database it was given. */
export interface PgTestContext {
  readonly backend: PgBackend;
  /** Another, independent connection pool to the same database (server only). */
  readonly connectAgain?: () => Layer.Layer<Postgres, WorldstreamError>;
}

type Body = (ctx: PgTestContext) => Effect.Effect<void, unknown, Postgres | Scope.Scope>;

/** What `pgTest` takes besides the body. */
export interface PgTestOptions {
  /** Only on this backend. */
  readonly only?: PgBackend;
  /**
   * A PGlite copy that already holds worldstream's migrations, for a body that migrates first
   * thing (its `migrate` then finds the database current): PGlite's migration costs ~1 s of CPU
   * per test. Server databases start empty either way.
   */
  readonly migrated?: boolean;
}

/** Registers `name` once per backend; `only` restricts it to one. */
export function pgTest(name: string, body: Body, options: PgTestOptions = {}) {
  for (const backend of ["pglite", "server"] as const) {
    if (options.only !== undefined && options.only !== backend) continue;
    const skipped = backend === "server" && SERVER_URL === undefined;
    Deno.test({
      name: `${backend}: ${name}${skipped ? " (skipped: DATABASE_URL is not set)" : ""}`,
      ignore: skipped,
      fn: () =>
        Effect.runPromise(
          inFreshDatabase(backend, body, options.migrated ?? false).pipe(
            Effect.mapError(readable),
          ),
        ),
    });
  }
}

/** Runs `effect`, expecting it to fail with a WorldstreamError, and returns that error. */
export function failure<A, E, R>(effect: Effect.Effect<A, E, R>) {
  return effect.pipe(
    Effect.flip,
    Effect.filterOrFail(
      (e): e is E & WorldstreamError => e instanceof WorldstreamError,
      (e) => new Error(`Expected a WorldstreamError, got ${String(e)}`),
    ),
    Effect.mapError((e) =>
      e instanceof Error ? e : new Error(`Expected a failure, got success: ${String(e)}`)
    ),
  );
}

/** A temporary directory removed when the scope closes. */
export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => Deno.makeTempDir({ prefix: "ws-pg-test-" })),
  (dir) => Effect.promise(() => Deno.remove(dir, { recursive: true }).catch(() => undefined)),
);

function inFreshDatabase(backend: PgBackend, body: Body, migrated: boolean) {
  return Effect.scoped(Effect.gen(function* () {
    if (backend === "pglite") {
      const dir = yield* tempDir;
      const template = yield* (migrated ? migratedTemplate : pgliteTemplate);
      cpSync(template, `${dir}/data`, { recursive: true });
      return yield* body({ backend }).pipe(Effect.provide(Postgres.layerPglite(`${dir}/data`)));
    }
    const url = yield* serverDatabase;
    return yield* body({ backend, connectAgain: () => Postgres.layerServer(url, { max: 2 }) })
      .pipe(Effect.provide(Postgres.layerServer(url, { max: 4 })));
  }));
}

/**
 * A closed PGlite data directory made once by `make` over the Postgres of a new folder, shared
 * by every test of this process and removed at exit.
 */
function templateOnce(make: Effect.Effect<unknown, WorldstreamError, Postgres>) {
  let template: Promise<string> | undefined;
  return Effect.suspend(() => {
    template ??= (async () => {
      const dir = await Deno.makeTempDir({ prefix: "ws-pglite-template-" });
      globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
      await Effect.runPromise(
        Effect.scoped(Layer.build(
          Layer.effectDiscard(make).pipe(Layer.provide(Postgres.layerPglite(`${dir}/data`))),
        )),
      );
      return `${dir}/data`;
    })();
    return Effect.tryPromise({
      try: () => template!,
      catch: (e) => fail("PG_UNAVAILABLE", `PGlite template did not initialise: ${e}`),
    });
  });
}

// An empty database, and one holding worldstream's migrations.
const pgliteTemplate: Effect.Effect<string, WorldstreamError> = templateOnce(Effect.void);
const migratedTemplate: Effect.Effect<string, WorldstreamError> = templateOnce(migrate);

/**
 * A fresh database on the DATABASE_URL server: `create database` on the admin connection,
 * `drop database ... with (force)` on scope close.
 */
export const serverDatabase: Effect.Effect<string, WorldstreamError, Scope.Scope> = Effect.gen(
  function* () {
    const admin = SERVER_URL!;
    const name = `ws_test_${crypto.randomUUID().replaceAll("-", "")}`;
    const adminOp = (sql: string) =>
      Effect.gen(function* () {
        const pg = yield* Postgres;
        yield* pg.query(sql);
      }).pipe(Effect.provide(Postgres.layerServer(admin, { max: 1 })));
    yield* Effect.acquireRelease(
      adminOp(`create database ${name}`),
      () => adminOp(`drop database if exists ${name} with (force)`).pipe(Effect.ignore),
    );
    const url = new URL(admin);
    url.pathname = `/${name}`;
    return url.toString();
  },
);

function readable(e: unknown): Error {
  if (e instanceof WorldstreamError) return new Error(`${e.reason}: ${e.message}`);
  return e instanceof Error ? e : new Error(String(e));
}

/** A loopback port nothing listens on (bound, read, released). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * A Postgres that is down: the runtime's lazy server layer (migrating on first use) pointed at
 * a closed loopback port, so every statement fails PG_UNAVAILABLE at once.
 */
export function unreachablePostgres(): Layer.Layer<Postgres, WorldstreamError> {
  const url = `postgres://postgres@127.0.0.1:${closedPort()}/worldstream`;
  return Layer.effect(Postgres, migratingOnFirstUse()).pipe(
    Layer.provide(Postgres.layerServer(url, { lazy: true, connectTimeoutSeconds: 1 })),
  );
}

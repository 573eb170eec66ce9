/**
 * The only door to Postgres. One SQL-first interface, two backends: PGlite in a folder (the
 * embedded default, a single connection) and a real server via `DATABASE_URL` (a postgres.js
 * pool). Nobody else imports `postgres` or drives PGlite, which runs in a process (or on a
 * thread) of its own, stores/pglite_worker.ts, reached through stores/pglite_channel.ts.
 *
 * Both backends return the same JS shapes: int8 → number (sequences and counts stay far below
 * 2^53), numeric → string, timestamptz → Date, json/jsonb → parsed values.
 */
import postgres from "postgres";
import { Config, Context, Effect, Exit, Layer, Option, Redacted } from "effect";
import type { Cause } from "effect";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import type { DatabaseWiring } from "../schemas/profile.ts";
import {
  adoptEarlyPglite,
  isolationFromEnv,
  PgliteLocked,
  type PgliteOptions,
  PgliteThread,
  PgliteUnavailable,
} from "./pglite_channel.ts";

export type { PgliteIsolation, PgliteOptions } from "./pglite_channel.ts";

/** Which engine answers the SQL. */
export type PgBackend = "pglite" | "server";

/** A value bound to a `$n` parameter; plain objects bind to json/jsonb, arrays to Postgres arrays. */
export type PgParam =
  | string
  | number
  | bigint
  | boolean
  | null
  | Date
  | Uint8Array
  | ReadonlyArray<PgParam>
  | { readonly [key: string]: unknown };

/** SQL on one backend: a pool, a pinned session or an open transaction. */
export interface PgSql {
  readonly backend: PgBackend;
  /** Runs one statement with `$1..$n` positional parameters and returns its rows. */
  readonly query: <A = Record<string, unknown>>(
    text: string,
    params?: ReadonlyArray<PgParam>,
  ) => Effect.Effect<ReadonlyArray<A>, WorldstreamError>;
  /** Runs a parameterless script of several statements (migrations). */
  readonly exec: (script: string) => Effect.Effect<void, WorldstreamError>;
  /**
   * Runs `f` in a transaction (a savepoint when already inside one): committed when `f`
   * succeeds, rolled back when it fails or is interrupted. Inside `f` use only `tx`; on PGlite
   * the outer handle waits for the transaction to finish, so using it from `f` deadlocks.
   */
  readonly transaction: <A, E, R>(
    f: (tx: PgSql) => Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E | WorldstreamError, R>;
}

/** The Postgres engine of this process. */
export class Postgres extends Context.Service<
  Postgres,
  PgSql & {
    /** Succeeds when the database answers `select 1`. */
    readonly health: Effect.Effect<void, WorldstreamError>;
    /**
     * Runs `f` on one pinned connection, for session state such as advisory locks. PGlite has a
     * single connection, so there the session is shared with every other caller.
     */
    readonly session: <A, E, R>(
      f: (session: PgSql) => Effect.Effect<A, E, R>,
    ) => Effect.Effect<A, E | WorldstreamError, R>;
  }
>()("worldstream/stores/Postgres") {
  /**
   * Embedded PGlite with its data in `dir` (created if missing). One process per folder.
   * `relaxedDurability` answers before the filesystem sync (for test doubles such as the
   * reference IG, never for worldstream's own state).
   */
  static readonly layerPglite = (dir: string, options: PgliteOptions = {}) =>
    Layer.effect(Postgres, makePglite(dir, options));

  /**
   * A Postgres server at `url`; fails with PG_UNAVAILABLE when it does not answer, unless
   * `lazy` (then statements fail PG_UNAVAILABLE until it does).
   */
  static readonly layerServer = (url: string, options: ServerOptions = {}) =>
    Layer.effect(Postgres, makeServer(url, options));

  /** A server when `DATABASE_URL` is set, otherwise PGlite in `defaultDir`. */
  static readonly layerFromEnv = (defaultDir: string) =>
    Layer.unwrap(
      Config.option(Config.Redacted("DATABASE_URL")).pipe(
        // Any text is a valid string setting: a failure here is the environment itself failing.
        Effect.orDie,
        Effect.map((url) =>
          Option.isSome(url) && Redacted.value(url.value) !== ""
            ? Postgres.layerServer(Redacted.value(url.value))
            : Postgres.layerPglite(defaultDir)
        ),
      ),
    );
}

/** Tuning for the server backend. */
export interface ServerOptions {
  /** Pool size (default 10). */
  readonly max?: number;
  /** Seconds to wait for a connection before PG_UNAVAILABLE (default 10). */
  readonly connectTimeoutSeconds?: number;
  /**
   * The server cancels any statement of this pool that runs longer (PG_STATEMENT_TIMEOUT), set
   * as each connection's `statement_timeout` when it opens; 0 or unset: the server's default.
   */
  readonly statementTimeoutMs?: number;
  /**
   * Build without connecting: the pool connects on the first statement, so an edge runtime
   * starts while the server is down (default false: the build fails PG_UNAVAILABLE).
   */
  readonly lazy?: boolean;
}

/**
 * The server options a profile's `wiring.database` asks for: `pool_max`, `connect_timeout_ms`,
 * `statement_timeout_ms` (unset keys keep the defaults). PGlite takes none of them: it has one
 * connection, opens no socket, and its WebAssembly build has no timer signal to cancel with.
 */
export function serverOptionsOf(db: DatabaseWiring): ServerOptions {
  return {
    ...(db.pool_max === undefined ? {} : { max: db.pool_max }),
    ...(db.connect_timeout_ms === undefined
      ? {}
      : { connectTimeoutSeconds: db.connect_timeout_ms / 1000 }),
    ...(db.statement_timeout_ms === undefined
      ? {}
      : { statementTimeoutMs: db.statement_timeout_ms }),
  };
}

/** A DSN fit for logs and error messages: the password (URL or `password=` form) becomes `***`. */
export function redactDsn(dsn: string): string {
  try {
    const url = new URL(dsn);
    if (url.password !== "") url.password = "***";
    if (url.searchParams.has("password")) url.searchParams.set("password", "***");
    return url.toString();
  } catch {
    return dsn
      .replace(/(\/\/[^:/@\s]*:)[^@]*@/, "$1***@")
      .replace(/(password\s*=\s*)('[^']*'|\S+)/gi, "$1***");
  }
}

// ---------------------------------------------------------------------------------------------
// Backends

function makePglite(dir: string, options: PgliteOptions = {}) {
  return Effect.gen(function* () {
    // Opening starts now and is not awaited: start-up work that needs no database goes on
    // beside it, and the first statement waits for it.
    // A PGlite main.ts started for this folder is taken over as it is (possibly still opening).
    // Only the folder's claim is awaited: another live owner fails the build at once
    // (PGLITE_LOCKED, naming its pid) instead of waiting in silence for it to exit.
    const thread = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const early = await adoptEarlyPglite(dir, options);
          const thread = early ?? new PgliteThread(options.isolation ?? isolationFromEnv());
          if (early === undefined) thread.open(dir, options);
          try {
            await thread.claimed;
          } catch (e) {
            await thread.close();
            throw e;
          }
          return thread;
        },
        catch: pgError,
      }),
      (thread) => Effect.promise(() => thread.close()),
    );
    const root = makeSql("pglite", pgliteDriver(thread));
    return Postgres.of({
      ...root,
      health: health(root),
      session: (f) => f(root),
    });
  });
}

function makeServer(url: string, options: ServerOptions) {
  return Effect.gen(function* () {
    const sql = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          postgres(url, {
            max: options.max ?? 10,
            connect_timeout: options.connectTimeoutSeconds ?? 10,
            onnotice: () => undefined,
            // Startup parameters: every connection of the pool, and every reconnection after a
            // server restart, opens with them (and `reset all` in `session` returns to them).
            connection: {
              application_name: "worldstream",
              ...(options.statementTimeoutMs
                ? { statement_timeout: options.statementTimeoutMs }
                : {}),
            },
            types: { bigint: INT8_AS_NUMBER, bytea: BYTEA_AS_UINT8ARRAY },
          }),
        catch: (e) => unavailable(url, e),
      }),
      (sql) => Effect.promise(() => sql.end({ timeout: 5 }).catch(() => undefined)),
    );
    const root = makeSql("server", serverDriver(sql));
    if (!options.lazy) yield* health(root).pipe(Effect.mapError((e) => unavailable(url, e)));
    return Postgres.of({
      ...root,
      health: health(root),
      session: (f) =>
        Effect.acquireUseRelease(
          attempt(() => sql.reserve()),
          (reserved) => f(makeSql("server", reservedDriver(reserved))),
          // A pooled connection must not carry our session state to its next borrower.
          (reserved) =>
            Effect.promise(() =>
              reserved.unsafe("select pg_advisory_unlock_all(); reset all").simple()
                .catch(() => undefined)
                .then(() => reserved.release())
            ),
        ),
    });
  });
}

// Where the two clients disagree by default, both follow one rule. int8: postgres.js reads a
// string, PGlite a number. bytea: postgres.js reads a Buffer, PGlite a Uint8Array. json/jsonb
// parameters: postgres.js always JSON-encodes, PGlite passes a string through as JSON text.
const INT8_AS_NUMBER = {
  to: 20,
  from: [20],
  serialize: (x: number | bigint) => String(x),
  parse: (x: string) => Number(x),
};

const BYTEA_AS_UINT8ARRAY = {
  to: 17,
  from: [17],
  serialize: (x: Uint8Array) =>
    `\\x${Array.from(x, (b) => b.toString(16).padStart(2, "0")).join("")}`,
  parse: (x: string) => Uint8Array.from(x.slice(2).match(/../g) ?? [], (h) => parseInt(h, 16)),
};

function health(sql: PgSql): Effect.Effect<void, WorldstreamError> {
  return Effect.asVoid(sql.query("select 1 as ok"));
}

function unavailable(url: string, e: unknown): WorldstreamError {
  const password = passwordOf(url);
  let message = e instanceof WorldstreamError ? e.message : firstLine(e);
  if (password !== "") message = message.split(password).join("***");
  return fail("PG_UNAVAILABLE", `Postgres at ${redactDsn(url)} is unavailable: ${message}`);
}

function passwordOf(dsn: string): string {
  try {
    return decodeURIComponent(new URL(dsn).password);
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------
// Drivers: the promise-level surface of each kind of handle

type Rows = ReadonlyArray<unknown>;

interface Driver {
  /** `signal` aborts a statement in flight where the client can cancel one (the server). */
  readonly query: (
    text: string,
    params: ReadonlyArray<PgParam>,
    options?: { readonly signal?: AbortSignal },
  ) => Promise<Rows>;
  readonly exec: (script: string) => Promise<void>;
  readonly begin: <T>(fn: (inner: Driver) => Promise<T>) => Promise<T>;
}

function pgliteDriver(thread: PgliteThread): Driver {
  return {
    query: (text, params) => thread.request<Rows>({ op: "query", text, params }),
    exec: (script) => thread.request<void>({ op: "exec", script }),
    // PGlite's own transaction holds its mutex, so no other caller's statement lands inside ours.
    begin: async (fn) => {
      const tx = await thread.request<number>({ op: "begin" });
      let result;
      try {
        result = await fn(pinnedDriver({
          query: (text, params) => thread.request<Rows>({ op: "query", text, params, tx }),
          exec: (script) => thread.request<void>({ op: "exec", script, tx }),
        }, 1));
      } catch (e) {
        await thread.request({ op: "rollback", tx }).catch(() => undefined);
        throw e;
      }
      await thread.request({ op: "commit", tx });
      return result;
    },
  };
}

type ClientTypes = { bigint: number; bytea: Uint8Array<ArrayBuffer> };
type ServerSql = postgres.Sql<ClientTypes>;
type ServerTx = postgres.TransactionSql<ClientTypes>;

function serverDriver(sql: ServerSql): Driver {
  return {
    query: serverQuery(sql),
    exec: async (script) => void await sql.unsafe(script).simple(),
    begin: <T>(fn: (inner: Driver) => Promise<T>) =>
      sql.begin((tx) => fn(serverTxDriver(tx))) as Promise<T>,
  };
}

// postgres.js rolls a transaction back after any failed statement in it, even one the caller
// recovered from, so nested scopes must be its own savepoints rather than hand-written ones.
function serverTxDriver(tx: ServerTx): Driver {
  return {
    query: serverQuery(tx),
    exec: async (script) => void await tx.unsafe(script).simple(),
    begin: <T>(fn: (inner: Driver) => Promise<T>) =>
      tx.savepoint((sp) => fn(serverTxDriver(sp))) as Promise<T>,
  };
}

function reservedDriver(reserved: postgres.ReservedSql<ClientTypes>): Driver {
  return pinnedDriver({
    query: serverQuery(reserved),
    exec: async (script) => void await reserved.unsafe(script).simple(),
  }, 0);
}

function serverQuery(sql: postgres.ISql<ClientTypes>): Driver["query"] {
  return async (text, params, options) => {
    // deno-lint-ignore no-explicit-any
    const pending = sql.unsafe(text, params as any[]);
    const cancel = () => pending.cancel();
    options?.signal?.addEventListener("abort", cancel, { once: true });
    try {
      // A plain array, as PGlite returns: postgres.js's Result also carries count/command/columns.
      return Array.from(await pending);
    } finally {
      options?.signal?.removeEventListener("abort", cancel);
    }
  };
}

/**
 * A connection nobody else uses, so plain BEGIN/COMMIT/ROLLBACK (and SAVEPOINT at depth > 0)
 * are safe.
 */
function pinnedDriver(conn: Pick<Driver, "query" | "exec">, depth: number): Driver {
  const run = (text: string) => conn.query(text, []);
  const name = `ws_sp_${depth}`;
  const [open, commit, rollback] = depth === 0
    ? ["begin", "commit", "rollback"]
    : [`savepoint ${name}`, `release savepoint ${name}`, `rollback to savepoint ${name}`];
  return {
    ...conn,
    begin: async (fn) => {
      await run(open);
      let result;
      try {
        result = await fn(pinnedDriver(conn, depth + 1));
      } catch (e) {
        await run(rollback).catch(() => undefined);
        throw e;
      }
      await run(commit);
      return result;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The Effect face of a driver

/** Carries a failed transaction body through the driver, which rolls back on any throw. */
class BodyFailed {
  constructor(readonly cause: Cause.Cause<unknown>) {}
}

function makeSql(backend: PgBackend, driver: Driver): PgSql {
  const self: PgSql = {
    backend,
    query: <A>(text: string, params: ReadonlyArray<PgParam> = []) =>
      attempt((signal) => driver.query(text, params, { signal })).pipe(
        Effect.mapError((e) => queryFailed(text, e)),
      ) as Effect.Effect<ReadonlyArray<A>, WorldstreamError>,
    exec: (script) =>
      attempt(() => driver.exec(script)).pipe(Effect.mapError((e) => queryFailed(script, e))),
    transaction: <A, E, R>(f: (tx: PgSql) => Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const context = yield* Effect.context<R>();
        const run = Effect.runPromiseExitWith(context);
        return yield* settle<A>((signal) =>
          driver.begin(async (inner) => {
            const exit = await run(f(makeSql(backend, inner)), { signal });
            if (Exit.isFailure(exit)) throw new BodyFailed(exit.cause);
            return exit.value;
          })
        ).pipe(
          Effect.catch((e): Effect.Effect<never, E | WorldstreamError> =>
            e instanceof BodyFailed
              ? Effect.failCause(e.cause as Cause.Cause<E>)
              : Effect.fail(pgError(e))
          ),
        );
      }),
  };
  return self;
}

function attempt<A>(f: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, WorldstreamError> {
  return settle(f).pipe(Effect.mapError((e) => pgError(e)));
}

/**
 * A promise as an Effect that, when interrupted, signals the work to stop and then waits for it
 * to settle: a transaction is rolled back and a statement finished before interruption returns.
 */
function settle<A>(f: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, unknown> {
  return Effect.callback<A, unknown>((resume) => {
    const controller = new AbortController();
    const settled = Promise.resolve()
      .then(() => f(controller.signal))
      .then((a) => resume(Effect.succeed(a)), (e) => resume(Effect.fail(e)));
    return Effect.promise(() => {
      controller.abort();
      return settled;
    });
  });
}

// SQLSTATE classes that mean "no usable connection" rather than "this statement is wrong".
const UNAVAILABLE_STATES = /^(08|28|3D|53|57P)/;
const UNAVAILABLE_CODES = /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_\w+)$/;

function pgError(e: unknown): WorldstreamError {
  if (e instanceof WorldstreamError) return e;
  if (e instanceof PgliteUnavailable) return fail("PG_UNAVAILABLE", e.message);
  if (e instanceof PgliteLocked) return fail("PGLITE_LOCKED", e.message);
  const code = errorCode(e);
  if (code === undefined) return fail("PG_QUERY_FAILED", `Postgres query failed: ${firstLine(e)}`);
  // 57014 is any cancellation; only the server's own statement_timeout says so in its message.
  if (code === "57014" && /statement timeout/i.test(firstLine(e))) {
    return fail(
      "PG_STATEMENT_TIMEOUT",
      `Postgres cancelled a statement that ran past its statement_timeout (wiring.database.statement_timeout_ms) [${code}]: ${
        firstLine(e)
      }`,
    );
  }
  if (UNAVAILABLE_CODES.test(code) || (isSqlState(code) && UNAVAILABLE_STATES.test(code))) {
    return fail("PG_UNAVAILABLE", `Postgres is unavailable [${code}]: ${firstLine(e)}`);
  }
  return fail("PG_QUERY_FAILED", `Postgres query failed [${code}]: ${firstLine(e)}`);
}

function queryFailed(text: string, e: unknown): WorldstreamError {
  const error = pgError(e);
  if (error.reason !== "PG_QUERY_FAILED" && error.reason !== "PG_STATEMENT_TIMEOUT") return error;
  const snippet = text.replace(/--[^\n]*/g, "").replace(/\s+/g, " ").trim().slice(0, 80);
  return fail(error.reason, `${error.message} (in: ${snippet})`);
}

function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && code !== "" ? code : undefined;
}

function isSqlState(code: string): boolean {
  return /^[0-9A-Z]{5}$/.test(code);
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0];
}

/** Reads `sql/postgres/queries/<name>.sql` (queries live in .sql files, loaded once per module). */
export function pgQuery(name: string): string {
  return Deno.readTextFileSync(new URL(`../sql/postgres/queries/${name}.sql`, import.meta.url));
}

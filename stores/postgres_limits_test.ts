/**
 * The server backend's limits from the profile (`wiring.database.pool_max`,
 * `statement_timeout_ms`, `connect_timeout_ms`): each one changes what a user sees, on a real
 * server (DATABASE_URL; skipped without it) and, for the connection deadline, on a socket that
 * accepts and never answers.
 */
import assert from "node:assert/strict";
import { Effect, Layer, type Scope } from "effect";
import { postgresLayer } from "../actors/runtime.ts";
import { loadProfile } from "../core/profile.ts";
import { type PgSql, Postgres, type ServerOptions, serverOptionsOf } from "./postgres.ts";
import { failure, SERVER_URL, serverDatabase } from "./postgres_testing.ts";

const noServer = SERVER_URL === undefined;
const skipped = noServer ? " (skipped: DATABASE_URL is not set)" : "";

function serverTest(
  name: string,
  body: (url: string) => Effect.Effect<void, unknown, Scope.Scope>,
) {
  Deno.test({
    name: `${name}${skipped}`,
    ignore: noServer,
    fn: () =>
      Effect.runPromise(Effect.scoped(serverDatabase.pipe(Effect.flatMap((url) => body(url))))),
  });
}

function onServer<A, E>(
  url: string,
  options: ServerOptions,
  body: Effect.Effect<A, E, Postgres>,
) {
  return body.pipe(Effect.provide(Postgres.layerServer(url, options)));
}

const sleep = (pg: PgSql, seconds: number) => pg.query(`select pg_sleep(${seconds}) as slept`);

serverTest(
  "a statement past statement_timeout_ms fails PG_STATEMENT_TIMEOUT at its deadline, in a transaction and a session too; without it the same statement completes",
  (url) =>
    Effect.gen(function* () {
      const options = serverOptionsOf({ backend: "server", url, statement_timeout_ms: 200 });
      const timed = yield* onServer(
        url,
        options,
        Effect.gen(function* () {
          const pg = yield* Postgres;
          const started = performance.now();
          const plain = yield* failure(sleep(pg, 5));
          const elapsed = performance.now() - started;
          const inTx = yield* failure(pg.transaction((tx) => sleep(tx, 5)));
          const inSession = yield* failure(pg.session((s) => sleep(s, 5)));
          // `session` ends with `reset all`: the pooled connection keeps its startup deadline.
          const afterReset = yield* failure(pg.session((s) => sleep(s, 5)));
          yield* pg.query("select 1"); // the pool is still usable
          return { plain, elapsed, inTx, inSession, afterReset };
        }),
      );
      for (const e of [timed.plain, timed.inTx, timed.inSession, timed.afterReset]) {
        assert.equal(e.reason, "PG_STATEMENT_TIMEOUT", e.message);
        assert.match(e.message, /statement_timeout_ms/);
        assert.match(e.message, /pg_sleep/, "names the statement");
      }
      assert.ok(timed.elapsed >= 150 && timed.elapsed < 3000, `took ${timed.elapsed} ms`);

      const untimed = yield* onServer(
        url,
        serverOptionsOf({ backend: "server", url }),
        Effect.gen(function* () {
          return yield* sleep(yield* Postgres, 0.4);
        }),
      );
      assert.equal(untimed.length, 1);
    }),
);

serverTest(
  "pool_max bounds the connections the pool opens, as pg_stat_activity sees them",
  (url) =>
    Effect.gen(function* () {
      const peakWith = (poolMax: number) =>
        Effect.gen(function* () {
          const observer = yield* Postgres;
          const count = observer.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid()
               and application_name = 'worldstream'`,
          ).pipe(Effect.map((rows) => rows[0].n));
          return yield* onServer(
            url,
            serverOptionsOf({ backend: "server", url, pool_max: poolMax }),
            Effect.gen(function* () {
              const pg = yield* Postgres;
              let peak = 0;
              let done = false;
              const sampler = Effect.gen(function* () {
                while (!done) {
                  peak = Math.max(peak, yield* count);
                  yield* Effect.sleep(20);
                }
              });
              const started = performance.now();
              yield* Effect.all([
                Effect.all(Array.from({ length: 6 }, () => sleep(pg, 0.4)), {
                  concurrency: "unbounded",
                }).pipe(Effect.ensuring(Effect.sync(() => void (done = true)))),
                sampler,
              ], { concurrency: "unbounded" });
              return { peak, elapsed: performance.now() - started };
            }),
          );
        }).pipe(Effect.provide(Postgres.layerServer(url, { max: 1 })));
      const two = yield* peakWith(2);
      const five = yield* peakWith(5);
      assert.equal(two.peak, 2, JSON.stringify(two));
      // Six statements of 0.4 s on two connections take three rounds.
      assert.ok(two.elapsed >= 1150, JSON.stringify(two));
      assert.equal(five.peak, 5, JSON.stringify(five));
    }),
);

Deno.test("connect_timeout_ms bounds opening a connection to a server that never answers: PG_UNAVAILABLE naming CONNECT_TIMEOUT", async () => {
  // A socket that accepts and then says nothing, as a hung server or a black-holing proxy does.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Array<Deno.Conn> = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const url = `postgres://postgres@127.0.0.1:${(listener.addr as Deno.NetAddr).port}/worldstream`;
  const open = async (ms: number) => {
    const started = performance.now();
    const error = await Effect.runPromise(
      failure(
        Layer.build(
          Postgres.layerServer(
            url,
            serverOptionsOf({ backend: "server", url, connect_timeout_ms: ms }),
          ),
        ).pipe(Effect.scoped),
      ),
    );
    return { error, elapsed: performance.now() - started };
  };
  try {
    const short = await open(300);
    const long = await open(1500);
    for (const { error } of [short, long]) {
      assert.equal(error.reason, "PG_UNAVAILABLE");
      assert.match(error.message, /CONNECT_TIMEOUT/);
      assert.match(error.message, /127\.0\.0\.1/);
    }
    assert.ok(short.elapsed >= 250 && short.elapsed < 1400, `300 ms took ${short.elapsed}`);
    assert.ok(long.elapsed >= 1400, `1500 ms took ${long.elapsed}`);
  } finally {
    listener.close();
    await accepting.catch(() => undefined);
    for (const conn of held) conn.close();
  }
});

serverTest(
  "the shipped profile's statement deadline comes from WORLDSTREAM_PG_STATEMENT_TIMEOUT_MS and reaches the runtime's Postgres",
  (url) =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => Deno.makeTempDir({ prefix: "ws-pg-limits-" })),
        (d) => Effect.promise(() => Deno.remove(d, { recursive: true })),
      );
      const env = {
        WORLDSTREAM_RUNS_ROOT: dir,
        CONTROL_BUS_ROOT: `${dir}/bus`,
        WORLDSTREAM_DB_BACKEND: "server",
        DATABASE_URL: url,
      };
      const deadlineOf = (extra: Record<string, string>) =>
        Effect.gen(function* () {
          const profile = yield* loadProfile("local", { ...env, ...extra });
          return yield* Effect.gen(function* () {
            const rows = yield* (yield* Postgres).query<{ t: string }>(
              "select current_setting('statement_timeout') as t",
            );
            return { setting: rows[0].t, db: profile.wiring.database };
          }).pipe(Effect.provide(postgresLayer(profile)));
        });
      const byDefault = yield* deadlineOf({});
      assert.equal(byDefault.setting, "30s");
      assert.equal(byDefault.db.pool_max, 10);
      assert.equal(byDefault.db.connect_timeout_ms, 10_000);
      const set = yield* deadlineOf({ WORLDSTREAM_PG_STATEMENT_TIMEOUT_MS: "250" });
      assert.equal(set.setting, "250ms");
      const off = yield* deadlineOf({ WORLDSTREAM_PG_STATEMENT_TIMEOUT_MS: "0" });
      assert.equal(off.setting, "0", "0 leaves statements without a deadline");
    }),
);

Deno.test("a pool_max, statement or connect timeout that is not a whole number in range is PROFILE_INVALID naming the key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ws-pg-limits-" });
  try {
    for (
      const [variable, key, value] of [
        ["WORLDSTREAM_PG_POOL_MAX", "pool_max", "0"],
        ["WORLDSTREAM_PG_STATEMENT_TIMEOUT_MS", "statement_timeout_ms", "1.5"],
        ["WORLDSTREAM_PG_CONNECT_TIMEOUT_MS", "connect_timeout_ms", "soon"],
      ]
    ) {
      const error = await Effect.runPromise(failure(loadProfile("local", {
        WORLDSTREAM_RUNS_ROOT: dir,
        CONTROL_BUS_ROOT: `${dir}/bus`,
        [variable]: value,
      })));
      assert.equal(error.reason, "PROFILE_INVALID");
      assert.match(error.message, new RegExp(`wiring\\.database\\.${key}`));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

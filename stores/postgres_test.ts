import assert from "node:assert/strict";
import { ConfigProvider, Deferred, Effect, Fiber, Layer } from "effect";
import { fail } from "../schemas/errors.ts";
import { Postgres, redactDsn } from "./postgres.ts";
import { failure, pgTest, tempDir } from "./postgres_testing.ts";

const createItems = "create table items (id int primary key, label text not null)";

function countItems() {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    const [row] = yield* pg.query<{ n: number }>("select count(*)::int as n from items");
    return row.n;
  });
}

pgTest(
  "query binds $1..$n parameters and returns rows as plain values",
  (ctx) =>
    Effect.gen(function* () {
      const pg = yield* Postgres;
      assert.equal(pg.backend, ctx.backend);
      const rows = yield* pg.query<Record<string, unknown>>(
        "select $1::int + $2::int as sum, $3::text as label, $4::jsonb as doc, $5::int8 as big, " +
          "$6::text[] as tags, 1.50::numeric as price, $7::timestamptz as at, $8::bytea as bytes, " +
          "$9::int8 as from_bigint, $10::jsonb as list, $11::jsonb as quoted, $12::text as nothing",
        [
          2,
          40,
          "hello",
          { a: [1, 2] },
          9_007_199_254_740_991,
          ["x", "y"],
          new Date(0),
          new Uint8Array([0, 1, 255]),
          10n,
          [1, "a"],
          "plain",
          null,
        ],
      );
      assert.deepEqual(rows, [{
        sum: 42,
        label: "hello",
        doc: { a: [1, 2] },
        big: 9_007_199_254_740_991,
        tags: ["x", "y"],
        price: "1.50",
        at: new Date(0),
        bytes: new Uint8Array([0, 1, 255]),
        from_bigint: 10,
        list: [1, "a"],
        quoted: "plain",
        nothing: null,
      }]);
    }),
);

pgTest("statements persist and read back through parameters", () =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    yield* pg.query(createItems);
    yield* pg.query("insert into items values ($1, $2), ($3, $4)", [1, "one", 2, "two"]);
    const rows = yield* pg.query<{ label: string }>("select label from items where id = $1", [2]);
    assert.deepEqual(rows, [{ label: "two" }]);
  }));

pgTest("exec runs a script of several statements", () =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    yield* pg.exec(
      `${createItems}; insert into items values (1, 'a'); insert into items values (2, 'b');`,
    );
    assert.equal(yield* countItems(), 2);
  }));

pgTest(
  "a failed statement reports PG_QUERY_FAILED with its SQLSTATE",
  () =>
    Effect.gen(function* () {
      const pg = yield* Postgres;
      const error = yield* failure(pg.query("select * from no_such_table where id = $1", [1]));
      assert.equal(error.reason, "PG_QUERY_FAILED");
      assert.ok(error.message.includes("[42P01]"), error.message);
      assert.ok(error.message.includes(`relation "no_such_table" does not exist`), error.message);
    }),
);

pgTest("a transaction commits when its body succeeds", () =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    yield* pg.query(createItems);
    const result = yield* pg.transaction((tx) =>
      Effect.gen(function* () {
        yield* tx.query("insert into items values ($1, $2)", [1, "one"]);
        yield* tx.query("insert into items values ($1, $2)", [2, "two"]);
        return "done";
      })
    );
    assert.equal(result, "done");
    assert.equal(yield* countItems(), 2);
  }));

pgTest(
  "a transaction rolls back and keeps the body's own error when the body fails",
  () =>
    Effect.gen(function* () {
      const pg = yield* Postgres;
      yield* pg.query(createItems);
      const error = yield* failure(pg.transaction((tx) =>
        Effect.gen(function* () {
          yield* tx.query("insert into items values ($1, $2)", [1, "one"]);
          return yield* fail("INTERNAL_ERROR", "Changed my mind");
        })
      ));
      assert.equal(error.reason, "INTERNAL_ERROR");
      assert.equal(yield* countItems(), 0);
    }),
);

pgTest("a transaction rolls back when one of its statements fails", () =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    yield* pg.query(createItems);
    const error = yield* failure(pg.transaction((tx) =>
      Effect.gen(function* () {
        yield* tx.query("insert into items values ($1, $2)", [1, "one"]);
        yield* tx.query("insert into items values ($1, $2)", [1, "again"]);
      })
    ));
    assert.equal(error.reason, "PG_QUERY_FAILED");
    assert.ok(error.message.includes("[23505]"), error.message);
    assert.equal(yield* countItems(), 0);
  }));

pgTest(
  "a nested transaction is a savepoint: its failure undoes only its own work",
  () =>
    Effect.gen(function* () {
      const pg = yield* Postgres;
      yield* pg.query(createItems);
      yield* pg.transaction((tx) =>
        Effect.gen(function* () {
          yield* tx.query("insert into items values ($1, $2)", [1, "outer"]);
          const duplicate = yield* failure(tx.transaction((inner) =>
            Effect.gen(function* () {
              yield* inner.query("insert into items values ($1, $2)", [2, "inner"]);
              yield* inner.query("insert into items values ($1, $2)", [1, "duplicate"]);
            })
          ));
          assert.equal(duplicate.reason, "PG_QUERY_FAILED");
          yield* tx.transaction((inner) => inner.query("insert into items values (3, 'kept')"));
        })
      );
      const rows = yield* pg.query<{ id: number }>("select id from items order by id");
      assert.deepEqual(rows, [{ id: 1 }, { id: 3 }]);
    }),
);

pgTest(
  "an interrupted transaction rolls back and leaves the database usable",
  () =>
    Effect.gen(function* () {
      const pg = yield* Postgres;
      yield* pg.query(createItems);
      const inserted = yield* Deferred.make<void>();
      const fiber = yield* pg.transaction((tx) =>
        Effect.gen(function* () {
          yield* tx.query("insert into items values ($1, $2)", [1, "one"]);
          yield* Deferred.succeed(inserted, undefined);
          return yield* Effect.never;
        })
      ).pipe(Effect.forkChild);
      yield* Deferred.await(inserted);
      yield* Fiber.interrupt(fiber);
      assert.equal(yield* countItems(), 0);
    }),
);

pgTest("a session keeps one connection for session state", () =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    const pids = yield* pg.session((s) =>
      Effect.gen(function* () {
        yield* s.query("select set_config('application_name', $1, false)", ["ws-session-test"]);
        const a = yield* s.query<{ pid: number; app: string }>(
          "select pg_backend_pid() as pid, current_setting('application_name') as app",
        );
        const b = yield* s.transaction((tx) =>
          tx.query<{ pid: number; app: string }>(
            "select pg_backend_pid() as pid, current_setting('application_name') as app",
          )
        );
        return [...a, ...b];
      })
    );
    assert.deepEqual(pids[0], pids[1]);
    assert.equal(pids[0].app, "ws-session-test");
  }));

pgTest("health answers", () =>
  Effect.gen(function* () {
    const pg = yield* Postgres;
    yield* pg.health;
  }));

Deno.test("an unreachable server fails with PG_UNAVAILABLE and never shows its password", async () => {
  const url = "postgres://worldstream:hunter2@127.0.0.1:1/worldstream";
  const error = await Effect.runPromise(
    failure(
      Layer.build(Postgres.layerServer(url, { connectTimeoutSeconds: 2 })).pipe(Effect.scoped),
    ),
  );
  assert.equal(error.reason, "PG_UNAVAILABLE");
  assert.ok(!error.message.includes("hunter2"), error.message);
  assert.ok(
    error.message.includes("postgres://worldstream:***@127.0.0.1:1/worldstream"),
    error.message,
  );
});

Deno.test("layerFromEnv opens PGlite in the default folder when DATABASE_URL is unset", async () => {
  const backend = await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir;
      return yield* Effect.gen(function* () {
        const pg = yield* Postgres;
        return pg.backend;
      }).pipe(Effect.provide(Postgres.layerFromEnv(`${dir}/db`)));
    })).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({})))),
  );
  assert.equal(backend, "pglite");
});

Deno.test("layerFromEnv connects to the server named by DATABASE_URL", async () => {
  const url = "postgres://worldstream:hunter2@127.0.0.1:1/worldstream";
  const error = await Effect.runPromise(
    failure(
      Layer.build(Postgres.layerFromEnv("/nonexistent/unused")).pipe(
        Effect.scoped,
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ DATABASE_URL: url }))),
      ),
    ),
  );
  assert.equal(error.reason, "PG_UNAVAILABLE");
  assert.ok(error.message.includes("127.0.0.1:1"), error.message);
});

Deno.test("redactDsn hides passwords in URL and keyword DSNs", () => {
  assert.equal(
    redactDsn("postgres://app:s3cr%40t@db.internal:5432/ws?sslmode=require"),
    "postgres://app:***@db.internal:5432/ws?sslmode=require",
  );
  assert.equal(
    redactDsn("postgresql://app@db/ws?password=s3cret"),
    "postgresql://app@db/ws?password=***",
  );
  assert.equal(
    redactDsn("postgres://postgres@127.0.0.1:55432/worldstream"),
    "postgres://postgres@127.0.0.1:55432/worldstream",
  );
  assert.equal(
    redactDsn("host=db user=app password='s3 cret' dbname=ws"),
    "host=db user=app password=*** dbname=ws",
  );
  // Not a valid URL (a space in the host), yet the password must still go.
  assert.equal(redactDsn("postgres://app:s3cret@db host/ws"), "postgres://app:***@db host/ws");
});

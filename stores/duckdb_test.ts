import assert from "node:assert/strict";
import { Effect, Layer } from "effect";
import { WorldstreamError } from "../schemas/errors.ts";
import { DuckDb } from "./duckdb.ts";

// DuckDB's own refusals come out of the one door as DUCKDB_ERROR with DuckDB's first line, so
// an operator sees what DuckDB objected to (callers that know better map it to their own code).

async function failure(effect: Effect.Effect<unknown, unknown>): Promise<WorldstreamError> {
  const error = await Effect.runPromise(Effect.flip(effect));
  assert.ok(error instanceof WorldstreamError, `Expected a WorldstreamError, got ${error}`);
  return error;
}

Deno.test("a memory limit DuckDB cannot read (WORLDSTREAM_DUCKDB_MEMORY) fails DUCKDB_ERROR at open", async () => {
  const e = await failure(Effect.scoped(Layer.build(DuckDb.layer({ memoryLimit: "lots" }))));
  assert.equal(e.reason, "DUCKDB_ERROR");
  assert.match(e.message, /^DuckDB open with \{"memory_limit":"lots"\} failed: /);
});

Deno.test("a query DuckDB refuses fails DUCKDB_ERROR with DuckDB's reason, and the session stays usable", async () => {
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const session = yield* (yield* DuckDb).session;
      const e = yield* Effect.flip(session.rows("SELECT * FROM no_such_table"));
      assert.equal(e.reason, "DUCKDB_ERROR");
      assert.match(e.message, /^DuckDB query failed: .*no_such_table/);
      assert.deepEqual(yield* session.rows("SELECT 1 AS one"), [{ one: 1 }]);
    })).pipe(Effect.provide(DuckDb.layer({ threads: 1 }))),
  );
});

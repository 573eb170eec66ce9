import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer } from "effect";
import { WorldstreamError } from "../schemas/errors.ts";
import { unreachablePostgres } from "../stores/postgres_testing.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { Wal } from "./wal/writer.ts";

// The READY ledger keeps its summary in a local file that it reads at start. A summary path it
// cannot read must stop the start with READY_LEDGER_IO_FAILED naming the file: starting with an
// empty summary would forget which READYs were already streamed.

Deno.test("a READY ledger summary path that is a folder fails READY_LEDGER_IO_FAILED naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ready_ledger_io_test_" });
  try {
    const file = join(dir, "ready_ledger.ndjson");
    await Deno.mkdir(file);
    const layer = ReadyLedger.layer({ file }).pipe(
      Layer.provide(Wal.layer({ dir: join(dir, "wal") })),
      Layer.provide(unreachablePostgres()),
    );
    const e = await Effect.runPromise(Effect.flip(Effect.scoped(Layer.build(layer))));
    assert.ok(e instanceof WorldstreamError, `Expected a WorldstreamError, got ${e}`);
    assert.equal(e.reason, "READY_LEDGER_IO_FAILED");
    assert.match(e.message, new RegExp(`^READY ledger could not read ${file}: `));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

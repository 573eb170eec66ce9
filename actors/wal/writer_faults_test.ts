import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Layer } from "effect";
import { WorldstreamError } from "../../schemas/errors.ts";
import { readDrainedHead, writeDrainedHead } from "./drained_head.ts";
import { Wal } from "./writer.ts";
import { walRecord } from "../../stores/wal_records.ts";

// The WAL and its drained-head file on inputs they cannot use: a folder that cannot be made,
// use after close, a head file that is not a head. Each fails with its code and the path, and
// nothing waits forever.

const TMP = await Deno.makeTempDir({ prefix: "wal_faults_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
let dirs = 0;

async function freshDir(): Promise<string> {
  const dir = join(TMP, `case-${++dirs}`);
  await Deno.mkdir(dir);
  return dir;
}

async function failure(effect: Effect.Effect<unknown, unknown>): Promise<WorldstreamError> {
  const error = await Effect.runPromise(Effect.flip(effect));
  assert.ok(error instanceof WorldstreamError, `Expected a WorldstreamError, got ${error}`);
  return error;
}

const T0 = Date.parse("2026-03-01T12:00:00.000Z");
const record = (i: number) =>
  walRecord("audit", { kind: "TEST_EVENT", detail: { i } }, new Date(T0 + i));

Deno.test("appending to a WAL after its scope closed fails WAL_CLOSED naming the folder", async () => {
  const dir = join(await freshDir(), "wal");
  const wal = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const wal = Context.get(yield* Layer.build(Wal.layer({ dir })), Wal);
    yield* wal.append([record(1)]);
    return wal;
  })));
  const e = await failure(wal.append([record(2)]));
  assert.equal(e.reason, "WAL_CLOSED");
  assert.equal(e.message, `WAL in ${dir} is closed`);
  // What was appended before the close is there on reopening; the refused append is not.
  const pending = await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      return yield* Context.get(yield* Layer.build(Wal.layer({ dir })), Wal).pending;
    })),
  );
  assert.deepEqual(pending.map((r) => r.body.detail), [{ i: 1 }]);
});

Deno.test("a WAL folder under a file fails WAL_IO_FAILED naming it", async () => {
  const parent = await freshDir();
  await Deno.writeTextFile(join(parent, "file"), "not a folder");
  const dir = join(parent, "file", "wal");
  const e = await failure(Effect.scoped(Layer.build(Wal.layer({ dir }))));
  assert.equal(e.reason, "WAL_IO_FAILED");
  assert.match(e.message, new RegExp(`^WAL could not lock ${dir}: `));
});

Deno.test("a drained-head file that is not {seq, hash} fails DRAINED_HEAD_INVALID naming it", async () => {
  const dir = await freshDir();
  const cases = ['{"seq": 3, "ha', '{"seq": -1, "hash": "ab"}', "[1, 2]", "null"];
  for (const [i, text] of cases.entries()) {
    const file = join(dir, `head-${i}.json`);
    await Deno.writeTextFile(file, text);
    const e = await failure(readDrainedHead(file));
    assert.equal(e.reason, "DRAINED_HEAD_INVALID", text);
    assert.match(e.message, new RegExp(`^Drained head ${file} is unreadable: `), text);
  }
});

Deno.test("a drained-head file that cannot be written fails WAL_IO_FAILED and leaves the old head", async () => {
  const dir = await freshDir();
  const file = join(dir, "head.json");
  const head = { seq: 7, hash: "a".repeat(64) };
  await Effect.runPromise(writeDrainedHead(file, head));
  await Deno.writeTextFile(join(dir, "file"), "not a folder");
  const blocked = join(dir, "file", "head.json");
  const e = await failure(writeDrainedHead(blocked, { seq: 8, hash: "b".repeat(64) }));
  assert.equal(e.reason, "WAL_IO_FAILED");
  assert.match(e.message, new RegExp(`^Drained head ${blocked} could not be written: `));
  assert.deepEqual(await Effect.runPromise(readDrainedHead(file)), head);
});

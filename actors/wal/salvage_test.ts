import assert from "node:assert/strict";
import { Effect, type Scope } from "effect";
import { WorldstreamError } from "../../schemas/errors.ts";
import { failure, tempDir } from "../../stores/postgres_testing.ts";
import {
  findFrame,
  FRAME_HEADER_BYTES,
  scanSegment,
  segmentName,
} from "../../stores/wal_format.ts";
import { type WalRecord, walRecord } from "../../stores/wal_records.ts";
import { inspectWal, salvageWal } from "./salvage.ts";
import { parsePayload, Wal, type WalOptions } from "./writer.ts";

// Issue 12: one byte flipped in frame 5 of 14 of the last segment, the 9 frames after it intact,
// was read as a torn tail and all 10 records were cut. Only bad bytes with nothing good after
// them are a torn tail; anything else is WAL_CORRUPT, and `wal inspect` / `wal salvage` deal
// with it.

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body).pipe(Effect.mapError(readable))));
}

function readable(e: unknown): Error {
  if (e instanceof WorldstreamError) return new Error(`${e.reason}: ${e.message}`);
  return e instanceof Error ? e : new Error(String(e));
}

function audit(i: number): WalRecord {
  return walRecord("audit", { kind: "TEST_EVENT", detail: { i, note: "abcdef" } }, new Date(i));
}

function numbers(records: ReadonlyArray<WalRecord>): Array<number> {
  return records.map((r) => (r.body.detail as { i: number }).i);
}

function withWal<A, E, R>(
  options: WalOptions,
  body: (wal: Wal["Service"]) => Effect.Effect<A, E, R>,
) {
  return Effect.gen(function* () {
    return yield* body(yield* Wal);
  }).pipe(Effect.provide(Wal.layer(options)));
}

/** A WAL of `n` audit records in one segment; answers the segment's path and frame offsets. */
function walOf(dir: string, n: number) {
  return Effect.gen(function* () {
    yield* withWal(
      { dir },
      (wal) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => wal.append([audit(i)]), {
          discard: true,
        }),
    );
    const file = `${dir}/${segmentName(1)}`;
    const offsets = scanSegment(Deno.readFileSync(file), parsePayload).frames.map((f) => f.offset);
    assert.equal(offsets.length, n);
    return { file, offsets };
  });
}

test(
  "a byte flipped in frame 5 of 14 of the last segment fails the open with WAL_CORRUPT naming segment and offset, and cuts nothing",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const { file, offsets } = yield* walOf(dir, 14);
    const bytes = Deno.readFileSync(file);
    bytes[offsets[4] + FRAME_HEADER_BYTES + 20] ^= 0x01;
    Deno.writeFileSync(file, bytes);

    const error = yield* failure(withWal({ dir }, () => Effect.void));
    assert.equal(error.reason, "WAL_CORRUPT");
    assert.match(error.message, new RegExp(`${segmentName(1)} is corrupt at offset ${offsets[4]}`));
    assert.match(error.message, new RegExp(`next at offset ${offsets[5]}`));
    assert.match(error.message, /wal inspect --dir .*wal salvage --dir/);
    assert.deepEqual(Deno.readFileSync(file), bytes, "nothing was truncated");

    const inspection = yield* inspectWal(dir);
    assert.equal(inspection.status, "CORRUPT");
    assert.equal(inspection.segments[0].records, 13);
    assert.deepEqual(inspection.segments[0].damage.map((d) => [d.offset, d.end]), [
      [offsets[4], offsets[5]],
    ]);
    assert.match(inspection.segments[0].damage[0].problem, /CRC mismatch/);

    const salvage = yield* salvageWal(dir);
    assert.equal(salvage.status, "SALVAGED");
    assert.equal(salvage.segments[0].records_kept, 13);
    assert.deepEqual(Deno.readFileSync(salvage.segments[0].saved_as), bytes, "original kept");
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.truncated, undefined);
        assert.deepEqual(numbers(yield* wal.pending), [0, 1, 2, 3, ...range(5, 14)]);
        yield* wal.append([audit(14)]);
      }));
    assert.equal((yield* inspectWal(dir)).status, "OK");
    assert.equal((yield* salvageWal(dir)).status, "CLEAN");
  }),
);

test(
  "a middle frame whose length was damaged to run past the end is not taken for a torn tail",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const { file, offsets } = yield* walOf(dir, 6);
    const bytes = Deno.readFileSync(file);
    // A length longer than the rest of the file reads as a frame cut short.
    new DataView(bytes.buffer).setUint32(offsets[2], bytes.length, true);
    Deno.writeFileSync(file, bytes);
    const error = yield* failure(withWal({ dir }, () => Effect.void));
    assert.equal(error.reason, "WAL_CORRUPT");
    assert.match(error.message, new RegExp(`offset ${offsets[2]}: frame cut short`));
    assert.equal((yield* salvageWal(dir)).segments[0].records_kept, 5);
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.deepEqual(numbers(yield* wal.pending), [0, 1, 3, 4, 5]);
      }));
  }),
);

test(
  "a torn last frame is still cut on open, and inspect calls it a torn tail",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const { file, offsets } = yield* walOf(dir, 5);
    const bytes = Deno.readFileSync(file);
    Deno.writeFileSync(file, bytes.subarray(0, offsets[4] + 11));
    const inspection = yield* inspectWal(dir);
    assert.equal(inspection.status, "TORN_TAIL");
    assert.equal(inspection.segments[0].verdict, "torn_tail");
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.truncated?.offset, offsets[4]);
        assert.deepEqual(numbers(yield* wal.pending), [0, 1, 2, 3]);
      }));
  }),
);

test(
  "salvage moves the drained marker to the same record boundary in the rewritten segment",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const { file, offsets } = yield* walOf(dir, 10);
    // Drain the first six records: the second batch's handler fails, so it stays undrained.
    let batches = 0;
    yield* withWal(
      { dir },
      (wal) =>
        wal.drainOnce(() => ++batches === 1 ? Effect.void : Effect.fail("not now"), {
          batchSize: 6,
        }).pipe(Effect.ignore),
    );
    const bytes = Deno.readFileSync(file);
    bytes[offsets[2] + FRAME_HEADER_BYTES + 20] ^= 0x01;
    Deno.writeFileSync(file, bytes);

    const salvage = yield* salvageWal(dir);
    assert.equal(salvage.status, "SALVAGED");
    const frame2 = offsets[3] - offsets[2];
    assert.deepEqual(salvage.drained, { segment: 1, offset: offsets[6] - frame2 });
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.deepEqual(numbers(yield* wal.pending), range(6, 10));
      }));
  }),
);

test(
  "findFrame skips bad headers and JSON text to the next good frame",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const { file } = yield* walOf(dir, 2);
    const good = Deno.readFileSync(file);
    const junk = new TextEncoder().encode('\u0005\u0000\u0000\u0000{"record_id":"x"} ');
    const bytes = new Uint8Array(junk.length + good.length);
    bytes.set(junk);
    bytes.set(good, junk.length);
    assert.equal(findFrame(junk, 0, parsePayload), undefined);
    assert.equal(findFrame(bytes, 0, parsePayload), junk.length);
    const scan = scanSegment(bytes, parsePayload);
    assert.equal(scan.frames.length, 2);
    assert.deepEqual(scan.damage.map((d) => [d.offset, d.end]), [[0, junk.length]]);
  }),
);

function range(from: number, to: number): Array<number> {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

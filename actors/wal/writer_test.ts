import assert from "node:assert/strict";
import { Context, Effect, Exit, Layer, Logger, type Scope } from "effect";
import { GENESIS, makeReceiptChain } from "../../core/receipt_chain.ts";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../../core/receipt_keys.ts";
import { WorldstreamError } from "../../schemas/errors.ts";
import { loadCheckpoint } from "../../stores/checkpoints.ts";
import { Postgres } from "../../stores/postgres.ts";
import { migrate } from "../../stores/postgres_migrate.ts";
import { failure, pgTest, tempDir } from "../../stores/postgres_testing.ts";
import { Receipts } from "../../stores/receipts.ts";
import { Wal, type WalOptions } from "./writer.ts";
import { effectiveCheckpoint, WalDrain, writeToPostgres } from "./drain.ts";
import { FRAME_HEADER_BYTES, segmentName } from "../../stores/wal_format.ts";
import {
  checkpointRecord,
  receiptRecord,
  type WalRecord,
  walRecord,
} from "../../stores/wal_records.ts";

const T0 = Date.parse("2026-03-01T12:00:00.000Z");

/** Warnings and errors logged by the test in flight. */
let logged: Array<string> = [];
const capture = Logger.layer([
  Logger.make((o) => {
    if (o.logLevel === "Warn" || o.logLevel === "Error") {
      logged.push((o.message as ReadonlyArray<unknown>).map(String).join(" "));
    }
  }),
]);

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => {
    logged = [];
    return Effect.runPromise(
      Effect.scoped(body).pipe(Effect.provide(capture), Effect.mapError(readable)),
    );
  });
}

function readable(e: unknown): Error {
  if (e instanceof WorldstreamError) return new Error(`${e.reason}: ${e.message}`);
  return e instanceof Error ? e : new Error(String(e));
}

/** An audit record numbered `i`. */
function audit(i: number, detail: Record<string, unknown> = {}): WalRecord {
  return walRecord("audit", { kind: "TEST_EVENT", detail: { i, ...detail } }, new Date(T0 + i));
}

function numbers(records: ReadonlyArray<WalRecord>): Array<number> {
  return records.map((r) => (r.body.detail as { i: number }).i);
}

function range(from: number, to: number): Array<number> {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

/** Runs `body` with a WAL open on `options.dir`, closing it afterwards. */
function withWal<A, E, R>(
  options: WalOptions,
  body: (wal: Wal["Service"]) => Effect.Effect<A, E, R>,
) {
  return Effect.gen(function* () {
    return yield* body(yield* Wal);
  }).pipe(Effect.provide(Wal.layer(options)));
}

function segmentFiles(dir: string): Array<string> {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".seg")).sort();
}

const collect = (into: Array<WalRecord>) => (records: ReadonlyArray<WalRecord>) =>
  Effect.sync(() => void into.push(...records));

/** Polls `check` until it holds, failing after `ms`. */
function eventually(check: Effect.Effect<boolean>, ms = 10_000) {
  return Effect.gen(function* () {
    const deadline = Date.now() + ms;
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error("Condition never held"));
      yield* Effect.sleep("5 millis");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Appending and recovery

test(
  "records appended before a close are read back in order after reopening",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        yield* wal.append([audit(0), audit(1)]);
        yield* wal.append([audit(2)]);
        const stats = yield* wal.stats;
        assert.equal(stats.records, 3);
        assert.equal(stats.appends, 2);
      }));
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.records, 3);
        assert.equal(wal.recovery.truncated, undefined);
        const pending = yield* wal.pending;
        assert.deepEqual(numbers(pending), [0, 1, 2]);
        assert.deepEqual(pending[0], audit(0));
        yield* wal.append([audit(3)]);
      }));
    yield* withWal(
      { dir },
      (wal) =>
        Effect.map(wal.pending, (pending) => assert.deepEqual(numbers(pending), [0, 1, 2, 3])),
    );
    assert.deepEqual(logged, []);
  }),
);

test(
  "a second writer on the same folder is refused while the first has it open",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* withWal({ dir }, () =>
      Effect.gen(function* () {
        const error = yield* failure(withWal({ dir }, () => Effect.void));
        assert.equal(error.reason, "WAL_LOCKED");
      }));
    yield* withWal({ dir }, (wal) => wal.append([audit(0)]));
  }),
);

test(
  "concurrent appends share fsyncs, and each completes only after an fsync that covers it",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    // Count fsyncs that finished, from outside the WAL.
    const proto = Deno.FsFile.prototype;
    const syncData = proto.syncData;
    let finishedSyncs = 0;
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        proto.syncData = async function (this: Deno.FsFile) {
          await syncData.call(this);
          finishedSyncs += 1;
        };
      }),
      () => Effect.sync(() => void (proto.syncData = syncData)),
    );
    const appenders = 64;
    const rounds = 10;
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        let acknowledged = 0;
        yield* Effect.forEach(range(0, appenders), (fiber) =>
          Effect.gen(function* () {
            for (let round = 0; round < rounds; round++) {
              const before = finishedSyncs;
              yield* wal.append([audit(fiber * rounds + round)]);
              assert.ok(finishedSyncs > before, "an append completed before any fsync after it");
              acknowledged += 1;
              assert.ok((yield* wal.stats).appends >= acknowledged);
            }
          }), { concurrency: "unbounded", discard: true });
        const stats = yield* wal.stats;
        assert.equal(stats.appends, appenders * rounds);
        assert.equal(stats.fsyncs, stats.batches);
        assert.ok(
          stats.fsyncs * 4 <= stats.appends,
          `${stats.fsyncs} fsyncs for ${stats.appends} appends is not group commit`,
        );
        const pending = yield* wal.pending;
        assert.deepEqual(numbers(pending).sort((a, b) => a - b), range(0, appenders * rounds));
      }));
  }),
);

test(
  "segments rotate at their size limit and reopen as one log",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const options = { dir, segmentBytes: 1024 };
    yield* withWal(
      options,
      (wal) => Effect.forEach(range(0, 40), (i) => wal.append([audit(i)]), { discard: true }),
    );
    const files = segmentFiles(dir);
    assert.ok(files.length >= 4, `expected several segments, got ${files}`);
    assert.deepEqual(files, files.map((_, k) => segmentName(k + 1)));
    for (const file of files.slice(0, -1)) {
      const size = Deno.statSync(`${dir}/${file}`).size;
      assert.ok(size <= 1024, `${file} is ${size} bytes`);
    }
    yield* withWal(options, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.segments, files.length);
        assert.deepEqual(numbers(yield* wal.pending), range(0, 40));
        assert.equal((yield* wal.stats).segments, files.length);
      }));
  }),
);

test(
  "a torn last record is detected, logged with its file and offset, cut off, and appends go on",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* withWal(
      { dir },
      (wal) => Effect.forEach(range(0, 5), (i) => wal.append([audit(i)]), { discard: true }),
    );
    const file = `${dir}/${segmentName(1)}`;
    const size = Deno.statSync(file).size;
    const frame = size / 5;
    yield* Effect.promise(() => Deno.truncate(file, size - 7));
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.records, 4);
        assert.deepEqual(wal.recovery.truncated, {
          file,
          offset: 4 * frame,
          problem: "frame cut short",
        });
        assert.equal(logged.length, 1);
        assert.match(logged[0], new RegExp(`${segmentName(1)} is torn at offset ${4 * frame}`));
        assert.equal(Deno.statSync(file).size, 4 * frame);
        assert.deepEqual(numbers(yield* wal.pending), [0, 1, 2, 3]);
        yield* wal.append([audit(5)]);
      }));
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.truncated, undefined);
        assert.deepEqual(numbers(yield* wal.pending), [0, 1, 2, 3, 5]);
      }));
  }),
);

test(
  "a bit flipped in the last record fails its CRC and the record is cut off, not misread",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* withWal(
      { dir },
      (wal) =>
        Effect.forEach(range(0, 3), (i) => wal.append([audit(i, { note: "abcdef" })]), {
          discard: true,
        }),
    );
    const file = `${dir}/${segmentName(1)}`;
    const bytes = Deno.readFileSync(file);
    const frame = bytes.length / 3;
    // Flip one bit inside the JSON of the last record, keeping it valid JSON ("abcdef" → "abcdeg").
    const at = bytes.lastIndexOf("f".charCodeAt(0));
    bytes[at] ^= 0x01;
    Deno.writeFileSync(file, bytes);
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.truncated?.offset, 2 * frame);
        assert.match(wal.recovery.truncated?.problem ?? "", /CRC mismatch/);
        assert.match(logged.join("\n"), /CRC mismatch/);
        const pending = yield* wal.pending;
        assert.deepEqual(numbers(pending), [0, 1]);
        assert.ok(pending.every((r) => r.body.detail !== undefined));
      }));
  }),
);

test(
  "damage to a record in an earlier segment fails the open with WAL_CORRUPT naming file and offset",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const options = { dir, segmentBytes: 512 };
    yield* withWal(
      options,
      (wal) => Effect.forEach(range(0, 20), (i) => wal.append([audit(i)]), { discard: true }),
    );
    assert.ok(segmentFiles(dir).length >= 3);
    const file = `${dir}/${segmentName(2)}`;
    const bytes = Deno.readFileSync(file);
    const frame = new DataView(bytes.buffer).getUint32(0, true) + FRAME_HEADER_BYTES;
    bytes[frame + FRAME_HEADER_BYTES + 5] ^= 0x10;
    Deno.writeFileSync(file, bytes);
    const error = yield* failure(withWal(options, () => Effect.void));
    assert.equal(error.reason, "WAL_CORRUPT");
    assert.match(error.message, new RegExp(`${segmentName(2)} is corrupt at offset ${frame}: CRC`));
    // Nothing was truncated or deleted.
    assert.equal(Deno.readFileSync(file).length, bytes.length);
  }),
);

test(
  "records that are not valid WAL records are refused whole",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        const badKind = { ...audit(1), kind: "mystery" } as unknown as WalRecord;
        assert.equal(
          (yield* failure(wal.append([audit(0), badKind]))).reason,
          "WAL_RECORD_INVALID",
        );
        const badBody = walRecord("checkpoint", { pack_key: "p" } as never, new Date(T0));
        const error = yield* failure(wal.append([badBody]));
        assert.equal(error.reason, "WAL_RECORD_INVALID");
        assert.match(error.message, /checkpoint body/);
        assert.deepEqual(yield* wal.pending, []);
      }));
  }),
);

test(
  "an append past the quota fails whole with WAL_QUOTA_EXCEEDED, and fits again after a drain",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const frame = yield* withWal({ dir: `${dir}/probe` }, (wal) =>
      Effect.gen(function* () {
        yield* wal.append([audit(0)]);
        return (yield* wal.stats).undrainedBytes;
      }));
    const options = { dir, quotaBytes: frame * 5 + frame / 2, segmentBytes: frame * 2 };
    yield* withWal(options, (wal) =>
      Effect.gen(function* () {
        yield* wal.append([audit(0), audit(1), audit(2)]);
        const before = yield* wal.stats;
        const error = yield* failure(wal.append([audit(3), audit(4), audit(5)]));
        assert.equal(error.reason, "WAL_QUOTA_EXCEEDED");
        assert.match(error.message, new RegExp(`${3 * frame} undrained bytes`));
        assert.match(error.message, new RegExp(`${options.quotaBytes}-byte quota`));
        const after = yield* wal.stats;
        assert.equal(after.undrainedBytes, before.undrainedBytes);
        assert.equal(after.bytes, before.bytes);
        assert.deepEqual(numbers(yield* wal.pending), [0, 1, 2]);

        yield* wal.append([audit(3), audit(4)]);
        const drained: Array<WalRecord> = [];
        assert.equal(yield* wal.drainOnce(collect(drained)), 5);
        assert.deepEqual(numbers(drained), [0, 1, 2, 3, 4]);
        yield* wal.append([audit(5), audit(6), audit(7)]);
        assert.deepEqual(numbers(yield* wal.pending), [5, 6, 7]);
      }));
  }),
);

// ---------------------------------------------------------------------------------------------
// Draining

test(
  "a drain hands records over in batches, records its progress and deletes drained segments",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    const options = { dir, segmentBytes: 600 };
    const batches: Array<number> = [];
    yield* withWal(options, (wal) =>
      Effect.gen(function* () {
        yield* Effect.forEach(range(0, 30), (i) => wal.append([audit(i)]), { discard: true });
        const segments = segmentFiles(dir).length;
        assert.ok(segments >= 4);
        const seen: Array<WalRecord> = [];
        const drained = yield* wal.drainOnce(
          (records) => {
            batches.push(records.length);
            return collect(seen)(records);
          },
          { batchSize: 7 },
        );
        assert.equal(drained, 30);
        assert.deepEqual(batches, [7, 7, 7, 7, 2]);
        assert.deepEqual(numbers(seen), range(0, 30));
        // Only the segment still being written is left.
        assert.deepEqual(segmentFiles(dir), [segmentName(segments)]);
        const stats = yield* wal.stats;
        assert.equal(stats.records, 0);
        assert.equal(stats.undrainedBytes, 0);
        assert.equal(yield* wal.drainOnce(collect(seen)), 0);
        yield* wal.append([audit(30)]);
      }));
    yield* withWal(options, (wal) =>
      Effect.gen(function* () {
        assert.equal(wal.recovery.records, 1);
        assert.deepEqual(numbers(yield* wal.pending), [30]);
      }));
  }),
);

test(
  "a failed handler leaves its batch undrained for the next drain",
  Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* withWal({ dir }, (wal) =>
      Effect.gen(function* () {
        yield* wal.append([audit(0), audit(1), audit(2)]);
        const seen: Array<WalRecord> = [];
        const refused = yield* Effect.exit(
          wal.drainOnce((records) => Effect.fail(`refused ${records.length}`), { batchSize: 2 }),
        );
        assert.ok(Exit.isFailure(refused));
        assert.equal((yield* wal.stats).records, 3);
        assert.equal(yield* wal.drainOnce(collect(seen), { batchSize: 2 }), 3);
        assert.deepEqual(numbers(seen), [0, 1, 2]);
      }));
  }),
);

// ---------------------------------------------------------------------------------------------
// Draining into Postgres

const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "wal-test-hmac-key-0123456789abcdef" };

function withReceipts<A, E, R>(body: Effect.Effect<A, E, R>) {
  return Effect.gen(function* () {
    const signer = yield* signerFromEnv(HMAC_ENV);
    return yield* body.pipe(Effect.provide(Receipts.layer(signer)));
  });
}

const counts = Effect.gen(function* () {
  const pg = yield* Postgres;
  const tables = [
    "ws_checkpoints",
    "ws_receipts",
    "ws_dead_letters",
    "ws_ready_ledger",
    "ws_audit_events",
    "ws_budget_ledger",
    "ws_policy_snapshots",
  ];
  const out: Record<string, number> = {};
  for (const table of tables) {
    const [row] = yield* pg.query<{ n: number }>(`select count(*)::int as n from ${table}`);
    out[table] = row.n;
  }
  return out;
});

/** One record of every kind but receipts, plus two checkpoints of one output. */
function mixedRecords(): Array<WalRecord> {
  const at = new Date(T0);
  const position = (seq: number) => ({
    seq,
    filename: "part-0.parquet",
    file_row_number: seq,
    ts_utc: `2026-01-01T00:00:0${seq}.000000Z`,
  });
  return [
    checkpointRecord("pack-a", "out-1", position(3), at),
    checkpointRecord("pack-a", "out-1", position(7), new Date(T0 + 1)),
    walRecord("dead_letter", {
      run_key: "run-1",
      output_id: "out-1",
      event_id: "e1",
      envelope: { event_id: "e1" },
      attempts: 5,
      last_status: 503,
      reason: "IG_PUSH_RETRY_EXHAUSTED",
    }, at),
    walRecord("ready_ledger", { message_id: "m1", status: "STREAMED", attempt: 1 }, at),
    audit(1),
    audit(2, { extra: true }),
    walRecord("budget", {
      principal: "svc:test",
      run_key: "run-1",
      metric: "events",
      amount: 10,
      total: 110,
      cap: 1000,
    }, at),
    walRecord("policy_snapshot", {
      principal: "svc:test",
      capability: "stream",
      decision: "ALLOW",
      snapshot: { rules: 3 },
    }, at),
  ];
}

pgTest(
  "the drain writes every kind to its table, and draining the same records again adds nothing",
  () =>
    withReceipts(Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      const signer = yield* signerFromEnv(HMAC_ENV);
      const chain = yield* makeReceiptChain(GENESIS, signer);
      yield* withWal({ dir, segmentBytes: 2048 }, (wal) =>
        Effect.gen(function* () {
          yield* wal.append(mixedRecords());
          yield* chain.append(
            range(0, 3).map((i) => ({
              kind: "delivery",
              status: "pass" as const,
              rationale: `batch ${i}`,
              inputs_digest: "a".repeat(64),
              actor: "svc:test",
              run_key: "run-1",
            })),
            (receipts) => wal.append(receipts.map(receiptRecord)),
          );
          // A crash after the Postgres commit and before the drained marker: the batch is
          // written, then the drain fails, so the same records are drained again.
          const crashed = yield* Effect.exit(wal.drainOnce((records) =>
            Effect.andThen(writeToPostgres(records), Effect.fail("crash"))
          ));
          assert.ok(Exit.isFailure(crashed));
          const once = yield* counts;
          assert.equal(yield* wal.drainOnce(writeToPostgres, { batchSize: 4 }), 11);
          assert.deepEqual(yield* counts, once);
          assert.deepEqual(once, {
            ws_checkpoints: 1,
            ws_receipts: 3,
            ws_dead_letters: 1,
            ws_ready_ledger: 1,
            ws_audit_events: 2,
            ws_budget_ledger: 1,
            ws_policy_snapshots: 1,
          });
          assert.equal((yield* wal.stats).records, 0);
        }));

      const pg = yield* Postgres;
      const [checkpoint] = yield* pg.query<{ last_seq: number }>(
        "select last_seq from ws_checkpoints where pack_key = 'pack-a' and output_id = 'out-1'",
      );
      assert.equal(Number(checkpoint.last_seq), 7);
      const [letter] = yield* pg.query<Record<string, unknown>>(
        "select attempts, last_status, status, envelope from ws_dead_letters",
      );
      assert.deepEqual(letter, {
        attempts: 5,
        last_status: 503,
        status: "OPEN",
        envelope: { event_id: "e1" },
      });
      const receipts = yield* pg.query<{ hash: string }>(
        "select hash from ws_receipts order by seq",
      );
      assert.equal(receipts.length, 3);
      const verdict = yield* (yield* Receipts).verify({
        kids: [signer.kid],
        check: () =>
          Effect.succeed(undefined),
      });
      assert.equal(verdict.ok, true);
    })),
);

pgTest(
  "while Postgres is down appends still succeed and the drain retries, then catches up",
  () =>
    withReceipts(
      Effect.gen(function* () {
        logged = [];
        yield* migrate;
        const dir = yield* tempDir;
        const context = yield* Effect.context<Postgres | Receipts>();
        // Until `up`, every batch goes to a server on a closed port.
        let up = false;
        let attempts = 0;
        const down = Postgres.layerServer("postgres://worldstream@127.0.0.1:1/none", {
          connectTimeoutSeconds: 1,
        });
        const handler = (records: ReadonlyArray<WalRecord>) => {
          attempts += 1;
          return up
            ? writeToPostgres(records).pipe(Effect.provideContext(context))
            : writeToPostgres(records).pipe(
              Effect.provide(down),
              Effect.provideService(Receipts, Context.get(context, Receipts)),
            );
        };
        yield* Effect.scoped(
          Effect.gen(function* () {
            const wal = yield* Wal;
            const drain = yield* WalDrain;
            yield* wal.append([audit(0), audit(1)]);
            yield* eventually(Effect.map(drain.status, (s) => s.failures >= 2));
            const status = yield* drain.status;
            assert.match(status.lastError ?? "", /unavailable/);
            yield* wal.append([audit(2)]);
            assert.equal((yield* wal.stats).records, 3);
            assert.ok(logged.some((line) => /WAL drain failed/.test(line)));
            up = true;
            yield* eventually(Effect.map(wal.stats, (s) => s.records === 0));
            assert.equal((yield* drain.status).failures, 0);
            assert.ok(attempts >= 3);
          }).pipe(
            Effect.provide(
              WalDrain.layerWith(handler, { backoffMs: 5, maxBackoffMs: 20, intervalMs: 5 }).pipe(
                Layer.provideMerge(Wal.layer({ dir })),
              ),
            ),
          ),
        );
        const [row] = yield* (yield* Postgres).query<{ n: number }>(
          "select count(*)::int as n from ws_audit_events",
        );
        assert.equal(row.n, 3);
      }).pipe(Effect.provide(capture)),
    ),
  { only: "pglite" },
);

pgTest(
  "the effective checkpoint is the later of Postgres and the undrained WAL",
  () =>
    withReceipts(Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      const position = (seq: number) => ({
        seq,
        filename: `part-${seq}.parquet`,
        file_row_number: seq * 10,
        ts_utc: "2026-01-01T00:00:00.000000Z",
      });
      const at = new Date(T0);
      // Postgres checkpoints, written by the drain itself.
      yield* withWal({ dir: `${dir}/earlier` }, (wal) =>
        Effect.gen(function* () {
          yield* wal.append([
            checkpointRecord("p", "wal-ahead", position(10), at),
            checkpointRecord("p", "db-ahead", position(30), at),
            checkpointRecord("p", "db-only", position(4), at),
          ]);
          yield* wal.drainOnce(writeToPostgres);
        }));
      assert.equal((yield* loadCheckpoint("p", "db-ahead"))?.seq, 30);
      yield* withWal({ dir }, (wal) =>
        wal.append([
          checkpointRecord("p", "wal-ahead", position(20), at),
          checkpointRecord("p", "wal-ahead", position(15), at),
          checkpointRecord("p", "db-ahead", position(5), at),
          checkpointRecord("p", "wal-only", position(2), at),
        ]));
      // Reopened: the WAL's checkpoints come from recovery, not from memory of the appends.
      yield* withWal({ dir }, () =>
        Effect.gen(function* () {
          const seqOf = (output: string) =>
            Effect.map(effectiveCheckpoint("p", output), (c) => c?.seq);
          assert.deepEqual(yield* effectiveCheckpoint("p", "wal-ahead"), position(20));
          assert.equal(yield* seqOf("db-ahead"), 30);
          assert.equal(yield* seqOf("db-only"), 4);
          assert.equal(yield* seqOf("wal-only"), 2);
          assert.equal(yield* seqOf("never"), undefined);
        }));
    })),
);

pgTest(
  "the drain saves control bus positions forward only, and a finished shard stays finished",
  () =>
    withReceipts(Effect.gen(function* () {
      yield* migrate;
      const dir = yield* tempDir;
      const position = (shard: string, seq: string | null, finished: boolean, i: number) =>
        walRecord(
          "bus_position",
          { stream: "fp-control", shard_id: shard, sequence_number: seq, finished },
          new Date(T0 + i),
        );
      yield* withWal({ dir }, (wal) =>
        Effect.gen(function* () {
          yield* wal.append([position("a", "10", false, 1), position("b", "5", true, 2)]);
          yield* wal.drainOnce(writeToPostgres);
          // Late records: an older position of a, b not finished; neither moves anything back.
          yield* wal.append([position("a", "7", false, 3), position("b", "6", false, 4)]);
          yield* wal.drainOnce(writeToPostgres);
          assert.equal((yield* wal.stats).records, 0);
        }));
      const rows = yield* (yield* Postgres).query(
        `select shard_id, sequence_number::text as seq, finished from ws_control_bus_positions
         order by shard_id`,
      );
      assert.deepEqual(rows, [
        { shard_id: "a", seq: "10", finished: false },
        { shard_id: "b", seq: "6", finished: true },
      ]);
    })),
);

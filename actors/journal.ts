/**
 * Journal: the one way actors make something durable. Records and the receipts that vouch for
 * them go into the write-ahead log in ONE append (so a checkpoint never lands without its
 * delivery receipt, nor a dead letter without its receipt); the WAL drain copies them to
 * Postgres. Appending never waits on Postgres.
 *
 * The receipt chain is kept in process by this single writer. It continues from the latest of:
 * the chain head stored in Postgres, the last receipt still undrained in the WAL, and the
 * drained head (actors/wal/drained_head.ts: the last receipt the drain copied out of this WAL).
 *
 * The head rule when Postgres is unreachable at start: continuing from a wrong head would fork
 * the chain, so the journal continues only from a head this runs root knows it sealed last (the
 * WAL's or the drained head's), and says so in a `degraded` log line. When it knows neither (a
 * fresh runs root, whose database may already hold a chain), it waits for Postgres before the
 * runtime starts: forever in `edge` mode (logging while it waits), `headWaitMs` in `backend`
 * mode, then BOOTSTRAP_TIMEOUT naming postgres. Only the head is waited for; nothing is sealed
 * from a guess.
 */
import { Clock, Context, Duration, Effect, Layer, Result, Schedule } from "effect";
import { type ChainHead, makeReceiptChain } from "../core/receipt_chain.ts";
import type { ReceiptSigner } from "../core/receipt_keys.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { Receipt, ReceiptDraft } from "../schemas/receipt.ts";
import { readDrainedHead, receiptHeadOf } from "./wal/drained_head.ts";
import { Receipts } from "../stores/receipts.ts";
import { Wal } from "./wal/writer.ts";
import { receiptRecord, type WalRecord } from "../stores/wal_records.ts";
import { Health } from "./health.ts";

/** How the journal finds its chain head. */
export interface JournalOptions {
  /** The drained-head file the runtime's WAL drain keeps (none: the WAL and Postgres only). */
  readonly drainedHeadFile?: string;
  /**
   * How long to wait for Postgres when the head is known nowhere else, in ms (undefined: until
   * it answers, the edge rule).
   */
  readonly headWaitMs?: number;
  /** How long one read of the stored head may take before Postgres counts as down (3 000). */
  readonly headReadTimeoutMs?: number;
  /** The profile's policy revision, stamped into every receipt (none: receipts carry none). */
  readonly policyRev?: string;
}

/** Durable records + receipts, appended together. */
export class Journal extends Context.Service<Journal, {
  /** Appends `records` and seals `receipts` onto the chain, in one fsynced WAL append. */
  readonly append: (
    records: ReadonlyArray<WalRecord>,
    receipts?: ReadonlyArray<ReceiptDraft>,
  ) => Effect.Effect<ReadonlyArray<Receipt>, WorldstreamError>;
  /** Now, as a Date (Effect Clock). */
  readonly now: Effect.Effect<Date>;
}>()("worldstream/actors/Journal") {
  static readonly layer = (signer: ReceiptSigner, options: JournalOptions = {}) =>
    Layer.effect(
      Journal,
      Effect.gen(function* () {
        const wal = yield* Wal;
        const head = yield* chainHead(options);
        const chain = yield* makeReceiptChain(
          head,
          signer,
          options.policyRev === undefined ? {} : { policyRev: options.policyRev },
        );
        return Journal.of({
          append: (records, drafts = []) =>
            drafts.length === 0 ? wal.append(records).pipe(Effect.as([])) : chain.append(
              drafts,
              (sealed) => wal.append([...records, ...sealed.map(receiptRecord)]),
            ),
          now: Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms))),
        });
      }),
    );
}

/** The later of two heads (by chain position). */
function later(a: ChainHead | undefined, b: ChainHead | undefined): ChainHead | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.seq > a.seq ? b : a;
}

/** Where the chain goes on (see the rule in the file comment). */
const chainHead = Effect.fn("Journal.chainHead")(function* (options: JournalOptions) {
  const wal = yield* Wal;
  const receipts = yield* Receipts;
  const fromWal = receiptHeadOf(yield* wal.pending);
  const drained = options.drainedHeadFile === undefined
    ? undefined
    : yield* readDrainedHead(options.drainedHeadFile);
  const local = later(drained, fromWal);
  const readStored = receipts.head.pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(options.headReadTimeoutMs ?? 3000),
      orElse: () =>
        Effect.fail(fail("PG_UNAVAILABLE", "Postgres did not answer the receipt head query")),
    }),
  );
  const stored = yield* Effect.result(readStored);
  if (Result.isSuccess(stored)) {
    // Postgres answered: it holds everything ever drained to it, so the drained-head file (kept
    // for when Postgres is down) adds nothing. A file ahead of it means this runs root drained
    // into another database (a new DATABASE_URL or PGlite folder): following it would seal
    // receipts this database can never chain, and the drain would stall on the fork.
    if (drained !== undefined && drained.seq > stored.success.seq) {
      yield* Effect.logWarning(
        "the drained-head file is ahead of Postgres: this runs root last drained into another " +
          "database; the chain continues from this database's head",
      ).pipe(Effect.annotateLogs({ file_seq: drained.seq, stored_seq: stored.success.seq }));
    }
    return later(stored.success, fromWal)!;
  }
  if (stored.failure.reason !== "PG_UNAVAILABLE") return yield* stored.failure;
  if (local !== undefined) {
    yield* Effect.logWarning(
      "degraded: Postgres unreachable; the receipt chain continues from this runs root's head",
    ).pipe(Effect.annotateLogs({
      seq: local.seq,
      from: local === fromWal ? "wal" : "drained_head",
      error: stored.failure.message,
    }));
    return local;
  }
  return yield* waitForStoredHead(readStored, stored.failure, options.headWaitMs);
});

/** Waits for Postgres to give the head (the fresh-runs-root case), bounded by `waitMs`. */
const waitForStoredHead = Effect.fn("Journal.waitForStoredHead")(function* (
  readStored: Effect.Effect<ChainHead, WorldstreamError>,
  first: WorldstreamError,
  waitMs: number | undefined,
) {
  const problem = "waiting for Postgres: the receipt chain head is unknown (no receipt in the " +
    "WAL or the drained head), and sealing from a guess would fork the chain";
  yield* Effect.logWarning(problem).pipe(Effect.annotateLogs({ error: first.message }));
  const health = yield* Effect.serviceOption(Health);
  if (health._tag === "Some") yield* health.value.setCondition("receipt_chain", problem);
  const started = yield* Clock.currentTimeMillis;
  const retrying = readStored.pipe(
    Effect.retry({
      while: (e) => e.reason === "PG_UNAVAILABLE",
      schedule: Schedule.min([
        Schedule.exponential(Duration.millis(250)),
        Schedule.spaced(Duration.seconds(5)),
      ]),
    }),
  );
  const head = yield* (waitMs === undefined ? retrying : retrying.pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(waitMs),
      orElse: () =>
        Clock.currentTimeMillis.pipe(Effect.flatMap((now) =>
          Effect.fail(fail(
            "BOOTSTRAP_TIMEOUT",
            `Dependencies still down after ${Math.round((now - started) / 1000)} s: postgres ` +
              "(the receipt chain head is unknown without it)",
          ))
        )),
    }),
  ));
  if (health._tag === "Some") yield* health.value.setCondition("receipt_chain", undefined);
  yield* Effect.logInfo("receipt chain head read from Postgres").pipe(
    Effect.annotateLogs({ seq: head.seq }),
  );
  return head;
});

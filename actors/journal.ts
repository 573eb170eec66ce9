/**
 * Journal: the one way actors make something durable. Records and the receipts that vouch for
 * them go into the write-ahead log in ONE append (so a checkpoint never lands without its
 * delivery receipt, nor a dead letter without its receipt); the WAL drain copies them to
 * Postgres. Nothing here waits on Postgres.
 *
 * The receipt chain is kept in process by this single writer: it continues from the later of
 * the chain head in Postgres and the last receipt still undrained in the WAL.
 */
import { Clock, Context, Effect, Layer } from "effect";
import { makeReceiptChain } from "../core/receipt_chain.ts";
import type { ReceiptSigner } from "../core/receipt_keys.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { Receipt, ReceiptDraft } from "../schemas/receipt.ts";
import { Receipts } from "../stores/receipts.ts";
import { Wal } from "../stores/wal.ts";
import { receiptRecord, type WalRecord } from "../stores/wal_records.ts";

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
  static readonly layer = (signer: ReceiptSigner) =>
    Layer.effect(
      Journal,
      Effect.gen(function* () {
        const wal = yield* Wal;
        const receipts = yield* Receipts;
        const stored = yield* receipts.head;
        let head = stored;
        for (const r of yield* wal.pending) {
          if (r.kind === "receipt") {
            const body = r.body as { seq?: number; hash?: string };
            if (
              typeof body.seq === "number" && body.seq > head.seq && typeof body.hash === "string"
            ) {
              head = { seq: body.seq, hash: body.hash };
            }
          }
        }
        const chain = yield* makeReceiptChain(head, signer);
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

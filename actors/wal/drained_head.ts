/**
 * The drained head: the receipt chain's head as of the last receipt the WAL drain copied to
 * Postgres, kept in a small local file. Once drained, a receipt is gone from the WAL; without
 * this file a runtime restarted while Postgres is down could not tell where its chain goes on,
 * and a chain continued from a wrong head forks. The file is written after a batch reaches
 * Postgres and before the WAL marks it drained, so at every moment the WAL's undrained receipts
 * or this file hold the latest head this runs root ever sealed.
 */
import { Effect } from "effect";
import { replaceFileDurably } from "../../stores/durable_file.ts";
import type { ChainHead } from "../../core/receipt_chain.ts";
import { fail, type WorldstreamError } from "../../schemas/errors.ts";
import type { WalHandler } from "./drain.ts";
import type { WalRecord } from "../../stores/wal_records.ts";

/** The head stored in `file`, or `undefined` when there is no file yet. */
export function readDrainedHead(
  file: string,
): Effect.Effect<ChainHead | undefined, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      let text: string;
      try {
        text = await Deno.readTextFile(file);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      }
      const { seq, hash } = JSON.parse(text) as Record<string, unknown>;
      if (!Number.isSafeInteger(seq) || (seq as number) < 0 || typeof hash !== "string") {
        throw new Error(`${text.trim()} is not {seq, hash}`);
      }
      return { seq: seq as number, hash };
    },
    catch: (e) =>
      fail("DRAINED_HEAD_INVALID", `Drained head ${file} is unreadable: ${firstLine(e)}`),
  });
}

/** Replaces `file` with `head`, atomically and durably (temp file, fsync, rename, folder fsync). */
export function writeDrainedHead(
  file: string,
  head: ChainHead,
): Effect.Effect<void, WorldstreamError> {
  return Effect.tryPromise({
    try: () => replaceFileDurably(file, new TextEncoder().encode(JSON.stringify(head) + "\n")),
    catch: (e) =>
      fail("WAL_IO_FAILED", `Drained head ${file} could not be written: ${firstLine(e)}`),
  });
}

/** The head after the latest receipt among `records`, or `undefined` when there is none. */
export function receiptHeadOf(records: ReadonlyArray<WalRecord>): ChainHead | undefined {
  let head: ChainHead | undefined;
  for (const r of records) {
    if (r.kind !== "receipt") continue;
    const { seq, hash } = r.body as { seq?: unknown; hash?: unknown };
    if (
      typeof seq === "number" && typeof hash === "string" && (head === undefined || seq > head.seq)
    ) {
      head = { seq, hash };
    }
  }
  return head;
}

/** `handler`, then the drained head of its batch written to `file` (before the WAL moves on). */
export function recordingDrainedHead<R>(file: string, handler: WalHandler<R>): WalHandler<R> {
  return (records) =>
    Effect.gen(function* () {
      yield* handler(records);
      const head = receiptHeadOf(records);
      if (head !== undefined) yield* writeDrainedHead(file, head);
    });
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

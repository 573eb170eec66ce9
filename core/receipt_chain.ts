/**
 * The receipt chain: sealing drafts onto its head and checking a chain from the first receipt.
 *
 * Sealing. A receipt takes the next position (`seq` = head.seq + 1, 1 for the first) and its
 * predecessor's hash (`prev_hash`, 64 zeros for the first); `hash` = sha256 of the canonical JSON
 * of the receipt without `hash` and `signature`; `signature` signs `hash`. Unless the writer gave
 * one, `receipt_id` = the first 32 hex of sha256 of the canonical JSON of the rest of the
 * receipt (without hash and signature), so it is unique along a chain.
 *
 * Checking walks the receipts in stored order and reports the first break. For the receipt at
 * `index`, in this order:
 *   EDITED         it is not a well-formed receipt, or its hash does not recompute;
 *   BAD_SIGNATURE  its signature does not verify (unknown key, wrong key, forged value);
 *   MISSING        its seq is past the next one and the skipped seq never turns up later;
 *   REORDERED      its seq is past the next one and the skipped seq turns up later, or its seq
 *                  is at or before one already seen;
 *   BAD_LINK       its seq is the next one but prev_hash is not its predecessor's hash.
 * Because seq and prev_hash are inside the signed hash, nobody without the key can renumber or
 * relink a receipt. A chain cut short at its end (the newest receipts deleted) is still a valid
 * chain: catching that needs the head recorded elsewhere.
 */
import { Clock, Effect, Result, Semaphore } from "effect";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { Receipt, ReceiptDraft, ZERO_HASH } from "../schemas/receipt.ts";
import { canonicalJson, sha256Hex } from "./hash.ts";
import type { ReceiptSigner, ReceiptVerifier } from "./receipt_keys.ts";

/** Where a chain ends: the last receipt's seq and hash ({@link GENESIS} for an empty chain). */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/** The head of an empty chain. */
export const GENESIS: ChainHead = { seq: 0, hash: ZERO_HASH };

/** Why a chain is broken. */
export type ChainProblem = "EDITED" | "MISSING" | "REORDERED" | "BAD_SIGNATURE" | "BAD_LINK";

/** The first break of a chain. */
export interface ChainBreak {
  readonly ok: false;
  /** Position in the walked order, from 0. */
  readonly index: number;
  /** The receipt at that position ("" when it has none). */
  readonly receipt_id: string;
  readonly problem: ChainProblem;
  /** One line for people. */
  readonly detail: string;
}

/** An unbroken chain of `count` receipts ending at `head`. */
export interface ChainIntact {
  readonly ok: true;
  readonly count: number;
  readonly head: ChainHead;
}

/** The outcome of checking a chain. */
export type ChainVerdict = ChainIntact | ChainBreak;

/** The hash a receipt must carry: sha256 of canonical JSON without `hash` and `signature`. */
export function receiptHash(receipt: Readonly<Record<string, unknown>>): string {
  const { hash: _hash, signature: _signature, ...body } = receipt;
  return sha256Hex(canonicalJson(body));
}

/** The head a receipt leaves the chain at. */
export function headOf(receipt: Pick<Receipt, "seq" | "hash">): ChainHead {
  return { seq: receipt.seq, hash: receipt.hash };
}

const checkDraft = decodeWith(ReceiptDraft, "RECEIPT_INVALID", "receipt draft");

/** Seals `draft` as the receipt after `prev`: its seq, link, id, time, hash and signature. */
export const sealReceipt = Effect.fn("sealReceipt")(function* (
  draft: ReceiptDraft,
  prev: ChainHead,
  signer: ReceiptSigner,
) {
  const d = yield* checkDraft(draft);
  const createdAt = d.created_at_utc ?? isoMicros(yield* Clock.currentTimeMillis);
  // What is hashed must be what a reader gets back from JSON, so detail goes through JSON first.
  const detail = yield* Effect.try({
    try: (): Record<string, unknown> => JSON.parse(JSON.stringify(d.detail ?? {})),
    catch: () => fail("RECEIPT_INVALID", "receipt draft: detail is not JSON"),
  });
  const body = {
    seq: prev.seq + 1,
    kind: d.kind,
    status: d.status,
    rationale: d.rationale,
    badges: [...(d.badges ?? [])],
    inputs_digest: d.inputs_digest,
    actor: d.actor,
    ...(d.run_key === undefined ? {} : { run_key: d.run_key }),
    ...(d.output_id === undefined ? {} : { output_id: d.output_id }),
    ...(d.policy_rev === undefined ? {} : { policy_rev: d.policy_rev }),
    detail,
    degraded: d.degraded ?? false,
    created_at_utc: createdAt,
    prev_hash: prev.hash,
  };
  const unsigned = {
    receipt_id: d.receipt_id ?? sha256Hex(canonicalJson(body)).slice(0, 32),
    ...body,
  };
  const hash = receiptHash(unsigned);
  const signature = yield* signer.sign(hash);
  const receipt: Receipt = { ...unsigned, hash, signature };
  return receipt;
});

/** Seals `draft` after `head` and returns the receipt with the head it leaves. */
export const appendToChain = Effect.fn("appendToChain")(function* (
  head: ChainHead,
  draft: ReceiptDraft,
  signer: ReceiptSigner,
) {
  const receipt = yield* sealReceipt(draft, head, signer);
  return { receipt, head: headOf(receipt) };
});

/**
 * A chain's head held in memory by its only writer. `append` seals drafts in order, hands them
 * to `persist` (e.g. a WAL append) and moves the head only when `persist` succeeds, so a failed
 * write leaves no gap. Appends are serialised.
 */
export interface ReceiptChain {
  readonly head: Effect.Effect<ChainHead>;
  readonly append: <E = never, R = never>(
    drafts: ReadonlyArray<ReceiptDraft>,
    persist?: (receipts: ReadonlyArray<Receipt>) => Effect.Effect<void, E, R>,
  ) => Effect.Effect<ReadonlyArray<Receipt>, E | WorldstreamError, R>;
}

/** How a {@link ReceiptChain} seals. */
export interface ReceiptChainOptions {
  /** Stamped into every draft that names no `policy_rev` of its own (the profile's revision). */
  readonly policyRev?: string;
}

/** A chain continuing from `initial` (the last stored receipt's head, or {@link GENESIS}). */
export const makeReceiptChain = Effect.fn("makeReceiptChain")(function* (
  initial: ChainHead,
  signer: ReceiptSigner,
  options: ReceiptChainOptions = {},
) {
  const stamp = (draft: ReceiptDraft): ReceiptDraft =>
    options.policyRev === undefined || draft.policy_rev !== undefined
      ? draft
      : { ...draft, policy_rev: options.policyRev };
  const lock = yield* Semaphore.make(1);
  let head = initial;
  const chain: ReceiptChain = {
    head: Effect.sync(() => head),
    append: (drafts, persist) =>
      lock.withPermit(Effect.gen(function* () {
        const receipts: Array<Receipt> = [];
        let next = head;
        for (const draft of drafts) {
          const sealed = yield* appendToChain(next, stamp(draft), signer);
          receipts.push(sealed.receipt);
          next = sealed.head;
        }
        if (persist !== undefined) yield* persist(receipts);
        head = next;
        return receipts;
      })),
  };
  return chain;
});

/**
 * Checks a chain one receipt at a time, in stored order, without holding it in memory. `step`
 * answers whether it still needs receipts: after the first break it only looks for the seq that
 * break skipped (MISSING or REORDERED), so a caller may stop as soon as it answers false.
 */
export interface ChainWalk {
  /** `edited`: the caller already knows the stored copy disagrees with itself (a store's columns). */
  readonly step: (
    item: unknown,
    options?: { readonly edited?: string | undefined },
  ) => Effect.Effect<boolean>;
  readonly verdict: () => ChainVerdict;
}

const checkReceipt = decodeWith(Receipt, "RECEIPT_INVALID", "receipt");

/** A fresh walk from the start of a chain. */
export function chainWalk(verifier: ReceiptVerifier): ChainWalk {
  let index = 0;
  let head = GENESIS;
  let broken: ChainBreak | undefined;
  let awaitedSeq: number | undefined;

  const breakAt = (item: unknown, problem: ChainProblem, detail: string) => {
    broken = { ok: false, index, receipt_id: idOf(item), problem, detail };
  };

  const check = (item: unknown) =>
    Effect.gen(function* () {
      const decoded = yield* Effect.result(checkReceipt(item));
      if (Result.isFailure(decoded)) {
        return breakAt(item, "EDITED", `Not a receipt any more (${decoded.failure.message})`);
      }
      const r = decoded.success;
      if (receiptHash(r) !== r.hash) {
        return breakAt(r, "EDITED", "Its hash does not recompute: it changed after sealing");
      }
      const bad = yield* verifier.check(r.hash, r.signature);
      if (bad !== undefined) return breakAt(r, "BAD_SIGNATURE", bad);
      const expected = head.seq + 1;
      if (r.seq > expected) {
        awaitedSeq = expected;
        return breakAt(
          r,
          "MISSING",
          expected === r.seq - 1
            ? `Receipt seq ${expected} is missing before seq ${r.seq}`
            : `Receipts seq ${expected}..${r.seq - 1} are missing before seq ${r.seq}`,
        );
      }
      if (r.seq < expected) {
        return breakAt(
          r,
          "REORDERED",
          r.seq === head.seq
            ? `A second receipt has seq ${r.seq} (a copy or a fork)`
            : `Receipt seq ${r.seq} comes after seq ${head.seq}`,
        );
      }
      if (r.prev_hash !== head.hash) {
        return breakAt(
          r,
          "BAD_LINK",
          head.seq === 0
            ? "The first receipt's prev_hash is not 64 zeros"
            : `Its prev_hash is not the hash of receipt seq ${head.seq}`,
        );
      }
      head = headOf(r);
    });

  return {
    step: (item, options) =>
      Effect.gen(function* () {
        if (broken === undefined) {
          if (options?.edited === undefined) yield* check(item);
          else breakAt(item, "EDITED", options.edited);
          index++;
          return broken === undefined || awaitedSeq !== undefined;
        }
        if (awaitedSeq !== undefined && seqOf(item) === awaitedSeq) {
          broken = {
            ...broken,
            problem: "REORDERED",
            detail: `Receipt seq ${awaitedSeq} comes later, at index ${index}`,
          };
          awaitedSeq = undefined;
        }
        index++;
        return awaitedSeq !== undefined;
      }),
    verdict: () => broken ?? { ok: true, count: index, head },
  };
}

/** Checks `receipts` (in stored order) and reports the first break. */
export const verifyChain = Effect.fn("verifyChain")(function* (
  receipts: Iterable<unknown>,
  verifier: ReceiptVerifier,
) {
  const walk = chainWalk(verifier);
  for (const item of receipts) {
    if (!(yield* walk.step(item))) break;
  }
  return walk.verdict();
});

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` for epoch milliseconds (the platform's timestamp form). */
export function isoMicros(epochMillis: number): string {
  return new Date(epochMillis).toISOString().replace("Z", "000Z");
}

function idOf(item: unknown): string {
  const id = (item as { receipt_id?: unknown } | null)?.receipt_id;
  return typeof id === "string" ? id : "";
}

function seqOf(item: unknown): unknown {
  return (item as { seq?: unknown } | null)?.seq;
}

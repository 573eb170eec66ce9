/**
 * worldstream's own receipts: one record per governed outcome (a delivered batch, a dead letter,
 * a budget stop, a policy decision, a run's start and end), in the spirit of the platform's
 * receipts (`status`, `badges`, `inputs_digest`, `degraded`), chained and signed so that an edit,
 * a deletion or a reordering is detectable (`core/receipt_chain.ts` states the rules).
 *
 * A sealed receipt is a closed JSON object. `hash` is the sha256 of the canonical JSON (keys
 * sorted, no spaces) of every other field but `signature`; `signature.value` signs that hash.
 * `seq` is the receipt's position in the chain (1 for the first), inside the hashed body, so a
 * gap tells a missing receipt from a broken link.
 */
import { Schema } from "effect";
import {
  boundedString,
  Hex32,
  Hex64,
  JsonObject,
  NonNegativeInt,
  Rfc3339Micros,
} from "./common.ts";

/** The kinds worldstream writes today; the format admits any lower_snake kind. */
export const RECEIPT_KINDS = [
  "delivery",
  "dead_letter",
  "dead_letter_closed",
  "dead_letter_retry",
  "dead_letter_purged",
  "budget_exceeded",
  "policy_decision",
  "ready_decision",
  "run_start",
  "run_end",
] as const;
export type KnownReceiptKind = typeof RECEIPT_KINDS[number];

/** A receipt kind: lower_snake, so a kind added later still verifies with older code. */
export const ReceiptKind = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_]{0,63}$/, {
    expected: "a lower_snake receipt kind such as delivery",
  }),
);

/** Outcome severity, as the platform's gate receipts grade it. */
export const ReceiptStatus = Schema.Literals(["pass", "warn", "soft_block", "hard_block"]);
export type ReceiptStatus = typeof ReceiptStatus.Type;

/** The signature algorithms a receipt may carry. */
export const SignatureAlg = Schema.Literals(["HMAC-SHA256", "Ed25519"]);
export type SignatureAlg = typeof SignatureAlg.Type;

/** Standard base64 with padding (what `signature.value` holds). */
export const Base64 = Schema.String.check(
  Schema.isPattern(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, {
    expected: "a standard base64 string",
  }),
  Schema.isMinLength(4),
);

/** Who signed the hash, with what, and the signature. */
export const ReceiptSignature = Schema.Struct({
  alg: SignatureAlg,
  /** Names the key (never the key itself), so a verifier can tell a rotated key from a forgery. */
  kid: boundedString(1, 128),
  value: Base64,
});
export type ReceiptSignature = typeof ReceiptSignature.Type;

/** The `prev_hash` of the first receipt of a chain. */
export const ZERO_HASH = "0".repeat(64);

/** A chain position: 1, 2, 3, ... */
export const ReceiptSeq = NonNegativeInt.check(Schema.isGreaterThanOrEqualTo(1));

/** What a writer says about an outcome; everything else is filled in when it is sealed. */
const contentFields = {
  kind: ReceiptKind,
  status: ReceiptStatus,
  /** One line for people: why this outcome. */
  rationale: boundedString(1, 2048),
  /** Short machine tags, e.g. `budget_exceeded`. */
  badges: Schema.Array(boundedString(1, 128)),
  /** sha256 of the inputs the outcome was decided on (e.g. the batch's event ids). */
  inputs_digest: Hex64,
  /** The principal that acted, e.g. `svc:world_stream_producer` or `operator:alice`. */
  actor: boundedString(1, 256),
  run_key: Schema.optionalKey(boundedString(1, 256)),
  output_id: Schema.optionalKey(boundedString(1, 256)),
  /**
   * The profile's `policy.policy_rev` the outcome was reached under. Inside the hashed and
   * signed body; optional only so receipts sealed before it was stamped still verify.
   */
  policy_rev: Schema.optionalKey(boundedString(1, 256)),
  /** Kind-specific facts (for delivery see {@link DeliveryDetail}). */
  detail: JsonObject,
  /** True when the outcome was reached in a degraded mode (e.g. Postgres down, WAL buffering). */
  degraded: Schema.Boolean,
};

/** A sealed, chained and signed receipt. */
export const Receipt = Schema.Struct({
  receipt_id: Hex32,
  seq: ReceiptSeq,
  ...contentFields,
  created_at_utc: Rfc3339Micros,
  prev_hash: Hex64,
  hash: Hex64,
  signature: ReceiptSignature,
});
export type Receipt = typeof Receipt.Type;

/** A receipt before sealing: `badges`, `detail`, `degraded` default to empty/false. */
export const ReceiptDraft = Schema.Struct({
  /** Give one to make appending idempotent (a retried append finds the stored receipt). */
  receipt_id: Schema.optionalKey(Hex32),
  kind: ReceiptKind,
  status: ReceiptStatus,
  rationale: contentFields.rationale,
  badges: Schema.optionalKey(contentFields.badges),
  inputs_digest: Hex64,
  actor: contentFields.actor,
  run_key: contentFields.run_key,
  output_id: contentFields.output_id,
  policy_rev: contentFields.policy_rev,
  detail: Schema.optionalKey(JsonObject),
  degraded: Schema.optionalKey(Schema.Boolean),
  /** Defaults to the Effect Clock's now when sealed. */
  created_at_utc: Schema.optionalKey(Rfc3339Micros),
});
export type ReceiptDraft = typeof ReceiptDraft.Type;

/** The `detail` of a `delivery` receipt: which events of an output went, and what the IG said. */
export const DeliveryDetail = Schema.Struct({
  /** First and last stream-view sequence of the delivered range (inclusive). */
  sequence_from: NonNegativeInt,
  sequence_to: NonNegativeInt,
  events: NonNegativeInt,
  counts: Schema.Struct({
    ADMIT: NonNegativeInt,
    DUPLICATE: NonNegativeInt,
    QUARANTINE: NonNegativeInt,
  }),
});
export type DeliveryDetail = typeof DeliveryDetail.Type;

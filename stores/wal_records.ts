/**
 * What a WAL record carries: an envelope `{record_id, kind, at, body}` and, per kind, a body whose
 * keys are the columns of the Postgres table the drain writes it to (minus `record_id` and the
 * time, which come from the envelope). Bodies are checked when appended, so a record the drain
 * reads back is one it can write.
 */
import { Effect, Exit, Result, Schema } from "effect";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { decodeWith } from "../schemas/decode.ts";
import { JsonObject, NonEmptyString, NonNegativeInt } from "../schemas/common.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { Receipt } from "../schemas/receipt.ts";
import { auditRecordId, READY_STATUSES, readyRecordId } from "./ledger_ids.ts";
import type { ViewPosition } from "./stream_view_read.ts";

/** Every kind of WAL record, one per table the drain writes. */
export const WAL_KINDS = [
  "checkpoint",
  "receipt",
  "dead_letter",
  "ready_ledger",
  "audit",
  "budget",
  "policy_snapshot",
  "dead_letter_retry",
  "bus_position",
  "approval",
  "checkpoint_reset",
] as const;
export type WalKind = typeof WAL_KINDS[number];

const IsoTime = Schema.String.check(
  Schema.isPattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/, {
    expected: "an ISO-8601 date and time with a zone",
  }),
  Schema.makeFilter((text: string) => !Number.isNaN(Date.parse(text)), {
    expected: "a date and time that exists",
  }),
);

/** A record as written: `body` is checked against its kind's schema on append. */
export const WalRecord = Schema.Struct({
  record_id: NonEmptyString,
  kind: Schema.Literals(WAL_KINDS),
  at: IsoTime,
  body: JsonObject,
});
export type WalRecord = typeof WalRecord.Type;

const OptionalText = Schema.optionalKey(Schema.NullOr(Schema.String));
const OptionalObject = Schema.optionalKey(JsonObject);

/**
 * What a checkpoint covers that no delivery receipt vouches for yet (receipts coalesce, see
 * actors/checkpointer.ts): the events from `from_seq` to the checkpoint and their answers. A
 * restart after a crash writes the receipt it is owed, so the chain has no gap.
 */
export const OwedReceipt = Schema.Struct({
  from_seq: NonNegativeInt,
  admitted: NonNegativeInt,
  duplicate: NonNegativeInt,
  quarantined: NonNegativeInt,
  dead_lettered: NonNegativeInt,
});
export type OwedReceipt = typeof OwedReceipt.Type;

/** Decodes a stored checkpoint's `receipt_owed` (it came from a WAL checkpoint body). */
export const decodeOwedReceipt = decodeWith(
  OwedReceipt,
  "WAL_RECORD_INVALID",
  "stored checkpoint's receipt_owed",
);

/** `ws_checkpoints`: the last event an output delivered in order; `at` is `updated_at_utc`. */
export const CheckpointBody = Schema.Struct({
  pack_key: NonEmptyString,
  output_id: NonEmptyString,
  last_seq: NonNegativeInt,
  last_file: Schema.String,
  last_row_index: NonNegativeInt,
  last_ts_utc: Schema.String,
  receipt_owed: Schema.optionalKey(OwedReceipt),
});
export type CheckpointBody = typeof CheckpointBody.Type;

/** A cursor a reset replaced, kept so that the reset can be undone. */
export const PreviousCursor = Schema.Struct({
  last_seq: NonNegativeInt,
  last_file: Schema.String,
  last_row_index: NonNegativeInt,
  last_ts_utc: Schema.String,
});
export type PreviousCursor = typeof PreviousCursor.Type;

/**
 * `ws_checkpoints` moved by an operator (actions/checkpoint_reset.ts): the new position, written
 * unconditionally in WAL order (backwards too), and the cursor it replaced (`previous`). Later
 * checkpoint records of the output go forward from it as usual.
 */
export const CheckpointResetBody = Schema.Struct({
  pack_key: NonEmptyString,
  output_id: NonEmptyString,
  last_seq: NonNegativeInt,
  last_file: Schema.String,
  last_row_index: NonNegativeInt,
  last_ts_utc: Schema.String,
  previous: PreviousCursor,
  actor: NonEmptyString,
});
export type CheckpointResetBody = typeof CheckpointResetBody.Type;

/** `ws_receipts`: the sealed receipt itself (stored by `Receipts.store`, which checks the chain). */
export const ReceiptBody = Receipt;
export type ReceiptBody = Receipt;

/** `ws_dead_letters`: an envelope the gate never admitted. */
export const DeadLetterBody = Schema.Struct({
  run_key: NonEmptyString,
  output_id: NonEmptyString,
  event_id: NonEmptyString,
  envelope: JsonObject,
  attempts: NonNegativeInt,
  last_status: Schema.optionalKey(Schema.NullOr(NonNegativeInt)),
  reason: Schema.String,
  status: Schema.optionalKey(Schema.String),
});
export type DeadLetterBody = typeof DeadLetterBody.Type;

/** `ws_ready_ledger`: one decision on a READY message; `at` is `recorded_at`. */
export const ReadyLedgerBody = Schema.Struct({
  message_id: NonEmptyString,
  status: Schema.Literals(READY_STATUSES),
  reason: OptionalText,
  platform_run_id: OptionalText,
  scenario_run_id: OptionalText,
  attempt: NonNegativeInt.check(Schema.isGreaterThanOrEqualTo(1)),
  detail: OptionalObject,
});
export type ReadyLedgerBody = typeof ReadyLedgerBody.Type;

/** `ws_audit_events`: what happened, for operators. */
export const AuditBody = Schema.Struct({
  kind: Schema.String.check(
    Schema.isPattern(/^[A-Z][A-Z0-9_]{0,63}$/, { expected: "an UPPER_SNAKE audit kind" }),
  ),
  run_key: OptionalText,
  output_id: OptionalText,
  detail: OptionalObject,
});
export type AuditBody = typeof AuditBody.Type;

/** `ws_budget_ledger`: one budget charge with the running total. */
export const BudgetBody = Schema.Struct({
  principal: NonEmptyString,
  run_key: OptionalText,
  output_id: OptionalText,
  metric: NonEmptyString,
  amount: Schema.Int,
  total: Schema.Int,
  cap: Schema.optionalKey(Schema.NullOr(Schema.Int)),
  exceeded: Schema.optionalKey(Schema.Boolean),
  detail: OptionalObject,
});
export type BudgetBody = typeof BudgetBody.Type;

/** `ws_policy_snapshots`: the policy inputs and verdict behind one supervisor decision. */
export const PolicySnapshotBody = Schema.Struct({
  run_key: OptionalText,
  principal: NonEmptyString,
  capability: NonEmptyString,
  decision: NonEmptyString,
  reason: OptionalText,
  policy_digest: OptionalText,
  snapshot: JsonObject,
});
export type PolicySnapshotBody = typeof PolicySnapshotBody.Type;

/**
 * `ws_dead_letter_retries`: one retry of one dead letter (`dead_letter_id` is its record_id) and
 * what came of it; the drain also folds it into the dead letter (OPEN stays open, CLOSED closes).
 */
export const DeadLetterRetryBody = Schema.Struct({
  dead_letter_id: NonEmptyString,
  run_key: NonEmptyString,
  output_id: NonEmptyString,
  event_id: NonEmptyString,
  retry: NonNegativeInt.check(Schema.isGreaterThanOrEqualTo(1)),
  outcome: Schema.Literals(["OPEN", "CLOSED"]),
  decision: Schema.NullOr(Schema.String),
  requests: NonNegativeInt,
  last_status: Schema.NullOr(NonNegativeInt),
  reason: Schema.NullOr(Schema.String),
  message: OptionalText,
  receipt_id: NonEmptyString,
  actor: NonEmptyString,
});
export type DeadLetterRetryBody = typeof DeadLetterRetryBody.Type;

/** Digits of a Kinesis sequence number (up to 128 of them). */
const SequenceNumber = Schema.String.check(
  Schema.isPattern(/^\d{1,128}$/, { expected: "a Kinesis sequence number (decimal digits)" }),
);

/**
 * `ws_control_bus_positions`: how far the control bus listener has settled one shard of one
 * stream: the last record handled (`sequence_number`, null before any) and whether the shard is
 * closed and read to its end (`finished`: its children may be read).
 */
export const BusPositionBody = Schema.Struct({
  stream: NonEmptyString,
  shard_id: NonEmptyString,
  sequence_number: Schema.NullOr(SequenceNumber),
  finished: Schema.Boolean,
});
export type BusPositionBody = typeof BusPositionBody.Type;

/** Where an approval stands: PENDING until decided, then APPROVED, DENIED or EXPIRED. */
export const APPROVAL_STATUSES = ["PENDING", "APPROVED", "DENIED", "EXPIRED"] as const;
export type ApprovalStatus = typeof APPROVAL_STATUSES[number];

/**
 * `ws_approvals`: an action the policy parked (REQUIRE_APPROVAL), whole: who asked, what
 * (capability and the action's request), why (`reason`), until when, and once decided by whom,
 * with what note and outcome. Each record carries the whole row; the drain only moves a PENDING
 * row on (sql/postgres/queries/wal_drain_approvals.sql).
 */
export const ApprovalBody = Schema.Struct({
  approval_id: NonEmptyString,
  capability: NonEmptyString,
  principal: NonEmptyString,
  status: Schema.Literals(APPROVAL_STATUSES),
  request: JsonObject,
  reason: Schema.String,
  created_at: IsoTime,
  expires_at: IsoTime,
  decided_by: Schema.NullOr(Schema.String),
  note: Schema.NullOr(Schema.String),
  outcome: Schema.NullOr(JsonObject),
  /** The decision that parked it, as `explain` prints it (what its policy_denied receipt carries). */
  explanation: Schema.optionalKey(JsonObject),
});
export type ApprovalBody = typeof ApprovalBody.Type;

/** The body type of each kind. */
export interface WalBodies {
  readonly checkpoint: CheckpointBody;
  readonly receipt: ReceiptBody;
  readonly dead_letter: DeadLetterBody;
  readonly ready_ledger: ReadyLedgerBody;
  readonly audit: AuditBody;
  readonly budget: BudgetBody;
  readonly policy_snapshot: PolicySnapshotBody;
  readonly dead_letter_retry: DeadLetterRetryBody;
  readonly bus_position: BusPositionBody;
  readonly approval: ApprovalBody;
  readonly checkpoint_reset: CheckpointResetBody;
}

/** The body schema of each kind. */
export const WAL_BODIES = {
  checkpoint: CheckpointBody,
  receipt: ReceiptBody,
  dead_letter: DeadLetterBody,
  ready_ledger: ReadyLedgerBody,
  audit: AuditBody,
  budget: BudgetBody,
  policy_snapshot: PolicySnapshotBody,
  dead_letter_retry: DeadLetterRetryBody,
  bus_position: BusPositionBody,
  approval: ApprovalBody,
  checkpoint_reset: CheckpointResetBody,
} as const;

const decodeRecord = decodeWith(WalRecord, "WAL_RECORD_INVALID", "WAL record");
const decodeBodies = Object.fromEntries(
  WAL_KINDS.map((kind) => [
    kind,
    decodeWith(WAL_BODIES[kind], "WAL_RECORD_INVALID", `WAL ${kind} body`),
  ]),
) as { readonly [K in WalKind]: (input: unknown) => Effect.Effect<WalBodies[K], WorldstreamError> };
const parseRecord = Schema.decodeUnknownResult(WalRecord);

const PARSE_OPTIONS = { onExcessProperty: "error" } as const;
const isRecord = Schema.decodeUnknownExit(WalRecord);
const isBody = Object.fromEntries(
  WAL_KINDS.map((kind) => [kind, Schema.decodeUnknownExit(WAL_BODIES[kind])]),
) as {
  readonly [K in WalKind]: (
    input: unknown,
    options?: typeof PARSE_OPTIONS,
  ) => Exit.Exit<unknown, unknown>;
};

/** Checks a record and its kind's body; fails with WAL_RECORD_INVALID naming the field. */
export function decodeWalRecord(input: unknown): Effect.Effect<WalRecord, WorldstreamError> {
  // The synchronous check is the append path's fast lane; only a failure pays for the message.
  const record = isRecord(input, PARSE_OPTIONS);
  if (
    Exit.isSuccess(record) &&
    Exit.isSuccess(isBody[record.value.kind](record.value.body, PARSE_OPTIONS))
  ) {
    return Effect.succeed(record.value);
  }
  return Effect.gen(function* () {
    const checked = yield* decodeRecord(input);
    const decodeBody = decodeBodies[checked.kind] as (
      input: unknown,
    ) => Effect.Effect<unknown, WorldstreamError>;
    yield* decodeBody(checked.body).pipe(
      Effect.mapError((e) => fail(e.reason, `${e.message} (record ${checked.record_id})`)),
    );
    return checked;
  });
}

/** Parses a frame's JSON payload as a record envelope, or says what is wrong with it. */
export function parseWalRecord(json: string): WalRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    return `payload is not JSON (${e instanceof Error ? e.message : String(e)})`;
  }
  const result = parseRecord(value, { onExcessProperty: "error" });
  return Result.isSuccess(result)
    ? result.success
    : `payload is not a WAL record (${result.failure.message.split("\n")[0]})`;
}

/** Decodes the body of `record` as its kind's body. */
export function walBody<K extends WalKind>(
  record: WalRecord & { readonly kind: K },
): Effect.Effect<WalBodies[K], WorldstreamError> {
  return decodeBodies[record.kind](record.body) as Effect.Effect<WalBodies[K], WorldstreamError>;
}

/** A record of `kind` at `at`; `recordId` defaults to the kind's deterministic id. */
export function walRecord<K extends WalKind>(
  kind: K,
  body: WalBodies[K],
  at: Date,
  recordId?: string,
): WalRecord {
  return {
    record_id: recordId ?? defaultRecordId(kind, body, at),
    kind,
    at: at.toISOString(),
    body: body as unknown as JsonObject,
  };
}

/**
 * The id a record gets when its writer does not choose one: the READY ledger's and audit log's own
 * ids (so the same decision or event written directly or through the WAL is one row), the output
 * and sequence for a checkpoint, and a digest of kind, time and body for the rest.
 */
export function defaultRecordId<K extends WalKind>(kind: K, body: WalBodies[K], at: Date): string {
  switch (kind) {
    case "ready_ledger": {
      const b = body as ReadyLedgerBody;
      return readyRecordId(b.message_id, b.status, b.attempt, at);
    }
    case "audit": {
      const b = body as AuditBody;
      return auditRecordId(b.kind, b.detail ?? {}, {
        run_key: b.run_key ?? undefined,
        output_id: b.output_id ?? undefined,
        at,
      });
    }
    case "receipt":
      return (body as ReceiptBody).receipt_id;
    case "checkpoint": {
      const b = body as CheckpointBody;
      const owed = b.receipt_owed === undefined ? "" : `|owed:${b.receipt_owed.from_seq}`;
      return sha256Hex(`checkpoint|${b.pack_key}|${b.output_id}|${b.last_seq}${owed}`);
    }
    case "approval": {
      const b = body as ApprovalBody;
      return sha256Hex(`approval|${b.approval_id}|${b.status}`);
    }
    case "bus_position": {
      const b = body as BusPositionBody;
      return sha256Hex(
        `bus_position|${b.stream}|${b.shard_id}|${b.sequence_number ?? ""}|${b.finished}`,
      );
    }
    default:
      return sha256Hex(canonicalJson({ kind, at: at.toISOString(), body }));
  }
}

/** The record of a sealed receipt: its id and time are the receipt's own. */
export function receiptRecord(receipt: Receipt): WalRecord {
  return walRecord("receipt", receipt, new Date(receipt.created_at_utc), receipt.receipt_id);
}

/** The record of a checkpoint advance: everything up to `position` was delivered in order. */
export function checkpointRecord(
  packKey: string,
  outputId: string,
  position: ViewPosition,
  at: Date,
  owed?: OwedReceipt,
): WalRecord {
  return walRecord("checkpoint", {
    pack_key: packKey,
    output_id: outputId,
    last_seq: position.seq,
    last_file: position.filename,
    last_row_index: position.file_row_number,
    last_ts_utc: position.ts_utc,
    ...(owed ? { receipt_owed: owed } : {}),
  }, at);
}

/**
 * The READY ledger's statuses and the record ids of ledger decisions and audit events. A leaf
 * module: the WAL's record schemas need these, and the ledger and audit log write through the
 * WAL, so keeping them here keeps the import graph free of cycles.
 */
import { canonicalJson, sha256Hex } from "../core/hash.ts";

/**
 * Every status a READY consumer records (CONTRACTS.md), plus STREAMED_WITH_DEAD_LETTERS: done,
 * but some events of the run are dead letters (`dead-letters list` shows them); and
 * AWAITING_APPROVAL: the policy asked for an approval of its `wsp.stream`, so the READY is parked
 * as a pending approval (reason APPROVAL_PENDING), nothing sent. Not done and not failed: approving
 * it submits the READY again, which then streams like any other.
 */
export const READY_STATUSES = [
  "STREAMED",
  "STREAMED_WITH_DEAD_LETTERS",
  "FAILED",
  "SKIPPED_DUPLICATE",
  "SKIPPED_OUT_OF_SCOPE",
  "DEFERRED_DOWNSTREAM_NOT_READY",
  "AWAITING_APPROVAL",
] as const;
export type ReadyStatus = typeof READY_STATUSES[number];

/** A ledger row's id: `sha256_hex("{message_id}|{status}|{attempt}|{at ISO-8601}")`. */
export function readyRecordId(
  messageId: string,
  status: ReadyStatus,
  attempt: number,
  at: Date,
): string {
  return sha256Hex(`${messageId}|${status}|${attempt}|${at.toISOString()}`);
}

/** An audit event's id: sha256 of the canonical JSON of `{kind, run_key, output_id, at, detail}`. */
export function auditRecordId(
  kind: string,
  detail: Readonly<Record<string, unknown>>,
  options: {
    readonly run_key?: string | undefined;
    readonly output_id?: string | undefined;
    readonly at: Date;
  },
): string {
  return sha256Hex(canonicalJson({
    kind,
    run_key: options.run_key ?? null,
    output_id: options.output_id ?? null,
    at: options.at.toISOString(),
    detail,
  }));
}

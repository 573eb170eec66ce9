/**
 * The audit log (`ws_audit_events` in Postgres): what happened, for operators — READY signals
 * seen and decided, run lifecycle, operator actions. Append-only and offline-first: an event is
 * appended to the WAL, whose drain copies it to Postgres; nothing here waits on Postgres. An
 * event's id is a digest of the event itself, so writing the same event twice (or replaying a
 * WAL record) leaves one row.
 */
import { Clock, Context, Effect, Layer } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { auditRecordId } from "../stores/ledger_ids.ts";
import { Wal } from "./wal/writer.ts";

export { auditRecordId } from "../stores/ledger_ids.ts";

/** Audit kinds the READY path writes; other components add their own. */
export const READY_AUDIT_KINDS = {
  /** A control-bus message was read (before it is judged). */
  seen: "RUN_READY_SEEN",
  /** READY passed every check and a run was requested. */
  accepted: "RUN_READY_ACCEPTED",
  /** READY failed a check or was out of scope. */
  rejected: "RUN_READY_REJECTED",
  /** READY was already streamed. */
  duplicate: "RUN_READY_DUPLICATE",
  /** Downstream was not ready; READY stays open. */
  deferred: "RUN_READY_DEFERRED",
} as const;

/** Where an event belongs and when it happened. */
export interface AuditOptions {
  readonly run_key?: string;
  readonly output_id?: string;
  /** Defaults to the Effect Clock's now. */
  readonly at?: Date;
}

/** What {@link AuditLog.record} journaled. */
export interface RecordedAudit {
  /** The event's id: its row in Postgres once the WAL drains. */
  readonly record_id: string;
}

const KIND = /^[A-Z][A-Z0-9_]{0,63}$/;

const make = Effect.gen(function* () {
  const wal = yield* Wal;
  const record = Effect.fn("AuditLog.record")(function* (
    kind: string,
    detail: Readonly<Record<string, unknown>> = {},
    options: AuditOptions = {},
  ) {
    if (!KIND.test(kind)) {
      return yield* fail(
        "AUDIT_KIND_INVALID",
        `Audit kind ${JSON.stringify(kind)} is not UPPER_SNAKE`,
      );
    }
    const at = options.at ?? new Date(yield* Clock.currentTimeMillis);
    // As stored: JSON has no `undefined`, so the id is taken over what the row will hold.
    const stored = JSON.parse(JSON.stringify(detail)) as Record<string, unknown>;
    const recordId = auditRecordId(kind, stored, { ...options, at });
    yield* wal.append([{
      record_id: recordId,
      kind: "audit",
      at: at.toISOString(),
      body: {
        kind,
        run_key: options.run_key ?? null,
        output_id: options.output_id ?? null,
        detail: stored,
      },
    }]);
    return { record_id: recordId } satisfies RecordedAudit;
  });
  return AuditLog.of({ record });
});

/** The audit log, journaling to the WAL. */
export class AuditLog extends Context.Service<AuditLog, {
  /** Appends an event of `kind` (UPPER_SNAKE, e.g. RUN_READY_SEEN) with its detail. */
  readonly record: (
    kind: string,
    detail?: Readonly<Record<string, unknown>>,
    options?: AuditOptions,
  ) => Effect.Effect<RecordedAudit, WorldstreamError>;
}>()("worldstream/stores/AuditLog") {
  static readonly layer: Layer.Layer<AuditLog, never, Wal> = Layer.effect(this, make);
}

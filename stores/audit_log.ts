/**
 * The audit log (`ws_audit_events`): what happened, for operators — READY signals seen and
 * decided, run lifecycle, operator actions. Append-only; an event's id is a digest of the event
 * itself, so writing the same event twice (a replayed WAL record) leaves one row.
 */
import { Clock, Context, Effect, Layer } from "effect";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { pgQuery, Postgres } from "./postgres.ts";

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

/** What {@link AuditLog.record} wrote. */
export interface RecordedAudit {
  readonly record_id: string;
  /** False when the same event was already in the log. */
  readonly inserted: boolean;
}

/** An audit event's id: sha256 of the canonical JSON of `{kind, run_key, output_id, at, detail}`. */
export function auditRecordId(
  kind: string,
  detail: Readonly<Record<string, unknown>>,
  options: AuditOptions & { readonly at: Date },
): string {
  return sha256Hex(canonicalJson({
    kind,
    run_key: options.run_key ?? null,
    output_id: options.output_id ?? null,
    at: options.at.toISOString(),
    detail,
  }));
}

const KIND = /^[A-Z][A-Z0-9_]{0,63}$/;
const INSERT = pgQuery("audit_event_insert");

const make = Effect.gen(function* () {
  const pg = yield* Postgres;
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
    const recordId = auditRecordId(kind, detail, { ...options, at });
    const rows = yield* pg.query(INSERT, [
      recordId,
      kind,
      options.run_key ?? null,
      options.output_id ?? null,
      at,
      { ...detail },
    ]);
    return { record_id: recordId, inserted: rows.length > 0 } satisfies RecordedAudit;
  });
  return AuditLog.of({ record });
});

/** The audit log over Postgres (migrations must have run). */
export class AuditLog extends Context.Service<AuditLog, {
  /** Appends an event of `kind` (UPPER_SNAKE, e.g. RUN_READY_SEEN) with its detail. */
  readonly record: (
    kind: string,
    detail?: Readonly<Record<string, unknown>>,
    options?: AuditOptions,
  ) => Effect.Effect<RecordedAudit, WorldstreamError>;
}>()("worldstream/stores/AuditLog") {
  static readonly layer: Layer.Layer<AuditLog, never, Postgres> = Layer.effect(this, make);
}

/**
 * The admission logic of the reference ingestion gate: validate the envelope, find its class,
 * check the class pins and the payload, then dedupe against the store and decide ADMIT,
 * DUPLICATE or QUARANTINE, with a receipt for each attempt.
 *
 * Checking is synchronous (`makeChecker`); deciding happens in one store transaction
 * per batch, where `insert ... on conflict do nothing` plus reading back the stored payload hash
 * make concurrent attempts of one event admit it exactly once. Single pushes are coalesced: one
 * writer fiber takes every push waiting at that moment and decides them as one batch, so a
 * burst of concurrent pushes costs a few transactions, not one each.
 */
import {
  Clock,
  Context,
  Deferred,
  Effect,
  Exit,
  Layer,
  Option,
  Queue,
  Result,
  Schema,
  Stream,
} from "effect";
import { formatPath } from "../schemas/decode.ts";
import { CanonicalEventEnvelope } from "../schemas/envelope.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { PgBackend } from "../stores/postgres.ts";
import {
  describeIssue,
  type EventTypeRule,
  type IgPolicy,
  type IgPolicyFiles,
  loadIgPolicy,
  type PartitionProfile,
  STRICT,
} from "./policy.ts";
import {
  admissionReceipt,
  type Decision,
  dedupeKey,
  type IngestionReceipt,
  type Issuer,
  makePayloadHasher,
  quarantineEvidence,
  type RawEnvelope,
  receiptId,
  receiptRef,
  scopeOf,
  utcMicros,
} from "./receipts.ts";
import {
  type AdmissionRecord,
  type AdmissionRow,
  IgStore,
  type QuarantineRow,
  type RunCounts,
  type StoredAdmission,
} from "./store.ts";
import type { IgReason } from "./reasons.ts";

/** The gate's answer to one attempt. */
export interface Outcome {
  readonly decision: Decision;
  /** The envelope's event id, when it had a string one. */
  readonly eventId: string | undefined;
  /** The reason code of a quarantine. */
  readonly reason: IgReason | undefined;
  /** What was wrong, naming the field (`payload.amount: Expected number`). */
  readonly detail: string | undefined;
  readonly receiptRef: string;
  /** The full receipt, built on demand (a batch answer carries only the ref). */
  readonly receipt: () => IngestionReceipt;
}

/** Everything the gate holds about one event id. */
export interface LookupResult {
  readonly admissions: ReadonlyArray<{
    readonly dedupe_key: string;
    readonly platform_run_id: string;
    readonly event_class: string;
    readonly admitted_seq: number;
    readonly admitted_at_utc: string;
    readonly receipt: IngestionReceipt;
    readonly receipt_ref: string;
  }>;
  readonly quarantines: ReadonlyArray<{
    readonly received_at_utc: string;
    readonly reason: string;
    readonly detail: string | null;
    readonly quarantine_record: unknown;
  }>;
}

/** An envelope that passed every check and awaits dedupe. */
export interface Admissible {
  readonly kind: "admissible";
  readonly envelope: RawEnvelope;
  readonly rule: EventTypeRule;
  readonly eventId: string;
  readonly platformRunId: string;
  readonly dedupeKey: string;
  readonly payloadHash: string;
}

/** An envelope refused before dedupe, with its reason code. */
export interface Refused {
  readonly kind: "refused";
  readonly envelope: RawEnvelope;
  readonly eventClass: string | undefined;
  readonly reason: IgReason;
  readonly detail: string;
}

/** The result of checking one envelope. */
export type Checked = Admissible | Refused;

/** How the gate describes itself and how it batches. */
export interface GateOptions {
  /** Policy file locations (default: the bundled copies). */
  readonly policyFiles?: IgPolicyFiles;
  /** `service_release_id` of receipts (default `worldstream-ig`). */
  readonly serviceReleaseId?: string;
  /** `environment` of receipts (default `local`). */
  readonly environment?: string;
  /** Most pushes decided in one coalesced transaction (default 1000). */
  readonly maxCoalesce?: number;
  /** Push transactions in flight at once (default 4 on a server, 1 on PGlite). */
  readonly writers?: number;
}

/** Most envelopes one batch may carry. */
export const MAX_BATCH = 10_000;

const ADMITTED_PAGE = 2_000;

/** The reference ingestion gate. */
export class IgGate extends Context.Service<IgGate, {
  readonly backend: PgBackend;
  /** Decides one envelope (coalesced with concurrent pushes). */
  readonly push: (raw: unknown) => Effect.Effect<Outcome, WorldstreamError>;
  /** Decides a batch in one transaction; outcomes in input order. */
  readonly admitBatch: (
    raws: ReadonlyArray<unknown>,
  ) => Effect.Effect<ReadonlyArray<Outcome>, WorldstreamError>;
  /** Admissions and quarantined attempts of an event id, or the admission of a dedupe key. */
  readonly lookup: (
    query: { readonly eventId: string } | { readonly dedupeKey: string },
  ) => Effect.Effect<LookupResult, WorldstreamError>;
  /** Decisions per platform run. */
  readonly stats: Effect.Effect<Readonly<Record<string, RunCounts>>, WorldstreamError>;
  /** A run's admitted envelopes as NDJSON text chunks, in admission order. */
  readonly admitted: (platformRunId: string) => Stream.Stream<string, WorldstreamError>;
  readonly health: Effect.Effect<void, WorldstreamError>;
}>()("worldstream/ig/IgGate") {
  /** The gate over the IgStore of the context; its push writer lives as long as the layer. */
  static readonly layer = (
    options: GateOptions = {},
  ): Layer.Layer<IgGate, WorldstreamError, IgStore> => Layer.effect(IgGate, makeGate(options));
}

// ---------------------------------------------------------------------------------------------
// Checking

/**
 * A checker of envelopes against the policy: schema, class, pins, schema version, payload.
 *
 * The envelope is decoded field by field with the envelope schema's own field schemas (it has
 * no cross-field rules, so that is the same judgement), and each field remembers the values it
 * accepted lately: a run repeats its pins in every envelope, so most fields cost a map lookup.
 * A failure is decoded again whole, for the message.
 */
export function makeChecker(policy: IgPolicy): (raw: unknown) => Checked {
  const validateEnvelope = envelopeValidator();
  const hashPayload = makePayloadHasher();
  return (raw) => {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      return refuse({}, undefined, "ENVELOPE_INVALID", "Expected an envelope object");
    }
    const envelope = raw as RawEnvelope;
    const problem = validateEnvelope(envelope);
    if (problem !== undefined) return refuse(envelope, undefined, "ENVELOPE_INVALID", problem);
    return checkValid(policy, envelope, hashPayload);
  };
}

const decodeEnvelope = Schema.decodeUnknownResult(CanonicalEventEnvelope);
const REMEMBERED_VALUES = 4_096;

function envelopeValidator(): (envelope: RawEnvelope) => string | undefined {
  const fields = new Map<string, {
    readonly decode: (value: unknown) => boolean;
    readonly seen: Map<unknown, true>;
  }>();
  const required: Array<string> = [];
  for (const [name, field] of Object.entries(CanonicalEventEnvelope.fields)) {
    // An optional key's schema wraps the value's schema.
    const inner = "schema" in field ? field.schema : field;
    if (!("schema" in field)) required.push(name);
    const decode = Schema.decodeUnknownResult(inner as Schema.Decoder<unknown>);
    fields.set(name, {
      // `payload` is a JsonObject (string keys, any values): for parsed JSON that is exactly
      // "an object, not an array or null", which is cheaper to ask than a record decode.
      decode: name === "payload" ? isJsonObject : (v) => Result.isSuccess(decode(v, STRICT)),
      seen: new Map(),
    });
  }
  const whole = (envelope: RawEnvelope): string | undefined => {
    const decoded = decodeEnvelope(envelope, { ...STRICT, reportInput: true });
    return Result.isSuccess(decoded) ? undefined : describeIssue(decoded.failure.issue);
  };
  return (envelope) => {
    for (const name of Object.keys(envelope)) {
      const field = fields.get(name);
      if (field === undefined) return whole(envelope);
      const value = envelope[name];
      const primitive = typeof value === "string" || typeof value === "number";
      if (primitive && field.seen.has(value)) continue;
      if (!field.decode(value)) return whole(envelope);
      if (primitive) {
        if (field.seen.size >= REMEMBERED_VALUES) field.seen.clear();
        field.seen.set(value, true);
      }
    }
    for (const name of required) {
      if (!Object.hasOwn(envelope, name)) return whole(envelope);
    }
    return undefined;
  };
}

function isJsonObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkValid(
  policy: IgPolicy,
  envelope: RawEnvelope,
  hashPayload: (envelope: RawEnvelope) => string,
): Checked {
  const eventType = envelope.event_type as string;
  const rule = policy.rules.get(eventType);
  if (rule === undefined) {
    return refuse(
      envelope,
      undefined,
      "SCHEMA_POLICY_MISSING",
      `event_type: ${eventType} has no schema policy`,
    );
  }
  const missing = rule.requiredPins.filter((pin) => {
    const value = envelope[pin];
    return value === undefined || value === null || value === "";
  });
  if (missing.length > 0) {
    return refuse(envelope, rule.eventClass, "PINS_MISSING", `Missing pins: ${missing.join(", ")}`);
  }
  const version = envelope.schema_version as string | undefined;
  if (rule.schemaVersionRequired && (version === undefined || version === "")) {
    return refuse(envelope, rule.eventClass, "SCHEMA_VERSION_REQUIRED", "schema_version: Missing");
  }
  if (rule.allowedSchemaVersions !== undefined && !rule.allowedSchemaVersions.includes(version!)) {
    return refuse(
      envelope,
      rule.eventClass,
      "SCHEMA_VERSION_NOT_ALLOWED",
      `schema_version: ${version ?? "(absent)"} is not one of ${
        rule.allowedSchemaVersions.join(", ")
      }`,
    );
  }
  if (rule.checkPayload !== undefined) {
    const problem = envelope.payload === undefined
      ? { path: [], message: "Missing required key" }
      : rule.checkPayload(envelope.payload);
    if (problem !== undefined) {
      const detail = `${formatPath(["payload", ...problem.path])}: ${problem.message}`;
      return refuse(envelope, rule.eventClass, "SCHEMA_FAIL", detail);
    }
  }
  const eventId = envelope.event_id as string;
  const platformRunId = envelope.platform_run_id as string;
  return {
    kind: "admissible",
    envelope,
    rule,
    eventId,
    platformRunId,
    dedupeKey: dedupeKey(platformRunId, rule.eventClass, eventId),
    payloadHash: hashPayload(envelope),
  };
}

function refuse(
  envelope: RawEnvelope,
  eventClass: string | undefined,
  reason: IgReason,
  detail: string,
): Refused {
  return { kind: "refused", envelope, eventClass, reason, detail };
}

// ---------------------------------------------------------------------------------------------
// Deciding

interface Pending {
  readonly checked: Checked;
  readonly deferred: Deferred.Deferred<Outcome, WorldstreamError>;
}

function makeGate(options: GateOptions) {
  return Effect.gen(function* () {
    const store = yield* IgStore;
    const policy = yield* loadIgPolicy(options.policyFiles);
    const issuer: Issuer = {
      policyRev: policy.policyRev,
      serviceReleaseId: options.serviceReleaseId ?? "worldstream-ig",
      environment: options.environment ?? "local",
    };
    const decide = decideBatch(store, issuer);
    const check = makeChecker(policy);

    // The push writers: each decides every push waiting when it looks in one transaction.
    const maxCoalesce = options.maxCoalesce ?? 1_000;
    const queue = yield* Queue.bounded<Pending>(maxCoalesce * 4);
    const stopping = Exit.fail(fail("IG_STOPPING", "The gate is shutting down"));
    // Pushes not yet taken by a writer, queued or still waiting for room in the queue: the
    // gate answers each of them when it stops.
    const waiting = new Set<Pending>();
    let stopped = false;
    const drain = Effect.gen(function* () {
      const taken = yield* Queue.takeBetween(queue, 1, maxCoalesce);
      taken.forEach((p) => waiting.delete(p));
      const exit = yield* Effect.exit(decide(taken.map((p) => p.checked))).pipe(
        // Pushes being decided when the gate stops are answered, not left waiting.
        Effect.onInterrupt(() =>
          Effect.sync(() => taken.forEach((p) => Deferred.doneUnsafe(p.deferred, stopping)))
        ),
      );
      if (Exit.isSuccess(exit)) {
        taken.forEach((p, i) => Deferred.doneUnsafe(p.deferred, Exit.succeed(exit.value[i])));
      } else {
        for (const p of taken) {
          Deferred.doneUnsafe(p.deferred, exit as Exit.Exit<never, WorldstreamError>);
        }
      }
    });
    // On a server, several writers keep several transactions in flight (the dedupe holds across
    // them as it does across gates); PGlite runs one transaction at a time anyway.
    const writers = options.writers ?? (store.backend === "server" ? 4 : 1);
    for (let i = 0; i < writers; i++) yield* Effect.forkScoped(Effect.forever(drain));
    // Clearing the queue alone is not enough: pushes suspended on a full queue would move into
    // the freed room and wait there forever. Shutting it down resumes them too.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        stopped = true;
        yield* Queue.shutdown(queue);
        waiting.forEach((p) => Deferred.doneUnsafe(p.deferred, stopping));
        waiting.clear();
      })
    );

    const eventClasses = [...new Set([...policy.rules.values()].map((r) => r.eventClass))];
    const partitioningOf = (eventType: string): PartitionProfile =>
      policy.rules.get(eventType)?.partitioning ?? UNKNOWN_PARTITIONING;

    const receiptOfRecord = (row: AdmissionRecord) => {
      const envelope = JSON.parse(row.envelope) as RawEnvelope;
      const receipt = admissionReceipt(issuer, "ADMIT", {
        envelope,
        eventClass: row.eventClass,
        dedupeKey: row.dedupeKey,
        payloadHash: row.payloadHash,
        admittedAtUtc: row.admittedAtUtc,
        admittedSeq: row.admittedSeq,
        partitioning: partitioningOf(row.eventType),
      });
      return {
        dedupe_key: row.dedupeKey,
        platform_run_id: row.platformRunId,
        event_class: row.eventClass,
        admitted_seq: row.admittedSeq,
        admitted_at_utc: row.admittedAtUtc,
        receipt,
        receipt_ref: receiptRef(row.platformRunId, receipt.receipt_id),
      };
    };

    return IgGate.of({
      backend: store.backend,
      push: (raw) =>
        Effect.gen(function* () {
          if (stopped) return yield* fail("IG_STOPPING", "The gate is shutting down");
          const deferred = yield* Deferred.make<Outcome, WorldstreamError>();
          const pending = { checked: check(raw), deferred };
          waiting.add(pending);
          if (!(yield* Queue.offer(queue, pending))) Deferred.doneUnsafe(deferred, stopping);
          return yield* Deferred.await(deferred);
        }),
      admitBatch: (raws) =>
        raws.length > MAX_BATCH
          ? Effect.fail(
            fail(
              "BATCH_TOO_LARGE",
              `A batch holds at most ${MAX_BATCH} events, got ${raws.length}`,
            ),
          )
          : decide(raws.map((raw) => check(raw))),
      lookup: (query) =>
        Effect.gen(function* () {
          if ("dedupeKey" in query) {
            const rows = yield* store.admissionsByKeys([query.dedupeKey]);
            return { admissions: rows.map(receiptOfRecord), quarantines: [] };
          }
          // An event id has one possible dedupe key per (run, class): probe them all.
          const runs = yield* store.runs;
          const keys = runs.flatMap((run) =>
            eventClasses.map((eventClass) => dedupeKey(run, eventClass, query.eventId))
          );
          const rows = yield* store.admissionsByKeys(keys);
          const quarantined = yield* store.quarantineByEvent(query.eventId);
          return {
            admissions: rows.map(receiptOfRecord),
            quarantines: quarantined.map((q) => ({
              received_at_utc: q.receivedAtUtc,
              reason: q.reasonCode,
              detail: q.detail,
              quarantine_record: JSON.parse(q.record) as unknown,
            })),
          };
        }),
      stats: store.stats.pipe(Effect.map((counts) => Object.fromEntries(counts))),
      admitted: (platformRunId) =>
        Stream.paginate(
          0,
          (afterSeq: number) =>
            store.admittedPage(platformRunId, afterSeq, ADMITTED_PAGE).pipe(
              Effect.map((rows) =>
                [
                  rows.length === 0 ? [] : [rows.map((r) => `${r.envelope}\n`).join("")],
                  rows.length < ADMITTED_PAGE ? Option.none() : Option.some(rows.at(-1)!.seq),
                ] as const
              ),
            ),
        ),
      health: store.health,
    });
  });
}

const UNKNOWN_PARTITIONING: PartitionProfile = {
  profileId: "unknown",
  stream: "unknown",
  keyPrecedence: ["event_id"],
};

/**
 * Decides checked envelopes in one transaction. The first occurrence of each dedupe key is a
 * candidate for insertion; every other attempt with that key (later in the batch, or after a
 * stored admission) compares payload hashes: equal → DUPLICATE, different → QUARANTINE
 * PAYLOAD_HASH_MISMATCH.
 */
function decideBatch(store: IgStore["Service"], issuer: Issuer) {
  return (checked: ReadonlyArray<Checked>) =>
    Effect.gen(function* () {
      const now = utcMicros(yield* Clock.currentTimeMillis);
      const firstOf = new Map<string, number>();
      const candidates: Array<AdmissionRow> = [];
      checked.forEach((c, i) => {
        if (c.kind !== "admissible" || firstOf.has(c.dedupeKey)) return;
        firstOf.set(c.dedupeKey, i);
        candidates.push({
          dedupeKey: c.dedupeKey,
          platformRunId: c.platformRunId,
          eventClass: c.rule.eventClass,
          eventId: c.eventId,
          eventType: c.rule.eventType,
          payloadHash: c.payloadHash,
          envelope: JSON.stringify(c.envelope),
        });
      });

      return yield* store.transaction((tx) =>
        Effect.gen(function* () {
          const inserted = yield* tx.insertAdmissions(candidates, now);
          const stored = yield* tx.storedAdmissions(
            candidates.filter((c) => !inserted.has(c.dedupeKey)).map((c) => c.dedupeKey),
          );
          const storedOf = (key: string): StoredAdmission | undefined => {
            const seq = inserted.get(key);
            if (seq === undefined) return stored.get(key);
            const first = checked[firstOf.get(key)!] as Admissible;
            return {
              dedupeKey: key,
              payloadHash: first.payloadHash,
              admittedSeq: seq,
              admittedAtUtc: now,
            };
          };

          const counts = new Map<
            string,
            { admitted: number; duplicate: number; quarantined: number }
          >();
          const quarantines: Array<QuarantineRow> = [];
          const outcomes: Array<Outcome> = [];
          for (const [i, c] of checked.entries()) {
            const scope = c.kind === "admissible" ? c.platformRunId : scopeOf(c.envelope);
            let count = counts.get(scope);
            if (count === undefined) {
              count = { admitted: 0, duplicate: 0, quarantined: 0 };
              counts.set(scope, count);
            }
            if (c.kind === "refused") {
              const outcome = quarantine(issuer, c.envelope, c.eventClass, c.reason, c.detail, now);
              quarantines.push(outcome.row);
              outcomes.push(outcome.outcome);
              count.quarantined++;
              continue;
            }
            const prior = storedOf(c.dedupeKey);
            if (prior === undefined) {
              // The insert and the lookup share one transaction: this is a bug, not an input.
              return yield* Effect.die(
                new Error(`Dedupe key ${c.dedupeKey} was neither inserted nor found`),
              );
            }
            const admitted = firstOf.get(c.dedupeKey) === i && inserted.has(c.dedupeKey);
            if (!admitted && prior.payloadHash !== c.payloadHash) {
              const outcome = quarantine(
                issuer,
                c.envelope,
                c.rule.eventClass,
                "PAYLOAD_HASH_MISMATCH",
                `payload_hash ${c.payloadHash} differs from the admitted ${prior.payloadHash}`,
                now,
                { dedupeKey: c.dedupeKey, payloadHash: c.payloadHash },
              );
              quarantines.push(outcome.row);
              outcomes.push(outcome.outcome);
              count.quarantined++;
              continue;
            }
            const decision = admitted ? "ADMIT" : "DUPLICATE";
            const facts = {
              envelope: c.envelope,
              eventClass: c.rule.eventClass,
              dedupeKey: c.dedupeKey,
              payloadHash: prior.payloadHash,
              admittedAtUtc: prior.admittedAtUtc,
              admittedSeq: prior.admittedSeq,
              partitioning: c.rule.partitioning,
            };
            outcomes.push({
              decision,
              eventId: c.eventId,
              reason: undefined,
              detail: undefined,
              receiptRef: receiptRef(c.platformRunId, receiptId(decision, c.eventId)),
              receipt: () => admissionReceipt(issuer, decision, facts),
            });
            if (admitted) count.admitted++;
            else count.duplicate++;
          }
          yield* tx.recordOutcomes({ receivedAtUtc: now, quarantines, counts });
          return outcomes;
        })
      );
    });
}

function quarantine(
  issuer: Issuer,
  envelope: RawEnvelope,
  eventClass: string | undefined,
  reason: IgReason,
  detail: string,
  receivedAtUtc: string,
  ids: { readonly dedupeKey?: string; readonly payloadHash?: string } = {},
): { readonly outcome: Outcome; readonly row: QuarantineRow } {
  const { receipt, record } = quarantineEvidence(issuer, {
    envelope,
    eventClass,
    reason,
    receivedAtUtc,
    ...ids,
  });
  const scope = scopeOf(envelope);
  const eventId = typeof envelope.event_id === "string" ? envelope.event_id : undefined;
  return {
    outcome: {
      decision: "QUARANTINE",
      eventId,
      reason,
      detail,
      receiptRef: receiptRef(scope, receipt.receipt_id),
      receipt: () => receipt,
    },
    row: {
      platformRunId: scope,
      eventId: eventId ?? null,
      eventType: typeof envelope.event_type === "string" ? envelope.event_type : null,
      reasonCode: reason,
      detail,
      record: JSON.stringify(record),
    },
  };
}

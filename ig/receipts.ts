/**
 * The gate's ids and evidence, in the platform's forms: dedupe keys, payload hashes, receipt and
 * quarantine ids, ingestion receipts (`platform/ingestion_receipt.schema.yaml`), quarantine
 * records (`platform/quarantine_record.schema.yaml`) and the refs that name them.
 */
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import type { PartitionProfile, PolicyRev } from "./policy.ts";

/** What the gate decided about one attempt. */
export type Decision = "ADMIT" | "DUPLICATE" | "QUARANTINE";

/** An envelope as received: a JSON object whose fields may be anything until checked. */
export type RawEnvelope = Readonly<Record<string, unknown>>;

/** A sha256 digest object (`$defs/digest`). */
export interface Digest {
  readonly algo: "sha256";
  readonly hex: string;
}

/** An ingestion receipt (`ingestion_receipt.schema.yaml`, closed). */
export interface IngestionReceipt {
  readonly receipt_id: string;
  readonly decision: Decision;
  readonly event_id: string;
  readonly event_type: string;
  readonly event_class: string;
  readonly ts_utc: string;
  readonly manifest_fingerprint: string;
  readonly platform_run_id: string;
  readonly run_config_digest: string;
  readonly policy_rev: PolicyRev;
  readonly dedupe_key?: string;
  readonly pins: Readonly<Record<string, unknown>>;
  readonly scenario_run_id?: string;
  readonly payload_hash?: Digest;
  readonly admitted_at_utc?: string;
  readonly schema_version?: string;
  readonly producer?: string;
  readonly partitioning_profile_id?: string;
  readonly partition_key?: string;
  readonly eb_ref?: EbRef;
  readonly reason_codes?: ReadonlyArray<string>;
  readonly evidence_refs?: ReadonlyArray<{ readonly kind: string; readonly ref: string }>;
  readonly service_release_id: string;
  readonly environment: string;
  readonly provenance: Provenance;
}

/** Where an admitted event sits in the gate's admitted log (the platform's event-bus ref). */
export interface EbRef {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly offset_kind: "kafka_offset";
}

/** Who issued a receipt. */
export interface Provenance {
  readonly service_release_id: string;
  readonly environment: string;
  readonly config_revision: string;
  readonly run_config_digest: string;
}

/** A quarantine record (`quarantine_record.schema.yaml`). */
export interface QuarantineRecord {
  readonly quarantine_id: string;
  readonly received_at_utc: string;
  readonly decision: "QUARANTINE";
  readonly reason_codes: ReadonlyArray<string>;
  readonly manifest_fingerprint: string;
  readonly pins: Readonly<Record<string, unknown>>;
  readonly policy_rev: PolicyRev;
  readonly envelope: Readonly<Record<string, unknown>>;
  readonly service_release_id: string;
  readonly environment: string;
  readonly provenance: Provenance;
}

/** Who the gate says it is in its receipts. */
export interface Issuer {
  readonly policyRev: PolicyRev;
  readonly serviceReleaseId: string;
  readonly environment: string;
}

/** The platform-run scope of evidence whose envelope names none (e.g. schema failures). */
export const UNSCOPED = "unscoped";

const PIN_FIELDS = [
  "manifest_fingerprint",
  "platform_run_id",
  "scenario_run_id",
  "parameter_hash",
  "seed",
  "scenario_id",
  "run_id",
] as const;

/** `sha256_hex("{platform_run_id}:{event_class}:{event_id}")`. */
export function dedupeKey(platformRunId: string, eventClass: string, eventId: string): string {
  return sha256Hex(`${platformRunId}:${eventClass}:${eventId}`);
}

/**
 * sha256 of `{event_type, schema_version, payload}` as the platform serialises it: sorted keys,
 * no spaces, non-ASCII escaped (Python's `json.dumps(..., sort_keys=True, ensure_ascii=True)`);
 * an absent field counts as null.
 */
export function payloadHash(envelope: RawEnvelope): string {
  return sha256Hex(asciiJson({
    event_type: envelope.event_type ?? null,
    schema_version: envelope.schema_version ?? null,
    payload: envelope.payload ?? null,
  }));
}

/**
 * `payloadHash` for a stream of envelopes, faster on the common case: a flat payload (no nested
 * objects or arrays) with the same keys in the same order as the previous one, whose sorted
 * serialisation plan is kept. Anything else takes `payloadHash`.
 */
export function makePayloadHasher(): (envelope: RawEnvelope) => string {
  let keys: ReadonlyArray<string> = [];
  let plan: { readonly order: ReadonlyArray<string>; readonly prefixes: ReadonlyArray<string> } = {
    order: [],
    prefixes: [],
  };
  return (envelope) => {
    const payload = envelope.payload;
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      return payloadHash(envelope);
    }
    const payloadKeys = Object.keys(payload);
    if (!sameKeys(payloadKeys, keys)) {
      keys = payloadKeys;
      const order = [...payloadKeys].sort();
      // A non-ASCII key would need escaping: such shapes always take the general path.
      plan = order.some((k) => NON_ASCII_ONE.test(k)) ? { order: [], prefixes: [] } : {
        order,
        prefixes: order.map((k, i) => `${i === 0 ? "" : ","}${JSON.stringify(k)}:`),
      };
    }
    if (plan.order.length !== payloadKeys.length) return payloadHash(envelope);
    const head = asciiScalar(envelope.event_type);
    const version = asciiScalar(envelope.schema_version);
    if (head === undefined || version === undefined) return payloadHash(envelope);
    let body = "";
    for (let i = 0; i < plan.order.length; i++) {
      const value = (payload as Record<string, unknown>)[plan.order[i]];
      const text = value === undefined ? undefined : asciiScalar(value);
      if (text === undefined) return payloadHash(envelope);
      body += plan.prefixes[i] + text;
    }
    return sha256Hex(`{"event_type":${head},"payload":{${body}},"schema_version":${version}}`);
  };
}

// A JSON scalar as canonical ASCII JSON (absent → null), or undefined for anything else.
function asciiScalar(value: unknown): string | undefined {
  switch (typeof value) {
    case "undefined":
      return "null";
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return JSON.stringify(value);
    case "string": {
      const json = JSON.stringify(value);
      return NON_ASCII_ONE.test(json) ? asciiJson(value) : json;
    }
    default:
      return value === null ? "null" : undefined;
  }
}

function sameKeys(a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The platform's receipt id: `sha256_hex("{decision}:{event_id}")[:32]`. */
export function receiptId(decision: Decision, eventId: string): string {
  return sha256Hex(`${decision}:${eventId}`).slice(0, 32);
}

/** The platform's quarantine id: `sha256_hex("QUARANTINE:{event_id}")[:32]`. */
export function quarantineId(eventId: string): string {
  return sha256Hex(`QUARANTINE:${eventId}`).slice(0, 32);
}

/** Where a receipt would be filed in the platform's object store (relative to its root). */
export function receiptRef(platformRunId: string, id: string): string {
  return `${platformRunId}/ig/receipts/${id}.json`;
}

/** Where a quarantine record would be filed. */
export function quarantineRef(platformRunId: string, id: string): string {
  return `${platformRunId}/ig/quarantine/${id}.json`;
}

/**
 * The partition key of an admitted event: sha256 of the first non-empty field in the profile's
 * precedence, or undefined when none is present.
 */
export function partitionKey(profile: PartitionProfile, envelope: RawEnvelope): string | undefined {
  for (const path of profile.keyPrecedence) {
    const value = path.startsWith("payload.")
      ? nested(envelope.payload, path.slice("payload.".length).split("."))
      : envelope[path];
    if (value !== undefined && value !== null && value !== "") return sha256Hex(String(value));
  }
  return undefined;
}

/** The admission facts a receipt is built from (all but the envelope are stored per row). */
export interface AdmissionFacts {
  readonly envelope: RawEnvelope;
  readonly eventClass: string;
  readonly dedupeKey: string;
  readonly payloadHash: string;
  readonly admittedAtUtc: string;
  readonly admittedSeq: number;
  readonly partitioning: PartitionProfile;
}

/** The receipt of an ADMIT, or of a DUPLICATE of that admission. */
export function admissionReceipt(
  issuer: Issuer,
  decision: "ADMIT" | "DUPLICATE",
  facts: AdmissionFacts,
): IngestionReceipt {
  const { envelope } = facts;
  const runId = String(envelope.platform_run_id);
  const eventId = String(envelope.event_id);
  const partition = partitionKey(facts.partitioning, envelope);
  return {
    ...receiptHead(issuer, decision, envelope, facts.eventClass),
    dedupe_key: facts.dedupeKey,
    payload_hash: { algo: "sha256", hex: facts.payloadHash },
    admitted_at_utc: facts.admittedAtUtc,
    partitioning_profile_id: facts.partitioning.profileId,
    ...(partition === undefined ? {} : { partition_key: partition }),
    eb_ref: {
      topic: facts.partitioning.stream,
      partition: 0,
      offset: String(facts.admittedSeq),
      offset_kind: "kafka_offset",
    },
    ...(decision === "DUPLICATE"
      ? {
        reason_codes: ["DUPLICATE"],
        evidence_refs: [{
          kind: "receipt_ref",
          ref: receiptRef(runId, receiptId("ADMIT", eventId)),
        }],
      }
      : {}),
    ...receiptTail(issuer),
  };
}

/** The receipt and quarantine record of a quarantined attempt. */
export function quarantineEvidence(
  issuer: Issuer,
  input: {
    readonly envelope: RawEnvelope;
    readonly eventClass: string | undefined;
    readonly reason: string;
    readonly receivedAtUtc: string;
    readonly dedupeKey?: string;
    readonly payloadHash?: string;
  },
): { readonly receipt: IngestionReceipt; readonly record: QuarantineRecord } {
  const { envelope } = input;
  const eventId = typeof envelope.event_id === "string" ? envelope.event_id : "unknown";
  const id = quarantineId(eventId);
  const pins = pinsOf(envelope);
  const { payload: _payload, ...header } = envelope;
  const record: QuarantineRecord = {
    quarantine_id: id,
    received_at_utc: input.receivedAtUtc,
    decision: "QUARANTINE",
    reason_codes: [input.reason],
    manifest_fingerprint: stringOr(envelope.manifest_fingerprint, "0".repeat(64)),
    pins: { ...pins, manifest_fingerprint: stringOr(pins.manifest_fingerprint, "0".repeat(64)) },
    policy_rev: issuer.policyRev,
    envelope: header,
    ...receiptTail(issuer),
  };
  const receipt: IngestionReceipt = {
    ...receiptHead(issuer, "QUARANTINE", envelope, input.eventClass ?? "unknown"),
    ...(input.dedupeKey === undefined ? {} : { dedupe_key: input.dedupeKey }),
    ...(input.payloadHash === undefined
      ? {}
      : { payload_hash: { algo: "sha256", hex: input.payloadHash } }),
    reason_codes: [input.reason],
    evidence_refs: [{ kind: "quarantine_record", ref: quarantineRef(scopeOf(envelope), id) }],
    ...receiptTail(issuer),
  };
  return { receipt, record };
}

/** The platform run an envelope's evidence is filed under. */
export function scopeOf(envelope: RawEnvelope): string {
  const runId = envelope.platform_run_id;
  return typeof runId === "string" && runId !== "" ? runId : UNSCOPED;
}

/** An RFC 3339 UTC timestamp with exactly 6 fractional digits, from epoch milliseconds. */
export function utcMicros(epochMillis: number): string {
  return `${new Date(epochMillis).toISOString().slice(0, -1)}000Z`;
}

function receiptHead(
  issuer: Issuer,
  decision: Decision,
  envelope: RawEnvelope,
  eventClass: string,
) {
  const eventId = stringOr(envelope.event_id, "unknown");
  const scenarioRunId = envelope.scenario_run_id ?? envelope.run_id;
  return {
    receipt_id: receiptId(decision, eventId),
    decision,
    event_id: eventId,
    event_type: stringOr(envelope.event_type, "unknown"),
    event_class: eventClass,
    ts_utc: stringOr(envelope.ts_utc, ""),
    manifest_fingerprint: stringOr(envelope.manifest_fingerprint, "0".repeat(64)),
    platform_run_id: scopeOf(envelope),
    run_config_digest: issuer.policyRev.content_digest,
    policy_rev: issuer.policyRev,
    pins: pinsOf(envelope),
    ...(typeof scenarioRunId === "string" ? { scenario_run_id: scenarioRunId } : {}),
    ...(typeof envelope.schema_version === "string"
      ? { schema_version: envelope.schema_version }
      : {}),
    ...(typeof envelope.producer === "string" ? { producer: envelope.producer } : {}),
  };
}

function receiptTail(issuer: Issuer) {
  return {
    service_release_id: issuer.serviceReleaseId,
    environment: issuer.environment,
    provenance: {
      service_release_id: issuer.serviceReleaseId,
      environment: issuer.environment,
      config_revision: issuer.policyRev.revision,
      run_config_digest: issuer.policyRev.content_digest,
    },
  };
}

function pinsOf(envelope: RawEnvelope): Record<string, unknown> {
  const pins: Record<string, unknown> = {};
  for (const field of PIN_FIELDS) {
    const value = envelope[field];
    if (value !== undefined && value !== null) pins[field] = value;
  }
  return pins;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" && value !== "" ? value : fallback;
}

function nested(value: unknown, path: ReadonlyArray<string>): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

// Python's ensure_ascii escapes everything outside printable ASCII that JSON.stringify keeps
// (DEL and all non-ASCII, astral characters as their surrogate pairs).
const NON_ASCII = /[\u007f-\uffff]/g;
const NON_ASCII_ONE = /[\u007f-\uffff]/;

function asciiJson(value: unknown): string {
  const json = canonicalJson(value);
  NON_ASCII.lastIndex = 0;
  if (!NON_ASCII.test(json)) return json;
  return json.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

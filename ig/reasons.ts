/**
 * Why the reference gate quarantines an envelope: the platform gate's own reason codes
 * (`src/fraud_detection/ingestion_gate/` in the platform's repository), so a quarantine reads the
 * same at this gate as at the platform's. `tests/fixtures/platform_ig_reason_codes.json` holds the
 * platform's list, and `ig/reasons_test.ts` checks the two side by side.
 */
import { Schema } from "effect";

/** Each quarantine reason the reference gate gives, with its meaning. */
export const IG_REASONS = {
  ENVELOPE_INVALID: "The envelope does not match canonical_event_envelope",
  SCHEMA_POLICY_MISSING: "The schema policy has no entry for the event type",
  SCHEMA_VERSION_REQUIRED: "The event type requires a schema_version and the envelope has none",
  SCHEMA_VERSION_NOT_ALLOWED: "The envelope's schema_version is not allowed for its event type",
  SCHEMA_FAIL: "The payload does not match the event type's payload schema",
  PINS_MISSING: "A pin the event class requires is missing or empty",
  PAYLOAD_HASH_MISMATCH: "The event id was admitted before with another payload",
} as const satisfies Record<string, string>;

/** A quarantine reason. */
export type IgReason = keyof typeof IG_REASONS;

/** The Schema of a quarantine reason. */
export const IgReason = Schema.Literals(Object.keys(IG_REASONS) as ReadonlyArray<IgReason>);

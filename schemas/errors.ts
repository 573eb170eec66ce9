/**
 * The one error every worldstream boundary fails with: a stable reason code (the platform's
 * codes, e.g. `PACK_NOT_SEALED`, all listed in `schemas/reasons.ts`) plus a one-line human message.
 */
import { Schema } from "effect";
import { ReasonCode } from "./reasons.ts";

/** A failure with a machine-readable reason code and a one-line message for people. */
export class WorldstreamError extends Schema.TaggedError<WorldstreamError>()("WorldstreamError", {
  reason: ReasonCode,
  message: Schema.String,
}) {}

/** Shorthand for `new WorldstreamError({ reason, message })`. */
export function fail(reason: ReasonCode, message: string): WorldstreamError {
  return new WorldstreamError({ reason, message });
}

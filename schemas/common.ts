/**
 * Building blocks shared by the platform wire formats: the `$defs` of the contract files
 * (hex digests, unsigned integers, timestamps, run ids) and JSON Schema string lengths.
 *
 * JSON Schema `minLength`/`maxLength` count Unicode code points, not UTF-16 units, so lengths
 * here are code-point checks. `format` is an annotation in draft 2020-12 unless a validator opts
 * in; where a field has nothing but `format: date-time` (READY `emitted_at_utc`, run receipt
 * `created_utc`, both inputs to us) any string is accepted, so we never refuse what the platform
 * takes. `rfc3339_micros` pairs the format with a pattern; there the date and time must also
 * exist, as a format-asserting validator would require, because we produce those timestamps.
 */
import { Schema } from "effect";

/** A string of `min` to `max` code points (JSON Schema minLength/maxLength). */
export function boundedString(min: number, max: number) {
  return Schema.String.check(Schema.isBetweenCodePoints(min, max));
}

/** A string of at least one code point (JSON Schema `minLength: 1`). */
export const NonEmptyString = Schema.String.check(Schema.isMinCodePoints(1));
export type NonEmptyString = typeof NonEmptyString.Type;

/** Lowercase hex SHA-256 digest (`$defs/hex64`: `^[a-f0-9]{64}$`). */
export const Hex64 = Schema.String.check(
  Schema.isPattern(/^[a-f0-9]{64}$/, { expected: "a 64-char lowercase hex string" }),
);
export type Hex64 = typeof Hex64.Type;

/** Lowercase 32-hex run identifier (`$defs/hex32`: `^[a-f0-9]{32}$`). */
export const Hex32 = Schema.String.check(
  Schema.isPattern(/^[a-f0-9]{32}$/, { expected: "a 32-char lowercase hex string" }),
);
export type Hex32 = typeof Hex32.Type;

// JSON numbers are doubles: 18446744073709551615 parses to exactly 2 ** 64, so this is the
// cap a JSON Schema validator in JavaScript applies too.
const UINT64_MAX = 2 ** 64;

/** Layer-1 `$defs/uint64`: an integer from 0 to 18446744073709551615. */
export const Uint64 = Schema.Number.check(
  Schema.makeFilter((n: number) => Number.isInteger(n) && n >= 0 && n <= UINT64_MAX, {
    expected: "an unsigned 64-bit integer",
  }),
);
export type Uint64 = typeof Uint64.Type;

/** The platform/ files' `$defs/uint64` and `integer, minimum: 0`: no upper bound. */
export const NonNegativeInt = Schema.Number.check(
  Schema.makeFilter((n: number) => Number.isInteger(n) && n >= 0, {
    expected: "a non-negative integer",
  }),
);
export type NonNegativeInt = typeof NonNegativeInt.Type;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

// RFC 3339 full-date/full-time ranges (a leap second only at 23:59:60 UTC); the shape is
// already checked by the pattern.
function isExistingUtcDateTime(text: string): boolean {
  const [year, month, day, hour, minute, second] = [0, 5, 8, 11, 14, 17].map((at) =>
    Number(text.slice(at, at === 0 ? 4 : at + 2))
  );
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1];
  return month >= 1 && month <= 12 && day >= 1 && day <= days && hour <= 23 && minute <= 59 &&
    (second <= 59 || (second === 60 && hour === 23 && minute === 59));
}

/** Layer-1 `$defs/rfc3339_micros`: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, exactly 6 fractional digits. */
export const Rfc3339Micros = Schema.String.check(
  Schema.isPattern(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$/, {
    expected: "a UTC timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ with exactly 6 fractional digits",
  }),
  Schema.makeFilter(isExistingUtcDateTime, { expected: "a UTC date and time that exists" }),
);
export type Rfc3339Micros = typeof Rfc3339Micros.Type;

/** Platform session run id (`^platform_[0-9]{8}T[0-9]{6}Z$`, e.g. `platform_20260212T085637Z`). */
export const PlatformRunId = Schema.String.check(
  Schema.isPattern(/^platform_[0-9]{8}T[0-9]{6}Z$/, {
    expected: "a platform run id like platform_20260101T000000Z",
  }),
);
export type PlatformRunId = typeof PlatformRunId.Type;

/** A JSON object with any keys (`type: object, additionalProperties: true`). */
export const JsonObject = Schema.Record(Schema.String, Schema.Unknown);
export type JsonObject = typeof JsonObject.Type;

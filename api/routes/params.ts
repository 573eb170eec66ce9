/**
 * Schemas of the strings route parameters and queries arrive as: ids, cursors and limits, each
 * refusing what it cannot be with a message that names the field (400 ADMIN_PARAM_INVALID).
 */
import { Schema, SchemaGetter } from "effect";

/** An id as stores use them: letters, digits, `_`, `-`, `.`, `:` and `=`, 1 to 200 chars. */
export const Id = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_.:=-]{1,200}$/, {
    expected: "an id of letters, digits, _ - . : = (at most 200)",
  }),
);

/** A whole number written in decimal (no sign, exponent or hex), within `[min, max]`. */
export function intParam(min: number, max: number) {
  return Schema.String.check(
    Schema.isPattern(/^\d{1,15}$/, { expected: "a whole number in decimal" }),
    Schema.makeFilter((s: string) => Number(s) >= min && Number(s) <= max, {
      expected: `a number from ${min} to ${max}`,
    }),
  ).pipe(Schema.decodeTo(Schema.Int, {
    decode: SchemaGetter.transform((s: string) => Number(s)),
    encode: SchemaGetter.transform((n: number) => String(n)),
  }));
}

/** A `limit` query parameter: 1..1000. */
export const Limit = intParam(1, 1000);

/** An `after` cursor: the `seq` of the last item of the previous page. */
export const Cursor = intParam(0, Number.MAX_SAFE_INTEGER);

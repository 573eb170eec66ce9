/**
 * The wire formats of privacy tiers above `local`: the license pack (agentos-ccc's
 * `ccp.license.v1`), the public key set it is checked against (the format of PUBKEYS.json) and
 * the minimized fields file that lists, per output, the payload fields to pseudonymize.
 */
import { Schema } from "effect";

const Text = Schema.String.check(Schema.isMinLength(1, { expected: "a non-empty string" }));

/** The signed part of a license pack; the signature covers its canonical JSON. */
export const License = Schema.Struct({
  schema: Schema.Literal("ccp.license.v1"),
  kid: Text,
  plan: Text,
  features: Schema.Array(Text),
  /** Expiry, epoch seconds. */
  exp: Schema.Finite,
});
export type License = typeof License.Type;

/** A license pack: the license and an Ed25519 signature (base64) over its canonical JSON. */
export const LicensePack = Schema.Struct({
  license: License,
  signature: Text,
});
export type LicensePack = typeof LicensePack.Type;

/** One public key of the set: `id` is what a license's `kid` names; `base64` the raw 32 bytes. */
export const LicensePublicKey = Schema.Struct({
  id: Text,
  type: Schema.Literal("ed25519"),
  base64: Text,
});

/** The public key set (PUBKEYS.json). */
export const LicensePublicKeys = Schema.Struct({
  version: Schema.optionalKey(Schema.String),
  keys: Schema.Array(LicensePublicKey),
});
export type LicensePublicKeys = typeof LicensePublicKeys.Type;

const FIELD = /^[a-z_][a-z0-9_]*$/;
const OUTPUT_ID = /^[A-Za-z0-9_]{1,128}$/;

/** The minimized fields file: `{outputs: {<output_id>: [field, ...]}}`. */
export const MinimizedFieldsFile = Schema.Struct({
  outputs: Schema.Record(
    Schema.String.check(Schema.isPattern(OUTPUT_ID, { expected: "an output id" })),
    Schema.Array(
      Schema.String.check(Schema.isPattern(FIELD, { expected: "a plain column name" })),
    ),
  ),
});
export type MinimizedFieldsFile = typeof MinimizedFieldsFile.Type;

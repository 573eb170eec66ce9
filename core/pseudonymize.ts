/**
 * Pseudonymization for privacy tier `minimized`: each output's fields listed in the minimized
 * fields file (`governance.minimized_fields_ref`, `{outputs: {<output_id>: [field, ...]}}`) are
 * replaced in the payload by a keyed HMAC-SHA256 of `<field>|<value as text>`, the key from
 * WORLDSTREAM_PSEUDONYM_KEY. The field name is in the message so that one account id gives one
 * pseudonym in every output (joins still work) but an account and a party with the same number
 * do not collide.
 *
 * The pseudonym keeps the field's type and format, so the payload still fits the closed row
 * schemas and the platform's gate: an integer becomes 1 + the HMAC's first 52 bits (a positive
 * integer, safe in every JSON reader); a string becomes the HMAC's lowercase hex cut to the
 * original's length, 64 at most (a hex64 digest stays a hex64 digest, a fixed-width code keeps
 * its width). Null stays null. Number and boolean fields carry no identity and cannot be listed.
 *
 * The hot path stays in DuckDB: the expression below is spliced into the envelope query in place
 * of the column (sql/duckdb/envelope_rows.sql), with the key's two HMAC pads precomputed here and
 * bound as parameters, so JavaScript never parses or re-serializes a payload. Envelope fields,
 * event ids included, are built from the raw row and do not change.
 */
import { Effect } from "effect";
import { parse } from "yaml";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { MinimizedFieldsFile } from "../schemas/license.ts";
import type { RowShape } from "./catalogue.ts";
import { sha256Hex } from "./hash.ts";
import type { Env } from "./profile_interpolate.ts";
import { INTEGER_TYPES } from "./row_shape.ts";

/** The environment variable that holds the pseudonym key (UTF-8, 16 bytes or more). */
export const PSEUDONYM_KEY_ENV = "WORLDSTREAM_PSEUDONYM_KEY";

const MIN_KEY_BYTES = 16;
const BLOCK = 64;

/** The key's HMAC pads, hex, bound to the envelope query as $pseudonym_ipad / $pseudonym_opad. */
export interface PseudonymKey {
  readonly ipadHex: string;
  readonly opadHex: string;
}

/** What one output's reader pseudonymizes: the listed fields, with the key. */
export interface Pseudonymizer extends PseudonymKey {
  readonly fields: ReadonlySet<string>;
}

/** The key's pads from the environment: PSEUDONYM_KEY_MISSING / _INVALID otherwise. */
export function pseudonymKeyFromEnv(env?: Env): Effect.Effect<PseudonymKey, WorldstreamError> {
  const text = (env ?? Deno.env.toObject())[PSEUDONYM_KEY_ENV];
  if (text === undefined || text === "") {
    return Effect.fail(
      fail("PSEUDONYM_KEY_MISSING", `Privacy tier minimized needs ${PSEUDONYM_KEY_ENV}`),
    );
  }
  const raw = new TextEncoder().encode(text);
  if (raw.length < MIN_KEY_BYTES) {
    return Effect.fail(fail(
      "PSEUDONYM_KEY_INVALID",
      `${PSEUDONYM_KEY_ENV} is ${raw.length} bytes; it needs ${MIN_KEY_BYTES} or more`,
    ));
  }
  return Effect.succeed(hmacPads(raw));
}

/** RFC 2104's inner and outer pads of a key (hashed first when longer than a block). */
export function hmacPads(key: Uint8Array): PseudonymKey {
  const block = new Uint8Array(BLOCK);
  block.set(key.length > BLOCK ? hexBytes(sha256Hex(key)) : key);
  return {
    ipadHex: toHex(block.map((b) => b ^ 0x36)),
    opadHex: toHex(block.map((b) => b ^ 0x5c)),
  };
}

function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The minimized fields of each output. */
export type MinimizedFields = ReadonlyMap<string, ReadonlyArray<string>>;

const decodeFile = decodeWith(MinimizedFieldsFile, "MINIMIZED_FIELDS_INVALID", "Minimized fields");

/**
 * Loads the minimized fields file and checks it against the row shapes: every output is one the
 * interface pack knows, every field one its row schema declares as an integer or a string, no
 * field twice. MINIMIZED_FIELDS_MISSING when it cannot be read, _INVALID otherwise.
 */
export const loadMinimizedFields = Effect.fn("loadMinimizedFields")(function* (
  path: string,
  rows: ReadonlyMap<string, RowShape>,
): Effect.fn.Return<MinimizedFields, WorldstreamError> {
  const text = yield* Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: () => fail("MINIMIZED_FIELDS_MISSING", `Cannot read the minimized fields file ${path}`),
  });
  const doc = yield* Effect.try({
    try: () => parse(text) as unknown,
    catch: () => fail("MINIMIZED_FIELDS_INVALID", `${path}: Not valid YAML`),
  });
  const file = yield* decodeFile(doc).pipe(
    Effect.mapError((e) => fail(e.reason, `${path}: ${e.message}`)),
  );
  const out = new Map<string, ReadonlyArray<string>>();
  for (const [outputId, fields] of Object.entries(file.outputs)) {
    const shape = rows.get(outputId);
    if (shape === undefined) {
      return yield* fail(
        "MINIMIZED_FIELDS_INVALID",
        `${path}: outputs.${outputId}: The interface pack has no such output`,
      );
    }
    const seen = new Set<string>();
    for (const field of fields) {
      const where = `${path}: outputs.${outputId}: ${field}`;
      if (seen.has(field)) return yield* fail("MINIMIZED_FIELDS_INVALID", `${where}: Listed twice`);
      seen.add(field);
      const types = shape.types.get(field);
      if (types === undefined) {
        return yield* fail(
          "MINIMIZED_FIELDS_INVALID",
          `${where}: Not a field of the output's row schema`,
        );
      }
      const kinds = types.filter((t) => t !== "null");
      if (kinds.length === 0 || !kinds.every((t) => t === "integer" || t === "string")) {
        return yield* fail(
          "MINIMIZED_FIELDS_INVALID",
          `${where}: Is ${types.join(" or ")}; only integer and string fields can be pseudonymized`,
        );
      }
    }
    out.set(outputId, [...fields]);
  }
  return out;
});

/**
 * The DuckDB expression that renders `column` (a checked plain name) pseudonymized, by its
 * DuckDB type; undefined for a type that has no pseudonym of its own type.
 */
export function pseudonymSql(column: string, duckType: string): string | undefined {
  const hmac = `sha256(unhex($pseudonym_opad) || unhex(sha256(unhex($pseudonym_ipad) || ` +
    `encode('${column}|' || CAST("${column}" AS VARCHAR)))))`;
  if (INTEGER_TYPES.includes(duckType)) {
    return `CASE WHEN "${column}" IS NULL THEN NULL ELSE ('0x' || substr(${hmac}, 1, 13))::BIGINT + 1 END`;
  }
  if (duckType === "VARCHAR") {
    return `CASE WHEN "${column}" IS NULL THEN NULL ELSE substr(${hmac}, 1, least(length("${column}"), 64)) END`;
  }
  return undefined;
}

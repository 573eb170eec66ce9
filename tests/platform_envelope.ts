/**
 * The platform's own canonical envelope schema as an ajv validator, for conformance tests.
 * It lives beside this repository (`../shared/contracts`, which CI has); when absent,
 * {@link platformEnvelopeValidator} returns `undefined` and tests say they skipped.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";

const CONTRACTS = new URL("../../shared/contracts/fraud-platform/interface_pack/", import.meta.url);
const SCHEMA = new URL("canonical_event_envelope.schema.yaml", CONTRACTS);
// The schema points at layer-1 $defs by a path outside the pack: they are inlined.
const LAYER1_REF = "../layer-1/specs/contracts/1A/schemas.layer1.yaml#/$defs/";

/** True when the platform's contract files are checked out beside the repository. */
export const hasPlatformContracts: boolean = (() => {
  try {
    Deno.statSync(SCHEMA);
    return true;
  } catch {
    return false;
  }
})();

/** A validator returning `undefined` for a valid envelope or the problem text; `undefined` when absent. */
export function platformEnvelopeValidator(): ((doc: unknown) => string | undefined) | undefined {
  if (!hasPlatformContracts) return undefined;
  const layer1 = parse(Deno.readTextFileSync(new URL("schemas.layer1.yaml", CONTRACTS)));
  const inline = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(inline);
    if (node === null || typeof node !== "object") return node;
    const ref = (node as { $ref?: unknown }).$ref;
    if (typeof ref === "string" && ref.startsWith(LAYER1_REF)) {
      const def = layer1.$defs[ref.slice(LAYER1_REF.length)];
      if (def === undefined) throw new Error(`layer-1 has no $defs entry for ${ref}`);
      return def;
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inline(v)]));
  };
  const schema = inline(parse(Deno.readTextFileSync(SCHEMA)));
  const ajv = new Ajv2020({
    strict: false,
    validateFormats: true,
    formats: {
      uuid: /^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/i,
      "date-time": true,
    },
  });
  const validate = ajv.compile(schema as object);
  return (doc) => validate(doc) ? undefined : ajv.errorsText(validate.errors);
}

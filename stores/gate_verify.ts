/**
 * Verifies a gate of a world the way the gates map's `verification_method` says, so a flag is
 * believed only when it vouches for the bundle on disk. The definitions follow the platform's
 * Scenario Runner (`src/fraud_detection/scenario_runner/evidence.py`, `GateVerifier`):
 *
 * - the flag's digest: a JSON flag's `digest_field`; otherwise `key = value` with key =
 *   `digest_field` (the 6B engine writes `sha256_hex = <hex>`, the 5B engine
 *   `{"bundle_digest_sha256": <hex>, "manifest_fingerprint": …}`); anything else is no pass;
 * - `sha256_index_json_ascii_lex_raw_bytes`: sha256 over the raw bytes of the files index.json
 *   lists (a bare list, or its first non-empty `items`|`members`|`entries`|`files`), minus
 *   `exclude_filenames` (by path or base name), in ASCII-lex path order, relative to the bundle
 *   root (the run root with `path_base: run_root`);
 * - `sha256_member_digest_concat`: sha256 over the concatenated `digest_field` values of
 *   index.json's `members` (or `items`), in array order;
 * - `sha256_bundle_digest` (or no kind): sha256 over the raw bytes of every file under the bundle
 *   root but `exclude_filenames`, in ASCII-lex order of their paths relative to it.
 *
 * Where worldstream is stricter than the platform: listed paths must stay inside the run root
 * (the platform reads absolute paths as given), an unknown kind is refused rather than read as a
 * bundle digest, and a JSON bundle member that vouches for an output's parts
 * (`outputs: [{output_id, files: [{path, sha256_hex, size_bytes}]}]`, as gen-world writes in
 * `validation_report.json`) or states a `status` other than PASS/WARN is read and enforced.
 */
import { Effect } from "effect";
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { type GateEntry, renderTemplate, type WorldKey } from "../core/catalogue.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { OracleRoot } from "./oracle.ts";

/** One part file a gate's bundle vouches for. */
export interface VouchedPart {
  /** Relative to the run root. */
  readonly path: string;
  readonly sha256_hex: string;
  readonly size_bytes?: number;
}

/** A gate whose flag holds the digest of the bundle on disk. */
export interface VerifiedGate {
  readonly gateId: string;
  /** The flag's path, relative to the run root. */
  readonly flag: string;
  /** The bundle root, relative to the run root. */
  readonly bundleRoot: string;
  /** The bundle digest the flag holds (and the bundle hashes to). */
  readonly digest: string;
  /** Part files by output id, for the outputs the bundle lists parts of. */
  readonly parts: ReadonlyMap<string, ReadonlyArray<VouchedPart>>;
}

const HEX64 = /^[a-f0-9]{64}$/;
const INDEX_KIND = "sha256_index_json_ascii_lex_raw_bytes";
const MEMBER_KIND = "sha256_member_digest_concat";
const BUNDLE_KIND = "sha256_bundle_digest";

/**
 * Verifies `gate` for the world `key` in `store`; `undefined` when its `_passed.flag` does not
 * exist. Fails GATE_PASS_INVALID (the flag holds no digest, or the bundle says it did not pass),
 * GATE_BUNDLE_INVALID (index or listed file missing or malformed), GATE_DIGEST_MISMATCH (the
 * bundle does not hash to the flag's digest), PATH_ESCAPES_ROOT.
 */
export const verifyGate = Effect.fn("verifyGate")(function* (
  store: OracleRoot,
  gate: GateEntry,
  key: WorldKey,
): Effect.fn.Return<VerifiedGate | undefined, WorldstreamError> {
  const method = gate.verification_method ?? {};
  const kind = method.kind ?? BUNDLE_KIND;
  const exclude = new Set(method.exclude_filenames ?? []);
  const ordered = (method.ordering ?? "ascii_lex") === "ascii_lex";
  const flag = renderTemplate(gate.passed_flag_path_template, key);
  const bundleRoot = renderTemplate(gate.bundle_root_template, key);
  const id = gate.gate_id;

  const flagText = yield* store.readText(flag);
  if (flagText === undefined) return undefined;
  const expected = yield* flagDigest(flagText, method.digest_field, `Gate ${id}: ${flag}`);

  const indexPath = gate.index_path_template === undefined
    ? undefined
    : renderTemplate(gate.index_path_template, key);
  const readIndex = Effect.gen(function* () {
    if (indexPath === undefined) {
      return yield* fail("GATE_BUNDLE_INVALID", `Gate ${id} has no index_path_template`);
    }
    const text = yield* store.readText(indexPath);
    if (text === undefined) {
      return yield* fail("GATE_BUNDLE_INVALID", `Gate ${id}: ${indexPath} does not exist`);
    }
    return yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: () => fail("GATE_BUNDLE_INVALID", `Gate ${id}: ${indexPath} is not JSON`),
    });
  });

  // The JSON files the digest covered (they may vouch for parts), and the digest.
  const vouching: Array<[string, Uint8Array]> = [];
  let actual: string;
  if (kind === MEMBER_KIND) {
    const index = yield* readIndex;
    const items = isObject(index) ? firstTruthy(index, ["members", "items"]) : undefined;
    const members = yield* itemList(items ?? [], `Gate ${id}: ${indexPath}`);
    const field = method.digest_field;
    const concat = members.map((m) => field === undefined ? undefined : m[field])
      .filter((v) => pyTruthy(v)).map(String).join("");
    actual = createHash("sha256").update(concat, "utf8").digest("hex");
  } else {
    // The files whose bytes make the digest, relative to the run root, in digest order.
    let files: Array<string>;
    if (kind === INDEX_KIND) {
      const index = yield* readIndex;
      const items = Array.isArray(index)
        ? index
        : isObject(index)
        ? firstTruthy(index, ["items", "members", "entries", "files"]) ?? []
        : [];
      const listed: Array<string> = [];
      for (const item of yield* itemList(items, `Gate ${id}: ${indexPath}`)) {
        const path = item.path;
        if (!pyTruthy(path)) continue;
        if (typeof path !== "string") {
          return yield* fail(
            "GATE_BUNDLE_INVALID",
            `Gate ${id}: ${indexPath} lists a path that is not a string: ${JSON.stringify(path)}`,
          );
        }
        if (exclude.has(path) || exclude.has(basename(path))) continue;
        listed.push(path);
      }
      if (ordered) listed.sort(asciiLex);
      const base = (method.path_base ?? "bundle_root") === "bundle_root" ? bundleRoot : "";
      files = listed.map((p) => base === "" ? p : join(base, p));
    } else if (kind === BUNDLE_KIND) {
      const all = (yield* store.listTree(bundleRoot)).filter((p) => !exclude.has(basename(p)));
      if (ordered) all.sort(asciiLex);
      files = all.map((p) => join(bundleRoot, p));
    } else {
      return yield* fail(
        "GATE_BUNDLE_INVALID",
        `Gate ${id}: verification_method kind ${
          JSON.stringify(kind)
        } is not one worldstream can check`,
      );
    }
    const hash = createHash("sha256");
    for (const file of files) {
      const bytes = yield* store.readBytes(file);
      if (bytes === undefined) {
        return yield* fail(
          "GATE_BUNDLE_INVALID",
          `Gate ${id}: bundle file ${file} does not exist (listed by ${
            kind === INDEX_KIND ? indexPath : bundleRoot
          })`,
        );
      }
      hash.update(bytes);
      if (file.endsWith(".json")) vouching.push([file, bytes]);
    }
    actual = hash.digest("hex");
  }
  if (actual !== expected) {
    return yield* fail(
      "GATE_DIGEST_MISMATCH",
      `Gate ${id}: ${flag} holds ${
        method.digest_field ?? "digest"
      } ${expected}, but the bundle at ${bundleRoot} hashes to ${actual} (${kind}); the bundle changed after it was gated`,
    );
  }
  const parts = yield* vouchedParts(id, vouching);
  return { gateId: id, flag, bundleRoot, digest: actual, parts };
});

/** The digest a flag holds, read as the platform reads it (see the file comment). */
function flagDigest(
  text: string,
  field: string | undefined,
  where: string,
): Effect.Effect<string, WorldstreamError> {
  const content = text.trim();
  const shown = JSON.stringify(content.length > 80 ? `${content.slice(0, 80)}…` : content);
  const invalid = (why: string) =>
    Effect.fail(fail("GATE_PASS_INVALID", `${where} ${why} (it reads ${shown})`));
  let value: unknown;
  if (content.startsWith("{")) {
    let doc: unknown;
    try {
      doc = JSON.parse(content);
    } catch {
      return invalid("is not valid JSON");
    }
    value = isObject(doc) && field !== undefined ? doc[field] : undefined;
  } else if (content.includes("=")) {
    const at = content.indexOf("=");
    if (field !== undefined && content.slice(0, at).trim() !== field) {
      return invalid(`does not hold ${field} = <sha256>`);
    }
    value = content.slice(at + 1).trim();
  } else {
    return invalid(`does not hold ${field ?? "<digest field>"} = <sha256>`);
  }
  if (typeof value !== "string" || !HEX64.test(value)) {
    return invalid(`does not hold a sha256 digest in ${field ?? "its digest field"}`);
  }
  return Effect.succeed(value);
}

/** Part lists and statuses stated by the JSON files the digest covered. */
function vouchedParts(
  gateId: string,
  files: ReadonlyArray<readonly [string, Uint8Array]>,
): Effect.Effect<Map<string, Array<VouchedPart>>, WorldstreamError> {
  return Effect.gen(function* () {
    const parts = new Map<string, Array<VouchedPart>>();
    for (const [file, bytes] of files) {
      let doc: unknown;
      try {
        doc = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        continue;
      }
      if (!isObject(doc)) continue;
      const where = `Gate ${gateId}: ${file}`;
      if (typeof doc.status === "string" && doc.status !== "PASS" && doc.status !== "WARN") {
        return yield* fail("GATE_PASS_INVALID", `${where} says status ${doc.status}`);
      }
      if (doc.outputs === undefined) continue;
      const bad = (why: string) => fail("GATE_BUNDLE_INVALID", `${where}: ${why}`);
      if (!Array.isArray(doc.outputs)) return yield* bad("outputs is not a list");
      for (const output of doc.outputs) {
        if (!isObject(output) || typeof output.output_id !== "string") {
          return yield* bad("an outputs entry has no output_id");
        }
        if (output.files === undefined) continue;
        if (!Array.isArray(output.files)) {
          return yield* bad(`outputs ${output.output_id}: files is not a list`);
        }
        const list: Array<VouchedPart> = [];
        for (const f of output.files) {
          if (
            !isObject(f) || typeof f.path !== "string" || typeof f.sha256_hex !== "string" ||
            !HEX64.test(f.sha256_hex) ||
            (f.size_bytes !== undefined && !Number.isSafeInteger(f.size_bytes))
          ) {
            return yield* bad(
              `outputs ${output.output_id}: a files entry lacks path or sha256_hex`,
            );
          }
          list.push({
            path: f.path,
            sha256_hex: f.sha256_hex,
            ...(f.size_bytes === undefined ? {} : { size_bytes: f.size_bytes as number }),
          });
        }
        parts.set(output.output_id, [...(parts.get(output.output_id) ?? []), ...list]);
      }
    }
    return parts;
  });
}

function itemList(
  items: unknown,
  where: string,
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, WorldstreamError> {
  return Array.isArray(items) && items.every(isObject)
    ? Effect.succeed(items)
    : Effect.fail(fail("GATE_BUNDLE_INVALID", `${where} lists entries that are not objects`));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Python's truth value of a JSON value (what the platform's `or` chains test). */
function pyTruthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return value !== undefined && value !== null && value !== false && value !== 0 && value !== "";
}

function firstTruthy(doc: Record<string, unknown>, keys: ReadonlyArray<string>): unknown {
  for (const k of keys) if (pyTruthy(doc[k])) return doc[k];
  return undefined;
}

const utf8 = new TextEncoder();

/** Code point order (Python's `sorted` on str): the order of the UTF-8 bytes. */
function asciiLex(a: string, b: string): number {
  const [x, y] = [utf8.encode(a), utf8.encode(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

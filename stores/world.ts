/**
 * Resolves an engine run root into a world worldstream may read: run receipt, pack manifest,
 * seal, world key and, per output, its gate flags and part files. Checks run in the platform's
 * order (CONTRACTS.md) and fail closed with its reason codes. The root is opened through the
 * OracleStore service (stores/oracle.ts), so a world may live wherever the runtime's store reads.
 */
import { Effect } from "effect";
import { decodeJsonText, decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { OraclePackManifest, OraclePackSeal } from "../schemas/oracle_pack.ts";
import { RunReceipt } from "../schemas/run_receipt.ts";
import { type OracleRoot, OracleStore } from "./oracle.ts";
import { type VerifiedGate, verifyGate, type VouchedPart } from "./gate_verify.ts";
import {
  checkWorldKey,
  type InterfacePack,
  loadInterfacePack,
  type OutputEntry,
  outputEntry,
  renderTemplate,
  type WorldKey,
} from "../core/catalogue.ts";
import { sha256Hex } from "../core/hash.ts";
import { normalize } from "node:path";

/** How strictly a world is checked (from the profile). */
export interface WorldOptions {
  /** Missing `_oracle_pack_manifest.json` / `_SEALED.json` fail (dev, prod) instead of being tolerated. */
  readonly strict: boolean;
  /**
   * Gates are checked: a missing `_passed.flag` fails GATE_PASS_MISSING, and each flag is verified
   * against its bundle and the output's parts (see resolveOutput).
   */
  readonly requireGatePass: boolean;
  /** The scenario to read; defaults to the pack manifest's. */
  readonly scenarioId?: string;
  /** Interface pack folder; defaults to the bundled subset. */
  readonly interfacePackDir?: string;
}

/** A checked world. */
export interface World {
  readonly store: OracleRoot;
  readonly engineRunRoot: string;
  readonly runReceipt: RunReceipt;
  readonly worldKey: WorldKey;
  readonly manifest: OraclePackManifest | undefined;
  readonly sealed: boolean;
  /** The manifest's oracle_pack_id, else sha256_hex(engine_run_root) (the trace id rule). */
  readonly traceId: string;
  readonly pack: InterfacePack;
  readonly options: WorldOptions;
}

/** One output of a world, ready to be sorted or read. */
export interface WorldOutput {
  readonly entry: OutputEntry;
  /** Absolute part paths in lexicographic order. */
  readonly parts: ReadonlyArray<string>;
}

const RECEIPT = "run_receipt.json";
const MANIFEST = "_oracle_pack_manifest.json";
const SEAL = "_SEALED.json";

/** Checks an engine run root and returns the world it holds. */
export const resolveWorld = Effect.fn("resolveWorld")(function* (
  root: string,
  options: WorldOptions,
): Effect.fn.Return<World, WorldstreamError, OracleStore> {
  const store = yield* (yield* OracleStore).open(root);
  const pack = yield* loadInterfacePack(options.interfacePackDir);

  const receiptText = yield* store.readText(RECEIPT).pipe(
    Effect.mapError((e) => fail("RUN_RECEIPT_UNREADABLE", e.message)),
  );
  if (receiptText === undefined) {
    return yield* fail("RUN_RECEIPT_UNREADABLE", `${store.root}/${RECEIPT} does not exist`);
  }
  const receiptJson = yield* Effect.try({
    try: () => JSON.parse(receiptText) as unknown,
    catch: () => fail("RUN_RECEIPT_UNREADABLE", `${store.root}/${RECEIPT}: Malformed JSON`),
  });
  if (receiptJson === null || typeof receiptJson !== "object" || Array.isArray(receiptJson)) {
    return yield* fail(
      "RUN_RECEIPT_UNREADABLE",
      `${store.root}/${RECEIPT}: Expected a JSON object`,
    );
  }

  const manifestText = yield* store.readText(MANIFEST);
  const manifestScenario = manifestText === undefined ? undefined : scenarioOf(manifestText);
  const scenarioId = options.scenarioId ?? manifestScenario;
  if (scenarioId === undefined || scenarioId === "") {
    if (manifestText !== undefined) {
      // The manifest is there but names no scenario: it is broken, not absent (this decode fails).
      yield* decodeJsonText(
        OraclePackManifest,
        "PACK_MANIFEST_INVALID",
        `${store.root}/${MANIFEST}`,
      )(
        manifestText,
      );
    }
    return yield* fail(
      "SCENARIO_ID_MISSING",
      `No scenario id: give one, or provide ${MANIFEST} with world_key.scenario_id`,
    );
  }
  const missing = ["manifest_fingerprint", "parameter_hash", "seed"].filter((k) =>
    !(k in (receiptJson as object))
  );
  if (missing.length > 0) {
    return yield* fail("WORLD_KEY_MISSING", `${store.root}/${RECEIPT} lacks ${missing.join(", ")}`);
  }
  const receipt = yield* decodeWith(
    RunReceipt,
    "RUN_RECEIPT_UNREADABLE",
    `${store.root}/${RECEIPT}`,
  )(
    receiptJson,
  );
  const worldKey = yield* checkWorldKey({
    manifest_fingerprint: receipt.manifest_fingerprint,
    parameter_hash: receipt.parameter_hash,
    seed: receipt.seed,
    scenario_id: scenarioId,
  });

  let manifest: OraclePackManifest | undefined;
  if (manifestText === undefined) {
    if (options.strict) {
      return yield* fail("PACK_MANIFEST_MISSING", `${store.root}/${MANIFEST} does not exist`);
    }
  } else {
    manifest = yield* decodeJsonText(
      OraclePackManifest,
      "PACK_MANIFEST_INVALID",
      `${store.root}/${MANIFEST}`,
    )(manifestText);
    const m = manifest;
    const expectedId = sha256Hex(
      `${m.world_key.manifest_fingerprint}|${m.world_key.parameter_hash}|${m.world_key.scenario_id}|${m.world_key.seed}|${m.engine_release}|${m.catalogue_digest}|${m.gate_map_digest}`,
    );
    if (m.oracle_pack_id !== expectedId) {
      return yield* fail(
        "PACK_MANIFEST_INVALID",
        `${store.root}/${MANIFEST}: oracle_pack_id does not match its world key, release and digests`,
      );
    }
    const diff = (Object.keys(worldKey) as Array<keyof WorldKey>).filter((k) =>
      m.world_key[k] !== worldKey[k]
    );
    if (diff.length > 0) {
      return yield* fail(
        "WORLD_KEY_MISMATCH",
        `${MANIFEST} world_key differs from the run receipt / requested scenario in ${
          diff.join(", ")
        }`,
      );
    }
  }

  const sealText = yield* store.readText(SEAL);
  if (sealText === undefined) {
    if (options.strict) {
      return yield* fail("PACK_NOT_SEALED", `${store.root}/${SEAL} does not exist`);
    }
  } else {
    const seal = yield* decodeJsonText(OraclePackSeal, "PACK_NOT_SEALED", `${store.root}/${SEAL}`)(
      sealText,
    );
    if (seal.seal_status !== "SEALED_OK") {
      return yield* fail(
        "PACK_NOT_SEALED",
        `${store.root}/${SEAL}: seal_status is ${seal.seal_status}`,
      );
    }
    if (manifest !== undefined && seal.oracle_pack_id !== manifest.oracle_pack_id) {
      return yield* fail("PACK_NOT_SEALED", `${SEAL} seals another pack than ${MANIFEST}`);
    }
  }

  return {
    store,
    engineRunRoot: store.root,
    runReceipt: receipt,
    worldKey,
    manifest,
    sealed: sealText !== undefined,
    traceId: manifest?.oracle_pack_id ?? sha256Hex(store.root),
    pack,
    options,
  } satisfies World;
});

/**
 * Checks one output of a world and lists its part files. With gates required, each gate the
 * output reads under is verified (stores/gate_verify.ts: its flag against its bundle), and when a
 * verified bundle lists the output's parts, the parts on disk must be exactly those, byte for byte
 * (OUTPUT_PARTS_MISMATCH otherwise), so a part deleted, added or rewritten after gating is refused.
 */
export const resolveOutput = Effect.fn("resolveOutput")(function* (
  world: World,
  outputId: string,
): Effect.fn.Return<WorldOutput, WorldstreamError> {
  const entry = yield* outputEntry(world.pack, outputId);
  const gates: Array<VerifiedGate> = [];
  if (world.options.requireGatePass) {
    for (const gateId of entry.read_requires_gates) {
      const gate = world.pack.gates.get(gateId);
      if (gate === undefined) {
        return yield* fail(
          "GATE_PASS_MISSING",
          `Gate ${gateId} of ${outputId} is not in the gates map`,
        );
      }
      const verified = yield* verifyGate(world.store, gate, world.worldKey);
      if (verified === undefined) {
        const flag = renderTemplate(gate.passed_flag_path_template, world.worldKey);
        return yield* fail(
          "GATE_PASS_MISSING",
          `Gate ${gateId} has no ${flag} (required by ${outputId})`,
        );
      }
      gates.push(verified);
    }
  }
  const template = renderTemplate(entry.path_template, world.worldKey);
  const slash = template.lastIndexOf("/");
  const dir = template.slice(0, slash);
  const pattern = globToRegExp(template.slice(slash + 1));
  const parts = yield* world.store.list(dir, pattern);
  for (const gate of gates) {
    const vouched = gate.parts.get(outputId);
    if (vouched !== undefined) yield* checkParts(world, outputId, gate, vouched, parts);
  }
  return { entry, parts };
});

/** The parts on disk are exactly the ones `gate` vouches for, with the same bytes. */
const checkParts = Effect.fn("checkParts")(function* (
  world: World,
  outputId: string,
  gate: VerifiedGate,
  vouched: ReadonlyArray<VouchedPart>,
  parts: ReadonlyArray<string>,
) {
  const prefix = `${world.store.localRoot}/`;
  const found = parts.map((p) => p.startsWith(prefix) ? p.slice(prefix.length) : p);
  const onDisk = new Set(found);
  const byPath = new Map(vouched.map((v) => [normalize(v.path), v]));
  const differ = (what: string) =>
    fail(
      "OUTPUT_PARTS_MISMATCH",
      `Output ${outputId}: ${what} (gate ${gate.gateId}'s bundle at ${gate.bundleRoot} vouches for ${byPath.size} part(s), ${found.length} found)`,
    );
  for (const path of byPath.keys()) {
    if (!onDisk.has(path)) return yield* differ(`part ${path} is missing`);
  }
  for (const rel of found) {
    const expected = byPath.get(rel);
    if (expected === undefined) return yield* differ(`part ${rel} is not in the bundle`);
    const actual = yield* world.store.digest(rel);
    if (
      actual.sha256_hex !== expected.sha256_hex ||
      (expected.size_bytes !== undefined && actual.size_bytes !== expected.size_bytes)
    ) {
      return yield* differ(
        `part ${rel} has sha256 ${actual.sha256_hex} (${actual.size_bytes} bytes), the bundle says ${expected.sha256_hex}${
          expected.size_bytes === undefined ? "" : ` (${expected.size_bytes} bytes)`
        }`,
      );
    }
  }
});

function globToRegExp(glob: string): RegExp {
  const body = glob.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*");
  return new RegExp(`^${body}$`);
}

function scenarioOf(text: string): string | undefined {
  try {
    const id = JSON.parse(text)?.world_key?.scenario_id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Action `gen_world`: writes a deterministic synthetic engine world (the six outputs worldstream reads,
 * gate bundles and flags, run receipt, pack manifest and seal) at an engine run root. Rows are
 * made by DuckDB from `range()` and streamed into parquet (model: sql/duckdb/gen_macros.sql), so
 * ten million events need no more memory than a thousand; the same arguments give the same files.
 *
 * The CLI (`gen-world`), `run` (the demo world) and scripts/gen_world.ts call it.
 */
import { Effect, Schema } from "effect";
import { dirname, join, resolve } from "node:path";
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
import { decodeJsonText } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { OraclePackManifest, OraclePackSeal } from "../schemas/oracle_pack.ts";
import { DuckDb, type DuckSession, duckSql, sqlLiteral } from "../stores/duckdb.ts";
import { fileDigest } from "../stores/oracle_fs.ts";

/** The engine release a generated world names in its pack manifest. */
export const ENGINE_RELEASE = "worldstream-gen-world/0.1";

/** The outputs a generated world holds, in the order they are written. */
export const GEN_WORLD_OUTPUT_IDS = [
  "arrival_events_5B",
  "s1_arrival_entities_6B",
  "s2_flow_anchor_baseline_6B",
  "s3_flow_anchor_with_fraud_6B",
  "s2_event_stream_baseline_6B",
  "s3_event_stream_with_fraud_6B",
] as const;

/** What to generate; `events` is the exact row count of s3_event_stream_with_fraud_6B. */
export const GenWorldOptions = Schema.Struct({
  out: Schema.String,
  events: Schema.optionalKey(Schema.Number),
  seed: Schema.optionalKey(Schema.Number),
  scenarioId: Schema.optionalKey(Schema.String),
  /** Part files per output; defaults to one per million events, at least 3. */
  parts: Schema.optionalKey(Schema.Number),
});

/** What to generate. */
export type GenWorldOptions = typeof GenWorldOptions.Type;

/** What `gen_world` answers (the `gen-world` result line). */
export const GenWorldResult = Schema.Struct({
  engine_run_root: Schema.String,
  scenario_id: Schema.String,
  /** Row count per output id. */
  outputs: Schema.Record(Schema.String, Schema.Number),
});

/** What `gen_world` answers. */
export type GenWorldResult = typeof GenWorldResult.Type;

const MAX_EVENTS = 1_000_000_000;
const MAX_PARTS = 10_000;
const DAY_MS = 86_400_000;
const RECEIPT = "run_receipt.json";
const MANIFEST = "_oracle_pack_manifest.json";
const SEAL = "_SEALED.json";

/** Everything about a world that follows from the arguments alone. */
interface WorldPlan {
  readonly root: string;
  readonly events: number;
  readonly parts: number;
  readonly key: WorldKey;
  readonly runId: string;
  /** The model's hash seed: seed and scenario together, so scenarios differ. */
  readonly rng: bigint;
  readonly routingUniverseHash: string;
  readonly startMs: number;
  readonly days: number;
  readonly epochBlocks: number;
  readonly createdUtc: string;
  readonly outputs: ReadonlyArray<OutputEntry>;
  readonly oraclePackId: string;
  readonly pack: InterfacePack;
}

/** Generates a world at `options.out`, or returns the earlier identical one found there. */
export const genWorld = Effect.fn("genWorld")(function* (
  options: GenWorldOptions,
): Effect.fn.Return<GenWorldResult, WorldstreamError, DuckDb> {
  const plan = yield* planWorld(options);
  const earlier = yield* earlierWorld(plan);
  if (earlier !== undefined) return earlier;

  const counts = yield* Effect.scoped(writeOutputs(plan));
  const outputs = Object.fromEntries(GEN_WORLD_OUTPUT_IDS.map((id) => [id, counts.get(id) ?? 0]));
  for (const gateId of new Set(plan.outputs.flatMap((o) => o.read_requires_gates))) {
    yield* writeGateBundle(plan, gateId, outputs);
  }
  yield* writeJson(join(plan.root, RECEIPT), runReceipt(plan, outputs));
  yield* writeJson(join(plan.root, MANIFEST), {
    version: "v0",
    oracle_pack_id: plan.oraclePackId,
    world_key: plan.key,
    engine_release: ENGINE_RELEASE,
    catalogue_digest: plan.pack.catalogueDigest,
    gate_map_digest: plan.pack.gateMapDigest,
    created_at_utc: plan.createdUtc,
  });
  // Last: a world that crashed before this line never reads as sealed.
  yield* writeJson(join(plan.root, SEAL), {
    version: "v0",
    oracle_pack_id: plan.oraclePackId,
    seal_status: "SEALED_OK",
    sealed_at_utc: plan.createdUtc,
  });
  return { engine_run_root: plan.root, scenario_id: plan.key.scenario_id, outputs };
});

const planWorld = Effect.fn("planWorld")(function* (options: GenWorldOptions) {
  const events = options.events ?? 20_000;
  const seed = options.seed ?? 42;
  const scenarioId = options.scenarioId ?? "baseline_v1";
  if (!Number.isSafeInteger(events) || events < 1 || events > MAX_EVENTS) {
    return yield* fail("BAD_ARGS", `events must be an integer from 1 to ${MAX_EVENTS}`);
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    return yield* fail("BAD_ARGS", `seed must be a non-negative integer, got ${seed}`);
  }
  const parts = options.parts ?? Math.min(64, Math.max(3, Math.ceil(events / 1_000_000)));
  if (!Number.isSafeInteger(parts) || parts < 1 || parts > MAX_PARTS) {
    return yield* fail("BAD_ARGS", `parts must be an integer from 1 to ${MAX_PARTS}`);
  }
  // deno-lint-ignore no-control-regex
  if (options.out.trim() === "" || /['\\\u0000-\u001f]/.test(options.out)) {
    return yield* fail(
      "BAD_ARGS",
      "out must name a directory without quotes or control characters",
    );
  }

  const tag = (what: string, ...more: Array<string | number>) =>
    sha256Hex([ENGINE_RELEASE, what, `seed=${seed}`, ...more].join("|"));
  const key = yield* checkWorldKey({
    manifest_fingerprint: tag("manifest_fingerprint"),
    parameter_hash: tag("parameter_hash", `scenario_id=${scenarioId}`, `events=${events}`),
    seed,
    scenario_id: scenarioId,
  }).pipe(Effect.mapError((e) => fail("BAD_ARGS", e.message)));
  const pack = yield* loadInterfacePack();
  const outputs: Array<OutputEntry> = [];
  for (const id of GEN_WORLD_OUTPUT_IDS) outputs.push(yield* outputEntry(pack, id));

  const days = Math.min(7, Math.max(1, Math.ceil(events / 1_500_000)));
  const startMs = Date.UTC(2025, 0, 1) + (parseInt(tag("start").slice(0, 8), 16) % 365) * DAY_MS;
  return {
    root: resolve(options.out),
    events,
    parts,
    key,
    runId: tag("run_id", `scenario_id=${scenarioId}`, `events=${events}`).slice(0, 32),
    rng: BigInt(`0x${tag("rng", `scenario_id=${scenarioId}`).slice(0, 12)}`),
    routingUniverseHash: tag("routing_universe"),
    startMs,
    days,
    // About fifty campaign epochs whatever the size (a block is 64 arrivals, ~3 events each).
    epochBlocks: Math.max(1, Math.floor(events / (3 * 64 * 50))),
    // After the last refund or chargeback (≤ 30 h + 72 h + 72 h past the last arrival).
    createdUtc: utcMicros(startMs + (days + 8) * DAY_MS),
    outputs,
    oraclePackId: sha256Hex(
      [
        key.manifest_fingerprint,
        key.parameter_hash,
        key.scenario_id,
        key.seed,
        ENGINE_RELEASE,
        pack.catalogueDigest,
        pack.gateMapDigest,
      ].join("|"),
    ),
    pack,
  } satisfies WorldPlan;
});

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` of an epoch-millisecond instant. */
function utcMicros(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** The relative path of part `index` of an output. */
function partPath(plan: WorldPlan, entry: OutputEntry, index: number): string {
  const template = renderTemplate(entry.path_template, plan.key);
  return join(dirname(template), `part-${String(index).padStart(5, "0")}.parquet`);
}

/** Parallel COPYs: each is one single-threaded pipeline (range() is not a parallel source). */
const WORKERS = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));

/** Sizes the world, then writes every part of every output, `WORKERS` COPYs at a time. */
const writeOutputs = Effect.fn("writeOutputs")(function* (plan: WorldPlan) {
  const duck = yield* DuckDb;
  const openSession = Effect.gen(function* () {
    const session = yield* duck.session;
    yield* session.exec(duckSql("gen_macros"));
    yield* session.exec(duckSql("gen_lanes"), { rng: plan.rng });
    return session;
  });
  const first = yield* openSession;
  const [size] = yield* first.rows<{ arrivals: bigint; last_events: bigint }>(
    duckSql("gen_size"),
    { rng: plan.rng, events: plan.events, epoch_blocks: plan.epochBlocks },
  );
  const arrivals = Number(size.arrivals);
  const vars = {
    seed: plan.key.seed,
    rng: plan.rng,
    scenario_id: plan.key.scenario_id,
    manifest_fingerprint: plan.key.manifest_fingerprint,
    parameter_hash: plan.key.parameter_hash,
    routing_universe_hash: plan.routingUniverseHash,
    arrivals,
    last_events: Number(size.last_events),
    epoch_blocks: plan.epochBlocks,
    start_us: BigInt(plan.startMs) * 1000n,
    days: plan.days,
  };
  const pool = [first];
  for (let w = 1; w < WORKERS; w++) pool.push(yield* openSession);
  for (const session of pool) {
    yield* session.exec(duckSql("gen_world_vars"), vars);
    yield* session.exec(duckSql("gen_zones"));
  }

  const tasks = plan.outputs.flatMap((entry) =>
    Array.from({ length: plan.parts }, (_, p) => ({
      entry,
      path: join(plan.root, partPath(plan, entry, p)),
      j0: Math.floor((p * arrivals) / plan.parts),
      j1: Math.floor(((p + 1) * arrivals) / plan.parts),
    }))
  );
  for (const dir of new Set(tasks.map((t) => dirname(t.path)))) yield* mkdirs(dir);
  const sql = new Map(plan.outputs.map((e) => [e.output_id, duckSql(`gen_${e.output_id}`)]));
  const rows = yield* Effect.forEach(
    tasks,
    (task) =>
      Effect.acquireUseRelease(
        Effect.sync(() => pool.pop()!),
        (session) =>
          copyPart(session, sql.get(task.entry.output_id)!, task.path, {
            j0: task.j0,
            j1: task.j1,
          }),
        (session) => Effect.sync(() => pool.push(session)),
      ),
    { concurrency: pool.length },
  );
  const counts = new Map<string, number>();
  tasks.forEach((task, i) => {
    const id = task.entry.output_id;
    counts.set(id, (counts.get(id) ?? 0) + rows[i]);
  });
  return counts;
});

function copyPart(
  session: DuckSession,
  sql: string,
  path: string,
  range: { readonly j0: number; readonly j1: number },
): Effect.Effect<number, WorldstreamError> {
  return Effect.try({
    try: () => sql.replace("__TARGET__", sqlLiteral(path)),
    catch: (e) => fail("BAD_ARGS", (e as Error).message),
  }).pipe(
    Effect.flatMap((text) => session.rows<{ Count: bigint }>(text, range)),
    Effect.map((rows) => Number(rows[0]?.Count ?? 0)),
  );
}

function runReceipt(plan: WorldPlan, outputs: Record<string, number>) {
  return {
    run_id: plan.runId,
    manifest_fingerprint: plan.key.manifest_fingerprint,
    parameter_hash: plan.key.parameter_hash,
    seed: plan.key.seed,
    created_utc: plan.createdUtc,
    scenario_id: plan.key.scenario_id,
    engine_release: ENGINE_RELEASE,
    gen_world: { events: plan.events, parts: plan.parts, outputs },
  };
}

/**
 * A gate's validation bundle, laid out as the platform's engine writes it (its S5 validation
 * states), so the check that reads an engine's world reads this one too (stores/gate_verify.ts):
 * `validation_report.json` (status PASS and each authorised output's row count and part files with
 * their sha256 and size), `index.json` listing the bundle files with their sha256, and
 * `_passed.flag` holding the bundle digest in the gate's `digest_field` — the 5B engine's JSON flag
 * `{"bundle_digest_sha256", "manifest_fingerprint"}`, the 6B engine's `sha256_hex = <hex>`. The
 * digest is the gates map's `sha256_index_json_ascii_lex_raw_bytes`: sha256 over the raw bytes of
 * the files index.json lists, in ASCII-lex path order (here the report alone).
 */
const writeGateBundle = Effect.fn("writeGateBundle")(function* (
  plan: WorldPlan,
  gateId: string,
  outputs: Record<string, number>,
) {
  const gate = plan.pack.gates.get(gateId);
  if (gate === undefined) {
    return yield* fail("GATE_PASS_MISSING", `Gate ${gateId} is not in the gates map`);
  }
  const method = gate.verification_method;
  if (method?.kind !== "sha256_index_json_ascii_lex_raw_bytes" || !method.digest_field) {
    return yield* fail(
      "GATE_BUNDLE_INVALID",
      `Gate ${gateId}: gen-world writes sha256_index_json_ascii_lex_raw_bytes bundles, the gates map says ${method?.kind}`,
    );
  }
  const flagRel = renderTemplate(gate.passed_flag_path_template, plan.key);
  const bundleDir = join(plan.root, renderTemplate(gate.bundle_root_template, plan.key));
  const indexPath = join(
    plan.root,
    renderTemplate(
      gate.index_path_template ?? join(gate.bundle_root_template, "index.json"),
      plan.key,
    ),
  );
  const authorised = [];
  for (const entry of plan.outputs.filter((o) => o.read_requires_gates.includes(gateId))) {
    const files = [];
    for (let p = 0; p < plan.parts; p++) {
      const rel = partPath(plan, entry, p);
      files.push({ path: rel, ...(yield* digestOf(join(plan.root, rel))) });
    }
    authorised.push({ output_id: entry.output_id, row_count: outputs[entry.output_id], files });
  }
  const report = jsonText({
    gate_id: gateId,
    status: "PASS",
    engine_release: ENGINE_RELEASE,
    world_key: plan.key,
    outputs: authorised,
  });
  const members = [{ path: "validation_report.json", sha256_hex: sha256Hex(report) }];
  // One member, so the concatenation in path order is the report's bytes.
  const digest = sha256Hex(report);
  const jsonFlag = method.digest_field === "bundle_digest_sha256";
  yield* mkdirs(bundleDir);
  yield* writeText(join(bundleDir, "validation_report.json"), report);
  yield* writeText(
    indexPath,
    jsonText(
      jsonFlag
        ? { manifest_fingerprint: plan.key.manifest_fingerprint, status: "PASS", entries: members }
        : {
          manifest_fingerprint: plan.key.manifest_fingerprint,
          parameter_hash: plan.key.parameter_hash,
          items: members,
        },
    ),
  );
  yield* writeText(
    join(plan.root, flagRel),
    jsonFlag
      ? JSON.stringify({
        bundle_digest_sha256: digest,
        manifest_fingerprint: plan.key.manifest_fingerprint,
      })
      : `${method.digest_field} = ${digest}\n`,
  );
});

const EarlierReceipt = Schema.Struct({
  gen_world: Schema.Struct({
    events: Schema.Number,
    parts: Schema.Number,
    outputs: Schema.Record(Schema.String, Schema.Number),
  }),
});

/**
 * `undefined` when `out` is missing or empty; the recorded result when it holds a sealed world
 * from the same arguments; otherwise OUT_DIR_NOT_EMPTY (a crashed or different world).
 */
const earlierWorld = Effect.fn("earlierWorld")(function* (plan: WorldPlan) {
  const entries = yield* Effect.tryPromise({
    try: () => Array.fromAsync(Deno.readDir(plan.root)),
    catch: (e) => e instanceof Deno.errors.NotFound ? "missing" : e,
  }).pipe(
    Effect.catch((e) =>
      e === "missing" ? Effect.succeed([]) : Effect.fail(ioError("read", plan.root, e))
    ),
  );
  if (entries.length === 0) return undefined;
  const notEmpty = fail(
    "OUT_DIR_NOT_EMPTY",
    `${plan.root} is not empty and holds no sealed world from the same arguments`,
  );
  const read = (name: string) =>
    Effect.tryPromise({
      try: () => Deno.readTextFile(join(plan.root, name)),
      catch: () => notEmpty,
    });
  const same = Effect.gen(function* () {
    const seal = yield* read(SEAL).pipe(
      Effect.flatMap(decodeJsonText(OraclePackSeal, notEmpty.reason, SEAL)),
    );
    const manifest = yield* read(MANIFEST).pipe(
      Effect.flatMap(decodeJsonText(OraclePackManifest, notEmpty.reason, MANIFEST)),
    );
    const receipt = yield* read(RECEIPT).pipe(
      Effect.flatMap((text) =>
        Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => notEmpty })
      ),
      Effect.flatMap(Schema.decodeUnknownEffect(EarlierReceipt)),
    );
    const matches = seal.seal_status === "SEALED_OK" &&
      seal.oracle_pack_id === plan.oraclePackId &&
      manifest.oracle_pack_id === plan.oraclePackId &&
      receipt.gen_world.events === plan.events && receipt.gen_world.parts === plan.parts;
    if (!matches) return undefined;
    for (const entry of plan.outputs) {
      for (let p = 0; p < plan.parts; p++) {
        yield* Effect.tryPromise(() => Deno.stat(join(plan.root, partPath(plan, entry, p))));
      }
    }
    return {
      engine_run_root: plan.root,
      scenario_id: plan.key.scenario_id,
      outputs: receipt.gen_world.outputs,
    } satisfies GenWorldResult;
  });
  const result = yield* same.pipe(Effect.catch(() => Effect.succeed(undefined)));
  return result === undefined ? yield* notEmpty : result;
});

function digestOf(path: string) {
  return Effect.tryPromise({ try: () => fileDigest(path), catch: (e) => ioError("read", path, e) });
}

function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function writeJson(path: string, value: unknown) {
  return writeText(path, jsonText(value));
}

function writeText(path: string, text: string) {
  return Effect.tryPromise({
    try: () => Deno.writeTextFile(path, text),
    catch: (e) => ioError("write", path, e),
  });
}

function mkdirs(path: string) {
  return Effect.tryPromise({
    try: () => Deno.mkdir(path, { recursive: true }),
    catch: (e) => ioError("create", path, e),
  });
}

function ioError(what: string, path: string, e: unknown): WorldstreamError {
  return fail("WRITE_FAILED", `Cannot ${what} ${path}: ${(e as Error).message}`);
}

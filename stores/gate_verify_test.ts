import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Effect, Result } from "effect";
import { genWorld } from "../scripts/gen_world.ts";
import { sha256Hex } from "../core/hash.ts";
import { DuckDb } from "./duckdb.ts";
import { OracleStore } from "./oracle.ts";
import { resolveOutput, resolveWorld, type WorldOutput } from "./world.ts";
import type { WorldstreamError } from "../schemas/errors.ts";

// Gates are believed only when their flag vouches for the bundle on disk (the platform's
// verification_method), and the bundle's part list for the parts actually read; links are
// followed to where they lead, and anything outside the run root is refused.

const TMP = await Deno.makeTempDir({ prefix: "gate_verify_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const GENERATED = join(TMP, "generated");
await Effect.runPromise(
  genWorld({ out: GENERATED, events: 300 }).pipe(Effect.provide(DuckDb.layer({ threads: 1 }))),
);
const OUTSIDE = join(TMP, "outside");
await Deno.mkdir(OUTSIDE);

const TRAFFIC = "s3_event_stream_with_fraud_6B";
const CONTEXT = "arrival_events_5B";
const RECEIPT = JSON.parse(await Deno.readTextFile(join(GENERATED, "run_receipt.json")));
const MF = RECEIPT.manifest_fingerprint as string;
const BUNDLE_6B = `data/layer3/6B/validation/manifest_fingerprint=${MF}`;
const BUNDLE_5B = `data/layer2/5B/validation/manifest_fingerprint=${MF}`;
const TRAFFIC_DIR =
  `data/layer3/6B/s3_event_stream_with_fraud_6B/seed=42/parameter_hash=${RECEIPT.parameter_hash}/manifest_fingerprint=${MF}/scenario_id=baseline_v1`;

let copies = 0;

async function freshWorld(): Promise<string> {
  const root = join(TMP, `world-${++copies}`);
  await cp(GENERATED, root, { recursive: true });
  return root;
}

function resolveAt(root: string, outputId: string) {
  return Effect.runPromise(Effect.result(
    resolveWorld(root, { strict: true, requireGatePass: true }).pipe(
      Effect.flatMap((w) => resolveOutput(w, outputId)),
      Effect.provide(OracleStore.layer),
    ),
  ));
}

async function resolved(root: string, outputId: string): Promise<WorldOutput> {
  const result = await resolveAt(root, outputId);
  if (Result.isFailure(result)) assert.fail(`${result.failure.reason}: ${result.failure.message}`);
  return result.success;
}

async function refused(root: string, outputId: string, reason: string): Promise<WorldstreamError> {
  const result = await resolveAt(root, outputId);
  if (Result.isSuccess(result)) assert.fail(`Expected ${reason}, but ${outputId} resolved`);
  assert.equal(result.failure.reason, reason, result.failure.message);
  return result.failure;
}

/** Rewrites the 6B report and re-gates it (index and flag recomputed): a self-consistent bundle. */
async function regate6B(root: string, edit: (report: Record<string, unknown>) => void) {
  const dir = join(root, BUNDLE_6B);
  const report = JSON.parse(await Deno.readTextFile(join(dir, "validation_report.json")));
  edit(report);
  const text = JSON.stringify(report);
  await Deno.writeTextFile(join(dir, "validation_report.json"), text);
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({ items: [{ path: "validation_report.json", sha256_hex: sha256Hex(text) }] }),
  );
  await Deno.writeTextFile(join(dir, "_passed.flag"), `sha256_hex = ${sha256Hex(text)}\n`);
}

Deno.test("a generated world's gates verify for every output, strictly", async () => {
  const root = await freshWorld();
  for (const id of [TRAFFIC, CONTEXT]) assert.equal((await resolved(root, id)).parts.length, 3);
});

Deno.test("a _passed.flag that says FAIL fails GATE_PASS_INVALID naming the flag", async () => {
  const root = await freshWorld();
  await Deno.writeTextFile(join(root, BUNDLE_6B, "_passed.flag"), "FAIL\n");
  const e = await refused(root, TRAFFIC, "GATE_PASS_INVALID");
  assert.match(e.message, /gate\.layer3\.6B\.validation: .*_passed\.flag does not hold/);
  assert.match(e.message, /"FAIL"/);
});

Deno.test("a 5B flag under another digest field than the gates map names fails GATE_PASS_INVALID", async () => {
  const root = await freshWorld();
  const flag = join(root, BUNDLE_5B, "_passed.flag");
  const digest = JSON.parse(await Deno.readTextFile(flag)).bundle_digest_sha256;
  await Deno.writeTextFile(flag, `sha256_hex = ${digest}\n`);
  const e = await refused(root, CONTEXT, "GATE_PASS_INVALID");
  assert.match(e.message, /does not hold bundle_digest_sha256 = <sha256>/);
});

Deno.test("a bundle edited after its flag was written fails GATE_DIGEST_MISMATCH naming both", async () => {
  const root = await freshWorld();
  const report = join(root, BUNDLE_6B, "validation_report.json");
  await Deno.writeTextFile(
    report,
    (await Deno.readTextFile(report)).replace('"row_count"', '"rows"'),
  );
  const e = await refused(root, TRAFFIC, "GATE_DIGEST_MISMATCH");
  assert.match(
    e.message,
    /_passed\.flag holds sha256_hex [a-f0-9]{64}, but the bundle at .* hashes to/,
  );
});

Deno.test("a bundle whose index or listed file is gone fails GATE_BUNDLE_INVALID naming it", async () => {
  const root = await freshWorld();
  await Deno.remove(join(root, BUNDLE_6B, "validation_report.json"));
  const e = await refused(root, TRAFFIC, "GATE_BUNDLE_INVALID");
  assert.match(e.message, /validation_report\.json does not exist/);
  await Deno.remove(join(root, BUNDLE_5B, "index.json"));
  assert.match((await refused(root, CONTEXT, "GATE_BUNDLE_INVALID")).message, /index\.json/);
});

Deno.test("a re-gated bundle that says its validation failed fails GATE_PASS_INVALID", async () => {
  const root = await freshWorld();
  await regate6B(root, (r) => r.status = "FAIL");
  const e = await refused(root, TRAFFIC, "GATE_PASS_INVALID");
  assert.match(e.message, /validation_report\.json says status FAIL/);
});

Deno.test("a part deleted, added or rewritten after gating fails OUTPUT_PARTS_MISMATCH naming it", async () => {
  const root = await freshWorld();
  const dir = join(root, TRAFFIC_DIR);
  await Deno.remove(join(dir, "part-00001.parquet"));
  let e = await refused(root, TRAFFIC, "OUTPUT_PARTS_MISMATCH");
  assert.match(e.message, /part data\/.*\/part-00001\.parquet is missing/);
  assert.match(e.message, /vouches for 3 part\(s\), 2 found/);

  const added = await freshWorld();
  await Deno.copyFile(
    join(added, TRAFFIC_DIR, "part-00000.parquet"),
    join(added, TRAFFIC_DIR, "part-00009.parquet"),
  );
  e = await refused(added, TRAFFIC, "OUTPUT_PARTS_MISMATCH");
  assert.match(e.message, /part-00009\.parquet is not in the bundle/);

  const rewritten = await freshWorld();
  await Deno.copyFile(
    join(rewritten, TRAFFIC_DIR, "part-00000.parquet"),
    join(rewritten, TRAFFIC_DIR, "part-00002.parquet"),
  );
  e = await refused(rewritten, TRAFFIC, "OUTPUT_PARTS_MISMATCH");
  assert.match(e.message, /part-00002\.parquet has sha256 [a-f0-9]{64} .*, the bundle says/);
});

Deno.test("a part linked to a file outside the run root fails PATH_ESCAPES_ROOT, never skipped", async () => {
  const root = await freshWorld();
  const part = join(root, TRAFFIC_DIR, "part-00001.parquet");
  const away = join(OUTSIDE, `part-${copies}.parquet`);
  await Deno.rename(part, away);
  await Deno.symlink(away, part);
  const e = await refused(root, TRAFFIC, "PATH_ESCAPES_ROOT");
  assert.match(e.message, /Part .*part-00001\.parquet resolves to .*outside\/part-\d+\.parquet/);
});

Deno.test("a part linked to a file inside the run root is read as that file", async () => {
  const root = await freshWorld();
  const part = join(root, TRAFFIC_DIR, "part-00001.parquet");
  const moved = join(root, "moved-part.parquet");
  await Deno.rename(part, moved);
  await Deno.symlink(moved, part);
  assert.equal((await resolved(root, TRAFFIC)).parts.length, 3);
});

Deno.test("a broken part link or a folder named like a part fails ORACLE_READ_FAILED naming it", async () => {
  const root = await freshWorld();
  await Deno.symlink(join(root, "nowhere.parquet"), join(root, TRAFFIC_DIR, "part-00007.parquet"));
  assert.match(
    (await refused(root, TRAFFIC, "ORACLE_READ_FAILED")).message,
    /part-00007\.parquet is a broken link/,
  );
  const other = await freshWorld();
  await Deno.mkdir(join(other, TRAFFIC_DIR, "part-00008.parquet"));
  assert.match(
    (await refused(other, TRAFFIC, "ORACLE_READ_FAILED")).message,
    /part-00008\.parquet is not a file/,
  );
});

Deno.test("an output folder or a gate bundle linked outside the run root fails PATH_ESCAPES_ROOT", async () => {
  const root = await freshWorld();
  const dir = join(root, TRAFFIC_DIR);
  const away = join(OUTSIDE, `folder-${copies}`);
  await Deno.rename(dir, away);
  await Deno.symlink(away, dir);
  const e = await refused(root, TRAFFIC, "PATH_ESCAPES_ROOT");
  assert.match(e.message, new RegExp(`${basename(dir)} resolves to ${away}`));

  const gated = await freshWorld();
  const bundle = join(gated, BUNDLE_6B);
  const copy = join(OUTSIDE, `bundle-${copies}`);
  await Deno.rename(bundle, copy);
  await Deno.symlink(copy, bundle);
  const g = await refused(gated, TRAFFIC, "PATH_ESCAPES_ROOT");
  assert.match(g.message, new RegExp(`${dirname(BUNDLE_6B).replaceAll("/", "\\/")}.*outside`));
});

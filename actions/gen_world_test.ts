import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { parse } from "yaml";
import { DEF_TYPES, loadInterfacePack, renderTemplate } from "../core/catalogue.ts";
import { sha256Hex } from "../core/hash.ts";
import { resolveOutput, resolveWorld } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { DuckDb, type SqlParams } from "../stores/duckdb.ts";
import {
  GEN_WORLD_OUTPUT_IDS,
  genWorld,
  type GenWorldOptions,
  type GenWorldResult,
} from "./gen_world.ts";

const EVENTS = 2000;

function run<A>(effect: Effect.Effect<A, WorldstreamError, DuckDb>): Promise<A> {
  return Effect.runPromise(effect.pipe(Effect.provide(DuckDb.layer({ threads: 2 }))));
}

function query<A = Record<string, unknown>>(
  sql: string,
  params?: SqlParams,
): Promise<ReadonlyArray<A>> {
  return run(Effect.scoped(Effect.gen(function* () {
    const session = yield* (yield* DuckDb).session;
    return yield* session.rows<A>(sql, params);
  })));
}

function failureOf<A>(effect: Effect.Effect<A, WorldstreamError, DuckDb>) {
  return Effect.runPromise(
    Effect.flip(effect).pipe(Effect.provide(DuckDb.layer({ threads: 2 })), Effect.orDie),
  );
}

async function generate(options: Partial<GenWorldOptions> = {}) {
  const out = await Deno.makeTempDir({ prefix: "gen_world_test_" });
  const result = await run(genWorld({ out, events: EVENTS, ...options }));
  return { out, result };
}

/** Part files of one output, in name order. */
async function partsOf(out: string, outputId: string): Promise<Array<string>> {
  const pack = await Effect.runPromise(loadInterfacePack());
  const receipt = JSON.parse(await Deno.readTextFile(join(out, "run_receipt.json")));
  const manifest = JSON.parse(await Deno.readTextFile(join(out, "_oracle_pack_manifest.json")));
  const template = renderTemplate(pack.outputs.get(outputId)!.path_template, {
    manifest_fingerprint: receipt.manifest_fingerprint,
    parameter_hash: receipt.parameter_hash,
    seed: receipt.seed,
    scenario_id: manifest.world_key.scenario_id,
  });
  const dir = join(out, template.slice(0, template.lastIndexOf("/")));
  const names = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  return names.sort().map((n) => join(dir, n));
}

async function allFiles(dir: string): Promise<Array<string>> {
  const files = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) files.push(...await allFiles(path));
    else files.push(path);
  }
  return files.sort();
}

/** Parquet type of each row-schema field type (`$ref`s resolved with the catalogue's DEF_TYPES). */
const PARQUET_TYPES: Record<string, string> = {
  integer: "BIGINT",
  number: "DOUBLE",
  boolean: "BOOLEAN",
  string: "VARCHAR",
};

interface FieldSchema {
  readonly type?: string | ReadonlyArray<string>;
  readonly $ref?: string;
  readonly nullable?: boolean;
}
interface RowSchema {
  readonly required: ReadonlyArray<string>;
  readonly properties: Readonly<Record<string, FieldSchema>>;
}

const rowSchemas = parse(
  await Deno.readTextFile(new URL("../profiles/interface_pack/row_schemas.yaml", import.meta.url)),
).outputs as Record<string, RowSchema>;

function expectedColumns(outputId: string) {
  return Object.entries(rowSchemas[outputId].properties).map(([name, field]) => {
    const types = field.$ref !== undefined
      ? [DEF_TYPES[field.$ref.replace("#/$defs/", "")]]
      : [field.type ?? "?"].flat().filter((t) => t !== "null");
    assert.equal(types.length, 1, `${outputId}.${name} has one non-null type`);
    const nullable = field.nullable === true || [field.type].flat().includes("null");
    return { name, type: PARQUET_TYPES[types[0]], nullable };
  });
}

const ident = (name: string) => {
  assert.match(name, /^[a-z_][a-z0-9_]*$/);
  return `"${name}"`;
};

Deno.test("gen-world writes a complete, sealed, realistic world", async (t) => {
  const { out, result } = await generate();
  const parts = Object.fromEntries(
    await Promise.all(GEN_WORLD_OUTPUT_IDS.map(async (id) => [id, await partsOf(out, id)])),
  ) as Record<string, Array<string>>;
  const s3 = parts.s3_event_stream_with_fraud_6B;

  await t.step("the result names the root, the scenario and every output's row count", () => {
    assert.equal(result.engine_run_root, out);
    assert.equal(result.scenario_id, "baseline_v1");
    assert.deepEqual(Object.keys(result.outputs).sort(), [...GEN_WORLD_OUTPUT_IDS].sort());
    assert.equal(result.outputs.s3_event_stream_with_fraud_6B, EVENTS);
    assert.ok(result.outputs.s2_event_stream_baseline_6B < EVENTS);
    for (const id of ["s1_arrival_entities_6B", "s2_flow_anchor_baseline_6B"]) {
      assert.equal(result.outputs[id], result.outputs.arrival_events_5B);
    }
  });

  await t.step("every output has at least three part files with the counted rows", async () => {
    for (const id of GEN_WORLD_OUTPUT_IDS) {
      assert.ok(parts[id].length >= 3, `${id} has ${parts[id].length} parts`);
      assert.match(parts[id][0], /\/part-00000\.parquet$/);
      const [{ n }] = await query<{ n: bigint }>(
        "SELECT count(*) AS n FROM read_parquet($files)",
        { files: parts[id] },
      );
      assert.equal(Number(n), result.outputs[id], id);
    }
  });

  await t.step("each output has exactly its row schema's columns and parquet types", async () => {
    for (const id of GEN_WORLD_OUTPUT_IDS) {
      const expected = expectedColumns(id);
      for (const file of parts[id]) {
        const actual = await query<{ column_name: string; column_type: string }>(
          "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet($files))",
          { files: [file] },
        );
        assert.deepEqual(
          actual.map((c) => [c.column_name, c.column_type]),
          expected.map((c) => [c.name, c.type]),
          file,
        );
      }
      const required = rowSchemas[id].required.filter((name) =>
        !expected.find((c) => c.name === name)!.nullable
      );
      const nulls = required.map((c) => `count(*) FILTER (WHERE ${ident(c)} IS NULL)`).join(" + ");
      const [{ n }] = await query<{ n: bigint }>(
        `SELECT ${nulls} AS n FROM read_parquet($files)`,
        { files: parts[id] },
      );
      assert.equal(Number(n), 0, `${id} has nulls in required fields`);
    }
  });

  await t.step("every ts_utc is canonical UTC with exactly six fractional digits", async () => {
    for (const id of GEN_WORLD_OUTPUT_IDS) {
      const [{ bad }] = await query<{ bad: bigint }>(
        String.raw`SELECT count(*) FILTER (WHERE NOT regexp_full_match(ts_utc,
          '\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z')) AS bad FROM read_parquet($files)`,
        { files: parts[id] },
      );
      assert.equal(Number(bad), 0, id);
    }
  });

  await t.step("local wall times are the arrival instant in the merchant's zones", async () => {
    const [r] = await query<{ bad: bigint; settled: bigint }>(
      `WITH a AS (
         SELECT *, strptime(ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ')::TIMESTAMP AT TIME ZONE 'UTC' AS instant
         FROM read_parquet($files)
       )
       SELECT count(*) FILTER (WHERE
           ts_local_primary <> strftime(timezone(tzid_primary, instant), '%Y-%m-%dT%H:%M:%S.%f')
           OR ts_local_settlement <> strftime(timezone(tzid_settlement, instant), '%Y-%m-%dT%H:%M:%S.%f')
           OR ts_local_operational
             <> strftime(timezone(tzid_operational, instant), '%Y-%m-%dT%H:%M:%S.%f')
           OR (tzid_settlement IS NULL) <> (ts_local_settlement IS NULL)
           OR (tzid_operational IS NULL) <> (ts_local_operational IS NULL)) AS bad,
         count(ts_local_settlement) AS settled
       FROM a`,
      { files: parts.arrival_events_5B },
    );
    assert.equal(r.bad, 0n);
    assert.ok(r.settled > 0n);
  });

  await t.step("primary keys are unique", async () => {
    const pack = await Effect.runPromise(loadInterfacePack());
    for (const id of GEN_WORLD_OUTPUT_IDS) {
      const key = pack.outputs.get(id)!.primary_key.map(ident).join(", ");
      const [{ n, k }] = await query<{ n: bigint; k: bigint }>(
        `SELECT count(*) AS n, count(DISTINCT (${key})) AS k FROM read_parquet($files)`,
        { files: parts[id] },
      );
      assert.equal(k, n, id);
    }
  });

  await t.step("rows are in no time order, within a part or across parts", async () => {
    const rows = await query<{ filename: string; inversions: bigint }>(
      `SELECT filename, count(*) FILTER (WHERE ts_utc < prev) AS inversions FROM (
         SELECT filename, ts_utc,
           lag(ts_utc) OVER (PARTITION BY filename ORDER BY file_row_number) AS prev
         FROM read_parquet($files, filename = true, file_row_number = true)
       ) GROUP BY filename`,
      { files: s3 },
    );
    assert.equal(rows.length, s3.length);
    for (const r of rows) assert.ok(r.inversions > 0n, `${r.filename} is in time order`);
    const ranges = await query<{ lo: string; hi: string }>(
      "SELECT min(ts_utc) AS lo, max(ts_utc) AS hi FROM read_parquet($files, filename = true) GROUP BY filename ORDER BY filename",
      { files: s3 },
    );
    assert.ok(ranges.every((r, i) => i === 0 || r.lo < ranges[i - 1].hi), "parts overlap in time");
  });

  await t.step("some events share an exact ts_utc", async () => {
    const [{ n, d }] = await query<{ n: bigint; d: bigint }>(
      "SELECT count(*) AS n, count(DISTINCT ts_utc) AS d FROM read_parquet($files)",
      { files: s3 },
    );
    assert.ok(d < n, `${n - d} duplicate timestamps`);
  });

  await t.step("arrival_seq runs 1..n per merchant in time order", async () => {
    const [r] = await query<{ merchants: bigint; gaps: bigint; backwards: bigint }>(
      `SELECT count(DISTINCT merchant_id) AS merchants,
         count(*) FILTER (WHERE arrival_seq <> rn) AS gaps,
         count(*) FILTER (WHERE ts_utc < prev) AS backwards
       FROM (
         SELECT merchant_id, arrival_seq, ts_utc,
           row_number() OVER (PARTITION BY merchant_id ORDER BY arrival_seq) AS rn,
           lag(ts_utc) OVER (PARTITION BY merchant_id ORDER BY arrival_seq) AS prev
         FROM read_parquet($files)
       )`,
      { files: parts.arrival_events_5B },
    );
    assert.ok(r.merchants > 10n);
    assert.equal(r.gaps, 0n);
    assert.equal(r.backwards, 0n);
  });

  await t.step("a flow's events start at its arrival and move forward in time", async () => {
    const [r] = await query<{ flows: bigint; bad_start: bigint; backwards: bigint }>(
      `WITH e AS (
         SELECT flow_id, event_seq, ts_utc,
           lag(ts_utc) OVER (PARTITION BY flow_id ORDER BY event_seq) AS prev
         FROM read_parquet($events)
       ), a AS (SELECT flow_id, ts_utc FROM read_parquet($anchors))
       SELECT count(DISTINCT e.flow_id) AS flows,
         count(*) FILTER (WHERE e.event_seq = 0 AND e.ts_utc <> a.ts_utc) AS bad_start,
         count(*) FILTER (WHERE e.ts_utc < e.prev) AS backwards
       FROM e JOIN a USING (flow_id)`,
      { events: s3, anchors: parts.s3_flow_anchor_with_fraud_6B },
    );
    assert.equal(Number(r.flows), result.outputs.s3_flow_anchor_with_fraud_6B);
    assert.equal(r.bad_start, 0n);
    assert.equal(r.backwards, 0n);
  });

  await t.step("the fraud stream is the baseline plus campaign-flagged flows", async () => {
    const [r] = await query<
      { missing: bigint; fraud: bigint; mislabelled: bigint; campaigns: bigint; injected: bigint }
    >(
      `WITH s2 AS (SELECT * FROM read_parquet($s2)), s3 AS (SELECT * FROM read_parquet($s3))
       SELECT
         (SELECT count(*) FROM (SELECT * FROM s2 EXCEPT
           SELECT * EXCLUDE (fraud_flag, campaign_id) FROM s3)) AS missing,
         (SELECT count(*) FROM s3 WHERE fraud_flag) AS fraud,
         (SELECT count(*) FROM s3 WHERE fraud_flag <> (campaign_id IS NOT NULL)
           OR NOT regexp_full_match(campaign_id, 'CAMP_[0-9]{4}')) AS mislabelled,
         (SELECT count(DISTINCT campaign_id) FROM s3) AS campaigns,
         (SELECT count(*) FROM s3) - (SELECT count(*) FROM s2) AS injected`,
      { s2: parts.s2_event_stream_baseline_6B, s3 },
    );
    assert.equal(r.missing, 0n);
    assert.ok(r.fraud > 0n);
    assert.equal(r.mislabelled, 0n);
    assert.ok(r.campaigns >= 2n);
    assert.ok(r.injected > 0n);
  });

  await t.step(
    "the pack manifest's oracle_pack_id recomputes and the seal is written last",
    async () => {
      const m = JSON.parse(await Deno.readTextFile(join(out, "_oracle_pack_manifest.json")));
      const expected = sha256Hex(
        [
          m.world_key.manifest_fingerprint,
          m.world_key.parameter_hash,
          m.world_key.scenario_id,
          m.world_key.seed,
          m.engine_release,
          m.catalogue_digest,
          m.gate_map_digest,
        ].join("|"),
      );
      assert.equal(m.oracle_pack_id, expected);
      assert.equal(m.engine_release, "worldstream-gen-world/0.1");
      const pack = await Effect.runPromise(loadInterfacePack());
      assert.equal(m.catalogue_digest, pack.catalogueDigest);
      assert.equal(m.gate_map_digest, pack.gateMapDigest);
      const seal = JSON.parse(await Deno.readTextFile(join(out, "_SEALED.json")));
      assert.deepEqual(Object.keys(seal).sort(), [
        "oracle_pack_id",
        "seal_status",
        "sealed_at_utc",
        "version",
      ]);
      assert.equal(seal.oracle_pack_id, expected);
      assert.equal(seal.seal_status, "SEALED_OK");
      const sealedAt = (await Deno.stat(join(out, "_SEALED.json"))).mtime!.getTime();
      for (const file of await allFiles(out)) {
        assert.ok((await Deno.stat(file)).mtime!.getTime() <= sealedAt, `${file} after the seal`);
      }
      const receipt = JSON.parse(await Deno.readTextFile(join(out, "run_receipt.json")));
      assert.match(receipt.run_id, /^[a-f0-9]{32}$/);
      assert.equal(receipt.manifest_fingerprint, m.world_key.manifest_fingerprint);
      assert.equal(receipt.seed, 42);
    },
  );

  await t.step(
    "each gate flag holds its bundle digest as the platform's engine writes it and its verifier recomputes it",
    async () => {
      const pack = await Effect.runPromise(loadInterfacePack());
      const receipt = JSON.parse(await Deno.readTextFile(join(out, "run_receipt.json")));
      const key = { ...receipt, scenario_id: result.scenario_id };
      const mf = receipt.manifest_fingerprint;
      for (
        const [gateId, items, flagOf] of [
          // 5B: a JSON flag; index.json lists `entries`.
          [
            "gate.layer2.5B.validation",
            "entries",
            (d: string) => JSON.stringify({ bundle_digest_sha256: d, manifest_fingerprint: mf }),
          ],
          // 6B: `sha256_hex = <hex>`; index.json lists `items`.
          ["gate.layer3.6B.validation", "items", (d: string) => `sha256_hex = ${d}\n`],
        ] as const
      ) {
        const gate = pack.gates.get(gateId)!;
        const flag = join(out, renderTemplate(gate.passed_flag_path_template, key));
        const dir = join(out, renderTemplate(gate.bundle_root_template, key));
        const index = JSON.parse(await Deno.readTextFile(join(dir, "index.json")));
        // sha256_index_json_ascii_lex_raw_bytes: the listed files' raw bytes in path order.
        const paths = index[items].map((e: { path: string }) => e.path).sort();
        const bytes = await Promise.all(paths.map((p: string) => Deno.readFile(join(dir, p))));
        const all = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
        bytes.reduce((at, b) => (all.set(b, at), at + b.length), 0);
        assert.equal(await Deno.readTextFile(flag), flagOf(sha256Hex(all)));
        for (const entry of index[items]) {
          assert.equal(sha256Hex(await Deno.readFile(join(dir, entry.path))), entry.sha256_hex);
        }
      }
    },
  );

  await t.step("the world reader accepts it with strict checks and gate flags", async () => {
    const outputs = await Effect.runPromise(Effect.gen(function* () {
      const world = yield* resolveWorld(out, { strict: true, requireGatePass: true }).pipe(
        Effect.provide(OracleStore.layer),
      );
      const found = [];
      for (const id of GEN_WORLD_OUTPUT_IDS) found.push(yield* resolveOutput(world, id));
      return found;
    }));
    for (const o of outputs) assert.deepEqual(o.parts, parts[o.entry.output_id]);
  });

  await t.step("the same arguments give the same data, and other seeds other data", async () => {
    const again = await generate();
    const other = await generate({ seed: 7 });
    try {
      const digest = async (root: string) => {
        const digests = [];
        for (const id of GEN_WORLD_OUTPUT_IDS) {
          const [{ h }] = await query<{ h: string }>(
            "SELECT count(*)::VARCHAR || ':' || sum(hash(r))::VARCHAR AS h FROM read_parquet($files) r",
            { files: await partsOf(root, id) },
          );
          digests.push(h);
        }
        return digests;
      };
      assert.deepEqual(await digest(again.out), await digest(out));
      assert.notDeepEqual(await digest(other.out), await digest(out));
      for (const [a, b] of (await allFiles(out)).map((f) => [f, f.replace(out, again.out)])) {
        assert.deepEqual(await Deno.readFile(b), await Deno.readFile(a), `${a} differs`);
      }
    } finally {
      await Deno.remove(again.out, { recursive: true });
      await Deno.remove(other.out, { recursive: true });
    }
  });

  await t.step("a rerun into the world returns it; other arguments are refused", async () => {
    const rerun: GenWorldResult = await run(genWorld({ out, events: EVENTS }));
    assert.deepEqual(rerun, result);
    const refused = await failureOf(genWorld({ out, events: EVENTS + 1 }));
    assert.equal(refused.reason, "OUT_DIR_NOT_EMPTY");
  });

  await Deno.remove(out, { recursive: true });
});

Deno.test("gen-world refuses a folder that holds something else", async () => {
  const out = await Deno.makeTempDir({ prefix: "gen_world_test_" });
  try {
    await Deno.writeTextFile(join(out, "notes.txt"), "mine");
    const e = await failureOf(genWorld({ out, events: 10 }));
    assert.equal(e.reason, "OUT_DIR_NOT_EMPTY");
    assert.deepEqual((await allFiles(out)).map((f) => f.slice(out.length)), ["/notes.txt"]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("gen-world into a folder under a file fails WRITE_FAILED naming the path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gen_world_test_" });
  try {
    await Deno.writeTextFile(join(dir, "file"), "mine");
    const out = join(dir, "file", "world");
    const e = await failureOf(genWorld({ out, events: 10 }));
    assert.equal(e.reason, "WRITE_FAILED");
    assert.match(e.message, new RegExp(`^Cannot read ${out}: Not a directory`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gen-world makes a tiny world with exactly the requested events", async () => {
  const { out, result } = await generate({ events: 7, parts: 4 });
  try {
    assert.equal(result.outputs.s3_event_stream_with_fraud_6B, 7);
    assert.equal((await partsOf(out, "arrival_events_5B")).length, 4);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("gen-world refuses bad options with BAD_ARGS", async () => {
  for (
    const options of [
      { out: "w", events: 0 },
      { out: "w", events: 1.5 },
      { out: "w", seed: -1 },
      { out: "w", parts: 0 },
      { out: "w", scenarioId: "../up" },
      { out: " " },
    ]
  ) {
    const e = await failureOf(genWorld(options));
    assert.equal(e.reason, "BAD_ARGS", JSON.stringify(options));
  }
});

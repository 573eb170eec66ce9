/**
 * Privacy tier minimized at the reader: the listed payload fields become keyed HMAC pseudonyms
 * of their own type, computed here independently with node:crypto; every other payload field,
 * every envelope field and every event id is what the plain reader gives; the same input gives
 * the same output.
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { join } from "node:path";
import { parse } from "yaml";
import { Effect } from "effect";
import { loadInterfacePack, outputEntry } from "../core/catalogue.ts";
import { hmacPads, type Pseudonymizer } from "../core/pseudonymize.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "./duckdb.ts";
import { openEnvelopeReader } from "./envelope_reader.ts";
import { buildStreamView } from "./stream_view_build.ts";
import { streamViewId } from "./stream_view_read.ts";
import { resolveOutput, resolveWorld } from "./world.ts";
import { OracleStore } from "./oracle.ts";

const OUTPUT = "s3_flow_anchor_with_fraud_6B";
const FIELDS = ["party_id", "account_id", "instrument_id", "device_id", "ip_id"];
const KEY = "a pseudonym key of the test, 40 bytes..";

const run = <A, E>(eff: Effect.Effect<A, E, DuckDb>) =>
  Effect.runPromise(eff.pipe(Effect.provide(DuckDb.layer({ threads: 2 }))));

const base = await Deno.makeTempDir({ prefix: "ws-pseudonym-" });
const root = join(base, "world");
await run(genWorld({ out: root, events: 2000, seed: 11 }));
const world = await Effect.runPromise(
  resolveWorld(root, { strict: true, requireGatePass: true }).pipe(
    Effect.provide(OracleStore.layer),
  ),
);
const output = await Effect.runPromise(resolveOutput(world, OUTPUT));
const built = await run(buildStreamView({
  engineRunRoot: world.engineRunRoot,
  engineRunId: world.runReceipt.run_id,
  worldKey: world.worldKey,
  outputId: OUTPUT,
  parts: output.parts,
  streamViewRoot: join(root, "stream_view", "ts_utc"),
  rowShape: world.pack.rows.get(OUTPUT)!,
}));
const entry = await Effect.runPromise(
  outputEntry(await Effect.runPromise(loadInterfacePack()), OUTPUT),
);
const schema = parse(
  await Deno.readTextFile(new URL("../profiles/interface_pack/row_schemas.yaml", import.meta.url)),
).outputs[OUTPUT] as { properties: Record<string, unknown> };

function read(pseudonymize?: Pseudonymizer) {
  return run(Effect.scoped(Effect.gen(function* () {
    const cursor = yield* openEnvelopeReader(
      built.view_dir,
      {
        streamViewId: streamViewId({
          engineRunId: world.runReceipt.run_id,
          worldKey: world.worldKey,
          outputId: OUTPUT,
        }),
        outputId: OUTPUT,
      },
      {
        manifest_fingerprint: world.worldKey.manifest_fingerprint,
        parameter_hash: world.worldKey.parameter_hash,
        seed: world.worldKey.seed,
        scenario_id: world.worldKey.scenario_id,
        run_id: world.runReceipt.run_id,
        platform_run_id: "platform_20260102T101530Z",
        scenario_run_id: "0123456789abcdef0123456789abcdef",
        trace_id: world.traceId,
        output_id: OUTPUT,
      },
      {
        primaryKey: entry.primary_key,
        payloadColumns: Object.keys(schema.properties),
        ...(pseudonymize ? { pseudonymize } : {}),
      },
    );
    const out: Array<Record<string, unknown>> = [];
    for (let b = yield* cursor.next; b !== undefined; b = yield* cursor.next) {
      for (const e of b.envelopes) out.push(JSON.parse(e));
    }
    return out;
  })));
}

/** The pseudonym of an integer field, computed the documented way without DuckDB. */
function expected(field: string, value: number): number {
  const h = createHmac("sha256", KEY).update(`${field}|${value}`).digest("hex");
  return parseInt(h.slice(0, 13), 16) + 1;
}

const minimized: Pseudonymizer = {
  ...hmacPads(new TextEncoder().encode(KEY)),
  fields: new Set(FIELDS),
};

Deno.test("listed fields become keyed pseudonyms of their type; the rest and every event id stay", async () => {
  const [plain, pseudo] = await Promise.all([read(), read(minimized)]);
  assert.ok(plain.length > 100);
  assert.equal(pseudo.length, plain.length);
  for (let i = 0; i < plain.length; i++) {
    const { payload: p, ...envelope } = plain[i] as { payload: Record<string, unknown> };
    const { payload: q, ...envelopeQ } = pseudo[i] as { payload: Record<string, unknown> };
    assert.deepEqual(envelopeQ, envelope, "envelope fields (event_id included) unchanged");
    assert.deepEqual(Object.keys(q), Object.keys(p));
    for (const [field, value] of Object.entries(p)) {
      if (!FIELDS.includes(field)) {
        assert.deepEqual(q[field], value, `${field} unchanged`);
        continue;
      }
      assert.equal(typeof value, "number");
      assert.notEqual(q[field], value, `${field} changed`);
      assert.ok(
        Number.isSafeInteger(q[field]) && (q[field] as number) >= 1,
        `${field}: ${q[field]}`,
      );
      assert.equal(
        q[field],
        expected(field, value as number),
        `${field} is HMAC(key, field|value)`,
      );
    }
  }
});

Deno.test("the same input and key give the same output; another key another one", async () => {
  const [a, b] = [await read(minimized), await read(minimized)];
  assert.deepEqual(a, b);
  const other = await read({
    ...hmacPads(new TextEncoder().encode("another key, also long enough")),
    fields: new Set(FIELDS),
  });
  assert.notDeepEqual(
    other.map((e) => (e.payload as Record<string, unknown>).party_id),
    a.map((e) => (e.payload as Record<string, unknown>).party_id),
  );
});

Deno.test("a key longer than a block is hashed first, as HMAC does", () => {
  const long = "k".repeat(100);
  const digest = new Uint8Array(createHash("sha256").update(long).digest());
  assert.deepEqual(hmacPads(new TextEncoder().encode(long)), hmacPads(digest));
});

globalThis.addEventListener("unload", () => Deno.removeSync(base, { recursive: true }));

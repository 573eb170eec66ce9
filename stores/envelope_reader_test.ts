import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { Effect, Exit } from "effect";
import { loadInterfacePack, outputEntry } from "../core/catalogue.ts";
import { sha256Hex } from "../core/hash.ts";
import { resolveOutput, resolveWorld, type World } from "./world.ts";
import { OracleStore } from "./oracle.ts";
import { decodeWith } from "../schemas/decode.ts";
import { CanonicalEventEnvelope } from "../schemas/envelope.ts";
import { ENGINE_RELEASE, genWorld } from "../scripts/gen_world.ts";
import { DuckDb, sqlLiteral } from "./duckdb.ts";
import {
  DEFAULT_PRODUCER,
  type EnvelopePins,
  type EnvelopeReadOptions,
  openEnvelopeReader,
} from "./envelope_reader.ts";
import { buildStreamView } from "./stream_view_build.ts";
import {
  listParts,
  openViewReader,
  streamViewId,
  type ViewPosition,
  type ViewRow,
} from "./stream_view_read.ts";
import { hasPlatformContracts, platformEnvelopeValidator } from "../tests/platform_envelope.ts";

const EVENTS = "s3_event_stream_with_fraud_6B";
const ARRIVALS = "arrival_events_5B";
const TS_FORM = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$/;

const run = <A, E>(eff: Effect.Effect<A, E, DuckDb>) =>
  Effect.runPromise(eff.pipe(Effect.provide(DuckDb.layer())));
const runExit = <A, E>(eff: Effect.Effect<A, E, DuckDb>) =>
  Effect.runPromiseExit(eff.pipe(Effect.provide(DuckDb.layer())));

function failureOf(exit: Exit.Exit<unknown, unknown>): { reason?: string; message?: string } {
  if (Exit.isSuccess(exit)) return {};
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail");
  return (failure?.error ?? {}) as { reason?: string; message?: string };
}

// One generated world with views of two outputs whose keys differ in shape.
const base = await Deno.makeTempDir({ prefix: "ws-envelopes-" });
const root = join(base, "world");
await run(genWorld({ out: root, events: 3000, seed: 7 }));
const world: World = await Effect.runPromise(
  resolveWorld(root, { strict: true, requireGatePass: true }).pipe(
    Effect.provide(OracleStore.layer),
  ),
);
const viewRoot = join(root, "stream_view", "ts_utc");
const viewDirs: Record<string, string> = {};
for (const outputId of [EVENTS, ARRIVALS]) {
  const output = await Effect.runPromise(resolveOutput(world, outputId));
  const built = await run(buildStreamView({
    engineRunRoot: world.engineRunRoot,
    engineRunId: world.runReceipt.run_id,
    worldKey: world.worldKey,
    outputId,
    parts: output.parts,
    streamViewRoot: viewRoot,
    rowShape: world.pack.rows.get(outputId)!,
  }));
  viewDirs[outputId] = built.view_dir;
}

const pack = await Effect.runPromise(loadInterfacePack());
const rowSchemas = parse(
  await Deno.readTextFile(new URL("../profiles/interface_pack/row_schemas.yaml", import.meta.url)),
).outputs as Record<string, { properties: object; additionalProperties?: boolean }>;

async function readOptions(outputId: string): Promise<EnvelopeReadOptions> {
  const entry = await Effect.runPromise(outputEntry(pack, outputId));
  return {
    primaryKey: entry.primary_key,
    payloadColumns: Object.keys(rowSchemas[outputId].properties),
    undeclaredColumns: rowSchemas[outputId].additionalProperties === true,
  };
}

function pinsFor(outputId: string, extra: Partial<EnvelopePins> = {}): EnvelopePins {
  return {
    manifest_fingerprint: world.worldKey.manifest_fingerprint,
    parameter_hash: world.worldKey.parameter_hash,
    seed: world.worldKey.seed,
    scenario_id: world.worldKey.scenario_id,
    run_id: world.runReceipt.run_id,
    platform_run_id: "platform_20260102T101530Z",
    scenario_run_id: "0123456789abcdef0123456789abcdef",
    trace_id: world.traceId,
    span_id: ENGINE_RELEASE,
    output_id: outputId,
    ...extra,
  };
}

const expectation = (outputId: string) => ({
  streamViewId: streamViewId({
    engineRunId: world.runReceipt.run_id,
    worldKey: world.worldKey,
    outputId,
  }),
  outputId,
});

interface Read {
  envelopes: string[];
  eventIds: string[];
  tsMicros: number[];
  positions: ViewPosition[];
}

function readEnvelopes(
  outputId: string,
  options: Partial<EnvelopeReadOptions> & { dir?: string; pins?: EnvelopePins } = {},
) {
  return Effect.scoped(Effect.gen(function* () {
    const defaults = yield* Effect.promise(() => readOptions(outputId));
    const cursor = yield* openEnvelopeReader(
      options.dir ?? viewDirs[outputId],
      expectation(outputId),
      options.pins ?? pinsFor(outputId),
      { ...defaults, ...options },
    );
    const out: Read = { envelopes: [], eventIds: [], tsMicros: [], positions: [] };
    for (let batch = yield* cursor.next; batch !== undefined; batch = yield* cursor.next) {
      out.envelopes.push(...batch.envelopes);
      out.eventIds.push(...batch.eventIds);
      out.tsMicros.push(...batch.tsMicros);
      for (let i = 0; i < batch.envelopes.length; i++) out.positions.push(batch.positionAt(i));
    }
    return out;
  }));
}

function readRows(outputId: string): Promise<ViewRow[]> {
  return run(Effect.scoped(Effect.gen(function* () {
    const cursor = yield* openViewReader(viewDirs[outputId], expectation(outputId));
    const rows: ViewRow[] = [];
    for (let batch = yield* cursor.next; batch !== undefined; batch = yield* cursor.next) {
      rows.push(...batch);
    }
    return rows;
  })));
}

const cache = new Map<string, Promise<{ read: Read; rows: ViewRow[] }>>();
function both(outputId: string) {
  if (!cache.has(outputId)) {
    cache.set(
      outputId,
      (async () => ({
        read: await run(readEnvelopes(outputId)),
        rows: await readRows(outputId),
      }))(),
    );
  }
  return cache.get(outputId)!;
}

/** Copies a view with its part rewritten by `select` (over `src`), keeping its receipt. */
async function alteredView(name: string, outputId: string, select: string): Promise<string> {
  const dir = join(base, "altered", name, `output_id=${outputId}`);
  await Deno.mkdir(dir, { recursive: true });
  for (const file of ["_stream_view_manifest.json", "_stream_sort_receipt.json"]) {
    await Deno.copyFile(join(viewDirs[outputId], file), join(dir, file));
  }
  const [part] = await Effect.runPromise(listParts(viewDirs[outputId]));
  await run(Effect.scoped(Effect.gen(function* () {
    const session = yield* (yield* DuckDb).session;
    yield* session.exec(
      `COPY (${
        select.replace("src", `read_parquet(${sqlLiteral(part)}, hive_partitioning = false)`)
      }) TO ${sqlLiteral(join(dir, "part-00000.parquet"))} (FORMAT parquet)`,
    );
  })));
  return dir;
}

for (const outputId of [EVENTS, ARRIVALS]) {
  Deno.test(`${outputId}: event_id is sha256 of the output, the catalogue key values and the world pins`, async () => {
    const { read, rows } = await both(outputId);
    const entry = await Effect.runPromise(outputEntry(pack, outputId));
    const { manifest_fingerprint: mf, parameter_hash: ph, seed, scenario_id } = world.worldKey;
    assert.ok(rows.length > 100);
    assert.equal(read.envelopes.length, rows.length);
    for (let i = 0; i < rows.length; i += 7) {
      const row = rows[i].row;
      const expected = sha256Hex(
        [
          outputId,
          ...entry.primary_key.map((k) => String(row[k])),
          mf,
          ph,
          String(seed),
          scenario_id,
        ]
          .join("|"),
      );
      assert.equal(read.eventIds[i], expected, `row ${i}`);
      assert.equal(JSON.parse(read.envelopes[i]).event_id, expected, `row ${i}`);
    }
    assert.equal(new Set(read.eventIds).size, rows.length, "event ids are unique");
  });

  Deno.test(`${outputId}: the payload is exactly the source row, with its JSON types and no provenance`, async () => {
    const { read, rows } = await both(outputId);
    for (let i = 0; i < rows.length; i++) {
      const payload = JSON.parse(read.envelopes[i]).payload;
      assert.deepEqual(payload, rows[i].row, `row ${i}`);
      assert.deepEqual(Object.keys(payload), Object.keys(rows[i].row), `column order, row ${i}`);
      assert.deepEqual(read.positions[i], rows[i].position, `position of row ${i}`);
    }
    const payload = JSON.parse(read.envelopes[0]).payload;
    for (const column of ["filename", "file_row_number", "output_id"]) {
      assert.ok(!(column in payload), `${column} is not part of the row`);
    }
    const types = new Set(rows.flatMap((r) => Object.values(r.row).map((v) => typeof v)));
    assert.ok(types.has("number") && types.has("string") && types.has("boolean"));
  });

  Deno.test(`${outputId}: ts_utc is the view's text byte for byte, and tsMicros is its epoch time`, async () => {
    const { read, rows } = await both(outputId);
    for (let i = 0; i < rows.length; i++) {
      const ts: string = JSON.parse(read.envelopes[i]).ts_utc;
      assert.equal(rows[i].row.ts_utc, ts);
      assert.equal(read.positions[i].ts_utc, ts);
      assert.match(ts, TS_FORM);
      assert.ok(read.envelopes[i].includes(`"ts_utc":"${ts}"`));
      const micros = Date.parse(`${ts.slice(0, 19)}Z`) * 1000 + Number(ts.slice(20, 26));
      assert.equal(read.tsMicros[i], micros, `row ${i}`);
    }
  });

  Deno.test(`${outputId}: every envelope decodes as a canonical event envelope with the run's pins`, async () => {
    const { read } = await both(outputId);
    const decode = decodeWith(CanonicalEventEnvelope, "PINS_INVALID", "envelope");
    for (const text of read.envelopes) {
      const envelope = await Effect.runPromise(decode(JSON.parse(text)));
      assert.equal(envelope.event_type, outputId);
      assert.equal(envelope.schema_version, "v1");
    }
    const first = JSON.parse(read.envelopes[0]);
    const { payload: _, event_id: __, ts_utc: ___, ...header } = first;
    assert.deepEqual(header, {
      event_type: outputId,
      schema_version: "v1",
      manifest_fingerprint: world.worldKey.manifest_fingerprint,
      parameter_hash: world.worldKey.parameter_hash,
      seed: world.worldKey.seed,
      scenario_id: world.worldKey.scenario_id,
      run_id: world.runReceipt.run_id,
      platform_run_id: "platform_20260102T101530Z",
      scenario_run_id: "0123456789abcdef0123456789abcdef",
      producer: DEFAULT_PRODUCER,
      trace_id: world.traceId,
      span_id: ENGINE_RELEASE,
    });
  });
}

Deno.test("span_id is left out when it is not known, and a given producer replaces the default", async () => {
  const { span_id: _, ...withoutSpan } = pinsFor(EVENTS);
  const read = await run(readEnvelopes(EVENTS, {
    pins: { ...withoutSpan, producer: "svc:other_producer" },
    limit: 3,
  }));
  assert.equal(read.envelopes.length, 3);
  for (const text of read.envelopes) {
    const envelope = JSON.parse(text);
    assert.ok(!("span_id" in envelope));
    assert.equal(envelope.producer, "svc:other_producer");
  }
  const full = await both(EVENTS);
  assert.deepEqual(read.eventIds, full.read.eventIds.slice(0, 3), "ids do not depend on them");
});

Deno.test({
  name: hasPlatformContracts
    ? "CONFORMANCE: every envelope validates against the platform's canonical_event_envelope.schema.yaml"
    : "CONFORMANCE (skipped: ../shared/contracts is absent): envelopes against the platform's schema",
  ignore: !hasPlatformContracts,
  fn: async () => {
    const validate = platformEnvelopeValidator()!;
    for (const outputId of [EVENTS, ARRIVALS]) {
      const { read } = await both(outputId);
      for (const text of read.envelopes) {
        const problem = validate(JSON.parse(text));
        if (problem !== undefined) assert.fail(`${outputId}: ${problem} in ${text.slice(0, 200)}`);
      }
    }
    const extra = { ...JSON.parse((await both(EVENTS)).read.envelopes[0]), x: 1 };
    assert.notEqual(validate(extra), undefined, "an extra envelope key is refused");
  },
});

Deno.test("a view without a primary key column fails with PRIMARY_KEY_MISSING before anything is read", async () => {
  const dir = await alteredView("no-key", EVENTS, "SELECT * EXCLUDE (event_seq) FROM src");
  const exit = await runExit(Effect.scoped(
    openEnvelopeReader(dir, expectation(EVENTS), pinsFor(EVENTS), await readOptions(EVENTS)),
  ));
  assert.equal(failureOf(exit).reason, "PRIMARY_KEY_MISSING");
  assert.match(failureOf(exit).message ?? "", /event_seq/);
});

Deno.test("a row with a null primary key value fails with PRIMARY_KEY_MISSING naming the column", async () => {
  const dir = await alteredView(
    "null-key",
    EVENTS,
    "SELECT * REPLACE (CASE WHEN file_row_number = 5 THEN NULL ELSE flow_id END AS flow_id) FROM src",
  );
  const exit = await runExit(readEnvelopes(EVENTS, { dir }));
  assert.equal(failureOf(exit).reason, "PRIMARY_KEY_MISSING");
  assert.match(failureOf(exit).message ?? "", /flow_id is null/);
});

Deno.test("a view column the row schema does not declare is refused unless the schema allows extra columns", async () => {
  const dir = await alteredView("extra", EVENTS, "SELECT *, 1 AS extra_column FROM src");
  const refused = await runExit(readEnvelopes(EVENTS, { dir }));
  assert.equal(failureOf(refused).reason, "PAYLOAD_COLUMN_UNDECLARED");
  const allowed = await run(readEnvelopes(EVENTS, { dir, undeclaredColumns: true, limit: 2 }));
  assert.equal(JSON.parse(allowed.envelopes[0]).payload.extra_column, 1);
});

Deno.test("a catalogue primary key that is not a plain column name fails PRIMARY_KEY_INVALID before a query is sent", async () => {
  for (const key of ['flow_id" OR 1=1 --', "Flow Id", "../flow_id"]) {
    const exit = await runExit(readEnvelopes(EVENTS, { primaryKey: ["seed", key] }));
    assert.equal(failureOf(exit).reason, "PRIMARY_KEY_INVALID", key);
    assert.match(failureOf(exit).message ?? "", /is not a plain column name/, key);
  }
});

Deno.test("a primary key column whose text form may differ from the platform's fails PRIMARY_KEY_TYPE_UNSUPPORTED", async () => {
  const dir = await alteredView(
    "decimal-key",
    EVENTS,
    "SELECT * REPLACE (CAST(flow_id AS DECIMAL(18, 3)) AS flow_id) FROM src",
  );
  const exit = await runExit(readEnvelopes(EVENTS, { dir }));
  assert.equal(failureOf(exit).reason, "PRIMARY_KEY_TYPE_UNSUPPORTED");
  assert.match(failureOf(exit).message ?? "", /primary key column flow_id is DECIMAL\(18,3\)/);
});

Deno.test("a view column whose name is not a plain name fails PAYLOAD_COLUMN_INVALID, even where extra columns are allowed", async () => {
  const dir = await alteredView("odd-column", EVENTS, 'SELECT *, 1 AS "Odd Column" FROM src');
  const exit = await runExit(readEnvelopes(EVENTS, { dir, undeclaredColumns: true }));
  assert.equal(failureOf(exit).reason, "PAYLOAD_COLUMN_INVALID");
  assert.match(failureOf(exit).message ?? "", /has a column "Odd Column" that is not a plain name/);
});

Deno.test("malformed pins fail with PINS_INVALID naming the field, before the view is touched", async () => {
  const nowhere = join(base, "no-such-view");
  const cases: Array<[Partial<EnvelopePins>, string]> = [
    [{ seed: 1.5 }, "seed"],
    [{ seed: -1 }, "seed"],
    [{ platform_run_id: "platform_2026" }, "platform_run_id"],
    [{ run_id: "RUN" }, "run_id"],
    [{ manifest_fingerprint: "f".repeat(63) }, "manifest_fingerprint"],
    [{ span_id: "" }, "span_id"],
    [{ output_id: ARRIVALS }, "output_id"],
  ];
  for (const [change, field] of cases) {
    const exit = await runExit(
      readEnvelopes(EVENTS, { dir: nowhere, pins: pinsFor(EVENTS, change) }),
    );
    const failure = failureOf(exit);
    assert.equal(failure.reason, "PINS_INVALID", JSON.stringify(change));
    assert.match(failure.message ?? "", new RegExp(field), JSON.stringify(change));
  }
});

Deno.test("the envelope reader fails closed on a missing view or another output's view", async () => {
  const missing = await runExit(readEnvelopes(EVENTS, { dir: join(base, "no-such-view") }));
  assert.equal(failureOf(missing).reason, "STREAM_VIEW_MISSING");
  const other = await runExit(readEnvelopes(EVENTS, { dir: viewDirs[ARRIVALS] }));
  assert.equal(failureOf(other).reason, "STREAM_VIEW_ID_MISMATCH");
});

Deno.test("resuming after a position yields exactly the remaining envelopes with the same ids", async () => {
  const { read: all } = await both(EVENTS);
  // Resume inside a run of equal timestamps when there is one.
  let cut = all.positions.findIndex((p, i) => i > 100 && all.positions[i + 1]?.ts_utc === p.ts_utc);
  if (cut < 0) cut = 1500;
  const rest = await run(readEnvelopes(EVENTS, { after: all.positions[cut] }));
  assert.equal(rest.envelopes.length, all.envelopes.length - cut - 1);
  assert.deepEqual(rest.eventIds, all.eventIds.slice(cut + 1));
  assert.deepEqual(rest.envelopes, all.envelopes.slice(cut + 1));
  assert.deepEqual(rest.positions, all.positions.slice(cut + 1));

  const ten = await run(readEnvelopes(EVENTS, { after: all.positions[cut], limit: 10 }));
  assert.deepEqual(ten.eventIds, all.eventIds.slice(cut + 1, cut + 11));
  const last = all.positions[all.positions.length - 1];
  assert.deepEqual((await run(readEnvelopes(EVENTS, { after: last }))).envelopes, []);
});

Deno.test("a reader left mid-view closes cleanly while its next chunk is being fetched", async () => {
  const first = await run(Effect.scoped(Effect.gen(function* () {
    const cursor = yield* openEnvelopeReader(
      viewDirs[EVENTS],
      expectation(EVENTS),
      pinsFor(EVENTS),
      yield* Effect.promise(() => readOptions(EVENTS)),
    );
    assert.equal(cursor.rowCount, 3000);
    return yield* cursor.next;
  })));
  const { read: all } = await both(EVENTS);
  assert.ok(first !== undefined && first.envelopes.length > 0);
  assert.deepEqual(first.eventIds, all.eventIds.slice(0, first.eventIds.length));
  assert.equal(first.positions.firstSeq, 0);
});

globalThis.addEventListener("unload", () => Deno.removeSync(base, { recursive: true }));

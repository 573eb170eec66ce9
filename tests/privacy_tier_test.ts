/**
 * Privacy tiers through the real command (`main.ts stream` and `main.ts license verify` as
 * processes) into the reference gate over HTTP: tier local sends nothing to a gate off loopback;
 * tier minimized with a license signed here is all ADMIT, with the listed fields pseudonymized
 * and every other field as the stream view holds it; a failed license check sends nothing.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { Effect } from "effect";
import { canonicalJson } from "../core/hash.ts";
import { LICENSE_ENV } from "../core/license.ts";
import { PSEUDONYM_KEY_ENV } from "../core/pseudonymize.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { openViewReader, streamViewId, type ViewRow } from "../stores/stream_view_read.ts";
import { startIg } from "../ig/server.ts";
import {
  copyDb,
  effectTest,
  expectedIds,
  gateAdmitted,
  gateCounts,
  pgliteSite,
  processSite,
  runCommand,
  streamArgs,
  tail,
  TRAFFIC,
  worldAt,
} from "./_testing.ts";

const ANCHOR = "s3_flow_anchor_with_fraud_6B";
const LISTED = ["party_id", "account_id", "instrument_id", "device_id", "ip_id"];
const KEY = "pseudonym key of privacy_tier_test";
const { tmp, world, template } = await processSite("privacy_tier_test_", 1500);

function b64(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** A key set and a pack signed with its key, written to `dir`; the variables that name them. */
async function license(dir: string, claims: Record<string, unknown> = {}) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const body = {
    schema: "ccp.license.v1",
    kid: "test-key",
    plan: "trial",
    features: ["telemetry_minimized", "telemetry_full"],
    exp: 32503680000,
    ...claims,
  };
  const signature = await crypto.subtle.sign(
    { name: "Ed25519" },
    pair.privateKey,
    new TextEncoder().encode(canonicalJson(body)),
  );
  const keys = {
    version: "test",
    keys: [{
      id: "test-key",
      type: "ed25519",
      base64: b64(await crypto.subtle.exportKey("raw", pair.publicKey)),
    }],
  };
  await Deno.mkdir(dir, { recursive: true });
  const pack = join(dir, "pack.json");
  const pubkeys = join(dir, "pubkeys.json");
  await Deno.writeTextFile(pack, JSON.stringify({ license: body, signature: b64(signature) }));
  await Deno.writeTextFile(pubkeys, JSON.stringify(keys));
  return { [LICENSE_ENV.pack]: pack, [LICENSE_ENV.pubkeys]: pubkeys };
}

/** This machine's first IPv4 address that is not loopback, if it has one. */
const OFF_LOOPBACK = Deno.networkInterfaces().find((i) =>
  i.family === "IPv4" && !i.address.startsWith("127.")
)?.address;

effectTest(
  "tier local pointed at a gate off loopback is refused before any event leaves",
  Effect.gen(function* () {
    const site = yield* pgliteSite(tmp, "local_remote", { template });
    // A gate that is really there, on this machine's network address.
    const ig = yield* startIg({
      host: "0.0.0.0",
      port: 0,
      db: copyDb(template, join(site.dir, "ig")),
    });
    const url = `http://${OFF_LOOPBACK}:${ig.port}`;
    const run = "platform_20260301T000000Z";
    const exited = yield* runCommand(streamArgs(world, url, { platformRunId: run }), site);
    assert.equal(exited.code, 1, exited.stdout);
    assert.equal(exited.result?.reason, "PRIVACY_TIER_FORBIDS_NETWORK", tail(exited.stderr));
    assert.match(
      String(exited.result?.message),
      new RegExp(`IG at ${OFF_LOOPBACK} is not loopback`),
    );
    assert.equal((yield* gateCounts(ig, run)).admitted, 0);
    // The same gate on loopback takes the same stream: the refusal was the tier's.
    const local = yield* runCommand(
      streamArgs(world, ig.url, { platformRunId: run, outputIds: [TRAFFIC] }),
      site,
    );
    assert.equal(local.code, 0, tail(local.stderr));
    assert.ok((yield* gateCounts(ig, run)).admitted > 0);
  }),
  { ignore: OFF_LOOPBACK === undefined },
);

function viewRows(outputId: string) {
  return Effect.scoped(Effect.gen(function* () {
    const w = yield* worldAt(world);
    const cursor = yield* openViewReader(
      join(world, "stream_view", "ts_utc", `output_id=${outputId}`),
      {
        streamViewId: streamViewId({
          engineRunId: w.runReceipt.run_id,
          worldKey: w.worldKey,
          outputId,
        }),
        outputId,
      },
    );
    const rows: ViewRow[] = [];
    for (let b = yield* cursor.next; b !== undefined; b = yield* cursor.next) rows.push(...b);
    return rows;
  })).pipe(Effect.provide(DuckDb.layer({ threads: 1 })));
}

effectTest(
  "tier minimized streams into the gate all ADMIT, listed fields pseudonymized, the rest as the view holds it",
  Effect.gen(function* () {
    const site = yield* pgliteSite(tmp, "minimized", { template, gate: true });
    const vars = {
      ...site.vars,
      ...(yield* Effect.promise(() => license(join(site.dir, "license")))),
      WSP_PRIVACY_TIER: "minimized",
      [PSEUDONYM_KEY_ENV]: KEY,
    };
    const run = "platform_20260301T000001Z";
    const outputs = [TRAFFIC, ANCHOR];
    const exited = yield* runCommand(
      streamArgs(world, site.ig.url, { platformRunId: run, outputIds: outputs }),
      { dir: site.dir, vars },
    );
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    const counts = yield* gateCounts(site.ig, run);
    assert.equal(counts.quarantined, 0);
    assert.equal(counts.duplicate, 0);
    const admitted = yield* gateAdmitted(site.ig, run);
    assert.equal(counts.admitted, admitted.length);
    const byId = new Map(admitted.map((e) => [e.event_id, e]));
    const ids = yield* expectedIds(world, outputs);
    for (const outputId of outputs) {
      const rows = yield* viewRows(outputId);
      const expected = ids.get(outputId)!;
      assert.equal(rows.length, expected.length);
      for (const [i, { row }] of rows.entries()) {
        // Event ids are the raw row's: each expected id was admitted.
        const envelope = byId.get(expected[i]);
        assert.ok(
          envelope !== undefined,
          `${outputId} row ${i}: event ${expected[i]} not admitted`,
        );
        const payload = envelope.payload as Record<string, unknown>;
        for (const [field, value] of Object.entries(row)) {
          if (field === "filename" || field === "file_row_number") continue;
          const raw = typeof value === "bigint" ? Number(value) : value;
          if (outputId === ANCHOR && LISTED.includes(field)) {
            const h = createHmac("sha256", KEY).update(`${field}|${raw}`).digest("hex");
            assert.notEqual(payload[field], raw, `${field} unchanged`);
            assert.equal(payload[field], parseInt(h.slice(0, 13), 16) + 1, field);
          } else {
            assert.deepEqual(payload[field], raw, `${outputId} row ${i}: ${field}`);
          }
        }
      }
    }

    // Same input, same output: the same run streamed again from the first row (another
    // scenario run id is another checkpoint scope; event ids do not depend on it) is all
    // DUPLICATE (equal payload hashes), none quarantined as PAYLOAD_HASH_MISMATCH.
    const again = yield* runCommand(
      streamArgs(world, site.ig.url, {
        platformRunId: run,
        scenarioRunId: "fedcba9876543210fedcba9876543210",
        outputIds: outputs,
      }),
      { dir: site.dir, vars },
    );
    assert.equal(again.code, 0, tail(again.stderr));
    const after = yield* gateCounts(site.ig, run);
    assert.equal(after.quarantined, 0);
    assert.equal(after.admitted, counts.admitted);
    assert.equal(after.duplicate, counts.admitted);
  }),
);

effectTest(
  "a failed license check sends nothing, whatever the tier above local",
  Effect.gen(function* () {
    const site = yield* pgliteSite(tmp, "unlicensed", { template, gate: true });
    const expired = yield* Effect.promise(() =>
      license(join(site.dir, "expired"), { exp: 1_000_000_000 })
    );
    const cases: Array<readonly [Record<string, string>, string]> = [
      [{ WSP_PRIVACY_TIER: "full" }, "LICENSE_MISSING"],
      [{ ...expired, WSP_PRIVACY_TIER: "full" }, "LICENSE_EXPIRED"],
      [{ ...expired, WSP_PRIVACY_TIER: "minimized", [PSEUDONYM_KEY_ENV]: KEY }, "LICENSE_EXPIRED"],
    ];
    for (const [i, [extra, reason]] of cases.entries()) {
      const run = `platform_20260301T00001${i}Z`;
      const exited = yield* runCommand(
        streamArgs(world, site.ig.url, { platformRunId: run, outputIds: [TRAFFIC] }),
        { dir: site.dir, vars: { ...site.vars, ...extra } },
      );
      assert.equal(exited.code, 1);
      assert.equal(exited.result?.reason, reason, tail(exited.stderr));
      assert.equal((yield* gateCounts(site.ig, run)).admitted, 0);
    }
  }),
);

effectTest(
  "license verify prints the verdict and exits 0 only when the pack is valid for the tier",
  Effect.gen(function* () {
    const site = yield* pgliteSite(tmp, "verify", { template });
    const good = yield* Effect.promise(() => license(join(site.dir, "good")));
    const narrow = yield* Effect.promise(() =>
      license(join(site.dir, "narrow"), { features: ["telemetry_minimized"] })
    );
    const verify = (vars: Record<string, string>) =>
      runCommand(["license", "verify", "--profile", "local"], {
        dir: site.dir,
        vars: { ...site.vars, ...vars },
      }, { timeoutMs: 60_000 });

    const valid = yield* verify({ ...good, WSP_PRIVACY_TIER: "full" });
    assert.equal(valid.code, 0, valid.stdout);
    assert.deepEqual(valid.result, {
      status: "VALID",
      reason: null,
      kid: "test-key",
      plan: "trial",
      features: ["telemetry_minimized", "telemetry_full"],
      exp: 32503680000,
    });
    assert.match(valid.stdout, /tier full needs feature telemetry_full: VALID/);

    const wrong = yield* verify({ ...narrow, WSP_PRIVACY_TIER: "full" });
    assert.equal(wrong.code, 1);
    assert.equal(wrong.result?.status, "INVALID");
    assert.equal(wrong.result?.reason, "LICENSE_ENTITLEMENT_MISSING");
    assert.deepEqual(wrong.result?.features, ["telemetry_minimized"]);
    assert.equal((yield* verify({ ...narrow, WSP_PRIVACY_TIER: "minimized" })).code, 0);

    const missing = yield* verify({});
    assert.equal(missing.code, 1);
    assert.deepEqual(missing.result, {
      status: "INVALID",
      reason: "LICENSE_MISSING",
      kid: null,
      plan: null,
      features: null,
      exp: null,
    });
  }),
);

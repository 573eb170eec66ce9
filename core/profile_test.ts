import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Effect, Result } from "effect";
import { stringify } from "yaml";
import type { WorldstreamError } from "../schemas/errors.ts";
import { kinesisBusOf, loadProfile, type Profile, selectOutputIds } from "./profile.ts";
import { interpolateTree } from "./profile_interpolate.ts";

const REPO_PROFILES = fileURLToPath(new URL("../profiles/", import.meta.url));
const SECRET = "hunter2-very-secret";
const DSN = `postgres://worldstream:${SECRET}@db.internal:5432/worldstream`;

const DEPLOYED_ENV = {
  WORLDSTREAM_RUNS_ROOT: "/var/lib/worldstream",
  IG_INGEST_URL: "https://ig.example.internal",
  IG_SERVICE_TOKEN: "token-123",
  CONTROL_BUS_STREAM: "fp-control-bus",
  DATABASE_URL: DSN,
};

async function load(
  pathOrName: string,
  env: Record<string, string | undefined> = {},
): Promise<Result.Result<Profile, WorldstreamError>> {
  return await Effect.runPromise(Effect.result(loadProfile(pathOrName, env)));
}

async function loadOk(pathOrName: string, env: Record<string, string | undefined> = {}) {
  const result = await load(pathOrName, env);
  if (Result.isFailure(result)) assert.fail(`${result.failure.reason}: ${result.failure.message}`);
  return result.success;
}

async function loadErr(pathOrName: string, env: Record<string, string | undefined> = {}) {
  const result = await load(pathOrName, env);
  if (Result.isSuccess(result)) assert.fail(`Expected ${pathOrName} to fail, but it loaded`);
  return result.failure;
}

type Tree = Record<string, unknown>;

/** Sets (or, with `undefined`, deletes) the value at a dotted path such as `wiring.database.url`. */
function edit(tree: Tree, path: string, value: unknown): Tree {
  const keys = path.split(".");
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Tree;
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  return tree;
}

/** A valid profile with absolute refs into the repo's lists, for editing in a temp dir. */
function baseProfile(): Tree {
  return {
    profile_id: "test",
    policy: {
      policy_rev: "test-v0",
      require_gate_pass: true,
      strict_world: false,
      stream_speedup: 0,
      traffic_output_ids_ref: join(REPO_PROFILES, "wsp/traffic_outputs_v0.yaml"),
      context_output_ids_ref: join(REPO_PROFILES, "wsp/context_fraud_outputs_v0.yaml"),
      context_output_ids_baseline_ref: join(REPO_PROFILES, "wsp/context_baseline_outputs_v0.yaml"),
      privacy_tier: "local",
    },
    wiring: {
      runs_root: "runs",
      ig_ingest_url: "http://localhost:8081",
      control_bus: { kind: "file", root: "runs/control_bus", topic: "fp.bus.control.v1" },
      database: { backend: "pglite", pglite_dir: "runs/pglite" },
      wsp_retry: { max_attempts: 5, base_delay_ms: 250, max_delay_ms: 5000 },
      wsp_producer: {
        producer_id: "svc:world_stream_producer",
        allowlist_ref: join(REPO_PROFILES, "wsp/producer_allowlist_v0.txt"),
      },
      interface_pack_ref: join(REPO_PROFILES, "interface_pack"),
    },
    governance: {
      capabilities_ref: join(REPO_PROFILES, "capabilities.yaml"),
      policies_ref: join(REPO_PROFILES, "policies.yaml"),
    },
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "worldstream_profile_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `profile` (an object, or raw YAML text) as <dir>/profile.yaml and returns its path. */
async function writeProfile(dir: string, profile: Tree | string): Promise<string> {
  const path = join(dir, "profile.yaml");
  await Deno.writeTextFile(path, typeof profile === "string" ? profile : stringify(profile));
  return path;
}

// ---------------------------------------------------------------------------------------------
// The shipped profiles

Deno.test("the local profile loads with an empty environment", async () => {
  const profile = await loadOk("local", {});
  assert.equal(profile.profile_id, "local");
  assert.equal(profile.policy.strict_world, false);
  assert.equal(profile.policy.require_gate_pass, true);
  assert.equal(profile.policy.stream_speedup, 600);
  assert.equal(profile.policy.privacy_tier, "local");
  assert.equal(profile.wiring.ig_ingest_url, "http://localhost:8081");
  assert.equal(profile.wiring.control_bus.kind, "file");
  assert.equal(profile.wiring.database.backend, "pglite");
  assert.equal(profile.wiring.database.url, undefined);
  assert.equal(profile.wiring.oracle_engine_run_root, undefined);
  assert.equal(profile.wiring.ig_auth?.token, undefined);
  assert.equal(profile.paths.runsRoot, join(Deno.cwd(), "runs"));
  assert.equal(profile.paths.pgliteDir, join(Deno.cwd(), "runs/pglite"));
  assert.equal(profile.paths.trafficOutputIds, join(REPO_PROFILES, "wsp/traffic_outputs_v0.yaml"));
  assert.equal(profile.paths.interfacePack, join(REPO_PROFILES, "interface_pack"));
  assert.equal(profile.source, join(REPO_PROFILES, "local.yaml"));
  assert.deepEqual(profile.outputIds.traffic, ["s3_event_stream_with_fraud_6B"]);
  assert.deepEqual(profile.outputIds.context, [
    "arrival_events_5B",
    "s1_arrival_entities_6B",
    "s3_flow_anchor_with_fraud_6B",
  ]);
  assert.deepEqual(profile.producerAllowlist, ["svc:world_stream_producer"]);
});

Deno.test("the local profile picks up environment overrides where it offers them", async () => {
  const profile = await loadOk("local", {
    WORLDSTREAM_RUNS_ROOT: "/tmp/ws-runs",
    ORACLE_ENGINE_RUN_ROOT: "s3://oracle/run-1",
    ORACLE_SCENARIO_ID: "baseline_v1",
    WSP_STREAM_SPEEDUP: "2.5",
    IG_API_KEY: "local-key",
  });
  assert.equal(profile.paths.runsRoot, "/tmp/ws-runs");
  assert.equal(profile.wiring.oracle_engine_run_root, "s3://oracle/run-1");
  assert.equal(profile.wiring.oracle_scenario_id, "baseline_v1");
  assert.equal(profile.policy.stream_speedup, 2.5);
  assert.equal(profile.wiring.ig_auth?.token, "local-key");
});

Deno.test("the local_parity profile loads with the platform's parity variables: Kinesis, S3, a Postgres server", async () => {
  const profile = await loadOk("local_parity", {
    IG_INGEST_URL: "http://localhost:8081",
    DATABASE_URL: "postgres://postgres@localhost:5432/worldstream",
    CONTROL_BUS_STREAM: "fp-control",
    CONTROL_BUS_REGION: "eu-west-2",
    CONTROL_BUS_ENDPOINT_URL: "http://localhost:4567",
    OBJECT_STORE_ENDPOINT: "http://localhost:4568",
    WORLDSTREAM_ADMIN_PORT: "8080",
  });
  assert.equal(profile.policy.strict_world, false);
  assert.equal(profile.policy.privacy_tier, "local");
  assert.deepEqual(kinesisBusOf(profile), {
    stream: "fp-control",
    region: "eu-west-2",
    endpoint: "http://localhost:4567",
  });
  assert.equal(profile.wiring.control_bus.poll_interval_ms, 1000);
  assert.equal(profile.paths.controlBusRoot, undefined);
  assert.equal(profile.wiring.object_store?.root, "s3://fraud-platform");
  assert.equal(profile.wiring.object_store?.endpoint, "http://localhost:4568");
  assert.equal(profile.wiring.database.backend, "server");
  assert.equal(profile.wiring.ig_auth?.token, "local-parity-wsp");
  assert.equal(profile.wiring.admin?.port, 8080);
});

Deno.test("the parity profiles name CONTROL_BUS_STREAM when it is not set", async () => {
  for (const name of ["local_parity", "dev", "prod"]) {
    const { CONTROL_BUS_STREAM: _, ...without } = DEPLOYED_ENV;
    const error = await loadErr(name, without);
    assert.equal(error.reason, "PROFILE_ENV_MISSING");
    assert.match(error.message, /wiring\.control_bus\.stream: .*CONTROL_BUS_STREAM/);
  }
});

Deno.test("an admin section emptied by an unset WORLDSTREAM_ADMIN_PORT is no admin section", async () => {
  const profile = await loadOk("local", {});
  assert.equal(profile.wiring.admin, undefined);
  assert.equal((await loadOk("local", { WORLDSTREAM_ADMIN_PORT: "0" })).wiring.admin?.port, 0);
  const bad = await loadErr("local", { WORLDSTREAM_ADMIN_PORT: "http" });
  assert.equal(bad.reason, "PROFILE_INVALID");
  assert.match(bad.message, /wiring\.admin\.port/);
});

for (const name of ["dev", "prod"]) {
  Deno.test(`the ${name} profile is strict and takes its secrets from the environment`, async () => {
    const profile = await loadOk(name, DEPLOYED_ENV);
    assert.equal(profile.profile_id, name);
    assert.equal(profile.policy.strict_world, true);
    assert.equal(profile.policy.stream_speedup, 1);
    assert.equal(profile.policy.privacy_tier, "full");
    assert.equal(profile.wiring.database.backend, "server");
    assert.equal(profile.wiring.database.url, DSN);
    assert.equal(profile.paths.pgliteDir, undefined);
    assert.equal(profile.paths.controlBusRoot, undefined);
    assert.equal(kinesisBusOf(profile)?.stream, "fp-control-bus");
    assert.equal(profile.wiring.object_store?.root, "s3://fraud-platform");
    assert.equal(profile.wiring.ig_auth?.header, "X-IG-Service-Token");
    assert.equal(profile.paths.runsRoot, "/var/lib/worldstream");
  });

  Deno.test(`the ${name} profile names the first missing variable`, async () => {
    const { DATABASE_URL: _, ...withoutDb } = DEPLOYED_ENV;
    const error = await loadErr(name, withoutDb);
    assert.equal(error.reason, "PROFILE_ENV_MISSING");
    assert.match(error.message, new RegExp(`profiles/${name}\\.yaml: wiring\\.database\\.url: `));
    assert.match(error.message, /DATABASE_URL/);
  });
}

Deno.test("a path to a profile is used as given", async () => {
  const profile = await loadOk(join(REPO_PROFILES, "local.yaml"), {});
  assert.equal(profile.profile_id, "local");
});

// ---------------------------------------------------------------------------------------------
// Interpolation

Deno.test("interpolation fills variables, defaults, empty defaults, escapes and nesting", () => {
  const env = { A: "alpha", EMPTY: "", B: "beta" };
  const cases: Array<[string, string]> = [
    ["${A}", "alpha"],
    ["x-${A}-y", "x-alpha-y"],
    ["${UNSET:-fallback}", "fallback"],
    ["${EMPTY:-fallback}", "fallback"],
    ["${EMPTY}", ""],
    ["${UNSET:-}", ""],
    ["${A:-fallback}", "alpha"],
    ["$${A}", "${A}"],
    ["cost: $5", "cost: $5"],
    ["${UNSET:-${B}/sub}", "beta/sub"],
    ["${A:-${UNSET}}", "alpha"],
  ];
  for (const [input, expected] of cases) {
    const result = interpolateTree(input, env);
    assert.deepEqual(result, { ok: true, value: expected }, input);
  }
});

Deno.test("interpolation reaches strings nested in maps and lists and names their path", () => {
  const tree = { a: { list: ["${A}", { deep: "${B:-b}" }, 3, true, null] } };
  assert.deepEqual(interpolateTree(tree, { A: "alpha" }), {
    ok: true,
    value: { a: { list: ["alpha", { deep: "b" }, 3, true, null] } },
  });
  assert.deepEqual(interpolateTree({ a: { list: ["ok", "${NOPE}"] } }, {}), {
    ok: false,
    failure: { kind: "missing", path: "a.list[1]", variable: "NOPE" },
  });
});

Deno.test("an empty default leaves an optional field absent", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "wiring.oracle_scenario_id", "${ORACLE_SCENARIO_ID:-}");
    const loaded = await loadOk(await writeProfile(dir, profile), {});
    assert.equal("oracle_scenario_id" in loaded.wiring, false);
  });
});

Deno.test("an escaped ${ reaches the profile literally", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "policy.policy_rev", "rev-$${literal}");
    const loaded = await loadOk(await writeProfile(dir, profile), {});
    assert.equal(loaded.policy.policy_rev, "rev-${literal}");
  });
});

Deno.test("a malformed interpolation is refused with the field it is in", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "policy.policy_rev", "${BROKEN");
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.ok(error.message.startsWith(`${path}: policy.policy_rev: Malformed interpolation`));
  });
});

Deno.test("an unknown top-level section is refused by name, even with unset variables", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "approvals", { policy: { expiry: "${APPROVALS_EXPIRY}" } });
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.equal(
      error.message,
      `${path}: approvals: Unknown key (expected one of: profile_id, policy, wiring, governance)`,
    );
  });
});

Deno.test("an unknown key with an empty value is refused, not dropped as absent", async () => {
  await withTempDir(async (dir) => {
    const path = await writeProfile(dir, `${stringify(baseProfile())}approvals:\n`);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.match(error.message, /: approvals: Unknown key/);

    const nested = baseProfile();
    edit(nested, "wiring.wsp_courier", { mode: "batch", linger_ms: "${WSP_LINGER_MS:-}" });
    const nestedError = await loadErr(await writeProfile(dir, nested), {});
    assert.equal(nestedError.reason, "PROFILE_INVALID");
    assert.match(
      nestedError.message,
      /: wiring\.wsp_courier\.linger_ms: Unknown key \(expected one of: mode, batch_size/,
    );
  });
});

Deno.test("an unknown key deep inside wiring is refused with the keys allowed there", async () => {
  await withTempDir(async (dir) => {
    for (
      const [path, allowed] of [
        [
          "wiring.control_bus.shard",
          /kind, topic, root, stream, region, endpoint_url, poll_interval_ms\)$/,
        ],
        [
          "wiring.database.dsn",
          /backend, pglite_dir, url, pool_max, statement_timeout_ms, connect_timeout_ms\)$/,
        ],
        ["policy.license_pack_path", /stream_max_gap_seconds\)$/],
      ] as const
    ) {
      const profile = baseProfile();
      edit(profile, path, "x");
      const file = await writeProfile(dir, profile);
      const error = await loadErr(file, {});
      assert.equal(error.reason, "PROFILE_INVALID");
      assert.ok(error.message.startsWith(`${file}: ${path}: Unknown key`), error.message);
      assert.match(error.message, allowed);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Invalid profiles

Deno.test("a variable without a default that is unset names the file, field and variable", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "wiring.database", { backend: "server", url: "${WS_TEST_DATABASE_URL}" });
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_ENV_MISSING");
    assert.equal(
      error.message,
      `${path}: wiring.database.url: Environment variable WS_TEST_DATABASE_URL is not set and has no default`,
    );
  });
});

Deno.test("a wrong type names the file, the field and the problem", async () => {
  const error = await loadErr("dev", { ...DEPLOYED_ENV, WSP_STREAM_SPEEDUP: "fast" });
  assert.equal(error.reason, "PROFILE_INVALID");
  assert.ok(
    error.message.endsWith(
      `profiles/dev.yaml: policy.stream_speedup: Expected a number >= 0, got "fast"`,
    ),
    error.message,
  );
  assert.doesNotMatch(error.message, /\n/);
});

Deno.test("a negative retry count in the file itself is refused", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "wiring.wsp_retry.max_attempts", 0);
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.equal(
      error.message,
      `${path}: wiring.wsp_retry.max_attempts: Expected an integer >= 1, got 0`,
    );
  });
});

Deno.test("an unknown key in policy is refused as a likely typo", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "policy.stream_speed", 10);
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.ok(error.message.startsWith(`${path}: policy.stream_speed: Unknown key`), error.message);
    assert.match(error.message, /stream_speedup/);
  });
});

Deno.test("a missing required field is named", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "wiring.wsp_producer.producer_id", undefined);
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.ok(error.message.startsWith(`${path}: wiring.wsp_producer.producer_id: `));
  });
});

Deno.test("fields required by another field's value are named", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "wiring.database", { backend: "server" });
    const error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.match(error.message, /wiring\.database\.url: Required when backend is server$/);
  });
});

Deno.test("a control bus or privacy tier that is not built is refused", async () => {
  await withTempDir(async (dir) => {
    const kafka = baseProfile();
    edit(kafka, "wiring.control_bus.kind", "kafka");
    const kafkaPath = await writeProfile(dir, kafka);
    let error = await loadErr(kafkaPath, {});
    assert.equal(error.reason, "CONTROL_BUS_UNSUPPORTED");
    assert.equal(
      error.message,
      `${kafkaPath}: wiring.control_bus.kind: control bus "kafka" is not built (built: file, kinesis)`,
    );

    const minimized = baseProfile();
    edit(minimized, "policy.privacy_tier", "anonymous");
    error = await loadErr(await writeProfile(dir, minimized), {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.match(error.message, /policy\.privacy_tier: /);
  });
});

Deno.test("a Kinesis control bus needs its stream; region and endpoint are optional", async () => {
  await withTempDir(async (dir) => {
    const kinesis = baseProfile();
    edit(kinesis, "wiring.control_bus", { kind: "kinesis", topic: "fp.bus.control.v1" });
    const error = await loadErr(await writeProfile(dir, kinesis), {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.match(error.message, /wiring\.control_bus\.stream: Required when kind is kinesis$/);

    edit(kinesis, "wiring.control_bus", {
      kind: "kinesis",
      topic: "fp.bus.control.v1",
      stream: "${CONTROL_BUS_STREAM}",
      region: "${CONTROL_BUS_REGION:-}",
      endpoint_url: "${CONTROL_BUS_ENDPOINT_URL:-}",
    });
    const profile = await Effect.runPromise(
      loadProfile(await writeProfile(dir, kinesis), { CONTROL_BUS_STREAM: "fp-control" }),
    );
    assert.deepEqual(kinesisBusOf(profile), {
      stream: "fp-control",
      region: undefined,
      endpoint: undefined,
    });
    assert.equal(profile.paths.controlBusRoot, undefined);

    const file = baseProfile();
    edit(file, "wiring.control_bus", { kind: "file", topic: "fp.bus.control.v1" });
    const noRoot = await loadErr(await writeProfile(dir, file), {});
    assert.match(noRoot.message, /wiring\.control_bus\.root: Required when kind is file$/);
  });
});

Deno.test("a missing profile file is unreadable and named", async () => {
  const error = await loadErr("/nonexistent/worldstream/profile.yaml", {});
  assert.equal(error.reason, "PROFILE_UNREADABLE");
  assert.match(error.message, /\/nonexistent\/worldstream\/profile\.yaml/);
  const byName = await loadErr("no_such_profile", {});
  assert.equal(byName.reason, "PROFILE_UNREADABLE");
  assert.match(byName.message, /profiles\/no_such_profile\.yaml/);
});

Deno.test("a profile path that is a directory is unreadable", async () => {
  await withTempDir(async (dir) => {
    const error = await loadErr(dir, {});
    assert.equal(error.reason, "PROFILE_UNREADABLE");
    assert.ok(error.message.includes(dir));
  });
});

Deno.test("garbled YAML is invalid, with the file and the line", async () => {
  await withTempDir(async (dir) => {
    const path = await writeProfile(dir, "profile_id: x\npolicy:\n  a: [1,\nwiring: 2\n");
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.match(error.message, new RegExp(`^${path}: Not valid YAML \\(line 4, column \\d+\\): `));
    assert.doesNotMatch(error.message, /\n/);
  });
});

Deno.test("a profile that is not a mapping is invalid", async () => {
  await withTempDir(async (dir) => {
    const error = await loadErr(await writeProfile(dir, "- just\n- a list\n"), {});
    assert.equal(error.reason, "PROFILE_INVALID");
    assert.match(error.message, /Expected a mapping at the top level/);
  });
});

// ---------------------------------------------------------------------------------------------
// Referenced files

Deno.test("refs are resolved relative to the profile's folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "lists"));
    await Deno.writeTextFile(
      join(dir, "lists/traffic.yaml"),
      "version: '1'\noutput_ids: [s2_event_stream_baseline_6B]\n",
    );
    await Deno.writeTextFile(join(dir, "lists/allow.txt"), "# comment\n\nsvc:a  # inline\nsvc:b\n");
    const profile = baseProfile();
    edit(profile, "policy.traffic_output_ids_ref", "lists/traffic.yaml");
    edit(profile, "wiring.wsp_producer.allowlist_ref", "lists/allow.txt");
    const loaded = await loadOk(await writeProfile(dir, profile), {});
    assert.equal(loaded.paths.trafficOutputIds, join(dir, "lists/traffic.yaml"));
    assert.deepEqual(loaded.outputIds.traffic, ["s2_event_stream_baseline_6B"]);
    assert.deepEqual(loaded.producerAllowlist, ["svc:a", "svc:b"]);
  });
});

Deno.test("a missing output list is PROFILE_REF_MISSING naming the field", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "policy.context_output_ids_ref", "nope.yaml");
    const path = await writeProfile(dir, profile);
    const error = await loadErr(path, {});
    assert.equal(error.reason, "PROFILE_REF_MISSING");
    assert.ok(error.message.startsWith(`${path}: policy.context_output_ids_ref: `));
    assert.match(error.message, /nope\.yaml does not exist/);
  });
});

Deno.test("a malformed output list is PROFILE_REF_INVALID naming the bad entry", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "bad.yaml"), "version: '1'\noutput_ids: [ok_id, '../x']\n");
    const profile = baseProfile();
    edit(profile, "policy.traffic_output_ids_ref", "bad.yaml");
    const error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PROFILE_REF_INVALID");
    assert.match(error.message, /output_ids\[1\]: Expected an output id/);
  });
});

Deno.test("a missing interface pack folder is PROFILE_REF_MISSING", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();
    edit(profile, "wiring.interface_pack_ref", "no_pack");
    const error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PROFILE_REF_MISSING");
    assert.match(error.message, /wiring\.interface_pack_ref: .*no_pack does not exist/);
  });
});

Deno.test("the producer allowlist must exist, be readable and list someone", async () => {
  await withTempDir(async (dir) => {
    const profile = baseProfile();

    edit(profile, "wiring.wsp_producer.allowlist_ref", "missing.txt");
    let error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PRODUCER_ALLOWLIST_MISSING");
    assert.match(error.message, /missing\.txt does not exist/);

    await Deno.writeTextFile(join(dir, "empty.txt"), "# nobody yet\n\n   \n");
    edit(profile, "wiring.wsp_producer.allowlist_ref", "empty.txt");
    error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PRODUCER_ALLOWLIST_EMPTY");

    await Deno.mkdir(join(dir, "a_directory.txt"));
    edit(profile, "wiring.wsp_producer.allowlist_ref", "a_directory.txt");
    error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PRODUCER_ALLOWLIST_UNREADABLE");

    await Deno.writeFile(join(dir, "binary.txt"), new Uint8Array([0xff, 0xfe, 0x00, 0xc3]));
    edit(profile, "wiring.wsp_producer.allowlist_ref", "binary.txt");
    error = await loadErr(await writeProfile(dir, profile), {});
    assert.equal(error.reason, "PRODUCER_ALLOWLIST_UNREADABLE");
  });
});

// ---------------------------------------------------------------------------------------------
// Secrets

Deno.test("a DSN's password never appears in any error message", async () => {
  const messages: string[] = [];
  const collect = async (pathOrName: string, env: Record<string, string | undefined>) => {
    const error = await loadErr(pathOrName, env);
    messages.push(error.message);
  };
  // An invalid database URL is described without its value.
  await collect("dev", { ...DEPLOYED_ENV, DATABASE_URL: `mysql://root:${SECRET}@db/x` });
  // A DSN that lands in a non-secret field is still scrubbed of its credentials.
  await collect("dev", { ...DEPLOYED_ENV, WSP_STREAM_SPEEDUP: DSN });
  // Some other field fails while the DSN is in place.
  await collect("dev", { ...DEPLOYED_ENV, IG_INGEST_URL: "not a url" });
  await withTempDir(async (dir) => {
    // A misspelt key holding a DSN.
    const typo = baseProfile();
    edit(typo, "wiring.database.dsn", DSN);
    await collect(await writeProfile(dir, typo), {});
    // A DSN written in a file that is not valid YAML.
    await collect(
      await writeProfile(dir, `profile_id: x\nwiring:\n  database:\n    url: ${DSN}\n   bad: [\n`),
      {},
    );
    // A malformed interpolation around a DSN.
    const malformed = baseProfile();
    edit(malformed, "wiring.database", { backend: "server", url: `${DSN}\${BROKEN` });
    await collect(await writeProfile(dir, malformed), {});
  });
  assert.equal(messages.length, 6);
  for (const message of messages) {
    assert.ok(!message.includes(SECRET), `Secret leaked: ${message}`);
  }
  assert.match(messages[0], /wiring\.database\.url: Expected a postgres:\/\//);
  assert.match(messages[1], /policy\.stream_speedup: /);
  assert.match(messages[3], /wiring\.database\.dsn: Unknown key/);
});

// ---------------------------------------------------------------------------------------------
// Output selection

Deno.test("output ids come from the profile unless the environment overrides them", async () => {
  const profile = await loadOk("local", {});
  assert.deepEqual(selectOutputIds(profile, {}), {
    traffic: profile.outputIds.traffic,
    context: profile.outputIds.context,
  });
  assert.deepEqual(
    selectOutputIds(profile, { WSP_TRAFFIC_OUTPUT_IDS: "", WSP_CONTEXT_OUTPUT_IDS: " , " }),
    { traffic: profile.outputIds.traffic, context: profile.outputIds.context },
  );
  assert.deepEqual(
    selectOutputIds(profile, {
      WSP_TRAFFIC_OUTPUT_IDS: " s3_event_stream_with_fraud_6B, s2_event_stream_baseline_6B ,",
      WSP_CONTEXT_OUTPUT_IDS: "arrival_events_5B",
    }),
    {
      traffic: ["s3_event_stream_with_fraud_6B", "s2_event_stream_baseline_6B"],
      context: ["arrival_events_5B"],
    },
  );
});

Deno.test("baseline-only traffic takes the baseline context list", async () => {
  const profile = await loadOk("local", {});
  const selection = selectOutputIds(profile, {
    WSP_TRAFFIC_OUTPUT_IDS: "s2_event_stream_baseline_6B",
  });
  assert.deepEqual(selection.context, profile.outputIds.contextBaseline);
  const dual = selectOutputIds(profile, {
    WSP_TRAFFIC_OUTPUT_IDS: "s2_event_stream_baseline_6B,s3_event_stream_with_fraud_6B",
  });
  assert.deepEqual(dual.context, profile.outputIds.context);
});

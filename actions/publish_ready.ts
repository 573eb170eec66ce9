/**
 * Action `publish_ready`: plays the Scenario Runner for a local world. It resolves the world,
 * writes a run facts view under the platform object store root and publishes a READY for it on
 * the control bus (the profile's kind, or the one asked for: a file on the file bus, or a record
 * on the Kinesis stream put as the platform's Scenario Runner puts it: Data the envelope JSON,
 * PartitionKey its partition_key), so the READY path can be driven without the platform. The
 * facts are written first and the READY last, so a READY never points at missing facts; a
 * Kinesis stream that does not exist fails CONTROL_BUS_STREAM_MISSING before anything is written. The CLI
 * (`publish-ready`), `run` (the demo world's READY) and the coming admin API call it.
 *
 * Defaults: platform run id `platform_<now, YYYYMMDDTHHMMSSZ>` (Effect Clock); scenario run id
 * the first 32 hex of sha256("{platform_run_id}|{engine run root}"); bus root the profile's
 * `control_bus.root`; object store root the profile's `wiring.object_store.root` (a folder or
 * `s3://bucket/prefix`), else its runs root (the platform's local object store root is `runs`
 * too). The facts view lands at
 * `fraud-platform/<platform_run_id>/sr/run_facts_view/<scenario_run_id>.json` under that root,
 * written whole (stores/platform_objects.ts) before the READY that points at it.
 */
import { Clock, Effect, Schema } from "effect";
import { dirname, resolve } from "node:path";
import type { WorldKey } from "../core/catalogue.ts";
import { renderTemplate } from "../core/catalogue.ts";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { kinesisBusOf, platformStoreRoot, type Profile, selectOutputIds } from "../core/profile.ts";
import { readyMessageId } from "../core/ready.ts";
import { joinRoot, resolveRoot } from "../core/store_root.ts";
import { resolveOutput, resolveWorld, type World } from "../stores/world.ts";
import { objectStoreOptions, OracleStore } from "../stores/oracle.ts";
import { openPlatformObjects } from "../stores/platform_objects.ts";
import { verifyGate } from "../stores/gate_verify.ts";
import { Hex32, PlatformRunId } from "../schemas/common.ts";
import { CONTROL_BUS_TOPIC, ReadyControlMessage } from "../schemas/control_bus.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { OraclePackRef, RunReadySignal } from "../schemas/ready.ts";
import { type GateReceipt, type OutputLocator, RunFactsView } from "../schemas/run_facts.ts";
import { publish } from "../stores/control_bus_fs.ts";
import { KinesisBus } from "../stores/control_bus_kinesis.ts";
import { platformRunIdAt } from "../core/platform_ids.ts";
import { authorize, servicePrincipal } from "../actors/governance.ts";

/** What to publish; everything but the root has a default. */
export const PublishReadyRequest = Schema.Struct({
  engineRunRoot: Schema.String,
  platformRunId: Schema.optionalKey(Schema.String),
  scenarioRunId: Schema.optionalKey(Schema.String),
  busRoot: Schema.optionalKey(Schema.String),
  /** The bus to publish on; default the profile's `control_bus.kind`. */
  bus: Schema.optionalKey(Schema.Literals(["file", "kinesis"])),
  objectStoreRoot: Schema.optionalKey(Schema.String),
  scenarioId: Schema.optionalKey(Schema.String),
});

/** What to publish. */
export type PublishReadyRequest = typeof PublishReadyRequest.Type;

/** A request and the profile it is published under. */
export interface PublishReadyOptions extends PublishReadyRequest {
  readonly profile: Profile;
  /** Who publishes, for the capability policy (default: the runtime, `svc:<producer>`). */
  readonly principal?: string;
}

/** What `publish_ready` answers. */
export const PublishReadyResult = Schema.Struct({
  status: Schema.Literal("PUBLISHED"),
  message_id: Schema.String,
  platform_run_id: Schema.String,
  scenario_run_id: Schema.String,
  /** Relative to the object store root. */
  facts_view_ref: Schema.String,
  bus: Schema.Literals(["file", "kinesis"]),
  /** Absolute path of the READY message file (file bus). */
  bus_file: Schema.optionalKey(Schema.String),
  /** Where Kinesis put the record (Kinesis bus). */
  stream: Schema.optionalKey(Schema.String),
  shard_id: Schema.optionalKey(Schema.String),
  sequence_number: Schema.optionalKey(Schema.String),
});

/** What `publish_ready` answers. */
export type PublishReadyResult = typeof PublishReadyResult.Type;

/** The release this stand-in Scenario Runner signs its facts and READY with. */
export const PUBLISH_READY_RELEASE = "worldstream-publish-ready/0.1";

const checkPlatformRunId = decodeWith(PlatformRunId, "BAD_ARGS", "--platform-run-id");
const checkScenarioRunId = decodeWith(Hex32, "BAD_ARGS", "--scenario-run-id");
const checkFacts = decodeWith(RunFactsView, "FACTS_VIEW_INVALID", "run facts view");
const checkMessage = decodeWith(ReadyControlMessage, "READY_INVALID", "READY message");

/** Writes the run facts view of a world, then its READY on the file control bus. */
export const publishReady = Effect.fn("publishReady")(function* (
  options: PublishReadyOptions,
): Effect.fn.Return<PublishReadyResult, WorldstreamError> {
  const { profile } = options;
  yield* authorize(
    options.principal ?? servicePrincipal(profile.wiring.wsp_producer.producer_id),
    "ready.publish",
    { profile, source: "operator", detail: { engine_run_root: options.engineRunRoot } },
  );
  const now = yield* Clock.currentTimeMillis;
  const platformRunId = yield* checkPlatformRunId(
    options.platformRunId ?? platformRunIdAt(now),
  );
  const busKind = options.bus ?? profile.wiring.control_bus.kind;
  const busRoot = options.busRoot ?? profile.paths.controlBusRoot;
  const kinesis = kinesisBusOf(profile);
  if (busKind === "file" && busRoot === undefined) {
    return yield* fail(
      "BAD_ARGS",
      `Profile ${profile.profile_id} has no file control bus; give --bus-root`,
    );
  }
  if (busKind === "kinesis" && kinesis === undefined) {
    return yield* fail(
      "BAD_ARGS",
      `Profile ${profile.profile_id} has no Kinesis control bus (wiring.control_bus.kind: ` +
        "kinesis with a stream); --bus kinesis needs one",
    );
  }
  const topic = profile.wiring.control_bus.topic;
  if (topic !== CONTROL_BUS_TOPIC) {
    return yield* fail(
      "CONTROL_BUS_TOPIC_MISMATCH",
      `READY is published on ${CONTROL_BUS_TOPIC}; profile ${profile.profile_id} listens on ${topic}`,
    );
  }
  const objectStoreRoot = options.objectStoreRoot
    ? resolveRoot(options.objectStoreRoot)
    : platformStoreRoot(profile);

  const world = yield* resolveWorld(options.engineRunRoot, {
    strict: profile.policy.strict_world,
    requireGatePass: profile.policy.require_gate_pass,
    scenarioId: options.scenarioId || profile.wiring.oracle_scenario_id || undefined,
    interfacePackDir: profile.paths.interfacePack,
  }).pipe(Effect.provide(OracleStore.layerFor(profile)));
  const scenarioRunId = yield* checkScenarioRunId(
    options.scenarioRunId ??
      sha256Hex(`${platformRunId}|${world.engineRunRoot}`).slice(0, 32),
  );

  const selection = selectOutputIds(profile);
  const outputIds = [...new Set([...selection.traffic, ...selection.context])];
  const locators: Array<OutputLocator> = [];
  const gateIds = new Set<string>();
  for (const id of outputIds) {
    const output = yield* resolveOutput(world, id);
    output.entry.read_requires_gates.forEach((g) => gateIds.add(g));
    locators.push({
      output_id: id,
      path: `${dirname(renderTemplate(output.entry.path_template, world.worldKey))}/`,
      ...worldKeyFields(world),
      run_id: world.runReceipt.run_id,
      schema_ref: output.entry.schema_ref,
    });
  }
  const gates = yield* gateReceipts(world, [...gateIds].sort());

  const runConfigDigest = sha256Hex(canonicalJson({
    profile_id: profile.profile_id,
    policy_rev: profile.policy.policy_rev,
    engine_run_root: world.engineRunRoot,
    world_key: world.worldKey,
    traffic_output_ids: selection.traffic,
    context_output_ids: selection.context,
  }));
  // The evidence a READY vouches for: the same world and outputs give the same bundle.
  const bundleHash = sha256Hex(canonicalJson({
    engine_run_root: world.engineRunRoot,
    engine_run_id: world.runReceipt.run_id,
    world_key: world.worldKey,
    oracle_pack_id: world.manifest?.oracle_pack_id ?? null,
    locators,
    gate_receipts: gates.receipts,
  }));
  const provenance = {
    service_release_id: PUBLISH_READY_RELEASE,
    environment: profile.profile_id.slice(0, 64),
    config_revision: profile.policy.policy_rev.slice(0, 128),
    run_config_digest: runConfigDigest,
  };
  const oraclePackRef = packRef(world, profile, selection.traffic);
  const srPath = (kind: string, ext: string) =>
    `fraud-platform/${platformRunId}/sr/${kind}/${scenarioRunId}.${ext}`;
  const factsViewRef = srPath("run_facts_view", "json");

  const facts = yield* checkFacts(
    {
      run_id: scenarioRunId,
      platform_run_id: platformRunId,
      scenario_run_id: scenarioRunId,
      pins: {
        ...worldKeyFields(world),
        run_id: scenarioRunId,
        platform_run_id: platformRunId,
        scenario_run_id: scenarioRunId,
      },
      locators,
      output_roles: Object.fromEntries(
        outputIds.map((id) => [id, selection.traffic.includes(id) ? "traffic" : "context"]),
      ),
      intended_outputs: outputIds,
      gate_receipts: gates.receipts,
      policy_rev: {
        policy_id: `worldstream.${profile.profile_id}`,
        revision: profile.policy.policy_rev,
        content_digest: sha256Hex(canonicalJson(profile.policy)),
      },
      bundle_hash: bundleHash,
      plan_ref: srPath("run_plan", "json"),
      record_ref: srPath("run_record", "jsonl"),
      status_ref: srPath("run_status", "json"),
      run_config_digest: runConfigDigest,
      service_release_id: PUBLISH_READY_RELEASE,
      environment: provenance.environment,
      provenance,
      oracle_pack_ref: oraclePackRef,
      evidence_notes: [`published by ${PUBLISH_READY_RELEASE}`, ...gates.notes],
    } satisfies RunFactsView,
  );

  const ids = {
    platform_run_id: platformRunId,
    scenario_run_id: scenarioRunId,
    bundle_hash: bundleHash,
  };
  const messageId = readyMessageId(ids);
  const ready: RunReadySignal = {
    run_id: scenarioRunId,
    ...ids,
    facts_view_ref: factsViewRef,
    message_id: messageId,
    run_config_digest: runConfigDigest,
    service_release_id: PUBLISH_READY_RELEASE,
    environment: provenance.environment,
    provenance,
    manifest_fingerprint: world.worldKey.manifest_fingerprint,
    parameter_hash: world.worldKey.parameter_hash,
    scenario_id: world.worldKey.scenario_id,
    emitted_at_utc: microsUtc(now),
    oracle_pack_ref: oraclePackRef,
  };
  const message = yield* checkMessage({
    topic: CONTROL_BUS_TOPIC,
    message_id: messageId,
    published_at_utc: microsUtc(now),
    attributes: { kind: "READY", run_id: platformRunId },
    partition_key: platformRunId,
    payload: ready,
  });

  const writeFacts = Effect.scoped(
    openPlatformObjects(objectStoreRoot, objectStoreOptions(profile)).pipe(
      Effect.flatMap((store) => store.write(factsViewRef, `${JSON.stringify(facts, null, 2)}\n`)),
    ),
  );
  const published = {
    status: "PUBLISHED",
    message_id: messageId,
    platform_run_id: platformRunId,
    scenario_run_id: scenarioRunId,
    facts_view_ref: factsViewRef,
  } as const;
  // Facts first: a READY must never point at a view that is not there yet.
  if (busKind === "kinesis" && kinesis !== undefined) {
    return yield* Effect.gen(function* () {
      const bus = yield* KinesisBus;
      yield* bus.check;
      yield* writeFacts;
      const put = yield* bus.put(
        new TextEncoder().encode(canonicalJson(message)),
        message.partition_key || message.message_id,
      );
      return {
        ...published,
        bus: "kinesis",
        stream: kinesis.stream,
        shard_id: put.shardId,
        sequence_number: put.sequenceNumber,
      } satisfies PublishReadyResult;
    }).pipe(Effect.provide(KinesisBus.layer(kinesis)));
  }
  yield* writeFacts;
  const busFile = yield* publish(resolve(busRoot!), topic, message);
  return { ...published, bus: "file", bus_file: busFile } satisfies PublishReadyResult;
});

function worldKeyFields(world: World) {
  const key: WorldKey = world.worldKey;
  return {
    manifest_fingerprint: key.manifest_fingerprint,
    parameter_hash: key.parameter_hash,
    seed: key.seed,
    scenario_id: key.scenario_id,
  };
}

/** A PASS receipt per gate whose `_passed.flag` is present; absent flags become notes. */
function gateReceipts(world: World, gateIds: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    const receipts: Array<GateReceipt> = [];
    const notes: Array<string> = [];
    for (const gateId of gateIds) {
      const gate = world.pack.gates.get(gateId);
      if (gate === undefined) {
        notes.push(`gate ${gateId} is not in the gates map`);
        continue;
      }
      const template = gate.passed_flag_path_template;
      const flag = renderTemplate(template, world.worldKey);
      // The digest the flag holds, verified against its bundle (a bad flag fails the publish).
      const verified = yield* verifyGate(world.store, gate, world.worldKey);
      if (verified === undefined) {
        notes.push(`gate ${gateId} has no passed flag at ${flag}`);
        continue;
      }
      const digest = verified.digest;
      const key = world.worldKey;
      const uses = (field: keyof WorldKey) => template.includes(`{${field}}`);
      receipts.push({
        gate_id: gateId,
        status: "PASS",
        scope: {
          manifest_fingerprint: key.manifest_fingerprint,
          ...(uses("parameter_hash") ? { parameter_hash: key.parameter_hash } : {}),
          ...(uses("seed") ? { seed: key.seed } : {}),
          ...(uses("scenario_id") ? { scenario_id: key.scenario_id } : {}),
        },
        receipt_kind: "passed_flag",
        digest: { algo: "sha256", hex: digest },
        artifacts: {
          validation_bundle_root: `${verified.bundleRoot.replace(/\/?$/, "/")}`,
          passed_flag_path: flag,
        },
      });
    }
    return { receipts, notes };
  });
}

function packRef(
  world: World,
  profile: Profile,
  traffic: ReadonlyArray<string>,
): OraclePackRef {
  const configured = profile.wiring.oracle_stream_view_root;
  const viewRoot = configured
    ? resolveRoot(configured)
    : joinRoot(world.engineRunRoot, "stream_view", "ts_utc");
  const manifest = world.manifest;
  return {
    ...(manifest === undefined ? {} : {
      oracle_pack_id: manifest.oracle_pack_id,
      manifest_ref: joinRoot(world.engineRunRoot, "_oracle_pack_manifest.json"),
      // The manifest allows any release text; READY takes 1 to 256 characters.
      ...(manifest.engine_release.length >= 1 && manifest.engine_release.length <= 256
        ? { engine_release: manifest.engine_release }
        : {}),
    }),
    engine_run_root: world.engineRunRoot,
    scenario_id: world.worldKey.scenario_id,
    stream_view_root: viewRoot,
    stream_view_output_refs: Object.fromEntries(
      traffic.map((id) => [id, joinRoot(viewRoot, `output_id=${id}`)]),
    ),
  };
}

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (the clock has millisecond precision). */
function microsUtc(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}000Z`;
}

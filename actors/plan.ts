/**
 * The plan step of a run: from a RunRequested to a RunPlan, or a refusal with a reason code.
 *
 * Checks follow the platform's order (CONTRACTS.md): engine root, platform run id, the world
 * (receipt, scenario, world key, manifest, seal), the request's pins against it (a READY's),
 * output selection, gates, then the policy checks in `authorize` (the capability policy's
 * decision on `wsp.stream` for whoever asked, producer allowlist, privacy tier and its license),
 * then stream views (built when missing) and a reader per output after its checkpoint in
 * the run's scope. Policy, budgets and governance go in `authorize`, the one place every run
 * passes before anything is built or sent.
 */
import { Effect, Option, type Scope } from "effect";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { selectOutputIds } from "../core/profile.ts";
import { authorizePrivacy, type PrivacyGrant } from "../core/privacy.ts";
import type { Pseudonymizer } from "../core/pseudonymize.ts";
import type { World, WorldOutput } from "../stores/world.ts";
import { WorldCache } from "../stores/world_cache.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { ReplayWindow, RunPinned, RunRequested } from "../schemas/messages.ts";
import { OutputLocks } from "./output_locks.ts";
import { resumePoint } from "./wal/drain.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { type EnvelopePins, openEnvelopeReader } from "../stores/envelope_reader.ts";
import { buildStreamViewAt, viewDir } from "../stores/stream_view_build.ts";
import { checkView, streamViewId } from "../stores/stream_view_read.ts";
import {
  canonicalTs,
  seekWindow,
  type ViewWindow,
  type WindowBounds,
} from "../stores/view_seek.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import type { OwedReceipt } from "../stores/wal_records.ts";
import type { OracleStore } from "../stores/oracle.ts";
import { Wal } from "./wal/writer.ts";
import { Postgres } from "../stores/postgres.ts";
import type { JsonObject } from "../schemas/common.ts";
import { waitingApproval } from "./approvals.ts";
import { Journal } from "./journal.ts";
import { RunConfig } from "./run_config.ts";
import {
  ApprovalGrant,
  authorize as authorizeCapability,
  authorizeOrPark,
  servicePrincipal,
} from "./governance.ts";
import type { EnvelopeChunk, EnvelopeSource } from "./streamer.ts";

/** One output of a plan: its reader, opened after the output's checkpoint. */
export interface OutputPlan {
  readonly outputId: string;
  readonly source: EnvelopeSource;
  /** The first batch read (undefined when nothing is left), which sets the pacing origin. */
  readonly first: EnvelopeChunk | undefined;
  /** The checkpoint the output resumes after, if any. */
  readonly after: ViewPosition | undefined;
  /** The delivery receipt that checkpoint still owes (written first), if any. */
  readonly owed: OwedReceipt | undefined;
  /** Events left to stream. */
  readonly total: number;
  /** A replay's window in the view's sequence, `[fromSeq, toSeq)`. */
  readonly window?: ViewWindow;
}

/** What a run was checked and authorized to do, with its readers open. */
export interface RunPlan {
  readonly request: RunRequested;
  readonly world: World;
  readonly platformRunId: string;
  readonly scenarioRunId: string;
  /** The checkpoint scope (packKey) of the run. */
  readonly runKey: string;
  /** The producer id stamped into envelopes and receipts. */
  readonly producer: string;
  readonly outputIds: ReadonlyArray<string>;
  readonly outputs: ReadonlyArray<OutputPlan>;
}

/** A plan before authorization: the world and outputs checked, nothing built or opened. */
export interface PlanDraft {
  readonly world: World;
  readonly outputs: ReadonlyArray<WorldOutput>;
  readonly producer: string;
  /** The IG the run would send to. */
  readonly igBaseUrl: string;
  /** Who asks for the run (the capability policy's principal). */
  readonly principal: string;
  /** Where the request came from (`ready`, `operator`). */
  readonly source: string;
  /** The run's checkpoint scope. */
  readonly runKey: string;
  /** The READY envelope as submitted: parked as a pending approval when the policy asks for one. */
  readonly ready?: JsonObject;
  /** The approval the READY goes ahead under (its approved re-submission). */
  readonly approval?: { readonly approval_id: string; readonly by: string };
}

/**
 * What the plan step learned before it refused or a defect struck, so the caller's result and
 * receipt name what was known.
 */
export interface PlanNotes {
  engine_run_root: string | null;
  scenario_id: string | null;
  output_ids: string[];
  /** Set once the run has its checkpoint scope: from then on a defect still ends it receipted. */
  keyed?: { runKey: string; actor: string; platformRunId: string };
}

/**
 * The checkpoint scope of a replay: its own, named by its replay id, so a replay never moves the
 * checkpoint of the world's stream (nor another replay's).
 */
export function replayKey(world: World, replay: ReplayWindow): string {
  return sha256Hex(canonicalJson({ trace_id: world.traceId, replay_id: replay.replay_id }));
}

/** The checkpoint scope of a run: a new platform run starts from the first row. */
export function packKey(world: World, platformRunId: string, scenarioRunId: string): string {
  return sha256Hex(canonicalJson({
    trace_id: world.traceId,
    scenario_id: world.worldKey.scenario_id,
    platform_run_id: platformRunId,
    scenario_run_id: scenarioRunId,
  }));
}

/**
 * The policy checks of a run: the capability policy (`wsp.stream` for whoever asked, decided and
 * recorded by actors/governance.ts: POLICY_DENIED with the explanation, or REQUIRE_APPROVAL, see
 * below), producer allowlist, privacy tier and its license. Answers what the privacy tier grants
 * the run (its pseudonymizers). Budgets are enforced per hand-over (actors/budgets.ts).
 *
 * REQUIRE_APPROVAL: a READY (its envelope in the draft, and a Journal to park through) is parked
 * as a pending `wsp.stream` approval whose request is `{ready: <envelope>, run_key}` and the plan
 * fails APPROVAL_PENDING naming it; a READY of the same run while one waits gets that one, not a
 * second. Approving it submits the READY again with the approval (actions/approval_runners.ts),
 * which this door honours for exactly that request. Any other run fails APPROVAL_REQUIRED.
 */
export const authorize = Effect.fn("authorize")(function* (
  draft: PlanDraft,
): Effect.fn.Return<PrivacyGrant, WorldstreamError, RunConfig | Postgres | Wal> {
  const { profile } = yield* RunConfig;
  const context = {
    profile,
    source: draft.source,
    runKey: draft.runKey,
    detail: {
      engine_run_root: draft.world.engineRunRoot,
      output_ids: draft.outputs.map((o) => o.entry.output_id),
      ig: draft.igBaseUrl,
    },
  };
  const journal = yield* Effect.serviceOption(Journal);
  if (draft.ready === undefined || Option.isNone(journal)) {
    yield* authorizeCapability(draft.principal, "wsp.stream", context);
  } else {
    const request: JsonObject = { ready: draft.ready, run_key: draft.runKey };
    const sameRun = (parked: JsonObject) => parked.run_key === draft.runKey;
    const pg = yield* Postgres;
    const wal = yield* Wal;
    const door = authorizeOrPark(draft.principal, "wsp.stream", {
      ...context,
      request,
      waiting: waitingApproval("wsp.stream", sameRun).pipe(
        Effect.provideService(Postgres, pg),
        Effect.provideService(Wal, wal),
      ),
    }).pipe(Effect.provideService(Journal, journal.value));
    const grant = yield* (draft.approval === undefined ? door : door.pipe(
      Effect.provideService(ApprovalGrant, {
        capability: "wsp.stream",
        request,
        by: draft.approval.by,
        approval_id: draft.approval.approval_id,
      }),
    ));
    if (grant.status === "PENDING") {
      return yield* fail(
        "APPROVAL_PENDING",
        `The READY's wsp.stream waits for approval ${grant.approval.approval_id} until ` +
          `${grant.approval.expires_at}: ${grant.approval.reason}; nothing was sent`,
      );
    }
  }
  if (!profile.producerAllowlist.includes(draft.producer)) {
    return yield* fail(
      "PRODUCER_NOT_ALLOWED",
      `Producer ${draft.producer} is not in the allowlist`,
    );
  }
  return yield* authorizePrivacy(profile, {
    igBaseUrl: draft.igBaseUrl,
    outputIds: draft.outputs.map((o) => o.entry.output_id),
    rows: draft.world.pack.rows,
  });
});

/**
 * The world on disk is the one the request vouches for (a READY's pins): world key fields and,
 * when pinned, the oracle pack id, else WORLD_KEY_MISMATCH naming each field and both values.
 */
function checkPins(pins: RunPinned, world: World): Effect.Effect<void, WorldstreamError> {
  const onDisk: Record<keyof RunPinned, unknown> = {
    manifest_fingerprint: world.worldKey.manifest_fingerprint,
    parameter_hash: world.worldKey.parameter_hash,
    seed: world.worldKey.seed,
    scenario_id: world.worldKey.scenario_id,
    oracle_pack_id: world.manifest?.oracle_pack_id ?? "none (the world has no pack manifest)",
  };
  const differing = (Object.keys(onDisk) as Array<keyof RunPinned>).filter((k) =>
    pins[k] !== undefined && pins[k] !== onDisk[k]
  );
  return differing.length === 0 ? Effect.void : Effect.fail(fail(
    "WORLD_KEY_MISMATCH",
    `The world at ${world.engineRunRoot} is not the one the request pins: ${
      differing.map((k) => `${k} is ${onDisk[k]}, pinned ${pins[k]}`).join("; ")
    }`,
  ));
}

/**
 * Checks a request and plans its run: world, outputs, policy, then views (built when missing)
 * and readers (closed with the caller's scope).
 */
export function planRun(
  request: RunRequested,
  notes: PlanNotes,
): Effect.Effect<
  RunPlan,
  WorldstreamError,
  RunConfig | DuckDb | OracleStore | Wal | Postgres | Scope.Scope
> {
  return Effect.gen(function* () {
    const config = yield* RunConfig;
    const { profile } = config;
    const root = request.engine_run_root ?? profile.wiring.oracle_engine_run_root;
    if (!root) {
      return yield* fail("ENGINE_ROOT_MISSING", "No engine run root in the request or the profile");
    }
    const platformRunId = request.platform_run_id;
    if (!platformRunId) {
      return yield* fail("PLATFORM_RUN_ID_MISSING", "The run has no platform_run_id");
    }
    const scenarioRunId = request.scenario_run_id ??
      sha256Hex(`${platformRunId}|${root}`).slice(0, 32);

    // Checked once per runtime while nothing on disk changes (stores/world_cache.ts).
    const cache = yield* WorldCache;
    const world = yield* cache.world(root, {
      strict: profile.policy.strict_world,
      requireGatePass: profile.policy.require_gate_pass,
      interfacePackDir: profile.paths.interfacePack,
      ...(request.scenario_id ?? profile.wiring.oracle_scenario_id
        ? { scenarioId: request.scenario_id ?? profile.wiring.oracle_scenario_id }
        : {}),
    });
    notes.engine_run_root = world.engineRunRoot;
    notes.scenario_id = world.worldKey.scenario_id;
    if (request.pins !== undefined) yield* checkPins(request.pins, world);

    const selected = selectOutputIds(profile);
    const outputIds = request.output_ids ?? [...selected.traffic, ...selected.context];
    if (outputIds.length === 0) {
      return yield* fail("NO_TRAFFIC_OUTPUTS", "No output selected for streaming");
    }
    notes.output_ids = [...outputIds];
    const outputs = [];
    for (const id of outputIds) outputs.push(yield* cache.output(world, id));

    const producer = profile.wiring.wsp_producer.producer_id;
    if (request.replay !== undefined && outputIds.length !== 1) {
      return yield* fail("REPLAY_WINDOW_INVALID", "A replay names exactly one output");
    }
    const runKey = request.replay
      ? replayKey(world, request.replay)
      : packKey(world, platformRunId, scenarioRunId);
    const grant = yield* authorize({
      world,
      outputs,
      producer,
      igBaseUrl: config.courier.endpoint.baseUrl,
      principal: request.principal ?? servicePrincipal(producer),
      source: request.source,
      runKey,
      ...(request.ready === undefined ? {} : { ready: request.ready }),
      ...(request.approval === undefined ? {} : { approval: request.approval }),
    });

    notes.keyed = { runKey, actor: producer, platformRunId };
    const opened = [];
    for (const output of outputs) {
      opened.push(
        yield* openOutput(world, output, {
          runKey,
          platformRunId,
          scenarioRunId,
          producer,
          viewRoot: config.streamViewRoot(world.engineRunRoot),
          maxEnvelopeBytes: config.courier.maxBodyBytes,
          pseudonymize: grant.pseudonymizers.get(output.entry.output_id),
          ...(request.replay ? { replay: request.replay } : {}),
        }),
      );
    }
    return {
      request,
      world,
      platformRunId,
      scenarioRunId,
      runKey,
      producer,
      outputIds,
      outputs: opened,
    } satisfies RunPlan;
  });
}

/**
 * Builds an output's stream view when missing, then opens its reader after its checkpoint. A
 * build sorts on a DuckDB instance of its own, closed right after, so the memory the sort used
 * goes back before streaming starts instead of staying with the process for the whole run.
 */
function openOutput(
  world: World,
  output: WorldOutput,
  run: {
    runKey: string;
    platformRunId: string;
    scenarioRunId: string;
    producer: string;
    viewRoot: string;
    maxEnvelopeBytes?: number;
    pseudonymize?: Pseudonymizer | undefined;
    replay?: ReplayWindow;
  },
) {
  return Effect.gen(function* () {
    const duck = yield* DuckDb;
    const outputId = output.entry.output_id;
    const shape = world.pack.rows.get(outputId);
    if (shape === undefined) {
      return yield* fail(
        "ROW_SCHEMA_MISSING",
        `The interface pack has no row schema for ${outputId}`,
      );
    }
    const view = { root: run.viewRoot, dir: viewDir(run.viewRoot, outputId) };
    const built = yield* (yield* WorldCache).view(
      output,
      view,
      duck.apart(buildStreamViewAt({
        engineRunRoot: world.engineRunRoot,
        localRunRoot: world.store.localRoot,
        engineRunId: world.runReceipt.run_id,
        worldKey: world.worldKey,
        outputId,
        parts: output.parts,
        streamViewRoot: run.viewRoot,
        rowShape: shape,
      })),
    );
    const expected = {
      streamViewId: streamViewId({
        engineRunId: world.runReceipt.run_id,
        worldKey: world.worldKey,
        outputId,
      }),
      outputId,
      world: { engineRunId: world.runReceipt.run_id, worldKey: world.worldKey },
    };
    const window = run.replay === undefined
      ? undefined
      : yield* findWindow(built.view_dir, expected, run.replay, outputId);
    // Held until the run ends (its scope), taken before its checkpoint is read: a checkpoint
    // reset of this output cannot land in between (actors/output_locks.ts).
    yield* (yield* OutputLocks).hold(run.runKey, outputId);
    const resume = yield* resumePoint(run.runKey, outputId);
    // A replay starts at its window, or after its own checkpoint if it got that far already.
    const after = resume?.position ?? window?.after;
    const pins: EnvelopePins = {
      manifest_fingerprint: world.worldKey.manifest_fingerprint,
      parameter_hash: world.worldKey.parameter_hash,
      seed: world.worldKey.seed,
      scenario_id: world.worldKey.scenario_id,
      run_id: world.runReceipt.run_id,
      platform_run_id: run.platformRunId,
      scenario_run_id: run.scenarioRunId,
      producer: run.producer,
      trace_id: world.traceId,
      ...(world.manifest ? { span_id: world.manifest.engine_release } : {}),
      output_id: outputId,
    };
    const next = after ? after.seq + 1 : 0;
    const limit = window === undefined ? undefined : Math.max(0, window.toSeq - next);
    const cursor = yield* openEnvelopeReader(
      built.view_dir,
      expected,
      pins,
      {
        primaryKey: output.entry.primary_key,
        payloadColumns: shape.columns,
        undeclaredColumns: shape.additionalProperties,
        ...(after ? { after } : {}),
        ...(limit === undefined ? {} : { limit }),
        ...(window === undefined ? {} : { until: window.last }),
        ...(run.maxEnvelopeBytes === undefined ? {} : { maxEnvelopeBytes: run.maxEnvelopeBytes }),
        ...(run.pseudonymize === undefined ? {} : { pseudonymize: run.pseudonymize }),
      },
    );
    const source: EnvelopeSource = cursor;
    const first = yield* source.next;
    return {
      outputId,
      source,
      first,
      after,
      owed: resume?.owed,
      total: limit ?? cursor.rowCount - next,
      ...(window ? { window } : {}),
    } satisfies OutputPlan;
  });
}

/** The bounds a replay asks for, checked: a time window or a sequence range, not both. */
export function replayBounds(
  replay: Omit<ReplayWindow, "replay_id">,
): Effect.Effect<WindowBounds, WorldstreamError> {
  const hasTs = replay.from_ts !== undefined || replay.to_ts !== undefined;
  const hasSeq = replay.from_seq !== undefined || replay.to_seq !== undefined;
  if (hasTs === hasSeq) {
    return Effect.fail(fail(
      "REPLAY_WINDOW_INVALID",
      `A replay window needs from_ts and to_ts, or from_seq and to_seq (${
        hasTs ? "both were given" : "neither was given"
      })`,
    ));
  }
  if (hasTs) {
    const from = canonicalTs(replay.from_ts ?? "");
    const to = canonicalTs(replay.to_ts ?? "");
    if (from === undefined || to === undefined) {
      const bad = from === undefined ? ["from_ts", replay.from_ts] : ["to_ts", replay.to_ts];
      return Effect.fail(fail(
        "REPLAY_WINDOW_INVALID",
        `Replay ${bad[0]} ${
          JSON.stringify(bad[1] ?? null)
        } is not a UTC time like 2026-01-02T03:04:05.000000Z`,
      ));
    }
    if (from > to) {
      return Effect.fail(
        fail("REPLAY_WINDOW_REVERSED", `Replay from_ts ${from} is after to_ts ${to}`),
      );
    }
    return Effect.succeed({ from_ts: from, to_ts: to });
  }
  for (const [name, v] of [["from_seq", replay.from_seq], ["to_seq", replay.to_seq]] as const) {
    if (v === undefined || !Number.isSafeInteger(v) || v < 0) {
      return Effect.fail(fail(
        "REPLAY_WINDOW_INVALID",
        `Replay ${name} ${JSON.stringify(v ?? null)} is not a non-negative integer`,
      ));
    }
  }
  if (replay.from_seq! > replay.to_seq!) {
    return Effect.fail(fail(
      "REPLAY_WINDOW_REVERSED",
      `Replay from_seq ${replay.from_seq} is after to_seq ${replay.to_seq}`,
    ));
  }
  return Effect.succeed({ from_seq: replay.from_seq!, to_seq: replay.to_seq! });
}

/** Finds a replay's window in an output's view by seeking, never scanning from its start. */
function findWindow(
  dir: string,
  expected: Parameters<typeof checkView>[1],
  replay: ReplayWindow,
  outputId: string,
) {
  return Effect.scoped(Effect.gen(function* () {
    const bounds = yield* replayBounds(replay);
    const { rowCount, parts } = yield* checkView(dir, expected);
    const session = yield* (yield* DuckDb).session;
    return yield* seekWindow(session, parts, rowCount, bounds, `Replay of ${outputId}`);
  }));
}

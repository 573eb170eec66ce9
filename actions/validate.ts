/**
 * Action `validate`: the platform operator's checks of one profile, in one pass, each judged on
 * its own so a report names every problem at once rather than the first:
 *
 * 1. preflight: the profile loads; its dependencies answer (Postgres, the IG's health endpoint,
 *    the control bus, the object store root when it names one); the world resolves under the
 *    profile's policy (receipt, world key, the seal in strict profiles); every selected output's
 *    gates pass;
 * 2. `smoke_stream`: a bounded run (a few events per output, as fast as possible) of a platform
 *    run of its own, derived from the clock, so every validate is told apart at the gate;
 * 3. `resume`: a second bounded run of the same platform run continues after the first one's
 *    checkpoint, re-sending at most the crash bound;
 * 4. failure paths: a producer the allowlist does not name is refused before any event leaves
 *    (PRODUCER_NOT_ALLOWED, nothing emitted), and the world seen with one gate flag hidden fails
 *    closed (GATE_PASS_MISSING). The hiding is a view over the store, so the world is never
 *    touched.
 *
 * A check whose premise failed (no world, the gate down) is SKIPPED with VALIDATE_SKIPPED naming
 * it; the result is PASSED only when every check passed.
 */
import { Clock, Effect, type Scope } from "effect";
import { kinesisBusOf, loadProfile, type Profile, selectOutputIds } from "../core/profile.ts";
import { outputEntry, renderTemplate } from "../core/catalogue.ts";
import { platformRunIdAt } from "../core/platform_ids.ts";
import { isUrlRoot, parseS3Root } from "../core/store_root.ts";
import { checkDependencies } from "../actors/bootstrap.ts";
import { runConfigOf, type RunConfigShape } from "../actors/run_config.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import type { ReasonCode } from "../schemas/reasons.ts";
import type { OutputResult, RunRequested, StreamResult } from "../schemas/messages.ts";
import { objectStoreOptions, type OracleRoot, OracleStore } from "../stores/oracle.ts";
import { makeS3 } from "../stores/s3_client.ts";
import { KinesisBus } from "../stores/control_bus_kinesis.ts";
import { resolveOutput, resolveWorld, type World } from "../stores/world.ts";
import { streamWorld } from "./stream_world.ts";

/** How a check ended. */
export type CheckStatus = "PASSED" | "FAILED" | "SKIPPED";

/** One check's outcome: `detail` is the one line a person reads, `facts` what a script reads. */
export interface Check {
  readonly name: string;
  readonly status: CheckStatus;
  readonly reason?: ReasonCode;
  readonly detail: string;
  readonly facts?: Readonly<Record<string, unknown>>;
}

/** The result line of `validate`. */
export interface ValidateResult {
  readonly status: "PASSED" | "FAILED";
  readonly reason: ReasonCode | null;
  readonly profile: string;
  readonly engine_run_root: string | null;
  readonly platform_run_id: string | null;
  readonly checks: ReadonlyArray<Check>;
}

/** What the local profile brings when nothing is given (the `run` command's demo defaults). */
export interface LocalDefaults {
  readonly igUrl?: string;
  readonly engineRunRoot?: string;
}

export interface ValidateOptions {
  /** Profile name or path. */
  readonly profile: string;
  readonly engineRunRoot?: string;
  readonly igUrl?: string;
  /** Events per output in each bounded run. */
  readonly smokeEvents: number;
  /**
   * For a profile that names neither world nor gate (the local one), what to use instead, e.g. the
   * demo world and an in-process gate; started in the caller's scope.
   */
  readonly defaults?: (
    profile: Profile,
    wanted: { readonly igUrl: boolean; readonly engineRunRoot: boolean },
  ) => Effect.Effect<LocalDefaults, WorldstreamError, Scope.Scope>;
}

const passed = (name: string, detail: string, facts?: Record<string, unknown>): Check => ({
  name,
  status: "PASSED",
  detail,
  ...(facts ? { facts } : {}),
});

const failed = (
  name: string,
  reason: ReasonCode,
  detail: string,
  facts?: Record<string, unknown>,
): Check => ({ name, status: "FAILED", reason, detail, ...(facts ? { facts } : {}) });

const skipped = (name: string, because: ReadonlyArray<string>): Check => ({
  name,
  status: "SKIPPED",
  reason: "VALIDATE_SKIPPED",
  detail: `Not run: it needs the ${because.join(", ")} check(s) to pass`,
});

const fromError = (name: string, e: WorldstreamError): Check => failed(name, e.reason, e.message);

/** Runs every check (see the file comment) and answers the report; it never fails itself. */
export function validate(
  options: ValidateOptions,
): Effect.Effect<ValidateResult, never, Scope.Scope> {
  return Effect.gen(function* () {
    const checks: Array<Check> = [];
    const loaded = yield* Effect.result(loadProfile(options.profile));
    if (loaded._tag === "Failure") {
      checks.push(fromError("profile", loaded.failure));
      return report(options.profile, null, null, checks);
    }
    const profile = loaded.success;
    checks.push(passed("profile", `${profile.source} (${profile.profile_id})`));

    const given = options.engineRunRoot ?? (profile.wiring.oracle_engine_run_root || undefined);
    const wanted = { igUrl: options.igUrl === undefined, engineRunRoot: given === undefined };
    const local = options.defaults === undefined || (!wanted.igUrl && !wanted.engineRunRoot)
      ? {}
      : yield* Effect.result(options.defaults(profile, wanted)).pipe(
        Effect.map((r) => {
          if (r._tag === "Success") return r.success;
          checks.push(fromError("local_defaults", r.failure));
          return {};
        }),
      );
    const igUrl = options.igUrl ?? local.igUrl;
    const root = given ?? local.engineRunRoot;
    // Streams as fast as possible: the smoke is about delivery, not pacing.
    const config = runConfigOf(profile, { ...(igUrl ? { igUrl } : {}), speedup: 0 });

    const deps = yield* dependencyChecks(profile, config);
    checks.push(...deps);
    const worldCheck = yield* worldChecks(profile, root);
    checks.push(...worldCheck.checks);
    const world = worldCheck.world;
    const down = failedNames(deps).filter((name) => STREAM_NEEDS.has(name));
    const noWorld = world === undefined ? failedNames(worldCheck.checks) : [];
    // The refusal goes through the runtime, which opens Postgres; it needs no gate.
    const noRuntime = [...noWorld, ...down.filter((name) => name === "postgres")];

    const now = yield* Clock.currentTimeMillis;
    const platformRunId = platformRunIdAt(now);
    if (world === undefined || down.length > 0) {
      const because = [...noWorld, ...down];
      checks.push(skipped("smoke_stream", because), skipped("resume", because));
    } else {
      const request: RunRequested = {
        _tag: "RunRequested",
        source: "operator",
        platform_run_id: platformRunId,
        engine_run_root: world.engineRunRoot,
        max_events_per_output: options.smokeEvents,
      };
      const first = yield* runOnce(config, request);
      const smoke = judgeSmoke(first, options.smokeEvents);
      checks.push(smoke);
      if (smoke.status !== "PASSED" || first instanceof WorldstreamError) {
        checks.push(skipped("resume", ["smoke_stream"]));
      } else {
        const second = yield* runOnce(config, request);
        checks.push(judgeResume(first, second, crashBound(config, first)));
      }
    }

    if (world === undefined || noRuntime.length > 0) {
      checks.push(skipped("producer_not_allowed", noRuntime));
    } else {
      // A platform run of its own (a second earlier), so the refusal is not the smoke run's.
      const refusedRunId = platformRunIdAt(now - 1000);
      checks.push(yield* refusedProducer(profile, config, world, refusedRunId));
    }
    checks.push(
      world === undefined
        ? skipped("gate_flag_missing", noWorld)
        : yield* hiddenGateFlag(profile, world),
    );
    return report(profile.source, world?.engineRunRoot ?? null, platformRunId, checks);
  });
}

function report(
  profile: string,
  root: string | null,
  platformRunId: string | null,
  checks: ReadonlyArray<Check>,
): ValidateResult {
  const ok = checks.every((c) => c.status === "PASSED");
  return {
    status: ok ? "PASSED" : "FAILED",
    reason: ok ? null : "VALIDATION_FAILED",
    profile,
    engine_run_root: root,
    platform_run_id: platformRunId,
    checks,
  };
}

const failedNames = (checks: ReadonlyArray<Check>) =>
  checks.filter((c) => c.status !== "PASSED").map((c) => c.name);

/** Dependencies without which a run cannot deliver. */
const STREAM_NEEDS: ReadonlySet<string> = new Set(["postgres", "ig"]);

/** Postgres, the IG, the control bus and the object store root, as the profile names them. */
function dependencyChecks(profile: Profile, config: RunConfigShape) {
  return Effect.gen(function* () {
    const report = yield* checkDependencies(profile, config.courier.endpoint);
    const byName = new Map(report.map((d) => [d.name, d]));
    const out: Array<Check> = [];
    const pg = byName.get("postgres");
    if (pg) {
      out.push(
        pg.ok
          ? passed("postgres", pg.detail)
          : failed("postgres", "PG_UNAVAILABLE", `Postgres at ${pg.detail} did not answer`),
      );
    }
    const ig = byName.get("ig");
    if (ig) {
      out.push(
        ig.ok ? passed("ig", `${ig.detail} answers its health endpoint`) : failed(
          "ig",
          "IG_UNREACHABLE",
          `The gate at ${ig.detail} did not answer its health endpoint`,
        ),
      );
    }
    out.push(yield* controlBusCheck(profile, byName.get("control_bus")?.ok ?? false));
    const objectStore = yield* objectStoreCheck(profile);
    if (objectStore) out.push(objectStore);
    return out;
  });
}

/** The control bus the profile names: each kind is checked its own way. */
function controlBusCheck(profile: Profile, folderUsable: boolean): Effect.Effect<Check> {
  const bus = profile.wiring.control_bus;
  switch (bus.kind) {
    case "file":
      return Effect.succeed(
        folderUsable
          ? passed("control_bus", `file bus at ${profile.paths.controlBusRoot}`)
          : failed(
            "control_bus",
            "CONTROL_BUS_UNREADABLE",
            `The control bus folder ${profile.paths.controlBusRoot} cannot be made or read`,
          ),
      );
    case "kinesis": {
      const config = kinesisBusOf(profile);
      if (config === undefined) {
        return Effect.succeed(
          failed("control_bus", "CONTROL_BUS_STREAM_MISSING", "The Kinesis bus names no stream"),
        );
      }
      // The stream must exist and answer (CONTROL_BUS_STREAM_MISSING, CONTROL_BUS_UNAVAILABLE).
      return Effect.gen(function* () {
        yield* (yield* KinesisBus).check;
      }).pipe(
        Effect.as(passed("control_bus", `Kinesis stream ${config.stream} answers`)),
        Effect.catch((e) => Effect.succeed(failed("control_bus", e.reason, e.message))),
        Effect.provide(KinesisBus.layer(config)),
      );
    }
    default: {
      // A bus kind the profile schema accepts must be checked here: this stops compiling.
      const unchecked: never = bus.kind;
      return unchecked;
    }
  }
}

/** The object store root (`wiring.object_store.root`), when the profile names one. */
function objectStoreCheck(profile: Profile): Effect.Effect<Check | undefined> {
  const options = objectStoreOptions(profile);
  const root = options.root;
  if (root === undefined) return Effect.succeed(undefined);
  if (!isUrlRoot(root)) {
    return Effect.promise(() => Deno.stat(root).then((s) => s.isDirectory, () => false)).pipe(
      Effect.map((ok) =>
        ok ? passed("object_store", `folder ${root}`) : failed(
          "object_store",
          "ENGINE_ROOT_MISSING",
          `The object store root ${root} is not a folder`,
        )
      ),
    );
  }
  const parsed = parseS3Root(root);
  if (parsed instanceof WorldstreamError) return Effect.succeed(fromError("object_store", parsed));
  return Effect.acquireUseRelease(
    Effect.sync(() => makeS3(options)),
    // A listing of a prefix that holds nothing still needs the bucket and the credentials.
    (s3) => s3.list(parsed.bucket, `${parsed.prefix}${parsed.prefix ? "/" : ""}_validate_probe/`),
    (s3) => Effect.sync(() => s3.close()),
  ).pipe(
    Effect.map(() => passed("object_store", `${root} (${options.endpoint ?? "AWS S3"}) answers`)),
    Effect.catch((e) => Effect.succeed(fromError("object_store", e))),
  );
}

/** The world (receipt, key, seal in strict profiles) and the gates of every selected output. */
function worldChecks(profile: Profile, root: string | undefined) {
  return Effect.gen(function* () {
    if (root === undefined) {
      return {
        world: undefined,
        checks: [failed(
          "world",
          "ENGINE_ROOT_MISSING",
          `The ${profile.profile_id} profile names no world: give --engine-run-root`,
        )],
      };
    }
    const resolved = yield* Effect.result(resolveWorld(root, worldOptions(profile)));
    if (resolved._tag === "Failure") {
      return { world: undefined, checks: [fromError("world", resolved.failure)] };
    }
    const world = resolved.success;
    const worldCheck = passed(
      "world",
      `${world.engineRunRoot}: scenario ${world.worldKey.scenario_id}, ${
        world.sealed ? "sealed" : "not sealed"
      }${profile.policy.strict_world ? " (strict)" : ""}`,
      { sealed: world.sealed, strict: profile.policy.strict_world },
    );
    const selected = selectOutputIds(profile);
    const ids = [...selected.traffic, ...selected.context];
    const gated: Array<string> = [];
    for (const id of ids) {
      const output = yield* Effect.result(resolveOutput(world, id));
      if (output._tag === "Failure") {
        return { world: undefined, checks: [worldCheck, fromError("gates", output.failure)] };
      }
      gated.push(...output.success.entry.read_requires_gates);
    }
    const gates = [...new Set(gated)];
    const gatesCheck = profile.policy.require_gate_pass
      ? passed("gates", `${gates.length} gate(s) of ${ids.length} output(s) pass`, { gates })
      : failed(
        "gates",
        "GATE_PASS_MISSING",
        `The ${profile.profile_id} profile does not require gate flags (policy.require_gate_pass)`,
      );
    return { world, checks: [worldCheck, gatesCheck] };
  }).pipe(
    Effect.provide(OracleStore.layerFor(profile)),
    Effect.catch((e) => Effect.succeed({ world: undefined, checks: [fromError("world", e)] })),
  );
}

function worldOptions(profile: Profile) {
  return {
    strict: profile.policy.strict_world,
    requireGatePass: profile.policy.require_gate_pass,
    interfacePackDir: profile.paths.interfacePack,
    ...(profile.wiring.oracle_scenario_id ? { scenarioId: profile.wiring.oracle_scenario_id } : {}),
  };
}

/** One bounded run; a failure to start it at all is the answer too. */
function runOnce(config: RunConfigShape, request: RunRequested) {
  return streamWorld(config, request).pipe(Effect.catch((e) => Effect.succeed(e)));
}

/** What a clean restart may re-send at most: per output, what was in flight plus one commit. */
export function crashBound(config: RunConfigShape, result: StreamResult): number {
  const outputs = result.outputs?.length ?? 0;
  return outputs * (config.courier.maxInFlight + 1) * config.courier.batchSize;
}

const totals = (outputs: ReadonlyArray<OutputResult>) => ({
  emitted: outputs.reduce((n, o) => n + o.emitted, 0),
  admitted: outputs.reduce((n, o) => n + o.admitted, 0),
  duplicate: outputs.reduce((n, o) => n + o.duplicate, 0),
  quarantined: outputs.reduce((n, o) => n + o.quarantined, 0),
});

/** The first bounded run streamed, every output at most `perOutput` events, all delivered. */
export function judgeSmoke(result: StreamResult | WorldstreamError, perOutput: number): Check {
  const name = "smoke_stream";
  if (result instanceof WorldstreamError) return fromError(name, result);
  if (result.status !== "STREAMED") {
    return failed(
      name,
      (result.reason ?? "SMOKE_STREAM_INCOMPLETE") as ReasonCode,
      `The bounded run ended ${result.status}: ${result.message ?? result.reason}`,
    );
  }
  const outputs = result.outputs ?? [];
  const t = totals(outputs);
  const facts = { platform_run_id: result.platform_run_id, ...t, per_output: perOutput };
  const over = outputs.filter((o) => o.emitted > perOutput).map((o) => o.output_id);
  const undelivered = outputs.filter((o) =>
    o.admitted + o.duplicate + o.quarantined + o.dead_lettered !== o.emitted
  ).map((o) => o.output_id);
  if (t.emitted === 0 || over.length > 0 || undelivered.length > 0) {
    return failed(
      name,
      "SMOKE_STREAM_INCOMPLETE",
      t.emitted === 0
        ? "The bounded run emitted no event"
        : over.length > 0
        ? `Outputs ${over.join(", ")} emitted more than the bound of ${perOutput}`
        : `Outputs ${undelivered.join(", ")} have events the gate did not answer`,
      facts,
    );
  }
  return passed(
    name,
    `${t.emitted} event(s) over ${outputs.length} output(s) into the gate as ${result.platform_run_id}: ${t.admitted} admitted, ${t.duplicate} duplicate, ${t.quarantined} quarantined`,
    facts,
  );
}

/**
 * The second run of the same platform run continued where the first stopped: each output resumed
 * after the first run's last event, re-sending at most `bound` events as duplicates.
 */
export function judgeResume(
  first: StreamResult,
  second: StreamResult | WorldstreamError,
  bound: number,
): Check {
  const name = "resume";
  if (second instanceof WorldstreamError) return fromError(name, second);
  if (second.status !== "STREAMED") {
    return failed(
      name,
      (second.reason ?? "RESUME_NOT_CONTINUED") as ReasonCode,
      `The second run ended ${second.status}: ${second.message ?? second.reason}`,
    );
  }
  const after = new Map((second.outputs ?? []).map((o) => [o.output_id, o]));
  const wrong: Array<string> = [];
  for (const o of first.outputs ?? []) {
    const expected = o.emitted === 0 ? null : o.emitted - 1;
    const got = after.get(o.output_id)?.resumed_from_seq ?? null;
    if (got !== expected) wrong.push(`${o.output_id} resumed from ${got}, expected ${expected}`);
  }
  const t = totals(second.outputs ?? []);
  const facts = {
    resumed_from_seq: Object.fromEntries(
      [...after].map(([id, o]) => [id, o.resumed_from_seq]),
    ),
    ...t,
    crash_bound: bound,
  };
  if (wrong.length > 0) {
    return failed(name, "RESUME_NOT_CONTINUED", wrong.join("; "), facts);
  }
  if (t.duplicate > bound) {
    return failed(
      name,
      "RESUME_NOT_CONTINUED",
      `The second run re-sent ${t.duplicate} event(s), more than the crash bound of ${bound}`,
      facts,
    );
  }
  return passed(
    name,
    `The second run resumed each output after the first's last event: ${t.admitted} more admitted, ${t.duplicate} duplicate (bound ${bound})`,
    facts,
  );
}

/** A producer the allowlist does not name: the run is refused and emits nothing. */
function refusedProducer(
  profile: Profile,
  config: RunConfigShape,
  world: World,
  refusedRunId: string,
) {
  const producer = profile.wiring.wsp_producer.producer_id;
  const narrowed: Profile = {
    ...profile,
    producerAllowlist: profile.producerAllowlist.filter((p) => p !== producer),
  };
  const request: RunRequested = {
    _tag: "RunRequested",
    source: "operator",
    platform_run_id: refusedRunId,
    engine_run_root: world.engineRunRoot,
    max_events_per_output: 1,
  };
  return runOnce({ ...config, profile: narrowed }, request).pipe(
    Effect.map((r) => judgeRefusal(producer, r)),
  );
}

/** The run without its producer on the allowlist failed PRODUCER_NOT_ALLOWED, nothing sent. */
export function judgeRefusal(producer: string, result: StreamResult | WorldstreamError): Check {
  const name = "producer_not_allowed";
  const reason = result instanceof WorldstreamError ? result.reason : result.reason;
  const emitted = result instanceof WorldstreamError ? 0 : result.emitted;
  if (reason === "PRODUCER_NOT_ALLOWED" && emitted === 0) {
    return passed(name, `Producer ${producer} off the allowlist: refused, 0 events sent`, {
      emitted,
    });
  }
  return failed(
    name,
    "REFUSAL_MISSING",
    `A run whose producer ${producer} is off the allowlist ended ${
      result instanceof WorldstreamError ? "FAILED" : result.status
    } (${reason ?? "no reason"}) with ${emitted} event(s) sent, not PRODUCER_NOT_ALLOWED with none`,
    { emitted, reason },
  );
}

/** The world seen without one gate flag it needs fails closed. */
function hiddenGateFlag(profile: Profile, world: World): Effect.Effect<Check> {
  const name = "gate_flag_missing";
  return Effect.gen(function* () {
    const selected = selectOutputIds(profile);
    const ids = [...selected.traffic, ...selected.context];
    let target: { outputId: string; flag: string } | undefined;
    for (const id of ids) {
      const entry = yield* outputEntry(world.pack, id);
      const gate = entry.read_requires_gates.map((g) => world.pack.gates.get(g)).find((g) =>
        g !== undefined
      );
      if (gate) {
        target = {
          outputId: id,
          flag: renderTemplate(gate.passed_flag_path_template, world.worldKey),
        };
        break;
      }
    }
    if (target === undefined) {
      return failed(name, "REFUSAL_MISSING", `No selected output reads under a gate`);
    }
    const { outputId, flag } = target;
    const outcome = yield* Effect.result(
      Effect.gen(function* () {
        const hiding = hidingStore(yield* OracleStore, flag);
        return yield* resolveWorld(world.engineRunRoot, worldOptions(profile)).pipe(
          Effect.flatMap((w) => resolveOutput(w, outputId)),
          Effect.provideService(OracleStore, hiding),
        );
      }).pipe(Effect.provide(OracleStore.layerFor(profile))),
    );
    if (outcome._tag === "Failure" && outcome.failure.reason === "GATE_PASS_MISSING") {
      return passed(name, `Without ${flag}, ${outputId} is refused: ${outcome.failure.message}`);
    }
    return failed(
      name,
      "REFUSAL_MISSING",
      `Without ${flag}, ${outputId} ${
        outcome._tag === "Failure"
          ? `failed ${outcome.failure.reason}, not GATE_PASS_MISSING`
          : "still resolved"
      }`,
    );
  }).pipe(Effect.catch((e) => Effect.succeed(fromError(name, e))));
}

/** `store`, with `hidden` reading as absent in every root it opens. */
function hidingStore(store: OracleStore["Service"], hidden: string) {
  const is = (rel: string) => rel.replace(/^\.?\/+/, "") === hidden;
  const hide = (root: OracleRoot): OracleRoot => ({
    ...root,
    readText: (rel) => is(rel) ? Effect.succeed(undefined) : root.readText(rel),
    readBytes: (rel) => is(rel) ? Effect.succeed(undefined) : root.readBytes(rel),
    exists: (rel) => is(rel) ? Effect.succeed(false) : root.exists(rel),
    digest: (rel) =>
      is(rel) ? Effect.fail(fail("ORACLE_READ_FAILED", `${rel} is hidden`)) : root.digest(rel),
  });
  return OracleStore.of({ open: (r) => store.open(r).pipe(Effect.map(hide)), views: store.views });
}

/**
 * `worldstream sort`: resolves a world and builds the stream view of each chosen output.
 * The last stdout line is the result JSON; exit 0 only when status is OK.
 */
import { Effect, type Layer } from "effect";
import { joinRoot, resolveRoot } from "../core/store_root.ts";
import { loadProfile, type Profile, selectOutputIds } from "../core/profile.ts";
import { resolveOutput, resolveWorld, type WorldOptions } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import { type ProgressItem, withProgress } from "../core/progress.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type BuildResult, buildStreamViewAt } from "../stores/stream_view_build.ts";
import { parseFlags, profileFlag, uniqueListFlag } from "./args.ts";
import type { Command } from "./commands.ts";

/** What to sort and how strictly. */
export interface SortOptions extends WorldOptions {
  readonly engineRunRoot: string;
  readonly outputIds: ReadonlyArray<string>;
  /** Defaults to `<engine run root>/stream_view/ts_utc`. */
  readonly streamViewRoot?: string;
  readonly repair?: boolean;
  /** The oracle store (default: local folders only). */
  readonly store?: Layer.Layer<OracleStore, WorldstreamError>;
}

/** The `sort` result line. */
export interface SortResult {
  readonly status: "OK" | "FAILED";
  readonly reason?: string;
  readonly message?: string;
  readonly outputs: ReadonlyArray<Omit<BuildResult, "view_dir">>;
}

/** Builds every requested view; the first failure stops the run and names its reason. */
export const sortWorld = Effect.fn("sortWorld")(function* (options: SortOptions) {
  const outputs: Array<Omit<BuildResult, "view_dir">> = [];
  const run = Effect.gen(function* () {
    const world = yield* resolveWorld(options.engineRunRoot, options);
    if (options.outputIds.length === 0) {
      return yield* fail("NO_TRAFFIC_OUTPUTS", "No output ids were requested");
    }
    const viewRoot = options.streamViewRoot ??
      joinRoot(world.engineRunRoot, "stream_view", "ts_utc");
    // Check every output before building any, so a bad id leaves nothing half-done.
    const resolved = [];
    for (const id of options.outputIds) {
      const output = yield* resolveOutput(world, id);
      const shape = world.pack.rows.get(output.entry.output_id);
      if (shape === undefined) {
        return yield* fail("ROW_SCHEMA_MISSING", `The interface pack has no row schema for ${id}`);
      }
      resolved.push({ output, shape });
    }
    for (const { output, shape } of resolved) {
      const id = output.entry.output_id;
      // DuckDB reports the sort's progress in percent; the rows are the raw parts' count.
      let sorted: ProgressItem | undefined;
      const onProgress = (pct: number, rows: number) =>
        Effect.sync(() =>
          void (sorted = { id, done: Math.round((pct / 100) * rows), total: rows })
        );
      const build = buildStreamViewAt({
        engineRunRoot: world.engineRunRoot,
        localRunRoot: world.store.localRoot,
        engineRunId: world.runReceipt.run_id,
        worldKey: world.worldKey,
        outputId: id,
        parts: output.parts,
        streamViewRoot: viewRoot,
        rowShape: shape,
      }, { repair: options.repair, onProgress });
      const result = yield* withProgress(Effect.sync(() => sorted ? [sorted] : []), build, {
        final: (r) => [{ id, done: r.row_count, total: r.row_count }],
      });
      yield* Effect.logInfo("stream view ready").pipe(
        Effect.annotateLogs({ output_id: id, status: result.status, rows: result.row_count }),
      );
      const { view_dir: _, ...line } = result;
      outputs.push(line);
    }
  });
  return yield* run.pipe(
    Effect.provide(options.store ?? OracleStore.layer),
    Effect.as<SortResult>({ status: "OK", outputs }),
    Effect.catch((e: WorldstreamError) =>
      Effect.succeed<SortResult>({
        status: "FAILED",
        reason: e.reason,
        message: e.message,
        outputs,
      })
    ),
  );
});

/** `worldstream sort [--engine-run-root R] [--output-ids A,B] [--repair]`. */
export const sortCommand: Command = (argv) =>
  Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      "engine-run-root": "string",
      "output-ids": "string",
      "scenario-id": "string",
      profile: "string",
      repair: "boolean",
    });
    const outputIds = yield* uniqueListFlag(flags, "output-ids");
    const profile = yield* loadProfile(profileFlag(flags));
    const root = flags["engine-run-root"] ?? profile.wiring.oracle_engine_run_root;
    if (typeof root !== "string" || root === "") {
      return yield* fail(
        "ENGINE_ROOT_MISSING",
        "Give --engine-run-root (or set ORACLE_ENGINE_RUN_ROOT)",
      );
    }
    return yield* sortWith(profile, root, {
      outputIds,
      scenarioId: flags["scenario-id"] as string | undefined,
      repair: flags.repair === true,
    });
  });

function sortWith(
  profile: Profile,
  root: string,
  options: { outputIds?: ReadonlyArray<string>; scenarioId?: string; repair?: boolean },
) {
  const selected = selectOutputIds(profile);
  const outputIds = options.outputIds ?? [...selected.traffic, ...selected.context];
  const viewRoot = profile.wiring.oracle_stream_view_root;
  return sortWorld({
    engineRunRoot: resolveRoot(root),
    outputIds,
    strict: profile.policy.strict_world,
    requireGatePass: profile.policy.require_gate_pass,
    scenarioId: options.scenarioId ?? profile.wiring.oracle_scenario_id,
    interfacePackDir: profile.paths.interfacePack,
    ...(viewRoot ? { streamViewRoot: resolveRoot(viewRoot) } : {}),
    repair: options.repair,
    store: OracleStore.layerFor(profile),
  }).pipe(Effect.map((result) => ({ line: { ...result }, ok: result.status === "OK" })));
}

/**
 * `worldstream run [--once] [--profile P] [--engine-run-root DIR]`: the service. It serves the
 * control bus (every READY on it is checked and streamed by the supervisor) until SIGINT/SIGTERM,
 * then drains and exits 0, as a container expects.
 *
 * What it publishes itself, by case:
 * - `--engine-run-root DIR` (any profile): DIR must hold a world (`gen-world` makes one); it is
 *   checked first (ENGINE_ROOT_MISSING, RUN_RECEIPT_UNREADABLE, … otherwise) and a READY is
 *   published for it. Nothing is ever generated into DIR.
 * - the `local` profile with no world given (neither the flag nor `oracle_engine_run_root`): the
 *   demo world under the runs root (generated on first use) and its READY, streamed paced so that
 *   its five days take about 30 s, with the reference IG started in process on loopback.
 * - `local` with the profile's `oracle_engine_run_root`: a READY for that world.
 * - any other profile with no `--engine-run-root`: nothing; it only serves the bus.
 *
 * `--once` exits after the run of its own READY, with that run's status as the exit code (0
 * STREAMED or SKIPPED_DUPLICATE, 3 with dead letters, 1 otherwise); it needs a world.
 *
 * `--admin-port P` (or the profile's `wiring.admin.port`) serves the admin API (api/app.ts, the
 * modules of api/modules.ts) on 127.0.0.1:P (or `wiring.admin.host`) for the runtime's whole
 * life: `/healthz` and `/readyz` from before the start-up checks (readiness says `down` until they
 * pass), the `/v1` routes once the runtime is built (503 ADMIN_STARTING before), until shutdown.
 * Its bearer tokens come from the environment (api/auth.ts); on the `local` profile without
 * WORLDSTREAM_ADMIN_TOKEN one is made and printed once to stderr, any other profile refuses to
 * start without it (ADMIN_TOKEN_MISSING), before anything is opened.
 */
import { Deferred, Effect, Schedule } from "effect";
import { join } from "node:path";
import { loadProfile, type Profile } from "../core/profile.ts";
import { checkPrivacyAtStart } from "../core/privacy.ts";
import { adminApp } from "../api/app.ts";
import { adminTokens } from "../api/auth.ts";
import { ADMIN_MODULES } from "../api/modules.ts";
import { serveAdmin } from "../api/server.ts";
import { RuntimeSlot } from "../api/services.ts";
import { bootstrap } from "../actors/bootstrap.ts";
import { Health } from "../actors/health.ts";
import { Metrics } from "../actors/metrics.ts";
import { ControlBus, type ReadySettlement } from "../actors/control_bus.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { runtimeLayer } from "../actors/runtime.ts";
import { Shutdown } from "../actors/shutdown.ts";
import { Supervisor } from "../actors/supervisor.ts";
import { startIg } from "../ig/server.ts";
import { genWorld } from "../actions/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { resolveWorld } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import { fail } from "../schemas/errors.ts";
import { httpUrlFlag, intFlag, numberFlag, parseFlags, profileFlag } from "./args.ts";
import { EXIT_CODES, type Outcome } from "./commands.ts";
import { publishReady } from "../actions/publish_ready.ts";
import { withProgressDisplay } from "./stream.ts";

/** Events in the demo world the `run` command makes on first use. */
export const DEMO_EVENTS = 20_000;

/** The demo world spans about five days of event time: this replays it in about 30 s. */
export const DEMO_SPEEDUP = 14_400;

/** The `run` command. */
export function runCommand(argv: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      profile: "string",
      once: "boolean",
      "ig-url": "string",
      "engine-run-root": "string",
      speedup: "string",
      "admin-port": "string",
    });
    // Every flag is checked before anything is opened or written.
    const adminFlag = yield* intFlag(flags, "admin-port", { min: 0, max: 65535 });
    const speedupFlag = yield* numberFlag(flags, "speedup", { min: 0 });
    const igUrlFlag = yield* httpUrlFlag(flags, "ig-url");
    const profile = yield* loadProfile(profileFlag(flags));
    // The privacy tier's license (and minimized's key) before anything is served or published.
    yield* checkPrivacyAtStart(profile);
    const adminPort = adminFlag ?? profile.wiring.admin?.port;
    const admin = adminPort === undefined
      ? undefined
      : yield* adminTokens(profile.profile_id, Deno.env.toObject());
    const given = typeof flags["engine-run-root"] === "string"
      ? flags["engine-run-root"]
      : profile.profile_id === "local"
      ? profile.wiring.oracle_engine_run_root
      : undefined;
    const demo = given === undefined && profile.profile_id === "local";
    if (flags.once && given === undefined && !demo) {
      return yield* fail(
        "BAD_ARGS",
        `--once needs a world to run on the ${profile.profile_id} profile: give --engine-run-root`,
      );
    }
    const speedup = speedupFlag ?? (demo ? DEMO_SPEEDUP : undefined);
    // The world to publish a READY for, checked before anything starts.
    const world = demo
      ? yield* genWorld({ out: join(profile.paths.runsRoot, "demo_world"), events: DEMO_EVENTS })
        .pipe(Effect.provide(DuckDb.layer()), Effect.map((w) => w.engine_run_root))
      : given === undefined
      ? undefined
      : yield* existingWorld(given, profile);
    return yield* Effect.scoped(Effect.gen(function* () {
      const health = yield* Health.make;
      const metrics = yield* Metrics.make;
      const slot = new RuntimeSlot(health);
      if (adminPort !== undefined && admin !== undefined) {
        const wiring = profile.wiring.admin;
        const app = adminApp({
          modules: ADMIN_MODULES,
          tokens: admin.tokens,
          slot,
          ...(wiring?.cors_origins ? { corsOrigins: wiring.cors_origins } : {}),
        });
        const served = yield* serveAdmin(app, {
          port: adminPort,
          ...(wiring?.host ? { host: wiring.host } : {}),
        });
        if (admin.generated !== undefined) {
          // Printed once, to the operator's terminal only: it is the key to the API.
          console.error(JSON.stringify({
            level: "WARN",
            message: "admin API token made for this start (local profile); " +
              "set WORLDSTREAM_ADMIN_TOKEN to choose one",
            admin_token: admin.generated,
          }));
        }
        yield* Effect.logInfo("admin API listening").pipe(
          Effect.annotateLogs({
            url: served.url,
            viewer_token: admin.tokens.viewer === undefined ? "unset" : "set",
          }),
        );
      }
      const igUrl = igUrlFlag !== undefined
        ? igUrlFlag
        : profile.profile_id === "local"
        ? (yield* startIg({
          host: "127.0.0.1",
          port: 0,
          db: join(profile.paths.runsRoot, "ig-pglite"),
        })).url
        : undefined;
      // The run configuration, derived once: bootstrap and the runtime share it.
      const config = runConfigOf(profile, {
        ...(igUrl ? { igUrl } : {}),
        ...(speedup === undefined ? {} : { speedup }),
      });
      yield* bootstrap(profile, config.courier.endpoint, config.bootstrap).pipe(
        Effect.provideService(Health, health),
      );
      const published = world === undefined
        ? undefined
        : yield* publishReady({ engineRunRoot: world, profile });
      if (published) {
        yield* Effect.logInfo("READY published").pipe(Effect.annotateLogs({ ...published }));
      }
      return yield* Effect.scoped(
        slot.attach().pipe(Effect.andThen(serve(profile, published?.message_id))),
      ).pipe(
        Effect.provide(runtimeLayer(config, {
          signals: true,
          pollIntervalMs: 200,
          health,
          metrics,
        })),
      );
    }));

    /**
     * Waits for the run of its own READY (if any), then (without `--once`) serves until a stop.
     * A stop while that run is in flight ends it (STOPPED_BY_OPERATOR, resumed by the next
     * start) and is still a clean exit: the service was asked to go.
     */
    function serve(p: Profile, messageId: string | undefined) {
      return Effect.gen(function* () {
        const bus = yield* ControlBus;
        const { stop } = yield* Shutdown;
        let settled: ReadySettlement | undefined;
        if (messageId !== undefined) {
          const own = bus.settled(messageId);
          settled = yield* withProgressDisplay(
            Effect.raceFirst(
              own,
              // A stop before the run settles: the run ends stopped within moments (or never
              // started, e.g. deferred while the IG is down); either way the service goes.
              Deferred.await(stop).pipe(
                Effect.andThen(own.pipe(Effect.timeoutOption("10 seconds"))),
                Effect.map((o) => o._tag === "Some" ? o.value : undefined),
              ),
            ),
            (s) => s?.result,
          );
          if (settled && !flags.once) console.log(JSON.stringify(summaryLine(settled)));
        }
        if (!flags.once) {
          yield* Effect.logInfo("serving the control bus until SIGINT/SIGTERM").pipe(
            Effect.annotateLogs({ profile: p.profile_id }),
          );
          yield* Deferred.await(stop);
        }
        const stopped = yield* Deferred.isDone(stop);
        if (stopped) yield* drained;
        return outcome(settled, stopped);
      });
    }
  });
}

/**
 * Waits (at most 10 s) until a run the bus started has wound down after a stop: its streamers
 * stop reading and its lanes deliver what they hold, so the checkpoint covers all of it. Closing
 * the runtime under it would cut those deliveries off, to be sent again by the next start.
 */
const drained = Effect.gen(function* () {
  const supervisor = yield* Supervisor;
  yield* supervisor.progress.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (p) => p.length === 0 }),
    Effect.timeoutOption("10 seconds"),
  );
});

/** `run`'s result line and exit code (see the file comment). */
function outcome(settled: ReadySettlement | undefined, stopped: boolean): Outcome {
  const line = settled
    ? summaryLine(settled)
    : { status: stopped ? "STOPPED" : "SERVED", ready_status: null, reason: null };
  if (stopped) return { line: { ...line, stopped_by: "signal" }, ok: true };
  const status = settled?.result?.status ?? settled?.status;
  if (status === "STREAMED" || status === "SKIPPED_DUPLICATE") return { line, ok: true };
  if (status === "STREAMED_WITH_DEAD_LETTERS") {
    return { line, ok: false, code: EXIT_CODES.deadLetters };
  }
  return { line, ok: false };
}

/**
 * The world at `root`, which must already be one: `run` publishes a READY for it and never
 * generates into it. Fails with the world check's reason code (ENGINE_ROOT_MISSING,
 * RUN_RECEIPT_UNREADABLE, …), its message saying how to make one.
 */
function existingWorld(root: string, profile: Profile) {
  return resolveWorld(root, {
    strict: profile.policy.strict_world,
    requireGatePass: profile.policy.require_gate_pass,
    interfacePackDir: profile.paths.interfacePack,
    ...(profile.wiring.oracle_scenario_id ? { scenarioId: profile.wiring.oracle_scenario_id } : {}),
  }).pipe(
    Effect.provide(OracleStore.layerFor(profile)),
    Effect.mapError((e) =>
      fail(
        e.reason,
        `${e.message} (run publishes a READY for an existing world; make one with gen-world --out DIR)`,
      )
    ),
    Effect.map((w) => w.engineRunRoot),
  );
}

function summaryLine(s: ReadySettlement): Record<string, unknown> {
  return {
    status: s.result?.status ?? s.status,
    ready_status: s.status,
    message_id: s.message_id,
    reason: s.reason,
    ...(s.result ? { ...s.result } : {}),
  };
}

/**
 * `worldstream run [--once] [--profile P]`: the whole runtime on a profile. With the local
 * profile and nothing set up it uses embedded defaults: PGlite, the file control bus, the demo
 * world (generated on first use) and the reference IG started in process on loopback. It
 * publishes a READY for that world, streams it with a live display, prints a summary and keeps
 * serving the control bus until Ctrl-C (`--once`: exits after the run, status as exit code).
 *
 * `--admin-port P` (or the profile's `wiring.admin.port`) serves `/healthz` and `/readyz` on
 * 127.0.0.1:P for the runtime's whole life, from before the start-up checks (readiness says
 * `down` until they pass) to shutdown.
 */
import { Deferred, Effect } from "effect";
import { join } from "node:path";
import { loadProfile, type Profile } from "../core/profile.ts";
import { healthApp } from "../api/health.ts";
import { serveAdmin } from "../api/server.ts";
import { bootstrap, bootstrapOptions } from "../actors/bootstrap.ts";
import { Health } from "../actors/health.ts";
import { ControlBus, type ReadySettlement } from "../actors/control_bus.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { runtimeLayer } from "../actors/runtime.ts";
import { Shutdown } from "../actors/shutdown.ts";
import { startIg } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { fail } from "../schemas/errors.ts";
import { parseFlags } from "./args.ts";
import { publishReady } from "./publish_ready.ts";
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
    const adminFlag = flags["admin-port"] === undefined ? undefined : Number(flags["admin-port"]);
    if (adminFlag !== undefined && !(Number.isInteger(adminFlag) && adminFlag >= 0)) {
      return yield* fail(
        "BAD_ARGS",
        `--admin-port must be an integer >= 0, got ${flags["admin-port"]}`,
      );
    }
    const speedupFlag = flags.speedup === undefined ? undefined : Number(flags.speedup);
    if (speedupFlag !== undefined && !(Number.isFinite(speedupFlag) && speedupFlag >= 0)) {
      return yield* fail("BAD_ARGS", `--speedup must be a number >= 0, got ${flags.speedup}`);
    }
    const profile = yield* loadProfile(String(flags.profile ?? "local"));
    const ownRoot = typeof flags["engine-run-root"] === "string"
      ? flags["engine-run-root"]
      : profile.wiring.oracle_engine_run_root;
    const root = ownRoot ?? join(profile.paths.runsRoot, "demo_world");
    const speedup = speedupFlag ?? (ownRoot === undefined ? DEMO_SPEEDUP : undefined);
    const world = yield* genWorld({ out: root, events: DEMO_EVENTS }).pipe(
      Effect.provide(DuckDb.layer()),
    );
    const adminPort = adminFlag ?? profile.wiring.admin?.port;
    return yield* Effect.scoped(Effect.gen(function* () {
      const health = yield* Health.make;
      if (adminPort !== undefined) {
        const admin = yield* serveAdmin(healthApp(health), { port: adminPort });
        yield* Effect.logInfo("admin API listening").pipe(
          Effect.annotateLogs({ url: admin.url, routes: "/healthz,/readyz" }),
        );
      }
      const igUrl = typeof flags["ig-url"] === "string"
        ? flags["ig-url"]
        : profile.profile_id === "local"
        ? (yield* startIg({
          host: "127.0.0.1",
          port: 0,
          db: join(profile.paths.runsRoot, "ig-pglite"),
        })).url
        : undefined;
      yield* bootstrap(
        profile,
        runConfigOf(profile, igUrl ? { igUrl } : {}).courier.endpoint,
        bootstrapOptions(profile),
      ).pipe(Effect.provideService(Health, health));
      const published = yield* publishReady({ engineRunRoot: world.engine_run_root, profile });
      yield* Effect.logInfo("READY published").pipe(Effect.annotateLogs({ ...published }));
      const settled = yield* awaitRun(profile, published.message_id).pipe(
        Effect.provide(runtimeLayer(profile, {
          ...(igUrl ? { igUrl } : {}),
          ...(speedup === undefined ? {} : { speedup }),
          signals: true,
          pollIntervalMs: 200,
          health,
        })),
      );
      return settled;
    })).pipe(
      Effect.map((s) => ({
        line: summaryLine(s),
        ok: s.status === "STREAMED" || s.status === "SKIPPED_DUPLICATE",
      })),
    );

    function awaitRun(p: Profile, messageId: string) {
      return Effect.gen(function* () {
        const bus = yield* ControlBus;
        const settled = yield* withProgressDisplay(bus.settled(messageId));
        if (!flags.once) {
          console.log(JSON.stringify(summaryLine(settled)));
          yield* Effect.logInfo("serving the control bus until Ctrl-C").pipe(
            Effect.annotateLogs({ profile: p.profile_id }),
          );
          yield* Deferred.await((yield* Shutdown).stop);
        }
        return settled;
      });
    }
  });
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

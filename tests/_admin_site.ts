/**
 * Test support for the admin API on a real runtime in this process: PGlite, the WAL, the file
 * control bus and DuckDB, streaming a generated world into the reference gate, with the admin
 * app (every module of api/modules.ts, plus any a test adds) served on a loopback port. The
 * gate can be told to fail its first requests (ig/faults.ts's script), so the first batch of the
 * run exhausts its retries and becomes real dead letters (the run goes on: dead_letter_policy
 * `continue`). Used by the dead-letter API tests and the dashboard's browser test.
 */
import { join } from "node:path";
import { Effect, Layer, Logger, type Scope } from "effect";
import { loadProfile, type Profile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { Health } from "../actors/health.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { runtimeLayer } from "../actors/runtime.ts";
import { adminApp } from "../api/app.ts";
import { ADMIN_MODULES } from "../api/modules.ts";
import type { RouteModule } from "../api/route.ts";
import { serveAdmin } from "../api/server.ts";
import { RuntimeSlot } from "../api/services.ts";
import { copyDb, TRAFFIC } from "./_testing.ts";

export const OPERATOR = "operator-token-0123456789";
export const VIEWER = "viewer-token-0123456789ab";

/** The attempts a batch gets before it is dead-lettered here (quick retries). */
export const ATTEMPTS = 2;

/** What `adminSite` takes. */
export interface AdminSiteOptions {
  /** A PGlite template to copy. */
  readonly template: string;
  /** Pacing (default 0: unpaced). */
  readonly speedup?: number;
  /** Events per batch (default 20): the first batch is what the gate's failures dead-letter. */
  readonly batchSize?: number;
  /** Fail the gate's first requests (503) so the run's first batch is dead-lettered. */
  readonly deadLetterFirstBatch?: boolean;
  /** Modules mounted besides ADMIN_MODULES. */
  readonly extraModules?: ReadonlyArray<RouteModule>;
  /** Changes the profile before the runtime starts (e.g. a test's policy). */
  readonly profile?: (profile: Profile) => Profile;
}

/**
 * A runtime with its admin API served in folder `dir`, closed with the scope (the runtime first,
 * detaching its routes, then the server).
 */
export function adminSite(dir: string, options: AdminSiteOptions) {
  return Effect.gen(function* () {
    const ig = yield* startIg({
      db: copyDb(options.template, join(dir, "ig")),
      ...(options.deadLetterFirstBatch
        ? { faults: { script: Array.from({ length: ATTEMPTS }, () => ({ status: 503 })) } }
        : {}),
    });
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: copyDb(options.template, join(dir, "pg")),
      CONTROL_BUS_ROOT: join(dir, "bus"),
      OBJECT_STORE_ROOT: join(dir, "objects"),
    });
    const shaped: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
      wiring: {
        ...loaded.wiring,
        wsp_courier: {
          mode: "batch",
          batch_size: options.batchSize ?? 20,
          dead_letter_policy: "continue",
          max_dead_letters: 100_000,
        },
        wsp_retry: {
          ...loaded.wiring.wsp_retry,
          max_attempts: ATTEMPTS,
          base_delay_ms: 20,
          max_delay_ms: 50,
        },
      },
    };
    const profile = options.profile ? options.profile(shaped) : shaped;
    const config = runConfigOf(profile, { igUrl: ig.url, speedup: options.speedup ?? 0 });
    const health = yield* Health.make;
    yield* health.markStarted;
    const slot = new RuntimeSlot(health);
    const app = adminApp({
      modules: [...ADMIN_MODULES, ...(options.extraModules ?? [])],
      tokens: { operator: OPERATOR, viewer: VIEWER },
      slot,
    });
    const admin = yield* serveAdmin(app, { port: 0 });
    const quiet = Logger.layer([Logger.make(() => undefined)]);
    const context = yield* Layer.build(
      runtimeLayer(config, { pollIntervalMs: 100, health }).pipe(Layer.provide(quiet)),
    );
    yield* Effect.acquireRelease(
      Effect.sync(() => slot.attachContext(context)),
      () => Effect.sync(() => slot.detach()),
    );
    return { ig, profile, config, app, admin, context, slot };
  }) satisfies Effect.Effect<unknown, unknown, Scope.Scope>;
}

/**
 * Test support for the admin API on a real runtime in this process: PGlite, the WAL, the file
 * control bus and DuckDB, streaming a generated world into the reference gate, with the admin
 * app (every module of api/modules.ts, plus any a test adds) served on a loopback port and
 * callable in process (`app.request()`) or over HTTP with the same helper ({@link adminClient}).
 * The gate can be told to fail its first requests (ig/faults.ts's script), so the first batch of
 * the run exhausts its retries and becomes real dead letters (the run goes on: dead_letter_policy
 * `continue`). Used by the admin route tests (api/routes/*_test.ts) and the dashboard's browser
 * test.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer, Logger, type Scope } from "effect";
import type { Hono } from "hono";
import { loadProfile, type Profile } from "../core/profile.ts";
import { type RunningIg, startIg } from "../ig/server.ts";
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
  /** A gate of the test's (one that outlives the site), instead of one of the site's own. */
  readonly ig?: RunningIg;
  /** Changes the profile before the runtime starts (e.g. governance of the test's). */
  readonly profile?: (profile: Profile) => Effect.Effect<Profile, unknown>;
  /** Runs on the admin app before the runtime is attached, while its routes answer 503. */
  readonly beforeRuntime?: (app: Hono) => Effect.Effect<void, unknown>;
}

/**
 * A runtime with its admin API served in folder `dir`, closed with the scope (the runtime first,
 * detaching its routes, then the server).
 */
export function adminSite(dir: string, options: AdminSiteOptions) {
  return Effect.gen(function* () {
    const ig = options.ig ?? (yield* startIg({
      db: copyDb(options.template, join(dir, "ig")),
      ...(options.deadLetterFirstBatch
        ? { faults: { script: Array.from({ length: ATTEMPTS }, () => ({ status: 503 })) } }
        : {}),
    }));
    const loaded = yield* loadProfile("local", {
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: copyDb(options.template, join(dir, "pg")),
      CONTROL_BUS_ROOT: join(dir, "bus"),
      OBJECT_STORE_ROOT: join(dir, "objects"),
    });
    const batch = { mode: "batch", batch_size: options.batchSize ?? 20 } as const;
    const site: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
      // Quick retries and a run that goes on past its dead letters only where the gate is told
      // to fail; otherwise the profile's retries and dead-letter policy.
      wiring: options.deadLetterFirstBatch
        ? {
          ...loaded.wiring,
          wsp_courier: { ...batch, dead_letter_policy: "continue", max_dead_letters: 100_000 },
          wsp_retry: {
            ...loaded.wiring.wsp_retry,
            max_attempts: ATTEMPTS,
            base_delay_ms: 20,
            max_delay_ms: 50,
          },
        }
        : { ...loaded.wiring, wsp_courier: batch },
    };
    const profile = options.profile ? yield* options.profile(site) : site;
    const config = runConfigOf(profile, { igUrl: ig.url, speedup: options.speedup ?? 0 });
    const health = yield* Health.make;
    yield* health.markStarted;
    const slot = new RuntimeSlot(health);
    const app = adminApp({
      modules: [...ADMIN_MODULES, ...(options.extraModules ?? [])],
      tokens: { operator: OPERATOR, viewer: VIEWER },
      slot,
    });
    if (options.beforeRuntime) yield* options.beforeRuntime(app);
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

/** An admin API answer: its status and body (parsed when it is JSON, else text; null if empty). */
export interface AdminAnswer {
  readonly status: number;
  // deno-lint-ignore no-explicit-any
  readonly body: any;
}

/** A request to the admin API; `json`, when given, is sent as the body (a POST unless told). */
export type AdminRequest = Omit<RequestInit, "headers"> & {
  readonly headers?: Record<string, string>;
  readonly json?: unknown;
};

/** Sends `init` to the admin app in process (`app.request()`) or to a base URL over HTTP. */
export async function callAdmin(
  to: Hono | string,
  path: string,
  init: AdminRequest = {},
): Promise<AdminAnswer> {
  const { json, ...rest } = init;
  const request: RequestInit = json === undefined ? rest : {
    ...rest,
    method: rest.method ?? "POST",
    headers: { ...rest.headers, "Content-Type": "application/json" },
    body: JSON.stringify(json),
  };
  const res = typeof to === "string"
    ? await fetch(`${to}${path}`, request)
    : await to.request(path, request);
  const text = await res.text();
  const isJson = res.headers.get("content-type")?.includes("json") ?? false;
  return { status: res.status, body: text ? (isJson ? JSON.parse(text) : text) : null };
}

/** The bearer header of `token`. */
export function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

/**
 * GET and POST on the admin API (in process or at a base URL) as Effects, with the operator's
 * token unless other headers are given.
 */
export function adminClient(to: Hono | string) {
  const operator = bearer(OPERATOR);
  return {
    get: (path: string, headers: Record<string, string> = operator) =>
      Effect.promise(() => callAdmin(to, path, { headers })),
    /** A POST with `json` as its body, or without a body. */
    post: (path: string, json?: unknown, headers: Record<string, string> = operator) =>
      Effect.promise(() =>
        callAdmin(to, path, json === undefined ? { method: "POST", headers } : { headers, json })
      ),
  };
}

/** Polls `probe` every 20 ms until `done` holds (deadline 60 s). */
export function until<A>(probe: Effect.Effect<A>, done: (a: A) => boolean, what: string) {
  return Effect.gen(function* () {
    const deadline = performance.now() + 60_000;
    while (true) {
      const a = yield* probe;
      if (done(a)) return a;
      assert.ok(performance.now() < deadline, `${what}: not within 60 s`);
      yield* Effect.sleep(20);
    }
  });
}

/**
 * Health routes, the probes of the admin API: `GET /healthz` is liveness — 200 while the process
 * runs and serves — and `GET /readyz` is readiness — 200 `{status: "ready" | "degraded"}` while
 * the runtime can make progress, 503 `{status: "down"}` when it cannot (see actors/health.ts for
 * the rules), each with the dependencies and the WAL backlog.
 *
 * Both are public, like Kubernetes probes: a probe carries no secret. `/readyz` names hosts and
 * paths, so the admin port listens on loopback unless the profile says otherwise. They answer
 * from the start, before the runtime is built (readiness says `down` until bootstrap passes).
 */
import { Effect, Schema } from "effect";
import type { Hono } from "hono";
import { Health, type Readiness } from "../../actors/health.ts";
import { adminApp } from "../app.ts";
import { randomToken } from "../auth.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { RuntimeSlot } from "../services.ts";

const Count = Schema.Int;

/** The `/readyz` body. */
export const ReadyzBody = Schema.Struct({
  status: Schema.Literals(["ready", "degraded", "down"]),
  problems: Schema.Array(Schema.String),
  dependencies: Schema.Array(Schema.Struct({
    name: Schema.String,
    ok: Schema.Boolean,
    detail: Schema.String,
    /** The dependency's reason code when it is down (e.g. CONTROL_BUS_STREAM_MISSING). */
    reason: Schema.optionalKey(Schema.String),
  })),
  wal: Schema.NullOr(Schema.Struct({
    pending_records: Count,
    pending_bytes: Count,
    last_drain_error: Schema.NullOr(Schema.String),
  })),
}).annotate({ identifier: "Readyz" });
export type ReadyzBody = typeof ReadyzBody.Type;

/** The `/readyz` body of a readiness report. */
export function readyzBody(r: Readiness): ReadyzBody {
  return {
    status: r.status === "healthy" ? "ready" : r.status,
    problems: r.problems,
    dependencies: r.dependencies.map((d) => ({
      name: d.name,
      ok: d.ok,
      detail: d.detail,
      ...(d.reason === undefined ? {} : { reason: d.reason }),
    })),
    wal: r.wal === null ? null : {
      pending_records: r.wal.pending_records,
      pending_bytes: r.wal.pending_bytes,
      last_drain_error: r.wal.last_drain_error,
    },
  };
}

/** `/healthz` and `/readyz`. */
export const healthRoutes: RouteModule = {
  name: "health",
  routes: [
    jsonRoute({
      method: "get",
      path: "/healthz",
      summary: "Liveness: 200 while the process serves",
      access: "public",
      needsRuntime: false,
      response: Schema.Struct({ status: Schema.Literal("alive") }),
      handle: () => Effect.succeed({ status: "alive" as const }),
    }),
    jsonRoute({
      method: "get",
      path: "/readyz",
      summary: "Readiness: dependencies, degraded state and WAL backlog (503 when down)",
      access: "public",
      needsRuntime: false,
      response: ReadyzBody,
      status: (body) => body.status === "down" ? 503 : 200,
      handle: () => Health.use((h) => h.readiness).pipe(Effect.map(readyzBody)),
    }),
  ],
};

/** The health routes alone over `health` (tests; the runtime serves every module). */
export function healthApp(health: Health["Service"]): Hono {
  return adminApp({
    modules: [healthRoutes],
    tokens: { operator: randomToken() },
    slot: new RuntimeSlot(health),
  });
}

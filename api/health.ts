/**
 * Health routes (Hono), the first of the admin API: `GET /healthz` is liveness — 200 while the
 * process runs and serves — and `GET /readyz` is readiness — 200 `{status: "ready" | "degraded"}`
 * while the runtime can make progress, 503 `{status: "down"}` when it cannot (see actors/health.ts
 * for the rules), each with the dependencies and the WAL backlog.
 *
 * Both are unauthenticated, like Kubernetes probes: ARCHITECTURE §8 exempts `/healthz` from the
 * bearer token, and `/readyz` stays open for the same reason (a probe carries no secret). It
 * names hosts and paths, so the admin port listens on loopback only; when the authenticated
 * admin API arrives it may move `/readyz` behind the viewer token.
 */
import { Effect } from "effect";
import { Hono } from "hono";
import type { Health, Readiness } from "../actors/health.ts";

/** The `/readyz` body. */
export interface ReadyzBody {
  readonly status: "ready" | "degraded" | "down";
  readonly problems: ReadonlyArray<string>;
  readonly dependencies: ReadonlyArray<
    { name: string; ok: boolean; detail: string; reason?: string }
  >;
  readonly wal: {
    readonly pending_records: number;
    readonly pending_bytes: number;
    readonly last_drain_error: string | null;
  } | null;
}

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

/** The health routes over `health`; serve `app.fetch`, or call `app.request` in tests. */
export function healthApp(health: Health["Service"]): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "alive" }));
  app.get("/readyz", async (c) => {
    const body = readyzBody(await Effect.runPromise(health.readiness));
    return c.json(body, body.status === "down" ? 503 : 200);
  });
  return app;
}

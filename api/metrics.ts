/**
 * `GET /metrics`: the runtime's Prometheus metrics in the text exposition format 0.0.4 (see
 * actors/metrics.ts for what is counted and core/metrics.ts for the format). A Hono sub-app, so
 * the admin API mounts it beside its other resources and puts it behind its auth.
 */
import { Effect } from "effect";
import { Hono } from "hono";
import { PROMETHEUS_CONTENT_TYPE } from "../core/metrics.ts";
import type { Metrics } from "../actors/metrics.ts";

/** The metrics route over `metrics`; mount with `app.route("/", metricsApp(metrics))`. */
export function metricsApp(metrics: Metrics["Service"]): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    const text = await Effect.runPromise(metrics.render);
    return c.body(text, 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });
  return app;
}

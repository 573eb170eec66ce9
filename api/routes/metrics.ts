/**
 * `GET /metrics`: the runtime's Prometheus metrics in the text exposition format 0.0.4 (see
 * actors/metrics.ts for what is counted and core/metrics.ts for the format). Behind the admin
 * API's auth like every `/v1` route (viewer or operator token): a scraper is given a viewer token.
 */
import { Effect } from "effect";
import { Metrics } from "../../actors/metrics.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../../core/metrics.ts";
import { rawRoute, type RouteModule } from "../route.ts";

/** The metrics resource. */
export const metricsRoutes: RouteModule = {
  name: "metrics",
  routes: [
    rawRoute({
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics (text format 0.0.4): counters, histograms and gauges per output",
      produces: PROMETHEUS_CONTENT_TYPE,
      respond: () =>
        Effect.gen(function* () {
          const text = yield* (yield* Metrics).render;
          return new Response(text, { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
        }),
    }),
  ],
};

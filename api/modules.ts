/**
 * The admin API's resources, in the order `/openapi.json` lists them. Mounting a new resource is
 * one line here: import its `RouteModule` (api/route.ts) and add it to the list.
 */
import type { RouteModule } from "./route.ts";
import { approvalsRoutes } from "./routes/approvals.ts";
import { checkpointsRoutes } from "./routes/checkpoints.ts";
import { controlRoutes } from "./routes/control.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { deadLettersRoutes } from "./routes/dead_letters.ts";
import { eventsRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { receiptsRoutes } from "./routes/receipts.ts";
import { runsRoutes } from "./routes/runs.ts";
import { statusRoutes } from "./routes/status.ts";

/** Every resource the runtime serves. */
export const ADMIN_MODULES: ReadonlyArray<RouteModule> = [
  healthRoutes,
  statusRoutes,
  // Before runs: `/v1/runs/live` must not be taken for a run called "live".
  controlRoutes,
  runsRoutes,
  checkpointsRoutes,
  receiptsRoutes,
  deadLettersRoutes,
  approvalsRoutes,
  metricsRoutes,
  eventsRoutes,
  dashboardRoutes,
];

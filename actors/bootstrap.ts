/**
 * Bootstrap: checks the runtime's dependencies (Postgres, the IG's health endpoint, the control
 * bus folder or Kinesis stream, the oracle root) before streaming, and keeps re-checking them.
 *
 * `backend` mode waits until every dependency is healthy, re-checking every poll interval, and
 * fails BOOTSTRAP_TIMEOUT (naming what stayed down) after the timeout. `edge` mode starts at
 * once, degraded: the WAL buffers what Postgres cannot take yet and READY messages are deferred
 * while the IG is down. Either way a background fiber re-checks every poll interval and logs
 * each change of health, so operators see `degraded` and `healthy` transitions. A dependency that
 * knows why it is down (a Kinesis stream that does not exist: CONTROL_BUS_STREAM_MISSING) fails
 * `backend` mode with that code, naming the resource, instead of BOOTSTRAP_TIMEOUT. When a Health
 * service is in context, every report goes to it too (that is what `/readyz` shows), and it is
 * marked started once the start-up checks let the runtime go.
 */
import { Clock, Effect, Option, Ref, Schedule } from "effect";
import { kinesisBusOf, type Profile } from "../core/profile.ts";
import { supervised } from "../core/supervise.ts";
import { fail } from "../schemas/errors.ts";
import { type IgEndpoint, igHealthy } from "../stores/ig_client.ts";
import { KinesisBus, type KinesisBusConfig } from "../stores/control_bus_kinesis.ts";
import { type DependencyHealth, Health } from "./health.ts";

export type { DependencyHealth } from "./health.ts";

/** How to start. */
export interface BootstrapOptions {
  readonly mode: "edge" | "backend";
  readonly pollIntervalMs: number;
  readonly timeoutMs: number;
}

/** The profile's bootstrap settings, with the documented defaults (30 s poll, 300 s timeout). */
export function bootstrapOptions(profile: Profile): BootstrapOptions {
  const b = profile.wiring.bootstrap;
  return {
    mode: b?.mode ?? "edge",
    pollIntervalMs: (b?.poll_interval_seconds ?? 30) * 1000,
    timeoutMs: (b?.timeout_seconds ?? 300) * 1000,
  };
}

/** Checks every dependency once. */
export function checkDependencies(profile: Profile, ig: IgEndpoint) {
  return Effect.gen(function* () {
    const out: DependencyHealth[] = [];
    const db = profile.wiring.database;
    if (db.backend === "server" && db.url) {
      const url = new URL(db.url);
      const reachable = yield* tcpReachable(url.hostname, Number(url.port || 5432));
      out.push({ name: "postgres", ok: reachable, detail: `${url.hostname}:${url.port || 5432}` });
    } else {
      out.push({ name: "postgres", ok: true, detail: "embedded PGlite" });
    }
    const igOk = yield* igHealthy({ ...ig, timeoutMs: Math.min(ig.timeoutMs, 2000) });
    out.push({ name: "ig", ok: igOk, detail: ig.baseUrl });
    const bus = profile.paths.controlBusRoot;
    const kinesis = kinesisBusOf(profile);
    if (kinesis !== undefined) {
      out.push(yield* kinesisStreamHealth(kinesis));
    } else if (bus !== undefined) {
      out.push({ name: "control_bus", ok: yield* usableDir(bus), detail: bus });
    }
    const oracle = profile.wiring.oracle_engine_run_root;
    if (oracle) out.push({ name: "oracle", ok: yield* exists(oracle), detail: oracle });
    return out;
  });
}

/**
 * Runs the start-up checks for `mode` and forks the re-check loop into the current scope.
 * Returns the first health report.
 */
export const bootstrap = Effect.fn("bootstrap")(function* (
  profile: Profile,
  ig: IgEndpoint,
  options: BootstrapOptions,
) {
  const health = yield* Effect.serviceOption(Health);
  const publish = (report: ReadonlyArray<DependencyHealth>) =>
    Option.isSome(health) ? health.value.reportDependencies(report) : Effect.void;
  const started = yield* Clock.currentTimeMillis;
  let report = yield* checkDependencies(profile, ig);
  yield* publish(report);
  while (options.mode === "backend" && report.some((d) => !d.ok)) {
    const down = report.filter((d) => !d.ok).map((d) => d.name);
    const waited = (yield* Clock.currentTimeMillis) - started;
    if (waited >= options.timeoutMs) {
      // A dependency that knows why it is down (a Kinesis stream that does not exist) fails with
      // its own code and words, which name the resource; the others time out.
      const known = report.find((d) => !d.ok && d.reason !== undefined);
      if (known?.reason !== undefined) {
        return yield* fail(
          known.reason,
          `${known.detail} (still after waiting ${Math.round(waited / 1000)} s; down: ${
            down.join(", ")
          })`,
        );
      }
      return yield* fail(
        "BOOTSTRAP_TIMEOUT",
        `Dependencies still down after ${Math.round(waited / 1000)} s: ${down.join(", ")}`,
      );
    }
    yield* Effect.logWarning("waiting for dependencies").pipe(
      Effect.annotateLogs({ down: down.join(","), mode: options.mode }),
    );
    yield* Effect.sleep(`${Math.min(options.pollIntervalMs, options.timeoutMs - waited)} millis`);
    report = yield* checkDependencies(profile, ig);
    yield* publish(report);
  }
  if (Option.isSome(health)) yield* health.value.markStarted;
  yield* logHealth(report, options.mode);
  const last = yield* Ref.make(summary(report));
  yield* Effect.forkScoped(supervised(
    "health",
    checkDependencies(profile, ig).pipe(
      Effect.tap(publish),
      Effect.flatMap((now) =>
        Ref.getAndSet(last, summary(now)).pipe(
          Effect.flatMap((before) =>
            before === summary(now) ? Effect.void : logHealth(now, options.mode)
          ),
        )
      ),
      Effect.repeat(Schedule.spaced(`${options.pollIntervalMs} millis`)),
      Effect.delay(`${options.pollIntervalMs} millis`),
    ),
  ));
  return report;
});

function summary(report: ReadonlyArray<DependencyHealth>): string {
  return report.map((d) => `${d.name}:${d.ok ? "up" : "down"}`).join(",");
}

function logHealth(report: ReadonlyArray<DependencyHealth>, mode: string) {
  const down = report.filter((d) => !d.ok).map((d) => d.name);
  return (down.length === 0 ? Effect.logInfo("healthy") : Effect.logWarning("degraded")).pipe(
    Effect.annotateLogs({ mode, down: down.join(","), dependencies: summary(report) }),
  );
}

function tcpReachable(hostname: string, port: number) {
  return Effect.promise(async () => {
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return true;
    } catch {
      return false;
    }
  });
}

/** How long one look at the Kinesis stream may take before it counts as down. */
const KINESIS_CHECK_MS = 5000;

/**
 * The Kinesis control bus stream as a dependency: up when DescribeStreamSummary answers for it;
 * down with CONTROL_BUS_STREAM_MISSING when it does not exist, CONTROL_BUS_UNAVAILABLE when
 * Kinesis does not answer (or not within 5 s). The detail names the stream either way.
 */
function kinesisStreamHealth(config: KinesisBusConfig): Effect.Effect<DependencyHealth> {
  const where = `Kinesis stream ${config.stream}${config.endpoint ? ` at ${config.endpoint}` : ""}`;
  return KinesisBus.pipe(
    Effect.flatMap((bus) => bus.check),
    Effect.timeoutOrElse({
      duration: KINESIS_CHECK_MS,
      orElse: () =>
        Effect.fail(
          fail("CONTROL_BUS_UNAVAILABLE", `${where} did not answer within ${KINESIS_CHECK_MS} ms`),
        ),
    }),
    Effect.provide(KinesisBus.layer(config)),
    Effect.match({
      onSuccess: (): DependencyHealth => ({ name: "control_bus", ok: true, detail: where }),
      onFailure: (e): DependencyHealth => ({
        name: "control_bus",
        ok: false,
        detail: e.message,
        reason: e.reason,
      }),
    }),
  );
}

function usableDir(path: string) {
  return Effect.promise(async () => {
    try {
      await Deno.mkdir(path, { recursive: true });
      return (await Deno.stat(path)).isDirectory;
    } catch {
      return false;
    }
  });
}

function exists(path: string) {
  return Effect.promise(() => Deno.stat(path).then(() => true, () => false));
}

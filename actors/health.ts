/**
 * Health: what the runtime can do right now, for `/readyz` and operators. It holds the latest
 * dependency report (bootstrap's start-up check and re-checks), conditions that stop the runtime
 * from starting (e.g. waiting for Postgres to learn the receipt chain head) and the WAL's backlog
 * with the drain's last error, and judges them:
 *
 * - `down`: no progress is possible — still starting, a blocking condition, the IG unreachable
 *   (nothing can be delivered) or the WAL full (appends fail);
 * - `degraded`: streaming goes on but something is missing — Postgres unreachable or the drain
 *   failing (the WAL grows and drains later), the control bus or oracle folder unusable;
 * - `healthy`: otherwise.
 */
import { Context, Effect, Layer, type Scope } from "effect";
import type { ReasonCode } from "../schemas/reasons.ts";
import { Wal } from "./wal/writer.ts";
import { WalDrain } from "./wal/drain.ts";

/** One dependency's health. */
export interface DependencyHealth {
  readonly name: "postgres" | "ig" | "control_bus" | "oracle";
  readonly ok: boolean;
  readonly detail: string;
  /** Why it is down, when the check knows a reason code (e.g. CONTROL_BUS_STREAM_MISSING). */
  readonly reason?: ReasonCode;
}

/** The WAL's backlog and the drain's state. */
export interface WalBacklog {
  readonly pending_records: number;
  readonly pending_bytes: number;
  readonly quota_bytes: number;
  /** Failed drains in a row. */
  readonly drain_failures: number;
  readonly last_drain_error: string | null;
  readonly last_drain_reason: string | null;
  /** When (epoch ms) the drain last wrote records into Postgres, `null` if never. */
  readonly last_drain_wrote_at: number | null;
}

/** The runtime's state, judged. */
export type HealthState = "healthy" | "degraded" | "down";

/** What {@link Health.readiness} reports. */
export interface Readiness {
  readonly status: HealthState;
  /** Why it is not healthy, one line each (empty when healthy). */
  readonly problems: ReadonlyArray<string>;
  readonly dependencies: ReadonlyArray<DependencyHealth>;
  /** `null` before the runtime's WAL is open. */
  readonly wal: WalBacklog | null;
}

/** Dependencies without which nothing can be delivered. */
const CRITICAL: ReadonlySet<DependencyHealth["name"]> = new Set(["ig"]);

/** Judges what Health holds (pure; see the file comment for the rules). */
export function assess(input: {
  readonly started: boolean;
  readonly dependencies: ReadonlyArray<DependencyHealth>;
  readonly conditions: ReadonlyMap<string, string>;
  readonly wal: WalBacklog | null;
  /** When (epoch ms) `dependencies` was checked. */
  readonly checkedAt?: number;
}): Readiness {
  const problems: Array<string> = [];
  let down = false;
  let degraded = false;
  if (!input.started) {
    down = true;
    problems.push("starting: the start-up dependency checks have not passed yet");
  }
  for (const problem of input.conditions.values()) {
    down = true;
    problems.push(problem);
  }
  const wal = input.wal;
  // The drain hears of Postgres going away before the next re-check does.
  const pgDown = wal?.last_drain_reason === "PG_UNAVAILABLE"
    ? `WAL drain: ${wal.last_drain_error ?? "Postgres is unavailable"}`
    : undefined;
  // And hears of it coming back before the next re-check does (up to a poll interval later):
  // records written into Postgres after the check prove it reachable.
  const pgBack = pgDown === undefined && wal?.last_drain_wrote_at != null &&
    input.checkedAt !== undefined && wal.last_drain_wrote_at > input.checkedAt;
  const dependencies = input.dependencies.map((d) =>
    d.name === "postgres" && d.ok && pgDown !== undefined
      ? { ...d, ok: false, detail: `${d.detail} (${pgDown})` }
      : d.name === "postgres" && !d.ok && pgBack
      ? { ...d, ok: true, detail: `${d.detail} (reachable again: the WAL drain wrote to it)` }
      : d
  );
  if (pgDown !== undefined && !dependencies.some((d) => d.name === "postgres")) {
    dependencies.push({ name: "postgres", ok: false, detail: pgDown });
  }
  for (const d of dependencies) {
    if (d.ok) continue;
    if (CRITICAL.has(d.name)) {
      down = true;
      problems.push(`${d.name} unreachable (${d.detail}): nothing can be delivered`);
    } else {
      degraded = true;
      problems.push(
        `${d.name} unreachable (${d.detail})` +
          (d.name === "postgres" ? ": streaming goes on and the WAL buffers until it returns" : ""),
      );
    }
  }
  if (wal !== null) {
    if (wal.drain_failures > 0 && pgDown === undefined) {
      degraded = true;
      problems.push(
        `WAL drain failing (${wal.drain_failures} in a row): ${wal.last_drain_error ?? "unknown"}`,
      );
    }
    if (wal.pending_bytes >= wal.quota_bytes) {
      down = true;
      problems.push(`WAL full (${wal.pending_bytes} of ${wal.quota_bytes} bytes): appends fail`);
    }
  }
  return {
    status: down ? "down" : degraded ? "degraded" : "healthy",
    problems,
    dependencies,
    wal,
  };
}

/** The runtime's health. */
export class Health extends Context.Service<Health, {
  /** Replaces the dependency report (bootstrap calls this after every check). */
  readonly reportDependencies: (report: ReadonlyArray<DependencyHealth>) => Effect.Effect<void>;
  /** The start-up checks passed (bootstrap calls this once it lets the runtime start). */
  readonly markStarted: Effect.Effect<void>;
  /** Sets (a problem line) or clears (`undefined`) a condition that keeps the runtime down. */
  readonly setCondition: (name: string, problem: string | undefined) => Effect.Effect<void>;
  /** Reads the WAL backlog from `backlog` while the scope is open. */
  readonly watchWal: (
    backlog: Effect.Effect<WalBacklog>,
  ) => Effect.Effect<void, never, Scope.Scope>;
  /** The current state, judged. */
  readonly readiness: Effect.Effect<Readiness>;
}>()("worldstream/actors/Health") {
  /** A fresh health record: starting, nothing reported yet. */
  static readonly make: Effect.Effect<Health["Service"]> = Effect.sync(() => {
    let dependencies: ReadonlyArray<DependencyHealth> = [];
    let checkedAt: number | undefined;
    let started = false;
    const conditions = new Map<string, string>();
    let wal: Effect.Effect<WalBacklog> | undefined;
    return Health.of({
      reportDependencies: (report) =>
        Effect.sync(() => {
          dependencies = report;
          checkedAt = Date.now();
        }),
      markStarted: Effect.sync(() => void (started = true)),
      setCondition: (name, problem) =>
        Effect.sync(() =>
          void (problem === undefined ? conditions.delete(name) : conditions.set(name, problem))
        ),
      watchWal: (backlog) =>
        Effect.acquireRelease(
          Effect.sync(() => void (wal = backlog)),
          () => Effect.sync(() => void (wal === backlog && (wal = undefined))),
        ),
      readiness: Effect.gen(function* () {
        const backlog = wal === undefined ? null : yield* wal;
        return assess({ started, dependencies, conditions, wal: backlog, checkedAt });
      }),
    });
  });

  static readonly layer: Layer.Layer<Health> = Layer.effect(Health, Health.make);

  /** Feeds the WAL's backlog and the drain's status into Health for the layer's life. */
  static readonly walLayer: Layer.Layer<never, never, Health | Wal | WalDrain> = Layer
    .effectDiscard(
      Effect.gen(function* () {
        const health = yield* Health;
        const wal = yield* Wal;
        const drain = yield* WalDrain;
        yield* health.watchWal(
          Effect.all([wal.stats, drain.status]).pipe(
            Effect.map(([stats, status]): WalBacklog => ({
              pending_records: stats.records,
              pending_bytes: stats.undrainedBytes,
              quota_bytes: stats.quotaBytes,
              drain_failures: status.failures,
              last_drain_error: status.lastError ?? null,
              last_drain_reason: status.lastReason ?? null,
              last_drain_wrote_at: status.lastWroteAt ?? null,
            })),
          ),
        );
      }),
    );
}

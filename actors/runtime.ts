/**
 * The runtime: one supervision tree. Every actor, store and background fiber is a layer here,
 * started in dependency order and stopped in reverse when the scope closes (checkpoints are
 * flushed last, after every lane has drained).
 */
import { Effect, Layer } from "effect";
import type { Profile } from "../core/profile.ts";
import { readyContext } from "../core/ready.ts";
import { fail } from "../schemas/errors.ts";
import { AuditLog } from "../stores/audit_log.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { ReadyLedger } from "../stores/ready_ledger.ts";
import { Checkpointer } from "./checkpointer.ts";
import { ControlBus } from "./control_bus.ts";
import { RunConfig } from "./run_config.ts";
import { Shutdown } from "./shutdown.ts";
import { Supervisor } from "./supervisor.ts";

/** Runtime options beyond the profile. */
export interface RuntimeOptions {
  /** Override the profile's IG (e.g. the in-process reference IG on a free port). */
  readonly igUrl?: string;
  /** Override the profile's stream_speedup for runs that do not set one. */
  readonly speedup?: number;
  /** Stop on SIGINT/SIGTERM (off in tests). */
  readonly signals?: boolean;
  readonly pollIntervalMs?: number;
}

/** Postgres for a profile, migrated before anything uses it. */
export function postgresLayer(profile: Profile) {
  const db = profile.wiring.database;
  const base = db.backend === "server"
    ? Postgres.layerServer(db.url ?? "")
    : Postgres.layerPglite(profile.paths.pgliteDir ?? `${profile.paths.runsRoot}/pglite`);
  return Layer.effectDiscard(migrate).pipe(Layer.provideMerge(base));
}

/** The streaming core: stores, config, checkpointer, supervisor. */
export function coreLayer(profile: Profile, options: RuntimeOptions = {}) {
  const base = Layer.mergeAll(
    DuckDb.layer(),
    postgresLayer(profile),
    RunConfig.fromProfile(profile, {
      ...(options.igUrl ? { igUrl: options.igUrl } : {}),
      ...(options.speedup === undefined ? {} : { speedup: options.speedup }),
    }),
    options.signals ? Shutdown.onSignals.pipe(Layer.provideMerge(Shutdown.layer)) : Shutdown.layer,
  );
  const stores = Layer.mergeAll(Checkpointer.layer(), ReadyLedger.layer, AuditLog.layer).pipe(
    Layer.provideMerge(base),
  );
  return Supervisor.layer.pipe(Layer.provideMerge(stores));
}

/** The whole runtime: the core plus the control bus listener. */
export function runtimeLayer(profile: Profile, options: RuntimeOptions = {}) {
  const core = coreLayer(profile, options);
  const bus = profile.wiring.control_bus;
  const root = profile.paths.controlBusRoot;
  const listener = bus.kind === "file" && root
    ? ControlBus.layer({
      root,
      topic: bus.topic,
      context: readyContext(profile),
      ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
    })
    : Layer.effect(
      ControlBus,
      Effect.fail(
        fail("CONTROL_BUS_UNSUPPORTED", `Control bus kind ${bus.kind} is not available yet`),
      ),
    );
  return listener.pipe(Layer.provideMerge(core));
}

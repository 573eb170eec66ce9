/**
 * The runtime: one supervision tree. Every actor, store and background fiber is a layer here,
 * started in dependency order and stopped in reverse when the scope closes (checkpoints are
 * flushed last, after every lane has drained).
 *
 * Offline-first: building it never needs Postgres. The database is connected and migrated on
 * first use; checkpoints, receipts, dead letters, READY-ledger and audit entries all go to the
 * WAL, and the drain copies them to Postgres whenever it answers. Where a start-up read needs
 * Postgres and it is down (the chain head, a resume checkpoint), the reader falls back to this
 * runs root's own records and logs `degraded` (see actors/journal.ts for the chain-head rule).
 */
import { Effect, Layer } from "effect";
import { join } from "node:path";
import { signerFromEnv } from "../core/receipt_keys.ts";
import { recordingDrainedHead } from "./wal/drained_head.ts";
import { objectStoreOptions, OracleStore } from "../stores/oracle.ts";
import { openPlatformObjects } from "../stores/platform_objects.ts";
import { Receipts } from "../stores/receipts.ts";
import { Wal } from "./wal/writer.ts";
import { WalDrain, writeToPostgres } from "./wal/drain.ts";
import { Health } from "./health.ts";
import { Metrics } from "./metrics.ts";
import { Journal } from "./journal.ts";
import { journalOrBenchOff } from "./journal_off.ts";
import { kinesisBusOf, type Profile } from "../core/profile.ts";
import { type ReadyContext, readyContext } from "../core/ready.ts";
import { isUrlRoot } from "../core/store_root.ts";
import { fail } from "../schemas/errors.ts";
import { AuditLog } from "./audit_log.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { RUNTIME_PGLITE } from "../stores/pglite_channel.ts";
import { Postgres, serverOptionsOf } from "../stores/postgres.ts";
import { migrate, migratingOnFirstUse } from "../stores/postgres_migrate.ts";
import { ReadyLedger } from "./ready_ledger.ts";
import { Checkpointer } from "./checkpointer.ts";
import { ControlBus } from "./control_bus.ts";
import { BusPositions } from "./bus_positions.ts";
import { kinesisControlBus } from "./control_bus_kinesis.ts";
import { KinesisBus } from "../stores/control_bus_kinesis.ts";
import { igClientLayer, RunConfig, type RunConfigShape } from "./run_config.ts";
import { Shutdown } from "./shutdown.ts";
import { Supervisor } from "./supervisor.ts";
import { makeWorldCache, WorldCache } from "../stores/world_cache.ts";
import { makeOutputLocks, OutputLocks } from "./output_locks.ts";

/** Runtime options beyond the run configuration. */
export interface RuntimeOptions {
  /** Stop on SIGINT/SIGTERM (off in tests). */
  readonly signals?: boolean;
  readonly pollIntervalMs?: number;
  /** The health record to feed (e.g. one the admin API already serves); default a fresh one. */
  readonly health?: Health["Service"];
  /** The metrics to feed (e.g. ones the admin API already serves); default fresh ones. */
  readonly metrics?: Metrics["Service"];
}

/**
 * Postgres for a profile, migrated before anything uses it. `lazy`: built without connecting (a
 * server may be down) and migrated by the first statement that reaches it.
 */
export function postgresLayer(profile: Profile, options: { readonly lazy?: boolean } = {}) {
  const db = profile.wiring.database;
  const base = db.backend === "server"
    ? Postgres.layerServer(db.url ?? "", { ...serverOptionsOf(db), lazy: options.lazy === true })
    : Postgres.layerPglite(
      profile.paths.pgliteDir ?? `${profile.paths.runsRoot}/pglite`,
      RUNTIME_PGLITE,
    );
  if (options.lazy) return Layer.effect(Postgres, migratingOnFirstUse()).pipe(Layer.provide(base));
  return Layer.effectDiscard(migrate).pipe(Layer.provideMerge(base));
}

/** Where a runtime keeps its state under the runs root. */
export function runtimePaths(profile: Profile) {
  const root = profile.paths.runsRoot;
  return {
    wal: join(root, "wal"),
    drainedHead: join(root, "wal_drained_head.json"),
    readyLedger: join(root, "ready_ledger.ndjson"),
  };
}

/**
 * The environment receipt keys are read from: the process environment
 * (WORLDSTREAM_RECEIPT_HMAC_KEY or an Ed25519 key). Only the `local` profile, where nothing
 * leaves the host, falls back to a key kept under its runs root (made on first use, readable by
 * the owner only), so the README's one command works on a fresh machine; every other profile
 * fails RECEIPT_KEY_MISSING without a key in the environment.
 */
export function receiptKeyEnv(
  profile: Profile,
  env: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
  options: { readonly create?: boolean } = { create: true },
) {
  return Effect.gen(function* () {
    const hasKey = env.WORLDSTREAM_RECEIPT_HMAC_KEY ||
      env.WORLDSTREAM_RECEIPT_ED25519_PRIVATE_KEY ||
      env.WORLDSTREAM_RECEIPT_ED25519_PUBLIC_KEY;
    if (hasKey || profile.profile_id !== "local") return env;
    const dir = join(profile.paths.runsRoot, "keys");
    const file = join(dir, "receipt_hmac.key");
    const key = yield* Effect.tryPromise({
      try: async () => {
        try {
          return (await Deno.readTextFile(file)).trim();
        } catch (e) {
          // Verification never makes a key: without one there is nothing to verify against.
          if (!options.create) throw e;
          const bytes = crypto.getRandomValues(new Uint8Array(32));
          const text = btoa(String.fromCharCode(...bytes));
          await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
          await Deno.writeTextFile(file, text + "\n", { mode: 0o600, createNew: true });
          return text;
        }
      },
      catch: (e) =>
        fail("RECEIPT_KEY_MISSING", `No receipt key and ${file} could not be made: ${String(e)}`),
    });
    return { ...env, WORLDSTREAM_RECEIPT_HMAC_KEY: key };
  });
}

/** The receipt signer for a profile (see {@link receiptKeyEnv}). */
export function receiptSigner(profile: Profile) {
  return receiptKeyEnv(profile).pipe(Effect.flatMap((env) => signerFromEnv(env)));
}

/**
 * The durable path as every command that writes the runs root's WAL builds it: Postgres, the WAL,
 * its drain (recording the drained receipt head, so a later start with Postgres down continues
 * the chain from the right receipt), Receipts and the Journal sealing onto the chain. `lazy`
 * leaves Postgres unmigrated (and unreached) until first use, as the offline-first runtime
 * wants; `benchOff` lets the stream bench swap the Journal for its off switch.
 */
export function durableLayer(config: RunConfigShape, options: {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly lazy?: boolean;
  readonly benchOff?: boolean;
} = {}) {
  const { profile, bootstrap: boot } = config;
  const paths = runtimePaths(profile);
  const pg = postgresLayer(profile, { lazy: options.lazy ?? false });
  const quotaBytes = profile.wiring.wal?.quota_bytes;
  const wal = Wal.layer({ dir: paths.wal, ...(quotaBytes === undefined ? {} : { quotaBytes }) });
  const journalOptions = {
    drainedHeadFile: paths.drainedHead,
    policyRev: profile.policy.policy_rev,
    ...(boot.mode === "backend" ? { headWaitMs: boot.timeoutMs } : {}),
  };
  const receipts = Layer.unwrap(
    receiptKeyEnv(profile, options.env).pipe(
      Effect.flatMap((env) => signerFromEnv(env)),
      Effect.map((signer) => {
        const journal = Journal.layer(signer, journalOptions).pipe(
          Layer.provide(Receipts.layer(signer)),
        );
        return Layer.merge(
          Receipts.layer(signer),
          options.benchOff ? journalOrBenchOff(profile, journal) : journal,
        );
      }),
    ),
  );
  const drain = WalDrain.layerWith(recordingDrainedHead(paths.drainedHead, writeToPostgres));
  return drain.pipe(
    Layer.provideMerge(receipts),
    Layer.provideMerge(Layer.merge(pg, wal)),
  );
}

/** The streaming core: stores, WAL and its drain, journal, config, checkpointer, supervisor. */
export function coreLayer(config: RunConfigShape, options: RuntimeOptions = {}) {
  const { profile } = config;
  const paths = runtimePaths(profile);
  const health = options.health ? Layer.succeed(Health, options.health) : Health.layer;
  const metrics = options.metrics ? Layer.succeed(Metrics, options.metrics) : Metrics.layer;
  const durable = Layer.merge(Health.walLayer, Metrics.walLayer).pipe(
    Layer.provideMerge(durableLayer(config, { lazy: true, benchOff: true })),
    Layer.provideMerge(Layer.merge(health, metrics)),
  );
  const base = Layer.mergeAll(
    // The runtime streams for hours next to other services: DuckDB gets a fixed share of memory
    // and spills large sorts (building a missing view) to disk instead of growing the process.
    DuckDb.layer({
      memoryLimit: Deno.env.get("WORLDSTREAM_DUCKDB_MEMORY") ?? "192MB",
      tempDirectory: join(profile.paths.runsRoot, "duckdb_tmp"),
    }),
    durable,
    OracleStore.layerFor(profile),
    Layer.succeed(RunConfig, config),
    // What this runtime checked of a world, reused while its files are unchanged.
    Layer.sync(WorldCache, () => makeWorldCache()),
    // A run holds its outputs' checkpoint locks; a reset takes one only while it is free.
    Layer.sync(OutputLocks, () => makeOutputLocks()),
    options.signals ? Shutdown.onSignals.pipe(Layer.provideMerge(Shutdown.layer)) : Shutdown.layer,
  );
  const stores = Layer.mergeAll(
    Checkpointer.layer(),
    ReadyLedger.layer({ file: paths.readyLedger }),
    AuditLog.layer,
    igClientLayer,
  ).pipe(
    Layer.provideMerge(base),
  );
  return Supervisor.layer.pipe(Layer.provideMerge(stores));
}

/** The whole runtime: the core plus the control bus listener. */
export function runtimeLayer(config: RunConfigShape, options: RuntimeOptions = {}) {
  const core = coreLayer(config, options);
  return busListener(config.profile, options).pipe(Layer.provideMerge(core));
}

/**
 * The context READY is read in: the profile's (see `readyContext`), and for run facts in an
 * `s3://` object store root a reader of that store, open while the scope is.
 */
export function runtimeReadyContext(profile: Profile) {
  return Effect.gen(function* () {
    const context: ReadyContext = readyContext(profile);
    if (!isUrlRoot(context.objectStoreRoot)) return context;
    const store = yield* openPlatformObjects(context.objectStoreRoot, objectStoreOptions(profile));
    return { ...context, readObject: store.read } satisfies ReadyContext;
  });
}

/**
 * The control bus listener of the profile's bus kind: the file bus polled every
 * `options.pollIntervalMs`, or Kinesis every `control_bus.poll_interval_ms` (Kinesis allows five
 * reads a second per shard, shared by every reader of the stream).
 */
function busListener(profile: Profile, options: RuntimeOptions) {
  const bus = profile.wiring.control_bus;
  const kinesis = kinesisBusOf(profile);
  return Layer.unwrap(
    runtimeReadyContext(profile).pipe(Effect.map((context) => {
      if (bus.kind === "kinesis" && kinesis !== undefined) {
        return kinesisControlBus({
          context,
          // Edge mode starts without its dependencies, a stream not made yet included (bootstrap
          // reports it down); backend mode has already waited for it.
          streamMissing: (profile.wiring.bootstrap?.mode ?? "edge") === "edge" ? "wait" : "fail",
          ...(bus.poll_interval_ms ? { pollIntervalMs: bus.poll_interval_ms } : {}),
        }).pipe(
          Layer.provide(Layer.merge(KinesisBus.layer(kinesis), BusPositions.layer)),
        );
      }
      return ControlBus.layer({
        root: profile.paths.controlBusRoot ?? "",
        topic: bus.topic,
        context,
        ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
      });
    })),
  );
}

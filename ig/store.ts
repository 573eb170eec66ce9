/**
 * The gate's tables (`ig_*`, see sql/ig/0001_ig_foundation.sql) behind one service. Writes come
 * a batch at a time: a batch of N envelopes is one insert of its candidates, one read-back when
 * some keys were already stored, and one statement for its quarantine records and counters, all
 * in one transaction.
 */
import { Clock, Context, Effect, Layer, Random } from "effect";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { type PgBackend, type PgSql, Postgres } from "../stores/postgres.ts";
import {
  loadMigrations,
  type Migration,
  type MigrationReport,
} from "../stores/postgres_migrate.ts";

/** A candidate admission: the first occurrence of a dedupe key in a batch. */
export interface AdmissionRow {
  readonly dedupeKey: string;
  readonly platformRunId: string;
  readonly eventClass: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly payloadHash: string;
  /** The envelope as JSON text (`JSON.stringify`, so without line breaks). */
  readonly envelope: string;
}

/** What decides a later attempt with the same key. */
export interface StoredAdmission {
  readonly dedupeKey: string;
  readonly payloadHash: string;
  readonly admittedSeq: number;
  readonly admittedAtUtc: string;
}

/** A stored admission with everything a receipt is rebuilt from. */
export interface AdmissionRecord extends StoredAdmission {
  readonly platformRunId: string;
  readonly eventClass: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly envelope: string;
}

/** One quarantined attempt. */
export interface QuarantineRow {
  readonly platformRunId: string;
  readonly eventId: string | null;
  readonly eventType: string | null;
  readonly reasonCode: string;
  readonly detail: string | null;
  /** The quarantine record as JSON text. */
  readonly record: string;
}

/** A stored quarantined attempt. */
export interface QuarantineRecordRow {
  readonly quarantineSeq: number;
  readonly receivedAtUtc: string;
  readonly reasonCode: string;
  readonly detail: string | null;
  readonly record: string;
}

/** Decisions of one platform run. */
export interface RunCounts {
  readonly admitted: number;
  readonly duplicate: number;
  readonly quarantined: number;
}

/** The writes of one batch, inside its transaction. */
export interface IgTx {
  /** Inserts the candidates in order; returns the keys it admitted with their admitted_seq. */
  readonly insertAdmissions: (
    rows: ReadonlyArray<AdmissionRow>,
    admittedAtUtc: string,
  ) => Effect.Effect<ReadonlyMap<string, number>, WorldstreamError>;
  /** The stored admissions of `keys` (those that exist). */
  readonly storedAdmissions: (
    keys: ReadonlyArray<string>,
  ) => Effect.Effect<ReadonlyMap<string, StoredAdmission>, WorldstreamError>;
  /** Appends quarantine records and adds counter deltas. */
  readonly recordOutcomes: (outcomes: {
    readonly receivedAtUtc: string;
    readonly quarantines: ReadonlyArray<QuarantineRow>;
    readonly counts: ReadonlyMap<string, RunCounts>;
  }) => Effect.Effect<void, WorldstreamError>;
}

/** Where the gate's migrations live (its own numbering, recorded in `ig_schema_migrations`). */
export const IG_MIGRATIONS_DIR: URL = new URL("../sql/ig/", import.meta.url);

/** The gate's Postgres state. */
export class IgStore extends Context.Service<IgStore, {
  readonly backend: PgBackend;
  /**
   * Runs `f` in one transaction. A deadlock or serialization failure (possible when concurrent
   * batches share keys on a server) rolls back and runs `f` again, up to three attempts.
   */
  readonly transaction: <A, E>(
    f: (tx: IgTx) => Effect.Effect<A, E>,
  ) => Effect.Effect<A, E | WorldstreamError>;
  /** The admissions of those `keys` that exist, in admission order. */
  readonly admissionsByKeys: (
    keys: ReadonlyArray<string>,
  ) => Effect.Effect<ReadonlyArray<AdmissionRecord>, WorldstreamError>;
  /** Every platform run the gate has decided events for. */
  readonly runs: Effect.Effect<ReadonlyArray<string>, WorldstreamError>;
  readonly quarantineByEvent: (
    eventId: string,
  ) => Effect.Effect<ReadonlyArray<QuarantineRecordRow>, WorldstreamError>;
  readonly stats: Effect.Effect<ReadonlyMap<string, RunCounts>, WorldstreamError>;
  /** Up to `limit` admitted envelopes (JSON text) of a run after `afterSeq`, in order. */
  readonly admittedPage: (
    platformRunId: string,
    afterSeq: number,
    limit: number,
  ) => Effect.Effect<
    ReadonlyArray<{ readonly seq: number; readonly envelope: string }>,
    WorldstreamError
  >;
  readonly health: Effect.Effect<void, WorldstreamError>;
}>()("worldstream/ig/IgStore") {
  /** The store on the Postgres of the context, migrated first. */
  static readonly layer: Layer.Layer<IgStore, WorldstreamError, Postgres> = Layer.effect(
    IgStore,
    Effect.gen(function* () {
      yield* migrateIg;
      return yield* makeStore;
    }),
  );
}

const COUNTER_SHARDS = 8;
const RETRYABLE = /\[(40P01|40001)\]/;
const MAX_ATTEMPTS = 3;

const makeStore = Effect.gen(function* () {
  const pg = yield* Postgres;
  const sql = yield* loadQueries;

  const txOps = (tx: PgSql): IgTx => ({
    insertAdmissions: (rows, admittedAtUtc) =>
      rows.length === 0 ? Effect.succeed(new Map()) : tx.query<{
        dedupe_key: string;
        admitted_seq: number;
      }>(sql.insertAdmissions, [
        rows.map((r) => r.dedupeKey),
        rows.map((r) => r.platformRunId),
        rows.map((r) => r.eventClass),
        rows.map((r) => r.eventId),
        rows.map((r) => r.eventType),
        rows.map((r) => r.payloadHash),
        rows.map((r) => r.envelope).join("\n"),
        admittedAtUtc,
      ]).pipe(Effect.map((out) => new Map(out.map((r) => [r.dedupe_key, r.admitted_seq])))),
    storedAdmissions: (keys) =>
      keys.length === 0 ? Effect.succeed(new Map()) : tx.query<{
        dedupe_key: string;
        payload_hash: string;
        admitted_seq: number;
        admitted_at_utc: string;
      }>(sql.storedAdmissions, [keys]).pipe(
        Effect.map((out) => new Map(out.map((r) => [r.dedupe_key, storedOf(r)]))),
      ),
    recordOutcomes: ({ receivedAtUtc, quarantines, counts }) =>
      Effect.gen(function* () {
        if (quarantines.length === 0 && counts.size === 0) return;
        const shard = yield* Random.nextIntBetween(0, COUNTER_SHARDS, { halfOpen: true });
        const runs = [...counts.keys()];
        yield* tx.query(sql.recordOutcomes, [
          receivedAtUtc,
          quarantines.map((q) => q.platformRunId),
          quarantines.map((q) => q.eventId),
          quarantines.map((q) => q.eventType),
          quarantines.map((q) => q.reasonCode),
          quarantines.map((q) => q.detail),
          quarantines.map((q) => q.record),
          shard,
          runs,
          runs.map((r) => counts.get(r)!.admitted),
          runs.map((r) => counts.get(r)!.duplicate),
          runs.map((r) => counts.get(r)!.quarantined),
        ]);
      }),
  });

  const transaction = <A, E>(f: (tx: IgTx) => Effect.Effect<A, E>) => {
    const attempt = (n: number): Effect.Effect<A, E | WorldstreamError> =>
      pg.transaction((tx) => f(txOps(tx))).pipe(
        Effect.catchIf(
          (e): e is E & WorldstreamError =>
            n < MAX_ATTEMPTS && e instanceof WorldstreamError && RETRYABLE.test(e.message),
          () => attempt(n + 1),
        ),
      );
    return attempt(1);
  };

  return IgStore.of({
    backend: pg.backend,
    transaction,
    admissionsByKeys: (keys) =>
      keys.length === 0
        ? Effect.succeed([])
        : pg.query<AdmissionDbRow>(sql.admissionsByKeys, [keys]).pipe(
          Effect.map((rows) => rows.map(admissionOf)),
        ),
    runs: pg.query<{ platform_run_id: string }>(sql.runs).pipe(
      Effect.map((rows) => rows.map((r) => r.platform_run_id)),
    ),
    quarantineByEvent: (eventId) =>
      pg.query<{
        quarantine_seq: number;
        received_at_utc: string;
        reason_code: string;
        detail: string | null;
        record: string;
      }>(sql.quarantineByEvent, [eventId]).pipe(
        Effect.map((rows) =>
          rows.map((r) => ({
            quarantineSeq: r.quarantine_seq,
            receivedAtUtc: r.received_at_utc,
            reasonCode: r.reason_code,
            detail: r.detail,
            record: r.record,
          }))
        ),
      ),
    stats: pg.query<{ platform_run_id: string } & RunCounts>(sql.stats).pipe(
      Effect.map((rows) =>
        new Map(rows.map((r) => [r.platform_run_id, {
          admitted: r.admitted,
          duplicate: r.duplicate,
          quarantined: r.quarantined,
        }]))
      ),
    ),
    admittedPage: (platformRunId, afterSeq, limit) =>
      pg.query<{ admitted_seq: number; envelope: string }>(sql.admittedPage, [
        platformRunId,
        afterSeq,
        limit,
      ]).pipe(
        Effect.map((rows) => rows.map((r) => ({ seq: r.admitted_seq, envelope: r.envelope }))),
      ),
    health: pg.health,
  });
});

interface AdmissionDbRow {
  dedupe_key: string;
  admitted_seq: number;
  platform_run_id: string;
  event_class: string;
  event_id: string;
  event_type: string;
  payload_hash: string;
  admitted_at_utc: string;
  envelope: string;
}

function storedOf(
  r: Pick<
    AdmissionDbRow,
    "dedupe_key" | "payload_hash" | "admitted_seq" | "admitted_at_utc"
  >,
): StoredAdmission {
  return {
    dedupeKey: r.dedupe_key,
    payloadHash: r.payload_hash,
    admittedSeq: r.admitted_seq,
    admittedAtUtc: r.admitted_at_utc,
  };
}

function admissionOf(r: AdmissionDbRow): AdmissionRecord {
  return {
    ...storedOf(r),
    platformRunId: r.platform_run_id,
    eventClass: r.event_class,
    eventId: r.event_id,
    eventType: r.event_type,
    envelope: r.envelope,
  };
}

// ---------------------------------------------------------------------------------------------
// SQL files

const QUERY_NAMES = {
  insertAdmissions: "insert_admissions",
  storedAdmissions: "stored_admissions",
  recordOutcomes: "record_outcomes",
  admissionsByKeys: "admissions_by_keys",
  runs: "runs",
  quarantineByEvent: "quarantine_by_event",
  stats: "stats",
  admittedPage: "admitted_page",
} as const;

type Queries = { readonly [K in keyof typeof QUERY_NAMES]: string };

const loadQueries: Effect.Effect<Queries, WorldstreamError> = Effect.gen(function* () {
  const out: Record<string, string> = {};
  for (const [key, name] of Object.entries(QUERY_NAMES)) {
    const url = new URL(`queries/${name}.sql`, IG_MIGRATIONS_DIR);
    // The queries ship with the code: a missing one is a broken install (a defect), as for
    // worldstream's own SQL files.
    out[key] = yield* Effect.promise(() => Deno.readTextFile(url));
  }
  return out as Queries;
});

// ---------------------------------------------------------------------------------------------
// Migrations: the project's file format and loader, with the gate's own table and lock so the
// gate's numbering never collides with the runtime's in a shared database.

const IG_LOCK_KEY = 0x69676d696772; // "igmigr"

const CREATE_MIGRATIONS_TABLE = `create table if not exists ig_schema_migrations (
  version int primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null
)`;

/** Applies the gate's pending migrations (forward-only, one transaction, under a lock). */
export const migrateIg: Effect.Effect<MigrationReport, WorldstreamError, Postgres> = Effect.gen(
  function* () {
    const migrations = yield* loadMigrations(IG_MIGRATIONS_DIR);
    const pg = yield* Postgres;
    return yield* pg.session((session) =>
      Effect.acquireUseRelease(
        session.query("select pg_advisory_lock($1)", [IG_LOCK_KEY]),
        () =>
          Effect.gen(function* () {
            yield* session.exec(CREATE_MIGRATIONS_TABLE);
            return yield* session.transaction((tx) => applyPending(tx, migrations));
          }),
        () => session.query("select pg_advisory_unlock($1)", [IG_LOCK_KEY]).pipe(Effect.ignore),
      )
    );
  },
).pipe(Effect.withSpan("migrateIg"));

function applyPending(
  tx: PgSql,
  migrations: ReadonlyArray<Migration>,
): Effect.Effect<MigrationReport, WorldstreamError> {
  return Effect.gen(function* () {
    const recorded = yield* tx.query<{ version: number; checksum: string }>(
      "select version, checksum from ig_schema_migrations order by version",
    );
    const byVersion = new Map(recorded.map((r) => [r.version, r.checksum]));
    const latest = recorded.reduce((max, r) => Math.max(max, r.version), 0);
    const applied: Array<string> = [];
    for (const m of migrations) {
      const checksum = byVersion.get(m.version);
      if (checksum !== undefined) {
        if (checksum !== m.checksum) {
          return yield* fail(
            "MIGRATION_CHECKSUM_MISMATCH",
            `Gate migration ${m.name} was edited after it was applied`,
          );
        }
        continue;
      }
      if (m.version < latest) {
        return yield* fail(
          "MIGRATION_FAILED",
          `Gate migration ${m.name} is older than applied version ${latest}; migrations are forward-only`,
        );
      }
      yield* tx.exec(m.sql).pipe(
        Effect.mapError((e) => fail("MIGRATION_FAILED", `Gate migration ${m.name}: ${e.message}`)),
      );
      const now = yield* Clock.currentTimeMillis;
      yield* tx.query(
        "insert into ig_schema_migrations (version, name, checksum, applied_at) values ($1, $2, $3, $4)",
        [m.version, m.name, m.checksum, new Date(now)],
      );
      applied.push(m.name);
    }
    return {
      applied,
      version: Math.max(latest, ...migrations.map((m) => m.version)),
    };
  });
}

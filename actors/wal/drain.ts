/**
 * The WAL drain: a fiber that copies WAL records to Postgres in batches, in append order, and
 * lets the WAL delete what it copied. Every write is idempotent (log rows `on conflict
 * (record_id) do nothing`, receipts through `Receipts.store`, checkpoints by the forward-only
 * upsert), so a batch copied twice — a crash between the Postgres commit and the WAL's drained
 * marker — changes nothing the second time. An operator's `checkpoint_reset` is the one
 * unconditional write; it is applied in WAL order before the batch's later checkpoints, so a
 * batch copied twice ends on the same row.
 *
 * Postgres down: the drain fails, logs, and retries with capped exponential backoff while the
 * WAL keeps growing up to its quota; appends never wait on it. On start, an output resumes from
 * {@link effectiveCheckpoint}, the later of Postgres and the WAL (the WAL alone, said in a log
 * line, while Postgres is unreachable).
 */
import { Context, Duration, Effect, Layer, Schedule } from "effect";
import { supervised } from "../../core/supervise.ts";
import type { WorldstreamError } from "../../schemas/errors.ts";
import type { Receipt } from "../../schemas/receipt.ts";
import { loadStoredCheckpoint, type StoredCheckpoint } from "../../stores/checkpoints.ts";
import { pgQuery, Postgres } from "../../stores/postgres.ts";
import { Receipts } from "../../stores/receipts.ts";
import type { ViewPosition } from "../../stores/stream_view_read.ts";
import { Wal } from "./writer.ts";
import {
  type BusPositionBody,
  type CheckpointBody,
  type CheckpointResetBody,
  type WalBodies,
  walBody,
  type WalKind,
  type WalRecord,
} from "../../stores/wal_records.ts";

/** Copies one batch of records somewhere durable, idempotently. */
export type WalHandler<R> = (
  records: ReadonlyArray<WalRecord>,
) => Effect.Effect<void, WorldstreamError, R>;

/** Tuning of the drain fiber. */
export interface WalDrainOptions {
  /**
   * Pause between drains, in ms (1 000): what waits is durable in the WAL already, and each
   * drain costs Postgres (embedded PGlite above all) a transaction or two.
   */
  readonly intervalMs?: number;
  /** Records per Postgres batch (500). */
  readonly batchSize?: number;
  /** First retry delay after a failed drain, in ms (250); it doubles up to `maxBackoffMs`. */
  readonly backoffMs?: number;
  /** Longest retry delay, in ms (30 000). */
  readonly maxBackoffMs?: number;
  /** How long the last drain on shutdown may take, in ms (5 000). */
  readonly finalDrainMs?: number;
}

/** What the drain has done since it started. */
export interface WalDrainStatus {
  readonly drained: number;
  /** Failed drains in a row (0 once a drain succeeds). */
  readonly failures: number;
  readonly lastError: string | undefined;
  /** The reason code of the last failure (e.g. PG_UNAVAILABLE), cleared by a success. */
  readonly lastReason: string | undefined;
  /** When (epoch ms) a drain last wrote records into the sink: proof that it was reachable. */
  readonly lastWroteAt: number | undefined;
}

/** The background copy of the WAL into Postgres. */
export class WalDrain extends Context.Service<WalDrain, {
  /** Drains everything pending now (waits for a drain already running). */
  readonly drainNow: Effect.Effect<number, WorldstreamError>;
  readonly status: Effect.Effect<WalDrainStatus>;
}>()("worldstream/stores/WalDrain") {
  /** Drains into Postgres (migrations must have run). */
  static readonly layer = (
    options: WalDrainOptions = {},
  ): Layer.Layer<WalDrain, never, Wal | Postgres | Receipts> =>
    Layer.effect(WalDrain, makeDrain(writeToPostgres, options));

  /** Drains with any handler (another sink, or a test's). */
  static readonly layerWith = <R>(
    handler: WalHandler<R>,
    options: WalDrainOptions = {},
  ): Layer.Layer<WalDrain, never, Wal | R> => Layer.effect(WalDrain, makeDrain(handler, options));
}

function makeDrain<R>(handler: WalHandler<R>, options: WalDrainOptions) {
  return Effect.gen(function* () {
    const wal = yield* Wal;
    const context = yield* Effect.context<R>();
    const intervalMs = options.intervalMs ?? 1000;
    const backoffMs = options.backoffMs ?? 250;
    const maxBackoffMs = options.maxBackoffMs ?? 30_000;
    let status: WalDrainStatus = {
      drained: 0,
      failures: 0,
      lastError: undefined,
      lastReason: undefined,
      lastWroteAt: undefined,
    };

    const drainNow = wal.drainOnce(handler, { batchSize: options.batchSize ?? 500 }).pipe(
      Effect.provideContext(context),
      Effect.tap((n) =>
        Effect.sync(() => {
          status = {
            drained: status.drained + n,
            failures: 0,
            lastError: undefined,
            lastReason: undefined,
            lastWroteAt: n > 0 ? Date.now() : status.lastWroteAt,
          };
        })
      ),
      Effect.tapError((e) =>
        Effect.gen(function* () {
          status = {
            ...status,
            failures: status.failures + 1,
            lastError: e.message,
            lastReason: e.reason,
          };
          yield* Effect.logWarning(
            `WAL drain failed (${status.failures} in a row); will retry: ${e.message}`,
          ).pipe(Effect.annotateLogs({ reason: e.reason }));
        })
      ),
    );

    const backoff = Schedule.min([
      Schedule.exponential(Duration.millis(backoffMs)),
      Schedule.spaced(Duration.millis(maxBackoffMs)),
    ]).pipe(Schedule.jittered);

    // Registered before the fork, so it runs after the fiber is interrupted: one last drain
    // copies what the actors appended while shutting down.
    yield* Effect.addFinalizer(() =>
      drainNow.pipe(
        Effect.timeout(Duration.millis(options.finalDrainMs ?? 5_000)),
        Effect.catch((e) =>
          Effect.logWarning(`Final WAL drain did not finish; the WAL keeps the rest: ${e}`)
        ),
      )
    );
    yield* Effect.forkScoped(supervised(
      "wal_drain",
      drainNow.pipe(
        Effect.retry(backoff),
        Effect.repeat(Schedule.spaced(Duration.millis(intervalMs))),
      ),
    ));

    return WalDrain.of({ drainNow, status: Effect.sync(() => status) });
  });
}

// ---------------------------------------------------------------------------------------------
// The Postgres handler

const INSERTS: {
  readonly [K in Exclude<WalKind, "checkpoint" | "receipt" | "bus_position" | "checkpoint_reset">]:
    string;
} = {
  dead_letter: pgQuery("wal_drain_dead_letters"),
  ready_ledger: pgQuery("wal_drain_ready_ledger"),
  audit: pgQuery("wal_drain_audit_events"),
  budget: pgQuery("wal_drain_budget_ledger"),
  policy_snapshot: pgQuery("wal_drain_policy_snapshots"),
  // Last: a retry updates the dead letter it follows, which may be in the same batch.
  dead_letter_retry: pgQuery("wal_drain_dead_letter_retries"),
  approval: pgQuery("wal_drain_approvals"),
};
const SAVE_CHECKPOINTS = pgQuery("checkpoint_save");
const RESET_CHECKPOINTS = pgQuery("checkpoint_reset");
const SAVE_BUS_POSITIONS = pgQuery("bus_position_save");

/**
 * Writes a batch to its tables: one transaction with a multi-row insert per log kind and one
 * forward-only upsert of the furthest checkpoint per output, then the receipts, in chain order. A record whose body no
 * longer decodes is kept as a `WAL_RECORD_UNREADABLE` audit event rather than blocking the drain.
 */
export const writeToPostgres = Effect.fn("WalDrain.writeToPostgres")(function* (
  records: ReadonlyArray<WalRecord>,
) {
  const pg = yield* Postgres;
  const rows = new Map<keyof typeof INSERTS, Array<Record<string, unknown>>>();
  const receipts: Array<Receipt> = [];
  const checkpoints = new Map<string, CheckpointRow>();
  // The last reset per output in this batch; the checkpoints above are those after it.
  const resets = new Map<string, { readonly body: CheckpointResetBody; readonly at: string }>();
  const positions = new Map<string, { readonly body: BusPositionBody; readonly at: string }>();
  const add = (kind: keyof typeof INSERTS, row: Record<string, unknown>) => {
    const list = rows.get(kind) ?? [];
    list.push(row);
    rows.set(kind, list);
  };
  for (const record of records) {
    const body = yield* walBody(record).pipe(Effect.result);
    if (body._tag === "Failure") {
      yield* Effect.logWarning(
        `WAL record ${record.record_id} (${record.kind}) is unreadable; kept as an audit event: ` +
          body.failure.message,
      );
      add("audit", {
        record_id: `wal-unreadable:${record.record_id}`,
        at: record.at,
        kind: "WAL_RECORD_UNREADABLE",
        detail: { record, problem: body.failure.message },
      });
      continue;
    }
    switch (record.kind) {
      case "receipt":
        receipts.push(body.success as WalBodies["receipt"]);
        break;
      case "checkpoint": {
        const c = { body: body.success as CheckpointBody, at: record.at };
        const key = `${c.body.pack_key}\u0000${c.body.output_id}`;
        const known = checkpoints.get(key);
        // One upsert statement may touch a row only once: keep the furthest per output (at an
        // equal sequence the later record, which has paid the receipt the earlier one owed).
        if (known === undefined || known.body.last_seq <= c.body.last_seq) checkpoints.set(key, c);
        break;
      }
      case "checkpoint_reset": {
        const r = { body: body.success as CheckpointResetBody, at: record.at };
        const key = `${r.body.pack_key}\u0000${r.body.output_id}`;
        // In WAL order: the reset replaces what came before it in the batch; checkpoints after
        // it go forward from it (applied after the resets, by the forward-only upsert).
        checkpoints.delete(key);
        resets.set(key, r);
        break;
      }
      case "bus_position": {
        const p = { body: body.success as BusPositionBody, at: record.at };
        const key = `${p.body.stream}\u0000${p.body.shard_id}`;
        // One upsert may touch a row only once: keep the furthest per shard.
        positions.set(key, furthestPosition(positions.get(key), p));
        break;
      }
      case "approval": {
        // One upsert may touch a row only once: keep the last record per approval (it carries
        // the whole row, so a decision alone inserts a row the batch also parked).
        const row = {
          ...(body.success as WalBodies["approval"]),
          record_id: record.record_id,
          at: record.at,
        };
        const list = rows.get("approval") ?? [];
        const known = list.findIndex((r) => r.approval_id === row.approval_id);
        if (known >= 0) list.splice(known, 1);
        list.push(row);
        rows.set("approval", list);
        break;
      }
      default:
        add(record.kind, { ...body.success, record_id: record.record_id, at: record.at });
    }
  }
  if (rows.size > 0 || checkpoints.size > 0 || positions.size > 0 || resets.size > 0) {
    yield* pg.transaction((tx) =>
      Effect.gen(function* () {
        for (const kind of Object.keys(INSERTS) as Array<keyof typeof INSERTS>) {
          const list = rows.get(kind);
          if (list !== undefined) yield* tx.query(INSERTS[kind], [JSON.stringify(list)]);
        }
        // Resets first: they are older than the batch's checkpoints of the same output.
        if (resets.size > 0) yield* tx.query(RESET_CHECKPOINTS, resetColumns(resets.values()));
        if (checkpoints.size > 0) yield* tx.query(SAVE_CHECKPOINTS, checkpointColumns(checkpoints));
        if (positions.size > 0) {
          const list = [...positions.values()];
          yield* tx.query(SAVE_BUS_POSITIONS, [
            list.map((p) => p.body.stream),
            list.map((p) => p.body.shard_id),
            list.map((p) => p.body.sequence_number ?? ""),
            list.map((p) => String(p.body.finished)),
            list.map((p) => p.at),
          ]);
        }
      })
    );
  }
  if (receipts.length > 0) yield* (yield* Receipts).store(receipts);
});

// The parameters of stores/checkpoints.ts's forward-only upsert. Times go as ISO text: the
// server client cannot bind an array of Dates to timestamptz[].
function checkpointColumns(checkpoints: ReadonlyMap<string, CheckpointRow>) {
  const list = [...checkpoints.values()];
  return [
    list.map((c) => c.body.pack_key),
    list.map((c) => c.body.output_id),
    list.map((c) => c.body.last_seq),
    list.map((c) => c.body.last_file),
    list.map((c) => c.body.last_row_index),
    list.map((c) => c.body.last_ts_utc),
    list.map((c) => c.at),
    list.map((c) => c.body.receipt_owed === undefined ? "" : JSON.stringify(c.body.receipt_owed)),
  ];
}

// The parameters of checkpoint_reset.sql (times as ISO text, like checkpointColumns).
function resetColumns(
  resets: Iterable<{ readonly body: CheckpointResetBody; readonly at: string }>,
) {
  const list = [...resets];
  return [
    list.map((r) => r.body.pack_key),
    list.map((r) => r.body.output_id),
    list.map((r) => r.body.last_seq),
    list.map((r) => r.body.last_file),
    list.map((r) => r.body.last_row_index),
    list.map((r) => r.body.last_ts_utc),
    list.map((r) => r.body.previous.last_seq),
    list.map((r) => r.body.previous.last_file),
    list.map((r) => r.body.previous.last_row_index),
    list.map((r) => r.body.previous.last_ts_utc),
    list.map((r) => r.at),
  ];
}

/** The further of two positions of one shard (a finished one is further at an equal sequence). */
function furthestPosition<P extends { readonly body: BusPositionBody }>(a: P | undefined, b: P): P {
  if (a === undefined) return b;
  const seq = (p: P) => BigInt(p.body.sequence_number ?? "-1");
  if (seq(a) !== seq(b)) return seq(a) > seq(b) ? a : b;
  return a.body.finished && !b.body.finished ? a : b;
}

interface CheckpointRow {
  readonly body: CheckpointBody;
  readonly at: string;
}

function toPosition(body: CheckpointBody): ViewPosition {
  return {
    seq: body.last_seq,
    filename: body.last_file,
    file_row_number: body.last_row_index,
    ts_utc: body.last_ts_utc,
  };
}

/**
 * Where an output resumes: the later (higher `last_seq`) of its Postgres checkpoint and any WAL
 * checkpoint record not yet drained, or `undefined` when it never delivered anything. A
 * `checkpoint_reset` this WAL holds wins over a higher Postgres checkpoint: it is newer.
 *
 * Postgres unreachable (PG_UNAVAILABLE): the WAL's checkpoint alone, with a `degraded` warning.
 * That is safe because a checkpoint may only err backwards: Postgres can hold a later one that
 * was drained, so the output re-sends from an earlier event, and the gate answers DUPLICATE for
 * what it already admitted (event ids are deterministic). Nothing is skipped.
 */
export const effectiveCheckpoint = (
  packKey: string,
  outputId: string,
): Effect.Effect<ViewPosition | undefined, WorldstreamError, Wal | Postgres> =>
  Effect.map(resumePoint(packKey, outputId), (c) => c?.position);

/**
 * {@link effectiveCheckpoint} with the delivery receipt that checkpoint is still owed (a crash
 * came between the checkpoint and its coalesced receipt), which the resumed lane writes first.
 */
export const resumePoint = Effect.fn("resumePoint")(function* (
  packKey: string,
  outputId: string,
): Effect.fn.Return<StoredCheckpoint | undefined, WorldstreamError, Wal | Postgres> {
  const fromWal = yield* (yield* Wal).checkpoint(packKey, outputId);
  const fromPg = yield* loadStoredCheckpoint(packKey, outputId).pipe(
    Effect.catchIf(
      (e) => e.reason === "PG_UNAVAILABLE",
      (e) =>
        Effect.logWarning("degraded: Postgres unreachable; resuming from the WAL's checkpoint")
          .pipe(
            Effect.annotateLogs({
              pack_key: packKey,
              output_id: outputId,
              wal_seq: fromWal?.body.last_seq ?? null,
              error: e.message,
            }),
            Effect.as(undefined),
          ),
    ),
  );
  if (fromWal === undefined) return fromPg;
  const wal = { position: toPosition(fromWal.body), owed: fromWal.body.receipt_owed };
  // An operator's reset in this WAL is newer than Postgres whatever their sequences say: the
  // position it set (or a later checkpoint after it) wins, backwards too.
  if (fromWal.reset) return wal;
  // At an equal sequence the WAL's record is the same or a later one (it paid a receipt owed).
  return fromPg === undefined || fromPg.position.seq <= wal.position.seq ? wal : fromPg;
});

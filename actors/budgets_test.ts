import assert from "node:assert/strict";
import { join } from "node:path";
import { Clock, Context, Deferred, Effect, Layer } from "effect";
import { TestClock } from "effect/testing";
import { RECEIPT_KEY_ENV, signerFromEnv } from "../core/receipt_keys.ts";
import { utf8Length } from "../core/budget.ts";
import type { Budget } from "../schemas/profile.ts";
import { pgTest, tempDir } from "../stores/postgres_testing.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { Postgres } from "../stores/postgres.ts";
import { Receipts } from "../stores/receipts.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import type { BudgetBody, WalRecord } from "../stores/wal_records.ts";
import { loadBudgetLedger, makeRunBudgets, type RunBudgetSubject } from "./budgets.ts";
import type { EmitBatch, Lane, LaneStats } from "./courier.ts";
import { Journal } from "./journal.ts";
import { LatenessStats } from "./lateness.ts";
import { type EnvelopeSource, runStreamer } from "./streamer.ts";
import { writeToPostgres } from "./wal/drain.ts";
import { Wal } from "./wal/writer.ts";

// Budgets as the streamer meets them: rates pace hand-overs on the Effect Clock (TestClock here),
// hard caps cut them at exactly the cap and charge the ledger through the real WAL and journal,
// and a second run over what the ledger holds (drained to Postgres) hands over nothing more.

const SECOND_US = 1_000_000;
const T0_US = Date.UTC(2026, 0, 1) * 1000;
const W0_MS = 1_000_000;
const SUBJECT: RunBudgetSubject = {
  runKey: "pack-1",
  platformRunId: "platform_run_1",
  principal: "svc:world_stream_producer",
};

/** A view of events at `offsetsUs` after T0, from sequence `start`, read 4 at a time. */
function source(
  offsetsUs: ReadonlyArray<number>,
  options: { readonly start?: number; readonly envelope?: (seq: number) => string } = {},
): EnvelopeSource {
  let at = options.start ?? 0;
  const envelope = options.envelope ?? ((seq: number) => `{"event_id":"e${seq}"}`);
  return {
    next: Effect.sync(() => {
      if (at >= offsetsUs.length) return undefined;
      const start = at;
      const seqs = offsetsUs.slice(start, start + 4).map((_, i) => start + i);
      at += seqs.length;
      return {
        envelopes: seqs.map(envelope),
        eventIds: seqs.map((s) => `e${s}`),
        tsMicros: seqs.map((s) => T0_US + offsetsUs[s]),
        positionAt: (i: number): ViewPosition => ({
          seq: start + i,
          ts_utc: "",
          filename: "part-00000.parquet",
          file_row_number: start + i,
        }),
      };
    }),
  };
}

/** A lane that records each hand-over with its (Clock) time. */
function recordingLane() {
  const handed: Array<{ readonly atMs: number; readonly batch: EmitBatch<ViewPosition> }> = [];
  const stats: LaneStats = {
    emitted: 0,
    admitted: 0,
    duplicate: 0,
    quarantined: 0,
    requests: 0,
    retries: 0,
    deadLettered: 0,
    pacing: new LatenessStats(),
    lateness: new LatenessStats(),
  };
  const lane: Lane<ViewPosition> = {
    send: (batch) =>
      Effect.gen(function* () {
        handed.push({ atMs: yield* Clock.currentTimeMillis, batch });
      }),
    finish: Effect.succeed(stats),
    stats: Effect.succeed(stats),
  };
  const timeline = () =>
    handed.flatMap(({ atMs, batch }) => batch.eventIds.map(() => atMs - W0_MS));
  const ids = () => handed.flatMap(({ batch }) => batch.eventIds);
  const envelopes = () => handed.flatMap(({ batch }) => batch.envelopes);
  return { lane, timeline, ids, envelopes, handed };
}

/** Streams `src` under `budgets` through a recording lane. */
function stream(
  src: EnvelopeSource,
  budgets: ReturnType<typeof makeRunBudgets>,
  options: { readonly speedup?: number; readonly batchSize?: number; readonly outputId?: string },
) {
  return Effect.gen(function* () {
    const recorder = recordingLane();
    const outputId = options.outputId ?? "out";
    const budget = budgets.output(outputId);
    const outcome = yield* runStreamer({
      outputId,
      source: src,
      pacing: { speedup: options.speedup ?? 0, w0Ms: W0_MS, t0Us: T0_US },
      caps: {},
      batchSize: options.batchSize ?? 100,
      lane: recorder.lane,
      stop: yield* Deferred.make<void>(),
      ...(budget ? { budget } : {}),
    });
    return { outcome, ...recorder };
  });
}

/** Runs on a TestClock set to W0 that a forked fiber moves far ahead. */
const onTestClock = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      yield* TestClock.setTime(W0_MS);
      yield* Effect.forkChild(TestClock.adjust("1 day"));
      return yield* effect;
    }).pipe(Effect.provide(TestClock.layer())),
  );

function rateOnly(budgets: ReadonlyArray<Budget>) {
  return Effect.map(
    Deferred.make<void>(),
    (stop) => makeRunBudgets({ subject: SUBJECT, budgets, usage: [], stop }),
  );
}

// ---------------------------------------------------------------------------------------------
// Rates pace

Deno.test("an events/s rate paces an unpaced stream: a second's burst, then one event per 1/rate", async () => {
  const { timeline, outcome } = await onTestClock(Effect.gen(function* () {
    const budgets = yield* rateOnly([{ scope: "output", match: "*", events_per_second: 10 }]);
    return yield* stream(source(Array.from({ length: 40 }, () => 0)), budgets, {});
  }));
  assert.equal(outcome.stoppedBy, "end", "a rate never stops the output");
  assert.deepEqual(
    timeline(),
    Array.from({ length: 40 }, (_, i) => i < 10 ? 0 : (i - 9) * 100),
  );
});

Deno.test("a rate and the speedup pacing combine: no event before it is due, none faster than the rate", async () => {
  // Ten events at T0 and ten 5 s later, speedup 1, at most 5 events a second.
  const offsets = [...Array(10).fill(0), ...Array(10).fill(5 * SECOND_US)];
  const { timeline } = await onTestClock(Effect.gen(function* () {
    const budgets = yield* rateOnly([{ scope: "run", match: "platform_*", events_per_second: 5 }]);
    return yield* stream(source(offsets), budgets, { speedup: 1 });
  }));
  assert.deepEqual(timeline(), [
    ...[0, 0, 0, 0, 0, 200, 400, 600, 800, 1000],
    ...[5000, 5000, 5000, 5000, 5000, 5200, 5400, 5600, 5800, 6000],
  ]);
});

Deno.test("a bytes/s rate paces by envelope size, and a rate far above the stream changes nothing", async () => {
  // Each envelope is 100 bytes; 500 bytes a second is five events a second.
  const envelope = (seq: number) => `{"e":"${String(seq).padStart(92, "0")}"}`;
  assert.equal(utf8Length(envelope(0)), 100);
  const { timeline } = await onTestClock(Effect.gen(function* () {
    const budgets = yield* rateOnly([{ scope: "output", match: "out", bytes_per_second: 500 }]);
    return yield* stream(source(Array(8).fill(0), { envelope }), budgets, {});
  }));
  assert.deepEqual(timeline(), [0, 0, 0, 0, 0, 200, 400, 600]);

  const fast = await onTestClock(Effect.gen(function* () {
    const budgets = yield* rateOnly([{ scope: "output", match: "*", events_per_second: 1e9 }]);
    return yield* stream(source(Array.from({ length: 40 }, (_, i) => i * SECOND_US)), budgets, {
      speedup: 10,
    });
  }));
  assert.deepEqual(fast.timeline(), Array.from({ length: 40 }, (_, i) => i * 100));
});

// ---------------------------------------------------------------------------------------------
// Hard caps stop, durably

const HMAC_ENV = { [RECEIPT_KEY_ENV.hmac]: "budgets-test-hmac-key-0123456789abcdef" };

/** A real WAL in a temporary folder, the journal over it and its receipts store. */
const services = Effect.gen(function* () {
  yield* migrate;
  const signer = yield* signerFromEnv(HMAC_ENV);
  const built = yield* Layer.build(
    Journal.layer(signer).pipe(
      Layer.provideMerge(Receipts.layer(signer)),
      Layer.provideMerge(Wal.layer({ dir: join(yield* tempDir, "wal") })),
    ),
  );
  return {
    wal: Context.get(built, Wal),
    journal: Context.get(built, Journal),
    receipts: Context.get(built, Receipts),
  };
});

type Services = Effect.Success<typeof services>;

/** The run's budgets over what the ledger (Postgres + the WAL) holds now. */
function capped(s: Services, budgets: ReadonlyArray<Budget>) {
  return Effect.gen(function* () {
    const usage = yield* loadBudgetLedger(SUBJECT).pipe(Effect.provideService(Wal, s.wal));
    const stop = yield* Deferred.make<void>();
    return makeRunBudgets({ subject: SUBJECT, budgets, usage, stop, journal: s.journal });
  });
}

function budgetRecords(records: ReadonlyArray<WalRecord>) {
  return records.filter((r) => r.kind === "budget").map((r) => r.body as unknown as BudgetBody);
}

function receiptsOf(records: ReadonlyArray<WalRecord>, kind: string) {
  return records.filter((r) => r.kind === "receipt").map((r) =>
    r.body as unknown as {
      kind: string;
      status: string;
      badges: ReadonlyArray<string>;
      output_id: string;
      detail: Record<string, unknown>;
    }
  ).filter((r) => r.kind === kind);
}

pgTest(
  "a cap of N events hands over exactly N across batches, stops with a budget_exceeded receipt, and a rerun hands over nothing more",
  () =>
    Effect.gen(function* () {
      const s = yield* services;
      const budgets: ReadonlyArray<Budget> = [{ scope: "output", match: "out", max_events: 7 }];
      const offsets = Array(20).fill(0);
      const first = yield* stream(source(offsets), yield* capped(s, budgets), { batchSize: 5 });
      assert.equal(first.outcome.stoppedBy, "budget");
      assert.deepEqual(first.ids(), ["e0", "e1", "e2", "e3", "e4", "e5", "e6"]);
      assert.match(first.outcome.message ?? "", /caps events at 7 and 7 are used/);

      const records = yield* s.wal.pending;
      const charges = budgetRecords(records).filter((b) => !b.exceeded && b.metric === "events");
      assert.equal(charges.reduce((n, b) => n + b.amount, 0), 7, "7 events charged");
      const [receipt] = receiptsOf(records, "budget_exceeded");
      assert.equal(receipt.status, "hard_block");
      assert.deepEqual(receipt.badges, ["budget_exceeded"]);
      assert.deepEqual(receipt.detail.annotations, {
        action: "wsp.stream",
        cost: { events: 1, bytes: utf8Length('{"event_id":"e7"}') },
      });

      // Into Postgres, as the drain does; the next run reads it there.
      yield* s.wal.drainOnce((batch) =>
        writeToPostgres(batch).pipe(Effect.provideService(Receipts, s.receipts))
      );
      const pg = yield* Postgres;
      const [stored] = yield* pg.query<{ amount: string }>(
        "select sum(amount)::text as amount from ws_budget_ledger where metric = 'events'",
      );
      assert.equal(stored.amount, "7");

      // A rerun from the checkpoint (after e6): nothing more.
      const rerun = yield* stream(source(offsets, { start: 7 }), yield* capped(s, budgets), {});
      assert.equal(rerun.outcome.stoppedBy, "budget");
      assert.deepEqual(rerun.ids(), []);
      // A rerun after a crash, its checkpoint behind what was charged: the re-sends (e5, e6) go
      // free, and still nothing past the cap.
      const resent = yield* stream(source(offsets, { start: 5 }), yield* capped(s, budgets), {});
      assert.equal(resent.outcome.stoppedBy, "budget");
      assert.deepEqual(resent.ids(), ["e5", "e6"]);
    }),
);

pgTest(
  "a byte cap hands over the longest prefix whose UTF-8 bytes stay within it",
  () =>
    Effect.gen(function* () {
      const s = yield* services;
      // Envelopes of 20, 21, 22, ... bytes, some multi-byte (é is 2 bytes, 😀 4).
      const envelope = (seq: number) => `{"n":"${"é".repeat(seq % 3)}😀${"x".repeat(seq)}"}`;
      const sizes = Array.from({ length: 30 }, (_, i) => utf8Length(envelope(i)));
      const cap = sizes.slice(0, 12).reduce((a, b) => a + b, 0) + sizes[12] - 1;
      const budgets: ReadonlyArray<Budget> = [{ scope: "run", match: "*", max_bytes: cap }];
      const run = yield* stream(
        source(Array(30).fill(0), { envelope }),
        yield* capped(s, budgets),
        {
          batchSize: 8,
        },
      );
      assert.equal(run.outcome.stoppedBy, "budget");
      assert.equal(run.ids().length, 12, "12 fit, the 13th would pass the cap by one byte");
      const sent = run.envelopes().reduce((n, e) => n + new TextEncoder().encode(e).length, 0);
      assert.ok(sent <= cap && sent + sizes[12] > cap);
      const bytes = budgetRecords(yield* s.wal.pending).filter((b) =>
        !b.exceeded && b.metric === "bytes"
      );
      assert.equal(bytes.reduce((n, b) => n + b.amount, 0), sent);
    }),
);

pgTest(
  "a run cap is shared by the run's outputs streaming at once: exactly the cap in all",
  () =>
    Effect.gen(function* () {
      const s = yield* services;
      const budgets = yield* capped(s, [{ scope: "run", match: "platform_run_1", max_events: 25 }]);
      const [a, b] = yield* Effect.all([
        stream(source(Array(40).fill(0)), budgets, { batchSize: 3, outputId: "a" }),
        stream(source(Array(40).fill(0)), budgets, { batchSize: 3, outputId: "b" }),
      ], { concurrency: "unbounded" });
      assert.equal(a.ids().length + b.ids().length, 25);
      assert.equal(a.outcome.stoppedBy, "budget");
      assert.equal(b.outcome.stoppedBy, "budget");
    }),
);

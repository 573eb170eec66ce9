/**
 * Metrics: the runtime's Prometheus metrics (core/metrics.ts holds the registry and the text
 * format). The streaming path feeds it directly and cheaply: each output's counters, histograms
 * and gauges are looked up once when its courier lane opens ({@link Metrics.output}) and then
 * updated as plain numbers. What other actors already know (the WAL backlog, the run queue) is
 * read only when `/metrics` is scraped, through collectors registered for a scope.
 *
 * Like Health, one is made before the runtime (`Metrics.make`) so the admin API can serve it from
 * start to shutdown, and handed to the runtime (`RuntimeOptions.metrics`).
 */
import { Clock, Context, Effect, Layer, type Scope } from "effect";
import { type Counter, type Gauge, type Histogram, Registry } from "../core/metrics.ts";
import { Wal } from "./wal/writer.ts";

/** Gate request latency buckets, seconds. */
export const REQUEST_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** Pacing lateness buckets, seconds: the latency ones, and 30 s and 60 s for a stalled schedule. */
export const LATENESS_BUCKETS = [...REQUEST_BUCKETS, 30, 60];

/** One output's instruments, fetched once per lane and updated in place. */
export interface OutputMetrics {
  /** Envelopes the streamer handed to the courier. */
  readonly emitted: Counter;
  /** Envelopes the gate answered with a decision (admitted + duplicate + quarantined). */
  readonly delivered: Counter;
  readonly admitted: Counter;
  readonly duplicate: Counter;
  readonly quarantined: Counter;
  readonly deadLettered: Counter;
  /** Gate requests that were retries (attempt 2 and later). */
  readonly retries: Counter;
  /** Seconds per gate request (each attempt on its own). */
  readonly requestSeconds: Histogram;
  /** Seconds from each event's due time to its hand-over (paced streams only). */
  readonly pacingLateness: Histogram;
  /** Envelopes handed to the lane and not yet acknowledged. */
  readonly queued: Gauge;
  /**
   * Due time (epoch ms, Clock) of the latest event handed over while paced, NaN otherwise:
   * `/metrics` reports how far the clock has run past it as the lag behind the schedule.
   */
  lastDueMs: number;
  /** True while the streamer sleeps until its next event falls due (it is on schedule). */
  waiting: boolean;
}

/** The metrics service. */
export class Metrics extends Context.Service<Metrics, {
  readonly registry: Registry;
  /** The instruments of `outputId` (the same objects every time: keep them). */
  readonly output: (outputId: string) => OutputMetrics;
  /** Runs `collect` before every render while the scope is open (values owned elsewhere). */
  readonly collect: (collect: Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>;
  /** Runtime-wide gauges that collectors set. */
  readonly gauges: {
    readonly walPendingBytes: Gauge;
    readonly walPendingRecords: Gauge;
    readonly walQuotaBytes: Gauge;
    readonly runQueue: Gauge;
  };
  /** The Prometheus text exposition, collectors run first. */
  readonly render: Effect.Effect<string>;
}>()("worldstream/actors/Metrics") {
  /** A fresh set of metrics, every family registered, no output seen yet. */
  static readonly make: Effect.Effect<Metrics["Service"]> = Effect.sync(() => {
    const r = new Registry();
    const byOutput = ["output_id"];
    const counter = (name: string, help: string) => r.counter(name, help, byOutput);
    const families = {
      emitted: counter(
        "worldstream_events_emitted_total",
        "Envelopes handed by the streamer to the courier",
      ),
      delivered: counter(
        "worldstream_events_delivered_total",
        "Envelopes the gate answered with a decision (admitted, duplicate or quarantined)",
      ),
      admitted: counter("worldstream_events_admitted_total", "Envelopes the gate admitted"),
      duplicate: counter(
        "worldstream_events_duplicate_total",
        "Envelopes the gate answered DUPLICATE (already admitted)",
      ),
      quarantined: counter(
        "worldstream_events_quarantined_total",
        "Envelopes the gate quarantined",
      ),
      deadLettered: counter(
        "worldstream_events_dead_lettered_total",
        "Envelopes stored as dead letters (rejected or retries exhausted)",
      ),
      retries: counter("worldstream_gate_retries_total", "Gate requests that were retries"),
      requestSeconds: r.histogram(
        "worldstream_gate_request_duration_seconds",
        "Gate request latency, each attempt on its own",
        byOutput,
        REQUEST_BUCKETS,
      ),
      pacingLateness: r.histogram(
        "worldstream_pacing_lateness_seconds",
        "Hand-over time minus due time of each paced event (early counts as 0)",
        byOutput,
        LATENESS_BUCKETS,
      ),
      queued: r.gauge(
        "worldstream_lane_queued_events",
        "Envelopes in an output's courier lane, handed over and not yet acknowledged",
        byOutput,
      ),
      lag: r.gauge(
        "worldstream_pacing_lag_seconds",
        "How far a paced output is behind its schedule now (0 when on time or unpaced)",
        byOutput,
      ),
    };
    const gauges = {
      walPendingBytes: r.gauge(
        "worldstream_wal_pending_bytes",
        "Bytes of WAL records not yet drained to Postgres",
      ).labels(),
      walPendingRecords: r.gauge(
        "worldstream_wal_pending_records",
        "WAL records not yet drained to Postgres",
      ).labels(),
      walQuotaBytes: r.gauge("worldstream_wal_quota_bytes", "The WAL's disk quota").labels(),
      runQueue: r.gauge(
        "worldstream_run_queue_depth",
        "Runs waiting for the supervisor (the run in flight not counted)",
      ).labels(),
    };
    const outputs = new Map<string, OutputMetrics & { readonly lag: Gauge }>();
    const output = (id: string) => {
      const found = outputs.get(id);
      if (found) return found;
      const made = {
        emitted: families.emitted.labels(id),
        delivered: families.delivered.labels(id),
        admitted: families.admitted.labels(id),
        duplicate: families.duplicate.labels(id),
        quarantined: families.quarantined.labels(id),
        deadLettered: families.deadLettered.labels(id),
        retries: families.retries.labels(id),
        requestSeconds: families.requestSeconds.labels(id),
        pacingLateness: families.pacingLateness.labels(id),
        queued: families.queued.labels(id),
        lag: families.lag.labels(id),
        lastDueMs: NaN,
        waiting: false,
      };
      outputs.set(id, made);
      return made;
    };
    const collectors = new Set<Effect.Effect<void>>();
    return Metrics.of({
      registry: r,
      output,
      gauges,
      collect: (collect) =>
        Effect.acquireRelease(
          Effect.sync(() => void collectors.add(collect)),
          () => Effect.sync(() => void collectors.delete(collect)),
        ),
      render: Effect.gen(function* () {
        for (const collect of [...collectors]) yield* collect;
        const now = yield* Clock.currentTimeMillis;
        for (const o of outputs.values()) {
          o.lag.set(
            o.waiting || Number.isNaN(o.lastDueMs) ? 0 : Math.max(0, now - o.lastDueMs) / 1000,
          );
        }
        return r.render();
      }),
    });
  });

  static readonly layer: Layer.Layer<Metrics> = Layer.effect(Metrics, Metrics.make);

  /** Reports the WAL's backlog on every scrape for the layer's life. */
  static readonly walLayer: Layer.Layer<never, never, Metrics | Wal> = Layer.effectDiscard(
    Effect.gen(function* () {
      const metrics = yield* Metrics;
      const wal = yield* Wal;
      const { walPendingBytes, walPendingRecords, walQuotaBytes } = metrics.gauges;
      yield* metrics.collect(wal.stats.pipe(Effect.map((s) => {
        walPendingBytes.set(s.undrainedBytes);
        walPendingRecords.set(s.records);
        walQuotaBytes.set(s.quotaBytes);
      })));
    }),
  );
}

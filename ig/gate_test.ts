import assert from "node:assert/strict";
import { Context, Effect, Layer, Stream } from "effect";
import type { Postgres } from "../stores/postgres.ts";
import { pgTest, type PgTestContext } from "../stores/postgres_testing.ts";
import {
  envelope,
  envelopeWithout,
  gateLayer,
  payload,
  platformValidator,
  RUN,
} from "./_testing.ts";
import { IgGate, MAX_BATCH, type Outcome } from "./gate.ts";
import { dedupeKey } from "./receipts.ts";

type Gate = IgGate["Service"];

function gateTest(
  name: string,
  body: (gate: Gate, ctx: PgTestContext) => Effect.Effect<void, unknown, Postgres>,
  options: { readonly only?: "pglite" | "server" } = {},
) {
  pgTest(
    name,
    (ctx) =>
      Effect.gen(function* () {
        const gate = yield* IgGate;
        yield* body(gate, ctx);
      }).pipe(Effect.provide(gateLayer())),
    options,
  );
}

function decisions(outcomes: ReadonlyArray<Outcome>): ReadonlyArray<string> {
  return outcomes.map((o) => o.reason === undefined ? o.decision : `${o.decision}:${o.reason}`);
}

gateTest(
  "an admissible envelope is admitted once and a repeat is its duplicate",
  (gate) =>
    Effect.gen(function* () {
      const first = yield* gate.push(envelope(1));
      assert.equal(first.decision, "ADMIT");
      const receipt = first.receipt();
      assert.equal(receipt.event_class, "traffic_fraud");
      assert.equal(receipt.dedupe_key, dedupeKey(RUN, "traffic_fraud", "ev-1"));
      assert.equal(first.receiptRef, `${RUN}/ig/receipts/${receipt.receipt_id}.json`);

      const again = yield* gate.push(envelope(1));
      assert.equal(again.decision, "DUPLICATE");
      const duplicate = again.receipt();
      assert.deepEqual(duplicate.eb_ref, receipt.eb_ref, "a duplicate points at the admission");
      assert.equal(duplicate.admitted_at_utc, receipt.admitted_at_utc);
      assert.deepEqual(duplicate.reason_codes, ["DUPLICATE"]);
      assert.deepEqual(yield* gate.stats, { [RUN]: { admitted: 1, duplicate: 1, quarantined: 0 } });
    }),
);

gateTest(
  "the same event with another payload is quarantined as a payload hash mismatch",
  (gate) =>
    Effect.gen(function* () {
      yield* gate.push(envelope(1));
      const changed = yield* gate.push(envelope(1, { payload: { ...payload(1), amount: 99 } }));
      assert.equal(changed.decision, "QUARANTINE");
      assert.equal(changed.reason, "PAYLOAD_HASH_MISMATCH");
      assert.deepEqual(changed.receipt().reason_codes, ["PAYLOAD_HASH_MISMATCH"]);
      // Another schema version is another payload hash too.
      const versioned = yield* gate.push(envelope(1, { schema_version: "v2" }));
      assert.equal(versioned.reason, "PAYLOAD_HASH_MISMATCH");
    }),
);

gateTest(
  "an envelope without its class pins is quarantined, naming the missing pins",
  (gate) =>
    Effect.gen(function* () {
      const outcome = yield* gate.push(envelopeWithout(1, "run_id", "scenario_run_id"));
      assert.equal(outcome.decision, "QUARANTINE");
      assert.equal(outcome.reason, "PINS_MISSING");
      assert.equal(outcome.detail, "Missing pins: scenario_run_id, run_id");
      const empty = yield* gate.push(envelope(2, { scenario_id: "" }));
      assert.equal(
        empty.reason,
        "ENVELOPE_INVALID",
        "an empty scenario id breaks the envelope first",
      );
    }),
);

gateTest(
  "an envelope that breaks the envelope schema is quarantined, naming the field",
  (gate) =>
    Effect.gen(function* () {
      const badTime = yield* gate.push(envelope(1, { ts_utc: "2026-01-01T00:00:00Z" }));
      assert.equal(badTime.reason, "ENVELOPE_INVALID");
      assert.match(badTime.detail!, /^ts_utc: /);
      const extra = yield* gate.push(envelope(2, { colour: "red" }));
      assert.equal(extra.detail, "colour: Unexpected key (the format does not allow extra keys)");
      const noId = yield* gate.push(envelopeWithout(3, "event_id"));
      assert.equal(noId.detail, "event_id: Missing required key");
      const notObject = yield* gate.push([1, 2]);
      assert.equal(notObject.reason, "ENVELOPE_INVALID");
      assert.equal(notObject.eventId, undefined);
      // The same value passes in one envelope and fails in another: nothing sticks between them.
      assert.equal((yield* gate.push(envelope(4))).decision, "ADMIT");
      const badSeed = yield* gate.push(envelope(5, { seed: -1 }));
      assert.match(badSeed.detail!, /^seed: /);
    }),
);

gateTest(
  "a payload outside its output's row schema is quarantined, naming the field",
  (gate) =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[Record<string, unknown> | undefined, string]> = [
        [
          { ...payload(1), note: "x" },
          "payload.note: Unexpected key (the format does not allow extra keys)",
        ],
        [(({ amount: _, ...rest }) => rest)(payload(2)), "payload.amount: Missing required key"],
        [{ ...payload(3), flow_id: "7" }, "payload.flow_id: must be integer"],
        [{ ...payload(4), campaign_id: 5 }, "payload.campaign_id: must be null,string"],
        [undefined, "payload: Missing required key"],
      ];
      for (const [i, [body, detail]] of cases.entries()) {
        const raw = body === undefined
          ? envelopeWithout(i, "payload")
          : envelope(i, { payload: body });
        const outcome = yield* gate.push(raw);
        assert.equal(outcome.reason, "SCHEMA_FAIL", detail);
        assert.equal(outcome.detail, detail);
      }
      // An open row (arrival events) takes extra fields.
      const arrival = yield* gate.push(envelope(9, {
        event_type: "arrival_events_5B",
        payload: {
          manifest_fingerprint: "a".repeat(64),
          parameter_hash: "b".repeat(64),
          seed: 42,
          scenario_id: "baseline",
          merchant_id: 17,
          zone_representation: "Europe/London",
          bucket_index: 3,
          arrival_seq: 1,
          ts_utc: "2026-01-01T00:00:00.000000Z",
          tzid_primary: "Europe/London",
          ts_local_primary: "2026-01-01T00:00:00.000000",
          is_virtual: false,
          site_id: null,
          something_new: [1, 2],
        },
      }));
      assert.equal(arrival.decision, "ADMIT", arrival.detail);
    }),
);

gateTest("an event type without a schema policy is quarantined", (gate) =>
  Effect.gen(function* () {
    const outcome = yield* gate.push(envelope(1, { event_type: "mystery_output" }));
    assert.equal(outcome.reason, "SCHEMA_POLICY_MISSING");
    assert.equal(outcome.receipt().event_class, "unknown");
  }));

gateTest(
  "a schema version the policy requires must be present and allowed",
  (gate) =>
    Effect.gen(function* () {
      const decision = (n: number, version: string) =>
        envelope(n, { event_type: "decision_response", schema_version: version });
      const { schema_version: _, ...unversioned } = decision(1, "v1");
      assert.equal((yield* gate.push(unversioned)).reason, "SCHEMA_VERSION_REQUIRED");
      assert.equal((yield* gate.push(decision(2, "v9"))).reason, "SCHEMA_VERSION_NOT_ALLOWED");
      assert.equal((yield* gate.push(decision(3, "v1"))).decision, "ADMIT");
    }),
);

gateTest(
  "a batch is decided in input order, later copies of a key against the first",
  (gate) =>
    Effect.gen(function* () {
      yield* gate.push(envelope(0));
      const outcomes = yield* gate.admitBatch([
        envelope(1),
        envelope(2),
        envelope(1),
        envelope(1, { payload: { ...payload(1), amount: 1 } }),
        envelope(0),
        envelope(3, { ts_utc: "soon" }),
        envelope(2),
      ]);
      assert.deepEqual(decisions(outcomes), [
        "ADMIT",
        "ADMIT",
        "DUPLICATE",
        "QUARANTINE:PAYLOAD_HASH_MISMATCH",
        "DUPLICATE",
        "QUARANTINE:ENVELOPE_INVALID",
        "DUPLICATE",
      ]);
      const offsets = outcomes.slice(0, 2).map((o) => Number(o.receipt().eb_ref!.offset));
      assert.ok(offsets[0] < offsets[1], "admission order follows input order");
      assert.deepEqual(yield* gate.stats, { [RUN]: { admitted: 3, duplicate: 3, quarantined: 2 } });
    }),
);

gateTest("an oversized batch is refused whole", (gate) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(gate.admitBatch(new Array(MAX_BATCH + 1).fill(envelope(1))));
    assert.equal(error.reason, "BATCH_TOO_LARGE");
    assert.deepEqual(yield* gate.stats, {});
  }));

gateTest(
  "stats count decisions per platform run, duplicates per attempt",
  (gate) =>
    Effect.gen(function* () {
      const other = "platform_20260202T000000Z";
      yield* gate.admitBatch([envelope(1), envelope(1), envelope(1), envelope(2)]);
      yield* gate.admitBatch([
        envelope(1, { platform_run_id: other }),
        envelopeWithout(3, "run_id"),
      ]);
      yield* gate.push({ event_id: "lost" });
      assert.deepEqual(yield* gate.stats, {
        [RUN]: { admitted: 2, duplicate: 2, quarantined: 1 },
        [other]: { admitted: 1, duplicate: 0, quarantined: 0 },
        unscoped: { admitted: 0, duplicate: 0, quarantined: 1 },
      });
    }),
);

gateTest(
  "lookup finds an event's admissions with receipts and its quarantined attempts",
  (gate) =>
    Effect.gen(function* () {
      const admitted = yield* gate.push(envelope(1));
      yield* gate.push(envelope(1, { payload: { ...payload(1), amount: 2 } }));
      const found = yield* gate.lookup({ eventId: "ev-1" });
      assert.equal(found.admissions.length, 1);
      assert.deepEqual(found.admissions[0].receipt, admitted.receipt());
      assert.equal(found.admissions[0].receipt_ref, admitted.receiptRef);
      assert.deepEqual(found.quarantines.map((q) => q.reason), ["PAYLOAD_HASH_MISMATCH"]);
      const byKey = yield* gate.lookup({ dedupeKey: admitted.receipt().dedupe_key! });
      assert.deepEqual(byKey.admissions, found.admissions);
      const other = "platform_20260202T000000Z";
      yield* gate.push(envelope(1, { platform_run_id: other }));
      const both = yield* gate.lookup({ eventId: "ev-1" });
      assert.deepEqual(both.admissions.map((a) => a.platform_run_id), [RUN, other]);
      const none = yield* gate.lookup({ eventId: "never" });
      assert.deepEqual(none, { admissions: [], quarantines: [] });
    }),
);

gateTest(
  "the admitted log streams a run's envelopes in admission order, page by page",
  (gate) =>
    Effect.gen(function* () {
      const total = 2_600; // more than one page
      const order = Array.from({ length: total }, (_, i) => total - i);
      for (let start = 0; start < total; start += 500) {
        const chunk = order.slice(start, start + 500).map((n) => envelope(n));
        yield* gate.admitBatch([...chunk, chunk[0]]);
      }
      yield* gate.push(envelope(1, { platform_run_id: "platform_20260202T000000Z" }));
      const text = (yield* Stream.runCollect(gate.admitted(RUN))).join("");
      const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines.length, total);
      assert.deepEqual(lines.map((e) => e.event_id), order.map((n) => `ev-${n}`));
      assert.deepEqual(lines[0], envelope(total), "envelopes come back as received");
      assert.equal(
        (yield* Stream.runCollect(gate.admitted("platform_20990101T000000Z"))).length,
        0,
      );
    }),
);

gateTest(
  "concurrent pushes of one envelope admit it exactly once",
  (gate) =>
    Effect.gen(function* () {
      const outcomes = yield* Effect.all(
        Array.from({ length: 40 }, () => gate.push(envelope(7))),
        { concurrency: "unbounded" },
      );
      assert.equal(outcomes.filter((o) => o.decision === "ADMIT").length, 1);
      assert.equal(outcomes.filter((o) => o.decision === "DUPLICATE").length, 39);
    }),
);

gateTest(
  "two gates on separate connections racing on the same events admit each exactly once",
  (gate, ctx) =>
    Effect.gen(function* () {
      const rival = Context.get(
        yield* Layer.build(gateLayer().pipe(Layer.provide(ctx.connectAgain!()))),
        IgGate,
      );
      const events = Array.from({ length: 200 }, (_, i) => envelope(i));
      const rounds = yield* Effect.all(
        [
          gate.admitBatch(events),
          rival.admitBatch(events),
          gate.admitBatch(events.toReversed()),
          Effect.all(events.slice(0, 50).map((e) => rival.push(e)), { concurrency: 10 }),
        ],
        { concurrency: "unbounded" },
      );
      const all = rounds.flat();
      assert.equal(all.filter((o) => o.decision === "ADMIT").length, events.length);
      assert.equal(all.filter((o) => o.decision === "QUARANTINE").length, 0);
      const stats = (yield* gate.stats)[RUN];
      assert.deepEqual(stats, { admitted: 200, duplicate: 450, quarantined: 0 });
    }).pipe(Effect.scoped),
  { only: "server" },
);

gateTest(
  "receipts and quarantine records follow the platform's formats",
  (gate) =>
    Effect.gen(function* () {
      const receiptProblem = platformValidator("ingestion_receipt");
      const recordProblem = platformValidator("quarantine_record");
      const admitted = yield* gate.push(envelope(1));
      const duplicate = yield* gate.push(envelope(1));
      const mismatch = yield* gate.push(envelope(1, { payload: { ...payload(1), amount: 3 } }));
      const pins = yield* gate.push(envelopeWithout(2, "run_id"));
      for (const outcome of [admitted, duplicate, mismatch, pins]) {
        assert.equal(receiptProblem(outcome.receipt()), undefined, outcome.decision);
      }
      const { quarantines } = yield* gate.lookup({ eventId: "ev-1" });
      assert.equal(recordProblem(quarantines[0].quarantine_record), undefined);
    }),
);

import assert from "node:assert/strict";
import { Effect } from "effect";
import type { Hono } from "hono";
import type { Postgres } from "../stores/postgres.ts";
import { pgTest } from "../stores/postgres_testing.ts";
import { envelope, envelopeWithout, gateLayer, payload, RUN } from "./_testing.ts";
import { API_KEY_HEADER, type IgAppOptions, makeIgApp } from "./app.ts";
import { type FaultOptions, makeFaults } from "./faults.ts";
import { IgGate } from "./gate.ts";

function appTest(
  name: string,
  body: (app: Hono) => Effect.Effect<void, unknown, Postgres>,
  options: Omit<IgAppOptions, "faults"> & { readonly faults?: FaultOptions } = {},
) {
  pgTest(name, () =>
    Effect.gen(function* () {
      const gate = yield* IgGate;
      const faults = yield* makeFaults(options.faults ?? {});
      yield* body(makeIgApp(gate, { ...options, faults }));
    }).pipe(Effect.provide(gateLayer())));
}

/** Calls the app and reads the JSON answer. */
function call(
  app: Hono,
  path: string,
  init: { method?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
) {
  return Effect.promise(async () => {
    const body = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
    const response = await app.request(path, {
      method: init.method ?? (body === undefined ? "GET" : "POST"),
      body,
      headers: { "content-type": "application/json", ...init.headers },
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: parseOrText(text) };
  });
}

// Answers are read loosely: the assertions say what shape they expect.
// deno-lint-ignore no-explicit-any
function parseOrText(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const push = (app: Hono, body: unknown, headers?: Record<string, string>) =>
  call(app, "/v1/ingest/push", { body, headers });

appTest(
  "a push is answered with the decision, the receipt and its ref",
  (app) =>
    Effect.gen(function* () {
      const admitted = yield* push(app, envelope(1));
      assert.equal(admitted.status, 200);
      assert.equal(admitted.json.decision, "ADMIT");
      assert.equal(admitted.json.receipt.event_id, "ev-1");
      assert.equal(
        admitted.json.receipt_ref,
        `${RUN}/ig/receipts/${admitted.json.receipt.receipt_id}.json`,
      );
      assert.equal((yield* push(app, envelope(1))).json.decision, "DUPLICATE");
      const mismatch = yield* push(app, envelope(1, { payload: { ...payload(1), amount: 0 } }));
      assert.equal(mismatch.status, 200, "a quarantine is a 200");
      assert.equal(mismatch.json.decision, "QUARANTINE");
      assert.equal(mismatch.json.reason, "PAYLOAD_HASH_MISMATCH");
      assert.deepEqual(mismatch.json.receipt.reason_codes, ["PAYLOAD_HASH_MISMATCH"]);
    }),
);

appTest(
  "bad envelopes are quarantined with the reason and the field",
  (app) =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[unknown, string, string]> = [
        [envelopeWithout(1, "run_id"), "PINS_MISSING", "Missing pins: run_id"],
        [envelope(2, { seed: "42" }), "ENVELOPE_INVALID", 'seed: Expected number, got "42"'],
        [
          envelope(3, { payload: { ...payload(3), extra: true } }),
          "SCHEMA_FAIL",
          "payload.extra: Unexpected key (the format does not allow extra keys)",
        ],
        [
          envelope(4, { event_type: "nope" }),
          "SCHEMA_POLICY_MISSING",
          "event_type: nope has no schema policy",
        ],
        ["just a string", "ENVELOPE_INVALID", "Expected an envelope object"],
      ];
      for (const [body, reason, detail] of cases) {
        const answer = yield* push(app, body);
        assert.equal(answer.status, 200);
        assert.equal(answer.json.decision, "QUARANTINE");
        assert.equal(answer.json.reason, reason);
        assert.equal(answer.json.detail, detail);
      }
    }),
);

appTest("malformed JSON is a 400 and touches nothing", (app) =>
  Effect.gen(function* () {
    const answer = yield* call(app, "/v1/ingest/push", { raw: '{"event_id": ' });
    assert.equal(answer.status, 400);
    assert.equal(answer.json.error, "MALFORMED_JSON");
    const batch = yield* call(app, "/v1/ingest/batch", { raw: "[" });
    assert.equal(batch.status, 400);
    const notEvents = yield* call(app, "/v1/ingest/batch", { body: { event: [] } });
    assert.equal(notEvents.status, 400);
    assert.equal(notEvents.json.error, "BATCH_INVALID");
    assert.deepEqual((yield* call(app, "/v1/ops/stats")).json, {});
  }));

appTest(
  "with an API key configured, a missing or wrong key is a 401 on every route",
  (app) =>
    Effect.gen(function* () {
      assert.equal((yield* push(app, envelope(1))).status, 401);
      assert.equal((yield* push(app, envelope(1), { [API_KEY_HEADER]: "wrong" })).status, 401);
      assert.equal((yield* call(app, "/v1/ops/stats")).status, 401);
      const ok = yield* push(app, envelope(1), { [API_KEY_HEADER]: "s3cret" });
      assert.equal(ok.status, 200);
      assert.equal(ok.json.decision, "ADMIT");
      const health = yield* call(app, "/v1/ops/health", { headers: { "x-ig-api-key": "s3cret" } });
      assert.equal(health.status, 200);
    }),
  { apiKey: "s3cret" },
);

appTest("a batch is answered per event in input order", (app) =>
  Effect.gen(function* () {
    const answer = yield* call(app, "/v1/ingest/batch", {
      body: { events: [envelope(1), envelope(2), envelope(1), envelopeWithout(3, "seed")] },
    });
    assert.equal(answer.status, 200);
    const results = answer.json.results as Array<Record<string, unknown>>;
    assert.deepEqual(results.map((r) => [r.event_id, r.decision, r.reason]), [
      ["ev-1", "ADMIT", undefined],
      ["ev-2", "ADMIT", undefined],
      ["ev-1", "DUPLICATE", undefined],
      ["ev-3", "QUARANTINE", "PINS_MISSING"],
    ]);
    assert.ok(results.every((r) => typeof r.receipt_ref === "string"));
    const empty = yield* call(app, "/v1/ingest/batch", { body: { events: [] } });
    assert.deepEqual(empty.json, { results: [] });
  }));

appTest("ops report health, stats, lookups and the admitted log", (app) =>
  Effect.gen(function* () {
    const health = yield* call(app, "/v1/ops/health");
    assert.equal(health.status, 200);
    assert.equal(health.json.status, "ok");
    assert.ok(["pglite", "server"].includes(health.json.db));

    yield* call(app, "/v1/ingest/batch", { body: { events: [envelope(2), envelope(1)] } });
    yield* push(app, envelope(2));
    yield* push(app, envelopeWithout(3, "run_id"));
    assert.deepEqual((yield* call(app, "/v1/ops/stats")).json, {
      [RUN]: { admitted: 2, duplicate: 1, quarantined: 1 },
    });

    const found = yield* call(app, "/v1/ops/lookup?event_id=ev-2");
    assert.equal(found.status, 200);
    assert.equal(found.json.admissions[0].receipt.decision, "ADMIT");
    const quarantined = yield* call(app, "/v1/ops/lookup?event_id=ev-3");
    assert.equal(quarantined.json.quarantines[0].reason, "PINS_MISSING");
    assert.equal((yield* call(app, "/v1/ops/lookup?event_id=ev-9")).status, 404);
    assert.equal((yield* call(app, "/v1/ops/lookup")).status, 400);

    const log = yield* call(app, `/v1/ops/admitted?platform_run_id=${RUN}`);
    assert.equal(log.status, 200);
    assert.equal(log.headers.get("content-type"), "application/x-ndjson");
    assert.deepEqual(
      log.text.trimEnd().split("\n").map((l) => JSON.parse(l).event_id),
      ["ev-2", "ev-1"],
    );
    assert.equal((yield* call(app, "/v1/ops/admitted")).status, 400);
    assert.equal((yield* call(app, "/v1/ops/nothing")).status, 404);
  }));

appTest(
  "a fail rate of 1 answers every ingest request with the fail status before the gate",
  (app) =>
    Effect.gen(function* () {
      for (let i = 0; i < 5; i++) {
        const answer = yield* push(app, envelope(i));
        assert.equal(answer.status, 503);
        assert.equal(answer.json.error, "IG_UNAVAILABLE");
      }
      const batch = yield* call(app, "/v1/ingest/batch", { body: { events: [envelope(9)] } });
      assert.equal(batch.status, 503);
      assert.equal((yield* call(app, "/v1/ops/health")).status, 200, "ops are not faulted");
      assert.deepEqual((yield* call(app, "/v1/ops/stats")).json, {});
    }),
  { faults: { failRate: 1 } },
);

appTest(
  "a 429 fault tells the client when to retry",
  (app) =>
    Effect.gen(function* () {
      const answer = yield* push(app, envelope(1));
      assert.equal(answer.status, 429);
      assert.equal(answer.headers.get("retry-after"), "1");
      assert.equal(answer.json.error, "RATE_LIMITED");
    }),
  { faults: { failRate: 1, failStatus: 429 } },
);

appTest(
  "a reset fault loses the answer but not the admission",
  (app) =>
    Effect.gen(function* () {
      const lost = yield* Effect.promise(async () => {
        const response = await app.request("/v1/ingest/push", {
          method: "POST",
          body: JSON.stringify(envelope(1)),
        });
        return await response.text().then(() => "read", (e: Error) => e.message);
      });
      assert.equal(lost, "Injected connection reset");
      const found = yield* call(app, "/v1/ops/lookup?event_id=ev-1");
      assert.equal(found.json.admissions.length, 1);
    }),
  { faults: { resetRate: 1 } },
);

appTest(
  "injected latency delays each ingest answer",
  (app) =>
    Effect.gen(function* () {
      const started = performance.now();
      assert.equal((yield* push(app, envelope(1))).status, 200);
      assert.ok(performance.now() - started >= 40);
    }),
  { faults: { latencyMs: 40 } },
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Logger, Schedule } from "effect";
import { publishReady } from "../../actions/publish_ready.ts";
import { genWorld } from "../../scripts/gen_world.ts";
import { DuckDb } from "../../stores/duckdb.ts";
import { ControlBus } from "../../actors/control_bus.ts";
import {
  adminClient,
  adminSite,
  bearer,
  callAdmin,
  OPERATOR,
  VIEWER,
} from "../../tests/_admin_site.ts";
import { fileTempDir, pgliteTemplate, TRAFFIC } from "../../tests/_testing.ts";

// Every route of the admin API through `app.request()`, on a real runtime (PGlite, the WAL, the
// control bus, DuckDB) streaming a generated world into the reference gate: a READY submitted
// through the API is streamed and shows in status, runs, checkpoints and receipts; bad input is
// refused with its status and reason and changes nothing; and, walking /openapi.json, no route
// but /healthz and /readyz answers without a valid token, and a viewer mutates nothing.

const TMP = await fileTempDir("admin_routes_test_");
const TEMPLATE = await pgliteTemplate(join(TMP, "bare"));
const WORLD = join(TMP, "world");
const generated = await Effect.runPromise(
  genWorld({ out: WORLD, events: 400 }).pipe(Effect.provide(DuckDb.layer())),
);
const ROWS = generated.outputs[TRAFFIC];

const op = bearer(OPERATOR);
const viewer = bearer(VIEWER);
const PUBLIC = ["/healthz", "/readyz", "/", "/dashboard.js", "/dashboard.css", "/login", "/logout"];
const quiet = Logger.layer([Logger.make(() => undefined)]);

Deno.test("every route answers through app.request() on a running runtime, bad input changes nothing, and only the probes answer without a token", async () => {
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const dir = join(TMP, "site");
      const { app, context, profile } = yield* adminSite(dir, {
        template: TEMPLATE,
        // Paced so the run lasts a few seconds: long enough to be seen in flight.
        speedup: 150_000,
        beforeRuntime: (app) =>
          Effect.gen(function* () {
            const before = yield* adminClient(app).get("/v1/status");
            assert.equal(before.status, 503);
            assert.equal(before.body.reason, "ADMIN_STARTING");
          }),
      });
      const { get, post } = adminClient(app);

      // Probes answer without a token.
      assert.equal((yield* get("/healthz", {})).status, 200);
      const ready = yield* get("/readyz", {});
      assert.equal(ready.status, 200);
      assert.ok(ready.body.wal !== null);

      // The actors' fibers start right after the layer is built.
      const names = (s: { body: { actors: Array<{ actor: string }> } }) =>
        s.body.actors.map((a) => a.actor);
      const idle = yield* get("/v1/status").pipe(
        Effect.repeat({
          schedule: Schedule.spaced("20 millis"),
          until: (s) =>
            ["supervisor", "control_bus", "wal_drain"].every((a) => names(s).includes(a)),
        }),
        Effect.timeout("20 seconds"),
      );
      assert.equal(idle.status, 200);
      assert.deepEqual(idle.body.runs_in_flight, []);
      assert.deepEqual(idle.body.outputs, []);
      assert.ok(idle.body.actors.every((a: { state: string }) => a.state === "running"));

      // A READY published to a folder the runtime does not watch, then submitted through the API.
      const published = yield* publishReady({
        engineRunRoot: WORLD,
        profile,
        busRoot: join(dir, "outbox"),
        platformRunId: "platform_20260101T000001Z",
      });
      const envelope = JSON.parse(
        yield* Effect.promise(() => Deno.readTextFile(published.bus_file!)),
      );

      // Bad bodies: 400, nothing in the ledger.
      const malformed = yield* Effect.promise(() =>
        callAdmin(app, "/v1/runs", { method: "POST", headers: op, body: "{" })
      );
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.reason, "ADMIN_BODY_INVALID");
      const invalid = yield* post("/v1/runs", { topic: "x" });
      assert.equal(invalid.status, 400);
      assert.match(invalid.body.detail, /message_id/);
      const byViewer = yield* post("/v1/runs", envelope, viewer);
      assert.equal(byViewer.status, 403);
      assert.deepEqual((yield* get("/v1/runs")).body, { runs: [], ready: [] });

      const submitted = yield* post("/v1/runs", envelope);
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      assert.deepEqual(submitted.body, {
        message_id: published.message_id,
        status: "ACCEPTED",
        reason: null,
      });
      const again = yield* post("/v1/runs", envelope);
      assert.equal(again.status, 409);
      assert.equal(again.body.reason, "RUN_IN_FLIGHT");

      // In flight: status shows the run and its output advancing.
      const seen = yield* get("/v1/status").pipe(
        Effect.repeat({
          schedule: Schedule.spaced("50 millis"),
          until: (s) => s.body.outputs[0]?.position !== null && s.body.outputs[0]?.delivered > 0,
        }),
        Effect.timeout("60 seconds"),
      );
      const [output] = seen.body.outputs;
      assert.equal(output.output_id, TRAFFIC);
      assert.equal(output.total, ROWS);
      assert.ok(output.emitted >= output.delivered + output.dead_lettered);
      assert.equal(output.in_lane, output.emitted - output.delivered - output.dead_lettered);
      assert.match(output.event_time, /^\d{4}-\d{2}-\d{2}T/);
      assert.equal(seen.body.runs_in_flight[0].message_id, published.message_id);
      const runKey = seen.body.runs_in_flight[0].run_key;
      const live = yield* get(`/v1/runs/${published.message_id}`);
      assert.equal(live.body.run?.status ?? "RUNNING", "RUNNING");

      const settled = yield* ControlBus.use((bus) => bus.settled(published.message_id)).pipe(
        Effect.provideContext(context),
        Effect.timeout("60 seconds"),
      );
      assert.equal(settled.status, "STREAMED");
      const duplicate = yield* post("/v1/runs", envelope);
      assert.equal(duplicate.status, 200);
      assert.equal(duplicate.body.status, "SKIPPED_DUPLICATE");

      // Runs, one run, checkpoints.
      const runs = yield* get("/v1/runs");
      assert.equal(runs.body.runs.length, 1);
      assert.equal(runs.body.runs[0].run_key, runKey);
      assert.equal(runs.body.runs[0].status, "STREAMED");
      assert.equal(runs.body.runs[0].emitted, ROWS);
      assert.equal(runs.body.ready[0].status, "SKIPPED_DUPLICATE");
      for (const id of [runKey, published.message_id]) {
        const one = yield* get(`/v1/runs/${id}`);
        assert.equal(one.status, 200);
        assert.equal(one.body.run.run_key, runKey);
        assert.deepEqual(one.body.ready.map((r: { status: string }) => r.status), [
          "STREAMED",
          "SKIPPED_DUPLICATE",
        ]);
        assert.equal(one.body.checkpoints[0].last_seq, ROWS - 1);
      }
      const unknown = yield* get(`/v1/runs/${"f".repeat(64)}`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.reason, "RUN_NOT_FOUND");
      const quoted = yield* get(`/v1/runs/%27x%27`);
      assert.equal(quoted.body.reason, "ADMIN_PARAM_INVALID");
      const checkpoints = yield* get(`/v1/checkpoints?run=${runKey}`);
      assert.deepEqual(
        checkpoints.body.checkpoints.map((c: { output_id: string; last_seq: number }) => [
          c.output_id,
          c.last_seq,
        ]),
        [[TRAFFIC, ROWS - 1]],
      );
      assert.equal((yield* get("/v1/checkpoints?limit=0")).body.reason, "ADMIN_PARAM_INVALID");

      // Receipts: by kind, paged by cursor, verified.
      const ends = yield* get(`/v1/receipts?kind=run_end&run=${runKey}`);
      assert.equal(ends.body.receipts.length, 1);
      assert.equal(ends.body.receipts[0].receipt.detail.status, "STREAMED");
      const starts = yield* get(`/v1/receipts?kind=run_start&run=${runKey}`);
      assert.equal(starts.body.receipts.length, 1);
      assert.equal(starts.body.receipts[0].receipt.detail.scenario_id, generated.scenario_id);
      const all: Array<number> = [];
      let after = "0";
      for (let page = 0; page < 100; page++) {
        const p = yield* get(`/v1/receipts?limit=2&after=${after}`);
        all.push(...p.body.receipts.map((r: { seq: number }) => r.seq));
        if (p.body.next === null) break;
        after = p.body.next;
      }
      assert.deepEqual(all, [...all].sort((a, b) => a - b));
      assert.equal(new Set(all).size, all.length);
      assert.equal((yield* get("/v1/receipts?after=abc")).body.reason, "ADMIN_PARAM_INVALID");
      const verified = yield* get("/v1/receipts/verify");
      assert.deepEqual(verified.body, { status: "OK", count: all.length });

      // Dead letters: none here; unknown ids and bad bodies are refused, nothing written.
      assert.deepEqual((yield* get("/v1/dead-letters")).body, { dead_letters: [], next: null });
      const retry = yield* post("/v1/dead-letters/nope/retry", {});
      assert.equal(retry.status, 404);
      assert.equal(retry.body.reason, "DEAD_LETTER_NOT_FOUND");
      const emptyPurge = yield* post("/v1/dead-letters/purge", {});
      assert.equal(emptyPurge.status, 400);
      assert.equal(emptyPurge.body.reason, "ADMIN_BODY_INVALID");
      const unknownPurge = yield* post("/v1/dead-letters/purge", { ids: ["nope"] });
      assert.equal(unknownPurge.status, 404);
      const parked = yield* post("/v1/dead-letters/purge", { all: true });
      assert.equal(parked.status, 202, "a purge (CRITICAL) waits for an approval");
      assert.equal(parked.body.status, "PENDING");

      // The auth walk over /openapi.json: every route, without a token, with a wrong one, and
      // with the viewer's on every mutating route; the receipt chain must not grow.
      // (Counted now: the parked purge above added its decision and approval receipts.)
      const receiptsBefore = (yield* get("/v1/receipts/verify")).body.count as number;
      const doc = (yield* get("/openapi.json", viewer)).body;
      const walked: Array<string> = [];
      for (const [path, methods] of Object.entries(doc.paths as Record<string, object>)) {
        for (const [method, operation] of Object.entries(methods as Record<string, unknown>)) {
          const access = (operation as { "x-access": string })["x-access"];
          const url = path.replace(/\{[^}]+\}/g, "x");
          const init = (headers: Record<string, string>) =>
            Effect.promise(() =>
              callAdmin(app, url, {
                method: method.toUpperCase(),
                headers,
                ...(method === "get" ? {} : { body: "{}" }),
              })
            );
          walked.push(`${method} ${path}`);
          const anonymous = yield* init({});
          const wrong = yield* init({ Authorization: "Bearer not-the-token-0123456789" });
          if (access === "public") {
            // The probes, and the dashboard's static page and login door (no data in them).
            assert.ok(PUBLIC.includes(path), `${path} is public`);
            continue;
          }
          assert.equal(anonymous.status, 401, `${method} ${path} without a token`);
          assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
          if (method !== "get") {
            assert.equal(access, "operator");
            const asViewer = yield* init(viewer);
            assert.equal(asViewer.status, 403, `${method} ${path} as a viewer`);
          }
        }
      }
      for (
        const route of [
          "get /v1/status",
          "post /v1/runs",
          "get /v1/runs/{run}",
          "get /v1/receipts/verify",
          "post /v1/dead-letters/purge",
          "post /v1/dead-letters/{id}/retry",
          "post /v1/replay",
          "get /v1/runs/live",
          "post /v1/runs/{run}/pause",
          "post /v1/runs/{run}/resume",
          "post /v1/runs/{run}/cancel",
          "post /v1/checkpoints/{scope}/{output}/reset",
          "post /v1/checkpoints/{scope}/{output}/undo",
          "get /openapi.json",
        ]
      ) assert.ok(walked.includes(route), route);
      const after2 = yield* get("/v1/receipts/verify");
      assert.deepEqual(after2.body, { status: "OK", count: receiptsBefore });
      assert.equal((yield* get("/v1/runs")).body.ready[0].status, "SKIPPED_DUPLICATE");
    })).pipe(Effect.provide(quiet)),
  );
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Logger } from "effect";
import type { RunningIg } from "../../ig/server.ts";
import { Supervisor } from "../../actors/supervisor.ts";
import { adminClient, adminSite, until } from "../../tests/_admin_site.ts";
import {
  expectedIds,
  fileTempDir,
  gateAdmitted,
  makeWorld,
  pgliteTemplate,
  TRAFFIC,
} from "../../tests/_testing.ts";

// The steering routes (api/routes/control.ts) through `app.request()` on a real runtime (PGlite,
// the WAL, the Supervisor, DuckDB) streaming a generated world into the reference gate over
// HTTP: POST /v1/replay re-sends exactly the asked window (its event ids checked against the
// view computed from the world's parts) into a new platform run, its progress visible in
// GET /v1/runs/live and /v1/status; pause/resume/cancel steer a paced run (paused: the gate
// hears nothing); and every bad request has its status and reason and the gate hears nothing.

const TMP = await fileTempDir("admin_control_test_");
const TEMPLATE = await pgliteTemplate(join(TMP, "bare"));
const WORLD = join(TMP, "world");
const ROWS = (await makeWorld(WORLD, 400))[TRAFFIC];
/** The traffic view's event ids in view order, from the world's raw parts. */
const VIEW = (await Effect.runPromise(expectedIds(WORLD, [TRAFFIC]))).get(TRAFFIC)!;
/** The world's five days in about 8 s. */
const PACED = 5 * 86_400 / 8;
const quiet = Logger.layer([Logger.make(() => undefined)]);

/** A runtime of its own (runs root, PGlite, gate) behind the admin app, until the scope closes. */
function site(name: string, batchSize: number) {
  return Effect.gen(function* () {
    // Small batches: what is in flight when a pause comes is a few events.
    const { ig, app, context } = yield* adminSite(join(TMP, name), {
      template: TEMPLATE,
      speedup: PACED,
      batchSize,
    });
    return { ig, supervisor: Context.get(context, Supervisor), ...adminClient(app) };
  });
}

/** Every event the gate has answered for, over all platform runs. */
function gateTotal(ig: RunningIg) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/stats`);
    const all = await res.json() as Record<string, Record<string, number>>;
    return Object.values(all).reduce((n, c) => n + c.admitted + c.duplicate + c.quarantined, 0);
  });
}

// deno-lint-ignore no-explicit-any
type Body = any;
const liveRun = (body: Body, id: string) =>
  body.runs.find((r: { run_id: string }) => r.run_id === id);

Deno.test("POST /v1/replay re-sends exactly the asked window with the view's event ids, its progress shows in /v1/runs/live and /v1/status, and bad windows change nothing", async () => {
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const { ig, supervisor, get, post } = yield* site("replay", 20);
      // The world streamed as fast as it goes: the gate admits the view in view order.
      const FIRST = "platform_20260601T000001Z";
      const stream = yield* supervisor.launch({
        _tag: "RunRequested",
        source: "operator",
        engine_run_root: WORLD,
        platform_run_id: FIRST,
        speedup: 0,
      });
      const streamed = yield* supervisor.result(stream.run_id);
      assert.equal(streamed.status, "STREAMED");
      const original = yield* gateAdmitted(ig, FIRST);
      assert.equal(VIEW.length, ROWS);
      assert.deepEqual(original.map((e) => e.event_id), VIEW);

      // A sequence window into a new platform run, paced so it is seen in flight.
      const SEQ_RUN = "platform_20260601T000002Z";
      const [a, b] = [100, 250];
      const bySeq = yield* post("/v1/replay", {
        engine_run_root: WORLD,
        output_id: TRAFFIC,
        from_seq: a,
        to_seq: b,
        // A quarter of the stream's pace: a few seconds, seen in flight.
        speedup: PACED / 4,
        platform_run_id: SEQ_RUN,
      });
      assert.equal(bySeq.status, 202, JSON.stringify(bySeq.body));
      assert.match(bySeq.body.replay_id, /^replay-[0-9a-f]{16}$/);
      assert.deepEqual(
        [bySeq.body.output_id, bySeq.body.from_seq, bySeq.body.to_seq, bySeq.body.events],
        [TRAFFIC, a, b, b - a],
      );
      assert.equal(bySeq.body.platform_run_id, SEQ_RUN);
      const id = bySeq.body.replay_id as string;

      // In flight: listed with its window and advancing progress; its output shows in status.
      const running = yield* until(
        get("/v1/runs/live"),
        (r) => liveRun(r.body, id)?.progress[0]?.emitted > 0,
        "the replay's progress in /v1/runs/live",
      );
      const listed = liveRun(running.body, id);
      assert.equal(listed.kind, "replay");
      assert.ok(["running", "finished"].includes(listed.state), listed.state);
      assert.deepEqual(listed.windows, [{ output_id: TRAFFIC, from_seq: a, to_seq: b }]);
      assert.equal(listed.platform_run_id, SEQ_RUN);
      assert.equal(listed.progress[0].total, b - a);
      const runKey = listed.run_key as string;
      assert.ok(runKey);
      const [status] = yield* until(
        Effect.all([get("/v1/status"), get("/v1/runs/live")]),
        ([s, r]) =>
          s.body.outputs.some((o: { run_key: string; emitted: number }) =>
            o.run_key === runKey && o.emitted > 0
          ) || liveRun(r.body, id)?.state === "finished",
        "the replay's output in /v1/status",
      );
      const inStatus = status.body.outputs.find((o: { run_key: string }) => o.run_key === runKey);
      assert.ok(inStatus, "the replay's output shows in /v1/status while in flight");
      assert.equal(inStatus.output_id, TRAFFIC);
      assert.equal(inStatus.total, b - a);
      assert.ok(inStatus.emitted < b - a, "seen in flight, before its end");

      const done = yield* until(
        get("/v1/runs/live"),
        (r) => liveRun(r.body, id)?.state === "finished",
        "the replay's end",
      );
      assert.equal(liveRun(done.body, id).status, "STREAMED");
      const replayed = yield* gateAdmitted(ig, SEQ_RUN);
      assert.equal(replayed.length, b - a);
      assert.deepEqual(replayed.map((e) => e.event_id), VIEW.slice(a, b));

      // A time window [from_ts, to_ts) into another new run, unpaced.
      const TS_RUN = "platform_20260601T000003Z";
      const fromTs = original[300].ts_utc;
      const toTs = original[380].ts_utc;
      const inWindow = original.flatMap((e, i) => e.ts_utc >= fromTs && e.ts_utc < toTs ? [i] : []);
      const byTs = yield* post("/v1/replay", {
        engine_run_root: WORLD,
        output_id: TRAFFIC,
        from_ts: fromTs,
        to_ts: toTs,
        speedup: 0,
        platform_run_id: TS_RUN,
      });
      assert.equal(byTs.status, 202, JSON.stringify(byTs.body));
      assert.deepEqual(
        [byTs.body.from_seq, byTs.body.to_seq, byTs.body.events],
        [inWindow[0], inWindow.at(-1)! + 1, inWindow.length],
      );
      const result = yield* supervisor.result(byTs.body.replay_id);
      assert.equal(result.status, "STREAMED");
      assert.equal(result.emitted, inWindow.length);
      assert.deepEqual(
        (yield* gateAdmitted(ig, TS_RUN)).map((e) => e.event_id),
        inWindow.map((i) => VIEW[i]),
      );

      // Bad windows: their status and reason, and the gate hears nothing.
      const heard = yield* gateTotal(ig);
      const window = { engine_run_root: WORLD, output_id: TRAFFIC, speedup: 0 };
      const BAD_RUN = "platform_20260601T000009Z";
      const cases: ReadonlyArray<[Record<string, unknown>, number, string]> = [
        [{ from_seq: 20, to_seq: 10 }, 400, "REPLAY_WINDOW_REVERSED"],
        [{ from_ts: toTs, to_ts: fromTs }, 400, "REPLAY_WINDOW_REVERSED"],
        [{ from_seq: 10, to_seq: 10 }, 422, "REPLAY_WINDOW_EMPTY"],
        [{ from_ts: fromTs, to_ts: fromTs }, 422, "REPLAY_WINDOW_EMPTY"],
        [{ from_seq: 10, to_seq: ROWS + 1 }, 422, "REPLAY_WINDOW_OUTSIDE_VIEW"],
        [
          { from_ts: "2001-01-01T00:00:00Z", to_ts: "2001-01-02T00:00:00Z" },
          422,
          "REPLAY_WINDOW_OUTSIDE_VIEW",
        ],
        [{ from_seq: 1, to_seq: 2, from_ts: fromTs }, 400, "REPLAY_WINDOW_INVALID"],
        [{ from_seq: -1, to_seq: 2 }, 400, "ADMIN_BODY_INVALID"],
      ];
      for (const [bounds, code, reason] of cases) {
        const r = yield* post("/v1/replay", { ...window, ...bounds, platform_run_id: BAD_RUN });
        assert.equal(r.status, code, `${JSON.stringify(bounds)}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.reason, reason, JSON.stringify(bounds));
        assert.ok(typeof r.body.detail === "string" && r.body.detail.length > 0);
      }
      const unknownOutput = yield* post("/v1/replay", {
        ...window,
        output_id: "no_such_output",
        from_seq: 0,
        to_seq: 1,
        platform_run_id: BAD_RUN,
      });
      assert.ok(unknownOutput.status >= 400, JSON.stringify(unknownOutput.body));
      const finished = (yield* get("/v1/runs/live")).body.runs;
      assert.ok(finished.every((r: { state: string }) => r.state === "finished"));
      assert.equal(yield* gateTotal(ig), heard, "a refused replay sends nothing");
      assert.deepEqual(yield* gateAdmitted(ig, BAD_RUN), []);
    })).pipe(Effect.provide(quiet)),
  );
});

/** The gate's count once it has not moved for 500 ms, then unchanged for 2 s more (deadline). */
function gateHolds(ig: RunningIg, platformRunId: string) {
  const count = gateAdmitted(ig, platformRunId).pipe(Effect.map((e) => e.length));
  return Effect.gen(function* () {
    // What was already out when the pause came is answered first.
    let last = yield* count;
    let since = performance.now();
    const deadline = performance.now() + 60_000;
    while (performance.now() - since < 500) {
      assert.ok(performance.now() < deadline, "the gate kept hearing events while paused");
      yield* Effect.sleep(50);
      const now = yield* count;
      if (now !== last) [last, since] = [now, performance.now()];
    }
    const held = last;
    const watchUntil = performance.now() + 2_000;
    while (performance.now() < watchUntil) {
      yield* Effect.sleep(100);
      assert.equal(yield* count, held, "nothing reaches the gate while paused");
    }
    return held;
  });
}

Deno.test("pause, resume and cancel through the API steer a paced run; unknown, finished and unsafe run ids are refused and the gate hears nothing", async () => {
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const { ig, supervisor, get, post } = yield* site("control", 5);
      const RUN = "platform_20260601T000011Z";
      const run = yield* supervisor.launch({
        _tag: "RunRequested",
        source: "operator",
        engine_run_root: WORLD,
        platform_run_id: RUN,
      });
      yield* until(
        gateAdmitted(ig, RUN),
        (e) => e.length >= 40,
        "40 events at the gate",
      );
      const paused = yield* post(`/v1/runs/${run.run_id}/pause`);
      assert.equal(paused.status, 200, JSON.stringify(paused.body));
      assert.equal(paused.body.run_id, run.run_id);
      assert.equal(paused.body.state, "paused");
      const again = yield* post(`/v1/runs/${run.run_id}/pause`);
      assert.equal(again.status, 409);
      assert.equal(again.body.reason, "RUN_NOT_RUNNING");
      const held = yield* gateHolds(ig, RUN);
      assert.ok(held < ROWS, `the pause came before the end (${held} of ${ROWS})`);
      const listed = liveRun((yield* get("/v1/runs/live")).body, run.run_id);
      assert.equal(listed.state, "paused");

      const resumed = yield* post(`/v1/runs/${run.run_id}/resume`);
      assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
      assert.equal(resumed.body.state, "running");
      const running = yield* post(`/v1/runs/${run.run_id}/resume`);
      assert.equal(running.status, 409);
      assert.equal(running.body.reason, "RUN_NOT_PAUSED");
      const done = yield* until(
        get("/v1/runs/live"),
        (r) => liveRun(r.body, run.run_id)?.state === "finished",
        "the resumed run's end",
      );
      assert.equal(liveRun(done.body, run.run_id).status, "STREAMED");
      assert.deepEqual((yield* gateAdmitted(ig, RUN)).map((e) => e.event_id), VIEW);

      // Cancel: a second run into a new platform run ends CANCELLED, part of the view sent.
      const SECOND = "platform_20260601T000012Z";
      const second = yield* supervisor.launch({
        _tag: "RunRequested",
        source: "operator",
        engine_run_root: WORLD,
        platform_run_id: SECOND,
      });
      yield* until(gateAdmitted(ig, SECOND), (e) => e.length >= 20, "20 events at the gate");
      const cancelling = yield* post(`/v1/runs/${second.run_id}/cancel`);
      assert.equal(cancelling.status, 200, JSON.stringify(cancelling.body));
      assert.ok(["cancelling", "finished"].includes(cancelling.body.state));
      const cancelled = yield* until(
        get("/v1/runs/live"),
        (r) => liveRun(r.body, second.run_id)?.state === "finished",
        "the cancelled run's end",
      );
      assert.equal(liveRun(cancelled.body, second.run_id).status, "CANCELLED");
      const sent = (yield* gateAdmitted(ig, SECOND)).map((e) => e.event_id);
      assert.ok(sent.length > 0 && sent.length < ROWS, `${sent.length} sent`);
      assert.deepEqual(sent, VIEW.slice(0, sent.length));

      // Bad requests: status and reason, and the gate hears nothing.
      const heard = yield* gateTotal(ig);
      const cases: ReadonlyArray<[string, number, string]> = [
        ["/v1/runs/run-nope/pause", 404, "RUN_UNKNOWN"],
        ["/v1/runs/run-nope/resume", 404, "RUN_UNKNOWN"],
        ["/v1/runs/run-nope/cancel", 404, "RUN_UNKNOWN"],
        [`/v1/runs/${run.run_id}/pause`, 409, "RUN_FINISHED"],
        [`/v1/runs/${run.run_id}/resume`, 409, "RUN_FINISHED"],
        [`/v1/runs/${second.run_id}/cancel`, 409, "RUN_FINISHED"],
        ["/v1/runs/%22x%22/pause", 400, "ADMIN_PARAM_INVALID"],
        ["/v1/runs/it's/cancel", 400, "ADMIN_PARAM_INVALID"],
        ["/v1/runs/a..b/resume", 400, "ADMIN_PARAM_INVALID"],
        ["/v1/runs/..%2Fetc/pause", 400, "ADMIN_PARAM_INVALID"],
        [`/v1/runs/${"r".repeat(129)}/pause`, 400, "ADMIN_PARAM_INVALID"],
      ];
      for (const [path, code, reason] of cases) {
        const r = yield* post(path);
        assert.equal(r.status, code, `${path}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.reason, reason, path);
      }
      assert.equal(yield* gateTotal(ig), heard, "a refused request sends nothing");
      const runs = (yield* get("/v1/runs/live")).body.runs;
      assert.deepEqual(
        runs.map((r: { run_id: string; status: string }) => [r.run_id, r.status]),
        [[second.run_id, "CANCELLED"], [run.run_id, "STREAMED"]],
      );
    })).pipe(Effect.provide(quiet)),
  );
});

import assert from "node:assert/strict";
import { Effect } from "effect";
import {
  effectTest,
  expectedIds,
  gateAdmitted,
  gateCounts,
  logLines,
  ofOutput,
  OUTPUTS,
  pgliteSite,
  processSite,
  runCommand,
  SCENARIO_RUN,
  streamArgs,
  tail,
} from "./_testing.ts";

// `main.ts stream` with the default (`local`) profile and no courier flag, against gates with and
// without a batch route: the platform's own gate has none and answers it 404.

const { tmp: TMP, world: WORLD, template: TEMPLATE, total: TOTAL } = await processSite(
  "courier_mode_test_",
  600,
);
const EXPECTED = await Effect.runPromise(expectedIds(WORLD, OUTPUTS));
const SWITCH = "IG has no batch route";

/** Streams the whole world, unpaced, into a gate with or without a batch route. */
function streamInto(name: string, options: { batchRoute: boolean; mode?: string }) {
  return Effect.gen(function* () {
    const site = yield* pgliteSite(TMP, name, {
      template: TEMPLATE,
      bus: true,
      gate: { batchRoute: options.batchRoute },
    });
    const { ig } = site;
    const run = `platform_20260101T00000${name.length % 10}Z`;
    const vars = {
      ...site.vars,
      ...(options.mode === undefined ? {} : { WSP_COURIER_MODE: options.mode }),
    };
    const exited = yield* runCommand(
      streamArgs(WORLD, ig.url, { platformRunId: run, scenarioRunId: SCENARIO_RUN }),
      { dir: site.dir, vars },
      { timeoutMs: 120_000 },
    );
    return { exited, ig, run };
  });
}

effectTest(
  "the local profile streams into a gate without a batch route: every event admitted once, in order, the switch logged once",
  Effect.gen(function* () {
    const { exited, ig, run } = yield* streamInto("nobatch", { batchRoute: false });
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal(exited.result?.status, "STREAMED");
    assert.equal(logLines(exited.stderr, SWITCH).length, 1, "one log line about the switch");
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
    const admitted = yield* gateAdmitted(ig, run);
    for (const id of OUTPUTS) {
      assert.deepEqual(ofOutput(admitted, id).map((e) => e.event_id), EXPECTED.get(id), id);
    }
  }),
);

effectTest(
  "the local profile keeps sending batches to a gate that takes them, never switching",
  Effect.gen(function* () {
    const { exited, ig, run } = yield* streamInto("batch", { batchRoute: true });
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal(logLines(exited.stderr, SWITCH).length, 0);
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: TOTAL, duplicate: 0, quarantined: 0 });
  }),
);

effectTest(
  "WSP_COURIER_MODE=batch against a gate without a batch route fails IG_PUSH_REJECTED saying what to change",
  Effect.gen(function* () {
    const { exited, ig, run } = yield* streamInto("forced", { batchRoute: false, mode: "batch" });
    assert.notEqual(exited.code, 0);
    assert.equal(exited.result?.reason, "IG_PUSH_REJECTED");
    assert.match(String(exited.result?.message), /WSP_COURIER_MODE=push/);
    assert.deepEqual(yield* gateCounts(ig, run), { admitted: 0, duplicate: 0, quarantined: 0 });
  }),
);

import assert from "node:assert/strict";
import { Effect } from "effect";
import {
  effectTest,
  expectedIds,
  gateAdmitted,
  gateCounts,
  ofOutput,
  OUTPUTS,
  pgliteSite,
  processEnv,
  processSite,
  runCommand,
  SCENARIO_RUN,
  spawnWorldstream,
  streamArgs,
  tail,
  waitFor,
} from "./_testing.ts";

// Real signals to a real `main.ts stream`, sent to its whole process group as Ctrl-C in a
// terminal does, so the embedded PGlite child gets it too and may die first. The gate runs in
// this process. A stop must end the process within a few seconds, exit 130 (STOPPED_BY_OPERATOR),
// and leave a checkpoint the same command resumes from without losing or re-sending anything.

const { tmp: TMP, world: WORLD, template: TEMPLATE, total: TOTAL } = await processSite(
  "signal_test_",
  4000,
);
const EXPECTED = await Effect.runPromise(expectedIds(WORLD, OUTPUTS));
// The world's five days at 20 000x take ~22 s: a stop lands mid-stream.
const PACED_SPEEDUP = 20_000;
/** "Within a few seconds", with room for a busy 2-core machine. */
const STOP_DEADLINE_MS = 10_000;

for (const [i, signal] of (["SIGINT", "SIGTERM"] as const).entries()) {
  effectTest(
    `${signal} to stream's process group (PGlite's child too) ends it within seconds with exit 130, and a restart resumes with nothing lost or re-sent`,
    Effect.gen(function* () {
      const run = `platform_20260101T00000${i}Z`;
      const site = yield* pgliteSite(TMP, signal, { template: TEMPLATE, bus: true, gate: true });
      const { dir, ig } = site;
      const env = processEnv(site.vars);
      const args = (speedup: number) =>
        streamArgs(WORLD, ig.url, { speedup, platformRunId: run, scenarioRunId: SCENARIO_RUN });

      const stopped = yield* Effect.scoped(Effect.gen(function* () {
        const ws = yield* spawnWorldstream(args(PACED_SPEEDUP), { env, cwd: dir, ownGroup: true });
        yield* waitFor(
          "the gate admits 200 events",
          gateCounts(ig, run).pipe(Effect.map((c) => c.admitted >= 200 ? c : undefined)),
          { timeoutMs: 60_000, process: ws },
        );
        const sentAt = performance.now();
        ws.signalGroup(signal);
        const exited = yield* ws.exited(60_000);
        return { exited, ms: performance.now() - sentAt };
      }));
      const { exited, ms } = stopped;
      const why = `${exited.stdout}\n${tail(exited.stderr)}`;
      assert.ok(ms < STOP_DEADLINE_MS, `the stop took ${Math.round(ms)} ms: ${why}`);
      assert.equal(exited.code, 130, why);
      assert.equal(exited.result?.status, "FAILED");
      assert.equal(exited.result?.reason, "STOPPED_BY_OPERATOR");
      const atStop = yield* gateCounts(ig, run);
      assert.ok(atStop.admitted < TOTAL, "stopped before the end of the world");

      // The same command again, unpaced: it resumes after the checkpoint the stop left.
      const resumed = yield* runCommand(args(0), site, { timeoutMs: 90_000 });
      assert.equal(resumed.code, 0, `${resumed.stdout}\n${tail(resumed.stderr)}`);
      const result = resumed.result as {
        status: string;
        outputs: Array<{ output_id: string; resumed_from_seq: number | null }>;
      };
      assert.equal(result.status, "STREAMED");
      const traffic = result.outputs.find((o) => o.output_id === OUTPUTS[0]);
      assert.ok((traffic?.resumed_from_seq ?? -1) >= 0, "the traffic output resumed mid-stream");

      const counts = yield* gateCounts(ig, run);
      assert.equal(counts.admitted, TOTAL, "every event of the world admitted, none lost");
      // A stop delivers what the lanes hold and journals their checkpoints: nothing to re-send.
      assert.equal(counts.duplicate, 0, "re-sent events after a clean stop");
      const admitted = yield* gateAdmitted(ig, run);
      for (const id of OUTPUTS) {
        assert.deepEqual(
          ofOutput(admitted, id).map((e) => e.event_id),
          EXPECTED.get(id),
          `${id}: the gate holds the world's events once each, in stream order`,
        );
      }
      console.log(
        `${signal}: stopped ${Math.round(ms)} ms after the signal with ${atStop.admitted} of ` +
          `${TOTAL} admitted; resumed at ${
            result.outputs.map((o) => o.resumed_from_seq).join("/")
          }, ${counts.duplicate} duplicates`,
      );
    }),
  );
}

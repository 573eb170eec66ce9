import assert from "node:assert/strict";
import { Effect } from "effect";
import {
  effectTest,
  logLines,
  OUTPUTS,
  pgliteSite,
  processSite,
  runCommand,
  streamArgs,
  tail,
} from "./_testing.ts";

// `stream` as a user runs it with its stderr piped (no terminal): instead of a redrawn bar it
// logs one `output progress` JSON line per output every WORLDSTREAM_PROGRESS_EVERY_MS, and a
// last one with the final counts.

const SITE = await processSite("progress_test_", 3000);

effectTest(
  "stream off a terminal logs each output's progress every interval, ending with every event done",
  Effect.gen(function* () {
    const site = yield* pgliteSite(SITE.tmp, "stream", { template: SITE.template, gate: true });
    // The world's five days in about four seconds, a line every 400 ms.
    const exited = yield* runCommand(
      streamArgs(SITE.world, site.ig.url, { speedup: 108_000, scenarioRunId: "0".repeat(32) }),
      { dir: site.dir, vars: { ...site.vars, WORLDSTREAM_PROGRESS_EVERY_MS: "400" } },
    );
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.ok(!exited.stderr.includes("\x1b["), "no terminal escapes off a terminal");
    const lines = logLines(exited.stderr, "output progress").map((l) =>
      l.annotations as { output_id: string; done: number; total: number; rate_per_s: number }
    );
    for (const id of OUTPUTS) {
      const mine = lines.filter((l) => l.output_id === id);
      assert.ok(mine.length >= 3, `${id}: ${mine.length} progress lines\n${tail(exited.stderr)}`);
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i].done >= mine[i - 1].done, id);
      const last = mine[mine.length - 1];
      assert.deepEqual([last.done, last.total], [SITE.rows[id], SITE.rows[id]], id);
      assert.ok(mine.some((l) => l.done > 0 && l.done < l.total && l.rate_per_s > 0), id);
    }
  }),
);

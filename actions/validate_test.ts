import assert from "node:assert/strict";
import type { OutputResult, StreamResult } from "../schemas/messages.ts";
import { fail } from "../schemas/errors.ts";
import { judgeRefusal, judgeResume, judgeSmoke } from "./validate.ts";

// How validate judges its bounded runs and refusals (tests/validate_test.ts runs the command
// itself): the cases a live gate rarely produces on demand.

const output = (id: string, extra: Partial<OutputResult> = {}): OutputResult => ({
  output_id: id,
  status: "STREAMED",
  emitted: 10,
  admitted: 10,
  duplicate: 0,
  quarantined: 0,
  dead_lettered: 0,
  resumed_from_seq: null,
  reason: null,
  ...extra,
});

const run = (outputs: ReadonlyArray<OutputResult>, extra: Partial<StreamResult> = {}) =>
  ({
    status: "STREAMED",
    emitted: outputs.reduce((n, o) => n + o.emitted, 0),
    reason: null,
    output_ids: outputs.map((o) => o.output_id),
    engine_run_root: "/w",
    scenario_id: "s",
    platform_run_id: "platform_20260301T120000Z",
    outputs,
    ...extra,
  }) as StreamResult;

Deno.test("a smoke run that emitted nothing, over its bound or unanswered fails SMOKE_STREAM_INCOMPLETE", () => {
  assert.equal(judgeSmoke(run([output("a")]), 10).status, "PASSED");
  for (
    const bad of [
      run([output("a", { emitted: 0, admitted: 0 })]),
      run([output("a", { emitted: 11, admitted: 11 })]),
      run([output("a", { admitted: 9 })]),
    ]
  ) {
    const check = judgeSmoke(bad, 10);
    assert.equal(check.status, "FAILED");
    assert.equal(check.reason, "SMOKE_STREAM_INCOMPLETE");
  }
  const failed = judgeSmoke(run([], { status: "FAILED", reason: "IG_PUSH_REJECTED" }), 10);
  assert.equal(failed.reason, "IG_PUSH_REJECTED", "a failed run's own reason");
});

Deno.test("a second run that starts over or re-sends beyond the crash bound fails RESUME_NOT_CONTINUED", () => {
  const first = run([output("a"), output("b", { emitted: 0, admitted: 0 })]);
  const resumed = run([output("a", { resumed_from_seq: 9 }), output("b")]);
  assert.equal(judgeResume(first, resumed, 100).status, "PASSED");
  const restarted = judgeResume(first, run([output("a"), output("b")]), 100);
  assert.equal(restarted.reason, "RESUME_NOT_CONTINUED");
  assert.match(restarted.detail, /a resumed from null, expected 9/);
  const resent = judgeResume(
    first,
    run([output("a", { resumed_from_seq: 9, admitted: 0, duplicate: 10 }), output("b")]),
    5,
  );
  assert.equal(resent.reason, "RESUME_NOT_CONTINUED");
  assert.match(resent.detail, /re-sent 10 event\(s\), more than the crash bound of 5/);
});

Deno.test("a producer off the allowlist that is not refused, or sends events, fails REFUSAL_MISSING", () => {
  const refused = run([], { status: "FAILED", reason: "PRODUCER_NOT_ALLOWED", emitted: 0 });
  assert.equal(judgeRefusal("svc:p", refused).status, "PASSED");
  assert.equal(
    judgeRefusal("svc:p", fail("PRODUCER_NOT_ALLOWED", "Producer svc:p is not in the allowlist"))
      .status,
    "PASSED",
  );
  const streamed = judgeRefusal("svc:p", run([output("a")]));
  assert.equal(streamed.status, "FAILED");
  assert.equal(streamed.reason, "REFUSAL_MISSING");
  assert.match(streamed.detail, /ended STREAMED \(no reason\) with 10 event\(s\) sent/);
});

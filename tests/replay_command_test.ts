import assert from "node:assert/strict";
import { Effect } from "effect";
import {
  effectTest,
  type Envelope,
  gateAdmitted,
  gateCounts,
  pgliteSite,
  processSite,
  runCommand,
  SCENARIO_RUN,
  streamArgs,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// `main.ts replay` re-sends exactly one window of one output, with the stream's own event ids,
// into the reference gate over HTTP: into a fresh platform run the gate admits exactly the
// window's events in view order; into the run that streamed them it answers DUPLICATE for every
// one; the world stream's checkpoint does not move. Bad windows fail with their reason codes and
// the gate hears nothing.

const { tmp: TMP, world: WORLD, template: TEMPLATE, rows: ROWS } = await processSite(
  "replay_command_test_",
  1500,
);
const FIRST = "platform_20260401T000001Z";

interface ReplayLine {
  readonly status: string;
  readonly reason: string | null;
  readonly message?: string;
  readonly emitted: number;
  readonly replay_id?: string;
  readonly from_seq?: number;
  readonly to_seq?: number;
  readonly events?: number;
  readonly outputs?: ReadonlyArray<{ admitted: number; duplicate: number }>;
}

function replayArgs(igUrl: string, window: ReadonlyArray<string>, run?: string) {
  return [
    "replay",
    "--engine-run-root",
    WORLD,
    "--output-id",
    TRAFFIC,
    ...window,
    "--speedup",
    "0",
    "--ig-url",
    igUrl,
    ...(run ? ["--platform-run-id", run] : []),
  ];
}

effectTest(
  "a replay re-sends exactly its window with the stream's event ids: admitted once into a new run, DUPLICATE into the run that streamed it, and the stream's checkpoint stays",
  Effect.gen(function* () {
    const at = yield* pgliteSite(TMP, "window", { template: TEMPLATE, gate: true });
    const { ig } = at;
    const streamed = yield* runCommand(
      streamArgs(WORLD, ig.url, {
        outputIds: [TRAFFIC],
        platformRunId: FIRST,
        scenarioRunId: SCENARIO_RUN,
      }),
      at,
    );
    assert.equal(streamed.code, 0, `${streamed.stdout}\n${tail(streamed.stderr)}`);
    // The view's order, as the gate admitted it (one output, one request in flight).
    const view: ReadonlyArray<Envelope> = yield* gateAdmitted(ig, FIRST);
    assert.equal(view.length, ROWS[TRAFFIC]);

    // A sequence range deep in the view, into a new platform run.
    const [a, b] = [700, 950];
    const bySeq = yield* runCommand(
      replayArgs(
        ig.url,
        ["--from-seq", String(a), "--to-seq", String(b)],
        "platform_20260401T000002Z",
      ),
      at,
    );
    const seqLine = bySeq.result as unknown as ReplayLine;
    assert.equal(bySeq.code, 0, `${bySeq.stdout}\n${tail(bySeq.stderr)}`);
    assert.equal(seqLine.status, "STREAMED");
    assert.equal(seqLine.emitted, b - a);
    assert.deepEqual([seqLine.from_seq, seqLine.to_seq, seqLine.events], [a, b, b - a]);
    assert.match(seqLine.replay_id ?? "", /^replay-[0-9a-f]{16}$/);
    const replayed = yield* gateAdmitted(ig, "platform_20260401T000002Z");
    assert.deepEqual(
      replayed.map((e) => e.event_id),
      view.slice(a, b).map((e) => e.event_id),
    );

    // A time window [from_ts, to_ts) into the run that streamed it: every event a DUPLICATE.
    const fromTs = view[300].ts_utc;
    const toTs = view[420].ts_utc;
    const inWindow = view.filter((e) => e.ts_utc >= fromTs && e.ts_utc < toTs).length;
    const byTs = yield* runCommand(
      replayArgs(ig.url, ["--from-ts", fromTs, "--to-ts", toTs], FIRST),
      at,
    );
    const tsLine = byTs.result as unknown as ReplayLine;
    assert.equal(byTs.code, 0, `${byTs.stdout}\n${tail(byTs.stderr)}`);
    assert.equal(tsLine.emitted, inWindow);
    assert.equal(tsLine.outputs?.[0].duplicate, inWindow);
    assert.equal(tsLine.outputs?.[0].admitted, 0);
    const counts = yield* gateCounts(ig, FIRST);
    assert.equal(counts.admitted, ROWS[TRAFFIC]);
    assert.equal(counts.duplicate, inWindow);

    // The stream's own checkpoint did not move: the same stream again has nothing left.
    const again = yield* runCommand(
      streamArgs(WORLD, ig.url, {
        outputIds: [TRAFFIC],
        platformRunId: FIRST,
        scenarioRunId: SCENARIO_RUN,
      }),
      at,
    );
    assert.equal(again.code, 0, `${again.stdout}\n${tail(again.stderr)}`);
    assert.equal((again.result as unknown as ReplayLine).emitted, 0);
  }),
);

effectTest(
  "bad replay windows fail with their reason code, exit 1, and the gate hears nothing",
  Effect.gen(function* () {
    const at = yield* pgliteSite(TMP, "bad", { template: TEMPLATE, gate: true });
    const run = "platform_20260401T000009Z";
    const cases: ReadonlyArray<[ReadonlyArray<string>, string]> = [
      [["--from-seq", "20", "--to-seq", "10"], "REPLAY_WINDOW_REVERSED"],
      [["--from-seq", "10", "--to-seq", "10"], "REPLAY_WINDOW_EMPTY"],
      [["--from-seq", "10", "--to-seq", String(ROWS[TRAFFIC] + 1)], "REPLAY_WINDOW_OUTSIDE_VIEW"],
      [
        ["--from-ts", "2001-01-01T00:00:00Z", "--to-ts", "2001-01-02T00:00:00Z"],
        "REPLAY_WINDOW_OUTSIDE_VIEW",
      ],
      [
        ["--from-ts", "2026-13-01T00:00:00Z", "--to-ts", "2026-01-02T00:00:00Z"],
        "REPLAY_WINDOW_INVALID",
      ],
      [
        ["--from-seq", "1", "--to-seq", "2", "--from-ts", "2026-01-01T00:00:00Z"],
        "REPLAY_WINDOW_INVALID",
      ],
      [[], "REPLAY_WINDOW_INVALID"],
    ];
    for (const [window, reason] of cases) {
      const out = yield* runCommand(replayArgs(at.ig.url, window, run), at);
      const line = out.result as unknown as ReplayLine;
      assert.equal(out.code, 1, `${window.join(" ")}: ${out.stdout}\n${tail(out.stderr)}`);
      assert.equal(line.reason, reason, `${window.join(" ")}: ${out.stdout}`);
    }
    const unknown = yield* runCommand(
      [
        "replay",
        "--engine-run-root",
        WORLD,
        "--output-id",
        "no_such_output_6B",
        "--from-seq",
        "0",
        "--to-seq",
        "5",
        "--ig-url",
        at.ig.url,
      ],
      at,
    );
    assert.equal(unknown.code, 1);
    assert.equal((unknown.result as unknown as ReplayLine).reason, "NO_TRAFFIC_OUTPUTS");
    const counts = yield* gateCounts(at.ig, run);
    assert.equal(counts.admitted + counts.duplicate + counts.quarantined, 0);
  }),
);

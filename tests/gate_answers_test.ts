import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { startIg } from "../ig/server.ts";
import {
  copyDb,
  effectTest,
  gateCounts,
  pgliteSite,
  type ProcessSite,
  processSite,
  runCommand,
  SCENARIO_RUN,
  streamArgs,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// Nothing is acknowledged that the gate did not decide, and nothing goes where the URL did not
// say: `main.ts stream` against small hostile gates served here. A gate answering 200 with a
// decision worldstream does not know, or with a body that is not JSON, fails the run with
// IG_ANSWER_UNEXPECTED and the checkpoint stays before those events (a rerun sends them all); a
// gate answering 307 to another server fails it IG_PUSH_REJECTED naming the Location, and that
// server hears nothing: no envelope, no API key.

const { tmp: TMP, world: WORLD, template: TEMPLATE, rows: ROWS } = await processSite(
  "gate_answers_test_",
  300,
);

interface ResultLine {
  readonly status: string;
  readonly reason: string | null;
  readonly message?: string;
  readonly emitted: number;
}

/** A gate on a loopback port, answering with `handler`, closed with the scope. */
function serve(handler: (req: Request) => Response | Promise<Response>) {
  return Effect.acquireRelease(
    Effect.sync(() =>
      Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => undefined }, handler)
    ),
    (server) => Effect.promise(() => server.shutdown()),
  ).pipe(Effect.map((server) => `http://127.0.0.1:${server.addr.port}`));
}

/** Health is fine (so the run starts), every ingest request is answered by `ingest`. */
function hostileGate(ingest: (req: Request) => Promise<Response>) {
  return serve((req) =>
    new URL(req.url).pathname === "/v1/ops/health" ? Response.json({ status: "ok" }) : ingest(req)
  );
}

function site(name: string) {
  return pgliteSite(TMP, name, { template: TEMPLATE });
}

function stream(run: string, igUrl: string, at: ProcessSite) {
  return runCommand(
    streamArgs(WORLD, igUrl, {
      outputIds: [TRAFFIC],
      platformRunId: run,
      scenarioRunId: SCENARIO_RUN,
    }),
    at,
    { timeoutMs: 120_000 },
  );
}

for (const mode of ["push", "batch"] as const) {
  effectTest(
    `a gate answering 200 with the decision NOPE (${mode} mode) fails the run IG_ANSWER_UNEXPECTED, and a rerun into a real gate sends every event`,
    Effect.gen(function* () {
      const at = yield* site(`nope-${mode}`);
      const vars = { ...at.vars, WSP_COURIER_MODE: mode };
      let asked = 0;
      const nope = yield* hostileGate(async (req) => {
        asked++;
        const body = await req.json() as { events?: ReadonlyArray<unknown> };
        return Response.json(
          body.events
            ? { results: body.events.map(() => ({ decision: "NOPE" })) }
            : { decision: "NOPE" },
        );
      });
      const run = mode === "push" ? "platform_20260301T000001Z" : "platform_20260301T000002Z";
      const failed = yield* stream(run, nope, { ...at, vars });
      const line = failed.result as unknown as ResultLine;
      assert.equal(failed.code, 1, `${failed.stdout}\n${tail(failed.stderr)}`);
      assert.equal(line.status, "FAILED");
      assert.equal(line.reason, "IG_ANSWER_UNEXPECTED");
      assert.match(line.message ?? "", /NOPE/);
      assert.equal(line.emitted, 0);
      assert.ok(asked > 0, "the gate was asked");

      // The checkpoint did not move: the same run into a real gate sends all of the output.
      const ig = yield* startIg({ db: copyDb(TEMPLATE, join(at.dir, "ig")) });
      const rerun = yield* stream(run, ig.url, { ...at, vars });
      assert.equal(rerun.code, 0, `${rerun.stdout}\n${tail(rerun.stderr)}`);
      assert.equal((rerun.result as unknown as ResultLine).status, "STREAMED");
      assert.equal((rerun.result as unknown as ResultLine).emitted, ROWS[TRAFFIC]);
      const counts = yield* gateCounts(ig, run);
      assert.equal(counts.admitted, ROWS[TRAFFIC]);
    }),
  );
}

effectTest(
  "a gate answering 200 with a body that is not JSON fails the run IG_ANSWER_UNEXPECTED at once, not after retries",
  Effect.gen(function* () {
    const at = yield* site("malformed");
    let asked = 0;
    const garbled = yield* hostileGate(async (req) => {
      asked++;
      await req.body?.cancel();
      return new Response('{"decision":"ADM', { headers: { "content-type": "application/json" } });
    });
    const failed = yield* stream("platform_20260301T000003Z", garbled, at);
    const line = failed.result as unknown as ResultLine;
    assert.equal(failed.code, 1, `${failed.stdout}\n${tail(failed.stderr)}`);
    assert.equal(line.status, "FAILED");
    assert.equal(line.reason, "IG_ANSWER_UNEXPECTED");
    assert.match(line.message ?? "", /not JSON/);
    assert.equal(line.emitted, 0);
    // auto mode: one batch request, answered once, never retried.
    assert.equal(asked, 1);
  }),
);

effectTest(
  "a gate answering 307 to another server fails the run IG_PUSH_REJECTED naming the Location; the other server hears nothing, not even the API key",
  Effect.gen(function* () {
    const at = yield* site("redirect");
    const heard: Array<string> = [];
    const elsewhere = yield* serve(async (req) => {
      heard.push(
        `${req.method} ${new URL(req.url).pathname} key=${req.headers.get("x-ig-api-key")}`,
      );
      await req.body?.cancel();
      return Response.json({ decision: "ADMIT" });
    });
    let redirected = 0;
    const redirecting = yield* hostileGate(async (req) => {
      redirected++;
      await req.body?.cancel();
      return new Response(null, {
        status: 307,
        headers: { location: `${elsewhere}${new URL(req.url).pathname}` },
      });
    });
    const vars = { ...at.vars, IG_API_KEY: "secret-key-of-the-gate" };
    for (const mode of ["push", "batch"]) {
      const failed = yield* stream(
        `platform_20260301T00001${mode.length}Z`,
        redirecting,
        { ...at, vars: { ...vars, WSP_COURIER_MODE: mode } },
      );
      const line = failed.result as unknown as ResultLine;
      assert.equal(failed.code, 1, `${failed.stdout}\n${tail(failed.stderr)}`);
      assert.equal(line.status, "FAILED");
      assert.equal(line.reason, "IG_PUSH_REJECTED");
      assert.ok(line.message?.includes(`307`), line.message);
      assert.ok(line.message?.includes(`${elsewhere}/v1/ingest/`), line.message);
      assert.equal(line.emitted, 0);
    }
    assert.equal(redirected, 2, "one request per run, not retried");
    assert.deepEqual(heard, []);
  }),
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer } from "effect";
import { stringify } from "yaml";
import { Postgres } from "../stores/postgres.ts";
import {
  CONTEXT,
  effectTest,
  expectedIds,
  gateAdmitted,
  ofOutput,
  OUTPUTS,
  pgliteSite,
  processSite,
  runCommand,
  SCENARIO_RUN,
  shippedProfile,
  streamArgs,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// A hard cap as a user meets it: `main.ts stream` (a real process) under a profile whose
// governance.budgets caps the traffic output at N events delivers exactly N of them to the
// reference gate (over HTTP), stops with BUDGET_EXCEEDED and a budget_exceeded receipt, and the
// same command run again (a new process, same runs root and database) delivers nothing more.

const { tmp: TMP, world: WORLD, template: TEMPLATE, rows: ROWS } = await processSite(
  "budget_cap_test_",
  3000,
);
const RUN = "platform_20260101T000000Z";
/** Not a multiple of the batch size (500), so the cap falls inside a batch. */
const CAP = 777;

effectTest(
  "a stream under a hard cap of N events delivers exactly N to the gate, stops BUDGET_EXCEEDED with its receipt, and a rerun delivers nothing more",
  Effect.gen(function* () {
    assert.ok(ROWS[TRAFFIC] > CAP, `the world has more than ${CAP} traffic events`);
    const site = yield* pgliteSite(TMP, "cap", { template: TEMPLATE, gate: true });
    const profile = join(site.dir, "capped.yaml");
    Deno.writeTextFileSync(
      profile,
      stringify((() => {
        const shipped = shippedProfile("local") as { governance?: Record<string, unknown> };
        return {
          ...shipped,
          governance: {
            ...shipped.governance,
            budgets: [{ scope: "output", match: TRAFFIC, max_events: CAP }],
          },
        };
      })()),
    );
    const args = streamArgs(WORLD, site.ig.url, {
      platformRunId: RUN,
      scenarioRunId: SCENARIO_RUN,
      extra: ["--profile", profile],
    });
    const expected = yield* expectedIds(WORLD, OUTPUTS);

    const first = yield* runCommand(args, site);
    assert.equal(first.code, 1, `${first.stdout}\n${tail(first.stderr)}`);
    const result = first.result as {
      status: string;
      reason: string;
      message: string;
      outputs: ReadonlyArray<
        { output_id: string; status: string; emitted: number; reason: string }
      >;
    };
    assert.equal(result.status, "FAILED");
    assert.equal(result.reason, "BUDGET_EXCEEDED");
    assert.match(result.message, new RegExp(`${TRAFFIC}: .*caps events at ${CAP}`));
    const traffic = result.outputs.find((o) => o.output_id === TRAFFIC)!;
    assert.deepEqual([traffic.status, traffic.emitted, traffic.reason], [
      "FAILED",
      CAP,
      "BUDGET_EXCEEDED",
    ]);
    const context = result.outputs.find((o) => o.output_id === CONTEXT)!;
    assert.deepEqual([context.status, context.emitted], ["STREAMED", ROWS[CONTEXT]]);

    const admitted = yield* gateAdmitted(site.ig, RUN);
    assert.deepEqual(
      ofOutput(admitted, TRAFFIC).map((e) => e.event_id),
      expected.get(TRAFFIC)!.slice(0, CAP),
      "exactly the first N traffic events reached the gate",
    );
    assert.equal(ofOutput(admitted, CONTEXT).length, ROWS[CONTEXT]);

    // The same command again: a new process, the same runs root and database.
    const second = yield* runCommand(args, site);
    assert.equal(second.code, 1, `${second.stdout}\n${tail(second.stderr)}`);
    assert.equal(second.result?.reason, "BUDGET_EXCEEDED");
    assert.equal(second.result?.emitted, 0);
    assert.equal(ofOutput(yield* gateAdmitted(site.ig, RUN), TRAFFIC).length, CAP);

    // What the two runs left in worldstream's Postgres: the ledger and both receipts.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const pg = yield* Postgres;
        const [ledger] = yield* pg.query<{ events: string; exceeded: string }>(
          `select coalesce(sum(amount) filter (where metric = 'events'), 0)::text as events,
           count(*) filter (where exceeded)::text as exceeded
         from ws_budget_ledger where output_id = $1`,
          [TRAFFIC],
        );
        assert.deepEqual(ledger, { events: String(CAP), exceeded: "2" });
        const receipts = yield* pg.query<{ body: unknown }>(
          "select body from ws_receipts where kind = 'budget_exceeded' order by seq",
        );
        assert.equal(receipts.length, 2, "one receipt per capped run");
        for (const r of receipts) {
          const body = (typeof r.body === "string" ? JSON.parse(r.body) : r.body) as {
            status: string;
            badges: ReadonlyArray<string>;
            detail: { annotations: { action: string }; budget: { cap: number } };
          };
          assert.equal(body.status, "hard_block");
          assert.ok(body.badges.includes("budget_exceeded"));
          assert.equal(body.detail.annotations.action, "wsp.stream");
          assert.equal(body.detail.budget.cap, CAP);
        }
      }).pipe(
        Effect.provide(Layer.fresh(Postgres.layerPglite(site.vars.WORLDSTREAM_PGLITE_DIR))),
      ),
    );
  }),
);

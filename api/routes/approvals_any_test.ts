import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect } from "effect";
import { publishReady } from "../../actions/publish_ready.ts";
import { ControlBus } from "../../actors/control_bus.ts";
import { Supervisor } from "../../actors/supervisor.ts";
import { loadPolicies } from "../../core/policy.ts";
import type { Profile } from "../../core/profile.ts";
import { adminClient, adminSite, until } from "../../tests/_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  scopedTempDir,
  TRAFFIC,
} from "../../tests/_testing.ts";

// Every parkable action through the admin API on a real runtime (PGlite, WAL, the reference gate
// over HTTP), under a test policy that asks an approval for everything an operator does
// (`user:* [*] REQUIRE_APPROVAL`) and denies `run.resume` outright: checkpoint reset and undo,
// dead letter retry and purge, replay, pause and cancel are each parked (202), approved (it ran,
// checked in the store), denied (a policy_denied receipt carrying the whole explanation, nothing
// changed), approved twice (APPROVAL_ALREADY_DECIDED) and approved once their target is gone
// (APPROVAL_ACTION_GONE, nothing ran). Every refusal receipt written meanwhile must carry the
// explanation `deno task explain` prints.

const TMP = await fileTempDir("approvals_any_test_");
const WORLD = join(TMP, "world");
const ROWS = 200;
const [TEMPLATE] = await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, ROWS)]);
const BATCH = 20;

const POLICY = [
  "default: DENY",
  "rules:",
  '  - principal: "svc:*"',
  '    capabilities: ["wsp.stream", "wsp.replay", "ready.publish"]',
  "    action: ALLOW",
  '  - principal: "agent:*"',
  '    capabilities: ["wsp.stream"]',
  "    action: ALLOW",
  '  - principal: "user:*"',
  '    capabilities: ["run.resume"]',
  "    action: DENY",
  '  - principal: "user:*"',
  '    capabilities: ["*"]',
  "    action: REQUIRE_APPROVAL",
  "",
].join("\n");

/** What a refusal receipt must carry: the explanation `explain` prints. */
const EXPLANATION = [
  "principal",
  "capability",
  "rule",
  "rule_text",
  "risk",
  "risk_source",
  "reason",
];

// deno-lint-ignore no-explicit-any
type Body = any;

effectTest(
  "every parkable action is parked by the policy, runs once approved, changes nothing when denied, and fails with its code when decided twice or when its target is gone",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "site");
    const policyFile = join(dir, "policies.yaml");
    Deno.writeTextFileSync(policyFile, POLICY);
    const policy = yield* loadPolicies(policyFile);
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      batchSize: BATCH,
      deadLetterFirstBatch: true,
      profile: (p) => Effect.succeed<Profile>({ ...p, governance: { ...p.governance, policy } }),
    });
    const { get, post } = adminClient(site.admin.url);
    const decide = (id: string, decision: "approve" | "deny", note?: string) =>
      post(`/v1/approvals/${id}`, { decision, ...(note ? { note } : {}) });
    /** Posts `path` and answers the approval id of the 202 it must answer. */
    const park = (path: string, body: unknown = {}) =>
      Effect.gen(function* () {
        const parked = yield* post(path, body);
        assert.equal(parked.status, 202, `${path}: ${JSON.stringify(parked.body)}`);
        assert.equal(parked.body.status, "PENDING");
        return parked.body.approval_id as string;
      });
    const approveOk = (id: string) =>
      Effect.gen(function* () {
        const approved = yield* decide(id, "approve");
        assert.equal(approved.status, 200, JSON.stringify(approved.body));
        assert.equal(approved.body.status, "APPROVED");
        return approved.body.outcome as Body;
      });
    const refusedWith = (id: string, reason: string, decision: "approve" | "deny" = "approve") =>
      Effect.gen(function* () {
        const answer = yield* decide(id, decision);
        assert.equal(answer.status, 409, JSON.stringify(answer.body));
        assert.equal(answer.body.reason, reason);
      });

    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId: "platform_20260101T000007Z",
    });
    const settled = yield* ControlBus.use((bus) => bus.settled(published.message_id)).pipe(
      Effect.provideContext(site.context),
      Effect.timeout("120 seconds"),
    );
    assert.equal(settled.status, "STREAMED_WITH_DEAD_LETTERS", JSON.stringify(settled));
    const openIds = () =>
      Effect.map(
        get("/v1/dead-letters?status=open&limit=1000"),
        (r) => (r.body.dead_letters as Array<{ id: string }>).map((l) => l.id),
      );
    const letters = yield* openIds();
    assert.equal(letters.length, BATCH);

    // deadletter.retry: parked, nothing sent; denied, still open; approved, closed (the gate
    // admits it now); approved twice, ALREADY_DECIDED; approved once purged meanwhile, GONE.
    const retry = (id: string) => park(`/v1/dead-letters/${id}/retry`);
    const retryDenied = yield* retry(letters[0]);
    assert.ok((yield* openIds()).includes(letters[0]), "parked, not retried");
    assert.equal((yield* decide(retryDenied, "deny", "not now")).body.status, "DENIED");
    assert.ok((yield* openIds()).includes(letters[0]), "denied, not retried");
    const retried = yield* retry(letters[0]);
    const retryOutcome = yield* approveOk(retried);
    assert.equal(retryOutcome.closed, 1, JSON.stringify(retryOutcome));
    assert.ok(!(yield* openIds()).includes(letters[0]), "approved: retried and closed");
    yield* refusedWith(retried, "APPROVAL_ALREADY_DECIDED");

    // deadletter.purge, and a retry whose dead letter the purge closed meanwhile.
    const retryGone = yield* retry(letters[1]);
    const purge = yield* park("/v1/dead-letters/purge", { ids: [letters[1]] });
    assert.equal((yield* approveOk(purge)).purged, 1);
    assert.ok(!(yield* openIds()).includes(letters[1]), "purged");
    yield* refusedWith(retryGone, "APPROVAL_ACTION_GONE");
    const purgeDenied = yield* park("/v1/dead-letters/purge", { ids: [letters[2]] });
    yield* decide(purgeDenied, "deny");
    assert.ok((yield* openIds()).includes(letters[2]), "denied purge: still open");

    // checkpoint.reset and its undo: the previous cursor is kept, the undo restores it.
    const scopes = (yield* get("/v1/checkpoints")).body.checkpoints as Array<
      { run_key: string; output_id: string; last_seq: number; previous: Body }
    >;
    const cp = scopes.find((c) => c.output_id === TRAFFIC)!;
    assert.equal(cp.last_seq, ROWS - 1);
    const cpUrl = `/v1/checkpoints/${cp.run_key}/${TRAFFIC}`;
    const lastSeq = () =>
      Effect.map(
        get(`/v1/checkpoints?run=${cp.run_key}`),
        (r) =>
          (r.body.checkpoints as Array<{ output_id: string; last_seq: number; previous: Body }>)
            .find((c) => c.output_id === TRAFFIC)!,
      );
    const resetDenied = yield* park(`${cpUrl}/reset`, { to_seq: 5 });
    yield* decide(resetDenied, "deny");
    assert.equal((yield* lastSeq()).last_seq, ROWS - 1, "denied reset: nothing moved");
    const reset = yield* park(`${cpUrl}/reset`, { to_seq: 10 });
    assert.equal((yield* lastSeq()).last_seq, ROWS - 1, "parked reset: nothing moved");
    const resetOutcome = yield* approveOk(reset);
    assert.deepEqual([resetOutcome.previous.seq, resetOutcome.current.seq], [ROWS - 1, 10]);
    const moved = yield* lastSeq();
    assert.equal(moved.last_seq, 10);
    assert.equal(moved.previous.seq ?? moved.previous.last_seq, ROWS - 1, "previous kept");
    yield* refusedWith(reset, "APPROVAL_ALREADY_DECIDED", "deny");
    const undo = yield* park(`${cpUrl}/undo`);
    assert.equal((yield* approveOk(undo)).current.seq, ROWS - 1);
    assert.equal((yield* lastSeq()).last_seq, ROWS - 1, "undo restored the previous cursor");
    const resetGone = yield* park(`/v1/checkpoints/${"f".repeat(64)}/${TRAFFIC}/reset`, {
      to_seq: 1,
    });
    yield* refusedWith(resetGone, "APPROVAL_ACTION_GONE");

    // wsp.replay: parked, nothing sent; approved, it runs (the gate hears the window again);
    // a replay of a world deleted meanwhile is GONE.
    const window = { engine_run_root: WORLD, output_id: TRAFFIC, from_seq: 0, to_seq: 7 };
    const replayDenied = yield* park("/v1/replay", window);
    yield* decide(replayDenied, "deny");
    const replayId = yield* park("/v1/replay", window);
    const replayed = yield* approveOk(replayId);
    assert.equal(replayed.events, 7, JSON.stringify(replayed));
    const supervisor = Context.get(site.context, Supervisor);
    const finished = yield* until(
      Effect.map(supervisor.runs, (runs) => runs.find((r) => r.run_id === replayed.replay_id)),
      (r) => r?.state === "finished",
      "the approved replay",
    );
    assert.equal(finished?.status, "STREAMED", JSON.stringify(finished));
    assert.equal(
      (yield* get("/v1/runs/live")).body.runs.filter((r: Body) => r.kind === "replay").length,
      1,
      "only the approved replay ran",
    );
    const ghost = join(dir, "ghost_world");
    Deno.mkdirSync(ghost);
    const replayGone = yield* park("/v1/replay", { ...window, engine_run_root: ghost });
    Deno.removeSync(ghost);
    yield* refusedWith(replayGone, "APPROVAL_ACTION_GONE");

    // run.pause / run.cancel on a paced run in flight; run.resume is denied by the policy.
    const run = yield* supervisor.launch({
      _tag: "RunRequested",
      source: "operator",
      engine_run_root: WORLD,
      platform_run_id: "platform_20260101T000008Z",
      speedup: 1,
    });
    yield* until(
      Effect.map(supervisor.runs, (runs) => runs.find((r) => r.run_id === run.run_id)?.state),
      (s) => s === "running",
      "the paced run starts",
    );
    const stateOf = () =>
      Effect.map(supervisor.runs, (runs) => runs.find((r) => r.run_id === run.run_id)?.state);
    const pauseDenied = yield* park(`/v1/runs/${run.run_id}/pause`);
    yield* decide(pauseDenied, "deny");
    assert.equal(yield* stateOf(), "running", "denied pause: still running");
    const pause = yield* park(`/v1/runs/${run.run_id}/pause`);
    assert.equal(yield* stateOf(), "running", "parked pause: still running");
    assert.equal((yield* approveOk(pause)).state, "paused");
    assert.equal(yield* stateOf(), "paused");
    yield* refusedWith(pause, "APPROVAL_ALREADY_DECIDED");
    const resumed = yield* post(`/v1/runs/${run.run_id}/resume`);
    assert.equal(resumed.status, 403, JSON.stringify(resumed.body));
    assert.equal(resumed.body.reason, "POLICY_DENIED");
    const pauseGone = yield* park(`/v1/runs/${run.run_id}/pause`);
    const cancel = yield* park(`/v1/runs/${run.run_id}/cancel`);
    yield* approveOk(cancel);
    const ended = yield* until(
      Effect.map(supervisor.runs, (runs) => runs.find((r) => r.run_id === run.run_id)),
      (r) => r?.state === "finished",
      "the cancelled run ends",
    );
    assert.equal(ended?.status, "CANCELLED", JSON.stringify(ended));
    yield* refusedWith(pauseGone, "APPROVAL_ACTION_GONE");

    // The approvals as listed: each decided one with its status; the GONE ones still pending.
    const all = (yield* get("/v1/approvals?limit=1000")).body.approvals as Array<Body>;
    const statusOf = Object.fromEntries(all.map((a) => [a.approval_id, a.status]));
    for (const id of [retried, purge, reset, undo, replayId, pause, cancel]) {
      assert.equal(statusOf[id], "APPROVED", id);
    }
    for (const id of [retryDenied, purgeDenied, resetDenied, replayDenied, pauseDenied]) {
      assert.equal(statusOf[id], "DENIED", id);
    }
    for (const id of [retryGone, resetGone, replayGone, pauseGone]) {
      assert.equal(statusOf[id], "PENDING", id);
    }

    // Every refusal receipt carries the explanation: the five denials and the resume's DENY.
    const refusals = [
      ...(yield* get("/v1/receipts?kind=policy_denied&limit=1000")).body.receipts,
      ...(yield* get("/v1/receipts?kind=policy_decision&limit=1000")).body.receipts.filter((
        r: Body,
      ) => r.receipt.status !== "pass"),
    ].map((r: Body) => r.receipt);
    assert.ok(refusals.length >= 6 + 5, `refusal receipts: ${refusals.length}`);
    for (const r of refusals) assertExplained(r);
    const denials = refusals.filter((r: Body) => r.kind === "policy_denied");
    assert.equal(denials.length, 5);
    assert.ok(denials.every((r: Body) => r.detail.rule === 3 && r.detail.risk !== undefined));
    assert.equal((yield* get("/v1/receipts/verify")).body.status, "OK");
  }),
);

/** Fails when a refusal receipt lacks a field of the explanation. */
export function assertExplained(receipt: Body) {
  for (const key of EXPLANATION) {
    assert.ok(
      receipt.detail?.[key] !== undefined && receipt.detail?.[key] !== null,
      `${receipt.kind} receipt lacks ${key}: ${JSON.stringify(receipt.detail)}`,
    );
  }
}

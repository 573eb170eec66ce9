import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Layer } from "effect";
import { decideApproval } from "../../actions/approvals.ts";
import { publishReady } from "../../actions/publish_ready.ts";
import { ControlBus } from "../../actors/control_bus.ts";
import { loadPolicies } from "../../core/policy.ts";
import type { Profile } from "../../core/profile.ts";
import { adminSite, OPERATOR } from "../../tests/_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  gateAdmitted,
  makeWorld,
  pgliteTemplate,
  scopedTempDir,
} from "../../tests/_testing.ts";
import { DeadLetters } from "../../stores/dead_letters.ts";

// A READY whose plan step the policy escalates (`agent:* [wsp.stream] REQUIRE_APPROVAL`), on a
// real runtime (PGlite, WAL, the file control bus) streaming into the reference gate over HTTP,
// decided through the admin app (app.request): the READY is parked as a pending approval with the
// decision's explanation, its ledger says AWAITING_APPROVAL (never FAILED), nothing reaches the
// gate; the same READY submitted again while it waits does not park a second approval; approving
// it streams it through the READY path (the run STREAMED, every event admitted by the gate, the
// ledger's latest STREAMED); denying another leaves the gate untouched and writes a policy_denied
// receipt; approving from the `approvals` command (no runtime) fails APPROVAL_NEEDS_RUNTIME.

const TMP = await fileTempDir("approvals_ready_test_");
const WORLD = join(TMP, "world");
const ROWS = 120;
const [TEMPLATE] = await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, ROWS)]);

const POLICY = [
  "default: DENY",
  "rules:",
  '  - principal: "svc:*"',
  '    capabilities: ["ready.publish"]',
  "    action: ALLOW",
  '  - principal: "agent:*"',
  '    capabilities: ["wsp.stream"]',
  "    action: REQUIRE_APPROVAL",
  "",
].join("\n");

// deno-lint-ignore no-explicit-any
type Body = any;

effectTest(
  "a READY the policy escalates is parked, not failed; approved it streams through the READY path, denied nothing reaches the gate",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "site");
    const policyFile = join(dir, "policies.yaml");
    Deno.writeTextFileSync(policyFile, POLICY);
    const policy = yield* loadPolicies(policyFile);
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      profile: (p) => Effect.succeed<Profile>({ ...p, governance: { ...p.governance, policy } }),
    });
    const call = (path: string, method = "GET", body?: unknown) =>
      Effect.promise(async () => {
        const res = await site.app.request(path, {
          method,
          headers: {
            Authorization: `Bearer ${OPERATOR}`,
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: res.status, body: (await res.json()) as Body };
      });
    const bus = Context.get(site.context, ControlBus);
    /** The READY's latest settlement once it is `status` (polled every 20 ms, 120 s deadline). */
    const settled = (id: string, status: string) =>
      Effect.gen(function* () {
        const deadline = performance.now() + 120_000;
        while (true) {
          const s = yield* bus.settled(id).pipe(Effect.timeout("120 seconds"));
          if (s.status === status) return s;
          assert.ok(performance.now() < deadline, `${id}: ${s.status}, not ${status}`);
          yield* Effect.sleep(20);
        }
      });
    const gateTotal = Effect.promise(async () => {
      const res = await fetch(`${site.ig.url}/v1/ops/stats`);
      const all = await res.json() as Record<string, Record<string, number>>;
      return Object.values(all).reduce(
        (n, c) => n + c.admitted + c.duplicate + c.quarantined,
        0,
      );
    });
    const pendingStreams = Effect.map(
      call("/v1/approvals?status=PENDING&limit=1000"),
      (r) => (r.body.approvals as Array<Body>).filter((a) => a.capability === "wsp.stream"),
    );
    const ledger = (id: string) =>
      Effect.map(call(`/v1/runs/${id}`), (r) => r.body.ready as Array<Body>);

    // Parked by the bus: AWAITING_APPROVAL, one pending approval carrying the READY and the
    // explanation, nothing sent.
    const platformRunId = "platform_20260101T000011Z";
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId,
    });
    const parked = yield* settled(published.message_id, "AWAITING_APPROVAL");
    assert.equal(parked.reason, "APPROVAL_PENDING");
    const [approval, ...more] = yield* pendingStreams;
    assert.equal(more.length, 0);
    assert.equal(approval.principal.startsWith("agent:"), true, approval.principal);
    assert.equal(approval.request.ready.message_id, published.message_id);
    assert.equal(typeof approval.request.run_key, "string");
    assert.equal(approval.explanation.decision, "REQUIRE_APPROVAL");
    assert.equal(approval.explanation.rule, 1);
    assert.equal(yield* gateTotal, 0, "parked: nothing sent");

    // The same READY submitted again while it waits: the same approval, not a second one.
    const text = Deno.readTextFileSync(published.bus_file!);
    const again = yield* call("/v1/runs", "POST", JSON.parse(text));
    // Queued (202) like any READY; its plan step then finds the approval already waiting.
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.equal(again.body.status, "ACCEPTED");
    const deadline = performance.now() + 120_000;
    let waiting = yield* ledger(published.message_id);
    while (waiting.length < 2) {
      assert.ok(performance.now() < deadline, `second decision: ${JSON.stringify(waiting)}`);
      yield* Effect.sleep(20);
      waiting = yield* ledger(published.message_id);
    }
    const still = yield* pendingStreams;
    assert.deepEqual(still.map((a) => a.approval_id), [approval.approval_id]);
    assert.ok(waiting.every((d) => d.status === "AWAITING_APPROVAL"), JSON.stringify(waiting));
    assert.ok(waiting.every((d) => String(d.detail.message).includes(approval.approval_id)));
    assert.equal(yield* gateTotal, 0, "still parked: nothing sent");

    // Approving it from the `approvals` command (no runtime) leaves it pending.
    const cli = yield* decideApproval(approval.approval_id, {
      decision: "approve",
      actor: "user:cli",
      runtime: false,
    }).pipe(
      Effect.provide(Layer.orDie(DeadLetters.layer)),
      Effect.provideContext(site.context),
      Effect.flip,
    );
    assert.equal(cli.reason, "APPROVAL_NEEDS_RUNTIME");
    assert.equal((yield* pendingStreams).length, 1);

    // Approved through the admin API: the READY path streams it under the grant.
    const approved = yield* call(`/v1/approvals/${approval.approval_id}`, "POST", {
      decision: "approve",
    });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, "APPROVED");
    assert.deepEqual(approved.body.outcome, {
      message_id: published.message_id,
      status: "ACCEPTED",
    });
    const streamed = yield* settled(published.message_id, "STREAMED");
    assert.equal(streamed.result?.emitted, ROWS);
    assert.equal((yield* gateAdmitted(site.ig, platformRunId)).length, ROWS);
    assert.equal(yield* gateTotal, ROWS);
    const decisions = yield* ledger(published.message_id);
    const statuses = decisions.map((d) => d.status);
    assert.ok(statuses.includes("STREAMED"), JSON.stringify(statuses));
    assert.ok(!statuses.includes("FAILED") && !statuses.includes("SKIPPED_DUPLICATE"));
    const runs = (yield* call("/v1/runs")).body.runs as Array<Body>;
    const run = runs.find((r) => r.message_id === published.message_id);
    assert.equal(run?.status, "STREAMED", JSON.stringify(run));
    assert.equal(run?.emitted, ROWS);
    assert.equal((yield* pendingStreams).length, 0);
    // A redelivery now is a duplicate (streamed once).
    const dup = yield* call("/v1/runs", "POST", JSON.parse(text));
    assert.equal(dup.body.status, "SKIPPED_DUPLICATE", JSON.stringify(dup.body));

    // Another run's READY, denied: nothing reaches the gate; a policy_denied receipt.
    const other = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId: "platform_20260101T000012Z",
    });
    yield* settled(other.message_id, "AWAITING_APPROVAL");
    const [second] = yield* pendingStreams;
    assert.equal(second.request.ready.message_id, other.message_id);
    const denied = yield* call(`/v1/approvals/${second.approval_id}`, "POST", {
      decision: "deny",
      note: "not this one",
    });
    assert.equal(denied.body.status, "DENIED", JSON.stringify(denied.body));
    assert.equal(yield* gateTotal, ROWS, "denied: nothing sent");
    const refusals = (yield* call("/v1/receipts?kind=policy_denied&limit=100")).body
      .receipts as Array<Body>;
    const receipt = refusals.map((r) => r.receipt).find((r) =>
      r.detail.approval_id === second.approval_id
    );
    assert.ok(receipt !== undefined, "the denial's policy_denied receipt");
    for (const key of ["principal", "capability", "rule", "rule_text", "risk", "reason"]) {
      assert.ok(receipt.detail[key] !== undefined, `policy_denied lacks ${key}`);
    }
    assert.equal(receipt.detail.capability, "wsp.stream");
    const otherLedger = yield* ledger(other.message_id);
    assert.ok(otherLedger.every((d) => d.status === "AWAITING_APPROVAL"));
    assert.equal((yield* call("/v1/receipts/verify")).body.status, "OK");
  }),
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Clock, Effect, Layer } from "effect";
import { decideApproval } from "../../actions/approvals.ts";
import { purgeDeadLetters } from "../../actions/dead_letter_purge.ts";
import { publishReady } from "../../actions/publish_ready.ts";
import { ControlBus } from "../../actors/control_bus.ts";
import { fail } from "../../schemas/errors.ts";
import { DeadLetters } from "../../stores/dead_letters.ts";
import { adminClient, adminSite, bearer, VIEWER } from "../../tests/_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  scopedTempDir,
} from "../../tests/_testing.ts";

// Approvals through the admin API on a real runtime, mirroring the AI-First suite's approval
// cases: the shipped policy escalates `deadletter.purge` (CRITICAL) for `user:*` to
// REQUIRE_APPROVAL, so a purge of REAL dead letters (the gate's scripted 503s dead-letter the
// first batch) is parked; approving runs it once, denying receipts policy_denied, an expired one
// is denied as EXPIRED (a clock we move, no sleeping), deciding twice or an unknown id fails with
// its code, and an approval whose dead letter was closed meanwhile fails APPROVAL_ACTION_GONE.
// Then compensation: a purge by ids whose third page fails restores the two purged before it.

const TMP = await fileTempDir("approvals_api_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE] = await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, 200)]);
const BATCH = 20;

function lookup(igUrl: string, eventId: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${igUrl}/v1/ops/lookup?event_id=${eventId}`);
    await res.body?.cancel();
    return res.status;
  });
}

/** The Effect Clock moved `ms` ahead (only for the effect it wraps). */
function later<A, E, R>(ms: number, effect: Effect.Effect<A, E, R>) {
  return Clock.clockWith((clock) =>
    effect.pipe(Effect.provideService(Clock.Clock, {
      currentTimeMillisUnsafe: () => clock.currentTimeMillisUnsafe() + ms,
      currentTimeMillis: Effect.sync(() => clock.currentTimeMillisUnsafe() + ms),
      currentTimeNanosUnsafe: () => clock.currentTimeNanosUnsafe() + BigInt(ms) * 1_000_000n,
      currentTimeNanos: Effect.sync(() => clock.currentTimeNanosUnsafe() + BigInt(ms) * 1_000_000n),
      monotonicTimeNanosUnsafe: () => clock.monotonicTimeNanosUnsafe(),
      monotonicTimeNanos: clock.monotonicTimeNanos,
      sleep: (d) => clock.sleep(d),
    }))
  );
}

effectTest(
  "a purge through the API waits for an approval: approved it runs once, denied or expired it is receipted policy_denied, and bad decisions change nothing",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "site");
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      batchSize: BATCH,
      deadLetterFirstBatch: true,
    });
    const { get, post } = adminClient(site.admin.url);
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId: "platform_20260101T000004Z",
    });
    const settled = yield* ControlBus.use((bus) => bus.settled(published.message_id)).pipe(
      Effect.provideContext(site.context),
      Effect.timeout("120 seconds"),
    );
    assert.equal(settled.status, "STREAMED_WITH_DEAD_LETTERS", JSON.stringify(settled));
    const letters = (yield* get("/v1/dead-letters?status=open&limit=1000")).body
      .dead_letters as Array<{ id: string; event_id: string }>;
    assert.equal(letters.length, BATCH);
    const openIds = () =>
      Effect.map(
        get("/v1/dead-letters?status=open&limit=1000"),
        (r) => new Set((r.body.dead_letters as Array<{ id: string }>).map((l) => l.id)),
      );

    // Park: 202 with the approval id, nothing purged.
    const parked = yield* post("/v1/dead-letters/purge", { ids: [letters[0].id] });
    assert.equal(parked.status, 202, JSON.stringify(parked.body));
    assert.equal(parked.body.status, "PENDING");
    const id = parked.body.approval_id as string;
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.ok((yield* openIds()).has(letters[0].id), "parked, not purged");

    // Listed with who, what, why and until when; operator only.
    assert.equal((yield* get("/v1/approvals", bearer(VIEWER))).status, 403);
    const listed = yield* get("/v1/approvals?status=PENDING");
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    const [pending] = listed.body.approvals;
    assert.equal(pending.approval_id, id);
    assert.equal(pending.principal, "user:operator");
    assert.equal(pending.capability, "deadletter.purge");
    assert.deepEqual(pending.request, { ids: [letters[0].id] });
    assert.match(pending.reason, /CRITICAL|approval/i);
    const ttl = Date.parse(pending.expires_at) - Date.parse(pending.created_at);
    assert.equal(ttl, 3600 * 1000, "default approval_ttl_seconds");

    // Approve: the purge runs once, as the approver; nothing is sent to the gate.
    const approved = yield* post(`/v1/approvals/${id}`, { decision: "approve" });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, "APPROVED");
    assert.equal(approved.body.outcome.purged, 1);
    assert.ok(!(yield* openIds()).has(letters[0].id), "purged");
    assert.equal(yield* lookup(site.ig.url, letters[0].event_id), 404, "a purge sends nothing");

    // Decide twice: 409 APPROVAL_ALREADY_DECIDED, nothing runs again.
    const twice = yield* post(`/v1/approvals/${id}`, { decision: "deny" });
    assert.equal(twice.status, 409);
    assert.equal(twice.body.reason, "APPROVAL_ALREADY_DECIDED");
    const purgedReceipts = (yield* get("/v1/receipts?kind=dead_letter_purged")).body
      .receipts as Array<unknown>;
    assert.equal(purgedReceipts.length, 1, "purged once");

    // Unknown id.
    const unknown = yield* post(`/v1/approvals/${"0".repeat(32)}`, {
      decision: "approve",
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.reason, "APPROVAL_UNKNOWN");
    const badBody = yield* post(`/v1/approvals/${id}`, { decision: "maybe" });
    assert.equal(badBody.status, 400);

    // Deny: a policy_denied receipt, the dead letter stays open.
    const second = (yield* post("/v1/dead-letters/purge", { ids: [letters[1].id] }))
      .body.approval_id as string;
    const denied = yield* post(`/v1/approvals/${second}`, {
      decision: "deny",
      note: "keep it",
    });
    assert.equal(denied.status, 200, JSON.stringify(denied.body));
    assert.equal(denied.body.status, "DENIED");
    assert.ok((yield* openIds()).has(letters[1].id));
    const deniedReceipts = (yield* get("/v1/receipts?kind=policy_denied")).body
      .receipts as Array<{ receipt: { detail: { approval_id: string; note: string } } }>;
    assert.deepEqual(
      deniedReceipts.map((r) => [r.receipt.detail.approval_id, r.receipt.detail.note]),
      [[second, "keep it"]],
    );

    // The action no longer exists: the dead letter was closed meanwhile (purged directly by
    // another approval); approving fails APPROVAL_ACTION_GONE and leaves it pending.
    const gone = (yield* post("/v1/dead-letters/purge", { ids: [letters[2].id] }))
      .body.approval_id as string;
    const other = (yield* post("/v1/dead-letters/purge", { ids: [letters[2].id] }))
      .body.approval_id as string;
    assert.equal(
      (yield* post(`/v1/approvals/${other}`, { decision: "approve" })).status,
      200,
    );
    const goneAnswer = yield* post(`/v1/approvals/${gone}`, { decision: "approve" });
    assert.equal(goneAnswer.status, 409, JSON.stringify(goneAnswer.body));
    assert.equal(goneAnswer.body.reason, "APPROVAL_ACTION_GONE");
    const stillPending = (yield* get("/v1/approvals?status=PENDING")).body
      .approvals as Array<
        { approval_id: string }
      >;
    assert.deepEqual(stillPending.map((a) => a.approval_id), [gone]);

    // Expiry, on a clock two hours ahead: deciding fails APPROVAL_EXPIRED, the expiry is
    // receipted policy_denied, and nothing ran.
    const expiring = (yield* post("/v1/dead-letters/purge", {
      ids: [letters[3].id],
    })).body.approval_id as string;
    const expired = yield* later(
      2 * 3600 * 1000,
      decideApproval(expiring, { decision: "approve", actor: "user:operator" }),
    ).pipe(
      Effect.provide(Layer.orDie(DeadLetters.layer)),
      Effect.provideContext(site.context),
      Effect.flip,
    );
    assert.equal(expired.reason, "APPROVAL_EXPIRED");
    assert.ok((yield* openIds()).has(letters[3].id), "nothing ran");
    const all = (yield* get("/v1/approvals")).body.approvals as Array<
      { approval_id: string; status: string }
    >;
    const statuses = Object.fromEntries(all.map((a) => [a.approval_id, a.status]));
    assert.deepEqual(statuses, {
      [id]: "APPROVED",
      [second]: "DENIED",
      [gone]: "EXPIRED",
      [other]: "APPROVED",
      [expiring]: "EXPIRED",
    });
    const afterExpiry = yield* post(`/v1/approvals/${expiring}`, {
      decision: "approve",
    });
    assert.equal(afterExpiry.body.reason, "APPROVAL_EXPIRED");
    const deniedNow = (yield* get("/v1/receipts?kind=policy_denied")).body
      .receipts as Array<{ receipt: { detail: { approval_id: string; status: string } } }>;
    assert.deepEqual(
      deniedNow.map((r) => r.receipt.detail.approval_id).sort(),
      [second, gone, expiring].sort(),
    );

    // Compensation: a purge of three ids, one per page, whose third page fails: the two purged
    // before it are restored to open, newest first, and the purge ends ROLLED_BACK, receipted.
    const three = letters.slice(4, 7).map((l) => l.id);
    const rolled = yield* purgeDeadLetters({ ids: three }, "user:operator", {
      pageSize: 1,
      beforePage: (k) =>
        k === 2 ? Effect.fail(fail("WAL_CLOSED", "injected at page 2")) : Effect.void,
    }).pipe(Effect.provide(Layer.orDie(DeadLetters.layer)), Effect.provideContext(site.context));
    assert.equal(rolled.status, "ROLLED_BACK");
    assert.equal(rolled.reason, "WAL_CLOSED");
    assert.deepEqual(rolled.restored, three.slice(0, 2));
    const open = yield* openIds();
    for (const l of three) assert.ok(open.has(l), `${l} open again`);
    const restored = (yield* get("/v1/receipts?kind=dead_letter_restored")).body
      .receipts as Array<{ receipt: { detail: { dead_letter_id: string } } }>;
    assert.deepEqual(
      restored.map((r) => r.receipt.detail.dead_letter_id),
      [three[1], three[0]],
      "compensated in reverse order",
    );
    const rollback = (yield* get("/v1/receipts?kind=dead_letter_purge_rolled_back")).body
      .receipts as Array<{ receipt: { detail: { failed_step: string } } }>;
    assert.deepEqual(rollback.map((r) => r.receipt.detail.failed_step), ["page 2"]);
    assert.equal((yield* get("/v1/receipts/verify")).body.status, "OK");
  }),
);

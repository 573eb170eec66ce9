import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import { publishReady } from "../../actions/publish_ready.ts";
import { ControlBus } from "../../actors/control_bus.ts";
import { adminClient, adminSite, ATTEMPTS } from "../../tests/_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  scopedTempDir,
} from "../../tests/_testing.ts";

// Dead letters handled through the admin API while the runtime runs, on REAL dead letters: the
// reference gate answers the run's first requests 503 (its fault script) until the first batch
// has used its attempts, so that batch is dead-lettered (IG_PUSH_RETRY_EXHAUSTED) and the run goes
// on. One is retried through the API into the now healthy gate (ADMIT, closed, receipted); another
// is purged (closed without being sent, `dead_letter_purged` receipt under the operator's name).

const TMP = await fileTempDir("dead_letters_api_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE] = await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, 200)]);
const BATCH = 20;
/** What the gate holds for one event id: its admissions (404: none). */
function lookup(igUrl: string, eventId: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${igUrl}/v1/ops/lookup?event_id=${eventId}`);
    // deno-lint-ignore no-explicit-any
    const body: any = await res.json();
    return res.status === 404 ? [] : body.admissions as Array<{ receipt: { decision: string } }>;
  });
}

effectTest(
  "a real dead letter retried through the API into a healthy gate is ADMITTED and closed; another purged is gone, with its receipt",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "site");
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      batchSize: BATCH,
      deadLetterFirstBatch: true,
    });
    // Over HTTP, at the site's served port.
    const { get, post } = adminClient(site.admin.url);
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId: "platform_20260101T000003Z",
    });
    const settled = yield* ControlBus.use((bus) => bus.settled(published.message_id)).pipe(
      Effect.provideContext(site.context),
      Effect.timeout("120 seconds"),
    );
    assert.equal(settled.status, "STREAMED_WITH_DEAD_LETTERS", JSON.stringify(settled));

    const open = yield* get("/v1/dead-letters?status=open&limit=1000");
    assert.equal(open.status, 200);
    const letters = open.body.dead_letters as Array<
      { id: string; event_id: string; reason: string; attempts: number; run_key: string }
    >;
    assert.equal(letters.length, BATCH, "the first batch, and only it");
    for (const l of letters) {
      assert.equal(l.reason, "IG_PUSH_RETRY_EXHAUSTED");
      assert.equal(l.attempts, ATTEMPTS);
      assert.deepEqual(yield* lookup(site.ig.url, l.event_id), [], "never admitted");
    }
    const [retried, purged] = letters;

    // Retry one: the gate is healthy now.
    const retry = yield* post(`/v1/dead-letters/${retried.id}/retry`);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.status, "OK");
    assert.equal(retry.body.retried, 1);
    assert.equal(retry.body.closed, 1);
    const admitted = yield* lookup(site.ig.url, retried.event_id);
    assert.deepEqual(admitted.map((a) => a.receipt.decision), ["ADMIT"]);

    // Purge another (CRITICAL: parked for an approval, then approved): closed without sending.
    const parked = yield* post("/v1/dead-letters/purge", { ids: [purged.id] });
    assert.equal(parked.status, 202, JSON.stringify(parked.body));
    const purge = yield* post(`/v1/approvals/${parked.body.approval_id}`, {
      decision: "approve",
    });
    assert.equal(purge.status, 200, JSON.stringify(purge.body));
    assert.deepEqual(purge.body.outcome, {
      status: "OK",
      purged: 1,
      already_closed: 0,
      ids: [purged.id],
    });
    assert.deepEqual(yield* lookup(site.ig.url, purged.event_id), [], "a purge sends nothing");

    const after = (yield* get("/v1/dead-letters?status=open&limit=1000")).body
      .dead_letters as Array<{ id: string }>;
    assert.equal(after.length, BATCH - 2);
    assert.ok(!after.some((l) => l.id === retried.id || l.id === purged.id), "both are gone");
    const closed = (yield* get("/v1/dead-letters?status=closed")).body.dead_letters as Array<
      { id: string; closed_receipt_id: string | null }
    >;
    assert.deepEqual(closed.map((l) => l.id).sort(), [retried.id, purged.id].sort());
    assert.ok(closed.every((l) => l.closed_receipt_id !== null));

    // Each is receipted under the operator's principal, and the chain still verifies.
    for (
      const [kind, letter] of [
        ["dead_letter_closed", retried],
        ["dead_letter_purged", purged],
      ] as const
    ) {
      const receipts = (yield* get(`/v1/receipts?kind=${kind}`)).body.receipts as Array<
        { receipt: { actor: string; detail: { dead_letter_id: string } } }
      >;
      assert.equal(receipts.length, 1, kind);
      assert.equal(receipts[0].receipt.actor, "user:operator");
      assert.equal(receipts[0].receipt.detail.dead_letter_id, letter.id);
    }
    assert.equal((yield* get("/v1/receipts/verify")).body.status, "OK");

    // Again: the retried one is closed (nothing sent twice), the purged one too.
    const again = yield* post(`/v1/dead-letters/${retried.id}/retry`);
    assert.equal(again.body.already_closed, 1);
    assert.equal((yield* lookup(site.ig.url, retried.event_id)).length, 1);
  }),
);

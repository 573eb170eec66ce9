import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer } from "effect";
import { publishReady } from "../actions/publish_ready.ts";
import { ControlBus } from "../actors/control_bus.ts";
import { DeadLetters } from "../stores/dead_letters.ts";
import { pgQuery, Postgres } from "../stores/postgres.ts";
import { loadPolicies } from "../core/policy.ts";
import type { Profile } from "../core/profile.ts";
import { adminClient, adminSite } from "./_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  REPO,
  runCommand,
  scopedTempDir,
  tail,
  TRAFFIC,
} from "./_testing.ts";

// `approvals` as an operator runs it: a subprocess of main.ts on the runs root of a runtime
// that has stopped. The pending approval is made the real way: a runtime with the admin API,
// whose gate refuses the first batch (real dead letters), parks a `POST /v1/dead-letters/purge`
// (the shipped policy escalates `deadletter.purge`, CRITICAL, for `user:*`); the runtime is then
// stopped so the WAL lock is free. `approvals list` shows the approval, `approvals approve ID`
// runs the purge as user:cli (the dead letter closed, a dead_letter_purged receipt), approving
// it again fails APPROVAL_ALREADY_DECIDED and denying an unknown id APPROVAL_UNKNOWN, exit 1.

const TMP = await fileTempDir("approvals_command_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE] = await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, 200)]);
const BATCH = 20;

/** Parks a purge of one real dead letter through the admin API, then stops the runtime. */
function parkedPurge(dir: string) {
  return Effect.scoped(Effect.gen(function* () {
    // The shipped policy, but a replay by an operator waits for an approval.
    const policyFile = join(dir, "policies.yaml");
    Deno.writeTextFileSync(
      policyFile,
      Deno.readTextFileSync(join(REPO, "profiles", "policies.yaml")).replace(
        "rules:\n",
        'rules:\n  - principal: "user:*"\n    capabilities: ["wsp.replay"]\n    action: REQUIRE_APPROVAL\n',
      ),
    );
    const policy = yield* loadPolicies(policyFile);
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      batchSize: BATCH,
      deadLetterFirstBatch: true,
      profile: (p) => Effect.succeed<Profile>({ ...p, governance: { ...p.governance, policy } }),
    });
    const { get, post } = adminClient(site.admin.url);
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId: "platform_20260101T000005Z",
    });
    const settled = yield* ControlBus.use((bus) => bus.settled(published.message_id)).pipe(
      Effect.provideContext(site.context),
      Effect.timeout("120 seconds"),
    );
    assert.equal(settled.status, "STREAMED_WITH_DEAD_LETTERS", JSON.stringify(settled));
    const letters = (yield* get("/v1/dead-letters?status=open&limit=1000")).body
      .dead_letters as Array<{ id: string }>;
    assert.equal(letters.length, BATCH);
    const parked = yield* post("/v1/dead-letters/purge", {
      ids: [letters[0].id],
    });
    assert.equal(parked.status, 202, JSON.stringify(parked.body));
    const replay = yield* post("/v1/replay", {
      engine_run_root: WORLD,
      output_id: TRAFFIC,
      from_seq: 0,
      to_seq: 5,
    });
    assert.equal(replay.status, 202, JSON.stringify(replay.body));
    const scope = (yield* get("/v1/checkpoints")).body.checkpoints
      .find((c: { output_id: string }) => c.output_id === TRAFFIC).run_key as string;
    return {
      approvalId: parked.body.approval_id as string,
      letterId: letters[0].id,
      replayId: replay.body.approval_id as string,
      scope,
    };
  }));
}

/** Non-empty stdout lines as JSON. */
function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

effectTest(
  "approvals list shows a parked purge, approve runs it once as user:cli, and deciding twice or an unknown id fails with its code",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "site");
    const { approvalId, letterId, replayId, scope } = yield* parkedPurge(dir);
    const site = {
      dir,
      vars: {
        WORLDSTREAM_RUNS_ROOT: dir,
        WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
        CONTROL_BUS_ROOT: join(dir, "bus"),
        OBJECT_STORE_ROOT: join(dir, "objects"),
      },
    };
    const explain = (r: { stdout: string; stderr: string }) => `${r.stdout}\n${tail(r.stderr)}`;

    // A replay acts on a running runtime's runs: approving it here fails, and it stays pending.
    const replay = yield* runCommand(["approvals", "approve", replayId], site);
    assert.equal(replay.code, 1, explain(replay));
    assert.equal(replay.result?.reason, "APPROVAL_NEEDS_RUNTIME", explain(replay));
    assert.match(String(replay.result?.message), /POST \/v1\/approvals\//);
    const denied = yield* runCommand(["approvals", "deny", replayId], site);
    assert.equal(denied.code, 0, explain(denied));
    assert.equal(denied.result?.status, "DENIED");

    // A checkpoint reset from the CLI is parked (exit 4), and `approvals approve` runs it here.
    const reset = yield* runCommand(
      ["checkpoints", "reset", "--scope", scope, "--output-id", TRAFFIC, "--to-seq", "10"],
      site,
    );
    assert.equal(reset.code, 4, explain(reset));
    assert.equal(reset.result?.status, "PENDING");
    assert.equal(reset.result?.reason, "APPROVAL_PENDING");
    assert.match(reset.stderr, /APPROVAL_PENDING.*approvals approve [0-9a-f]{32}/);
    const resetId = reset.result?.approval_id as string;
    const resetApproved = yield* runCommand(["approvals", "approve", resetId], site);
    assert.equal(resetApproved.code, 0, explain(resetApproved));
    const outcome = resetApproved.result?.outcome as {
      previous: { seq: number };
      current: { seq: number };
    };
    assert.deepEqual([outcome.previous.seq, outcome.current.seq], [199, 10]);

    // list: one line per pending approval, then the summary.
    const listed = yield* runCommand(["approvals", "list"], site);
    assert.equal(listed.code, 0, explain(listed));
    const lines = jsonLines(listed.stdout);
    assert.deepEqual(lines.at(-1), { status: "OK", listed: 1 });
    const [pending] = lines.slice(0, -1);
    assert.equal(pending.approval_id, approvalId);
    assert.equal(pending.status, "PENDING");
    assert.equal(pending.capability, "deadletter.purge");
    assert.equal(pending.principal, "user:operator");
    assert.deepEqual(pending.request, { ids: [letterId] });

    // approve: the purge runs once, as user:cli.
    const approved = yield* runCommand(
      ["approvals", "approve", approvalId, "--note", "cleared by hand"],
      site,
    );
    assert.equal(approved.code, 0, explain(approved));
    const decision = approved.result!;
    assert.equal(decision.approval_id, approvalId);
    assert.equal(decision.status, "APPROVED");
    assert.equal((decision.outcome as { purged: number }).purged, 1, JSON.stringify(decision));

    // Deciding again fails, and nothing runs twice.
    const twice = yield* runCommand(["approvals", "approve", approvalId], site);
    assert.equal(twice.code, 1, explain(twice));
    assert.equal(twice.result?.reason, "APPROVAL_ALREADY_DECIDED", explain(twice));
    const unknown = yield* runCommand(["approvals", "deny", "0".repeat(32)], site);
    assert.equal(unknown.code, 1, explain(unknown));
    assert.equal(unknown.result?.reason, "APPROVAL_UNKNOWN", explain(unknown));

    // Nothing pending any more; the approval is listed as APPROVED by user:cli with its note.
    const after = jsonLines(
      (yield* runCommand(["approvals", "list", "--status", "all"], site))
        .stdout,
    );
    assert.deepEqual(after.at(-1), { status: "OK", listed: 3 });
    assert.equal(after.find((a) => a.approval_id === approvalId)?.status, "APPROVED");
    assert.equal(after.find((a) => a.approval_id === resetId)?.status, "APPROVED");
    assert.equal(after.find((a) => a.approval_id === replayId)?.status, "DENIED");
    const purgeLine = after.find((a) => a.approval_id === approvalId)!;
    assert.equal(purgeLine.decided_by, "user:cli");
    assert.equal(purgeLine.note, "cleared by hand");

    // The dead letter is closed and the purge receipted once, under the CLI's principal.
    const stored = yield* Effect.scoped(
      Effect.gen(function* () {
        const letter = yield* (yield* DeadLetters).find(letterId);
        const receipts = yield* (yield* Postgres).query<{ body: Record<string, unknown> }>(
          pgQuery("admin_receipts_page"),
          [0, "dead_letter_purged", null, 100],
        );
        return { letter, receipts: receipts.map((r) => r.body) };
      }).pipe(
        Effect.provide(
          DeadLetters.layer.pipe(Layer.provideMerge(Postgres.layerPglite(join(dir, "pg")))),
        ),
      ),
    );
    assert.equal(stored.letter?.status, "CLOSED");
    assert.equal(stored.receipts.length, 1, JSON.stringify(stored.receipts));
    assert.match(JSON.stringify(stored.receipts[0]), /user:cli/);
  }),
);

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Layer } from "effect";
import { publishReady } from "../actions/publish_ready.ts";
import { ControlBus } from "../actors/control_bus.ts";
import { DeadLetters } from "../stores/dead_letters.ts";
import { pgQuery, Postgres } from "../stores/postgres.ts";
import { adminSite, OPERATOR } from "./_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  runCommand,
  scopedTempDir,
  tail,
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

function call(base: string, path: string, method = "GET", body?: unknown) {
  return Effect.promise(async () => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${OPERATOR}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // deno-lint-ignore no-explicit-any
    return { status: res.status, body: (await res.json()) as any };
  });
}

/** Parks a purge of one real dead letter through the admin API, then stops the runtime. */
function parkedPurge(dir: string) {
  return Effect.scoped(Effect.gen(function* () {
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      batchSize: BATCH,
      deadLetterFirstBatch: true,
    });
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
    const letters = (yield* call(site.admin.url, "/v1/dead-letters?status=open&limit=1000")).body
      .dead_letters as Array<{ id: string }>;
    assert.equal(letters.length, BATCH);
    const parked = yield* call(site.admin.url, "/v1/dead-letters/purge", "POST", {
      ids: [letters[0].id],
    });
    assert.equal(parked.status, 202, JSON.stringify(parked.body));
    return { approvalId: parked.body.approval_id as string, letterId: letters[0].id };
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
    const { approvalId, letterId } = yield* parkedPurge(dir);
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
    assert.deepEqual(after.at(-1), { status: "OK", listed: 1 });
    assert.equal(after[0].status, "APPROVED");
    assert.equal(after[0].decided_by, "user:cli");
    assert.equal(after[0].note, "cleared by hand");

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

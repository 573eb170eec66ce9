import assert from "node:assert/strict";
import { join } from "node:path";
import { Context, Effect, Logger } from "effect";
import { parse, stringify } from "yaml";
import { loadPolicies } from "../../core/policy.ts";
import type { Profile } from "../../core/profile.ts";
import { type RunningIg, startIg } from "../../ig/server.ts";
import { Supervisor } from "../../actors/supervisor.ts";
import { Wal } from "../../actors/wal/writer.ts";
import { checkpointRecord } from "../../stores/wal_records.ts";
import { adminClient, adminSite, until } from "../../tests/_admin_site.ts";
import {
  copyDb,
  type Envelope,
  fileTempDir,
  gateAdmitted,
  gateCounts,
  makeWorld,
  pgliteTemplate,
  REPO,
  runCommand,
  shippedProfile,
  streamArgs,
  tail,
  TRAFFIC,
} from "../../tests/_testing.ts";

// The checkpoint reset routes (api/routes/checkpoints.ts, actions/checkpoint_reset.ts) through
// `app.request()` on a real runtime (PGlite, the WAL and its drain, the Supervisor, DuckDB)
// streaming a generated world into the reference gate over HTTP.
//
// Governance: `checkpoint.reset` is HIGH risk in the shipped registry, and core/policy.ts turns
// every ALLOW on HIGH into REQUIRE_APPROVAL, so with the shipped profile an operator's reset is
// parked as a pending approval (the first test; api/routes/approvals_any_test.ts approves). To test the reset
// itself the second test runs the same door with a test registry where checkpoint.reset is
// MEDIUM and a test policies.yaml that ALLOWs it for `user:operator` explicitly: the decision is
// still made and recorded by actors/governance.ts, only its inputs are the test's.

const TMP = await fileTempDir("admin_checkpoints_test_");
const TEMPLATE = await pgliteTemplate(join(TMP, "bare"));
const WORLD = join(TMP, "world");
const ROWS = (await makeWorld(WORLD, 400))[TRAFFIC];
/** The world's five days in about 8 s. */
const PACED = 5 * 86_400 / 8;
const quiet = Logger.layer([Logger.make(() => undefined)]);

// deno-lint-ignore no-explicit-any
type Body = any;

/** The shipped governance with checkpoint.reset MEDIUM and a policy file of the test's. */
function testGovernance(profile: Profile, dir: string) {
  return Effect.gen(function* () {
    const file = join(dir, "policies.yaml");
    Deno.writeTextFileSync(
      file,
      [
        "default: DENY",
        "rules:",
        '  - principal: "svc:*"',
        '    capabilities: ["wsp.stream"]',
        "    action: ALLOW",
        '  - principal: "user:operator"',
        '    capabilities: ["checkpoint.reset", "run.cancel"]',
        "    action: ALLOW",
        '  - principal: "user:cli"',
        '    capabilities: ["checkpoint.reset"]',
        "    action: ALLOW",
        "",
      ].join("\n"),
    );
    const policy = yield* loadPolicies(file);
    const { registry } = profile.governance;
    const reset = registry.capabilities.get("checkpoint.reset")!;
    const capabilities = new Map(registry.capabilities);
    capabilities.set("checkpoint.reset", {
      ...reset,
      risk: { ...reset.risk, level: "MEDIUM", requires_approval: false },
    });
    return {
      ...profile,
      governance: { ...profile.governance, policy, registry: { ...registry, capabilities } },
    } satisfies Profile;
  });
}

/**
 * A runtime on `dir` behind the admin app, until the scope closes: streaming into `ig` (a gate
 * of the test's, which outlives it) or one of its own, under the governance `profile` makes.
 */
function runtimeAt(
  dir: string,
  options: {
    readonly ig?: RunningIg;
    readonly profile?: (profile: Profile) => Effect.Effect<Profile, unknown>;
  } = {},
) {
  return Effect.gen(function* () {
    const { app, context } = yield* adminSite(dir, {
      template: TEMPLATE,
      speedup: PACED,
      ...options,
    });
    return {
      supervisor: Context.get(context, Supervisor),
      wal: Context.get(context, Wal),
      ...adminClient(app),
    };
  });
}

const FIRST = "platform_20260601T000001Z";

/** Streams the world into FIRST to its end; answers its checkpoint scope. */
function streamAll(supervisor: Supervisor["Service"]) {
  return Effect.gen(function* () {
    const run = yield* supervisor.launch({
      _tag: "RunRequested",
      source: "operator",
      engine_run_root: WORLD,
      platform_run_id: FIRST,
      speedup: 0,
    });
    const result = yield* supervisor.result(run.run_id);
    assert.equal(result.status, "STREAMED");
    return { runKey: run.run_key!, emitted: result.emitted };
  });
}

const checkpointOf = (body: Body, runKey: string) =>
  body.checkpoints.find((c: { run_key: string }) => c.run_key === runKey);

Deno.test("with the shipped policy an operator's checkpoint reset needs an approval, and nothing moves", async () => {
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const { supervisor, get, post } = yield* runtimeAt(join(TMP, "shipped"));
      const { runKey } = yield* streamAll(supervisor);
      const parked = yield* post(`/v1/checkpoints/${runKey}/${TRAFFIC}/reset`, { to_seq: 10 });
      assert.equal(parked.status, 202, JSON.stringify(parked.body));
      assert.equal(parked.body.status, "PENDING");
      assert.equal(parked.body.capability, "checkpoint.reset");
      assert.match(parked.body.reason, /checkpoint\.reset/);
      const undo = yield* post(`/v1/checkpoints/${runKey}/${TRAFFIC}/undo`);
      assert.equal(undo.status, 202, JSON.stringify(undo.body));
      const listed = checkpointOf((yield* get(`/v1/checkpoints?run=${runKey}`)).body, runKey);
      assert.equal(listed.last_seq, ROWS - 1);
      assert.equal(listed.previous, null);
      assert.equal(listed.reset_at, null);
      const resets = yield* get(`/v1/receipts?kind=checkpoint_reset`);
      assert.equal(resets.body.receipts.length, 0);
      // The door recorded its decision: a policy_decision receipt with approval_required.
      const decisions = (yield* get(`/v1/receipts?kind=policy_decision&run=${runKey}`)).body
        .receipts.map((r: Body) => r.receipt).filter((r: Body) =>
          r.detail.capability === "checkpoint.reset"
        );
      assert.equal(decisions.length, 2);
      assert.ok(decisions.every((r: Body) => r.badges.includes("approval_required")));
    })).pipe(Effect.provide(quiet)),
  );
});

Deno.test("a checkpoint reset moves the cursor back (kept for undo), undo restores it, bad resets change nothing, the next stream process re-sends from the reset, and `checkpoints reset` does the same with the runtime stopped", async () => {
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const dir = join(TMP, "reset");
      const ig = yield* startIg({ db: copyDb(TEMPLATE, join(dir, "ig")) });
      const profile = (p: Profile) => testGovernance(p, dir);
      let resetTo = -1;
      let original: ReadonlyArray<Envelope> = [];
      let runKey = "";
      yield* Effect.scoped(Effect.gen(function* () {
        const { supervisor, wal, get, post } = yield* runtimeAt(dir, { ig, profile });
        ({ runKey } = yield* streamAll(supervisor));
        original = yield* gateAdmitted(ig, FIRST);
        assert.equal(original.length, ROWS);
        const url = `/v1/checkpoints/${runKey}/${TRAFFIC}`;
        const listed = () =>
          get(`/v1/checkpoints?run=${runKey}`).pipe(
            Effect.map((r) => checkpointOf(r.body, runKey)),
          );
        assert.equal((yield* listed()).last_seq, ROWS - 1);

        // While the output streams in a scope, its checkpoint there cannot be reset.
        const paced = yield* supervisor.launch({
          _tag: "RunRequested",
          source: "operator",
          engine_run_root: WORLD,
          platform_run_id: "platform_20260601T000002Z",
        });
        yield* until(
          supervisor.streaming(paced.run_key!, TRAFFIC),
          (s) => s,
          "the paced run streaming",
        );
        const busy = yield* post(
          `/v1/checkpoints/${paced.run_key}/${TRAFFIC}/reset`,
          { to_seq: 0 },
        );
        assert.equal(busy.status, 409, JSON.stringify(busy.body));
        assert.equal(busy.body.reason, "CHECKPOINT_OUTPUT_STREAMING");
        yield* post(`/v1/runs/${paced.run_id}/cancel`);
        assert.equal((yield* supervisor.result(paced.run_id)).status, "CANCELLED");

        // Bad resets: their status and reason, and the checkpoint stays where it was.
        const bad: Array<[string, unknown, number, string]> = [
          [
            url + "/reset",
            { to_seq: 5, to_ts: original[9].ts_utc },
            400,
            "CHECKPOINT_RESET_INVALID",
          ],
          [url + "/reset", {}, 400, "CHECKPOINT_RESET_INVALID"],
          [url + "/reset", { to_ts: "yesterday" }, 400, "CHECKPOINT_RESET_INVALID"],
          [url + "/reset", { to_seq: -1 }, 400, "ADMIN_BODY_INVALID"],
          [url + "/reset", { to_seq: ROWS }, 400, "CHECKPOINT_RESET_OUTSIDE_VIEW"],
          [url + "/reset", { to_ts: original[0].ts_utc }, 400, "CHECKPOINT_RESET_OUTSIDE_VIEW"],
          [`/v1/checkpoints/nope/${TRAFFIC}/reset`, { to_seq: 1 }, 404, "CHECKPOINT_UNKNOWN"],
          [`/v1/checkpoints/${runKey}/nope/reset`, { to_seq: 1 }, 404, "CHECKPOINT_UNKNOWN"],
          [url + "/undo", {}, 409, "CHECKPOINT_NO_PREVIOUS"],
        ];
        // A checkpoint still owed its delivery receipt (a crash came before it) is not reset.
        const owedAt = { seq: 7, filename: "x.parquet", file_row_number: 7, ts_utc: "t" };
        yield* wal.append([checkpointRecord("owed-scope", TRAFFIC, owedAt, new Date(), {
          from_seq: 0,
          admitted: 8,
          duplicate: 0,
          quarantined: 0,
          dead_lettered: 0,
        })]);
        const owed = yield* post(`/v1/checkpoints/owed-scope/${TRAFFIC}/reset`, { to_seq: 1 });
        assert.deepEqual([owed.status, owed.body.reason], [409, "CHECKPOINT_RECEIPT_OWED"]);
        const stillOwed = (yield* get(`/v1/checkpoints?run=owed-scope`)).body.checkpoints[0];
        assert.deepEqual([stillOwed.last_seq, stillOwed.previous], [7, null]);

        for (const [path, body, status, reason] of bad) {
          const res = yield* post(path, body);
          assert.deepEqual(
            [res.status, res.body.reason],
            [status, reason],
            `${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`,
          );
          assert.equal((yield* listed()).last_seq, ROWS - 1, `${path} moved nothing`);
        }
        assert.equal(
          (yield* get(`/v1/receipts?kind=checkpoint_reset`)).body.receipts.length,
          0,
        );

        // Back to event 99: the answer and the listing keep the cursor it replaced.
        const back = yield* post(url + "/reset", { to_seq: 99 });
        assert.equal(back.status, 200, JSON.stringify(back.body));
        assert.equal(back.body.previous.seq, ROWS - 1);
        assert.equal(back.body.current.seq, 99);
        assert.equal(back.body.current.ts_utc, original[99].ts_utc);
        const moved = yield* listed();
        assert.equal(moved.last_seq, 99);
        assert.equal(moved.previous.seq, ROWS - 1);
        assert.equal(moved.previous.ts_utc, original[ROWS - 1].ts_utc);
        assert.ok(moved.reset_at);
        const [{ receipt }] = (yield* get(`/v1/receipts?kind=checkpoint_reset&run=${runKey}`))
          .body.receipts;
        assert.equal(receipt.receipt_id, back.body.receipt_id);
        assert.equal(receipt.actor, "user:operator");
        assert.deepEqual([receipt.detail.from.seq, receipt.detail.to.seq], [ROWS - 1, 99]);

        // Undo: back where it was (the reset's cursor is now the previous one).
        const undone = yield* post(url + "/undo");
        assert.equal(undone.status, 200, JSON.stringify(undone.body));
        assert.deepEqual([undone.body.previous.seq, undone.body.current.seq], [99, ROWS - 1]);
        assert.equal((yield* listed()).last_seq, ROWS - 1);
        // A stream of the scope now has nothing left to send: the undo restored the end.
        const heard = yield* gateCounts(ig, FIRST);
        const again = yield* streamAll(supervisor);
        assert.equal(again.emitted, 0);
        assert.deepEqual(yield* gateCounts(ig, FIRST), heard);

        // To a time: the last event before original[300]'s time becomes the last delivered.
        const ts = original[300].ts_utc;
        resetTo = original.findLastIndex((e) => e.ts_utc < ts);
        const byTs = yield* post(url + "/reset", { to_ts: ts });
        assert.equal(byTs.status, 200, JSON.stringify(byTs.body));
        assert.equal(byTs.body.current.seq, resetTo);
        assert.equal((yield* listed()).last_seq, resetTo);
      }));

      // The runtime is down; the `stream` command, a process of its own on the same runs root
      // and database, resumes that scope from the reset: the gate hears the events after it
      // again and answers DUPLICATE for each (their ids are the original ones).
      const before = yield* gateCounts(ig, FIRST);
      const vars = {
        WORLDSTREAM_RUNS_ROOT: dir,
        WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
        WORLDSTREAM_DB_BACKEND: "pglite",
        CONTROL_BUS_ROOT: join(dir, "bus"),
        OBJECT_STORE_ROOT: join(dir, "objects"),
      };
      const exited = yield* runCommand(
        streamArgs(WORLD, ig.url, { outputIds: [TRAFFIC], platformRunId: FIRST }),
        { dir, vars },
      );
      assert.equal(exited.code, 0, tail(exited.stderr));
      assert.equal(exited.result?.emitted, ROWS - 1 - resetTo, JSON.stringify(exited.result));
      const after = yield* gateCounts(ig, FIRST);
      assert.equal(after.admitted, before.admitted);
      assert.equal(after.duplicate - before.duplicate, ROWS - 1 - resetTo);

      // The command `checkpoints reset` (runtime stopped): the shipped policy wants an approval
      // and nothing moves; a profile with the test's registry and policy lets it reset.
      const cli = (extra: ReadonlyArray<string>) =>
        runCommand([
          "checkpoints",
          "reset",
          "--scope",
          runKey,
          "--output-id",
          TRAFFIC,
          "--to-seq",
          "199",
          ...extra,
        ], { dir, vars });
      const shipped = yield* cli([]);
      assert.equal(shipped.code, 4, tail(shipped.stderr));
      assert.equal(shipped.result?.status, "PENDING", shipped.stdout);
      assert.equal(shipped.result?.reason, "APPROVAL_PENDING", shipped.stdout);
      assert.match(tail(shipped.stderr), /approvals approve [0-9a-f]{32}/);
      const caps = parse(Deno.readTextFileSync(join(REPO, "profiles", "capabilities.yaml"))) as {
        capabilities: Array<{ id: string; risk: Record<string, unknown> }>;
      };
      const reset = caps.capabilities.find((c) => c.id === "checkpoint.reset")!;
      reset.risk = { ...reset.risk, level: "MEDIUM", requires_approval: false };
      Deno.writeTextFileSync(join(dir, "capabilities.yaml"), stringify(caps));
      const doc = shippedProfile("local") as { governance?: Record<string, unknown> };
      Deno.writeTextFileSync(
        join(dir, "allowing.yaml"),
        stringify({
          ...doc,
          governance: {
            ...doc.governance,
            capabilities_ref: join(dir, "capabilities.yaml"),
            policies_ref: join(dir, "policies.yaml"),
          },
        }),
      );
      const allowed = yield* cli(["--profile", join(dir, "allowing.yaml")]);
      assert.equal(allowed.code, 0, tail(allowed.stderr));
      assert.equal(allowed.result?.status, "OK");
      assert.deepEqual(
        [
          (allowed.result?.previous as { seq: number }).seq,
          (allowed.result?.current as { seq: number }).seq,
        ],
        [ROWS - 1, 199],
      );
      const resent = yield* runCommand(
        streamArgs(WORLD, ig.url, { outputIds: [TRAFFIC], platformRunId: FIRST }),
        { dir, vars },
      );
      assert.equal(resent.code, 0, tail(resent.stderr));
      assert.equal(resent.result?.emitted, ROWS - 1 - 199);
      assert.equal((yield* gateCounts(ig, FIRST)).duplicate - after.duplicate, ROWS - 1 - 199);
    })).pipe(Effect.provide(quiet)),
  );
});

import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect, Logger, type Scope } from "effect";
import { coreLayer, postgresLayer } from "../actors/runtime.ts";
import { Supervisor } from "../actors/supervisor.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { freshServerDatabase } from "../ig/_testing.ts";
import { type RunningIg, startIg, type StartIgOptions } from "../ig/server.ts";
import type { RunRequested } from "../schemas/messages.ts";
import { WorldstreamError } from "../schemas/errors.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { type PgBackend, Postgres } from "../stores/postgres.ts";
import { SERVER_URL } from "../stores/postgres_testing.ts";
import { Wal } from "../actors/wal/writer.ts";
import { walRecord } from "../stores/wal_records.ts";
import { auditVerifyCommand } from "./audit_verify.ts";
import { deadLettersCommand } from "./dead_letters.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { pgliteTemplate } from "../tests/_testing.ts";

// End to end: a real run of a generated world into the reference gate over loopback HTTP, where
// the gate refuses the runtime's requests, so the courier dead-letters the first batch. Then
// the commands list and retry those dead letters against gates that still refuse, cannot be
// reached, or take them. Each test has its own runs root, PGlite folder and gate database.

const TMP = await Deno.makeTempDir({ prefix: "dead_letters_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
// Migrated once here (worldstream's and the gate's tables), so each copy opens current.
await pgliteTemplate(BARE_DB);
const WORLD = join(TMP, "world");
await Effect.runPromise(genWorld({ out: WORLD, events: 200 }).pipe(Effect.provide(DuckDb.layer())));

const TRAFFIC = "s3_event_stream_with_fraud_6B";
const BATCH = 5;
const API_KEY = "dead-letters-test-key";

/** Log lines of the test in flight (the commands' own logs stay off the test output). */
let logged: Array<string> = [];
const capture = Logger.layer([
  Logger.make((o) => void logged.push((o.message as ReadonlyArray<unknown>).map(String).join(" "))),
]);

function test(
  name: string,
  body: Effect.Effect<void, unknown, Scope.Scope>,
  options: { readonly ignore?: boolean } = {},
) {
  Deno.test({ name, ignore: options.ignore ?? false }, () => {
    logged = [];
    return Effect.runPromise(
      Effect.scoped(body).pipe(Effect.provide(capture), Effect.mapError(readable)),
    );
  });
}

function readable(e: unknown): Error {
  if (e instanceof WorldstreamError) return new Error(`${e.reason}: ${e.message}`);
  return e instanceof Error ? e : new Error(String(e));
}

interface Site {
  readonly dir: string;
  readonly env: Record<string, string>;
  readonly profile: Profile;
}

let sites = 0;

/**
 * A test's own folders and profile: `local` with its runs root and PGlite folder in a temp
 * folder (or a fresh database on the test server), no IG key, batches of BATCH, and retries quick
 * enough that an unreachable gate is given up on at once.
 */
function site(backend: PgBackend = "pglite") {
  return Effect.gen(function* () {
    const dir = join(TMP, `site-${++sites}`);
    cpSync(BARE_DB, join(dir, "pg"), { recursive: true });
    // The process environment (a receipt key, if any, as the runtime reads it) plus the site.
    const env = {
      ...Deno.env.toObject(),
      WORLDSTREAM_RUNS_ROOT: dir,
      WORLDSTREAM_PGLITE_DIR: join(dir, "pg"),
      CONTROL_BUS_ROOT: join(dir, "bus"),
      IG_API_KEY: "",
      WORLDSTREAM_DB_BACKEND: backend,
      DATABASE_URL: backend === "server" ? yield* freshServerDatabase : "",
    };
    const loaded = yield* loadProfile("local", env);
    const profile: Profile = {
      ...loaded,
      outputIds: { ...loaded.outputIds, traffic: [TRAFFIC], context: [] },
      wiring: {
        ...loaded.wiring,
        wsp_retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 5 },
        wsp_courier: { mode: "batch", batch_size: BATCH, retry_after_cap_ms: 5 },
      },
    };
    return { dir, env, profile } satisfies Site;
  });
}

let gates = 0;

/** A gate on its own fresh database. */
function gate(options: Omit<StartIgOptions, "db"> = {}) {
  const db = join(TMP, `ig-${++gates}`);
  cpSync(BARE_DB, db, { recursive: true });
  return startIg({ db, ...options });
}

/** A port nothing listens on (for now). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

let platformRuns = 0;

/** Streams the traffic output of a fresh platform run into `ig`; returns the run id and result. */
function runInto(s: Site, ig: RunningIg, platformRunId?: string) {
  return Effect.gen(function* () {
    const run = platformRunId ??
      `platform_20260301T1200${String(++platformRuns).padStart(2, "0")}Z`;
    const request: RunRequested = {
      _tag: "RunRequested",
      source: "operator",
      engine_run_root: WORLD,
      platform_run_id: run,
      scenario_run_id: "0123456789abcdef0123456789abcdef",
      output_ids: [TRAFFIC],
    };
    const result = yield* Supervisor.use((s) => s.submit(request)).pipe(
      Effect.provide(coreLayer(runConfigOf(s.profile, { igUrl: ig.url, speedup: 0 }))),
    );
    return { run, result };
  });
}

type Line = Record<string, unknown>;

/** Runs `dead-letters ...argv` on the site; returns the JSON lines printed and the outcome. */
function deadLetters(s: Site, argv: ReadonlyArray<string>) {
  return Effect.gen(function* () {
    const lines: Array<Line> = [];
    const outcome = yield* deadLettersCommand(argv, {
      env: s.env,
      profile: s.profile,
      print: (line) => void lines.push(JSON.parse(line)),
    });
    return { lines, line: outcome.line, ok: outcome.ok };
  });
}

/** The reason a command failed with. */
function failureOf(s: Site, argv: ReadonlyArray<string>) {
  return Effect.flip(deadLetters(s, argv));
}

/** The gate's counts for one platform run. */
function counts(ig: RunningIg, platformRunId: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}/v1/ops/stats`);
    const all = await res.json() as Record<string, Record<string, number>>;
    return all[platformRunId] ?? { admitted: 0, duplicate: 0, quarantined: 0 };
  });
}

/** The site's receipts of `kind`, in chain order. */
function receiptsOf(s: Site, kind: string) {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    return yield* pg.query<{ record_id: string; body: Record<string, unknown> }>(
      "select record_id, body from ws_receipts where kind = $1 order by seq",
      [kind],
    );
  }).pipe(Effect.provide(postgresLayer(s.profile)));
}

const pick = (line: Line, keys: ReadonlyArray<string>) =>
  Object.fromEntries(keys.map((k) => [k, line[k]]));

for (const backend of ["pglite", "server"] as const) {
  const skipped = backend === "server" && SERVER_URL === undefined;
  test(
    `${backend}: dead letters from a refused run are listed, stay open while retries fail, and ` +
      `close with receipts the audit accepts${
        skipped ? " (skipped: DATABASE_URL is not set)" : ""
      }`,
    Effect.gen(function* () {
      const s = yield* site(backend);
      const refusing = yield* gate({ apiKey: API_KEY });
      const { run, result } = yield* runInto(s, refusing);
      assert.equal(result.status, "FAILED");
      assert.equal(result.reason, "IG_PUSH_REJECTED");

      // list: the refused batch, whole, open, with attempts, last status and reason.
      const listed = yield* deadLetters(s, ["list", "--platform-run-id", run, "--envelopes"]);
      assert.deepEqual(listed.line, { status: "OK", listed: BATCH, more: false });
      assert.equal(listed.ok, true);
      for (const line of listed.lines) {
        assert.deepEqual(
          pick(line, ["status", "platform_run_id", "output_id", "attempts", "retries"]),
          { status: "OPEN", platform_run_id: run, output_id: TRAFFIC, attempts: 1, retries: 0 },
        );
        assert.deepEqual(pick(line, ["last_status", "reason"]), {
          last_status: 401,
          reason: "IG_PUSH_REJECTED",
        });
        const envelope = line.envelope as Record<string, unknown>;
        assert.equal(envelope.event_id, line.event_id);
        assert.equal(envelope.platform_run_id, run);
      }
      const ids = listed.lines.map((l) => String(l.id));
      const limited = yield* deadLetters(s, ["list", "--platform-run-id", run, "--limit", "2"]);
      assert.deepEqual(limited.lines.map((l) => l.id), ids.slice(0, 2));
      assert.deepEqual(limited.line, { status: "OK", listed: 2, more: true });
      assert.equal(limited.lines[0].envelope, undefined, "envelopes only when asked for");
      const elsewhere = yield* deadLetters(s, ["list", "--output-id", "arrival_events_5B"]);
      assert.deepEqual(elsewhere.line, { status: "OK", listed: 0, more: false });

      // A gate that still refuses: every one stays open, one more attempt each, reason recorded.
      const refused = yield* deadLetters(s, ["retry", "--all", "--ig-url", refusing.url]);
      assert.equal(refused.ok, false);
      assert.deepEqual(refused.line, {
        status: "FAILED",
        retried: BATCH,
        closed: 0,
        still_open: BATCH,
        already_closed: 0,
        unsent: 0,
        reasons: { IG_PUSH_REJECTED: BATCH },
        reason: "DEAD_LETTERS_STILL_OPEN",
        message: `${BATCH} of ${BATCH} retried dead letters are still open`,
      });
      const afterRefusal = yield* deadLetters(s, ["list", "--platform-run-id", run]);
      assert.deepEqual(
        afterRefusal.lines.map((l) =>
          pick(l, ["id", "status", "attempts", "retries", "last_status"])
        ),
        ids.map((id) => ({ id, status: "OPEN", attempts: 2, retries: 1, last_status: 401 })),
      );

      // A gate nobody answers for: IG_UNREACHABLE, and nothing is recorded.
      const down = `http://127.0.0.1:${freePort()}`;
      const unreachable = yield* deadLetters(s, ["retry", "--id", ids[0], "--ig-url", down]);
      assert.equal(unreachable.ok, false);
      assert.deepEqual(pick(unreachable.line, ["status", "reason", "retried", "unsent"]), {
        status: "FAILED",
        reason: "IG_UNREACHABLE",
        retried: 0,
        unsent: 1,
      });
      const untouched = yield* deadLetters(s, ["list", "--platform-run-id", run]);
      assert.deepEqual(untouched.lines, afterRefusal.lines);

      // An id nobody stored.
      const unknown = yield* failureOf(s, ["retry", "--id", "no-such-dead-letter"]);
      assert.equal(unknown.reason, "DEAD_LETTER_NOT_FOUND");

      // A gate that takes them: one by id, then the rest.
      const healthy = yield* gate();
      const one = yield* deadLetters(s, ["retry", "--id", ids[0], "--ig-url", healthy.url]);
      assert.equal(one.ok, true);
      assert.deepEqual(one.line, {
        status: "OK",
        retried: 1,
        closed: 1,
        still_open: 0,
        already_closed: 0,
        unsent: 0,
        reasons: {},
      });
      assert.deepEqual(pick(one.lines[0], ["id", "status", "decision", "attempts", "retries"]), {
        id: ids[0],
        status: "CLOSED",
        decision: "ADMIT",
        attempts: 3,
        retries: 2,
      });
      const rest = yield* deadLetters(s, ["retry", "--all", "--ig-url", healthy.url]);
      assert.deepEqual(pick(rest.line, ["status", "retried", "closed", "still_open"]), {
        status: "OK",
        retried: BATCH - 1,
        closed: BATCH - 1,
        still_open: 0,
      });
      assert.deepEqual(yield* counts(healthy, run), {
        admitted: BATCH,
        duplicate: 0,
        quarantined: 0,
      });

      const open = yield* deadLetters(s, ["list"]);
      assert.deepEqual(open.line, { status: "OK", listed: 0, more: false });
      const closed = yield* deadLetters(s, ["list", "--status", "closed"]);
      assert.deepEqual(closed.lines.map((l) => l.id), ids);
      const closing = yield* receiptsOf(s, "dead_letter_closed");
      assert.equal(closing.length, BATCH);
      for (const line of closed.lines) {
        const receipt = closing.find((r) => r.record_id === line.closed_receipt_id);
        assert.ok(receipt, `the receipt that closed ${line.id} is on the chain`);
        assert.equal(receipt.body.status, "pass");
        assert.deepEqual(receipt.body.badges, ["dead_letter_closed"]);
        const detail = receipt.body.detail as Record<string, unknown>;
        assert.deepEqual(pick(detail, ["dead_letter_id", "event_id", "decision"]), {
          dead_letter_id: line.id,
          event_id: line.event_id,
          decision: "ADMIT",
        });
      }
      assert.equal((yield* receiptsOf(s, "dead_letter_retry")).length, BATCH);
      const audit = yield* auditVerifyCommand([], s.env);
      assert.equal(audit.ok, true, JSON.stringify(audit.line));

      // Retrying what is closed does nothing: no request, no record, no receipt.
      const again = yield* deadLetters(s, ["retry", "--id", ids[0], "--ig-url", healthy.url]);
      assert.deepEqual(pick(again.line, ["status", "retried", "already_closed"]), {
        status: "OK",
        retried: 0,
        already_closed: 1,
      });
      const allAgain = yield* deadLetters(s, ["retry", "--all", "--ig-url", healthy.url]);
      assert.deepEqual(pick(allAgain.line, ["status", "retried"]), { status: "OK", retried: 0 });
      assert.deepEqual((yield* counts(healthy, run)).duplicate, 0);
      assert.equal((yield* receiptsOf(s, "dead_letter_closed")).length, BATCH);
      assert.deepEqual((yield* deadLetters(s, ["list", "--status", "closed"])).lines, closed.lines);
    }),
    { ignore: skipped },
  );
}

test(
  "a dead letter a later run already delivered closes as DUPLICATE, one push at a time",
  Effect.gen(function* () {
    const s = yield* site();
    const refusing = yield* gate({ apiKey: API_KEY });
    const { run } = yield* runInto(s, refusing);
    const healthy = yield* gate();
    // The rerun starts before the dead letters (no checkpoint moved) and delivers everything.
    const rerun = yield* runInto(s, healthy, run);
    assert.equal(rerun.result.status, "STREAMED", rerun.result.message);
    const pushing: Site = {
      ...s,
      profile: {
        ...s.profile,
        wiring: {
          ...s.profile.wiring,
          wsp_courier: { mode: "push", batch_size: BATCH, push_concurrency: 2 },
        },
      },
    };
    const retried = yield* deadLetters(pushing, ["retry", "--all", "--ig-url", healthy.url]);
    assert.equal(retried.ok, true, JSON.stringify(retried.line));
    assert.equal(retried.line.closed, BATCH);
    assert.deepEqual(retried.lines.map((l) => l.decision), Array(BATCH).fill("DUPLICATE"));
    const c = yield* counts(healthy, run);
    assert.equal(c.duplicate, BATCH);
    assert.equal(c.admitted, rerun.result.emitted);
    assert.equal((yield* auditVerifyCommand([], s.env)).ok, true);
  }),
);

test(
  "a dead letter still in the WAL is listed: the command drains it to Postgres first",
  Effect.gen(function* () {
    const s = yield* site();
    yield* Wal.use((wal) =>
      wal.append([walRecord(
        "dead_letter",
        {
          run_key: "run-in-wal",
          output_id: TRAFFIC,
          event_id: "event-in-wal",
          envelope: { event_id: "event-in-wal" },
          attempts: 5,
          last_status: 503,
          reason: "IG_PUSH_RETRY_EXHAUSTED",
          status: "OPEN",
        },
        new Date("2026-03-01T12:00:00Z"),
        "dead-in-wal",
      )])
    ).pipe(Effect.provide(Wal.layer({ dir: join(s.dir, "wal") })));
    const listed = yield* deadLetters(s, ["list", "--run-key", "run-in-wal"]);
    assert.deepEqual(listed.lines.map((l) => pick(l, ["id", "event_id", "attempts", "reason"])), [
      {
        id: "dead-in-wal",
        event_id: "event-in-wal",
        attempts: 5,
        reason: "IG_PUSH_RETRY_EXHAUSTED",
      },
    ]);
  }),
);

test(
  "bad flags fail BAD_ARGS before anything is opened",
  Effect.gen(function* () {
    const s = yield* site();
    for (
      const argv of [
        [],
        ["purge"],
        ["retry"],
        ["retry", "--id", "x", "--all"],
        ["retry", "--id", "x", "--output-id", TRAFFIC],
        ["list", "--status", "maybe"],
        ["list", "--limit", "0"],
        ["list", "--limt", "3"],
      ]
    ) {
      const error = yield* failureOf(s, argv);
      assert.equal(error.reason, "BAD_ARGS", `${argv.join(" ")}: ${error.message}`);
    }
    const remote = yield* failureOf(s, ["retry", "--all", "--ig-url", "http://gate.example:80"]);
    assert.equal(remote.reason, "PRIVACY_TIER_FORBIDS_NETWORK");
  }),
);

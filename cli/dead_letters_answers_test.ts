import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { Effect, Layer, Logger } from "effect";
import { coreLayer } from "../actors/runtime.ts";
import { Supervisor } from "../actors/supervisor.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import { startIg } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { deadLettersCommand } from "./dead_letters.ts";
import { runConfigOf } from "../actors/run_config.ts";

// What a retried dead letter records when the gate answers 200 but does not take it: a gate
// whose policy quarantines the event (the reference gate with a schema policy that lacks the
// event type) leaves it open as IG_QUARANTINED with the gate's own reason; a gate answering a
// decision worldstream does not know leaves it open as IG_ANSWER_UNEXPECTED. The dead letters
// come from a real run into the reference gate refusing its API key, as an operator's would.

const TMP = await Deno.makeTempDir({ prefix: "dead_letters_answers_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const BARE_DB = join(TMP, "bare");
await Effect.runPromise(
  Effect.scoped(Layer.build(
    Layer.effectDiscard(migrate).pipe(
      Layer.provide(Postgres.layerPglite(BARE_DB)),
    ),
  )),
);
const WORLD = join(TMP, "world");
await Effect.runPromise(genWorld({ out: WORLD, events: 50 }).pipe(Effect.provide(DuckDb.layer())));

const TRAFFIC = "s3_event_stream_with_fraud_6B";
const BATCH = 3;
const RUN = "platform_20260301T130000Z";

/** The runtime's and the gate's log lines stay off the test output. */
const quiet = Logger.layer([]);

type Line = Record<string, unknown>;

/** A foreign gate that answers every batch 200 with `decision` for each event. */
function gateAnswering(decision: string) {
  return Effect.acquireRelease(
    Effect.sync(() =>
      Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => undefined }, async (req) => {
        const { events } = await req.json() as { events: ReadonlyArray<unknown> };
        return Response.json({ results: events.map(() => ({ decision })) });
      })
    ),
    (server) => Effect.promise(() => server.shutdown()),
  ).pipe(Effect.map((server) => `http://127.0.0.1:${server.addr.port}`));
}

Deno.test("a retried dead letter the gate quarantines stays open as IG_QUARANTINED, one it answers oddly as IG_ANSWER_UNEXPECTED", () =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      cpSync(BARE_DB, join(TMP, "pg"), { recursive: true });
      const env = {
        ...Deno.env.toObject(),
        WORLDSTREAM_RUNS_ROOT: TMP,
        WORLDSTREAM_PGLITE_DIR: join(TMP, "pg"),
        CONTROL_BUS_ROOT: join(TMP, "bus"),
        IG_API_KEY: "",
        WORLDSTREAM_DB_BACKEND: "pglite",
        DATABASE_URL: "",
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
      const gateDb = (name: string) => {
        const db = join(TMP, name);
        cpSync(BARE_DB, db, { recursive: true });
        return db;
      };

      // A run into a gate that refuses its key: the first batch becomes dead letters.
      const refusing = yield* startIg({ db: gateDb("ig-refusing"), apiKey: "not-the-runtime's" });
      const result = yield* Supervisor.use((s) =>
        s.submit({
          _tag: "RunRequested",
          source: "operator",
          engine_run_root: WORLD,
          platform_run_id: RUN,
          output_ids: [TRAFFIC],
        })
      ).pipe(Effect.provide(coreLayer(runConfigOf(profile, { igUrl: refusing.url, speedup: 0 }))));
      assert.equal(result.reason, "IG_PUSH_REJECTED");

      const retry = (igUrl: string) =>
        Effect.gen(function* () {
          const lines: Array<Line> = [];
          const outcome = yield* deadLettersCommand(["retry", "--all", "--ig-url", igUrl], {
            env,
            profile,
            print: (line) => void lines.push(JSON.parse(line)),
          });
          return { lines, line: outcome.line as Line };
        });

      // The reference gate with a schema policy that does not know the traffic event type.
      const policy = join(TMP, "schema_policy.yaml");
      const bundled = yield* Effect.promise(() =>
        Deno.readTextFile(new URL("../profiles/ig/schema_policy_v0.yaml", import.meta.url))
      );
      yield* Effect.promise(() =>
        Deno.writeTextFile(
          policy,
          bundled.replace(/ {2}- event_type: s3_event_stream_with_fraud_6B\n( {4}.*\n)+/, ""),
        )
      );
      const quarantining = yield* startIg({
        db: gateDb("ig-quarantining"),
        gate: { policyFiles: { schemaPolicy: policy } },
      });
      const quarantined = yield* retry(quarantining.url);
      assert.deepEqual(quarantined.line.reasons, { IG_QUARANTINED: BATCH });
      assert.equal(quarantined.line.reason, "DEAD_LETTERS_STILL_OPEN");
      for (const line of quarantined.lines) {
        assert.equal(line.status, "OPEN");
        assert.equal(line.decision, "QUARANTINE");
        assert.equal(line.reason, "IG_QUARANTINED");
      }

      const odd = yield* retry(yield* gateAnswering("MAYBE_LATER"));
      assert.deepEqual(odd.line.reasons, { IG_ANSWER_UNEXPECTED: BATCH });
      for (const line of odd.lines) {
        assert.equal(line.status, "OPEN");
        // Not a decision: none is recorded, and the run's message names what was answered.
        assert.equal(line.decision, null);
        assert.equal(line.reason, "IG_ANSWER_UNEXPECTED");
      }

      // Both retries are on record: two more attempts and retries each, still open.
      const listed: Array<Line> = [];
      yield* deadLettersCommand(["list", "--platform-run-id", RUN], {
        env,
        profile,
        print: (line) => void listed.push(JSON.parse(line)),
      });
      assert.equal(listed.length, BATCH);
      for (const line of listed) {
        assert.deepEqual([line.status, line.retries, line.attempts], ["OPEN", 2, 3]);
      }
    })).pipe(Effect.provide(quiet)),
  ));

import assert from "node:assert/strict";
import { Effect, type Scope } from "effect";
import { parseIgArgs } from "../cli/ig.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { Postgres } from "../stores/postgres.ts";
import { pgTest, SERVER_URL, tempDir } from "../stores/postgres_testing.ts";
import { envelope, freshServerDatabase, gateLayer, RUN } from "./_testing.ts";
import type { FaultOptions } from "./faults.ts";
import { IgGate } from "./gate.ts";
import { type RunningIg, serveGate, startIg } from "./server.ts";

function post(url: string, body: unknown) {
  return Effect.promise(async () => {
    const response = await fetch(url, { method: "POST", body: JSON.stringify(body) });
    return { status: response.status, headers: response.headers, json: await response.json() };
  });
}

function get(url: string) {
  return Effect.promise(async () => {
    const response = await fetch(url);
    return { status: response.status, json: await response.json() };
  });
}

/** What a client that only sees the socket gets: a network error, or a status. */
function attempt(url: string, body: unknown) {
  return Effect.promise(() =>
    fetch(url, { method: "POST", body: JSON.stringify(body) }).then(
      async (response) => ({ status: response.status, body: await response.text() }),
      (e: Error) => ({ networkError: e.name }),
    )
  );
}

function startedGateServes(start: Effect.Effect<RunningIg, WorldstreamError, Scope.Scope>) {
  return Effect.gen(function* () {
    const url = yield* Effect.scoped(Effect.gen(function* () {
      const ig = yield* start;
      assert.ok(ig.port > 0);
      assert.equal(ig.url, `http://127.0.0.1:${ig.port}`);
      assert.equal(ig.engine, "deno");

      const admitted = yield* post(`${ig.url}/v1/ingest/push`, envelope(1));
      assert.equal(admitted.status, 200);
      assert.equal(admitted.json.decision, "ADMIT");
      const batch = yield* post(`${ig.url}/v1/ingest/batch`, {
        events: [envelope(2), envelope(1)],
      });
      assert.deepEqual(batch.json.results.map((r: { decision: string }) => r.decision), [
        "ADMIT",
        "DUPLICATE",
      ]);
      const racing = yield* Effect.all(
        Array.from({ length: 30 }, () => post(`${ig.url}/v1/ingest/push`, envelope(3))),
        { concurrency: "unbounded" },
      );
      assert.equal(racing.filter((r) => r.json.decision === "ADMIT").length, 1);
      assert.equal(racing.filter((r) => r.json.decision === "DUPLICATE").length, 29);
      assert.deepEqual((yield* get(`${ig.url}/v1/ops/stats`)).json, {
        [RUN]: { admitted: 3, duplicate: 30, quarantined: 0 },
      });
      assert.equal((yield* get(`${ig.url}/v1/ops/health`)).json.db, ig.backend);
      return ig.url;
    }));
    const after = yield* attempt(`${url}/v1/ingest/push`, envelope(4));
    assert.ok("networkError" in after, "the server is gone once its scope closes");
  });
}

Deno.test("startIg serves a PGlite gate on an ephemeral loopback port until its scope closes", () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const dir = yield* tempDir;
    yield* startedGateServes(startIg({ db: `${dir}/ig`, port: 0 }));
  }))));

Deno.test({
  name: `startIg serves a gate on a Postgres server${
    SERVER_URL === undefined ? " (skipped: DATABASE_URL is not set)" : ""
  }`,
  ignore: SERVER_URL === undefined,
  fn: () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const url = yield* freshServerDatabase;
      yield* startedGateServes(startIg({ db: url }));
    }))),
});

Deno.test("startIg refuses a port that is taken", () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    yield* Effect.addFinalizer(() => Effect.sync(() => taken.close()));
    const dir = yield* tempDir;
    const error = yield* Effect.flip(
      startIg({ db: `${dir}/ig`, port: (taken.addr as Deno.NetAddr).port }),
    );
    assert.equal(error.reason, "IG_LISTEN_FAILED");
  }))));

function servedTest(
  name: string,
  faults: FaultOptions,
  body: (ig: RunningIg) => Effect.Effect<void, unknown, Postgres | Scope.Scope>,
) {
  pgTest(name, () =>
    Effect.gen(function* () {
      const gate = yield* IgGate;
      yield* body(yield* serveGate(gate, { faults }));
    }).pipe(Effect.provide(gateLayer())));
}

servedTest(
  "over a socket, a fail rate of 1 answers every push with a 503",
  { failRate: 1 },
  (ig) =>
    Effect.gen(function* () {
      for (let i = 0; i < 3; i++) {
        const answer = yield* attempt(`${ig.url}/v1/ingest/push`, envelope(i));
        assert.equal("status" in answer && answer.status, 503);
      }
    }),
);

servedTest(
  "over a socket, a reset is a network error and the retry finds the event admitted",
  { resetRate: 0.5, seed: 3 },
  (ig) =>
    Effect.gen(function* () {
      assert.equal(ig.engine, "node", "dropping connections takes the node server");
      const answers = [];
      for (let i = 0; i < 12; i++) {
        answers.push(yield* attempt(`${ig.url}/v1/ingest/push`, envelope(1)));
      }
      const resets = answers.filter((a) => "networkError" in a);
      const replies = answers.filter((a) => "status" in a);
      assert.ok(resets.length > 0 && replies.length > 0, "a seeded half of the pushes reset");
      assert.deepEqual(resets[0], { networkError: "TypeError" });
      // Every push reached the gate, answered or not (fetch itself may resend a request whose
      // pooled connection dropped): one admission, every other attempt a duplicate.
      const stats = (yield* get(`${ig.url}/v1/ops/stats`)).json[RUN];
      assert.equal(stats.admitted, 1);
      assert.ok(stats.duplicate >= 11, `${stats.duplicate} duplicates`);
      assert.equal(stats.quarantined, 0);
    }),
);

Deno.test("the ig command's flags have defaults and are checked", () =>
  Effect.runPromise(Effect.gen(function* () {
    const defaults = yield* parseIgArgs([]);
    assert.equal(defaults.port, 8081);
    assert.equal(defaults.host, "127.0.0.1");
    assert.equal(defaults.db, "runs/ig-pglite");
    const faulty = yield* parseIgArgs([
      "--port",
      "0",
      "--db",
      "postgres://x@127.0.0.1/ig",
      "--fail-rate",
      "0.2",
      "--fail-status",
      "429",
      "--latency-ms",
      "5",
      "--reset-rate",
      "0.1",
      "--fault-seed",
      "7",
      "--api-key",
      "k",
    ]);
    assert.equal(faulty.port, 0);
    assert.equal(faulty.apiKey, "k");
    assert.deepEqual(faulty.faults, {
      failRate: 0.2,
      failStatus: 429,
      latencyMs: 5,
      resetRate: 0.1,
      seed: 7,
    });
    for (const bad of [["--port", "x"], ["--port", "70000"], ["--nope"], ["--fail-rate"]]) {
      const error = yield* Effect.flip(parseIgArgs(bad));
      assert.equal(error.reason, "BAD_ARGS", bad.join(" "));
    }
  })));

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import {
  effectTest,
  fileTempDir,
  freePort,
  makeWorld,
  pgliteSite,
  pgliteTemplate,
  processEnv,
  spawnWorldstream,
  tail,
  waitFor,
} from "./_testing.ts";

// The admin API as a user starts it: `main.ts run --admin-port P` in a subprocess with the
// operator token in its environment. /v1/status answers the operator's bearer token with the run
// streaming, and 401 without a token or with a wrong one; the dashboard page is served; an open
// live feed (/v1/events) does not hold up a SIGTERM, which ends the service with exit 0; and the
// token appears in none of its output.

const TMP = await fileTempDir("admin_command_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE] = await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, 1500)]);
const TOKEN = "admin-command-test-token-0123456789";

effectTest(
  "run --admin-port serves /v1/status to the operator token (401 without), the dashboard, and a SIGTERM with the live feed open exits 0",
  Effect.gen(function* () {
    const { dir, vars, ig } = yield* pgliteSite(TMP, "site", {
      template: TEMPLATE,
      bus: true,
      gate: true,
    });
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const ws = yield* spawnWorldstream(
      [
        "run",
        "--engine-run-root",
        WORLD,
        "--ig-url",
        ig.url,
        "--speedup",
        "4000",
        "--admin-port",
        String(port),
      ],
      {
        env: processEnv({ ...vars, WORLDSTREAM_ADMIN_TOKEN: TOKEN, WSP_COURIER_MODE: "batch" }),
        cwd: dir,
        ownGroup: true,
      },
    );
    const get = (path: string, headers: Record<string, string> = {}) =>
      Effect.promise(async () => {
        const res = await fetch(`${base}${path}`, { headers }).catch(() => undefined);
        if (res === undefined) return undefined;
        const text = await res.text();
        return { status: res.status, type: res.headers.get("content-type") ?? "", text };
      });
    const bearer = { Authorization: `Bearer ${TOKEN}` };
    // The run in flight, its output advancing, as the operator sees it.
    const status = yield* waitFor(
      "/v1/status shows the run's output delivering",
      get("/v1/status", bearer).pipe(Effect.map((r) => {
        if (r?.status !== 200) return undefined;
        const body = JSON.parse(r.text);
        return body.outputs.some((o: { delivered: number }) => o.delivered > 0) ? body : undefined;
      })),
      { timeoutMs: 120_000, process: ws },
    );
    assert.equal(status.runs_in_flight.length, 1);
    assert.ok(status.actors.some((a: { actor: string }) => a.actor === "supervisor"));
    const refusedWith: Array<Record<string, string>> = [
      {},
      { Authorization: "Bearer wrong-token-0123456789" },
    ];
    for (const headers of refusedWith) {
      const refused = yield* get("/v1/status", headers);
      assert.equal(refused?.status, 401);
      assert.equal(JSON.parse(refused!.text).reason, "ADMIN_UNAUTHORIZED");
    }
    const page = yield* get("/");
    assert.equal(page?.status, 200);
    assert.match(page!.type, /^text\/html/);

    // A live feed held open across the stop.
    const feed = yield* Effect.promise(() =>
      fetch(`${base}/v1/events`, { headers: bearer }).then(async (res) => {
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        while (!text.includes("event: status")) text += (await reader.read()).value ?? "";
        return { reader, text };
      })
    );
    assert.match(feed.text, /event: status\ndata: \{"status":/);
    const sentAt = performance.now();
    ws.signalGroup("SIGTERM");
    const exited = yield* ws.exited(60_000);
    const ms = performance.now() - sentAt;
    assert.equal(exited.code, 0, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.ok(ms < 15_000, `SIGTERM took ${Math.round(ms)} ms with the feed open`);
    // The feed ended with the runtime (no hanging connection).
    let rest = yield* Effect.promise(() => feed.reader.read().catch(() => ({ done: true })));
    while (!rest.done) rest = yield* Effect.promise(() => feed.reader.read());
    assert.ok(!exited.stdout.includes(TOKEN) && !exited.stderr.includes(TOKEN), "token not echoed");
  }),
);

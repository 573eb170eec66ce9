import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { envelope, RUN } from "../ig/_testing.ts";
import { MAX_BODY_BYTES } from "../ig/app.ts";
import {
  copyDb,
  fileTempDir,
  freePort,
  pgliteTemplate,
  processEnv,
  scopedTempDir,
  spawnWorldstream,
  tail,
  waitFor,
} from "./_testing.ts";

// The reference gate survives every body (`main.ts ig` as a process): the body limit holds for
// the bytes actually read (a chunked body has no Content-Length to trust), JSON nesting is
// bounded, large pushes under the limit all at once are taken or turned away with a 503 to retry
// and never exhaust the gate's memory, it answers /v1/ops/health after each, and an empty
// `--api-key` is refused instead of turning auth off.

const TMP = await fileTempDir("ig_limits_test_");
const TEMPLATE = await pgliteTemplate(join(TMP, "bare"));

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

/** `main.ts ig` on a free port over its own database, healthy; SIGTERMed with the scope. */
function gateProcess(name: string) {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, name);
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const ig = yield* spawnWorldstream(
      ["ig", "--port", String(port), "--db", copyDb(TEMPLATE, join(dir, "db"))],
      { env: processEnv({}), cwd: dir },
    );
    yield* Effect.addFinalizer(() => ig.kill("SIGTERM"));
    yield* waitFor("the gate answers its health check", healthy(url), {
      timeoutMs: 60_000,
      process: ig,
    });
    return { url, ig };
  });
}

function healthy(url: string) {
  return Effect.promise(async () => {
    try {
      const res = await fetch(`${url}/v1/ops/health`, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      return res.status === 200 ? true : undefined;
    } catch {
      return undefined;
    }
  });
}

function assertHealthy(url: string, after: string) {
  return healthy(url).pipe(
    Effect.map((ok) => assert.equal(ok, true, `the gate stopped answering after ${after}`)),
  );
}

/** POSTs `body` to `path`; the status and body text, or the error if the connection broke. */
function post(url: string, path: string, body: BodyInit) {
  return Effect.promise(async () => {
    try {
      const res = await fetch(`${url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(60_000),
      });
      return { status: res.status, text: await res.text() };
    } catch (e) {
      return { status: 0, text: String(e) };
    }
  });
}

/** A valid envelope of `bytes` bytes (its payload's campaign_id is long). */
function envelopeOf(n: number, bytes: number): string {
  const e = envelope(n);
  // campaign_id goes from `null` to a quoted string: 2 bytes fewer than its length.
  const base = JSON.stringify(e).length;
  (e.payload as Record<string, unknown>).campaign_id = "x".repeat(bytes - base + 2);
  const text = JSON.stringify(e);
  assert.equal(text.length, bytes);
  return text;
}

function chunked(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at + 256 * 1024));
      at += 256 * 1024;
    },
  });
}

function stats(url: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${url}/v1/ops/stats`);
    const all = await res.json() as Record<string, { admitted: number }>;
    return all[RUN]?.admitted ?? 0;
  });
}

test(
  "a body sent chunked, without Content-Length, over the limit is answered 413 and nothing is admitted; one under it is admitted",
  Effect.gen(function* () {
    const { url } = yield* gateProcess("chunked");
    const over = yield* post(url, "/v1/ingest/push", chunked(envelopeOf(1, MAX_BODY_BYTES + 1)));
    assert.equal(over.status, 413, over.text);
    assert.match(over.text, /BODY_TOO_LARGE/);
    yield* assertHealthy(url, "a chunked body over the limit");
    const under = yield* post(url, "/v1/ingest/push", chunked(envelopeOf(2, 1024 * 1024)));
    assert.equal(under.status, 200, under.text);
    assert.equal(JSON.parse(under.text).decision, "ADMIT");
    assert.equal(yield* stats(url), 1);
  }),
);

test(
  "JSON nested thousands of levels deep is answered 400 JSON_TOO_DEEP, as a whole body and inside a payload, and the gate stays healthy",
  Effect.gen(function* () {
    const { url } = yield* gateProcess("deep");
    const depth = 100_000;
    const whole = yield* post(url, "/v1/ingest/push", "[".repeat(depth) + "]".repeat(depth));
    assert.equal(whole.status, 400, whole.text);
    assert.match(whole.text, /JSON_TOO_DEEP/);
    yield* assertHealthy(url, "a deep body");
    const inPayload = JSON.stringify(envelope(1)).replace(
      '"campaign_id":null',
      `"campaign_id":${"[".repeat(depth)}${"]".repeat(depth)}`,
    );
    const batch = yield* post(url, "/v1/ingest/batch", `{"events":[${inPayload}]}`);
    assert.equal(batch.status, 400, batch.text);
    assert.match(batch.text, /JSON_TOO_DEEP/);
    yield* assertHealthy(url, "a deep payload");
    // Brackets inside strings are text, not nesting.
    const texty = JSON.stringify(envelope(2, { payload: { note: "[".repeat(depth) } }));
    const fine = yield* post(url, "/v1/ingest/push", texty);
    assert.equal(fine.status, 200, fine.text);
    assert.equal(yield* stats(url), 0, "a payload off its row schema is quarantined, not admitted");
  }),
);

test(
  "a 66 MB push is answered 413; twenty pushes just under the limit at once are each admitted or turned away 503 to retry, and the gate stays healthy",
  Effect.gen(function* () {
    const { url, ig } = yield* gateProcess("large");
    const huge = yield* post(url, "/v1/ingest/push", envelopeOf(1, 66_000_000));
    assert.equal(huge.status, 413, huge.text);
    yield* assertHealthy(url, "a 66 MB push");

    const near = MAX_BODY_BYTES - 4096;
    const answers = yield* Effect.forEach(
      Array.from({ length: 20 }, (_, i) => envelopeOf(100 + i, near)),
      (text) => post(url, "/v1/ingest/push", text),
      { concurrency: "unbounded" },
    );
    const statuses = answers.map((a) => a.status);
    assert.ok(statuses.every((s) => s === 200 || s === 503), `statuses ${statuses}`);
    const admitted = answers.filter((a) => a.status === 200).length;
    assert.ok(admitted > 0, "some were admitted");
    assert.ok(!ig.exitedYet(), "the gate is still running");
    yield* assertHealthy(url, "twenty pushes near the limit");
    assert.equal(yield* stats(url), admitted);
  }),
);

test(
  "ig --api-key with an empty value fails BAD_ARGS instead of serving without auth",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "empty-key");
    const exited = yield* Effect.scoped(
      spawnWorldstream(
        ["ig", "--port", String(freePort()), "--db", join(dir, "db"), "--api-key", ""],
        { env: processEnv({}), cwd: dir },
      ).pipe(Effect.flatMap((ig) => ig.exited(60_000))),
    );
    assert.equal(exited.code, 1, `${exited.stdout}\n${tail(exited.stderr)}`);
    assert.equal(exited.result?.reason, "BAD_ARGS");
    assert.match(String(exited.result?.message), /--api-key/);
  }),
);

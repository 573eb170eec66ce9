import assert from "node:assert/strict";
import { Effect } from "effect";
import { fileURLToPath } from "node:url";
import { Postgres } from "./postgres.ts";
import {
  adoptEarlyPglite,
  closeEarlyPglite,
  frame,
  frames,
  initPgliteApart,
  RUNTIME_PGLITE,
  startPgliteEarly,
} from "./pglite_channel.ts";

const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));
const POSTGRES_TS = new URL("./postgres.ts", import.meta.url).href;
const haveProc = (() => {
  try {
    Deno.statSync("/proc/self/status");
    return true;
  } catch {
    return false;
  }
})();

/** The pids of `pid`'s live children (Linux). */
function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    const state = /State:\s+(\S)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
    return state !== undefined && state !== "Z";
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("PGlite on a Worker thread (WORLDSTREAM_PGLITE_ISOLATION=worker) answers as in its own process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ws-pglite-worker-" });
  for (const isolation of ["worker", "process"] as const) {
    const rows = await Effect.runPromise(
      Effect.gen(function* () {
        const pg = yield* Postgres;
        return yield* pg.query<Record<string, unknown>>(
          "select $1::int8 as big, $2::timestamptz as at, $3::bytea as bytes",
          [10n, new Date(0), new Uint8Array([0, 255])],
        );
      }).pipe(Effect.provide(Postgres.layerPglite(dir, { isolation }))),
    );
    assert.deepEqual(rows, [{ big: 10, at: new Date(0), bytes: new Uint8Array([0, 255]) }]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name:
    "PGlite's process ends when its owner is SIGKILLed, and the folder opens again with what was committed",
  ignore: !haveProc,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ws-pglite-orphan-" });
    const script = `${dir}-owner.ts`;
    await Deno.writeTextFile(
      script,
      `import { Effect } from "effect";
import { Postgres } from ${JSON.stringify(POSTGRES_TS)};
await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  const pg = yield* Postgres;
  yield* pg.query("create table t (x int)");
  yield* pg.query("insert into t values (7)");
  console.log("ready");
  yield* Effect.never;
})).pipe(Effect.provide(Postgres.layerPglite(${JSON.stringify(`${dir}/db`)}))));
`,
    );
    const owner = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, script],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = owner.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, /ready/);
    const kids = childrenOf(owner.pid);
    assert.equal(kids.length, 1, "PGlite runs in one child process");
    owner.kill("SIGKILL");
    await owner.status;
    await reader.cancel();
    // Its stdin closed with its owner: it closes the database and exits by itself.
    await until("PGlite's process to exit", () => !alive(kids[0]));
    const rows = await Effect.runPromise(
      Effect.gen(function* () {
        return yield* (yield* Postgres).query<{ x: number }>("select x from t");
      }).pipe(Effect.provide(Postgres.layerPglite(`${dir}/db`))),
    );
    assert.deepEqual(rows, [{ x: 7 }]);
    await Deno.remove(script);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("frames come back whole however the bytes are cut: one byte at a time, many per chunk", async () => {
  const values = [{ id: 1, rows: [{ at: new Date(0), n: 10n }] }, "x".repeat(100_000), null];
  const bytes = new Uint8Array(values.map(frame).flatMap((f) => [...f]));
  for (const cut of [1, 7, 4096, bytes.length]) {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += cut) {
          controller.enqueue(bytes.slice(at, at + cut));
        }
        controller.close();
      },
    });
    const got: unknown[] = [];
    for await (const value of frames(stream)) got.push(value);
    assert.deepEqual(got, values, `cut every ${cut} bytes`);
  }
});

Deno.test("a PGlite started early is adopted by the layer for its folder, and left to others", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ws-pglite-early-" });
  const other = await Deno.makeTempDir({ prefix: "ws-pglite-early-other-" });
  try {
    startPgliteEarly(dir, RUNTIME_PGLITE);
    // Another folder (or another store's own PGlite) does not take it.
    assert.equal(await adoptEarlyPglite(other, RUNTIME_PGLITE), undefined);
    // The layer for its folder takes it over. Were a second PGlite started instead, it would wait
    // for the folder's lock, held by the early one, and this query would never answer.
    const rows = await Effect.runPromise(
      Effect.gen(function* () {
        const pg = yield* Postgres;
        return yield* pg.query<{ ok: number }>("select 1 as ok");
      }).pipe(
        Effect.provide(Postgres.layerPglite(dir, RUNTIME_PGLITE)),
        Effect.timeoutOrElse({
          duration: "60 seconds",
          orElse: () => Effect.die(new Error("the layer did not adopt the early PGlite")),
        }),
      ),
    );
    assert.deepEqual(rows, [{ ok: 1 }]);
    // Adopted: nothing is left for main.ts to close.
    assert.equal(await adoptEarlyPglite(dir, RUNTIME_PGLITE), undefined);

    // Started for the folder with other options: closed, so the caller's own can lock it.
    startPgliteEarly(dir, { sharedBuffers: "32MB" });
    assert.equal(await adoptEarlyPglite(dir, RUNTIME_PGLITE), undefined);
    const again = await Effect.runPromise(
      Effect.gen(function* () {
        const pg = yield* Postgres;
        return yield* pg.query<{ ok: number }>("select 2 as ok");
      }).pipe(Effect.provide(Postgres.layerPglite(dir, RUNTIME_PGLITE))),
    );
    assert.deepEqual(again, [{ ok: 2 }]);

    // Never adopted: closed before the process exits.
    startPgliteEarly(other, RUNTIME_PGLITE);
    await closeEarlyPglite();
    assert.equal(await adoptEarlyPglite(other, RUNTIME_PGLITE), undefined);
  } finally {
    await closeEarlyPglite();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(other, { recursive: true });
  }
});

/** The pids whose parent is `pid` (Linux; children of any of its threads). */
function processesUnder(pid: number): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // Field 4 (ppid) follows the command name, which is in parentheses and may hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) found.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Whether process `pid` holds this folder's PGlite lock file open (Linux). */
function holdsLockIn(pid: number, dir: string): boolean {
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`).startsWith(dir)) return true;
      } catch {
        // Closed meanwhile.
      }
    }
  } catch {
    // Gone meanwhile.
  }
  return false;
}

Deno.test({
  name:
    "once PGlite's process has died, statements fail PG_UNAVAILABLE at once and closing does not wait for it",
  ignore: !haveProc,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ws-pglite-dead-" });
    let killedAt = 0;
    const outcome = await Effect.runPromise(
      Effect.scoped(Effect.gen(function* () {
        const pg = yield* Postgres;
        yield* pg.query("select 1");
        // Test files run side by side (`--parallel`), so other PGlite children may be ours too:
        // this folder's is the one holding its lock file open.
        const children = processesUnder(Deno.pid).filter((pid) => holdsLockIn(pid, dir));
        assert.equal(children.length, 1, "PGlite runs in one child process");
        // What Ctrl-C does to the whole process group: the child goes too.
        Deno.kill(children[0], "SIGINT");
        killedAt = performance.now();
        yield* Effect.promise(() => until("PGlite's process to end", () => !alive(children[0])));
        const failures = [];
        for (let i = 0; i < 3; i++) failures.push(yield* Effect.flip(pg.query("select 1")));
        return failures;
      })).pipe(
        Effect.provide(Postgres.layerPglite(dir, { isolation: "process" })),
        // initdb on a busy machine takes a while; a wait on the dead process would be forever.
        Effect.timeoutOrElse({
          duration: "120 seconds",
          orElse: () => Effect.die(new Error("a statement or the close waited on a dead PGlite")),
        }),
      ),
    );
    const ms = performance.now() - killedAt;
    assert.deepEqual(outcome.map((e) => e.reason), Array(3).fill("PG_UNAVAILABLE"));
    assert.match(outcome[0].message, /PGlite's process ended/);
    assert.ok(ms < 5000, `from the kill to closed took ${Math.round(ms)} ms`);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("a new PGlite folder is a copy of an initdb template made once per version; a copy cut short is redone", async () => {
  const root = await Deno.makeTempDir({ prefix: "ws-pglite-template-" });
  const cache = `${root}/cache`;
  try {
    await initPgliteApart(`${root}/a`, cache);
    const versions = [...Deno.readDirSync(`${cache}/pglite-template`)].map((e) => e.name);
    assert.deepEqual(versions.length, 1);
    assert.match(versions[0], /^pglite-npm_electric-sql_pglite_\d+\.\d+\.\d+$/);
    const template = `${cache}/pglite-template/${versions[0]}`;
    assert.ok(Deno.statSync(`${template}/PG_VERSION`).isFile);
    assert.equal(
      Deno.readTextFileSync(`${root}/a/PG_VERSION`),
      Deno.readTextFileSync(`${template}/PG_VERSION`),
    );
    // A copy that stopped before PG_VERSION: a stray half-written file and no mark.
    await Deno.mkdir(`${root}/b/base`, { recursive: true });
    await Deno.writeTextFile(`${root}/b/postgresql.conf`, "half");
    await initPgliteApart(`${root}/b`, cache);
    assert.equal(
      Deno.readTextFileSync(`${root}/b/postgresql.conf`),
      Deno.readTextFileSync(`${template}/postgresql.conf`),
    );
    // The template was made once: still one version folder and no leftovers beside it.
    assert.deepEqual(
      [...Deno.readDirSync(`${cache}/pglite-template`)].map((e) => e.name),
      versions,
    );
    for (const dir of ["a", "b"]) {
      const rows = await Effect.runPromise(
        Effect.gen(function* () {
          const pg = yield* Postgres;
          yield* pg.query("create table t (x int)");
          yield* pg.query("insert into t values (1), (2)");
          return yield* pg.query<{ n: number }>("select count(*)::int as n from t");
        }).pipe(Effect.provide(Postgres.layerPglite(`${root}/${dir}`))),
      );
      assert.deepEqual(rows, [{ n: 2 }], dir);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * `deno task bench:kinesis`: a READY published to Kinesis is picked up within 2 s at the default
 * poll interval (`control_bus.poll_interval_ms` unset: 1 s).
 *
 * kinesalite on loopback (tests/kinesalite.ts installs it into .tools/), a stream of 2 shards,
 * the reference gate, and `main.ts run` serving a Kinesis profile as a separate process, as an
 * operator runs it. The bench plays the platform's Scenario Runner: at a random moment against
 * the poll (0–1.5 s apart) it publishes a READY (the `publish_ready` action, Kinesis bus), and
 * takes the time from PutRecord's answer to the `control bus record` log line in which `run`
 * reports reading that sequence number (read from its stderr as it comes). Each READY's world is
 * streamed before the next is published, so no pick-up waits behind another run.
 * Flags: --readies N (default 10), --dir D (default a temporary folder).
 */
import { Effect } from "effect";
import { join } from "node:path";
import { parseFlags } from "../cli/args.ts";
import { loadProfile } from "../core/profile.ts";
import { publishReady } from "../actions/publish_ready.ts";
import { startIg } from "../ig/server.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { createStream, KINESIS_ENV, kinesisProfile, startKinesalite } from "../tests/kinesalite.ts";
import { genWorld } from "./gen_world.ts";

const flags = await Effect.runPromise(parseFlags(Deno.args, { readies: "string", dir: "string" }));
const readies = Number(flags.readies ?? 10);
const dir = typeof flags.dir === "string"
  ? flags.dir
  : await Deno.makeTempDir({ prefix: "ws-bench-kinesis-" });
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const LIMIT_MS = 2000;

for (const [k, v] of Object.entries(KINESIS_ENV)) Deno.env.set(k, v);

const program = Effect.scoped(Effect.gen(function* () {
  const k = yield* startKinesalite();
  const stream = "fp-control-bench";
  yield* Effect.promise(() => createStream(k, stream, 2));
  const world = join(dir, "world");
  yield* genWorld({ out: world, events: 500 }).pipe(Effect.provide(DuckDb.layer({ threads: 1 })));
  const ig = yield* startIg({ db: join(dir, "ig-pglite") });
  const profilePath = kinesisProfile(join(dir, "kinesis.yaml"), {
    endpoint: k.endpoint,
    stream,
    runsRoot: join(dir, "runs"),
    pgliteDir: join(dir, "pglite"),
    igUrl: ig.url,
  });
  const profile = yield* loadProfile(profilePath);

  // `run` serving the stream; its log lines are read as they come.
  const seen = new Map<string, number>();
  let atTip = false;
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "run", "--profile", profilePath],
        cwd: dir,
        env: {
          ...KINESIS_ENV,
          NO_COLOR: "1",
          WORLDSTREAM_RECEIPT_HMAC_KEY: "bench-kinesis-hmac-key-0123456789abcdef",
          WSP_STREAM_SPEEDUP: "0",
          WSP_COURIER_MODE: "batch",
        },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn()
    ),
    (c) =>
      Effect.promise(async () => {
        try {
          c.kill("SIGTERM");
        } catch {
          // Gone already.
        }
        await c.status;
      }),
  );
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const reading = (async () => {
    let buffer = "";
    while (true) {
      const { value, done } = await lines.read();
      if (done) return;
      buffer += value;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const at = Date.now();
        try {
          const log = JSON.parse(line);
          if (log.message === "control bus record") {
            seen.set(String(log.annotations?.sequence_number), at);
          }
          if (log.message === "control bus read to its tip") atTip = true;
        } catch {
          // Not a log line.
        }
      }
    }
  })();
  const until = (what: string, ok: () => boolean, ms: number) =>
    Effect.promise(async () => {
      const deadline = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`Timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    });
  yield* until("run reads the stream", () => atTip, 120_000);

  const pickups: Array<number> = [];
  for (let i = 0; i < readies; i++) {
    yield* Effect.sleep(Math.floor(Math.random() * 1500));
    const ready = yield* publishReady({
      engineRunRoot: world,
      profile,
      platformRunId: `platform_20260501T0000${String(i).padStart(2, "0")}Z`,
    });
    const putAt = Date.now();
    yield* until(`READY ${i} picked up`, () => seen.has(ready.sequence_number!), 30_000);
    pickups.push(seen.get(ready.sequence_number!)! - putAt);
    yield* Effect.promise(async () => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const stats = await (await fetch(`${ig.url}/v1/ops/stats`)).json();
        if ((stats[ready.platform_run_id]?.admitted ?? 0) > 0) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`READY ${i} was not streamed`);
    });
  }
  child.kill("SIGTERM");
  yield* Effect.promise(() => child.status);
  yield* Effect.promise(() => reading);
  return pickups;
}));

const pickups = await Effect.runPromise(program);
const sorted = [...pickups].sort((a, b) => a - b);
const p50 = sorted[Math.floor(sorted.length / 2)];
const max = sorted[sorted.length - 1];
const ok = max <= LIMIT_MS;
console.log(`pick-up times (ms): ${pickups.join(", ")}`);
console.log(
  `${ok ? "PASS" : "MISS"}  ${`p50 ${p50} ms, max ${max} ms`.padEnd(28)} goal ${
    `max <= ${LIMIT_MS} ms`.padEnd(22)
  } kinesis READY pick-up (default poll 1 s, ${readies} READYs)`,
);
if (typeof flags.dir !== "string") await Deno.remove(dir, { recursive: true });

/**
 * Test support for the process-level tests (crash_test.ts, fault_test.ts): worldstream run as a
 * real subprocess (`main.ts stream`), the reference gate served in the test process (so its state
 * outlives any worldstream crash), a generated world, and what the gate should end up holding,
 * computed from the engine's raw parts rather than from anything worldstream wrote.
 */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Effect, Layer, type Scope } from "effect";
import { sha256Hex } from "../core/hash.ts";
import { resolveOutput, resolveWorld, type World } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import type { RunningIg } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";

/** The repository root. */
export const REPO = fileURLToPath(new URL("../", import.meta.url));
export const TRAFFIC = "s3_event_stream_with_fraud_6B";
export const CONTEXT = "arrival_events_5B";
/** The two outputs every process test streams (`--output-ids`). */
export const OUTPUTS = [TRAFFIC, CONTEXT] as const;
export const SCENARIO_RUN = "0123456789abcdef0123456789abcdef";

/** A folder for a whole test file, removed when the process unloads. */
export async function fileTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return dir;
}

/** A folder for one test, removed when its scope closes. */
export function scopedTempDir(parent: string, name: string) {
  return Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = join(parent, name);
      await Deno.mkdir(dir, { recursive: true });
      return dir;
    }),
    (dir) => Effect.promise(() => Deno.remove(dir, { recursive: true }).catch(() => undefined)),
  );
}

/**
 * An initialised, empty PGlite folder to copy from: initdb costs seconds, a copy milliseconds.
 * worldstream and the gate migrate their copies on first open.
 */
export async function pgliteTemplate(dir: string): Promise<string> {
  await Effect.runPromise(Effect.scoped(Layer.build(Postgres.layerPglite(dir))));
  return dir;
}

/** A copy of `template` at `to`. */
export function copyDb(template: string, to: string): string {
  cpSync(template, to, { recursive: true });
  return to;
}

/** Generates a world of `events` traffic events; returns its row counts per output. */
export async function makeWorld(out: string, events: number): Promise<Record<string, number>> {
  const result = await Effect.runPromise(
    genWorld({ out, events }).pipe(Effect.provide(DuckDb.layer({ threads: 2 }))),
  );
  return result.outputs;
}

/** The world at `root` as worldstream checks it under the local profile. */
export function worldAt(root: string): Effect.Effect<World, unknown> {
  return resolveWorld(root, { strict: false, requireGatePass: true }).pipe(
    Effect.provide(OracleStore.layer),
  );
}

// ---------------------------------------------------------------------------------------------
// What the gate should hold

/**
 * Each output's event ids in stream order, from the engine's raw parts: rows ordered by
 * (ts_utc, filename, file_row_number) (ARCHITECTURE §3) and
 * event_id = sha256_hex(join("|", [output_id] + [str(row[k]) for k in primary_key] +
 * [mf, ph, seed, scenario_id])) (§5).
 */
export function expectedIds(root: string, outputIds: ReadonlyArray<string>) {
  return Effect.scoped(Effect.gen(function* () {
    const world = yield* worldAt(root);
    const { manifest_fingerprint, parameter_hash, seed, scenario_id } = world.worldKey;
    const session = yield* (yield* DuckDb).session;
    const out = new Map<string, ReadonlyArray<string>>();
    for (const outputId of outputIds) {
      const output = yield* resolveOutput(world, outputId);
      const key = output.entry.primary_key.map((k) => `CAST("${k}" AS VARCHAR)`).join(", ");
      const rows = yield* session.rows<{ k: ReadonlyArray<string> }>(
        `SELECT [${key}] AS k FROM read_parquet($files, filename = true, file_row_number = true,
           hive_partitioning = false)
         ORDER BY ts_utc, filename, file_row_number`,
        { files: [...output.parts] },
      );
      out.set(
        outputId,
        rows.map((r) =>
          sha256Hex(
            [outputId, ...r.k, manifest_fingerprint, parameter_hash, String(seed), scenario_id]
              .join("|"),
          )
        ),
      );
    }
    return out;
  })).pipe(Effect.provide(DuckDb.layer({ threads: 1 })));
}

// ---------------------------------------------------------------------------------------------
// What the gate holds

/** An admitted envelope, as the gate's NDJSON log returns it. */
export type Envelope = Record<string, unknown> & {
  event_id: string;
  event_type: string;
  ts_utc: string;
};

/** The gate's counters for one platform run. */
export interface GateCounts {
  readonly admitted: number;
  readonly duplicate: number;
  readonly quarantined: number;
}

function igGet(ig: RunningIg, path: string) {
  return Effect.promise(async () => {
    const res = await fetch(`${ig.url}${path}`);
    const text = await res.text();
    assert.equal(res.status, 200, `GET ${path}: ${text}`);
    return text;
  });
}

/** The gate's counters for `platformRunId` (zeros before its first event). */
export function gateCounts(ig: RunningIg, platformRunId: string): Effect.Effect<GateCounts> {
  return igGet(ig, "/v1/ops/stats").pipe(Effect.map((text) => {
    const all = JSON.parse(text) as Record<string, GateCounts>;
    return all[platformRunId] ?? { admitted: 0, duplicate: 0, quarantined: 0 };
  }));
}

/** Admitted envelopes of `platformRunId`, in admission order. */
export function gateAdmitted(ig: RunningIg, platformRunId: string) {
  return igGet(ig, `/v1/ops/admitted?platform_run_id=${platformRunId}`).pipe(
    Effect.map((text) =>
      text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Envelope)
    ),
  );
}

/** One output's admitted envelopes, in admission order. */
export function ofOutput(envelopes: ReadonlyArray<Envelope>, outputId: string) {
  return envelopes.filter((e) => e.event_type === outputId);
}

/** Fails unless the envelopes' event times never go backwards. */
export function assertTimeOrdered(envelopes: ReadonlyArray<Envelope>, what: string) {
  for (let i = 1; i < envelopes.length; i++) {
    assert.ok(
      envelopes[i - 1].ts_utc <= envelopes[i].ts_utc,
      `${what}: ${envelopes[i].ts_utc} admitted after ${envelopes[i - 1].ts_utc}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// worldstream as a subprocess

/** How a worldstream process ended. */
export interface Exited {
  readonly code: number;
  readonly signal: Deno.Signal | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The last stdout line (the command's JSON result), when there is one. */
  readonly result: Record<string, unknown> | undefined;
}

/** A running `main.ts` process. */
export interface Worldstream {
  readonly pid: number;
  /** Whether it has exited. */
  readonly exitedYet: () => boolean;
  /** Waits for it to exit on its own, at most `timeoutMs`. */
  readonly exited: (timeoutMs: number) => Effect.Effect<Exited>;
  /** Sends `signal` and waits for the exit. */
  readonly kill: (signal: Deno.Signal) => Effect.Effect<Exited>;
  /**
   * Sends `signal` to its whole process group, as Ctrl-C in a terminal does (PGlite's child
   * too), without waiting. Only for a process started with `ownGroup`.
   */
  readonly signalGroup: (signal: Deno.Signal) => void;
}

// Variables that steer worldstream: the test names each one it wants, and none leak in from the
// environment the suite runs in (CI may point DATABASE_URL at its own server, for instance).
const STEERING =
  /^(WORLDSTREAM_|WSP_|IG_|ORACLE_|OBJECT_STORE_|AWS_|CONTROL_BUS_ROOT$|DATABASE_URL$)/;

/** The inherited environment without worldstream's variables, plus `vars`. */
export function processEnv(vars: Readonly<Record<string, string>>): Record<string, string> {
  const inherited = Object.entries(Deno.env.toObject()).filter(([k]) => !STEERING.test(k));
  return { ...Object.fromEntries(inherited), NO_COLOR: "1", ...vars };
}

/**
 * Starts `deno run -A main.ts <args>` in `cwd`; when the scope closes it is SIGKILLed if still
 * running, and always waited for. `ownGroup`: in a process group of its own (`setsid`, which
 * execs in place, so the pid is the group's id), for tests that signal the group.
 */
export function spawnWorldstream(
  args: ReadonlyArray<string>,
  options: {
    readonly env: Record<string, string>;
    readonly cwd: string;
    readonly ownGroup?: boolean;
  },
): Effect.Effect<Worldstream, never, Scope.Scope> {
  return Effect.acquireRelease(
    Effect.sync(() => {
      const deno = [
        "run",
        "-A",
        "--config",
        join(REPO, "deno.json"),
        join(REPO, "main.ts"),
        ...args,
      ];
      const child = new Deno.Command(options.ownGroup ? "setsid" : Deno.execPath(), {
        args: options.ownGroup ? [Deno.execPath(), ...deno] : deno,
        cwd: options.cwd,
        env: options.env,
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let exited = false;
      const done = child.output().then((out): Exited => {
        exited = true;
        const stdout = new TextDecoder().decode(out.stdout);
        const last = stdout.trim().split("\n").pop() ?? "";
        let result: Record<string, unknown> | undefined;
        try {
          result = JSON.parse(last);
        } catch {
          result = undefined;
        }
        return {
          code: out.code,
          signal: out.signal,
          stdout,
          stderr: new TextDecoder().decode(out.stderr),
          result,
        };
      });
      const kill = (signal: Deno.Signal) => {
        if (!exited) {
          try {
            child.kill(signal);
          } catch {
            // It exited in the meantime.
          }
        }
        return done;
      };
      const signalGroup = (signal: Deno.Signal) => {
        if (!options.ownGroup) throw new Error("signalGroup needs a process started with ownGroup");
        try {
          Deno.kill(-child.pid, signal);
        } catch {
          // The group is gone.
        }
      };
      return { child, done, kill, signalGroup, exitedYet: () => exited };
    }),
    (p) =>
      Effect.promise(() => {
        // Leave nothing of the group behind (its PGlite child) when the test ends early.
        if (options.ownGroup && !p.exitedYet()) p.signalGroup("SIGKILL");
        return p.kill("SIGKILL");
      }),
  ).pipe(Effect.map((p): Worldstream => ({
    pid: p.child.pid,
    exitedYet: p.exitedYet,
    exited: (timeoutMs) =>
      Effect.promise(() => p.done).pipe(
        Effect.timeoutOption(timeoutMs),
        Effect.map((o) => {
          if (o._tag === "None") {
            assert.fail(`worldstream ${p.child.pid} still runs after ${timeoutMs} ms`);
          }
          return o.value;
        }),
      ),
    kill: (signal) => Effect.promise(() => p.kill(signal)),
    signalGroup: p.signalGroup,
  })));
}

/** The last `n` lines of a process's stderr, for failure messages. */
export function tail(text: string, n = 15): string {
  return text.trim().split("\n").slice(-n).join("\n");
}

/** Log lines (JSON on stderr) whose message is `message`. */
export function logLines(stderr: string, message: string): Array<Record<string, unknown>> {
  return stderr.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return [];
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      return typeof parsed.message === "string" && parsed.message.startsWith(message)
        ? [parsed]
        : [];
    } catch {
      return [];
    }
  });
}

/**
 * Polls `probe` every 25 ms until it yields a value; fails after `timeoutMs`, or at once when
 * `process` exits first (with its stderr).
 */
export function waitFor<A, E, R>(
  what: string,
  probe: Effect.Effect<A | undefined, E, R>,
  options: { readonly timeoutMs: number; readonly process?: Worldstream },
): Effect.Effect<A, E, R> {
  return Effect.gen(function* () {
    const deadline = performance.now() + options.timeoutMs;
    while (true) {
      const value = yield* probe;
      if (value !== undefined) return value;
      if (options.process?.exitedYet()) {
        const out = yield* options.process.exited(1000);
        assert.fail(
          `worldstream exited (code ${out.code}) before ${what}:\n${out.stdout}\n${
            tail(out.stderr)
          }`,
        );
      }
      if (performance.now() > deadline) {
        assert.fail(`Timed out after ${options.timeoutMs} ms: ${what}`);
      }
      yield* Effect.sleep(25);
    }
  });
}

/** A small seeded generator (mulberry32): the same seed gives the same draws in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A loopback port nothing listens on (for now). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * The site of a test file that runs worldstream as a process: a temporary folder, a generated
 * world of `events` (its rows per output and in all) and a PGlite template for the gate's and
 * worldstream's databases, made side by side.
 */
export async function processSite(prefix: string, events: number) {
  const tmp = await fileTempDir(prefix);
  const world = join(tmp, "world");
  const [template, rows] = await Promise.all([
    pgliteTemplate(join(tmp, "bare")),
    makeWorld(world, events),
  ]);
  const total = OUTPUTS.reduce((n, id) => n + rows[id], 0);
  return { tmp, world, template, rows, total };
}

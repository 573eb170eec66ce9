/**
 * Test support for the process-level tests (crash_test.ts, fault_test.ts): worldstream run as a
 * real subprocess (`main.ts stream`), the reference gate served in the test process (so its state
 * outlives any worldstream crash), a generated world, and what the gate should end up holding,
 * computed from the engine's raw parts rather than from anything worldstream wrote. A process
 * test's preamble lives here once: `effectTest` (a test in a scope), `pgliteSite` (one test's
 * folder, runs root, PGlite copy, bus and gate), `runCommand` (`main.ts <args>` to its exit) and
 * `streamArgs` (the flags of `main.ts stream`).
 */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { fileURLToPath } from "node:url";
import { Effect, Layer, type Scope } from "effect";
import { sha256Hex } from "../core/hash.ts";
import { resolveOutput, resolveWorld, type World } from "../stores/world.ts";
import { OracleStore } from "../stores/oracle.ts";
import { type RunningIg, startIg, type StartIgOptions } from "../ig/server.ts";
import { genWorld } from "../scripts/gen_world.ts";
import { DuckDb } from "../stores/duckdb.ts";
import { Postgres } from "../stores/postgres.ts";
import { migrate } from "../stores/postgres_migrate.ts";
import { migrateIg } from "../ig/store.ts";

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

/**
 * A Deno test whose body is an Effect run in a scope of its own, closed when the test ends (so
 * temp folders, gates and processes acquired in it go with it). `ignore` skips it.
 */
export function effectTest(
  name: string,
  body: Effect.Effect<void, unknown, Scope.Scope>,
  options: { readonly ignore?: boolean } = {},
): void {
  Deno.test({
    name,
    ignore: options.ignore ?? false,
    fn: () => Effect.runPromise(Effect.scoped(body)),
  });
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
 * An initialised PGlite folder to copy from, holding worldstream's and the gate's migrations
 * (each in tables of its own prefix, so one template serves both): initdb costs seconds, a copy
 * milliseconds, and a copy that opens current skips ~1 s of CPU migrating, every time a process
 * or gate opens one. worldstream and the gate still check their copies are current on open.
 */
export async function pgliteTemplate(dir: string): Promise<string> {
  await Effect.runPromise(
    Effect.scoped(Layer.build(
      Layer.effectDiscard(Effect.andThen(migrate, migrateIg)).pipe(
        Layer.provide(Postgres.layerPglite(dir)),
      ),
    )),
  );
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

// ---------------------------------------------------------------------------------------------
// One test's site, its commands and their arguments

/** Where a test runs worldstream: the working folder and the variables it sets. */
export interface ProcessSite {
  readonly dir: string;
  readonly vars: Record<string, string>;
}

/** What `pgliteSite` makes besides the folder, runs root and PGlite folder. */
export interface PgliteSiteOptions {
  /** The PGlite template (`processSite`'s `template`) the databases are copied from. */
  readonly template: string;
  /** Also a file control bus folder, `<dir>/bus`, as CONTROL_BUS_ROOT (not made). */
  readonly bus?: boolean;
  /**
   * Also a reference gate in this process on a copy of the template at `<dir>/ig`, closed with
   * the scope; an object passes its options (faults, batch route) to `startIg`.
   */
  readonly gate?: boolean | Omit<StartIgOptions, "db">;
  /** Leave `<dir>/pg` unmade instead of copying the template there (to see nothing makes it). */
  readonly freshPglite?: boolean;
}

/**
 * A folder of one test, `<parent>/<name>`, removed when the scope closes, with worldstream's
 * variables pointing into it: the runs root `<dir>/runs`, the PGlite backend on `<dir>/pg` (a
 * copy of the template) and, by `options`, a control bus folder and a reference gate (`ig`).
 */
export function pgliteSite(
  parent: string,
  name: string,
  options: PgliteSiteOptions & { readonly gate: true | Omit<StartIgOptions, "db"> },
): Effect.Effect<ProcessSite & { readonly ig: RunningIg }, unknown, Scope.Scope>;
export function pgliteSite(
  parent: string,
  name: string,
  options: PgliteSiteOptions,
): Effect.Effect<ProcessSite, unknown, Scope.Scope>;
export function pgliteSite(
  parent: string,
  name: string,
  options: PgliteSiteOptions,
): Effect.Effect<ProcessSite & { readonly ig?: RunningIg }, unknown, Scope.Scope> {
  return Effect.gen(function* () {
    const dir = yield* scopedTempDir(parent, name);
    const pg = join(dir, "pg");
    const vars: Record<string, string> = {
      WORLDSTREAM_RUNS_ROOT: join(dir, "runs"),
      WORLDSTREAM_PGLITE_DIR: options.freshPglite ? pg : copyDb(options.template, pg),
      WORLDSTREAM_DB_BACKEND: "pglite",
      ...(options.bus ? { CONTROL_BUS_ROOT: join(dir, "bus") } : {}),
    };
    if (!options.gate) return { dir, vars };
    const ig = yield* startIg({
      ...(options.gate === true ? {} : options.gate),
      db: copyDb(options.template, join(dir, "ig")),
    });
    return { dir, vars, ig };
  });
}

/**
 * Runs `main.ts <args>` in `site.dir` with `site.vars` (and nothing else of worldstream's from
 * the environment) to its exit; fails the test when it still runs after `timeoutMs` (default 3
 * minutes).
 */
export function runCommand(
  args: ReadonlyArray<string>,
  site: ProcessSite,
  options: { readonly timeoutMs?: number } = {},
): Effect.Effect<Exited> {
  return Effect.scoped(
    spawnWorldstream(args, { env: processEnv(site.vars), cwd: site.dir }).pipe(
      Effect.flatMap((ws) => ws.exited(options.timeoutMs ?? 180_000)),
    ),
  );
}

/** What `streamArgs` puts after the world and the gate. */
export interface StreamArgsOptions {
  /** `--output-ids` (default `OUTPUTS`, the two every process test streams). */
  readonly outputIds?: ReadonlyArray<string>;
  /** `--speedup` (default 0: unpaced). */
  readonly speedup?: number;
  /** `--platform-run-id`, when given. */
  readonly platformRunId?: string;
  /** `--scenario-run-id`, when given (`SCENARIO_RUN` is the usual one). */
  readonly scenarioRunId?: string;
  /** Flags after the others (`--profile`, ...). */
  readonly extra?: ReadonlyArray<string>;
}

/** The arguments of `main.ts stream` of `world` into the gate at `igUrl`. */
export function streamArgs(
  world: string,
  igUrl: string,
  options: StreamArgsOptions = {},
): Array<string> {
  return [
    "stream",
    "--engine-run-root",
    world,
    "--output-ids",
    (options.outputIds ?? OUTPUTS).join(","),
    "--speedup",
    String(options.speedup ?? 0),
    ...(options.platformRunId === undefined ? [] : ["--platform-run-id", options.platformRunId]),
    ...(options.scenarioRunId === undefined ? [] : ["--scenario-run-id", options.scenarioRunId]),
    "--ig-url",
    igUrl,
    ...(options.extra ?? []),
  ];
}

/**
 * A shipped profile (`profiles/<name>.yaml`) as a plain document with every `*_ref` made absolute,
 * so a test can edit its wiring and write the copy to a folder of its own.
 */
export function shippedProfile(name: string): { wiring: Record<string, unknown> } {
  const doc = parse(Deno.readTextFileSync(join(REPO, "profiles", `${name}.yaml`)));
  const absolute = (node: unknown): unknown => {
    if (node === null || typeof node !== "object" || Array.isArray(node)) return node;
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [
        k,
        k.endsWith("_ref") && typeof v === "string" ? resolve(REPO, "profiles", v) : absolute(v),
      ]),
    );
  };
  return absolute(doc) as { wiring: Record<string, unknown> };
}

/**
 * The owning side of PGlite's own thread or process (stores/pglite_worker.ts): the message
 * protocol and its framing, the channel to a child process or a Worker, and PgliteThread, which
 * sends requests and matches answers by id. Only stores/postgres.ts drives it.
 *
 * Kept apart from stores/postgres.ts so it loads without Effect, postgres.js or PGlite itself:
 * a runtime can start PGlite's process (and open its folder) as its very first step, before its
 * own modules have loaded.
 */
import { deserialize, serialize } from "node:v8";
import { copyFile, cp, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join as joinPath, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { tryLockFile } from "./lock_file.ts";

/** A request from the owning thread. */
export type PgliteRequest =
  | {
    readonly id: number;
    readonly op: "open";
    readonly dir: string;
    readonly sharedBuffers?: string;
    readonly relaxedDurability?: boolean;
  }
  | {
    readonly id: number;
    readonly op: "query";
    readonly text: string;
    readonly params: ReadonlyArray<unknown>;
    readonly tx?: number;
  }
  | { readonly id: number; readonly op: "exec"; readonly script: string; readonly tx?: number }
  | { readonly id: number; readonly op: "begin" }
  | { readonly id: number; readonly op: "commit" | "rollback"; readonly tx: number }
  | { readonly id: number; readonly op: "close" };

/** The answer to request `id`: a value, or the error's message. */
export type PgliteResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | {
    readonly id: number;
    readonly ok: false;
    readonly message: string;
    /** The SQLSTATE, when Postgres raised it. */
    readonly code?: string;
  };

/** One frame: a 4-byte little-endian length, then the value in V8's structured-clone format. */
export function frame(value: unknown): Uint8Array {
  const body = serialize(value);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

/**
 * Reads frames from `stream` until it ends. Chunks are only joined once a whole frame has
 * arrived, so a large frame arriving in many chunks is copied once, not once per chunk.
 */
export async function* frames(stream: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const parts: Uint8Array[] = [];
  let size = 0;
  // Bytes needed before the next frame can be read: its header, then header and body.
  let need = 4;
  for await (const chunk of stream) {
    parts.push(chunk);
    size += chunk.length;
    if (size < need) continue;
    const data = parts.length === 1 ? parts[0] : join(parts, size);
    let at = 0;
    for (;;) {
      if (data.length - at < 4) {
        need = 4;
        break;
      }
      const length = new DataView(data.buffer, data.byteOffset + at).getUint32(0, true);
      if (data.length - at - 4 < length) {
        need = 4 + length;
        break;
      }
      yield deserialize(data.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    parts.length = 0;
    size = data.length - at;
    if (size > 0) parts.push(data.slice(at));
  }
}

function join(parts: ReadonlyArray<Uint8Array>, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Options of the embedded backend. */
export interface PgliteOptions {
  readonly relaxedDurability?: boolean;
  /**
   * Postgres `shared_buffers`, e.g. "16MB" (default PGlite's, 128MB). The pool is touched as
   * PGlite starts and stays resident for the life of the process.
   */
  readonly sharedBuffers?: string;
  /** Where PGlite runs (default WORLDSTREAM_PGLITE_ISOLATION, else `process`). */
  readonly isolation?: PgliteIsolation;
}

/** PGlite's folder did not open (stores/postgres.ts reports it as PG_UNAVAILABLE). */
export class PgliteUnavailable extends Error {}

/** Another live process owns PGlite's folder (stores/postgres.ts reports it as PGLITE_LOCKED). */
export class PgliteLocked extends Error {
  constructor(readonly dir: string, readonly holder: number | undefined) {
    super(
      `PGlite folder ${dir} is in use by another worldstream process (pid ${
        holder ?? "unknown"
      }); stop it first, or give this command another folder`,
    );
  }
}

/** The file a PGlite folder's owning process keeps locked, naming its pid. */
export const OWNER_LOCK_FILE = ".worldstream-owner.lock";

/**
 * Claims `dir` for this process, or fails at once with {@link PgliteLocked} naming the owner.
 *
 * Two locks guard a folder. PGlite's process (stores/pglite_worker.ts) holds one for as long as it
 * has the database open, and waits for it: a runtime restarted straight after a SIGKILL waits
 * there for its predecessor's PGlite, which has lost its owner and is closing. This one is held by
 * the owning process itself, so the OS drops it the moment that process dies: held means a live
 * owner, whom nobody should wait for in silence (issue 12: `dead-letters list` beside a running
 * `run` waited 20 s and more, a second gate on one folder waited for ever).
 */
async function claimFolder(dir: string): Promise<Deno.FsFile> {
  await Deno.mkdir(dir, { recursive: true });
  const attempt = await tryLockFile(`${dir}/${OWNER_LOCK_FILE}`);
  if (!attempt.locked) throw new PgliteLocked(dir, attempt.holder);
  return attempt.file;
}

export function isolationFromEnv(): PgliteIsolation {
  let value: string | undefined;
  try {
    value = Deno.env.get("WORLDSTREAM_PGLITE_ISOLATION");
  } catch {
    // No env permission: the default.
  }
  return value === "worker" ? "worker" : "process";
}

/** How PGlite's requests and answers travel: to a child process (default) or a Worker. */
interface PgliteChannel {
  post(request: PgliteRequest): void;
  /** Stops the other side; resolves once it has gone. */
  terminate(): Promise<void>;
}

/** Where PGlite runs (WORLDSTREAM_PGLITE_ISOLATION): `process` (default) or `worker`. */
export type PgliteIsolation = "process" | "worker";

const WORKER_URL = new URL("./pglite_worker.ts", import.meta.url);

function workerChannel(
  onAnswer: (answer: PgliteResponse) => void,
  onFailure: (message: string) => void,
): PgliteChannel {
  const worker = new Worker(WORKER_URL, { type: "module" });
  worker.onmessage = (event: MessageEvent<PgliteResponse>) => onAnswer(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    onFailure(`PGlite's thread failed: ${event.message}`);
  };
  return {
    post: (request) => worker.postMessage(request),
    terminate: () => Promise.resolve(worker.terminate()),
  };
}

/** `deno run` arguments for a PGlite helper process: `script` with `args`, this checkout's config. */
function pgliteProcessArgs(script: URL, args: ReadonlyArray<string>, v8Flags?: string): string[] {
  return [
    "run",
    "--quiet",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
    "--config",
    fileURLToPath(new URL("../deno.json", import.meta.url)),
    fileURLToPath(script),
    ...args,
  ];
}

function processChannel(
  onAnswer: (answer: PgliteResponse) => void,
  onFailure: (message: string) => void,
): PgliteChannel {
  const child = new Deno.Command(Deno.execPath(), {
    // Its JavaScript is small: PGlite's memory is WebAssembly, outside V8's heap.
    args: pgliteProcessArgs(
      WORKER_URL,
      ["--stdio"],
      "--max-semi-space-size=1,--max-old-space-size=128",
    ),
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const input = child.stdin.getWriter();
  let writing = Promise.resolve();
  let ended = false;
  const reading = (async () => {
    try {
      for await (const answer of frames(child.stdout)) onAnswer(answer as PgliteResponse);
    } catch {
      // Cut off: reported below.
    }
    const status = await child.status;
    if (!ended) onFailure(`PGlite's process ended (exit code ${status.code})`);
  })();
  return {
    post: (request) => {
      const bytes = frame(request);
      writing = writing.then(() => input.write(bytes)).catch(() => undefined);
    },
    terminate: async () => {
      ended = true;
      // Closing stdin asks it to close the database and exit; a child that hangs is killed.
      await writing;
      await input.close().catch(() => undefined);
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 10_000);
      await reading;
      clearTimeout(timer);
    },
  };
}

/** A child process, or a Worker when this process may not start one. */
function processOrWorker(
  onAnswer: (answer: PgliteResponse) => void,
  onFailure: (message: string) => void,
): PgliteChannel {
  try {
    return processChannel(onAnswer, onFailure);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      return workerChannel(onAnswer, onFailure);
    }
    throw e;
  }
}

/** The owning side of stores/pglite_worker.ts: requests out, answers matched by id. */
export class PgliteThread {
  private readonly channel: PgliteChannel;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private opened: Promise<void> = Promise.resolve();
  /** Settles once the folder is claimed for this process, or another live process owns it. */
  claimed: Promise<void> = Promise.resolve();
  private ownerLock: Promise<Deno.FsFile | undefined> = Promise.resolve(undefined);
  /** Set once PGlite's process or thread has gone: nothing will answer again. */
  private failed: PgliteUnavailable | undefined;

  constructor(isolation: PgliteIsolation) {
    const onAnswer = (answer: PgliteResponse) => {
      const waiter = this.pending.get(answer.id);
      if (waiter === undefined) return;
      this.pending.delete(answer.id);
      if (answer.ok) waiter.resolve(answer.value);
      else waiter.reject(Object.assign(new Error(answer.message), { code: answer.code }));
    };
    const onFailure = (message: string) => {
      // From now on every request fails at once: a dead process answers nothing, and a caller
      // waiting on it (a drain, a checkpoint read, close on shutdown) would wait forever.
      const error = new PgliteUnavailable(message);
      this.failed = error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    this.channel = isolation === "worker"
      ? workerChannel(onAnswer, onFailure)
      : processOrWorker(onAnswer, onFailure);
  }

  open(dir: string, options: PgliteOptions): void {
    this.ownerLock = claimFolder(dir);
    this.claimed = this.ownerLock.then(() => undefined);
    this.claimed.catch(() => undefined);
    this.opened = (async () => {
      await this.ownerLock;
      await initPgliteApart(dir);
      await this.send({
        op: "open",
        dir,
        ...(options.sharedBuffers ? { sharedBuffers: options.sharedBuffers } : {}),
        ...(options.relaxedDurability ? { relaxedDurability: true } : {}),
      });
    })().catch((e) => {
      if (e instanceof PgliteLocked) throw e;
      throw new PgliteUnavailable(`PGlite in ${dir} did not open: ${firstLine(e)}`);
    });
    // Failures reach callers through their own awaits of `opened`.
    this.opened.catch(() => undefined);
  }

  /** Sends once the database is open. */
  async request<T>(request: PgliteRequestBody): Promise<T> {
    await this.opened;
    return await this.send<T>(request);
  }

  async close(): Promise<void> {
    try {
      await this.opened;
      if (this.failed === undefined) await this.send({ op: "close" });
    } catch {
      // Nothing to close, or it failed: the thread goes either way.
    } finally {
      await this.channel.terminate();
      // The folder is free once PGlite's process or thread has gone, not before.
      (await this.ownerLock.catch(() => undefined))?.close();
    }
  }

  private send<T>(request: PgliteRequestBody): Promise<T> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.channel.post({ ...request, id } as PgliteRequest);
    });
  }
}

type PgliteRequestBody = PgliteRequest extends infer R
  ? R extends { readonly id: number } ? Omit<R, "id"> : never
  : never;

/**
 * Initialises a PGlite folder that has no database yet. initdb costs seconds of CPU (~5 s on a
 * busy 2-core machine) and its result is the same for every folder, so it runs once per PGlite
 * version into a template under the user's cache folder (`$WORLDSTREAM_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/worldstream` or `~/.cache/worldstream`), and each new folder is a copy of it
 * (~0.2 s). `PG_VERSION`, the mark of an initialised folder, is copied last, so a copy cut short
 * is started again rather than opened. Where no cache folder can be written, initdb runs for the
 * folder itself, as before.
 */
export async function initPgliteApart(
  dir: string,
  cacheBase: string = pgliteCacheBase(),
): Promise<void> {
  if (await exists(`${dir}/PG_VERSION`)) return;
  const template = await pgliteTemplate(cacheBase).catch(() => undefined);
  if (template === undefined) return await initdbApart(dir);
  await mkdir(dir, { recursive: true });
  await cp(template, dir, {
    recursive: true,
    force: true,
    filter: (source) => source !== joinPath(template, "PG_VERSION"),
  });
  await copyFile(joinPath(template, "PG_VERSION"), joinPath(dir, "PG_VERSION"));
}

/** The initialised template folder for this PGlite version, made on first use. */
async function pgliteTemplate(base: string): Promise<string> {
  const template = joinPath(base, "pglite-template", `pglite-${PGLITE_VERSION}`);
  if (await exists(joinPath(template, "PG_VERSION"))) return template;
  await mkdir(dirname(template), { recursive: true });
  // Made aside and renamed into place, so that two processes starting at once never see half a
  // template: the second rename fails (the folder is there), and its copy is dropped.
  const aside = `${template}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
  try {
    await initdbApart(aside);
    if (!(await exists(joinPath(aside, "PG_VERSION")))) {
      throw new Error("initdb made no PG_VERSION");
    }
    await rename(aside, template).catch(async (e) => {
      if (!(await exists(joinPath(template, "PG_VERSION")))) throw e;
    });
  } finally {
    await rm(aside, { recursive: true, force: true });
  }
  return template;
}

/** The user's cache folder for worldstream. */
function pgliteCacheBase(): string {
  return Deno.env.get("WORLDSTREAM_CACHE_DIR") ||
    joinPath(
      Deno.env.get("XDG_CACHE_HOME") || joinPath(Deno.env.get("HOME") || "/nonexistent", ".cache"),
      "worldstream",
    );
}

/** The PGlite version this checkout pins (deno.json), naming its template folder. */
const PGLITE_VERSION = (() => {
  try {
    const config = JSON.parse(
      Deno.readTextFileSync(fileURLToPath(new URL("../deno.json", import.meta.url))),
    );
    return String(config.imports?.["@electric-sql/pglite"] ?? "unknown").replace(/[^\w.-]+/g, "_");
  } catch {
    return "unknown";
  }
})();

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs initdb for `dir` in a short-lived process of its own. In this process it would leave
 * ~400 MB of WebAssembly memory (initdb and a second Postgres instance) resident until V8 happened
 * to collect it, and peak at ~850 MB; a process returns it all when it exits. Without permission
 * to start one, PGlite initialises the folder itself when it opens it.
 */
async function initdbApart(dir: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(Deno.execPath(), {
      args: pgliteProcessArgs(WORKER_URL, ["--initdb", dir]),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) return;
    throw e;
  }
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`initdb in a separate process failed: ${text || `exit code ${out.code}`}`);
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

// ---------------------------------------------------------------------------------------------
// Started early

/**
 * A PGlite opened before anyone asked for it, waiting to be adopted. Opening a folder takes
 * ~0.5 s (PGlite's process starting, its WebAssembly compiled, Postgres starting), and a runtime
 * needs its database (the receipt chain head, where each output resumes) before it sends
 * anything: main.ts starts it first, while its own modules load, so a restart after a crash is
 * back to delivering about that much sooner.
 */
let early:
  | { readonly dir: string; readonly key: string; readonly thread: PgliteThread }
  | undefined;

/** The options a runtime opens its PGlite with (actors/runtime.ts), known before it loads. */
export const RUNTIME_PGLITE: PgliteOptions = {
  // worldstream's own tables are small: PGlite's default 128 MB buffer pool would stay resident.
  sharedBuffers: "16MB",
};

function earlyKey(options: PgliteOptions): string {
  return JSON.stringify([
    options.isolation ?? isolationFromEnv(),
    options.sharedBuffers ?? null,
    options.relaxedDurability === true,
  ]);
}

/** Starts opening PGlite in `dir` now, for {@link adoptEarlyPglite} to take over. */
export function startPgliteEarly(dir: string, options: PgliteOptions = {}): void {
  if (early !== undefined) return;
  const thread = new PgliteThread(options.isolation ?? isolationFromEnv());
  thread.open(dir, options);
  early = { dir: resolve(dir), key: earlyKey(options), thread };
}

/**
 * The early PGlite when it was started for this `dir` with these `options` (the caller owns it
 * from now on), else `undefined`. One started for this folder with other options is closed
 * first, so the caller's own can take the folder's lock; one for another folder stays.
 */
export async function adoptEarlyPglite(
  dir: string,
  options: PgliteOptions = {},
): Promise<PgliteThread | undefined> {
  const started = early;
  if (started === undefined || started.dir !== resolve(dir)) return undefined;
  early = undefined;
  if (started.key === earlyKey(options)) return started.thread;
  await started.thread.close();
  return undefined;
}

/** Closes an early PGlite nobody adopted (main.ts, before the process exits). */
export async function closeEarlyPglite(): Promise<void> {
  const started = early;
  early = undefined;
  await started?.thread.close();
}

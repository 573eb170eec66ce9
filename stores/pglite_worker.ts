/**
 * PGlite beside the streaming thread, driven by stores/postgres.ts over messages
 * (stores/pglite_channel.ts): in a process of its own (the default: `deno run pglite_worker.ts
 * --stdio`, frames on stdin/stdout) or on a Web Worker thread.
 *
 * PGlite is Postgres compiled to WebAssembly, and every statement runs synchronously on the
 * thread that owns it: opening a folder takes ~0.5 s of CPU and a WAL drain batch 5–30 ms. On
 * the streaming thread those stretches delayed paced sends and a restart's first delivery; here
 * they run beside it. In a process of its own its memory (the WebAssembly heap, a second V8
 * isolate: ~120 MB) is not the streaming process's, and the OS returns all of it when it exits.
 * The child ends when its stdin closes, so it never outlives its owner, even one SIGKILLed.
 * The protocol and its framing are in stores/pglite_channel.ts, private to the two of them.
 *
 * A transaction is PGlite's own (`db.transaction`), held open across messages: statements tagged
 * with its id run in it, everything else queues behind PGlite's mutex as it would in process.
 */
import { PGlite, type Transaction } from "@electric-sql/pglite";
import { frame, frames, type PgliteRequest, type PgliteResponse } from "./pglite_channel.ts";

const JSON_PARAMS_AS_JSON = { 114: JSON.stringify, 3802: JSON.stringify };

interface OpenTx {
  readonly tx: Transaction;
  readonly finish: (commit: boolean) => void;
  readonly done: Promise<void>;
}

class RolledBack {}

let db: PGlite | undefined;
const txs = new Map<number, OpenTx>();
let nextTx = 1;

function database(): PGlite {
  if (db === undefined) throw new Error("PGlite is not open");
  return db;
}

function inTx(tx: number | undefined): Transaction | PGlite {
  if (tx === undefined) return database();
  const open = txs.get(tx);
  if (open === undefined) throw new Error(`transaction ${tx} is not open`);
  return open.tx;
}

/** Opens a transaction and keeps it open until commit or rollback arrives for its id. */
function begin(): Promise<number> {
  return new Promise((opened, failed) => {
    const id = nextTx++;
    let finish!: (commit: boolean) => void;
    const decided = new Promise<boolean>((resolve) => finish = resolve);
    const done = database().transaction(async (tx) => {
      txs.set(id, { tx, finish, done });
      opened(id);
      if (!(await decided)) throw new RolledBack();
    }).then(
      () => undefined,
      (e) => {
        if (!(e instanceof RolledBack)) throw e;
      },
    ).finally(() => txs.delete(id));
    // A BEGIN that failed never reached the body: report it to the caller.
    done.catch((e) => failed(e));
  });
}

async function end(tx: number, commit: boolean): Promise<void> {
  const open = txs.get(tx);
  if (open === undefined) throw new Error(`transaction ${tx} is not open`);
  open.finish(commit);
  await open.done;
}

let folderLock: Deno.FsFile | undefined;
/** Set in the process mode (a Worker dies with its owner, so it needs no lock). */
let lockOnOpen = false;

/**
 * One PGlite per folder: an exclusive lock held for the life of this process (the OS drops it
 * when the process ends). A runtime restarted straight after a SIGKILL waits here until the old
 * process, which sees its stdin close, has closed the database.
 */
async function lockFolder(dir: string): Promise<void> {
  if (folderLock !== undefined) return;
  const file = await Deno.open(`${dir}/.worldstream-pglite.lock`, { create: true, write: true });
  await file.lock(true);
  folderLock = file;
}

async function handle(request: PgliteRequest): Promise<unknown> {
  switch (request.op) {
    case "open":
      if (lockOnOpen) await lockFolder(request.dir);
      db = await PGlite.create(request.dir, {
        serializers: JSON_PARAMS_AS_JSON,
        ...(request.sharedBuffers
          ? {
            startParams: [
              ...PGlite.defaultStartParams,
              "-c",
              `shared_buffers=${request.sharedBuffers}`,
            ],
          }
          : {}),
        ...(request.relaxedDurability ? { relaxedDurability: true } : {}),
      });
      return undefined;
    case "query":
      return (await inTx(request.tx).query(request.text, [...request.params])).rows;
    case "exec":
      await inTx(request.tx).exec(request.script);
      return undefined;
    case "begin":
      return await begin();
    case "commit":
    case "rollback":
      return await end(request.tx, request.op === "commit");
    case "close":
      await db?.close();
      db = undefined;
      return undefined;
  }
}

function answer(request: PgliteRequest, reply: (response: PgliteResponse) => void): void {
  handle(request).then(
    (value) => reply({ id: request.id, ok: true, value }),
    (e) =>
      reply({
        id: request.id,
        ok: false,
        message: e instanceof Error ? e.message : String(e),
        ...(typeof e?.code === "string" ? { code: e.code } : {}),
      }),
  );
}

/** The process mode: requests from stdin, answers to stdout, until stdin closes. */
async function serveStdio(): Promise<void> {
  lockOnOpen = true;
  const out = Deno.stdout.writable.getWriter();
  let writing = Promise.resolve();
  const reply = (response: PgliteResponse) => {
    const bytes = frame(response);
    writing = writing.then(() => out.write(bytes)).catch(() => undefined);
  };
  for await (const request of frames(Deno.stdin.readable)) answer(request as PgliteRequest, reply);
  // The owner closed stdin (or died): nothing more will be asked.
  await Promise.allSettled([...txs.values()].map((t) => (t.finish(false), t.done)));
  await db?.close().catch(() => undefined);
  await writing;
  Deno.exit(0);
}

const WorkerScope = (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope;
if (typeof WorkerScope === "function") {
  const worker = globalThis as unknown as {
    onmessage: (event: MessageEvent<PgliteRequest>) => void;
    postMessage: (message: PgliteResponse) => void;
  };
  worker.onmessage = (event) => answer(event.data, (r) => worker.postMessage(r));
} else if (import.meta.main && Deno.args.includes("--stdio")) {
  await serveStdio();
} else if (import.meta.main && Deno.args[0] === "--initdb") {
  // `deno run pglite_worker.ts --initdb DIR` initialises a PGlite folder (initPgliteApart's
  // process) and exits.
  await (await PGlite.create(Deno.args[1])).close();
}

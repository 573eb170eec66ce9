/**
 * PGlite on a thread of its own (a Web Worker), driven by stores/postgres.ts over messages.
 *
 * PGlite is Postgres compiled to WebAssembly, and every statement runs synchronously on the
 * thread that owns it: opening a folder takes ~0.5 s of CPU and a WAL drain batch 5–30 ms. On
 * the streaming thread those stretches delayed paced sends and a restart's first delivery; here
 * they run beside it. The protocol is private to stores/postgres.ts.
 *
 * A transaction is PGlite's own (`db.transaction`), held open across messages: statements tagged
 * with its id run in it, everything else queues behind PGlite's mutex as it would in process.
 */
/// <reference lib="deno.worker" />
import { PGlite, type Transaction } from "@electric-sql/pglite";

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

async function handle(request: PgliteRequest): Promise<unknown> {
  switch (request.op) {
    case "open":
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

self.onmessage = (event: MessageEvent<PgliteRequest>) => {
  const request = event.data;
  handle(request).then(
    (value) => self.postMessage({ id: request.id, ok: true, value } satisfies PgliteResponse),
    (e) =>
      self.postMessage(
        {
          id: request.id,
          ok: false,
          message: e instanceof Error ? e.message : String(e),
          ...(typeof e?.code === "string" ? { code: e.code } : {}),
        } satisfies PgliteResponse,
      ),
  );
};

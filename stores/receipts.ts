/**
 * The receipt chain in Postgres (`ws_receipts`): append-only, hash-chained and signed
 * (`core/receipt_chain.ts` has the rules). Two ways in, never both at once on one database:
 *
 *   * `append(draft)`: seals and inserts in one transaction under an advisory lock, so writers
 *     in several processes still make one chain;
 *   * `openChain` + `store(receipts)`: the runtime's single writer keeps the head in memory
 *     (`ReceiptChain`, initialised from the stored head), seals receipts into its WAL, and the
 *     drain stores them later. `store` is idempotent by receipt id (= record_id) and refuses a
 *     receipt that does not continue the stored chain (RECEIPT_CHAIN_FORK).
 *
 * The body column holds the receipt exactly as hashed and signed; the other columns are copies
 * for lookups, and a copy that disagrees with its body counts as an edit.
 */
import { Context, Effect, Layer, Option, Stream } from "effect";
import {
  type ChainHead,
  type ChainVerdict,
  chainWalk,
  GENESIS,
  headOf,
  makeReceiptChain,
  type ReceiptChain,
  sealReceipt,
} from "../core/receipt_chain.ts";
import { type ReceiptSigner, type ReceiptVerifier, signerFromEnv } from "../core/receipt_keys.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { canonicalJson } from "../core/hash.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { Receipt, ReceiptDraft } from "../schemas/receipt.ts";
import { pgQuery, type PgSql, Postgres } from "./postgres.ts";

/** One stored row: the receipt body as read (unchecked) and the columns beside it. */
export interface StoredReceipt {
  /** Postgres's arrival order (the `seq` column), not the chain position. */
  readonly row_seq: number;
  readonly record_id: string;
  readonly kind: string;
  readonly run_key: string | null;
  readonly output_id: string | null;
  readonly prev_hash: string | null;
  readonly hash: string;
  readonly signature: string | null;
  readonly body: unknown;
}

/** Where a row's columns disagree with its body, or undefined when they agree. */
export function rowMismatch(row: StoredReceipt): string | undefined {
  const body = (row.body ?? {}) as Record<string, unknown>;
  const columns: ReadonlyArray<readonly [string, unknown, unknown]> = [
    ["record_id", row.record_id, body.receipt_id],
    ["kind", row.kind, body.kind],
    ["run_key", row.run_key, body.run_key ?? null],
    ["output_id", row.output_id, body.output_id ?? null],
    ["prev_hash", row.prev_hash, body.prev_hash],
    ["hash", row.hash, body.hash],
    ["signature", parsedJson(row.signature), body.signature],
  ];
  const differ = columns.filter(([, column, field]) =>
    canonicalJson(column ?? null) !== canonicalJson(field ?? null)
  );
  return differ.length === 0
    ? undefined
    : `Its ${differ.map(([name]) => name).join(", ")} column disagrees with its body`;
}

/** What {@link Receipts.store} wrote. */
export interface StoredBatch {
  /** Receipts inserted now; the rest were already stored. */
  readonly inserted: number;
  readonly head: ChainHead;
}

const LOCK = pgQuery("receipt_lock");
const HEAD = pgQuery("receipt_head");
const FIND = pgQuery("receipt_find");
const INSERT = pgQuery("receipt_insert");
const PAGE = pgQuery("receipt_page");
const PAGE_SIZE = 500;

function readHead(sql: PgSql): Effect.Effect<ChainHead, WorldstreamError> {
  return sql.query<{ chain_seq: number; hash: string }>(HEAD).pipe(
    Effect.map(([row]) =>
      row === undefined ? GENESIS : { seq: Number(row.chain_seq), hash: row.hash }
    ),
  );
}

function findStored(sql: PgSql, ids: ReadonlyArray<string>) {
  return sql.query<{ record_id: string; body: Receipt }>(FIND, [ids]).pipe(
    Effect.map((rows) => new Map(rows.map((row) => [row.record_id, row.body]))),
  );
}

function insert(sql: PgSql, receipts: ReadonlyArray<Receipt>) {
  return sql.query(INSERT, [{ receipts: receipts.map((r) => ({ ...r })) }]);
}

const make = (signer: ReceiptSigner) =>
  Effect.gen(function* () {
    const pg = yield* Postgres;

    const append = Effect.fn("Receipts.append")(function* (draft: ReceiptDraft) {
      return yield* pg.transaction((tx) =>
        Effect.gen(function* () {
          yield* tx.query(LOCK);
          if (draft.receipt_id !== undefined) {
            const stored = (yield* findStored(tx, [draft.receipt_id])).get(draft.receipt_id);
            if (stored !== undefined) return stored;
          }
          const receipt = yield* sealReceipt(draft, yield* readHead(tx), signer);
          yield* insert(tx, [receipt]);
          return receipt;
        })
      );
    });

    const store = Effect.fn("Receipts.store")(function* (receipts: ReadonlyArray<Receipt>) {
      return yield* pg.transaction((tx) =>
        Effect.gen(function* () {
          yield* tx.query(LOCK);
          const stored = receipts.length === 0
            ? new Map<string, Receipt>()
            : yield* findStored(tx, receipts.map((r) => r.receipt_id));
          let head = yield* readHead(tx);
          const fresh: Array<Receipt> = [];
          for (const receipt of receipts) {
            const already = stored.get(receipt.receipt_id);
            if (already !== undefined) {
              if (already.hash === receipt.hash) continue;
              return yield* fail(
                "RECEIPT_CONFLICT",
                `Receipt ${receipt.receipt_id} is already stored with another hash`,
              );
            }
            if (receipt.seq !== head.seq + 1 || receipt.prev_hash !== head.hash) {
              return yield* fail(
                "RECEIPT_CHAIN_FORK",
                `Receipt ${receipt.receipt_id} (seq ${receipt.seq}) does not continue the ` +
                  `stored chain, whose head is seq ${head.seq}`,
              );
            }
            fresh.push(receipt);
            stored.set(receipt.receipt_id, receipt);
            head = headOf(receipt);
          }
          if (fresh.length > 0) yield* insert(tx, fresh);
          return { inserted: fresh.length, head } satisfies StoredBatch;
        })
      );
    });

    const all = (options: PageOptions = {}) => pages(pg, options);

    const verify = (verifier: ReceiptVerifier) =>
      verifyStoredChain(verifier).pipe(Effect.provideService(Postgres, pg));

    return Receipts.of({
      append,
      store,
      head: readHead(pg),
      openChain: Effect.flatMap(readHead(pg), (head) => makeReceiptChain(head, signer)),
      all,
      verify,
    });
  });

/** The receipt chain over Postgres (migrations must have run). */
export class Receipts extends Context.Service<Receipts, {
  /** Seals `draft` onto the stored head and inserts it; a stored `receipt_id` returns as is. */
  readonly append: (draft: ReceiptDraft) => Effect.Effect<Receipt, WorldstreamError>;
  /** Stores receipts sealed elsewhere (a WAL drain), in chain order, idempotently. */
  readonly store: (
    receipts: ReadonlyArray<Receipt>,
  ) => Effect.Effect<StoredBatch, WorldstreamError>;
  /** The stored chain's head ({@link GENESIS} when empty). */
  readonly head: Effect.Effect<ChainHead, WorldstreamError>;
  /** An in-memory chain continuing from the stored head, for the process's single writer. */
  readonly openChain: Effect.Effect<ReceiptChain, WorldstreamError>;
  /** Every stored row in stored order, read in pages. */
  readonly all: (options?: PageOptions) => Stream.Stream<StoredReceipt, WorldstreamError>;
  /** Walks the stored chain and reports its first break. */
  readonly verify: (verifier: ReceiptVerifier) => Effect.Effect<ChainVerdict, WorldstreamError>;
}>()("worldstream/stores/Receipts") {
  /** Receipts signed by `signer`. */
  static readonly layer = (signer: ReceiptSigner): Layer.Layer<Receipts, never, Postgres> =>
    Layer.effect(this, make(signer));

  /** Receipts signed by the environment's key; RECEIPT_KEY_MISSING when there is none. */
  static readonly layerFromEnv = (env?: Env): Layer.Layer<Receipts, WorldstreamError, Postgres> =>
    Layer.effect(this, Effect.flatMap(signerFromEnv(env), make));
}

/** Paging for {@link Receipts.all}. */
export interface PageOptions {
  /** Rows per query (default 500). */
  readonly pageSize?: number;
}

/**
 * Walks the stored chain with `verifier` and reports its first break; needs no signing key, so
 * an auditor holding only a public key can run it.
 */
export const verifyStoredChain = Effect.fn("verifyStoredChain")(function* (
  verifier: ReceiptVerifier,
) {
  const pg = yield* Postgres;
  const walk = chainWalk(verifier);
  yield* Stream.runForEachWhile(
    pages(pg, {}),
    (row) => walk.step(row.body, { edited: rowMismatch(row) }),
  );
  return walk.verdict();
});

function pages(pg: PgSql, options: PageOptions): Stream.Stream<StoredReceipt, WorldstreamError> {
  const size = options.pageSize ?? PAGE_SIZE;
  return Stream.paginate(0, (after: number) =>
    pg.query<StoredReceipt>(PAGE, [after, size]).pipe(
      Effect.map((rows) => {
        const page = rows.map((row) => ({ ...row, row_seq: Number(row.row_seq) }));
        const last = page.at(-1);
        return [
          page,
          page.length < size || last === undefined
            ? Option.none<number>()
            : Option.some(last.row_seq),
        ] as const;
      }),
    ));
}

function parsedJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

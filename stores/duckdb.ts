/**
 * The only door to DuckDB. Everything else asks this service for SQL to be run; nobody else
 * imports `@duckdb/node-api`. Extension autoload/autoinstall is off: this machine is offline and
 * parquet/json/icu are built in.
 */
import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  type DuckDBConnection,
  DuckDBInstance,
  type DuckDBType,
  type DuckDBValue,
  LIST,
  listValue,
  VARCHAR,
} from "@duckdb/node-api";
import { Context, Effect, Fiber, Layer, Schedule } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** A value that may be bound to a `$name` parameter. */
export type SqlParam = string | number | bigint | boolean | ReadonlyArray<string>;

/** Named parameters for a query (`$name` in the SQL text). */
export type SqlParams = Readonly<Record<string, SqlParam>>;

/** One column-wise chunk of a streamed result. */
export type Columns = ReadonlyArray<ReadonlyArray<unknown>>;

/** A pull-based cursor over a query's result, one chunk (≤2048 rows) at a time. */
export interface ChunkCursor {
  /** Next chunk's columns (raw DuckDB values: VARCHAR → string, BIGINT → bigint), or `undefined` when the result is exhausted. */
  readonly next: Effect.Effect<Columns | undefined, WorldstreamError>;
}

/**
 * One fetched chunk whose values become JavaScript values only when asked for, a row range at a
 * time. Turning a whole 2048-row chunk of long strings into JS strings takes 5–20 ms of the
 * event loop in one go; a paced stream cannot afford a stall that long, so it converts slices.
 */
export interface LazyChunk {
  readonly rowCount: number;
  /** Values of column `column` for rows [from, to), converted as `next` would. */
  readonly slice: (column: number, from: number, to: number) => ReadonlyArray<unknown>;
  /**
   * Frees the chunk's string data now (slices taken before stay valid; none may be taken after).
   * Otherwise its ~2 MB of envelope text lives until V8 collects the chunk's wrapper, which may
   * be many chunks later (measured: ~20 MB less resident over a 5M-event read).
   */
  readonly release: () => void;
}

/** A pull-based cursor of {@link LazyChunk}s; `undefined` when the result is exhausted. */
export interface LazyChunkCursor {
  readonly next: Effect.Effect<LazyChunk | undefined, WorldstreamError>;
}

/** A DuckDB connection: queries on one connection run one after another. */
export interface DuckSession {
  readonly exec: (sql: string, params?: SqlParams) => Effect.Effect<void, WorldstreamError>;
  readonly rows: <A = Record<string, unknown>>(
    sql: string,
    params?: SqlParams,
  ) => Effect.Effect<ReadonlyArray<A>, WorldstreamError>;
  /** Runs a long statement, calling `onProgress` with DuckDB's percentage (0–100) meanwhile. */
  readonly execWithProgress: (
    sql: string,
    params: SqlParams | undefined,
    onProgress: (percentage: number) => Effect.Effect<void>,
  ) => Effect.Effect<void, WorldstreamError>;
  /** Streams a result column-wise; the cursor is only valid inside the session's scope. */
  readonly cursor: (
    sql: string,
    params?: SqlParams,
  ) => Effect.Effect<ChunkCursor, WorldstreamError>;
  /** Streams a result as lazily converted chunks; valid only inside the session's scope. */
  readonly lazyCursor: (
    sql: string,
    params?: SqlParams,
  ) => Effect.Effect<LazyChunkCursor, WorldstreamError>;
}

/** How a DuckDB instance is opened. */
export interface DuckDbOptions {
  /** Worker threads (default DuckDB's own choice: one per core). */
  readonly threads?: number;
  readonly memoryLimit?: string;
  /** Where sorts larger than the memory limit spill. */
  readonly tempDirectory?: string;
}

/** The DuckDB engine: one in-process database, many sessions. */
export class DuckDb extends Context.Service<DuckDb, {
  /** A fresh connection, closed when the scope closes. */
  readonly session: Effect.Effect<DuckSession, WorldstreamError, import("effect").Scope.Scope>;
  /**
   * Runs `effect` on a DuckDB instance of its own, opened with the same options and closed when
   * `effect` ends. For heavy one-off work such as sorting a stream view: DuckDB keeps what such
   * work allocated until its instance closes (~280 MB after sorting a 1M-event view), which in
   * the long-lived instance would stay with the process for the whole stream.
   */
  readonly apart: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E | WorldstreamError, Exclude<R, DuckDb>>;
}>()("worldstream/stores/DuckDb") {
  /** In-memory DuckDB with extensions locked down. */
  static readonly layer = (options: DuckDbOptions = {}): Layer.Layer<DuckDb, WorldstreamError> =>
    Layer.effect(
      DuckDb,
      Effect.gen(function* () {
        const settings = {
          ...(options.threads ? { threads: String(options.threads) } : {}),
          ...(options.memoryLimit ? { memory_limit: options.memoryLimit } : {}),
          ...(options.tempDirectory ? { temp_directory: options.tempDirectory } : {}),
        };
        const instance = yield* Effect.acquireRelease(
          // DuckDB says only "Failed to set config" for a bad setting, so the message names them.
          tryDuck(`open with ${JSON.stringify(settings)}`, () =>
            DuckDBInstance.create(":memory:", {
              autoload_known_extensions: "false",
              autoinstall_known_extensions: "false",
              ...settings,
            })),
          (db) => Effect.sync(() => db.closeSync()),
        );
        const session = Effect.acquireRelease(
          tryDuck("connect", async () => {
            const conn = await instance.connect();
            // Progress is tracked (for CLI bars) but never printed by DuckDB itself.
            await conn.run("SET enable_progress_bar = true; SET enable_progress_bar_print = false");
            return conn;
          }),
          // A streaming result left unfinished (a replay reads 1,000 rows of a 5M-row view)
          // keeps its buffers until V8 collects its wrapper, which a few replays in a row
          // outran (DUCKDB_OUT_OF_MEMORY at 192 MB). A statement on the same connection ends
          // that result and frees them now.
          (conn) =>
            Effect.promise(async () => {
              await conn.run("SELECT 1").catch(() => undefined);
              conn.closeSync();
            }),
        ).pipe(Effect.map(makeSession));
        return DuckDb.of({
          session,
          apart: (effect) => Effect.provide(effect, DuckDb.layer(options)),
        });
      }),
    );
}

function makeSession(conn: DuckDBConnection): DuckSession {
  const bind = (params?: SqlParams) => params === undefined ? undefined : toDuck(params);
  const exec = (sql: string, params?: SqlParams) =>
    tryDuck("query", async () => {
      const p = bind(params);
      await conn.run(sql, p?.values, p?.types);
    });
  return {
    exec,
    execWithProgress: (sql, params, onProgress) =>
      Effect.gen(function* () {
        const poll = Effect.suspend(() => onProgress(Math.max(0, conn.progress.percentage))).pipe(
          Effect.repeat(Schedule.spaced("200 millis")),
        );
        const poller = yield* Effect.forkChild(poll);
        yield* exec(sql, params).pipe(Effect.ensuring(Fiber.interrupt(poller)));
        yield* onProgress(100);
      }),
    rows: <A>(sql: string, params?: SqlParams) =>
      tryDuck("query", async () => {
        const p = bind(params);
        const reader = await conn.runAndReadAll(sql, p?.values, p?.types);
        return reader.getRowObjectsJS() as unknown as ReadonlyArray<A>;
      }),
    cursor: (sql, params) =>
      tryDuck("query", async () => {
        const p = bind(params);
        const result = await conn.stream(sql, p?.values, p?.types);
        return {
          next: tryDuck("read", async () => {
            const chunk = await result.fetchChunk();
            if (chunk === null || chunk.rowCount === 0) return undefined;
            return chunk.getColumns() as Columns;
          }),
        };
      }),
    lazyCursor: (sql, params) =>
      tryDuck("query", async () => {
        const p = bind(params);
        const result = await conn.stream(sql, p?.values, p?.types);
        return {
          next: tryDuck("read", async (): Promise<LazyChunk | undefined> => {
            const chunk = await result.fetchChunk();
            if (chunk === null || chunk.rowCount === 0) return undefined;
            return {
              rowCount: chunk.rowCount,
              slice: (column, from, to) => {
                const vector = chunk.getColumnVector(column);
                const out: unknown[] = new Array(to - from);
                for (let i = from; i < to; i++) out[i - from] = vector.getItem(i);
                return out;
              },
              release: () => chunk.reset(),
            };
          }),
        };
      }),
  };
}

function toDuck(params: SqlParams) {
  const values: Record<string, DuckDBValue> = {};
  const types: Record<string, DuckDBType> = {};
  for (const [k, v] of Object.entries(params)) {
    if (typeof v === "string") [values[k], types[k]] = [v, VARCHAR];
    else if (typeof v === "bigint") [values[k], types[k]] = [v, BIGINT];
    else if (typeof v === "boolean") [values[k], types[k]] = [v, BOOLEAN];
    else if (typeof v === "number") {
      [values[k], types[k]] = Number.isInteger(v) ? [BigInt(v), BIGINT] : [v, DOUBLE];
    } else [values[k], types[k]] = [listValue([...v]), LIST(VARCHAR)];
  }
  return { values, types };
}

function tryDuck<A>(what: string, f: () => Promise<A>): Effect.Effect<A, WorldstreamError> {
  return Effect.tryPromise({
    try: f,
    catch: (e) => fail("DUCKDB_ERROR", `DuckDB ${what} failed: ${firstLine(e)}`),
  });
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0];
}

/**
 * A SQL string literal for a value DuckDB cannot take as a parameter (COPY targets). Callers
 * validate paths first; this still refuses quotes and control characters rather than escaping.
 */
export function sqlLiteral(value: string): string {
  // deno-lint-ignore no-control-regex
  if (/['\\\u0000-\u001f]/.test(value)) {
    throw new Error(`Refusing to put ${JSON.stringify(value)} into SQL text`);
  }
  return `'${value}'`;
}

/** Reads `sql/duckdb/<name>.sql` (the SQL-first core keeps every query there). */
export function duckSql(name: string): string {
  return Deno.readTextFileSync(new URL(`../sql/duckdb/${name}.sql`, import.meta.url));
}

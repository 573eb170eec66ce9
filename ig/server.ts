/**
 * Serving the reference gate on a socket, for as long as a scope lives. `Deno.serve` by default;
 * when connection resets are to be injected, `node:http` instead, the one server here that can
 * drop a connection without answering.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Buffer } from "node:buffer";
import { Context, Duration, Effect, Layer, type Scope } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type PgBackend, Postgres } from "../stores/postgres.ts";
import { makeIgApp } from "./app.ts";
import { type FaultOptions, isReset, makeFaults } from "./faults.ts";
import { type GateOptions, IgGate } from "./gate.ts";
import { IgStore } from "./store.ts";

/** Where and how to serve. */
export interface ServeOptions {
  /** Port (default 0: an ephemeral port, see RunningIg.port). */
  readonly port?: number;
  /** Interface (default 127.0.0.1). */
  readonly host?: string;
  readonly apiKey?: string;
  readonly faults?: FaultOptions;
  /** Serves the batch route (default true); false answers it 404, like the platform's gate. */
  readonly batchRoute?: boolean;
}

/** A gate with its own database. */
export interface StartIgOptions extends ServeOptions {
  /** A PGlite folder or a `postgres://` URL (default `runs/ig-pglite`). */
  readonly db?: string;
  readonly gate?: GateOptions;
}

/** A gate being served. */
export interface RunningIg {
  /** Base URL, e.g. `http://127.0.0.1:8081`. */
  readonly url: string;
  readonly port: number;
  readonly backend: PgBackend;
  /** `node` when resets are injected, else `deno`. */
  readonly engine: "deno" | "node";
  /** Stops serving now (also done when the scope closes); idempotent. */
  readonly close: Effect.Effect<void>;
}

/** The default PGlite folder of a standalone gate. */
export const DEFAULT_IG_DB = "runs/ig-pglite";

/** Opens the database (migrating it), builds the gate and serves it until the scope closes. */
export const startIg = (
  options: StartIgOptions = {},
): Effect.Effect<RunningIg, WorldstreamError, Scope.Scope> =>
  Effect.gen(function* () {
    const db = options.db ?? DEFAULT_IG_DB;
    const postgres = /^postgres(ql)?:\/\//.test(db)
      ? Postgres.layerServer(db)
      // The reference gate is a test double: answering before PGlite's fs sync keeps its
      // per-request cost near a real gate's, so benches measure worldstream, not the sync.
      : Postgres.layerPglite(db, { relaxedDurability: true });
    const services = yield* Layer.build(
      IgGate.layer(options.gate).pipe(Layer.provide(IgStore.layer), Layer.provide(postgres)),
    );
    return yield* serveGate(Context.get(services, IgGate), options);
  });

/** Serves a gate until the scope closes. */
export const serveGate = (
  gate: IgGate["Service"],
  options: ServeOptions = {},
): Effect.Effect<RunningIg, WorldstreamError, Scope.Scope> =>
  Effect.gen(function* () {
    const host = options.host ?? "127.0.0.1";
    const faults = yield* makeFaults(options.faults ?? {});
    const services = yield* Effect.context<never>();
    const app = makeIgApp(gate, {
      apiKey: options.apiKey,
      faults,
      ...(options.batchRoute === undefined ? {} : { batchRoute: options.batchRoute }),
      run: Effect.runPromiseExitWith(services),
    });
    const engine = faults?.resets === true ? "node" : "deno";
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          engine === "node"
            ? listenNode(app.fetch, host, options.port ?? 0)
            : listenDeno(app.fetch, host, options.port ?? 0),
        catch: (e) =>
          fail("IG_LISTEN_FAILED", `Cannot listen on ${host}:${options.port ?? 0}: ${e}`),
      }),
      (server) => server.close,
    );
    const urlHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
    return {
      url: `http://${urlHost}:${server.port}`,
      port: server.port,
      backend: gate.backend,
      engine,
      close: server.close,
    } satisfies RunningIg;
  });

interface Listening {
  readonly port: number;
  readonly close: Effect.Effect<void>;
}

type Fetch = (request: Request) => Response | Promise<Response>;

// In-flight requests finish before close returns, but a client that never stops reading (a huge
// NDJSON download) does not hold shutdown longer than this.
const SHUTDOWN_GRACE = Duration.seconds(5);

function listenDeno(fetch: Fetch, host: string, port: number): Promise<Listening> {
  const server = Deno.serve({ hostname: host, port, onListen: () => undefined }, fetch);
  const close = once(() => server.shutdown());
  return Promise.resolve({ port: server.addr.port, close });
}

function listenNode(fetch: Fetch, host: string, port: number): Promise<Listening> {
  const server = http.createServer((req, res) => void handleNode(fetch, req, res));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const close = once(() =>
        new Promise<void>((done) => {
          server.close(() => done());
          server.closeIdleConnections();
        })
      );
      resolve({ port: (server.address() as AddressInfo).port, close });
    });
  });
}

async function handleNode(
  fetch: Fetch,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    const chunks: Array<Buffer> = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (Array.isArray(value)) value.forEach((v) => headers.append(name, v));
      else if (value !== undefined) headers.set(name, value);
    }
    const method = req.method ?? "GET";
    const response = await fetch(
      new Request(new URL(req.url ?? "/", "http://ig.local"), {
        method,
        headers,
        body: method === "GET" || method === "HEAD" ? undefined : Buffer.concat(chunks),
      }),
    );
    if (isReset(response)) {
      req.socket.destroy();
      await response.body?.cancel().catch(() => undefined);
      return;
    }
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body !== null) {
      for await (const chunk of response.body) res.write(chunk);
    }
    res.end();
  } catch {
    // The request or the response stream broke: drop the connection rather than half-answer.
    res.destroy();
  }
}

function once(f: () => Promise<void>): Effect.Effect<void> {
  let closing: Promise<void> | undefined;
  return Effect.promise(() => (closing ??= f())).pipe(
    Effect.timeoutOption(SHUTDOWN_GRACE),
    Effect.asVoid,
  );
}

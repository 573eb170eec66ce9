/**
 * Serving an admin app for as long as a scope lives: `Deno.serve` on `<host>:<port>` (host
 * 127.0.0.1 unless the profile's `wiring.admin.host` says otherwise; port 0: an ephemeral one),
 * shut down — in-flight requests finished — when the scope closes.
 */
import { Effect, type Scope } from "effect";
import type { Hono } from "hono";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** An admin app being served. */
export interface RunningAdmin {
  /** Base URL, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
  readonly port: number;
}

/** Serves `app` on `host:port` (host default 127.0.0.1) until the scope closes. */
export function serveAdmin(
  app: Hono,
  options: { readonly port: number; readonly host?: string },
): Effect.Effect<RunningAdmin, WorldstreamError, Scope.Scope> {
  const { port } = options;
  const hostname = options.host ?? "127.0.0.1";
  return Effect.gen(function* () {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return yield* fail("BAD_ARGS", `Admin port must be an integer 0..65535, got ${port}`);
    }
    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Deno.serve({ hostname, port, onListen: () => undefined }, app.fetch),
        catch: (e) =>
          fail(
            "ADMIN_LISTEN_FAILED",
            `Cannot listen on ${hostname}:${port}: ${String(e).split("\n")[0]}`,
          ),
      }),
      (server) => Effect.promise(() => server.shutdown()),
    );
    const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
    return { url: `http://${shown}:${server.addr.port}`, port: server.addr.port };
  });
}

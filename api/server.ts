/**
 * Serving an admin app on loopback for as long as a scope lives: `Deno.serve` on
 * `127.0.0.1:<port>` (0: an ephemeral port), shut down — in-flight requests finished — when the
 * scope closes.
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

/** Serves `app` on `127.0.0.1:port` until the scope closes. */
export function serveAdmin(
  app: Hono,
  options: { readonly port: number },
): Effect.Effect<RunningAdmin, WorldstreamError, Scope.Scope> {
  const { port } = options;
  return Effect.gen(function* () {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return yield* fail("BAD_ARGS", `Admin port must be an integer 0..65535, got ${port}`);
    }
    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Deno.serve({ hostname: "127.0.0.1", port, onListen: () => undefined }, app.fetch),
        catch: (e) =>
          fail(
            "ADMIN_LISTEN_FAILED",
            `Cannot listen on 127.0.0.1:${port}: ${String(e).split("\n")[0]}`,
          ),
      }),
      (server) => Effect.promise(() => server.shutdown()),
    );
    return { url: `http://127.0.0.1:${server.addr.port}`, port: server.addr.port };
  });
}

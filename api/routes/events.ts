/**
 * `GET /v1/events`: the dashboard's live feed, Server-Sent Events carrying the `/v1/status`
 * answer (event `status`) once a second, for as long as the client listens. It ends when the
 * client goes (the server cancels the stream) and when the runtime stops (the slot's `closing`
 * signal), so the server's shutdown never waits on an open feed. One snapshot reads in-memory
 * state only, like `/v1/status`.
 */
import { Effect } from "effect";
import type { Health } from "../../actors/health.ts";
import type { Supervisor } from "../../actors/supervisor.ts";
import { rawRoute, type RouteModule } from "../route.ts";
import { statusNow } from "./status.ts";

/** How often a snapshot is sent. */
export const EVENT_INTERVAL_MS = 1000;

/** The events route. */
export const eventsRoutes: RouteModule = {
  name: "events",
  routes: [rawRoute({
    method: "get",
    path: "/v1/events",
    summary: "Server-Sent Events: the /v1/status answer as event `status`, once a second",
    produces: "text/event-stream",
    respond: ({ closing }) =>
      Effect.gen(function* () {
        const context = yield* Effect.context<Supervisor | Health>();
        const snapshot = () => Effect.runPromise(statusNow.pipe(Effect.provideContext(context)));
        return new Response(statusStream(snapshot, [closing]), {
          headers: {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
          },
        });
      }),
  })],
};

/**
 * A stream of `snapshot()` as SSE events every {@link EVENT_INTERVAL_MS}, the first at once,
 * closed when any of `until` aborts, the reader cancels, or a snapshot fails.
 */
export function statusStream(
  snapshot: () => Promise<unknown>,
  until: ReadonlyArray<AbortSignal>,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  let end = () => {};
  return new ReadableStream<Uint8Array>({
    start(controller) {
      end = () => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        for (const signal of until) signal.removeEventListener("abort", end);
        try {
          controller.close();
        } catch {
          // The reader went first.
        }
      };
      if (until.some((s) => s.aborted)) return end();
      for (const signal of until) signal.addEventListener("abort", end);
      // The browser reconnects after 2 s when the feed drops.
      controller.enqueue(encoder.encode("retry: 2000\n\n"));
      let busy = false;
      const send = async () => {
        if (busy || closed) return;
        busy = true;
        try {
          const data = JSON.stringify(await snapshot());
          if (!closed) controller.enqueue(encoder.encode(`event: status\ndata: ${data}\n\n`));
        } catch {
          end();
        } finally {
          busy = false;
        }
      };
      void send();
      timer = setInterval(send, EVENT_INTERVAL_MS);
    },
    cancel() {
      end();
    },
  });
}

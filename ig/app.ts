/**
 * The gate's HTTP face (Hono): the platform's `POST /v1/ingest/push`, a batch endpoint, and the
 * ops routes (health, lookup, stats, the admitted log as NDJSON). An API key, when configured,
 * guards every route; injected faults touch the ingest routes only. Without the batch route
 * (`batchRoute: false`) the gate answers it 404, as the platform's own gate does.
 */
import { Buffer } from "node:buffer";
import { timingSafeEqual } from "node:crypto";
import { Cause, Effect, Exit, Stream } from "effect";
import { Hono } from "hono";
import type { Context as HonoContext } from "hono";
import { sha256Hex } from "../core/hash.ts";
import { WorldstreamError } from "../schemas/errors.ts";
import { failResponse, type Faults, resetResponse } from "./faults.ts";
import type { IgGate, Outcome } from "./gate.ts";

/** How the app is guarded, faulted and run. */
export interface IgAppOptions {
  /** Required in `X-IG-Api-Key` on every route when set. */
  readonly apiKey?: string;
  readonly faults?: Faults;
  /**
   * Runs the gate's effects with the caller's services (logger, clock); default
   * `Effect.runPromiseExit`.
   */
  readonly run?: <A, E>(effect: Effect.Effect<A, E>) => Promise<Exit.Exit<A, E>>;
  /** Largest request body accepted, in bytes (default 64 MiB). */
  readonly maxBodyBytes?: number;
  /** Serves `POST /v1/ingest/batch` (default true); without it, like the platform's gate. */
  readonly batchRoute?: boolean;
}

/** The header that carries the API key. */
export const API_KEY_HEADER = "X-IG-Api-Key";

type Gate = IgGate["Service"];
type Run = NonNullable<IgAppOptions["run"]>;

/** The gate's Hono app; call `app.fetch` from a server or `app.request` from tests. */
export function makeIgApp(gate: Gate, options: IgAppOptions = {}): Hono {
  const run: Run = options.run ?? ((effect) => Effect.runPromiseExit(effect));
  const app = new Hono();
  if (options.apiKey !== undefined && options.apiKey !== "") {
    app.use("*", apiKeyGuard(options.apiKey));
  }
  app.route("/v1/ingest", ingestRoutes(gate, run, options));
  app.route("/v1/ops", opsRoutes(gate, run));
  app.notFound((c) => c.json({ error: "NOT_FOUND", detail: `No route ${c.req.path}` }, 404));
  app.onError((e, c) => {
    void run(Effect.logError("ig request failed").pipe(Effect.annotateLogs({ error: String(e) })));
    return c.json({ error: "INTERNAL_ERROR", detail: String(e).split("\n")[0] }, 500);
  });
  return app;
}

function apiKeyGuard(apiKey: string) {
  const expected = Buffer.from(sha256Hex(apiKey), "hex");
  return async (c: HonoContext, next: () => Promise<void>) => {
    const given = c.req.header(API_KEY_HEADER);
    // Compare digests so the comparison takes the same time whatever the given key's length.
    const ok = given !== undefined &&
      timingSafeEqual(Buffer.from(sha256Hex(given), "hex"), expected);
    if (!ok) {
      return c.json({ error: "UNAUTHORIZED", detail: `Missing or wrong ${API_KEY_HEADER}` }, 401);
    }
    await next();
  };
}

// ---------------------------------------------------------------------------------------------
// Ingest

function ingestRoutes(gate: Gate, run: Run, options: IgAppOptions): Hono {
  const app = new Hono();
  const maxBody = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const faults = options.faults;
  if (faults !== undefined) {
    app.use("*", async (c, next) => {
      const fault = faults.next();
      if (faults.latencyMs > 0) await run(Effect.sleep(faults.latencyMs));
      if (fault.kind === "fail") return failResponse(fault.status, fault.retryAfter);
      await next();
      if (fault.kind === "reset") c.res = resetResponse();
    });
  }

  app.post("/push", async (c) => {
    const body = await readJson(c, maxBody);
    if (body instanceof Response) return body;
    const exit = await run(gate.push(body.value));
    if (Exit.isFailure(exit)) return failure(c, run, exit.cause);
    return c.json(pushBody(exit.value));
  });

  if (options.batchRoute === false) return app;
  app.post("/batch", async (c) => {
    const body = await readJson(c, maxBody);
    if (body instanceof Response) return body;
    const events = (body.value as { events?: unknown } | null)?.events;
    if (!Array.isArray(events)) {
      return c.json({ error: "BATCH_INVALID", detail: "events: Expected an array" }, 400);
    }
    const exit = await run(gate.admitBatch(events));
    if (Exit.isFailure(exit)) return failure(c, run, exit.cause);
    return c.json({ results: exit.value.map(batchResult) });
  });
  return app;
}

function pushBody(o: Outcome) {
  return {
    decision: o.decision,
    receipt: o.receipt(),
    receipt_ref: o.receiptRef,
    ...(o.reason === undefined ? {} : { reason: o.reason, detail: o.detail }),
  };
}

function batchResult(o: Outcome) {
  return {
    event_id: o.eventId ?? null,
    decision: o.decision,
    ...(o.reason === undefined ? {} : { reason: o.reason, detail: o.detail }),
    receipt_ref: o.receiptRef,
  };
}

async function readJson(
  c: HonoContext,
  maxBytes: number,
): Promise<{ readonly value: unknown } | Response> {
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > maxBytes) {
    return c.json(
      { error: "BODY_TOO_LARGE", detail: `Bodies are limited to ${maxBytes} bytes` },
      413,
    );
  }
  const text = await c.req.text();
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (e) {
    return c.json({ error: "MALFORMED_JSON", detail: (e as Error).message.split("\n")[0] }, 400);
  }
}

/** A failed gate effect as an HTTP answer: 400 for a refused request, 503 when the store is down. */
function failure(c: HonoContext, run: Run, cause: Cause.Cause<WorldstreamError>): Response {
  const error = cause.reasons.find((r) => r._tag === "Fail")?.error;
  if (error instanceof WorldstreamError && error.reason === "BATCH_TOO_LARGE") {
    return c.json({ error: error.reason, detail: error.message }, 400);
  }
  const unavailable = error instanceof WorldstreamError &&
    (error.reason === "PG_UNAVAILABLE" || error.reason === "IG_STOPPING");
  void run(
    Effect.logError("ig decision failed").pipe(
      Effect.annotateLogs({
        reason: error?.reason ?? "DEFECT",
        message: error?.message ?? Cause.pretty(cause).split("\n")[0],
      }),
    ),
  );
  return unavailable
    ? c.json({ error: "IG_UNAVAILABLE", detail: error.message }, 503, { "retry-after": "1" })
    : c.json({ error: "INTERNAL_ERROR", detail: error?.message ?? "Unexpected failure" }, 500);
}

// ---------------------------------------------------------------------------------------------
// Ops

function opsRoutes(gate: Gate, run: Run): Hono {
  const app = new Hono();

  app.get("/health", async (c) => {
    const exit = await run(gate.health);
    return Exit.isSuccess(exit)
      ? c.json({ status: "ok", db: gate.backend })
      : c.json({ status: "unavailable", db: gate.backend, detail: firstError(exit.cause) }, 503);
  });

  app.get("/lookup", async (c) => {
    const eventId = c.req.query("event_id");
    const key = c.req.query("dedupe_key");
    if (!eventId && !key) {
      return c.json({ error: "MISSING_QUERY", detail: "Give event_id or dedupe_key" }, 400);
    }
    const exit = await run(gate.lookup(eventId ? { eventId } : { dedupeKey: key! }));
    if (Exit.isFailure(exit)) return failure(c, run, exit.cause);
    const { admissions, quarantines } = exit.value;
    if (admissions.length === 0 && quarantines.length === 0) {
      return c.json({ error: "NOT_FOUND", detail: "The gate has seen no such event" }, 404);
    }
    return c.json({
      ...(eventId ? { event_id: eventId } : { dedupe_key: key }),
      admissions,
      quarantines,
    });
  });

  app.get("/stats", async (c) => {
    const exit = await run(gate.stats);
    if (Exit.isFailure(exit)) return failure(c, run, exit.cause);
    return c.json(exit.value);
  });

  app.get("/admitted", (c) => {
    const runId = c.req.query("platform_run_id");
    if (!runId) {
      return c.json({ error: "MISSING_QUERY", detail: "Give platform_run_id" }, 400);
    }
    const encoder = new TextEncoder();
    const body = Stream.toReadableStream(
      gate.admitted(runId).pipe(Stream.map((text) => encoder.encode(text))),
    );
    return c.body(body, 200, { "content-type": "application/x-ndjson" });
  });
  return app;
}

function firstError(cause: Cause.Cause<WorldstreamError>): string {
  const error = cause.reasons.find((r) => r._tag === "Fail")?.error;
  return error?.message ?? "Unexpected failure";
}

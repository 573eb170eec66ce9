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
  /** Largest request body accepted, in bytes (default {@link MAX_BODY_BYTES}). */
  readonly maxBodyBytes?: number;
  /** Request body bytes all ingest requests may hold at once (default {@link MAX_HELD_BYTES}). */
  readonly maxHeldBytes?: number;
  /** Serves `POST /v1/ingest/batch` (default true); without it, like the platform's gate. */
  readonly batchRoute?: boolean;
}

/**
 * The largest body the gate reads: 4 MiB, four of the platform-sized 1 MiB envelopes worldstream
 * sends at most (or a batch of ~6,000 ordinary ones). Limits must fit the gate's memory: a body
 * becomes a few copies in this process (text, parsed value, canonical JSON) and one more in
 * PGlite's process, whose JavaScript heap is 128 MB (`stores/pglite_channel.ts`). Measured there:
 * a single 63 MB push was still stored; the limits below keep every request far from that.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * What all ingest requests together may hold at once (32 MiB, eight full bodies): pushes waiting
 * together are decided in one transaction, so many large pushes at once would reach PGlite's
 * process as one large statement. A request that does not fit is answered 503 with
 * `Retry-After: 1`, which a courier retries.
 */
export const MAX_HELD_BYTES = 32 * 1024 * 1024;

/**
 * The deepest JSON nesting read: an envelope is an object holding a payload row (three levels
 * with a nested value); thousands of levels are only good for exhausting a parser's stack.
 */
export const MAX_JSON_DEPTH = 64;

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
  const maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const maxHeld = options.maxHeldBytes ?? MAX_HELD_BYTES;
  let held = 0;
  // Before anything else: a body is reserved (its Content-Length, or the limit when it is sent
  // chunked) until its answer is made, so the bytes in the gate never exceed maxHeld.
  app.use("*", async (c, next) => {
    const declared = Number(c.req.header("content-length") ?? Number.NaN);
    const reserve = Number.isFinite(declared) && declared >= 0
      ? Math.min(declared, maxBody)
      : maxBody;
    if (held + reserve > maxHeld) {
      return c.json(
        { error: "IG_BUSY", detail: `The gate holds ${held} bytes of requests; retry shortly` },
        503,
        { "retry-after": "1" },
      );
    }
    held += reserve;
    try {
      await next();
    } finally {
      held -= reserve;
    }
  });
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
  const tooLarge = () =>
    c.json({ error: "BODY_TOO_LARGE", detail: `Bodies are limited to ${maxBytes} bytes` }, 413);
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > maxBytes) return tooLarge();
  // The limit holds for the bytes read, whatever the headers said (a chunked body has no length).
  const chunks: Array<Uint8Array> = [];
  let read = 0;
  const body = c.req.raw.body;
  if (body !== null) {
    const reader = body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        read += value.byteLength;
        if (read > maxBytes) {
          await reader.cancel().catch(() => undefined);
          return tooLarge();
        }
        chunks.push(value);
      }
    } catch (e) {
      return c.json({ error: "BODY_UNREADABLE", detail: String(e).split("\n")[0] }, 400);
    }
  }
  const bytes = new Uint8Array(read);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  const text = new TextDecoder().decode(bytes);
  const depth = jsonDepthOver(text, MAX_JSON_DEPTH);
  if (depth) {
    return c.json(
      { error: "JSON_TOO_DEEP", detail: `JSON is nested deeper than ${MAX_JSON_DEPTH} levels` },
      400,
    );
  }
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (e) {
    return c.json({ error: "MALFORMED_JSON", detail: (e as Error).message.split("\n")[0] }, 400);
  }
}

/** Whether `text`'s arrays and objects nest deeper than `max` (brackets in strings do not count). */
export function jsonDepthOver(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92) i++; // a backslash escapes the next character
      else if (ch === 34) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 91 || ch === 123) {
      if (++depth > max) return true;
    } else if (ch === 93 || ch === 125) depth--;
  }
  return false;
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

/**
 * The only HTTP door to an ingestion gate. Envelopes arrive as JSON text (built by DuckDB) and
 * are put on the wire as they are: a batch body is the texts joined into `{"events":[...]}`, so
 * nothing is parsed or re-serialised on the hot path.
 */
import { Effect } from "effect";

/** What one IG request came back with. `status` 0 means no HTTP answer (reset, refused, timeout). */
export interface IgAnswer {
  readonly status: number;
  /** Per-envelope decisions in request order when the request succeeded. */
  readonly decisions?: ReadonlyArray<string>;
  /** Per-envelope reasons (QUARANTINE / rejection), same order; may be absent. */
  readonly reasons?: ReadonlyArray<string | undefined>;
  /** Milliseconds from a `Retry-After` header, when given. */
  readonly retryAfterMs?: number;
  /** A short description of a failure (network error text or response body head). */
  readonly error?: string;
}

/** How to reach the IG. */
export interface IgEndpoint {
  readonly baseUrl: string;
  readonly authHeader?: string;
  readonly authToken?: string;
  readonly timeoutMs: number;
}

/** Posts a batch of envelope texts to `/v1/ingest/batch`. Never fails: errors are answers. */
export function postBatch(
  endpoint: IgEndpoint,
  envelopes: ReadonlyArray<string>,
): Effect.Effect<IgAnswer> {
  return request(endpoint, "/v1/ingest/batch", `{"events":[${envelopes.join(",")}]}`, (body) => {
    const results = (body as { results?: Array<{ decision?: string; reason?: string }> }).results;
    if (!Array.isArray(results) || results.length !== envelopes.length) return undefined;
    return {
      decisions: results.map((r) => String(r.decision)),
      reasons: results.map((r) => r.reason),
    };
  });
}

/** Posts one envelope text to the platform's `/v1/ingest/push`. Never fails: errors are answers. */
export function pushOne(endpoint: IgEndpoint, envelope: string): Effect.Effect<IgAnswer> {
  return request(endpoint, "/v1/ingest/push", envelope, (body) => {
    const b = body as { decision?: string; receipt?: { reason_codes?: string[] } };
    return typeof b.decision === "string"
      ? { decisions: [b.decision], reasons: [b.receipt?.reason_codes?.[0]] }
      : undefined;
  });
}

/** `GET /v1/ops/health`: true when the IG answers 200. */
export function igHealthy(endpoint: IgEndpoint): Effect.Effect<boolean> {
  // Interruptible, and no timer left behind once answered (as with every IG request here).
  return Effect.promise(async (signal) => {
    const deadline = timeoutSignal(signal, endpoint.timeoutMs);
    try {
      const res = await fetch(new URL("/v1/ops/health", endpoint.baseUrl), {
        signal: deadline.signal,
      });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    } finally {
      deadline.clear();
    }
  });
}

function request(
  endpoint: IgEndpoint,
  path: string,
  body: string,
  parse: (json: unknown) => Pick<IgAnswer, "decisions" | "reasons"> | undefined,
): Effect.Effect<IgAnswer> {
  return Effect.promise(async (signal): Promise<IgAnswer> => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (endpoint.authHeader && endpoint.authToken) {
      headers[endpoint.authHeader] = endpoint.authToken;
    }
    const deadline = timeoutSignal(signal, endpoint.timeoutMs);
    try {
      let res: Response;
      try {
        res = await fetch(new URL(path, endpoint.baseUrl), {
          method: "POST",
          headers,
          body,
          signal: deadline.signal,
        });
      } catch (e) {
        return { status: 0, error: (e as Error).message.split("\n")[0] };
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        return { status: 0, error: `response cut off: ${(e as Error).message.split("\n")[0]}` };
      }
      const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
      const base = { status: res.status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
      if (res.status !== 200) return { ...base, error: text.slice(0, 200) };
      try {
        const parsed = parse(JSON.parse(text));
        return parsed
          ? { ...base, ...parsed }
          : { status: 0, error: `unexpected IG answer: ${text.slice(0, 200)}` };
      } catch {
        return { status: 0, error: `IG answer is not JSON: ${text.slice(0, 200)}` };
      }
    } finally {
      deadline.clear();
    }
  });
}

/**
 * A signal that aborts when `outer` does or after `ms`, and lets go of both once cleared.
 * `AbortSignal.timeout` would keep a timer (and the request's signals) alive for the whole
 * timeout after every answer: at a thousand requests a second, tens of thousands of them,
 * promoted to V8's old space and collected in pauses that delayed paced sends.
 */
function timeoutSignal(outer: AbortSignal, ms: number) {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`no answer within ${ms} ms`, "TimeoutError")),
    ms,
  );
  const forward = () => controller.abort(outer.reason);
  if (outer.aborted) forward();
  else outer.addEventListener("abort", forward, { once: true });
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      outer.removeEventListener("abort", forward);
    },
  };
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

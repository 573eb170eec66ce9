/**
 * The only HTTP door to an ingestion gate, and the `IgClient` service every caller that posts to
 * the gate goes through (courier lanes, dead-letter retry). Envelopes arrive as JSON text (built
 * by DuckDB) and are put on the wire as they are: a batch body is the texts joined into
 * `{"events":[...]}`, so nothing is parsed or re-serialised on the hot path.
 *
 * Every request is retried by the one policy of `core/ig_retry.ts`. The wire mode is the
 * client's: `batch` posts to `/v1/ingest/batch`, `push` sends one envelope per request to the
 * platform's `/v1/ingest/push`, and `auto` posts batches until the gate answers 404/405 on the
 * batch route (the platform's own gate has none), then pushes from then on; the batch that got
 * the 404 was not admitted, so its envelopes are pushed one by one in order.
 */
import { Clock, Context, Data, Duration, Effect, Layer, Ref, Schedule } from "effect";
import { isRetryable, type RetryPolicy, retrySchedule } from "../core/ig_retry.ts";

/** What one IG request came back with. `status` 0 means no HTTP answer (reset, refused, timeout). */
export interface IgAnswer {
  readonly status: number;
  /**
   * Set when the gate answered 200 with something that is not a decision worldstream knows for
   * every envelope (another decision, a malformed body, a result count that does not match):
   * what it said instead. Such an answer is never acknowledged, nor retried.
   */
  readonly unexpected?: string;
  /** Where a 3xx pointed (redirects are never followed). */
  readonly location?: string;
  /** Per-envelope decisions in request order when the request succeeded. */
  readonly decisions?: ReadonlyArray<string>;
  /** Per-envelope reasons (QUARANTINE / rejection), same order; may be absent. */
  readonly reasons?: ReadonlyArray<string | undefined>;
  /** Milliseconds from a `Retry-After` header, when given. */
  readonly retryAfterMs?: number;
  /** A short description of a failure (network error text or response body head). */
  readonly error?: string;
}

/** The decisions a gate may answer (CONTRACTS.md: quarantine is a 200 too). */
export const DECISIONS: ReadonlySet<string> = new Set(["ADMIT", "DUPLICATE", "QUARANTINE"]);

/**
 * The largest request body sent to a gate by default, and so the largest envelope: 1 MiB. The
 * platform's contracts state no body limit for its gate, but its gate publishes every admitted
 * envelope as one event bus record, and on Kinesis (the dev/prod bus) a record holds at most
 * 1 MiB. `wiring.wsp_courier.max_body_bytes` changes it.
 */
export const MAX_BODY_BYTES_DEFAULT = 1024 * 1024;

/** How to reach the IG. */
export interface IgEndpoint {
  readonly baseUrl: string;
  readonly authHeader?: string;
  readonly authToken?: string;
  readonly timeoutMs: number;
}

/** Posts a batch of envelope texts to `/v1/ingest/batch`. Never fails: errors are answers. */
function postBatch(
  endpoint: IgEndpoint,
  envelopes: ReadonlyArray<string>,
): Effect.Effect<IgAnswer> {
  return request(endpoint, "/v1/ingest/batch", batchBody(envelopes), (body) => {
    const results = (body as { results?: unknown } | null)?.results;
    if (!Array.isArray(results)) return "a body without a results array";
    if (results.length !== envelopes.length) {
      return `${results.length} results for ${envelopes.length} envelopes`;
    }
    const decisions = results.map((r) => (r as { decision?: unknown } | null)?.decision);
    const odd = decisions.findIndex((d) => typeof d !== "string" || !DECISIONS.has(d));
    if (odd >= 0) return `${unknownDecision(decisions[odd])} for envelope ${odd}`;
    return {
      decisions: decisions as Array<string>,
      reasons: results.map((r) => stringOrUndefined((r as { reason?: unknown }).reason)),
    };
  });
}

/** Posts one envelope text to the platform's `/v1/ingest/push`. Never fails: errors are answers. */
function pushOne(endpoint: IgEndpoint, envelope: string): Effect.Effect<IgAnswer> {
  return request(endpoint, "/v1/ingest/push", envelope, (body) => {
    const b = body as { decision?: unknown; receipt?: { reason_codes?: unknown } } | null;
    const decision = b?.decision;
    if (typeof decision !== "string" || !DECISIONS.has(decision)) {
      return unknownDecision(decision);
    }
    const codes = b?.receipt?.reason_codes;
    return {
      decisions: [decision],
      reasons: [Array.isArray(codes) ? stringOrUndefined(codes[0]) : undefined],
    };
  });
}

function unknownDecision(decision: unknown): string {
  return decision === undefined
    ? "no decision"
    : `the decision ${
      JSON.stringify(decision)?.slice(0, 80)
    } (expected ADMIT, DUPLICATE or QUARANTINE)`;
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** A batch request's body. */
function batchBody(envelopes: ReadonlyArray<string>): string {
  return `{"events":[${envelopes.join(",")}]}`;
}

/** The UTF-8 length of `text`, without encoding it when its length alone decides. */
function byteLength(text: string, limit: number): number {
  if (text.length > limit || text.length * 3 <= limit) return text.length;
  return new TextEncoder().encode(text).length;
}

/** `GET /v1/ops/health`: true when the IG answers 200. */
export function igHealthy(endpoint: IgEndpoint): Effect.Effect<boolean> {
  // Interruptible, and no timer left behind once answered (as with every IG request here).
  return Effect.promise(async (signal) => {
    const deadline = timeoutSignal(signal, endpoint.timeoutMs);
    try {
      const res = await fetch(new URL("/v1/ops/health", endpoint.baseUrl), {
        signal: deadline.signal,
        // A redirect is not a healthy gate, and is never followed (see `request`).
        redirect: "manual",
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

/** The gate's batch route. */
export const BATCH_ROUTE = "/v1/ingest/batch";
/** The platform gate's one-envelope route. */
export const PUSH_ROUTE = "/v1/ingest/push";

/** How envelopes go on the wire: see the module comment. */
export type CourierMode = "batch" | "push" | "auto";

/** Where the gate is, how to talk to it and how to retry. */
export interface IgClientOptions extends RetryPolicy {
  readonly endpoint: IgEndpoint;
  readonly mode: CourierMode;
  /** Pushes in flight at once when sending one envelope per request. */
  readonly pushConcurrency: number;
  /**
   * The largest request body the gate takes (default {@link MAX_BODY_BYTES_DEFAULT}): a larger
   * envelope is refused before anything is sent, and batches are cut to fit.
   */
  readonly maxBodyBytes?: number;
}

/** What the gate decided for envelopes it took, one decision (and reason) each, in order. */
export interface Decided {
  readonly decisions: ReadonlyArray<string>;
  readonly reasons: ReadonlyArray<string | undefined>;
  /** Requests made for these envelopes, retries included. */
  readonly requests: number;
}

/** The gate did not take a request: a rejection (4xx), or no success within the attempts. */
export class IgSendFailed extends Data.TaggedError("IgSendFailed")<{
  readonly reason:
    | "IG_PUSH_REJECTED"
    | "IG_PUSH_RETRY_EXHAUSTED"
    | "IG_ANSWER_UNEXPECTED"
    | "ENVELOPE_TOO_LARGE";
  /** One line: what the gate answered, on which route, and what to change when it is known. */
  readonly message: string;
  /** The last answer. */
  readonly answer: IgAnswer;
  /** Requests made for the failed envelopes, retries included. */
  readonly requests: number;
  /** Index of the first envelope of the failed request. */
  readonly index: number;
}> {}

/** Called before every request (first attempt 1). */
export type OnRequest = (attempt: number) => Effect.Effect<void>;

/** Called after every request with its duration in seconds and its HTTP status (0: no answer). */
export type OnAnswer = (seconds: number, status: number) => void;

/** What a caller hears of each request. */
interface RequestHooks {
  readonly onRequest?: OnRequest | undefined;
  readonly onAnswer?: OnAnswer | undefined;
}

/** The gate as worldstream's callers see it. */
export class IgClient extends Context.Service<IgClient, {
  readonly endpoint: IgEndpoint;
  /**
   * Sends the envelopes in order, as the mode says; succeeds with every decision, or fails with
   * the first request the gate did not take (nothing after it is sent).
   */
  readonly send: (
    envelopes: ReadonlyArray<string>,
    onRequest?: OnRequest,
    onAnswer?: OnAnswer,
  ) => Effect.Effect<Decided, IgSendFailed>;
  /**
   * Sends the envelopes and says what came of each, in order: envelopes that share a request
   * share its fate, and one envelope's failure does not stop the others.
   */
  readonly sendEach: (
    envelopes: ReadonlyArray<string>,
  ) => Effect.Effect<ReadonlyArray<Decided | IgSendFailed>>;
}>()("worldstream/stores/IgClient") {
  /** A client of the gate `options` names. */
  static readonly layer = (options: IgClientOptions) =>
    Layer.effect(IgClient, makeIgClient(options));
}

/** Builds a client; the batch route's absence, once seen, is kept for the client's life. */
export const makeIgClient = Effect.fn("makeIgClient")(function* (options: IgClientOptions) {
  const batches = yield* Ref.make(options.mode !== "push");
  const schedule = retrySchedule(options).pipe(
    Schedule.tap(({ input, attempt, output }) =>
      Effect.logWarning("IG push failed; retrying").pipe(Effect.annotateLogs({
        status: input.status,
        attempt,
        delay_ms: Math.round(Duration.toMillis(output)),
      }))
    ),
  );

  /** One request, retried by the policy until the gate decides, rejects or attempts run out. */
  const retried = (
    path: string,
    post: Effect.Effect<IgAnswer>,
    index: number,
    hooks: RequestHooks | undefined,
  ): Effect.Effect<Decided, IgSendFailed> => {
    let requests = 0;
    const onRequest = hooks?.onRequest;
    const onAnswer = hooks?.onAnswer;
    const timed = onAnswer === undefined ? post : Effect.gen(function* () {
      const start = yield* Clock.currentTimeNanos;
      const answer = yield* post;
      onAnswer(Number((yield* Clock.currentTimeNanos) - start) / 1e9, answer.status);
      return answer;
    });
    const once = Effect.suspend(() => {
      requests++;
      return onRequest === undefined ? timed : Effect.andThen(onRequest(requests), timed);
    }).pipe(
      Effect.flatMap((answer) =>
        answer.status === 200 && answer.decisions !== undefined
          ? Effect.succeed(answer)
          : Effect.fail(answer)
      ),
    );
    return once.pipe(
      Effect.retry(schedule),
      Effect.map((answer): Decided => ({
        decisions: answer.decisions!,
        reasons: answer.reasons ?? answer.decisions!.map(() => undefined),
        requests,
      })),
      Effect.mapError((answer) => failed(options.endpoint, path, answer, requests, index)),
    );
  };

  const maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES_DEFAULT;

  /** Sends a batch as requests whose bodies fit the gate's limit, one after another, in order. */
  const batch = (envelopes: ReadonlyArray<string>, hooks?: RequestHooks) =>
    Effect.gen(function* () {
      const decisions: Array<string> = [];
      const reasons: Array<string | undefined> = [];
      let requests = 0;
      for (const [from, to] of bodyCuts(envelopes, maxBody)) {
        const part = from === 0 && to === envelopes.length ? envelopes : envelopes.slice(from, to);
        const d = yield* retried(BATCH_ROUTE, postBatch(options.endpoint, part), from, hooks)
          .pipe(
            Effect.mapError((e) =>
              from === 0 ? e : new IgSendFailed({ ...e, requests: requests + e.requests })
            ),
          );
        decisions.push(...d.decisions);
        reasons.push(...d.reasons);
        requests += d.requests;
      }
      return { decisions, reasons, requests } satisfies Decided;
    });
  const push = (envelope: string, index: number, hooks?: RequestHooks) =>
    retried(PUSH_ROUTE, pushOne(options.endpoint, envelope), index, hooks);

  /**
   * Sends a batch while the gate is known to take them; undefined when it is not (push mode, or
   * auto mode once the batch route answered 404/405, which this call may be the one to find).
   */
  const maybeBatch = (envelopes: ReadonlyArray<string>, hooks?: RequestHooks) =>
    Effect.gen(function* () {
      if (!(yield* Ref.get(batches))) return undefined;
      return yield* batch(envelopes, hooks).pipe(
        Effect.catchIf(
          (e) => options.mode === "auto" && isRouteMissing(e.answer.status),
          (e) => switchToPush(e).pipe(Effect.as(undefined)),
        ),
      );
    });

  const switchToPush = (e: IgSendFailed) =>
    Effect.gen(function* () {
      // Lanes may find out at the same moment; only the first says so.
      if (!(yield* Ref.getAndSet(batches, false))) return;
      yield* Effect.logWarning(
        "IG has no batch route; sending one envelope per request from now on",
      ).pipe(Effect.annotateLogs({
        ig_url: options.endpoint.baseUrl,
        status: e.answer.status,
        route: PUSH_ROUTE,
      }));
    });

  const concurrency = { concurrency: options.pushConcurrency };
  return IgClient.of({
    endpoint: options.endpoint,
    send: (envelopes, onRequest, onAnswer) =>
      Effect.gen(function* () {
        const tooLarge = oversized(options.endpoint, envelopes, maxBody);
        if (tooLarge !== undefined) return yield* tooLarge;
        const hooks = onRequest || onAnswer ? { onRequest, onAnswer } : undefined;
        const viaBatch = yield* maybeBatch(envelopes, hooks);
        if (viaBatch !== undefined) return viaBatch;
        const each = yield* Effect.forEach(
          envelopes,
          (envelope, i) => push(envelope, i, hooks),
          concurrency,
        );
        return {
          decisions: each.flatMap((d) => d.decisions),
          reasons: each.flatMap((d) => d.reasons),
          requests: each.reduce((n, d) => n + d.requests, 0),
        } satisfies Decided;
      }),
    sendEach: (envelopes) =>
      Effect.gen(function* () {
        // Envelopes too large to send are answered apart; the others go as usual.
        const refused = envelopes.map((e, i) => oversized(options.endpoint, [e], maxBody, i));
        if (refused.some((r) => r !== undefined)) {
          const fit = envelopes.filter((_, i) => refused[i] === undefined);
          const sent = fit.length === 0 ? [] : yield* sendEachFitting(fit);
          let next = 0;
          return refused.map((r) => r ?? sent[next++]);
        }
        return yield* sendEachFitting(envelopes);
      }),
  });

  function sendEachFitting(envelopes: ReadonlyArray<string>) {
    return Effect.gen(function* () {
      const viaBatch = yield* Effect.result(maybeBatch(envelopes));
      if (viaBatch._tag === "Failure") return envelopes.map(() => viaBatch.failure);
      if (viaBatch.success !== undefined) {
        const d = viaBatch.success;
        return d.decisions.map((decision, i): Decided => ({
          decisions: [decision],
          reasons: [d.reasons[i]],
          requests: d.requests,
        }));
      }
      return yield* Effect.forEach(
        envelopes,
        (envelope, i) => push(envelope, i).pipe(Effect.catch((e) => Effect.succeed(e))),
        concurrency,
      );
    });
  }
});

/**
 * Where a batch is cut so that each request body stays within `maxBody` bytes: `[from, to)`
 * ranges in order. Every envelope fits on its own (checked before).
 */
function bodyCuts(envelopes: ReadonlyArray<string>, maxBody: number): Array<[number, number]> {
  const overhead = batchBody([]).length;
  const cuts: Array<[number, number]> = [];
  let from = 0;
  let size = overhead;
  for (let i = 0; i < envelopes.length; i++) {
    const bytes = byteLength(envelopes[i], maxBody) + (i > from ? 1 : 0);
    if (i > from && size + bytes > maxBody) {
      cuts.push([from, i]);
      from = i;
      size = overhead + bytes - 1;
    } else size += bytes;
  }
  if (envelopes.length > 0) cuts.push([from, envelopes.length]);
  return cuts;
}

/** The refusal of the first envelope larger than the gate takes, if any: nothing is sent. */
function oversized(
  endpoint: IgEndpoint,
  envelopes: ReadonlyArray<string>,
  maxBody: number,
  offset = 0,
): IgSendFailed | undefined {
  for (let i = 0; i < envelopes.length; i++) {
    const bytes = byteLength(envelopes[i], maxBody);
    if (bytes <= maxBody) continue;
    return new IgSendFailed({
      reason: "ENVELOPE_TOO_LARGE",
      message: `An envelope of ${bytes} bytes is larger than the ${maxBody} bytes the gate at ` +
        `${endpoint.baseUrl} takes (wiring.wsp_courier.max_body_bytes); nothing was sent`,
      answer: { status: 0, error: "not sent: too large" },
      requests: 0,
      index: offset + i,
    });
  }
  return undefined;
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

/** A gate without a batch route answers it 404 (Flask) or 405. */
function isRouteMissing(status: number): boolean {
  return status === 404 || status === 405;
}

function failed(
  endpoint: IgEndpoint,
  path: string,
  answer: IgAnswer,
  requests: number,
  index: number,
): IgSendFailed {
  const said = `IG answered ${answer.status || "no response"} on ${path}`;
  if (answer.unexpected !== undefined) {
    return new IgSendFailed({
      reason: "IG_ANSWER_UNEXPECTED",
      message: `${said} with ${answer.unexpected}; nothing of it is acknowledged`,
      answer,
      requests,
      index,
    });
  }
  const retryable = isRetryable(answer.status);
  const reason = retryable ? "IG_PUSH_RETRY_EXHAUSTED" : "IG_PUSH_REJECTED";
  const message = isRedirect(answer.status)
    ? `${said}: a redirect to ${answer.location ?? "no Location"}, which worldstream never ` +
      `follows (the API key goes to the gate named by the URL only); point the IG URL at the ` +
      `gate itself`
    : path === BATCH_ROUTE && isRouteMissing(answer.status)
    ? `${said}: the gate at ${endpoint.baseUrl} has no batch route; set WSP_COURIER_MODE=push ` +
      `(one envelope per request) or auto (switches by itself)`
    : `${said}${answer.error ? ` (${oneLine(answer.error)})` : ""}${
      retryable ? ` after ${requests} attempts` : ""
    }`;
  return new IgSendFailed({ reason, message, answer, requests, index });
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function request(
  endpoint: IgEndpoint,
  path: string,
  body: string,
  /** The decisions of a 200's body, or what was wrong with it. */
  parse: (json: unknown) => Pick<IgAnswer, "decisions" | "reasons"> | string,
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
          // Never followed: a 3xx is answered as a rejection naming where it pointed, so
          // neither the envelopes nor the API key reach a host the URL did not name.
          redirect: "manual",
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
      if (isRedirect(res.status)) {
        const location = res.headers.get("location");
        return { ...base, error: text.slice(0, 200), ...(location ? { location } : {}) };
      }
      if (res.status !== 200) return { ...base, error: text.slice(0, 200) };
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        return { ...base, unexpected: `a body that is not JSON: ${oneLine(text).slice(0, 120)}` };
      }
      const parsed = parse(json);
      return typeof parsed === "string" ? { ...base, unexpected: parsed } : { ...base, ...parsed };
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

/**
 * Fault injection for the reference gate, off unless asked for: a share of ingest requests fails
 * with 503/429 before the gate sees them, every ingest response can be delayed, and a share of
 * requests has its connection dropped after the gate decided (the answer is lost, the admission
 * is not: a retry must come back DUPLICATE). Draws come from a seeded generator, so one seed and
 * one request order give the same faults. A `script` answers the first ingest requests with given
 * statuses, in order, for tests that need an exact sequence (503, 503, then the gate).
 */
import { Effect, Random } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** What to inject. Rates are shares of ingest requests in [0, 1]. */
export interface FaultOptions {
  /** Share answered with `failStatus` before reaching the gate. */
  readonly failRate?: number;
  /** 503 (default) or 429; a 429 carries `Retry-After: 1`. */
  readonly failStatus?: number;
  /** Delay before each ingest request is handled, in milliseconds. */
  readonly latencyMs?: number;
  /** Share whose connection is dropped without an HTTP response. */
  readonly resetRate?: number;
  /** Seed of the draws (default: unseeded). */
  readonly seed?: string | number;
  /** Answers to the first ingest requests, in order, before any drawn fault. */
  readonly script?: ReadonlyArray<ScriptedFault>;
}

/** One scripted answer: an HTTP error status, with a `Retry-After` header when given. */
export interface ScriptedFault {
  readonly status: number;
  readonly retryAfter?: string;
}

/** The fault of one request. */
export type Fault =
  | { readonly kind: "none" }
  | { readonly kind: "fail"; readonly status: number; readonly retryAfter?: string }
  | { readonly kind: "reset" };

/** A configured injector. */
export interface Faults {
  /** Whether any request can be dropped (a server must be able to drop connections). */
  readonly resets: boolean;
  readonly latencyMs: number;
  /** Draws the fault of the next request (one draw per request). */
  readonly next: () => Fault;
}

/** Header that marks a response whose connection must be dropped instead of answered. */
export const RESET_HEADER = "x-ig-fault";

const NONE: Fault = { kind: "none" };

/** Checks the options and makes an injector, or undefined when nothing is to be injected. */
export const makeFaults = (
  options: FaultOptions,
): Effect.Effect<Faults | undefined, WorldstreamError> =>
  Effect.gen(function* () {
    const failRate = options.failRate ?? 0;
    const resetRate = options.resetRate ?? 0;
    const latencyMs = options.latencyMs ?? 0;
    const failStatus = options.failStatus ?? 503;
    for (const [name, rate] of [["fail-rate", failRate], ["reset-rate", resetRate]] as const) {
      if (!(rate >= 0 && rate <= 1)) {
        return yield* fail("BAD_ARGS", `--${name} must be between 0 and 1, got ${rate}`);
      }
    }
    if (failRate + resetRate > 1) {
      return yield* fail("BAD_ARGS", "--fail-rate and --reset-rate add up to more than 1");
    }
    if (failStatus !== 503 && failStatus !== 429) {
      return yield* fail("BAD_ARGS", `--fail-status must be 503 or 429, got ${failStatus}`);
    }
    if (!(latencyMs >= 0 && Number.isFinite(latencyMs))) {
      return yield* fail("BAD_ARGS", `--latency-ms must be a number >= 0, got ${latencyMs}`);
    }
    const script = [...(options.script ?? [])];
    for (const { status } of script) {
      if (!(Number.isInteger(status) && status >= 400 && status <= 599)) {
        return yield* fail("BAD_ARGS", `A scripted fault status must be 400 to 599, got ${status}`);
      }
    }
    if (failRate === 0 && resetRate === 0 && latencyMs === 0 && script.length === 0) {
      return undefined;
    }
    // withSeed gives the effect a fresh seeded generator; keeping it keeps the sequence going.
    const random = options.seed === undefined
      ? yield* Random.Random
      : yield* Effect.service(Random.Random).pipe(Random.withSeed(options.seed));
    const fault: Fault = { kind: "fail", status: failStatus };
    return {
      resets: resetRate > 0,
      latencyMs,
      next: () => {
        const scripted = script.shift();
        if (scripted !== undefined) return { kind: "fail", ...scripted };
        if (failRate === 0 && resetRate === 0) return NONE;
        const u = random.nextDoubleUnsafe();
        if (u < failRate) return fault;
        return u < failRate + resetRate ? { kind: "reset" } : NONE;
      },
    };
  });

/** The answer to a request failed on purpose; a drawn 429 asks for `Retry-After: 1`. */
export function failResponse(status: number, retryAfter?: string): Response {
  const body = status === 429
    ? { error: "RATE_LIMITED", detail: "Injected fault" }
    : status >= 500
    ? { error: "IG_UNAVAILABLE", detail: "Injected fault" }
    : { error: "INJECTED_FAULT", detail: "Injected fault" };
  const after = retryAfter ?? (status === 429 ? "1" : undefined);
  return Response.json(body, {
    status,
    headers: after === undefined ? {} : { "retry-after": after },
  });
}

/**
 * A response standing for a dropped connection: a server that can drop connections does so on
 * seeing RESET_HEADER; anyone else reading it gets a body that fails at once.
 */
export function resetResponse(): Response {
  const body = new ReadableStream<Uint8Array>({
    start: (controller) => controller.error(new Error("Injected connection reset")),
  });
  return new Response(body, { status: 200, headers: { [RESET_HEADER]: "reset" } });
}

/** Whether a response stands for a dropped connection. */
export function isReset(response: Response): boolean {
  return response.headers.get(RESET_HEADER) === "reset";
}

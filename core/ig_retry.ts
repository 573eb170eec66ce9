/**
 * The one retry policy for requests to an ingestion gate, as a `Schedule` value: every caller of
 * the gate (courier lanes, dead-letter retry) retries the same way. Exponential backoff from
 * `baseDelayMs` with full jitter — the n-th wait is a uniform draw below
 * min(`maxDelayMs`, base·2^(n−1)), drawn from Effect `Random` — except that a `Retry-After` the
 * gate sent is waited instead, cut to `retryAfterCapMs`. Only 408, 429, 5xx and no answer are
 * retried, and at most `maxAttempts` requests are made in all. The schedule's input is the answer
 * that failed, so the wait can read its status and Retry-After; its sleeps use Effect `Clock`,
 * so tests run it on `TestClock`.
 */
import { Duration, Effect, Random, Schedule } from "effect";

/** How a gate request is retried. */
export interface RetryPolicy {
  /** Requests in all, the first one included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  /** Ceiling of the exponential wait before jitter. */
  readonly maxDelayMs: number;
  /** Longest a gate's `Retry-After` is honoured for. */
  readonly retryAfterCapMs: number;
}

/** The platform's WSP retry settings. */
export const RETRY_DEFAULTS: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 5000,
  retryAfterCapMs: 5000,
};

/** What the policy reads from a failed answer. `status` 0 means no HTTP answer. */
export interface RetryInput {
  readonly status: number;
  readonly retryAfterMs?: number;
}

/** 408, 429, 5xx and no answer (timeout, reset, refused) are worth another attempt. */
export function isRetryable(status: number): boolean {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

/** The retry schedule of `policy`; it outputs each wait it chose. */
export function retrySchedule(
  policy: RetryPolicy,
): Schedule.Schedule<Duration.Duration, RetryInput> {
  return Schedule.exponential(Duration.millis(policy.baseDelayMs)).pipe(
    Schedule.setInputType<RetryInput>(),
    Schedule.while(({ input }) => isRetryable(input.status)),
    Schedule.modifyDelay(({ input, duration }) =>
      input.retryAfterMs !== undefined
        ? Effect.succeed(Math.min(input.retryAfterMs, policy.retryAfterCapMs))
        : Effect.map(
          Random.next,
          (u) => Math.floor(u * Math.min(policy.maxDelayMs, Duration.toMillis(duration))),
        )
    ),
    Schedule.upTo({ times: Math.max(0, policy.maxAttempts - 1) }),
    Schedule.map(({ duration }) => duration),
  );
}

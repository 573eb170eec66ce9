/**
 * The runtime's settings, derived once from the profile (and command-line overrides) and shared
 * by the actors as a service.
 */
import { Context, Effect, Layer } from "effect";
import type { Profile } from "../core/profile.ts";
import { joinRoot, resolveRoot } from "../core/store_root.ts";
import { IgClient, makeIgClient, MAX_BODY_BYTES_DEFAULT } from "../stores/ig_client.ts";
import { type BootstrapOptions, bootstrapOptions } from "./bootstrap.ts";
import { COURIER_DEFAULTS, type CourierOptions } from "./courier.ts";

/** Everything the actors read from configuration. */
export interface RunConfigShape {
  readonly profile: Profile;
  readonly courier: CourierOptions;
  /** How the runtime starts: edge or backend, and how long it waits for its dependencies. */
  readonly bootstrap: BootstrapOptions;
  /** Replaces the profile's stream_speedup for runs that do not ask for one (e.g. the demo). */
  readonly speedupOverride?: number;
  /** Idle gap compression for paced streams (wall seconds), when set. */
  readonly maxGapSeconds?: number;
  /** Where an engine run root's stream views live. */
  readonly streamViewRoot: (engineRunRoot: string) => string;
}

/** Command-line overrides of the profile. */
export interface RunOverrides {
  readonly igUrl?: string;
  readonly speedup?: number;
}

/** The runtime's configuration, provided once by the runtime from what the command derived. */
export class RunConfig extends Context.Service<RunConfig, RunConfigShape>()(
  "worldstream/actors/RunConfig",
) {}

/** The gate's client, from the configuration's courier options: one per runtime. */
export const igClientLayer = Layer.effect(
  IgClient,
  Effect.gen(function* () {
    return yield* makeIgClient((yield* RunConfig).courier);
  }),
);

/**
 * Builds the configuration from a profile and the command line's overrides (`igUrl`, e.g. an
 * in-process IG on a free port; `speedup`). A command calls this once and hands the result to
 * the runtime, bootstrap and actions.
 */
export function runConfigOf(
  profile: Profile,
  overrides: RunOverrides = {},
): RunConfigShape {
  const c = profile.wiring.wsp_courier;
  const retry = profile.wiring.wsp_retry;
  const viewRoot = profile.wiring.oracle_stream_view_root;
  return {
    profile,
    courier: {
      ...COURIER_DEFAULTS,
      endpoint: {
        baseUrl: overrides.igUrl ?? profile.wiring.ig_ingest_url,
        ...(profile.wiring.ig_auth?.token
          ? { authHeader: profile.wiring.ig_auth.header, authToken: profile.wiring.ig_auth.token }
          : {}),
        timeoutMs: c?.request_timeout_ms ?? 10_000,
      },
      mode: c?.mode ?? COURIER_DEFAULTS.mode,
      batchSize: c?.batch_size ?? COURIER_DEFAULTS.batchSize,
      pushConcurrency: c?.push_concurrency ?? COURIER_DEFAULTS.pushConcurrency,
      maxInFlight: c?.max_in_flight_per_output ?? COURIER_DEFAULTS.maxInFlight,
      retryAfterCapMs: c?.retry_after_cap_ms ?? COURIER_DEFAULTS.retryAfterCapMs,
      maxBodyBytes: c?.max_body_bytes ?? MAX_BODY_BYTES_DEFAULT,
      deadLetterPolicy: c?.dead_letter_policy ?? COURIER_DEFAULTS.deadLetterPolicy,
      maxDeadLetters: c?.max_dead_letters ?? COURIER_DEFAULTS.maxDeadLetters,
      maxAttempts: retry.max_attempts,
      baseDelayMs: retry.base_delay_ms,
      maxDelayMs: retry.max_delay_ms,
    },
    bootstrap: bootstrapOptions(profile),
    ...(overrides.speedup === undefined ? {} : { speedupOverride: overrides.speedup }),
    ...(profile.policy.stream_max_gap_seconds === undefined
      ? {}
      : { maxGapSeconds: profile.policy.stream_max_gap_seconds }),
    streamViewRoot: (root) =>
      viewRoot ? resolveRoot(viewRoot) : joinRoot(root, "stream_view", "ts_utc"),
  };
}

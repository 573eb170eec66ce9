/**
 * `worldstream ig`: the reference ingestion gate as a standalone server, until SIGINT/SIGTERM.
 *
 *   worldstream ig [--port 8081] [--host 127.0.0.1] [--db runs/ig-pglite | postgres://...]
 *     [--api-key K (or IG_API_KEY)] [--fail-rate F] [--fail-status 503|429] [--latency-ms M]
 *     [--reset-rate F] [--fault-seed N] [--no-batch]
 *
 * `--no-batch` leaves out the batch route (it answers 404, as the platform's own gate does), to
 * try a courier against a gate that takes one envelope per request.
 */
import { Config, Effect, Option, Redacted } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { redactDsn } from "../stores/postgres.ts";
import type { FaultOptions } from "../ig/faults.ts";
import { DEFAULT_IG_DB, startIg, type StartIgOptions } from "../ig/server.ts";
import { type Flags, intFlag, numberFlag, parseFlags } from "./args.ts";

export { type RunningIg, startIg, type StartIgOptions } from "../ig/server.ts";

/** The gate's default port. */
export const DEFAULT_IG_PORT = 8081;

const FLAGS = {
  port: "string",
  host: "string",
  db: "string",
  "api-key": "string",
  "fail-rate": "string",
  "fail-status": "string",
  "latency-ms": "string",
  "reset-rate": "string",
  "fault-seed": "string",
  "no-batch": "boolean",
} as const;

/** Parses the flags of `worldstream ig` into start options. */
export const parseIgArgs = (
  argv: ReadonlyArray<string>,
): Effect.Effect<StartIgOptions, WorldstreamError> =>
  Effect.gen(function* () {
    const flags = yield* parseFlags(argv, FLAGS);
    if (flags["api-key"] === "") {
      // An empty key is a mistake (an unset variable in a script), never a way to turn auth off.
      return yield* fail(
        "BAD_ARGS",
        "--api-key must not be empty: leave the flag out to serve without an API key",
      );
    }
    // Any text is a valid string setting: a failure here is the environment itself failing.
    const envKey = yield* Config.option(Config.Redacted("IG_API_KEY")).pipe(Effect.orDie);
    const apiKey = str(flags, "api-key") ??
      (Option.isSome(envKey) ? Redacted.value(envKey.value) || undefined : undefined);
    const faults: FaultOptions = {
      failRate: yield* numberFlag(flags, "fail-rate", { min: 0, max: 1 }),
      failStatus: yield* intFlag(flags, "fail-status", { min: 100, max: 599 }),
      latencyMs: yield* intFlag(flags, "latency-ms", { min: 0 }),
      resetRate: yield* numberFlag(flags, "reset-rate", { min: 0, max: 1 }),
      seed: yield* intFlag(flags, "fault-seed"),
    };
    const port = (yield* intFlag(flags, "port", { min: 0, max: 65535 })) ?? DEFAULT_IG_PORT;
    return {
      port,
      host: str(flags, "host") ?? "127.0.0.1",
      db: str(flags, "db") ?? DEFAULT_IG_DB,
      apiKey,
      faults,
      ...(flags["no-batch"] === true ? { batchRoute: false } : {}),
    };
  });

/**
 * Serves the gate until SIGINT or SIGTERM, then shuts it down (in-flight requests finish) and
 * returns the result line.
 */
export const igCommand = (
  argv: ReadonlyArray<string>,
): Effect.Effect<
  { readonly line: Record<string, unknown>; readonly ok: boolean },
  WorldstreamError
> =>
  Effect.gen(function* () {
    const options = yield* parseIgArgs(argv);
    const signal = yield* Effect.scoped(Effect.gen(function* () {
      const ig = yield* startIg(options);
      yield* Effect.logInfo("ig listening").pipe(Effect.annotateLogs({
        url: ig.url,
        db: redactDsn(options.db ?? DEFAULT_IG_DB),
        backend: ig.backend,
        engine: ig.engine,
        api_key: options.apiKey === undefined ? "off" : "on",
        batch_route: options.batchRoute === false ? "off" : "on",
        faults: faultSummary(options.faults ?? {}),
      }));
      const signal = yield* nextSignal;
      yield* Effect.logInfo("ig stopping").pipe(Effect.annotateLogs({ signal }));
      return { signal, url: ig.url };
    }));
    return { line: { status: "STOPPED", ...signal }, ok: true };
  });

/** Resolves with the first SIGINT or SIGTERM. */
const nextSignal: Effect.Effect<string> = Effect.callback<string>((resume) => {
  const signals = ["SIGINT", "SIGTERM"] as const;
  const listeners = signals.map((signal) => {
    const listener = () => {
      remove();
      resume(Effect.succeed(signal));
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  const remove = () => listeners.forEach(([s, l]) => Deno.removeSignalListener(s, l));
  return Effect.sync(remove);
});

function faultSummary(faults: FaultOptions): Record<string, number | string> | "off" {
  const entries = Object.entries(faults).filter(([, v]) => v !== undefined);
  return entries.length === 0 ? "off" : Object.fromEntries(entries);
}

function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * Durability off, for `bench:stream`'s durability target only. With
 * WORLDSTREAM_BENCH_DURABILITY=off the runtime's Journal keeps nothing: checkpoints, delivery,
 * run and dead-letter receipts and dead letters are dropped before the WAL (no writes, no
 * fsyncs), so a checkpoint flush stores nothing and a restart starts from the first row. The
 * bench streams the same world with it and without it to price the WAL, checkpoints and receipts.
 *
 * The variable is read here, from the process environment, and nowhere else: no profile field or
 * interpolation reaches it. Only the `local` profile honours it (any other fails
 * BENCH_DURABILITY_REFUSED), and a warning is logged whenever it is active.
 */
import { Clock, Effect, Layer, Schema } from "effect";
import type { Profile } from "../core/profile.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { Journal } from "./journal.ts";

/** The environment variable that switches durability off for the bench. */
export const BENCH_DURABILITY_ENV = "WORLDSTREAM_BENCH_DURABILITY";

const decodeSetting = decodeWith(
  Schema.Literals(["on", "off"]),
  "BAD_ENV",
  BENCH_DURABILITY_ENV,
);

/** A Journal that accepts every append and keeps nothing. */
export const JournalOff: Layer.Layer<Journal> = Layer.effect(
  Journal,
  Effect.gen(function* () {
    yield* Effect.logWarning(
      `DURABILITY OFF (${BENCH_DURABILITY_ENV}=off): no WAL, no checkpoints, no receipts; ` +
        "a crash loses all progress. For bench:stream only",
    );
    return Journal.of({
      append: () => Effect.succeed([]),
      now: Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms))),
    });
  }),
);

/** `durable`, unless the environment switches durability off for the bench (see above). */
export function journalOrBenchOff<E, R>(
  profile: Profile,
  durable: Layer.Layer<Journal, E, R>,
  env: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
): Layer.Layer<Journal, E | WorldstreamError, R> {
  const value = env[BENCH_DURABILITY_ENV];
  if (value === undefined || value === "") return durable;
  return Layer.unwrap(Effect.gen(function* () {
    if ((yield* decodeSetting(value)) === "on") return durable;
    if (profile.profile_id !== "local") {
      return yield* fail(
        "BENCH_DURABILITY_REFUSED",
        `${BENCH_DURABILITY_ENV}=off is for bench:stream on the local profile, not ${profile.profile_id}`,
      );
    }
    return JournalOff;
  }));
}

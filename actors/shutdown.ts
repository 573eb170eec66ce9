/**
 * The stop signal of the runtime: SIGINT/SIGTERM (or a test) requests a stop; streamers stop
 * reading at their next step, lanes deliver what they hold, checkpoints are flushed.
 */
import { Context, Deferred, Effect, Layer } from "effect";

/** A one-shot stop request shared by every actor. */
export class Shutdown extends Context.Service<Shutdown, {
  readonly stop: Deferred.Deferred<void>;
  readonly request: Effect.Effect<void>;
}>()("worldstream/actors/Shutdown") {
  static readonly layer = Layer.effect(
    Shutdown,
    Effect.gen(function* () {
      const stop = yield* Deferred.make<void>();
      return Shutdown.of({ stop, request: Deferred.succeed(stop, undefined).pipe(Effect.asVoid) });
    }),
  );

  /** Requests a stop on SIGINT/SIGTERM for as long as the scope is open. */
  static readonly onSignals = Layer.effectDiscard(
    Effect.gen(function* () {
      const { request } = yield* Shutdown;
      const run = Effect.runFork;
      const handler = () => void run(request);
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          Deno.addSignalListener("SIGINT", handler);
          Deno.addSignalListener("SIGTERM", handler);
        }),
        () =>
          Effect.sync(() => {
            Deno.removeSignalListener("SIGINT", handler);
            Deno.removeSignalListener("SIGTERM", handler);
          }),
      );
    }),
  );
}

/**
 * Supervision of the runtime's long-lived fibers (the supervisor loop, the control bus poller,
 * the WAL drain, the health poller, ...). Such a fiber loops forever; if a bug ends it, the
 * service it carries stops silently while the process looks alive (a `submit` then waits
 * forever). `supervised` restarts it after a capped exponential backoff and logs each restart
 * as one JSON line naming the actor and the defect. Interruption (the scope closing) is never
 * restarted: that is how a runtime stops.
 */
import { Cause, Effect, Option, Result, Schedule } from "effect";

/** How long an actor waits before each restart: 100 ms doubling, at most 30 s. */
export const RESTART_BACKOFF: Schedule.Schedule<unknown> = Schedule.min([
  Schedule.exponential("100 millis"),
  Schedule.spaced("30 seconds"),
]);

/** What `/v1/status` shows of one supervised actor. */
export interface ActorState {
  readonly actor: string;
  /** `running`, or `restarting` while it waits out its backoff after dying. */
  readonly state: "running" | "restarting";
  readonly restarts: number;
  readonly last_defect: string | null;
  /** When (epoch ms) it entered its state. */
  readonly since_ms: number;
}

const actorStates = new Map<string, ActorState>();

/**
 * The supervised actors alive in this process and their state (a process-wide registry: an actor
 * is listed from its start until its scope closes).
 */
export function actorStatesNow(): ReadonlyArray<ActorState> {
  return [...actorStates.values()];
}

/** An actor fiber ended by a defect or an unhandled failure (never by interruption). */
class ActorDied {
  readonly _tag = "ActorDied";
  constructor(readonly cause: Cause.Cause<unknown>) {}
}

/**
 * Runs `body` (an actor's loop) and restarts it whenever it dies of anything but interruption,
 * waiting per `backoff` (default {@link RESTART_BACKOFF}) and logging `actor_restart` with the
 * actor's name, the defect's first line and the restart count. A body that ends normally (its
 * queue ended) is not restarted.
 */
export function supervised<A, E, R>(
  actor: string,
  body: Effect.Effect<A, E, R>,
  options: { readonly backoff?: Schedule.Schedule<unknown> } = {},
): Effect.Effect<A, never, R> {
  let restarts = 0;
  const set = (state: ActorState["state"], lastDefect: string | null) =>
    actorStates.set(actor, {
      actor,
      state,
      restarts,
      last_defect: lastDefect,
      since_ms: Date.now(),
    });
  let lastDefect: string | null = null;
  const running = Effect.suspend(() => {
    set("running", lastDefect);
    return body;
  });
  return running.pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterrupts(cause)
        ? Effect.failCause(cause as Cause.Cause<never>)
        : Effect.fail(new ActorDied(cause))
    ),
    Effect.tapError((died) =>
      Effect.suspend(() => {
        lastDefect = describeCause(died.cause);
        restarts++;
        set("restarting", lastDefect);
        return Effect.logError("actor_restart").pipe(Effect.annotateLogs({
          actor,
          defect: lastDefect,
          restarts,
        }));
      })
    ),
    Effect.retry({ schedule: options.backoff ?? RESTART_BACKOFF }),
    // The schedule recurs forever: only interruption gets past it.
    Effect.catch(() => Effect.interrupt),
    Effect.ensuring(Effect.sync(() => void actorStates.delete(actor))),
  );
}

/** The first line of what ended an effect: the defect's message, else the error's. */
export function describeCause(cause: Cause.Cause<unknown>): string {
  const defect = Cause.findDefect(cause);
  const found = Result.isSuccess(defect)
    ? defect.success
    : Option.getOrUndefined(Cause.findErrorOption(cause));
  const text = found instanceof Error
    ? found.message
    : found !== null && typeof found === "object" && "message" in found
    ? String(found.message)
    : found === undefined
    ? Cause.pretty(cause)
    : String(found);
  return text.split("\n")[0];
}

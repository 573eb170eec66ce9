/**
 * What admin routes run on: the services of the running runtime (actors/runtime.ts), attached
 * once the runtime is built and detached when it stops. The API is served earlier than that
 * (`/healthz` and `/readyz` answer from the start), so a route that needs the runtime answers 503
 * ADMIN_STARTING until it is attached.
 */
import { Context, Effect, type Layer, type Scope } from "effect";
import type { runtimeLayer } from "../actors/runtime.ts";
import { Health } from "../actors/health.ts";

/** Every service the runtime provides: what a route handler may ask for. */
export type AdminServices = Layer.Success<ReturnType<typeof runtimeLayer>>;

/** Where the app finds the runtime's services while it runs. */
export class RuntimeSlot {
  private context: Context.Context<AdminServices> | undefined;
  private detached = new AbortController();

  constructor(private readonly health: Health["Service"]) {}

  /** The runtime's services, or `undefined` before start and after stop. */
  get current(): Context.Context<AdminServices> | undefined {
    return this.context;
  }

  /**
   * Aborted when the runtime attached now is detached: long-lived answers (the dashboard's
   * event stream) end on it, so the server's shutdown does not wait on them.
   */
  get closing(): AbortSignal {
    return this.detached.signal;
  }

  /**
   * What routes that do not need the runtime (health) run on before it is attached: only the
   * Health record. The type is the runtime's so one handler type fits every route; such routes
   * ask for nothing else.
   */
  get early(): Context.Context<AdminServices> {
    return (this.context ??
      Context.make(Health, this.health)) as Context.Context<AdminServices>;
  }

  /** Attaches the services of the runtime in scope until the scope closes. */
  attach(): Effect.Effect<void, never, AdminServices | Scope.Scope> {
    return Effect.acquireRelease(
      Effect.context<AdminServices>().pipe(
        Effect.map((context) => this.attachContext(context)),
      ),
      () => Effect.sync(() => this.detach()),
    );
  }

  /** Attaches `context` directly (tests that build the services themselves). */
  attachContext(context: Context.Context<AdminServices>): void {
    this.detached = new AbortController();
    this.context = context;
  }

  /** Detaches the runtime: its routes answer 503 again and {@link closing} is aborted. */
  detach(): void {
    this.context = undefined;
    this.detached.abort();
  }
}

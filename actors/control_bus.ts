/**
 * ControlBus listener: polls the file control bus for READY messages and turns each into a run.
 *
 * Every message ends in the READY ledger, never silently dropped: unreadable or invalid → FAILED
 * with its reason; another topic or platform run → SKIPPED_OUT_OF_SCOPE; already STREAMED →
 * SKIPPED_DUPLICATE; IG not reachable → DEFERRED_DOWNSTREAM_NOT_READY (not done: it is tried
 * again after a pause); otherwise the supervisor streams it and the ledger records STREAMED or
 * FAILED. A failed message is tried again after a restart. When the policy asks for an approval
 * of its `wsp.stream`, the plan step parks the READY (actors/plan.ts) and the ledger records
 * AWAITING_APPROVAL (not done, not failed): approving it submits the READY again through
 * {@link ReadyHandler.submit} with the approval, and it streams like any other.
 *
 * The ledger and audit log journal to the WAL, so none of this waits on Postgres. The one case
 * Postgres is needed for: the ledger has never been seeded from it and knows nothing of the
 * message, so whether it was already streamed is unknowable; such a READY is deferred too
 * (READY_LEDGER_UNAVAILABLE) rather than risk streaming a world twice.
 */
import { Cause, Clock, Context, Deferred, Effect, Exit, Layer, Schedule } from "effect";
import { interpretReady, type ReadyContext, ReadyRejection } from "../core/ready.ts";
import { describeCause, supervised } from "../core/supervise.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { StreamResult } from "../schemas/messages.ts";
import type { JsonObject } from "../schemas/common.ts";
import { AuditLog, READY_AUDIT_KINDS } from "./audit_log.ts";
import { poll } from "../stores/control_bus_fs.ts";
import { igHealthy } from "../stores/ig_client.ts";
import { ReadyLedger, type ReadyStatus } from "./ready_ledger.ts";
import { RunConfig } from "./run_config.ts";
import { Supervisor } from "./supervisor.ts";

/** How one message was settled (for `run --once` and tests). */
export interface ReadySettlement {
  readonly message_id: string;
  readonly status: ReadyStatus;
  readonly reason: string | null;
  readonly result?: StreamResult;
}

/** Options of the listener. */
export interface ControlBusOptions {
  readonly root: string;
  readonly topic: string;
  readonly context: ReadyContext;
  readonly pollIntervalMs?: number;
  /** Pause before a deferred message is looked at again. */
  readonly deferRetryMs?: number;
}

/** What handles control-bus messages, whatever bus they came on (see {@link makeReadyHandler}). */
export interface ReadyHandler {
  /**
   * Handles one message (its text, or why it could not be read) to its settlement, which is
   * recorded in the READY ledger; `messageId` names it until its envelope gives its own id. A
   * defect settles it FAILED INTERNAL_ERROR; a failure (the ledger or audit log could not be
   * written) leaves it unsettled.
   */
  readonly handle: (
    messageId: string,
    text: string | undefined,
    error: string | undefined,
  ) => Effect.Effect<ReadySettlement, WorldstreamError>;
  /**
   * Tells those waiting on a message (`settled`) how it was settled, unless it was deferred. A
   * listener calls it once the settlement is final for its bus (Kinesis: position saved).
   */
  readonly announce: (settlement: ReadySettlement) => Effect.Effect<void>;
  readonly settled: (messageId: string) => Effect.Effect<ReadySettlement>;
  /**
   * Hands one message from outside the bus (the admin API's `POST /v1/runs`) to the same path:
   * answers `accepted` as soon as its run is queued (the run goes on in the listener's scope and
   * is announced like a bus message's), or the settlement when it ends without a run (refused,
   * skipped, deferred). A message whose run is in flight fails RUN_IN_FLIGHT, recording nothing.
   */
  readonly submit: (
    messageId: string,
    text: string,
    approval?: ReadyApproval,
  ) => Effect.Effect<SubmitAnswer, WorldstreamError>;
}

/** The approval a parked READY is submitted again under (actions/approval_runners.ts). */
export interface ReadyApproval {
  readonly approval_id: string;
  readonly by: string;
}

/** What {@link ReadyHandler.submit} answers. */
export type SubmitAnswer =
  | { readonly _tag: "Accepted"; readonly message_id: string }
  | { readonly _tag: "Settled"; readonly settlement: ReadySettlement };

/**
 * The READY path shared by the file and Kinesis listeners: interpret, consult the ledger, check
 * the IG, stream through the supervisor, settle in the ledger (see the file comment).
 */
export const makeReadyHandler = (context: ReadyContext) =>
  Effect.gen(function* () {
    const ledger = yield* ReadyLedger;
    const audit = yield* AuditLog;
    const supervisor = yield* Supervisor;
    const config = yield* RunConfig;
    const scope = yield* Effect.scope;
    /** Messages whose run is in flight. */
    const running = new Set<string>();
    const waiters = new Map<string, Deferred.Deferred<ReadySettlement>>();
    const waiter = (id: string) => {
      let d = waiters.get(id);
      if (d === undefined) {
        d = Deferred.makeUnsafe<ReadySettlement>();
        waiters.set(id, d);
      }
      return d;
    };
    const settle = (s: ReadySettlement) =>
      Effect.gen(function* () {
        yield* ledger.record({
          message_id: s.message_id,
          status: s.status,
          ...(s.reason ? { reason: s.reason } : {}),
          ...(s.result?.platform_run_id ? { platform_run_id: s.result.platform_run_id } : {}),
          ...(s.result
            ? {
              detail: {
                emitted: s.result.emitted,
                output_ids: s.result.output_ids,
                ...(s.result.dead_lettered ? { dead_lettered: s.result.dead_lettered } : {}),
                // Which approval it waits for, and until when.
                ...(s.status === "AWAITING_APPROVAL" && s.result.message
                  ? { message: s.result.message }
                  : {}),
              },
            }
            : {}),
        });
        return s;
      });

    const handle = (
      messageId: string,
      text: string | undefined,
      error: string | undefined,
      hooks: {
        readonly exclusive?: boolean;
        readonly onAccepted?: (messageId: string) => Effect.Effect<void>;
        readonly approval?: ReadyApproval;
      } = {},
    ) =>
      Effect.gen(function* () {
        yield* audit.record(READY_AUDIT_KINDS.seen, { message_id: messageId });
        if (text === undefined) {
          return yield* settle({
            message_id: messageId,
            status: "FAILED",
            reason: "CONTROL_MESSAGE_UNREADABLE",
          })
            .pipe(
              Effect.tap(() =>
                audit.record(READY_AUDIT_KINDS.rejected, { message_id: messageId, error })
              ),
            );
        }
        const plan = yield* interpretReady(text, context).pipe(
          Effect.map((p) => ({ ok: true as const, plan: p })),
          Effect.catchIf(
            (e): e is ReadyRejection => e instanceof ReadyRejection,
            (r) => Effect.succeed({ ok: false as const, rejection: r }),
          ),
        );
        if (!plan.ok) {
          const r = plan.rejection;
          yield* audit.record(READY_AUDIT_KINDS.rejected, {
            message_id: messageId,
            reason: r.reason,
            message: r.message,
          });
          return yield* settle({
            message_id: r.message_id ?? messageId,
            status: r.status,
            reason: r.reason,
          });
        }
        const p = plan.plan;
        const defer = (reason: string) =>
          Effect.gen(function* () {
            yield* audit.record(READY_AUDIT_KINDS.deferred, {
              message_id: p.message_id,
              reason,
            });
            return yield* settle({
              message_id: p.message_id,
              status: "DEFERRED_DOWNSTREAM_NOT_READY",
              reason,
            });
          });
        const streamed = yield* ledger.isStreamed(p.message_id).pipe(
          Effect.catchIf(
            (e) => e.reason === "READY_LEDGER_UNAVAILABLE",
            () => Effect.succeed(undefined),
          ),
        );
        if (streamed === undefined) return yield* defer("READY_LEDGER_UNAVAILABLE");
        if (streamed) {
          yield* audit.record(READY_AUDIT_KINDS.duplicate, { message_id: p.message_id });
          return yield* settle({
            message_id: p.message_id,
            status: "SKIPPED_DUPLICATE",
            reason: null,
          });
        }
        if (hooks.exclusive && running.has(p.message_id)) {
          return yield* fail(
            "RUN_IN_FLIGHT",
            `The READY ${p.message_id} is being streamed now; wait for its run to end`,
          );
        }
        if (!(yield* igHealthy(config.courier.endpoint))) return yield* defer("IG_UNREACHABLE");
        yield* audit.record(READY_AUDIT_KINDS.accepted, { message_id: p.message_id });
        running.add(p.message_id);
        yield* Effect.addFinalizer(() => Effect.sync(() => void running.delete(p.message_id)));
        if (hooks.onAccepted) yield* hooks.onAccepted(p.message_id);
        yield* audit.record("RUN_STARTED", {
          message_id: p.message_id,
          platform_run_id: p.platform_run_id,
        });
        const result = yield* supervisor.submit({
          _tag: "RunRequested",
          source: "ready",
          engine_run_root: p.engine_run_root,
          scenario_id: p.scenario_id,
          platform_run_id: p.platform_run_id,
          scenario_run_id: p.scenario_run_id,
          message_id: p.message_id,
          pins: p.pins,
          principal: `agent:${p.sender}`,
          ready: JSON.parse(text) as JsonObject,
          ...(hooks.approval === undefined ? {} : { approval: hooks.approval }),
        });
        yield* audit.record("RUN_ENDED", {
          message_id: p.message_id,
          status: result.status,
          emitted: result.emitted,
          reason: result.reason,
        });
        return yield* settle({
          message_id: p.message_id,
          // A cancelled run is a failed attempt for the ledger: the READY may be tried again. A
          // READY parked for an approval waits for it (nothing was sent).
          status: result.status === "CANCELLED"
            ? "FAILED"
            : result.status === "FAILED" && result.reason === "APPROVAL_PENDING"
            ? "AWAITING_APPROVAL"
            : result.status,
          reason: result.reason,
          result,
        });
      }).pipe(Effect.scoped);

    // A bug while handling one message settles that message FAILED INTERNAL_ERROR (so
    // nobody waits on it forever) and the listener goes on to the next one.
    const settleDefect = (messageId: string, defect: unknown) =>
      Effect.gen(function* () {
        const message = describeCause(Cause.die(defect));
        yield* Effect.logError("ready_defect").pipe(
          Effect.annotateLogs({ message_id: messageId, defect: message }),
        );
        return yield* settle({
          message_id: messageId,
          status: "FAILED",
          reason: "INTERNAL_ERROR",
        });
      }).pipe(
        Effect.catchCause((cause) =>
          Effect.logError("READY could not be settled").pipe(
            Effect.annotateLogs({ message_id: messageId, error: describeCause(cause) }),
            Effect.as(
              {
                message_id: messageId,
                status: "FAILED",
                reason: "INTERNAL_ERROR",
              } satisfies ReadySettlement,
            ),
          )
        ),
      );

    // A READY awaiting approval is announced (nobody waits forever); a later settlement of it
    // (its approved run) replaces that one, so `settled` answers the latest.
    const awaiting = new Set<string>();
    const announce = (s: ReadySettlement) =>
      s.status === "DEFERRED_DOWNSTREAM_NOT_READY" ? Effect.void : Effect.suspend(() => {
        if (awaiting.delete(s.message_id)) waiters.delete(s.message_id);
        if (s.status === "AWAITING_APPROVAL") awaiting.add(s.message_id);
        return Deferred.succeed(waiter(s.message_id), s).pipe(Effect.asVoid);
      });

    const submit = (messageId: string, text: string, approval?: ReadyApproval) =>
      Effect.gen(function* () {
        const accepted = yield* Deferred.make<SubmitAnswer>();
        const done = yield* Deferred.make<SubmitAnswer, WorldstreamError>();
        yield* handle(messageId, text, undefined, {
          exclusive: true,
          ...(approval === undefined ? {} : { approval }),
          onAccepted: (id) =>
            Deferred.succeed(accepted, { _tag: "Accepted", message_id: id }).pipe(Effect.asVoid),
        }).pipe(
          Effect.catchDefect((defect) => settleDefect(messageId, defect)),
          Effect.tap(announce),
          Effect.exit,
          Effect.flatMap((exit) =>
            Deferred.done(
              done,
              Exit.map(exit, (settlement): SubmitAnswer => ({ _tag: "Settled", settlement })),
            )
          ),
          // The run outlives the request that asked for it: it belongs to the listener's scope.
          Effect.forkIn(scope),
        );
        return yield* Effect.raceFirst(Deferred.await(accepted), Deferred.await(done));
      });

    return {
      handle: (messageId, text, error) =>
        handle(messageId, text, error).pipe(
          Effect.catchDefect((defect) => settleDefect(messageId, defect)),
        ),
      announce,
      settled: (id) => Deferred.await(waiter(id)),
      submit,
    } satisfies ReadyHandler;
  });

/** The control bus listener. */
export class ControlBus extends Context.Service<ControlBus, {
  /** Reads the bus once and handles every new message; returns how many were handled. */
  readonly pollOnce: Effect.Effect<number, WorldstreamError>;
  /** Waits until a message is settled (any status but DEFERRED). */
  readonly settled: (messageId: string) => Effect.Effect<ReadySettlement>;
  /** Hands a READY from outside the bus to the same path (see {@link ReadyHandler.submit}). */
  readonly submit: ReadyHandler["submit"];
}>()("worldstream/actors/ControlBus") {
  /** A listener polling the file bus every `pollIntervalMs` (default 500 ms) while its scope is open. */
  static readonly layer = (options: ControlBusOptions) =>
    Layer.effect(
      ControlBus,
      Effect.gen(function* () {
        const ready = yield* makeReadyHandler(options.context);
        const seen = new Set<string>();
        const deferredUntil = new Map<string, number>();

        const pollOnce = Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis;
          const skip = new Set(seen);
          for (const [id, until] of deferredUntil) if (until > now) skip.add(id);
          const messages = yield* poll(options.root, options.topic, skip);
          for (const m of messages) {
            seen.add(m.message_id);
            deferredUntil.delete(m.message_id);
            const settlement = yield* ready.handle(
              m.message_id,
              "text" in m ? m.text : undefined,
              "error" in m ? m.error : undefined,
            );
            yield* ready.announce(settlement);
            if (settlement.status === "DEFERRED_DOWNSTREAM_NOT_READY") {
              // Looked at again after a pause.
              deferredUntil.set(
                m.message_id,
                (yield* Clock.currentTimeMillis) + (options.deferRetryMs ?? 5000),
              );
              seen.delete(m.message_id);
            }
          }
          return messages.length;
        });

        yield* Effect.forkScoped(supervised(
          "control_bus",
          pollOnce.pipe(
            Effect.catch((e) => Effect.logError("control bus poll failed", e.message)),
            Effect.repeat(Schedule.spaced(`${options.pollIntervalMs ?? 500} millis`)),
          ),
        ));
        return ControlBus.of({
          pollOnce,
          settled: ready.settled,
          submit: ready.submit,
        });
      }),
    );
}

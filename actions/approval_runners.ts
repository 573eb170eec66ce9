/**
 * What runs an approved action: a small registry from capability id to its runner. A runner
 * decodes the request parked with the approval, checks that what it acts on still exists
 * (APPROVAL_ACTION_GONE otherwise, nothing run) and runs the action's governed entry (the one the
 * API and the CLI call) as the approver; actions/approvals.ts runs it under the approval's grant,
 * so the door lets it through without asking the policy again (the approval is the grant).
 *
 * Parkable: `checkpoint.reset`, `deadletter.retry`, `deadletter.purge`, `wsp.replay`,
 * `run.pause`, `run.resume`, `run.cancel`, and `wsp.stream` for a READY (its plan step parks it,
 * actors/plan.ts; its runner submits the READY again to the READY path, actors/control_bus.ts,
 * with the approval, so it gets the bus's checks and ledger and streams). A runner that acts on the running runtime (a replay is
 * a run of its Supervisor, pause/resume/cancel steer a run in flight) says `runtime: true`: only
 * the admin API, which runs inside the runtime, can run it; the `approvals` command (runtime
 * stopped) answers APPROVAL_NEEDS_RUNTIME and leaves it pending. Add one entry to
 * {@link APPROVAL_RUNNERS} to make another action approvable.
 */
import { Effect, Option, Schema } from "effect";
import { ControlBus } from "../actors/control_bus.ts";
import { ApprovalGrant } from "../actors/governance.ts";
import { ReadyLedger } from "../actors/ready_ledger.ts";
import { ControlBusEnvelope } from "../schemas/control_bus.ts";
import type { Checkpointer } from "../actors/checkpointer.ts";
import type { Journal } from "../actors/journal.ts";
import { RunConfig } from "../actors/run_config.ts";
import { Supervisor } from "../actors/supervisor.ts";
import type { WalDrain } from "../actors/wal/drain.ts";
import { replayBounds } from "../actors/plan.ts";
import type { JsonObject } from "../schemas/common.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { DeadLetters } from "../stores/dead_letters.ts";
import type { DuckDb } from "../stores/duckdb.ts";
import type { IgClient } from "../stores/ig_client.ts";
import type { OracleStore } from "../stores/oracle.ts";
import type { Postgres } from "../stores/postgres.ts";
import {
  checkpointExists,
  CheckpointResetRequest,
  governedCheckpointReset,
} from "./checkpoint_reset.ts";
import { governedPurge, type PurgeSelection } from "./dead_letter_purge.ts";
import { governedRetry, type RetrySelection, retryTargetAllowed } from "./dead_letter_retry.ts";
import { type Asker, isParked } from "./governed.ts";
import { governedReplay, ReplayRequest } from "./replay.ts";
import { governedRunControl, RunControlRequest } from "./run_control.ts";

/**
 * The services runners may use: the streaming core's (what the admin API runs on, and what the
 * `approvals` command opens with the runtime stopped) and the dead letter store.
 */
export type RunnerServices =
  | Journal
  | WalDrain
  | DeadLetters
  | Postgres
  | RunConfig
  | Supervisor
  | Checkpointer
  | DuckDb
  | OracleStore
  | IgClient;

/** Runs one kind of approved action. */
export interface ApprovalRunner {
  /** True when it acts on the running runtime (only the admin API can run it). */
  readonly runtime: boolean;
  /** Fails APPROVAL_ACTION_GONE when what the request names no longer exists (or is done). */
  readonly check: (request: JsonObject) => Effect.Effect<void, WorldstreamError, RunnerServices>;
  /** Runs it as `actor`; answers what it did. */
  readonly run: (
    request: JsonObject,
    actor: string,
  ) => Effect.Effect<JsonObject, WorldstreamError, RunnerServices>;
}

const gone = (message: string) => Effect.fail(fail("APPROVAL_ACTION_GONE", message));

/** Who runs an approved action: the approver, under the profile the runtime (or command) runs. */
const approver = (actor: string) =>
  Effect.gen(function* () {
    const { profile } = yield* RunConfig;
    return { profile, principal: actor, source: "approval" } satisfies Asker as Asker;
  });

/** The action's answer as what the approval's outcome records (never parked: it is granted). */
function outcomeOf(answer: unknown, capability: string) {
  if (isParked(answer)) {
    return Effect.fail(fail(
      "INTERNAL_ERROR",
      `The approved ${capability} was parked again instead of run`,
    ));
  }
  return Effect.succeed(JSON.parse(JSON.stringify(answer)) as JsonObject);
}

const Ids = Schema.Array(Schema.String.check(Schema.isMinLength(1)));
const Filter = Schema.Struct({
  runKey: Schema.optionalKey(Schema.String),
  platformRunId: Schema.optionalKey(Schema.String),
  outputId: Schema.optionalKey(Schema.String),
});

/** The request a parked `deadletter.purge` carries (actions/dead_letter_purge.ts's selection). */
export const PurgeApprovalRequest = Schema.Union([
  Schema.Struct({ ids: Ids }),
  Schema.Struct({ all: Filter, limit: Schema.optionalKey(Schema.Int) }),
]);
const decodePurge = decodeWith(
  PurgeApprovalRequest,
  "APPROVAL_ACTION_GONE",
  "parked purge request",
);

/** The request a parked `deadletter.retry` carries (actions/dead_letter_retry.ts's selection). */
export const RetryApprovalRequest = Schema.Union([
  Schema.Struct({ id: Schema.String.check(Schema.isMinLength(1)) }),
  Schema.Struct({ all: Filter, limit: Schema.optionalKey(Schema.Int) }),
]);
const decodeRetry = decodeWith(
  RetryApprovalRequest,
  "APPROVAL_ACTION_GONE",
  "parked retry request",
);
const decodeReset = decodeWith(
  CheckpointResetRequest,
  "APPROVAL_ACTION_GONE",
  "parked checkpoint reset request",
);
const decodeReplay = decodeWith(ReplayRequest, "APPROVAL_ACTION_GONE", "parked replay request");
const decodeControl = decodeWith(
  RunControlRequest,
  "APPROVAL_ACTION_GONE",
  "parked run control request",
);

/** Fails APPROVAL_ACTION_GONE unless every dead letter of `ids` is still open. */
const openLetters = (ids: ReadonlyArray<string>, what: string) =>
  Effect.gen(function* () {
    const store = yield* DeadLetters;
    for (const id of ids) {
      const letter = yield* store.find(id);
      if (letter === undefined || letter.status !== "OPEN") {
        return yield* gone(
          `Dead letter ${id} is ${letter === undefined ? "gone" : "closed"} already; ` +
            `nothing was ${what}`,
        );
      }
    }
  });

const purgeRunner: ApprovalRunner = {
  runtime: false,
  check: (request) =>
    Effect.gen(function* () {
      const selection = yield* decodePurge(request);
      if ("ids" in selection) yield* openLetters(selection.ids, "purged");
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const selection = (yield* decodePurge(request)) as PurgeSelection;
      return yield* outcomeOf(
        yield* governedPurge(selection, yield* approver(actor)),
        "deadletter.purge",
      );
    }),
};

const retryRunner: ApprovalRunner = {
  runtime: false,
  check: (request) =>
    Effect.gen(function* () {
      const selection = yield* decodeRetry(request);
      if ("id" in selection) return yield* openLetters([selection.id], "retried");
      const open = yield* (yield* DeadLetters).list({
        ...selection.all,
        status: "OPEN",
        afterSeq: 0,
        limit: 1,
      });
      if (open.length === 0) {
        return yield* gone("No open dead letter matches the parked retry; nothing was retried");
      }
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const selection = (yield* decodeRetry(request)) as RetrySelection;
      const config = yield* RunConfig;
      yield* retryTargetAllowed(config);
      return yield* outcomeOf(
        yield* governedRetry(selection, yield* approver(actor), {
          courier: config.courier,
          actor,
        }),
        "deadletter.retry",
      );
    }),
};

const resetRunner: ApprovalRunner = {
  runtime: false,
  check: (request) =>
    Effect.gen(function* () {
      const reset = yield* decodeReset(request);
      if (!(yield* checkpointExists(reset.run_key, reset.output_id))) {
        return yield* gone(
          `Checkpoint of ${reset.output_id} in ${reset.run_key} no longer exists; nothing was reset`,
        );
      }
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const reset = yield* decodeReset(request);
      return yield* outcomeOf(
        yield* governedCheckpointReset(reset, yield* approver(actor)),
        "checkpoint.reset",
      );
    }),
};

const replayRunner: ApprovalRunner = {
  runtime: true,
  check: (request) =>
    Effect.gen(function* () {
      const replay = yield* decodeReplay(request);
      yield* replayBounds(replay).pipe(
        Effect.mapError((e) => fail("APPROVAL_ACTION_GONE", e.message)),
      );
      const root = replay.engine_run_root;
      if (root.includes("://")) return;
      const exists = yield* Effect.promise(() =>
        Deno.stat(root).then((s) => s.isDirectory, () => false)
      );
      if (!exists) {
        return yield* gone(`The world at ${root} no longer exists; nothing was replayed`);
      }
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const replay = yield* decodeReplay(request);
      return yield* outcomeOf(
        yield* governedReplay(replay, yield* approver(actor)),
        "wsp.replay",
      );
    }),
};

const controlRunner: ApprovalRunner = {
  runtime: true,
  check: (request) =>
    Effect.gen(function* () {
      const control = yield* decodeControl(request);
      const runs = yield* (yield* Supervisor).runs;
      const run = runs.find((r) => r.run_id === control.run_id);
      if (run === undefined || run.state === "finished") {
        return yield* gone(
          `Run ${control.run_id} is ${
            run === undefined ? "unknown to this runtime" : "finished"
          }; ` +
            `nothing was done (${control.action})`,
        );
      }
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const control = yield* decodeControl(request);
      return yield* outcomeOf(
        yield* governedRunControl(control, yield* approver(actor)),
        `run.${control.action}`,
      );
    }),
};

/** The request a parked READY carries (actors/plan.ts): its envelope and the run it would be. */
export const ReadyApprovalRequest = Schema.Struct({
  ready: ControlBusEnvelope,
  run_key: Schema.String,
});
const decodeReady = decodeWith(
  ReadyApprovalRequest,
  "APPROVAL_ACTION_GONE",
  "parked READY",
);

/** The READY path of the running runtime, or APPROVAL_NEEDS_RUNTIME. */
const readyPath = Effect.gen(function* () {
  const bus = yield* Effect.serviceOption(ControlBus);
  if (Option.isNone(bus)) {
    return yield* Effect.fail(fail(
      "APPROVAL_NEEDS_RUNTIME",
      "A parked READY streams through the running runtime's READY path; nothing ran",
    ));
  }
  return bus.value;
});

const streamRunner: ApprovalRunner = {
  runtime: true,
  check: (request) =>
    Effect.gen(function* () {
      const { ready } = yield* decodeReady(request);
      const ledger = yield* Effect.serviceOption(ReadyLedger);
      if (Option.isNone(ledger)) return;
      const streamed = yield* ledger.value.isStreamed(ready.message_id).pipe(
        Effect.catchIf((e) => e.reason === "READY_LEDGER_UNAVAILABLE", () => Effect.succeed(false)),
      );
      if (streamed) {
        return yield* gone(
          `The READY ${ready.message_id} was streamed already; nothing was streamed again`,
        );
      }
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const { ready } = yield* decodeReady(request);
      const bus = yield* readyPath;
      const grant = yield* ApprovalGrant;
      if (grant?.approval_id === undefined) {
        return yield* Effect.fail(
          fail("INTERNAL_ERROR", "A parked READY ran without its approval"),
        );
      }
      const answer = yield* bus.submit(ready.message_id, JSON.stringify(ready), {
        approval_id: grant.approval_id,
        by: actor,
      });
      if (answer._tag === "Accepted") {
        return { message_id: answer.message_id, status: "ACCEPTED" } satisfies JsonObject;
      }
      // Settled without a run (refused, deferred, or parked again for another world).
      const s = answer.settlement;
      return { message_id: s.message_id, status: s.status, reason: s.reason } satisfies JsonObject;
    }),
};

/** Capability id → runner. */
export const APPROVAL_RUNNERS: Readonly<Record<string, ApprovalRunner>> = {
  "checkpoint.reset": resetRunner,
  "deadletter.retry": retryRunner,
  "deadletter.purge": purgeRunner,
  "wsp.replay": replayRunner,
  "run.pause": controlRunner,
  "run.resume": controlRunner,
  "run.cancel": controlRunner,
  "wsp.stream": streamRunner,
};

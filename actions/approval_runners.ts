/**
 * What runs an approved action: a small registry from capability id to its runner. A runner
 * decodes the request parked with the approval, checks that what it acts on still exists
 * (APPROVAL_ACTION_GONE otherwise, nothing run) and runs the action as the approver, without
 * asking the policy again (the approval is the grant). A capability is parkable only when it has
 * a runner here: add one line to {@link APPROVAL_RUNNERS} to make another action approvable.
 */
import { Effect, Schema } from "effect";
import type { Journal } from "../actors/journal.ts";
import type { WalDrain } from "../actors/wal/drain.ts";
import type { JsonObject } from "../schemas/common.ts";
import { decodeWith } from "../schemas/decode.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { DeadLetters } from "../stores/dead_letters.ts";
import { purgeDeadLetters, type PurgeSelection } from "./dead_letter_purge.ts";

/** The services runners may use: what the admin API and the `approvals` command provide. */
export type RunnerServices = Journal | WalDrain | DeadLetters;

/** Runs one kind of approved action. */
export interface ApprovalRunner {
  /** Fails APPROVAL_ACTION_GONE when what the request names no longer exists (or is done). */
  readonly check: (request: JsonObject) => Effect.Effect<void, WorldstreamError, RunnerServices>;
  /** Runs it as `actor`; answers what it did. */
  readonly run: (
    request: JsonObject,
    actor: string,
  ) => Effect.Effect<JsonObject, WorldstreamError, RunnerServices>;
}

const Ids = Schema.Array(Schema.String.check(Schema.isMinLength(1)));

/** The request a parked `deadletter.purge` carries (actions/dead_letter_purge.ts's selection). */
export const PurgeApprovalRequest = Schema.Union([
  Schema.Struct({ ids: Ids }),
  Schema.Struct({
    all: Schema.Struct({
      runKey: Schema.optionalKey(Schema.String),
      platformRunId: Schema.optionalKey(Schema.String),
      outputId: Schema.optionalKey(Schema.String),
    }),
    limit: Schema.optionalKey(Schema.Int),
  }),
]);
const decodePurge = decodeWith(
  PurgeApprovalRequest,
  "APPROVAL_ACTION_GONE",
  "parked purge request",
);

const purgeRunner: ApprovalRunner = {
  check: (request) =>
    Effect.gen(function* () {
      const selection = yield* decodePurge(request);
      if (!("ids" in selection)) return;
      const store = yield* DeadLetters;
      for (const id of selection.ids) {
        const letter = yield* store.find(id);
        if (letter === undefined || letter.status !== "OPEN") {
          return yield* fail(
            "APPROVAL_ACTION_GONE",
            `Dead letter ${id} is ${letter === undefined ? "gone" : "closed"} already; ` +
              `nothing was purged`,
          );
        }
      }
    }),
  run: (request, actor) =>
    Effect.gen(function* () {
      const selection = (yield* decodePurge(request)) as PurgeSelection;
      return { ...(yield* purgeDeadLetters(selection, actor)) };
    }),
};

/** Capability id → runner. */
export const APPROVAL_RUNNERS: Readonly<Record<string, ApprovalRunner>> = {
  "deadletter.purge": purgeRunner,
};

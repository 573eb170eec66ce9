/**
 * `worldstream approvals list|approve|deny`: the operator's side of actions the policy parked
 * (REQUIRE_APPROVAL), from a shell. Parses flags and calls the action `approvals`.
 *
 *   approvals list [--profile P] [--status pending|approved|denied|expired|all] [--limit N]
 *     one JSON line per approval, oldest first (pending ones by default; pending ones past their
 *     expiry are expired first), then {"status":"OK","listed":N}
 *   approvals approve ID [--note TEXT] [--profile P]
 *   approvals deny ID [--note TEXT] [--profile P]
 *     decides one as {@link CLI_PRINCIPAL}: approve runs the parked action once, deny receipts
 *     policy_denied; the last line is {approval_id, status: APPROVED|DENIED, outcome?}. An
 *     unknown, expired or already decided approval, or one whose action is gone, ends with
 *     APPROVAL_UNKNOWN / APPROVAL_EXPIRED / APPROVAL_ALREADY_DECIDED / APPROVAL_ACTION_GONE, exit 1.
 *     Approving runs checkpoint resets, dead letter retries and purges here; a replay or a
 *     pause/resume/cancel acts on the running runtime, so approving one here fails
 *     APPROVAL_NEEDS_RUNTIME (exit 1) and leaves it pending for the admin API; denying works.
 *
 * Opens the profile's stores as `dead-letters` does (actions/dead_letter_stores.ts): the WAL and
 * its lock, so it runs while the runtime of the same runs root is stopped (WAL_LOCKED otherwise),
 * and the WAL drained to Postgres before reading, so an approval parked a moment ago is listed.
 */
import { Effect, Layer } from "effect";
import { decideApproval, listApprovals } from "../actions/approvals.ts";
import { deadLetterStores } from "../actions/dead_letter_stores.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { coreLayer } from "../actors/runtime.ts";
import { DeadLetters } from "../stores/dead_letters.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { ApprovalStatus } from "../stores/wal_records.ts";
import { type Flags, intFlag, parseFlags, profileFlag } from "./args.ts";
import type { Outcome } from "./commands.ts";

/** Who decides from the CLI: a user of the machine the runs root is on, recorded in receipts. */
export const CLI_PRINCIPAL = "user:cli";

/** What tests replace: the environment, the loaded profile, where lines go. */
export interface ApprovalsOptions {
  readonly env?: Env;
  /** Used instead of loading `--profile`. */
  readonly profile?: Profile;
  /** Prints one JSON line (default: stdout). */
  readonly print?: (line: string) => void;
}

const LIST_DEFAULT_LIMIT = 1000;
const NOTE_MAX = 1000;

/** Runs `approvals list`, `approvals approve ID` or `approvals deny ID`. */
export function approvalsCommand(
  argv: ReadonlyArray<string>,
  options: ApprovalsOptions = {},
): Effect.Effect<Outcome, WorldstreamError> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "list":
      return listCommand(rest, options);
    case "approve":
    case "deny":
      return decideCommand(sub, rest, options);
    default:
      return Effect.fail(
        fail(
          "BAD_ARGS",
          `Usage: approvals <list|approve ID|deny ID> [flags]; got ${sub ?? "nothing"}`,
        ),
      );
  }
}

function listCommand(argv: ReadonlyArray<string>, options: ApprovalsOptions) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, { profile: "string", status: "string", limit: "string" });
    const status = yield* statusFlag(flags);
    const limit = (yield* intFlag(flags, "limit", { min: 1 })) ?? LIST_DEFAULT_LIMIT;
    const { profile, vars } = yield* profileOf(flags, options);
    const print = options.print ?? console.log;
    const approvals = yield* listApprovals(status, limit).pipe(
      Effect.provide(deadLetterStores(runConfigOf(profile), vars)),
    );
    for (const a of approvals) print(JSON.stringify(a));
    return { line: { status: "OK", listed: approvals.length }, ok: true };
  });
}

function decideCommand(
  decision: "approve" | "deny",
  argv: ReadonlyArray<string>,
  options: ApprovalsOptions,
) {
  return Effect.gen(function* () {
    // The id comes first; flags alone (or a flag first) still get the flag checks' answer.
    const [id, flagArgs] = argv.length > 0 && !argv[0].startsWith("-")
      ? [argv[0], argv.slice(1)]
      : [undefined, argv];
    const flags = yield* parseFlags(flagArgs, { profile: "string", note: "string" });
    if (id === undefined) {
      return yield* fail("BAD_ARGS", `Usage: approvals ${decision} ID [--note TEXT] [--profile P]`);
    }
    const note = typeof flags.note === "string" ? flags.note : undefined;
    if (note !== undefined && note.length > NOTE_MAX) {
      return yield* fail(
        "BAD_ARGS",
        `--note is at most ${NOTE_MAX} characters, got ${note.length}`,
      );
    }
    const { profile } = yield* profileOf(flags, options);
    // The streaming core without the bus listener (as `checkpoints reset` opens it): what a
    // checkpoint reset or a dead letter retry needs to run once approved.
    const result = yield* Effect.scoped(
      decideApproval(id, {
        decision,
        ...(note === undefined ? {} : { note }),
        actor: CLI_PRINCIPAL,
        runtime: false,
      }).pipe(
        Effect.provide(DeadLetters.layer.pipe(Layer.provideMerge(coreLayer(runConfigOf(profile))))),
      ),
    );
    return { line: { ...result }, ok: true };
  });
}

function profileOf(flags: Flags, options: ApprovalsOptions) {
  return Effect.gen(function* () {
    const vars = options.env ?? Deno.env.toObject();
    const profile = options.profile ?? (yield* loadProfile(profileFlag(flags, vars), vars));
    return { profile, vars };
  });
}

function statusFlag(flags: Flags): Effect.Effect<ApprovalStatus | undefined, WorldstreamError> {
  const value = flags.status ?? "pending";
  switch (value) {
    case "pending":
    case "approved":
    case "denied":
    case "expired":
      return Effect.succeed(value.toUpperCase() as ApprovalStatus);
    case "all":
      return Effect.succeed(undefined);
    default:
      return Effect.fail(
        fail(
          "BAD_ARGS",
          `--status must be pending, approved, denied, expired or all, got ${String(value)}`,
        ),
      );
  }
}

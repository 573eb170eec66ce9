/**
 * `worldstream dead-letters list|retry`: the operator's view of envelopes the gate never took.
 * Parses flags and calls the actions `dead_letter_list` and `dead_letter_retry`.
 *
 *   dead-letters list [--profile P] [--run-key K] [--platform-run-id ID] [--output-id O]
 *                     [--status open|closed|all] [--limit N] [--envelopes]
 *     one JSON line per dead letter, oldest first (open ones by default, at most 1000), then
 *     {"status":"OK","listed":N,"more":true|false}
 *   dead-letters retry [--profile P] [--ig-url URL] [--actor A]
 *                      (--id ID | --all [--run-key K] [--platform-run-id ID] [--output-id O]
 *                      [--limit N])
 *     one JSON line per retried dead letter, then {status, retried, closed, still_open,
 *     already_closed, unsent, reasons, reason?, message?}; exit 0 only when every selected dead
 *     letter is closed (actions/dead_letter_retry.ts says how a retry goes); a policy that asks
 *     for an approval of `deadletter.retry` parks it instead: exit 4, `{status: "PENDING",
 *     reason: "APPROVAL_PENDING", approval_id, ...}`, nothing sent
 *
 * Both open the profile's WAL and drain it to Postgres to completion before reading, so a dead
 * letter a run wrote a moment ago is listed. Opening the WAL takes its lock: these commands run
 * while the runtime of the same runs root is stopped (WAL_LOCKED otherwise), which also keeps
 * one writer on the receipt chain. Draining needs the receipt key, as the runtime does.
 */
import { Effect } from "effect";
import { listDeadLetters } from "../actions/dead_letter_list.ts";
import { retryDeadLettersOf, type RetrySelection } from "../actions/dead_letter_retry.ts";
import { deadLetterStores } from "../actions/dead_letter_stores.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { DeadLetterStatus } from "../stores/dead_letters.ts";
import { type Flags, httpUrlFlag, intFlag, parseFlags, profileFlag } from "./args.ts";
import { type Outcome, parkedOutcome } from "./commands.ts";
import { isParked } from "../actions/governed.ts";

/** What tests replace: the environment, the loaded profile, where lines go. */
export interface DeadLettersOptions {
  readonly env?: Env;
  /** Used instead of loading `--profile`. */
  readonly profile?: Profile;
  /** Prints one JSON line (default: stdout). */
  readonly print?: (line: string) => void;
}

const FILTER_FLAGS = {
  profile: "string",
  "run-key": "string",
  "platform-run-id": "string",
  "output-id": "string",
  limit: "string",
} as const;

const LIST_DEFAULT_LIMIT = 1000;

/** Runs `dead-letters list` or `dead-letters retry`. */
export function deadLettersCommand(
  argv: ReadonlyArray<string>,
  options: DeadLettersOptions = {},
): Effect.Effect<Outcome, WorldstreamError> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "list":
      return listCommand(rest, options);
    case "retry":
      return retryCommand(rest, options);
    default:
      return Effect.fail(
        fail("BAD_ARGS", `Usage: dead-letters <list|retry> [flags]; got ${sub ?? "nothing"}`),
      );
  }
}

function listCommand(argv: ReadonlyArray<string>, options: DeadLettersOptions) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      ...FILTER_FLAGS,
      status: "string",
      envelopes: "boolean",
    });
    const status = yield* statusFlag(flags);
    const limit = (yield* intFlag(flags, "limit", { min: 1 })) ?? LIST_DEFAULT_LIMIT;
    const { profile, vars } = yield* profileOf(flags, options);
    const print = options.print ?? console.log;
    const result = yield* listDeadLetters(
      {
        filter: filterOf(flags),
        ...(status === undefined ? {} : { status }),
        limit,
        envelopes: flags.envelopes === true,
      },
      (line) => Effect.sync(() => print(JSON.stringify(line))),
    ).pipe(Effect.provide(deadLetterStores(runConfigOf(profile), vars)));
    return { line: { ...result }, ok: true };
  });
}

function retryCommand(argv: ReadonlyArray<string>, options: DeadLettersOptions) {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      ...FILTER_FLAGS,
      "ig-url": "string",
      actor: "string",
      id: "string",
      all: "boolean",
    });
    const selection = yield* selectionOf(flags);
    const igUrl = yield* httpUrlFlag(flags, "ig-url");
    const { profile, vars } = yield* profileOf(flags, options);
    const config = runConfigOf(profile, igUrl ? { igUrl } : {});
    const print = options.print ?? console.log;
    const summary = yield* retryDeadLettersOf(config, vars, selection, {
      actor: typeof flags.actor === "string" && flags.actor !== "" ? flags.actor : "operator:cli",
      onRetried: (line) => Effect.sync(() => print(JSON.stringify(line))),
    });
    if (isParked(summary)) return parkedOutcome(summary);
    return { line: { ...summary }, ok: summary.status === "OK" };
  });
}

function profileOf(flags: Flags, options: DeadLettersOptions) {
  return Effect.gen(function* () {
    const vars = options.env ?? Deno.env.toObject();
    const profile = options.profile ?? (yield* loadProfile(profileFlag(flags, vars), vars));
    return { profile, vars };
  });
}

function filterOf(flags: Flags) {
  const text = (name: string) => {
    const v = flags[name];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const runKey = text("run-key");
  const platformRunId = text("platform-run-id");
  const outputId = text("output-id");
  return {
    ...(runKey === undefined ? {} : { runKey }),
    ...(platformRunId === undefined ? {} : { platformRunId }),
    ...(outputId === undefined ? {} : { outputId }),
  };
}

function selectionOf(flags: Flags): Effect.Effect<RetrySelection, WorldstreamError> {
  return Effect.gen(function* () {
    const id = typeof flags.id === "string" && flags.id !== "" ? flags.id : undefined;
    const all = flags.all === true;
    if ((id === undefined) === !all) {
      return yield* fail("BAD_ARGS", "Give either --id ID or --all");
    }
    if (id !== undefined) {
      const extra = ["run-key", "platform-run-id", "output-id", "limit"].find((f) =>
        flags[f] !== undefined
      );
      if (extra !== undefined) {
        return yield* fail("BAD_ARGS", `--${extra} goes with --all, not --id`);
      }
      return { id };
    }
    const limit = yield* intFlag(flags, "limit", { min: 1 });
    return { all: filterOf(flags), ...(limit === undefined ? {} : { limit }) };
  });
}

function statusFlag(flags: Flags): Effect.Effect<DeadLetterStatus | undefined, WorldstreamError> {
  const value = flags.status ?? "open";
  switch (value) {
    case "open":
      return Effect.succeed("OPEN");
    case "closed":
      return Effect.succeed("CLOSED");
    case "all":
      return Effect.succeed(undefined);
    default:
      return Effect.fail(
        fail("BAD_ARGS", `--status must be open, closed or all, got ${String(value)}`),
      );
  }
}

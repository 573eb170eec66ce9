/**
 * `worldstream dead-letters list|retry`: the operator's view of envelopes the gate never took.
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
 *     letter is closed (cli/dead_letters_retry.ts says how a retry goes)
 *
 * Both open the profile's WAL and drain it to Postgres to completion before reading, so a dead
 * letter a run wrote a moment ago is listed. Opening the WAL takes its lock: these commands run
 * while the runtime of the same runs root is stopped (WAL_LOCKED otherwise), which also keeps
 * one writer on the receipt chain. Draining needs the receipt key, as the runtime does.
 */
import { Effect, Layer } from "effect";
import { runConfigOf } from "../actors/run_config.ts";
import { durableLayer } from "../actors/runtime.ts";
import { loadProfile, type Profile } from "../core/profile.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type DeadLetter, DeadLetters, type DeadLetterStatus } from "../stores/dead_letters.ts";
import { IgClient } from "../stores/ig_client.ts";
import { WalDrain } from "../actors/wal/drain.ts";
import { type Flags, parseFlags } from "./args.ts";
import type { Outcome } from "./commands.ts";
import { retryDeadLetters, type RetrySelection } from "./dead_letters_retry.ts";

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
const PAGE = 500;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

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
    const limit = (yield* intFlag(flags, "limit")) ?? LIST_DEFAULT_LIMIT;
    const { profile, vars } = yield* profileOf(flags, options);
    const print = options.print ?? console.log;
    return yield* Effect.gen(function* () {
      yield* (yield* WalDrain).drainNow;
      const store = yield* DeadLetters;
      let listed = 0;
      let afterSeq = 0;
      let more = false;
      while (listed < limit) {
        // One row past the limit tells whether more are left.
        const page = yield* store.list({
          ...filterOf(flags),
          ...(status === undefined ? {} : { status }),
          afterSeq,
          limit: Math.min(PAGE, limit - listed + 1),
        });
        const shown = page.slice(0, limit - listed);
        for (const letter of shown) {
          print(JSON.stringify(listLine(letter, flags.envelopes === true)));
        }
        listed += shown.length;
        more = page.length > shown.length;
        if (page.length === 0 || more) break;
        afterSeq = page[page.length - 1].seq;
      }
      return { line: { status: "OK", listed, more }, ok: true };
    }).pipe(Effect.provide(deadLetterLayer(profile, vars)));
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
    const { profile, vars } = yield* profileOf(flags, options);
    const igUrl = typeof flags["ig-url"] === "string" ? flags["ig-url"] : undefined;
    const courier = runConfigOf(profile, igUrl ? { igUrl } : {}).courier;
    const host = yield* Effect.try({
      try: () => new URL(courier.endpoint.baseUrl).hostname,
      catch: () => fail("BAD_ARGS", `The IG URL ${courier.endpoint.baseUrl} is not a URL`),
    });
    if (profile.policy.privacy_tier === "local" && !LOOPBACK.has(host)) {
      return yield* fail(
        "PRIVACY_TIER_LOCAL",
        `Privacy tier local keeps data on this host; the IG at ${host} is not loopback`,
      );
    }
    const print = options.print ?? console.log;
    const summary = yield* retryDeadLetters(selection, {
      courier,
      actor: typeof flags.actor === "string" && flags.actor !== "" ? flags.actor : "operator:cli",
      onRetried: (line) => Effect.sync(() => print(JSON.stringify(line))),
    }).pipe(Effect.provide(Layer.merge(deadLetterLayer(profile, vars), IgClient.layer(courier))));
    return { line: { ...summary }, ok: summary.status === "OK" };
  });
}

/**
 * The stores these commands need: Postgres (migrated), the profile's WAL with its drain, and the
 * Journal that seals retry receipts onto the chain, built as the runtime builds them.
 */
function deadLetterLayer(profile: Profile, env: Env) {
  return DeadLetters.layer.pipe(Layer.provideMerge(durableLayer(profile, { env })));
}

function profileOf(flags: Flags, options: DeadLettersOptions) {
  return Effect.gen(function* () {
    const vars = options.env ?? Deno.env.toObject();
    const profile = options.profile ?? (yield* loadProfile(String(flags.profile ?? "local"), vars));
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
    const limit = yield* intFlag(flags, "limit");
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

function intFlag(flags: Flags, name: string): Effect.Effect<number | undefined, WorldstreamError> {
  const value = flags[name];
  if (value === undefined) return Effect.succeed(undefined);
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 1 && /^\d+$/.test(String(value))
    ? Effect.succeed(n)
    : Effect.fail(fail("BAD_ARGS", `--${name} must be a positive integer, got ${String(value)}`));
}

function listLine(letter: DeadLetter, withEnvelope: boolean) {
  return {
    id: letter.id,
    status: letter.status,
    run_key: letter.run_key,
    platform_run_id: letter.platform_run_id,
    output_id: letter.output_id,
    event_id: letter.event_id,
    attempts: letter.attempts,
    retries: letter.retries,
    last_status: letter.last_status,
    reason: letter.reason,
    at: letter.at.toISOString(),
    last_retry_at: letter.last_retry_at?.toISOString() ?? null,
    closed_at: letter.closed_at?.toISOString() ?? null,
    closed_receipt_id: letter.closed_receipt_id,
    ...(withEnvelope ? { envelope: letter.envelope } : {}),
  };
}

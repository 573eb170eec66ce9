/**
 * The command table of the `worldstream` CLI: each command parses its flags, does its work and
 * returns the JSON result line and whether it succeeded. main.ts prints and exits.
 */
import type { Effect } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { DuckDb } from "../stores/duckdb.ts";

/** A command's outcome: the result line (stdout) and the exit code. */
export interface Outcome {
  readonly line: Record<string, unknown>;
  readonly ok: boolean;
  /** The exit code when it is not 0 (ok) or 1 (not ok): see EXIT_CODES. */
  readonly code?: number;
}

/** Exit codes beyond 0 (success) and 1 (failure), documented in the README. */
export const EXIT_CODES = {
  /** Unknown command. */
  usage: 2,
  /** A run handled every event, but some only as dead letters (STREAMED_WITH_DEAD_LETTERS). */
  deadLetters: 3,
  /** The policy parked the action as a pending approval (APPROVAL_PENDING): nothing done yet. */
  pending: 4,
  /** `stream` stopped by SIGINT/SIGTERM before the end (STOPPED_BY_OPERATOR): 128 + SIGINT. */
  stopped: 130,
} as const;

/** What an action parked for approval answers (actions/governed.ts `Parked`). */
interface ParkedAnswer {
  readonly approval_id: string;
  readonly capability: string;
  readonly expires_at: string;
  readonly reason: string;
}

/**
 * The outcome of a command whose action the policy parked: a clear line on stderr, the result
 * line `{status: "PENDING", reason: "APPROVAL_PENDING", approval_id, ...}` and exit code 4.
 */
export function parkedOutcome(parked: ParkedAnswer): Outcome {
  const message = `${parked.capability} waits for an approval until ${parked.expires_at}: ` +
    `deno task approvals approve ${parked.approval_id} (or deny it); ${parked.reason}`;
  console.error(`worldstream: APPROVAL_PENDING: ${message}`);
  return {
    line: {
      status: "PENDING",
      reason: "APPROVAL_PENDING",
      approval_id: parked.approval_id,
      capability: parked.capability,
      expires_at: parked.expires_at,
      message,
    },
    ok: false,
    code: EXIT_CODES.pending,
  };
}

export type Command = (
  argv: ReadonlyArray<string>,
) => Effect.Effect<Outcome, WorldstreamError, DuckDb>;

/**
 * Loads `export` of module `path` (relative to this file). A command loads only its own modules:
 * `stream` needs ~0.35 s of them, all commands together ~0.6 s, and a restart after a crash waits
 * for every one. The specifier is built at run time because Deno fetches the whole graph of a
 * literal `import("…")` up front, used or not.
 */
function lazy<M>(path: string, pick: (module: M) => Command): () => Promise<Command> {
  return () => import(new URL(path, import.meta.url).href).then((m: M) => pick(m));
}

/** Commands by name (each `deno task X` maps to one), each loaded when it runs. */
export const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  "gen-world": lazy<typeof import("./gen_world.ts")>("./gen_world.ts", (m) => m.genWorldCommand),
  sort: lazy<typeof import("./sort.ts")>("./sort.ts", (m) => m.sortCommand),
  stream: lazy<typeof import("./stream.ts")>("./stream.ts", (m) => m.streamCommand),
  replay: lazy<typeof import("./replay.ts")>("./replay.ts", (m) => m.replayCommand),
  "publish-ready": lazy<typeof import("./publish_ready.ts")>(
    "./publish_ready.ts",
    (m) => m.publishReadyCommand,
  ),
  run: lazy<typeof import("./run.ts")>("./run.ts", (m) => m.runCommand),
  ig: lazy<typeof import("./ig.ts")>("./ig.ts", (m) => m.igCommand),
  "audit-verify": lazy<typeof import("./audit_verify.ts")>(
    "./audit_verify.ts",
    (m) => m.auditVerifyCommand,
  ),
  "dead-letters": lazy<typeof import("./dead_letters.ts")>(
    "./dead_letters.ts",
    (m) => (argv) => m.deadLettersCommand(argv),
  ),
  approvals: lazy<typeof import("./approvals.ts")>(
    "./approvals.ts",
    (m) => (argv) => m.approvalsCommand(argv),
  ),
  checkpoints: lazy<typeof import("./checkpoints.ts")>(
    "./checkpoints.ts",
    (m) => (argv) => m.checkpointsCommand(argv),
  ),
  wal: lazy<typeof import("./wal.ts")>("./wal.ts", (m) => m.walCommand),
  validate: lazy<typeof import("./validate.ts")>("./validate.ts", (m) => m.validateCommand),
  license: lazy<typeof import("./license.ts")>(
    "./license.ts",
    (m) => (argv) => m.licenseCommand(argv),
  ),
  explain: lazy<typeof import("./explain.ts")>(
    "./explain.ts",
    (m) => (argv) => m.explainCommand(argv),
  ),
};

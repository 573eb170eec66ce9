/**
 * `worldstream checkpoints reset`: moves one output's checkpoint in one run scope (the
 * `checkpoint_reset` action, the same as `POST /v1/checkpoints/{scope}/{output}/reset`).
 *
 *   checkpoints reset --scope S --output-id O (--to-seq N | --to-ts T | --undo) [--profile P]
 *     {"status":"OK", run_key, output_id, previous, current, receipt_id}
 *
 * It opens the profile's WAL, so it runs while the runtime of the same runs root is stopped
 * (WAL_LOCKED otherwise: use the admin API then); nothing streams in this process. It is
 * authorized as `checkpoint.reset` for `user:cli` through the one door, like the API's operator:
 * the action is HIGH risk, so the shipped policy parks it as a pending approval (exit 4,
 * `{status: "PENDING", reason: "APPROVAL_PENDING", approval_id, ...}`); `approvals approve ID`
 * then runs it.
 */
import { Effect } from "effect";
import {
  type CheckpointResetRequest,
  governedCheckpointReset,
} from "../actions/checkpoint_reset.ts";
import { isParked } from "../actions/governed.ts";
import { runConfigOf } from "../actors/run_config.ts";
import { coreLayer } from "../actors/runtime.ts";
import { loadProfile } from "../core/profile.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { intFlag, parseFlags, profileFlag, requireFlag } from "./args.ts";
import { type Outcome, parkedOutcome } from "./commands.ts";

/** The principal the command acts as. */
export const CLI_PRINCIPAL = "user:cli";

/** Runs `checkpoints reset`. */
export function checkpointsCommand(
  argv: ReadonlyArray<string>,
): Effect.Effect<Outcome, WorldstreamError> {
  const [sub, ...rest] = argv;
  if (sub !== "reset") {
    return Effect.fail(
      fail("BAD_ARGS", `Unknown checkpoints subcommand ${JSON.stringify(sub ?? "")} (reset)`),
    );
  }
  return Effect.gen(function* () {
    const flags = yield* parseFlags(rest, {
      scope: "string",
      "output-id": "string",
      "to-seq": "string",
      "to-ts": "string",
      undo: "boolean",
      profile: "string",
    });
    // Every flag is checked before anything is opened.
    const toSeq = yield* intFlag(flags, "to-seq", { min: 0 });
    const toTs = typeof flags["to-ts"] === "string" ? flags["to-ts"] as string : undefined;
    const request: CheckpointResetRequest = {
      run_key: yield* requireFlag(flags, "scope"),
      output_id: yield* requireFlag(flags, "output-id"),
      ...(toSeq === undefined ? {} : { to_seq: toSeq }),
      ...(toTs === undefined ? {} : { to_ts: toTs }),
      ...(flags.undo === true ? { undo: true as const } : {}),
    };
    const config = runConfigOf(yield* loadProfile(profileFlag(flags)));
    const answer = yield* Effect.scoped(
      governedCheckpointReset(request, {
        profile: config.profile,
        principal: CLI_PRINCIPAL,
        source: "cli",
      }).pipe(Effect.provide(coreLayer(config))),
    );
    if (isParked(answer)) return parkedOutcome(answer);
    return { line: { status: "OK", ...answer }, ok: true };
  });
}

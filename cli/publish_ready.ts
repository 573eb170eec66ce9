/**
 * `worldstream publish-ready`: parses flags, loads the profile and calls the `publish_ready`
 * action (actions/publish_ready.ts says what it writes and its defaults).
 *
 *   publish-ready --engine-run-root DIR [--platform-run-id ID] [--scenario-run-id HEX32]
 *     [--bus file|kinesis] [--bus-root DIR] [--object-store-root DIR|s3://…] [--profile P]
 *     [--scenario-id ID]
 */
import { Effect } from "effect";
import { publishReady } from "../actions/publish_ready.ts";
import { loadProfile } from "../core/profile.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { parseFlags, profileFlag, requireFlag } from "./args.ts";

/** Parses the flags, loads the profile and publishes; the result line is always PUBLISHED. */
export function publishReadyCommand(
  argv: ReadonlyArray<string>,
): Effect.Effect<
  { readonly line: Record<string, unknown>; readonly ok: boolean },
  WorldstreamError
> {
  return Effect.gen(function* () {
    const flags = yield* parseFlags(argv, {
      "engine-run-root": "string",
      "platform-run-id": "string",
      "scenario-run-id": "string",
      bus: "string",
      "bus-root": "string",
      "object-store-root": "string",
      profile: "string",
      "scenario-id": "string",
    });
    const engineRunRoot = yield* requireFlag(flags, "engine-run-root");
    const bus = flags.bus;
    if (bus !== undefined && bus !== "file" && bus !== "kinesis") {
      return yield* fail("BAD_ARGS", `--bus must be file or kinesis, not ${JSON.stringify(bus)}`);
    }
    const profile = yield* loadProfile(profileFlag(flags));
    const text = (name: string) => {
      const value = flags[name];
      return typeof value === "string" && value !== "" ? value : undefined;
    };
    const result = yield* publishReady({
      engineRunRoot,
      profile,
      platformRunId: text("platform-run-id"),
      scenarioRunId: text("scenario-run-id"),
      busRoot: text("bus-root"),
      ...(bus === undefined ? {} : { bus }),
      objectStoreRoot: text("object-store-root"),
      scenarioId: text("scenario-id"),
    });
    return { line: { ...result }, ok: true };
  });
}

/**
 * main.ts's first step, before the rest of worldstream loads (~0.3–0.4 s of modules): for the
 * commands that run the streaming runtime, start opening the profile's PGlite folder, which takes
 * about as long. The runtime adopts it when the loaded profile names the same folder
 * (stores/pglite_channel.ts), and main.ts closes it otherwise. A head start only: nothing here
 * can fail a command.
 */
import { parseArgs } from "node:util";
import { peekPgliteDir } from "../core/profile_source.ts";
import { wantsHelp } from "./help.ts";
import { RUNTIME_PGLITE, startPgliteEarly } from "../stores/pglite_channel.ts";

/** The commands whose runtime opens the profile's PGlite first thing. */
const RUNTIME_COMMANDS = new Set(["run", "stream"]);

/** Starts PGlite for `worldstream <args>` when that command will open it. */
export function startEarly(args: ReadonlyArray<string>): void {
  const [command, ...argv] = args;
  if (command === undefined || !RUNTIME_COMMANDS.has(command) || wantsHelp(argv)) return;
  try {
    const dir = peekPgliteDir(profileFlag(argv) ?? "local", Deno.env.toObject());
    if (dir !== undefined) startPgliteEarly(dir, RUNTIME_PGLITE);
  } catch {
    // No permission to read the environment or start a process: the runtime opens it later.
  }
}

/** `--profile`, read by the same parser as the command's own flags (cli/args.ts), leniently. */
function profileFlag(argv: ReadonlyArray<string>): string | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: { profile: { type: "string" } },
    strict: false,
    allowPositionals: true,
  });
  return typeof values.profile === "string" ? values.profile : undefined;
}

/**
 * main.ts's first step, before the rest of worldstream loads (~0.3–0.4 s of modules): for the
 * commands that run the streaming runtime, start opening the profile's PGlite folder, which takes
 * about as long. The runtime adopts it when the loaded profile names the same folder
 * (stores/pglite_channel.ts), and main.ts closes it otherwise. A head start only: nothing here
 * can fail a command.
 *
 * Nothing may be written before the command has read its flags: the head start is taken only
 * when every flag is one the command accepts (checked against its help page, cli/help.ts, which
 * cli/help_test.ts holds to the real flags) and the folder already holds a database. A first
 * start, or a mistyped flag, leaves creating the folder to the command, after its checks.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { peekPgliteDir, profileName } from "../core/profile_source.ts";
import { HELP, wantsHelp } from "./help.ts";
import { RUNTIME_PGLITE, startPgliteEarly } from "../stores/pglite_channel.ts";

/** The commands whose runtime opens the profile's PGlite first thing. */
const RUNTIME_COMMANDS = new Set(["run", "stream"]);

/** Starts PGlite for `worldstream <args>` when that command will open it. */
export function startEarly(args: ReadonlyArray<string>): void {
  const [command, ...argv] = args;
  if (command === undefined || !RUNTIME_COMMANDS.has(command) || wantsHelp(argv)) return;
  const flags = knownFlags(command, argv);
  if (flags === undefined) return;
  try {
    const env = Deno.env.toObject();
    const profile = profileName(flags.profile, env);
    const dir = peekPgliteDir(profile, env);
    if (dir !== undefined && existsSync(join(dir, "PG_VERSION"))) {
      startPgliteEarly(dir, RUNTIME_PGLITE);
    }
  } catch {
    // No permission to read the environment or start a process: the runtime opens it later.
  }
}

/**
 * `argv` parsed by the same parser as the command's own (cli/args.ts), against the flags its help
 * page lists, or `undefined` when the command will refuse them (an unknown flag, a missing value).
 */
function knownFlags(
  command: string,
  argv: ReadonlyArray<string>,
): Record<string, string | boolean | undefined> | undefined {
  const page = HELP[command];
  if (page === undefined) return undefined;
  const options = Object.fromEntries(
    Object.entries(page.flags).map((
      [name, flag],
    ) => [name, { type: flag.value === undefined ? "boolean" as const : "string" as const }]),
  );
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch {
    return undefined;
  }
}

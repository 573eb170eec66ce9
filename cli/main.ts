/**
 * The body of `worldstream <command> [flags]` (main.ts loads it once PGlite's early start is
 * under way): runs the command and prints its JSON result as the last stdout line. Returns the
 * exit code: 0 when the command succeeded, 1 when it did not, 2 for an unknown command.
 */
import { restoreAsyncHooks } from "../core/async_context_off.ts";
import { Effect, Exit, Layer } from "effect";
import { COMMANDS, EXIT_CODES } from "./commands.ts";
import { commandList, commandUsage, HELP, wantsHelp } from "./help.ts";
import { JsonLogs } from "../core/logging.ts";
import { DuckDb } from "../stores/duckdb.ts";

// `effect` has loaded by now (see core/async_context_off.ts).
restoreAsyncHooks();

export async function main(args: ReadonlyArray<string>): Promise<number> {
  const [name, ...argv] = args;
  if (name === "--help" || name === "-h") {
    console.log(commandList());
    return 0;
  }
  const page = name !== undefined && Object.hasOwn(HELP, name) ? HELP[name] : undefined;
  if (page !== undefined && wantsHelp(argv)) {
    const [sub] = argv;
    const subPage = sub !== undefined && page.subcommands !== undefined &&
        Object.hasOwn(page.subcommands, sub)
      ? page.subcommands[sub]
      : undefined;
    console.log(subPage ? commandUsage(`${name} ${sub}`, subPage) : commandUsage(name, page));
    return 0;
  }
  const load = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) {
    console.error(
      `Usage: worldstream <${Object.keys(COMMANDS).join("|")}> [flags] (--help: what each does)`,
    );
    console.log(
      JSON.stringify({ status: "FAILED", reason: "BAD_ARGS", message: `Unknown command ${name}` }),
    );
    return EXIT_CODES.usage;
  }
  const command = await load();
  const layers = Layer.mergeAll(DuckDb.layer(), JsonLogs);
  const exit = await Effect.runPromiseExit(command(argv).pipe(Effect.provide(layers)));
  if (Exit.isSuccess(exit)) {
    console.log(JSON.stringify(exit.value.line));
    return exit.value.code ?? (exit.value.ok ? 0 : 1);
  }
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as
    | { reason?: string; message?: string }
    | undefined;
  const line = {
    status: "FAILED",
    reason: error?.reason ?? "INTERNAL_ERROR",
    message: error?.message ?? String(exit.cause),
  };
  console.error(`worldstream ${name}: ${line.reason}: ${line.message}`);
  console.log(JSON.stringify(line));
  return 1;
}

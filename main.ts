/**
 * worldstream: replays a materialized synthetic world as live, time-ordered traffic.
 * `worldstream <command> [flags]` — the commands are in cli/commands.ts. The last stdout line
 * of every command is its JSON result; logs are JSON lines on stderr.
 */
import { restoreAsyncHooks } from "./core/async_context_off.ts";
import { Effect, Exit, Layer } from "effect";
import { COMMANDS } from "./cli/commands.ts";
import { JsonLogs } from "./core/logging.ts";
import { DuckDb } from "./stores/duckdb.ts";

restoreAsyncHooks();

const [name, ...argv] = Deno.args;
const command = name === undefined ? undefined : COMMANDS[name];
if (command === undefined) {
  console.error(`Usage: worldstream <${Object.keys(COMMANDS).join("|")}> [flags]`);
  console.log(
    JSON.stringify({ status: "FAILED", reason: "BAD_ARGS", message: `Unknown command ${name}` }),
  );
  Deno.exit(2);
}

const layers = Layer.mergeAll(DuckDb.layer(), JsonLogs);
const exit = await Effect.runPromiseExit(command(argv).pipe(Effect.provide(layers)));
if (Exit.isSuccess(exit)) {
  console.log(JSON.stringify(exit.value.line));
  Deno.exit(exit.value.ok ? 0 : 1);
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
Deno.exit(1);

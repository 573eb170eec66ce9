/**
 * worldstream: replays a materialized synthetic world as live, time-ordered traffic.
 * `worldstream <command> [flags]` — the commands are in cli/commands.ts. The last stdout line
 * of every command is its JSON result; logs are JSON lines on stderr.
 *
 * First, for the commands that run the streaming runtime, PGlite starts opening its folder
 * (cli/early_start.ts); the rest of worldstream (cli/main.ts) loads beside it. Its specifier is
 * built at run time on purpose: Deno fetches the whole module graph of a literal `import("…")`
 * before main.ts runs at all (~0.25 s), and PGlite should not wait for that.
 */
import "./core/async_context_off.ts";
import { startEarly } from "./cli/early_start.ts";
import { closeEarlyPglite } from "./stores/pglite_channel.ts";

startEarly(Deno.args);
const { main }: typeof import("./cli/main.ts") = await import(
  new URL("./cli/main.ts", import.meta.url).href
);
const code = await main(Deno.args);
// A PGlite started early and never used closes its folder before the process goes.
await closeEarlyPglite();
Deno.exit(code);

/**
 * Every command answers `--help` through the real entry point (main.ts in a process of its own):
 * exit 0, usage on stdout, and every flag the command accepts shown with its meaning. What a
 * command accepts comes from the command itself, not from the help page: an unknown flag's
 * BAD_ARGS message lists the flags its parser was given (asked in process, which is quicker).
 */
import assert from "node:assert/strict";
import { Cause, Effect, Exit } from "effect";
import { DuckDb } from "../stores/duckdb.ts";
import { COMMANDS } from "./commands.ts";
import { type CommandHelp, HELP } from "./help.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `main.ts <args>` in an empty temp folder (nothing it might open lands in the repo). */
async function worldstream(args: ReadonlyArray<string>, cwd: string): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** How the command itself answers `<words> --no-such-flag`. */
async function refusal(
  words: ReadonlyArray<string>,
): Promise<{ readonly reason: string; readonly message: string }> {
  const [name, ...rest] = words;
  const command = await COMMANDS[name]();
  const exit = await Effect.runPromiseExit(
    command([...rest, "--no-such-flag"]).pipe(Effect.provide(DuckDb.layer())),
  );
  assert.ok(Exit.isFailure(exit), `${words.join(" ")} accepted --no-such-flag`);
  const error = Cause.findErrorOption(exit.cause);
  assert.ok(error._tag === "Some", Cause.pretty(exit.cause));
  return error.value as { reason: string; message: string };
}

/** Each page to check: `[command words, page]`, subcommands included. */
function pages(): Array<readonly [ReadonlyArray<string>, CommandHelp]> {
  return Object.entries(HELP).flatMap(([name, page]) => [
    [[name], page] as const,
    ...Object.entries(page.subcommands ?? {}).map(([sub, p]) => [[name, sub], p] as const),
  ]);
}

/** Runs `fn` over `items`, `limit` at a time (the machine has few cores). */
async function pooled<T>(items: ReadonlyArray<T>, limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

Deno.test("the help pages cover exactly the commands of the command table", () => {
  assert.deepEqual(Object.keys(HELP).sort(), Object.keys(COMMANDS).sort());
});

Deno.test("every command answers --help with each flag it accepts and what it does", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "help_test_" });
  try {
    await pooled(pages(), 3, async ([words, page]) => {
      const what = `worldstream ${words.join(" ")}`;
      const help = await worldstream([...words, "--help"], cwd);
      assert.equal(help.code, 0, `${what} --help exited ${help.code}: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: ${what}`), what);
      assert.ok(help.stdout.includes(page.summary), `${what}: summary missing`);

      const flags = Object.keys(page.flags);
      if (page.subcommands !== undefined && flags.length === 0) {
        for (const sub of Object.keys(page.subcommands)) {
          assert.match(help.stdout, new RegExp(`^  ${sub} `, "m"), `${what}: ${sub}`);
        }
        return;
      }
      // The flags the command's own parser accepts, from its refusal of one it does not.
      const error = await refusal(words);
      assert.equal(error.reason, "BAD_ARGS", `${what}: ${error.message}`);
      const accepted = /\(accepted: ([^;]*);/.exec(error.message)?.[1];
      assert.ok(accepted !== undefined, `${what}: ${error.message}`);
      const parsed = accepted.split(", ").map((f) => f.replace(/^--/, ""));
      assert.deepEqual([...parsed].sort(), [...flags].sort(), `${what}: help and parser differ`);
      for (const flag of parsed) {
        const row = help.stdout.split("\n").find((l) => l.startsWith(`  --${flag} `));
        assert.ok(row !== undefined, `${what} --help does not show --${flag}`);
        assert.ok(row.includes(page.flags[flag].meaning), `${what} --${flag}: no meaning shown`);
      }
    });
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("worldstream --help lists every command and exits 0", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "help_test_" });
  try {
    const ran = await worldstream(["--help"], cwd);
    assert.equal(ran.code, 0, ran.stderr);
    for (const [name, page] of Object.entries(HELP)) {
      assert.match(ran.stdout, new RegExp(`^  ${name} +${escape(page.summary)}$`, "m"), name);
    }
    // Nothing was opened or written on the way.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(cwd)), []);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

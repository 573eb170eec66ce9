/**
 * Imports run one way (docs/LAYOUT.md): schemas → core → stores → actors → actions → cli, api.
 * The reference gate (ig/) stands beside actors and may import schemas, core and stores only.
 * Dev tools (scripts/) and tests may import anything, and nothing else imports scripts/ or cli/
 * (main.ts launches cli/). This test reads the relative imports of every non-test .ts file and
 * names each one that goes against that order.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../", import.meta.url));

/** What each top-level folder may import (itself included). */
const MAY_IMPORT: Readonly<Record<string, ReadonlyArray<string>>> = {
  schemas: ["schemas"],
  core: ["schemas", "core"],
  stores: ["schemas", "core", "stores"],
  ig: ["schemas", "core", "stores", "ig"],
  actors: ["schemas", "core", "stores", "actors"],
  actions: ["schemas", "core", "stores", "actors", "actions"],
  // The admin API serves what actors and actions expose; cli hosts it (`run --admin-port`) and
  // starts the reference gate (`ig`, the demo), so cli may import api and ig, not the reverse.
  api: ["schemas", "core", "stores", "actors", "actions", "api"],
  cli: ["schemas", "core", "stores", "actors", "actions", "api", "ig", "cli"],
  // main.ts, the launcher: anything but scripts/ and tests/.
  ".": ["schemas", "core", "stores", "actors", "actions", "api", "ig", "cli", "."],
};

/** Imports that go against the order today, each with the change that removes it. */
const KNOWN_EXCEPTIONS: ReadonlySet<string> = new Set([]);

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g;

/** The top-level folder of a repository path (`.` for a file at the root). */
function layerOf(path: string): string {
  const parts = path.split("/");
  return parts.length === 1 ? "." : parts[0];
}

/**
 * Every import in `files` (repository path → source text) that goes against the order, as
 * `file → imported file`.
 */
export function violations(files: ReadonlyMap<string, string>): Array<string> {
  const found: Array<string> = [];
  for (const [file, text] of files) {
    const from = layerOf(file);
    if (from === "scripts" || from === "tests" || /_test\.ts$|_testing\.ts$/.test(file)) continue;
    const allowed = MAY_IMPORT[from];
    for (const match of text.matchAll(IMPORT)) {
      const target = normalize(join(dirname(file), match[1])).replaceAll("\\", "/");
      const to = layerOf(target);
      if (allowed === undefined || !allowed.includes(to)) found.push(`${file} → ${target}`);
    }
  }
  return found;
}

async function sources(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) {
        if (["node_modules", "runs", "demo", ".git"].includes(entry.name)) continue;
        await walk(path);
      } else if (entry.name.endsWith(".ts")) {
        files.set(relative(REPO, path).replaceAll("\\", "/"), await Deno.readTextFile(path));
      }
    }
  }
  await walk(REPO);
  return files;
}

Deno.test("every import runs one way: schemas → core → stores → actors → actions → cli, api", async () => {
  const files = await sources();
  assert.ok(files.size > 100, `read only ${files.size} files`);
  const found = violations(files).filter((v) => !KNOWN_EXCEPTIONS.has(v));
  assert.deepEqual(found, [], `imports against the layer order:\n${found.join("\n")}`);
});

Deno.test("a known exception that is gone must leave the list", async () => {
  const found = new Set(violations(await sources()));
  const stale = [...KNOWN_EXCEPTIONS].filter((e) => !found.has(e));
  assert.deepEqual(stale, [], `no longer imported, drop from KNOWN_EXCEPTIONS: ${stale}`);
});

Deno.test("an import against the order is named with its file; scripts and tests may import anything", () => {
  const found = violations(
    new Map([
      [
        "core/a.ts",
        'import { x } from "../actors/x.ts";\nimport type { S } from "../schemas/s.ts";',
      ],
      ["cli/b.ts", 'export { g } from "../scripts/gen.ts";'],
      ["actors/c.ts", 'const m = await import("../cli/main.ts");'],
      ["ig/d.ts", 'import "../actors/side_effect.ts";'],
      ["api/e.ts", 'import { c } from "../cli/commands.ts";'],
      ["actions/f.ts", 'import { a } from "../actors/a.ts";\nimport { s } from "./s.ts";'],
      ["scripts/g.ts", 'import { c } from "../cli/args.ts";'],
      ["core/h_test.ts", 'import { a } from "../actions/a.ts";'],
    ]),
  );
  assert.deepEqual(found, [
    "core/a.ts → actors/x.ts",
    "cli/b.ts → scripts/gen.ts",
    "actors/c.ts → cli/main.ts",
    "ig/d.ts → actors/side_effect.ts",
    "api/e.ts → cli/commands.ts",
  ]);
});

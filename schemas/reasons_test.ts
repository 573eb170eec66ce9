import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { REASON_CODES } from "./reasons.ts";
import { IG_REASONS } from "../ig/reasons.ts";
import { MARKERS, reasonTable } from "../scripts/reason_table.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SKIP = new Set(["node_modules", ".git", "runs", "fixtures"]);

async function testSources(dir: string, out: Array<[string, string]> = []) {
  for await (const entry of Deno.readDir(dir)) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory) await testSources(path, out);
    else if (entry.name.endsWith("_test.ts") && entry.name !== "reasons_test.ts") {
      out.push([relative(ROOT, path), await Deno.readTextFile(path)]);
    }
  }
  return out;
}

Deno.test("every reason code in the registry is asserted by some test", async () => {
  const sources = await testSources(ROOT);
  const untested = [...REASON_CODES, ...Object.keys(IG_REASONS)].filter((code) =>
    !sources.some(([, text]) => text.includes(`"${code}"`))
  );
  assert.deepEqual(untested, [], "codes no test triggers: test them or remove them");
});

/** The (code, meaning) rows of the README's reason tables, whatever their column padding. */
function tableRows(markdown: string) {
  return markdown.split("\n").flatMap((line) => {
    const cells = line.split("|").map((c) => c.trim());
    return line.startsWith("| `") ? [[cells[1].replaceAll("`", ""), cells[2]]] : [];
  });
}

Deno.test("the README's table of reason codes is the one the registry generates", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const [start, end] = [readme.indexOf(MARKERS[0]), readme.indexOf(MARKERS[1])];
  assert.ok(start >= 0 && end > start, "README.md has the reason table markers");
  assert.deepEqual(
    tableRows(readme.slice(start, end)),
    tableRows(reasonTable()),
    "run: deno run -A scripts/reason_table.ts --write && deno fmt README.md",
  );
});

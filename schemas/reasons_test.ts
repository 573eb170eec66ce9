import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MARKERS, reasonTable } from "../scripts/reason_table.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

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

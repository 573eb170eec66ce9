/**
 * Prints the README's table of reason codes from the one registry (`schemas/reasons.ts`), so the
 * table cannot drift from the code: `deno run -A scripts/reason_table.ts --write` rewrites the
 * README between its markers, and `schemas/reasons_test.ts` fails when the two differ.
 */
import { REASONS } from "../schemas/reasons.ts";
import { IG_REASONS } from "../ig/reasons.ts";

/** The markers around the generated table in README.md. */
export const MARKERS = ["<!-- reasons:start -->", "<!-- reasons:end -->"] as const;

/** The generated Markdown, markers included. */
export function reasonTable(): string {
  const rows = (entries: Record<string, string>) =>
    Object.entries(entries).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`);
  return [
    MARKERS[0],
    "| reason | meaning |",
    "| --- | --- |",
    ...rows(REASONS),
    "",
    "The reference gate's quarantine reasons (the platform gate's names):",
    "",
    "| reason | meaning |",
    "| --- | --- |",
    ...rows(IG_REASONS),
    MARKERS[1],
  ].join("\n");
}

/** README text with the table between the markers replaced by the generated one. */
export function withTable(readme: string): string {
  const start = readme.indexOf(MARKERS[0]);
  const end = readme.indexOf(MARKERS[1]);
  if (start < 0 || end < start) throw new Error("README.md has no reason table markers");
  return readme.slice(0, start) + reasonTable() + readme.slice(end + MARKERS[1].length);
}

if (import.meta.main) {
  const file = new URL("../README.md", import.meta.url);
  if (Deno.args.includes("--write")) {
    await Deno.writeTextFile(file, withTable(await Deno.readTextFile(file)));
  } else {
    console.log(reasonTable());
  }
}

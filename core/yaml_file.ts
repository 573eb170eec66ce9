/**
 * Reads a governance file (capabilities, policies) as YAML: its text (for a digest of exactly
 * what was decided under) and its parsed document, or why not, so each caller can name the
 * failure with its own reason code.
 */
import { Effect } from "effect";
import { isAbsolute, relative } from "node:path";
import { parse } from "yaml";

/** A YAML file as read: its text and document, or that it is missing / why it is unreadable. */
export type YamlRead =
  | { readonly kind: "ok"; readonly text: string; readonly doc: unknown }
  | { readonly kind: "missing" }
  | { readonly kind: "unreadable"; readonly problem: string }
  | { readonly kind: "syntax"; readonly problem: string };

/** Reads and parses `path`; never fails (the outcome says what went wrong). */
export function readYamlFile(path: string): Effect.Effect<YamlRead> {
  return Effect.promise(async (): Promise<YamlRead> => {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
      if (e instanceof Deno.errors.IsADirectory) {
        return { kind: "unreadable", problem: "is a directory" };
      }
      if (e instanceof TypeError) return { kind: "unreadable", problem: "not UTF-8 text" };
      return {
        kind: "unreadable",
        problem: e instanceof Error ? e.message.split(":")[0] : String(e),
      };
    }
    try {
      return { kind: "ok", text, doc: parse(text, { logLevel: "error" }) as unknown };
    } catch (e) {
      const err = e as { message?: string; linePos?: ReadonlyArray<{ line: number; col: number }> };
      const where = err.linePos?.[0];
      const what = String(err.message ?? e).split(" at line ")[0].split("\n")[0];
      const at = where === undefined ? "" : ` (line ${where.line}, column ${where.col})`;
      return { kind: "syntax", problem: `Not valid YAML${at}: ${what}` };
    }
  });
}

/** `path` relative to the working directory when it is inside it, for messages. */
export function shownPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

/**
 * Every profile key does something: the keys the schema allows are exactly the ones README's
 * "Profile keys" table documents, each documented reader really reads its key, and the shipped
 * profiles use no key outside the table. A key added to the schema without a reader and a line
 * in README fails here; so does a documented key nobody reads any more.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { PROFILE_KEYS } from "./profile.ts";

const REPO = new URL("../", import.meta.url);

/** README's profile key table: key → the file said to read it. */
function documentedKeys(): Map<string, string> {
  const readme = Deno.readTextFileSync(new URL("README.md", REPO));
  const start = readme.indexOf("### Profile keys");
  assert.ok(start >= 0, "README has no Profile keys section");
  const section = readme.slice(start, readme.indexOf("\n## ", start));
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const cells = /^\|\s*`([a-z_.]+)`\s*\|.*\|\s*`([^`]+\.ts)`\s*\|$/.exec(line);
    if (cells !== null) rows.set(cells[1], cells[2]);
  }
  return rows;
}

/** Dotted paths of every leaf of a parsed YAML mapping. */
function leafKeys(value: unknown, prefix = ""): Array<string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) =>
    leafKeys(child, prefix === "" ? key : `${prefix}.${key}`)
  );
}

Deno.test("the keys a profile may hold are exactly the documented ones", () => {
  const documented = documentedKeys();
  assert.ok(documented.size > 30, `only ${documented.size} rows parsed from README`);
  assert.deepEqual([...documented.keys()].sort(), [...PROFILE_KEYS].sort());
});

Deno.test("each profile key is read where README says it is", () => {
  for (const [key, file] of documentedKeys()) {
    const source = Deno.readTextFileSync(new URL(file, REPO));
    const leaf = key.split(".").at(-1)!;
    // A property read (`profile.policy.policy_rev`, `c?.batch_size`), not a mention in a comment.
    const reads = source.split("\n").filter((line) =>
      !/^\s*(\/\/|\*|\/\*\*)/.test(line) && new RegExp(`\\.${leaf}\\b`).test(line)
    );
    assert.ok(reads.length > 0, `${key}: ${file} never reads .${leaf}`);
  }
});

Deno.test("the shipped profiles use only documented keys", async () => {
  const allowed = new Set(PROFILE_KEYS);
  for (const name of ["local", "local_parity", "dev", "prod"]) {
    const doc = parse(await Deno.readTextFile(new URL(`profiles/${name}.yaml`, REPO)));
    for (const key of leafKeys(doc)) {
      assert.ok(allowed.has(key), `profiles/${name}.yaml: ${key} is not a profile key`);
    }
  }
});

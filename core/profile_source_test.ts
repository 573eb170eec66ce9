import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { peekPgliteDir, profileSource } from "./profile_source.ts";

Deno.test("profileSource: a bare name is a profile of this repo, anything else a path", () => {
  assert.ok(profileSource("local").endsWith("/profiles/local.yaml"));
  assert.equal(profileSource("./my/profile.yaml"), resolve("my/profile.yaml"));
});

Deno.test("peekPgliteDir reads the PGlite folder a profile's runtime will open", async () => {
  // The local profile: PGlite unless the environment picks a server.
  assert.equal(peekPgliteDir("local", {}), resolve("runs/pglite"));
  assert.equal(peekPgliteDir("local", { WORLDSTREAM_PGLITE_DIR: "/x/pg" }), "/x/pg");
  assert.equal(peekPgliteDir("local", { WORLDSTREAM_DB_BACKEND: "server" }), undefined);
  // Server profiles, missing and unreadable files: no guess.
  assert.equal(peekPgliteDir("prod", { DATABASE_URL: "postgres://h/db" }), undefined);
  assert.equal(peekPgliteDir("no-such-profile", {}), undefined);
  const dir = await Deno.makeTempDir({ prefix: "ws-profile-peek-" });
  try {
    const bad = join(dir, "bad.yaml");
    await Deno.writeTextFile(bad, "wiring: [unclosed\n");
    assert.equal(peekPgliteDir(bad, {}), undefined);
    const unset = join(dir, "unset.yaml");
    await Deno.writeTextFile(
      unset,
      "wiring:\n  database:\n    backend: pglite\n    pglite_dir: ${MISSING_VAR}\n",
    );
    assert.equal(peekPgliteDir(unset, {}), undefined);
    const own = join(dir, "own.yaml");
    await Deno.writeTextFile(
      own,
      "wiring:\n  database:\n    backend: pglite\n    pglite_dir: pg\n",
    );
    assert.equal(peekPgliteDir(own, {}), resolve("pg"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, type Scope } from "effect";
import { fileTempDir, scopedTempDir } from "../tests/_testing.ts";
import { startS3rver } from "../tests/s3rver.ts";
import { parseS3Root, type S3Root } from "../core/store_root.ts";
import { WorldstreamError } from "../schemas/errors.ts";
import { makeObjectCache } from "./object_cache.ts";
import { openOracleS3 } from "./oracle_s3.ts";

// The S3 store against s3rver: what it reads is what it listed, checked by ETag and size; the
// cache is bounded and evicts the least recently used entry without pulling a file from a reader.

const TMP = await fileTempDir("oracle_s3_test_");

function test(name: string, body: Effect.Effect<void, unknown, Scope.Scope>) {
  Deno.test(name, () => Effect.runPromise(Effect.scoped(body)));
}

const bytes = (text: string) => new TextEncoder().encode(text);

function root(url: string): S3Root {
  const parsed = parseS3Root(url);
  if (parsed instanceof WorldstreamError) throw parsed;
  return parsed;
}

test(
  "an object rewritten or removed between list and read fails ORACLE_OBJECT_CHANGED",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "changed");
    const { s3 } = yield* startS3rver(join(dir, "s3"), ["wld"]);
    yield* s3.put("wld", "r/a.txt", bytes("first version"));
    yield* s3.put("wld", "r/b.txt", bytes("stays"));
    const cache = makeObjectCache(s3, {
      dir: join(dir, "cache"),
      maxBytes: 1 << 20,
      chunkBytes: 4,
    });
    const store = yield* openOracleS3(root("s3://wld/r"), {
      s3,
      cache,
      sessionDir: join(dir, "session"),
    });
    yield* s3.put("wld", "r/a.txt", bytes("second version!"));
    yield* s3.remove("wld", ["r/b.txt"]);
    const changed = yield* Effect.flip(store.readText("a.txt"));
    assert.equal(changed.reason, "ORACLE_OBJECT_CHANGED");
    assert.match(changed.message, /s3:\/\/wld\/r\/a\.txt/);
    const removed = yield* Effect.flip(store.readText("b.txt"));
    assert.equal(removed.reason, "ORACLE_OBJECT_CHANGED");
    assert.match(removed.message, /s3:\/\/wld\/r\/b\.txt/);
    // A fresh listing sees the new object, read in 4-byte ranges and put back together.
    const again = yield* openOracleS3(root("s3://wld/r"), {
      s3,
      cache,
      sessionDir: join(dir, "session"),
    });
    assert.equal(yield* again.readText("a.txt"), "second version!");
    assert.equal(yield* again.readText("b.txt"), undefined);
  }),
);

test(
  "a key that climbs out of the prefix is not in the world, and a path that climbs fails PATH_ESCAPES_ROOT",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "escape");
    const { s3 } = yield* startS3rver(join(dir, "s3"), ["wld"]);
    yield* s3.put("wld", "r/ok/a.txt", bytes("a"));
    yield* s3.put("wld", "r/ok/../../x.txt", bytes("x"));
    const store = yield* openOracleS3(root("s3://wld/r"), {
      s3,
      cache: makeObjectCache(s3, { dir: join(dir, "cache"), maxBytes: 1 << 20 }),
      sessionDir: join(dir, "session"),
    });
    // The server files a climbing key outside the prefix, so it is not part of the world.
    assert.deepEqual(yield* store.listTree(""), ["ok/a.txt"]);
    const climb = yield* Effect.flip(store.readText("../other/run_receipt.json"));
    assert.equal(climb.reason, "PATH_ESCAPES_ROOT");
  }),
);

test(
  "the cache stays within its bound, evicting the least recently used object, and links survive",
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "lru");
    const { s3 } = yield* startS3rver(join(dir, "s3"), ["wld"]);
    const kb = (c: string) => bytes(c.repeat(1000));
    for (const name of ["a", "b", "c"]) yield* s3.put("wld", `r/${name}`, kb(name));
    const cacheDir = join(dir, "cache");
    const cache = makeObjectCache(s3, { dir: cacheDir, maxBytes: 2500 });
    const store = yield* openOracleS3(root("s3://wld/r"), {
      s3,
      cache,
      sessionDir: join(dir, "session"),
    });
    const a = yield* store.local("a");
    yield* store.local("b");
    yield* store.local("a"); // a is now used more recently than b
    yield* store.local("c"); // 3000 bytes > 2500: b goes
    const held = [...Deno.readDirSync(join(cacheDir, "objects"))].length;
    assert.equal(held, 2);
    assert.equal((yield* store.readText("b"))?.length, 1000);
    // b came back, so the least recently used of a and c went: a (touched before c).
    assert.equal([...Deno.readDirSync(join(cacheDir, "objects"))].length, 2);
    // The link handed out for a still reads, whatever was evicted.
    assert.equal(Deno.readTextFileSync(a), "a".repeat(1000));

    const tooBig = yield* Effect.flip(store.list("", /^[abc]$/));
    assert.equal(tooBig.reason, "ORACLE_CACHE_TOO_SMALL");
  }),
);

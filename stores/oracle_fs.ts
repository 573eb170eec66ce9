/**
 * The oracle store on a local filesystem (the file layer of stores/oracle.ts): an engine run root read through paths relative to it.
 * Relative paths are checked, as written and where their symlinks lead, so nothing outside the
 * root is ever read or written.
 */
import { Effect } from "effect";
import { createHash } from "node:crypto";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { isWithin, realPathOf } from "../core/real_path.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { OracleRoot } from "./oracle.ts";

/** Opens a local engine run root; a missing or non-directory root fails `ENGINE_ROOT_MISSING`. */
export function openOracleFs(root: string): Effect.Effect<OracleRoot, WorldstreamError> {
  return Effect.gen(function* () {
    if (root.trim() === "") {
      return yield* fail("ENGINE_ROOT_MISSING", "No engine run root was given");
    }
    // deno-lint-ignore no-control-regex
    if (/['"\\\u0000-\u001f]/.test(root)) {
      return yield* fail(
        "ENGINE_ROOT_INVALID",
        `Engine run root ${JSON.stringify(root)} has quotes or control characters`,
      );
    }
    const abs = resolve(root);
    const info = yield* Effect.tryPromise({
      try: () => Deno.stat(abs),
      catch: () => fail("ENGINE_ROOT_MISSING", `Engine run root ${abs} does not exist`),
    });
    if (!info.isDirectory) {
      return yield* fail("ENGINE_ROOT_MISSING", `Engine run root ${abs} is not a directory`);
    }
    const real = yield* Effect.tryPromise({
      try: () => Deno.realPath(abs),
      catch: (e) => fail("ENGINE_ROOT_INVALID", `Cannot resolve ${abs}: ${(e as Error).message}`),
    });
    return makeStore(abs, real);
  });
}

/** Joins `rel` onto `root`, refusing absolute paths, `..` segments and quotes. */
export function safeJoin(root: string, rel: string): Effect.Effect<string, WorldstreamError> {
  // deno-lint-ignore no-control-regex
  const bad = isAbsolute(rel) || /['"\\\u0000-\u001f]/.test(rel) ||
    normalize(rel).split("/").includes("..");
  return bad
    ? Effect.fail(
      fail("PATH_ESCAPES_ROOT", `Path ${JSON.stringify(rel)} escapes the engine run root`),
    )
    : Effect.succeed(join(root, rel));
}

/**
 * The store of `root` (as given, resolved) whose real path is `realRoot`. Every path is checked
 * twice: as written (no `..`, nothing absolute) and where it really leads, symlinks resolved, so a
 * link inside the root to a file or folder outside it fails PATH_ESCAPES_ROOT instead of being read.
 */
function makeStore(root: string, realRoot: string): OracleRoot {
  const inside = (path: string, what: string) =>
    Effect.tryPromise({
      try: () => realPathOf(path),
      catch: (e) => fail("ORACLE_READ_FAILED", `Cannot resolve ${path}: ${(e as Error).message}`),
    }).pipe(Effect.flatMap((real) =>
      isWithin(realRoot, real) ? Effect.succeed(path) : Effect.fail(fail(
        "PATH_ESCAPES_ROOT",
        `${what} ${path} resolves to ${real}, outside the engine run root ${realRoot}`,
      ))
    ));
  const local = (rel: string) =>
    safeJoin(root, rel).pipe(Effect.flatMap((path) => inside(path, "Path")));
  const readFile = <A>(rel: string, read: (path: string) => Promise<A>) =>
    local(rel).pipe(Effect.flatMap((path) =>
      Effect.tryPromise({
        try: async () => {
          try {
            return await read(path);
          } catch (e) {
            if (e instanceof Deno.errors.NotFound) return undefined;
            throw e;
          }
        },
        catch: (e) => fail("ORACLE_READ_FAILED", `Cannot read ${path}: ${(e as Error).message}`),
      })
    ));
  const readText = (rel: string) => readFile(rel, (path) => Deno.readTextFile(path));
  const readBytes = (rel: string) => readFile(rel, (path) => Deno.readFile(path));
  const exists = (rel: string) =>
    local(rel).pipe(
      Effect.flatMap((path) => Effect.promise(() => Deno.stat(path).then(() => true, () => false))),
    );
  const digest = (rel: string) =>
    local(rel).pipe(Effect.flatMap((path) =>
      Effect.tryPromise({
        try: () => fileDigest(path),
        catch: (e) => fail("ORACLE_READ_FAILED", `Cannot read ${path}: ${(e as Error).message}`),
      })
    ));
  // A matching entry that is a link is followed and must stay inside the root and be a file;
  // anything else that matches fails, so a part is never skipped without a word.
  const list = (relDir: string, pattern: RegExp) =>
    local(relDir).pipe(Effect.flatMap((dir) =>
      Effect.gen(function* () {
        const entries = yield* Effect.tryPromise({
          try: async () => {
            try {
              return await Array.fromAsync(Deno.readDir(dir));
            } catch (e) {
              if (e instanceof Deno.errors.NotFound) return [];
              throw e;
            }
          },
          catch: (e) => fail("ORACLE_READ_FAILED", `Cannot list ${dir}: ${(e as Error).message}`),
        });
        const names: Array<string> = [];
        for (const e of entries.filter((e) => pattern.test(e.name))) {
          const path = join(dir, e.name);
          if (e.isSymlink) yield* inside(path, "Part");
          const info = e.isSymlink
            ? yield* Effect.tryPromise({
              try: () => Deno.stat(path),
              catch: (err) =>
                fail(
                  "ORACLE_READ_FAILED",
                  `Part ${path} is a broken link: ${(err as Error).message}`,
                ),
            })
            : e;
          if (!info.isFile) {
            return yield* fail("ORACLE_READ_FAILED", `Part ${path} is not a file`);
          }
          names.push(e.name);
        }
        return names.sort().map((n) => join(dir, n));
      })
    ));
  const listTree = (relDir: string) =>
    local(relDir).pipe(Effect.flatMap((dir) =>
      Effect.gen(function* () {
        const walk = async (sub: string): Promise<Array<string>> => {
          const out: Array<string> = [];
          let entries: Array<Deno.DirEntry>;
          try {
            entries = await Array.fromAsync(Deno.readDir(join(dir, sub)));
          } catch (e) {
            if (e instanceof Deno.errors.NotFound) return out;
            throw e;
          }
          for (const e of entries) {
            const rel = sub === "" ? e.name : `${sub}/${e.name}`;
            const info = e.isSymlink ? await Deno.stat(join(dir, rel)) : e;
            if (info.isDirectory) out.push(...await walk(rel));
            else if (info.isFile) out.push(rel);
          }
          return out;
        };
        const files = yield* Effect.tryPromise({
          try: () => walk(""),
          catch: (e) => fail("ORACLE_READ_FAILED", `Cannot list ${dir}: ${(e as Error).message}`),
        });
        for (const rel of files) yield* inside(join(dir, rel), "File");
        return files;
      })
    ));
  return { root, readText, readBytes, exists, digest, list, listTree, local };
}

/** The sha256 and size of the file at `path`, read as a stream. */
export async function fileDigest(path: string) {
  const hash = createHash("sha256");
  let size = 0;
  // The readable closes the file when it ends or fails.
  const file = await Deno.open(path);
  for await (const chunk of file.readable) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { sha256_hex: hash.digest("hex"), size_bytes: size };
}

/** Writes `text` to `path` atomically: a temp file in the same folder, fsync, then rename. */
export function writeFileAtomic(path: string, text: string): Effect.Effect<void, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      await Deno.mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.tmp-${crypto.randomUUID()}`;
      const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      try {
        await file.write(new TextEncoder().encode(text));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(tmp, path);
    },
    catch: (e) => fail("WRITE_FAILED", `Cannot write ${path}: ${(e as Error).message}`),
  });
}

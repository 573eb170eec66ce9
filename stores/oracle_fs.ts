/**
 * The oracle store on a local filesystem (the file layer of stores/oracle.ts): an engine run root read through paths relative to it.
 * Relative paths are checked so nothing outside the root is ever read or written.
 */
import { Effect } from "effect";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
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
    return makeStore(abs);
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

function makeStore(root: string): OracleRoot {
  const local = (rel: string) => safeJoin(root, rel);
  const readText = (rel: string) =>
    local(rel).pipe(Effect.flatMap((path) =>
      Effect.tryPromise({
        try: async () => {
          try {
            return await Deno.readTextFile(path);
          } catch (e) {
            if (e instanceof Deno.errors.NotFound) return undefined;
            throw e;
          }
        },
        catch: (e) => fail("ORACLE_READ_FAILED", `Cannot read ${path}: ${(e as Error).message}`),
      })
    ));
  const exists = (rel: string) =>
    local(rel).pipe(
      Effect.flatMap((path) => Effect.promise(() => Deno.stat(path).then(() => true, () => false))),
    );
  const list = (relDir: string, pattern: RegExp) =>
    local(relDir).pipe(Effect.flatMap((dir) =>
      Effect.tryPromise({
        try: async () => {
          const names: string[] = [];
          try {
            for await (const e of Deno.readDir(dir)) {
              if (e.isFile && pattern.test(e.name)) names.push(e.name);
            }
          } catch (e) {
            if (!(e instanceof Deno.errors.NotFound)) throw e;
          }
          return names.sort().map((n) => join(dir, n));
        },
        catch: (e) => fail("ORACLE_READ_FAILED", `Cannot list ${dir}: ${(e as Error).message}`),
      })
    ));
  return { root, readText, exists, list, local };
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

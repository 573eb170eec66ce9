/**
 * What a running runtime has already checked of a world, kept so that the next run or replay of
 * the same world does not check it again: a replay deep in a 5M-event view must start delivering
 * within a second, and re-hashing the world's parts and gate bundles on every request took most
 * of that (measured: ~60% of the plan, the view's verification most of the rest).
 *
 * Each result (a resolved world, one of its outputs, one output's verified stream view) is kept
 * with a witness of every file it read and every folder it listed: the file's identity (size,
 * modification time, change time, inode, device; "absent" for a file that was not there) or the
 * listing itself, taken before the file was read. A later request re-takes every witness (a stat
 * per file, a readdir per folder: milliseconds) and reuses the result only when all of them are
 * unchanged; any difference drops the result and checks the world again in full, so a file
 * tampered with since fails with the reason code it always failed with. Paths are re-resolved
 * through the store on every witness, so a file replaced by a link out of the root still fails
 * PATH_ESCAPES_ROOT.
 *
 * A file modified less than {@link RACY_MS} before it was read is not trusted to a cache (as git
 * treats a "racily clean" file): a write landing in the same timestamp tick as the one it follows
 * would keep its identity. Only local roots are kept (an `s3://` world is checked every time).
 * The default service keeps nothing; the runtime (actors/runtime.ts) provides one that keeps.
 */
import { Clock, Context, Effect } from "effect";
import { join, resolve } from "node:path";
import { interfacePackPaths } from "../core/catalogue.ts";
import { isUrlRoot } from "../core/store_root.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { type OracleRoot, OracleStore } from "./oracle.ts";
import type { BuildResult } from "./stream_view_build.ts";
import {
  resolveOutput,
  resolveWorld,
  type World,
  type WorldOptions,
  type WorldOutput,
} from "./world.ts";

/** Files modified this recently (ms) before they were read are checked again next time. */
export const RACY_MS = 2_000;

/** How often checked results were reused, and how often a world had to be checked (again). */
export interface WorldCacheStats {
  /** Results reused: every witness unchanged. */
  readonly hits: number;
  /** Results checked in full: none kept, or a witness changed. */
  readonly misses: number;
  /** Of the misses, those where a kept result was dropped because a witness changed. */
  readonly changed: number;
}

/** Resolves worlds, outputs and stream views, reusing what was checked while nothing changed. */
export interface WorldCacheShape {
  /** {@link resolveWorld}, reused while the files it read are unchanged. */
  readonly world: (
    root: string,
    options: WorldOptions,
  ) => Effect.Effect<World, WorldstreamError, OracleStore>;
  /** {@link resolveOutput}, reused while the world and the files it read are unchanged. */
  readonly output: (world: World, outputId: string) => Effect.Effect<WorldOutput, WorldstreamError>;
  /**
   * An output's stream view as `build` verifies (or builds) it, reused while the output, its
   * view folder and every file in it are unchanged.
   */
  readonly view: <E, R>(
    output: WorldOutput,
    view: { readonly root: string; readonly dir: string },
    build: Effect.Effect<BuildResult, E, R>,
  ) => Effect.Effect<BuildResult, E | WorldstreamError, R>;
  /**
   * What `read` finds in the footers of a stream view's `parts` (the row-group map a window's
   * seek starts from), reused while every part is unchanged.
   */
  readonly footers: <A, E, R>(
    parts: ReadonlyArray<string>,
    read: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E | WorldstreamError, R>;
  readonly stats: Effect.Effect<WorldCacheStats>;
}

/** Keeps nothing: every call checks in full (the default outside the runtime). */
const uncached: WorldCacheShape = {
  world: resolveWorld,
  output: resolveOutput,
  view: (_output, _view, build) => build,
  footers: (_parts, read) => read,
  stats: Effect.succeed({ hits: 0, misses: 0, changed: 0 }),
};

/** The runtime's cache of checked worlds; by default one that keeps nothing. */
export const WorldCache = Context.Reference<WorldCacheShape>("worldstream/stores/WorldCache", {
  defaultValue: () => uncached,
});

/** A cache that keeps checked results for as long as it lives (one per runtime). */
export function makeWorldCache(options: { readonly racyMs?: number } = {}): WorldCacheShape {
  const racyMs = options.racyMs ?? RACY_MS;
  const counts = { hits: 0, misses: 0, changed: 0 };
  const worlds = new Map<string, Entry<World>>();
  const outputs = new WeakMap<World, Map<string, Entry<WorldOutput>>>();
  const views = new WeakMap<WorldOutput, Map<string, Entry<BuildResult>>>();
  const footers = new Map<string, Entry<unknown>>();

  /** The kept value of `key` if every witness holds, else `compute`'s (kept when it may be). */
  const memo = <A, E, R>(
    entries: Map<string, Entry<A>>,
    key: string,
    compute: (witness: Witnesses) => Effect.Effect<A, E, R>,
  ): Effect.Effect<A, E | WorldstreamError, R> =>
    Effect.gen(function* () {
      const kept = entries.get(key);
      if (kept !== undefined) {
        if (yield* holds(kept.witnesses)) {
          counts.hits++;
          return kept.value;
        }
        entries.delete(key);
        counts.changed++;
      }
      counts.misses++;
      const witness = makeWitnesses(racyMs);
      const value = yield* compute(witness);
      if (witness.trusted()) entries.set(key, { value, witnesses: witness.taken });
      return value;
    });

  return {
    world: (root, options) => {
      if (isUrlRoot(root)) return resolveWorld(root, options);
      const key = JSON.stringify([resolve(root), options]);
      return memo(worlds, key, (witness) =>
        Effect.gen(function* () {
          const outer = yield* OracleStore;
          const opened: Array<OracleRoot> = [];
          for (const path of interfacePackPaths(options.interfacePackDir)) {
            yield* witness.file(path, Effect.succeed(path));
          }
          const world = yield* resolveWorld(root, options).pipe(
            Effect.provideService(
              OracleStore,
              OracleStore.of({
                ...outer,
                open: (r) =>
                  outer.open(r).pipe(Effect.map((store) => {
                    opened.push(store);
                    return watched(store, witness);
                  })),
              }),
            ),
          );
          // The world keeps the plain store: what runs later is not recorded.
          return { ...world, store: opened[0] ?? world.store };
        }));
    },
    output: (world, outputId) => {
      if (isUrlRoot(world.engineRunRoot)) return resolveOutput(world, outputId);
      let entries = outputs.get(world);
      if (entries === undefined) outputs.set(world, entries = new Map());
      return memo(
        entries,
        outputId,
        (witness) => resolveOutput({ ...world, store: watched(world.store, witness) }, outputId),
      );
    },
    view: (output, view, build) => {
      if (isUrlRoot(view.root)) return build;
      let entries = views.get(output);
      if (entries === undefined) views.set(output, entries = new Map());
      return memo(entries, view.dir, (witness) =>
        Effect.gen(function* () {
          // Taken before the build reads them: what it verified, or the state it built over.
          for (const part of output.parts) yield* witness.file(part, Effect.succeed(part));
          const names = yield* witness.listing(view.dir, listDir(view.dir));
          for (const name of names) {
            const path = join(view.dir, name);
            yield* witness.file(path, Effect.succeed(path));
          }
          return yield* build;
        }));
    },
    footers: <A, E, R>(parts: ReadonlyArray<string>, read: Effect.Effect<A, E, R>) =>
      memo(footers, JSON.stringify(parts), (witness) =>
        Effect.gen(function* () {
          for (const part of parts) yield* witness.file(part, Effect.succeed(part));
          return yield* read;
        })) as Effect.Effect<A, E | WorldstreamError, R>,
    stats: Effect.sync(() => ({ ...counts })),
  };
}

interface Entry<A> {
  readonly value: A;
  readonly witnesses: ReadonlyArray<Witness>;
}

/** One thing a result depends on: how to take it again, and what it was. */
interface Witness {
  readonly take: Effect.Effect<string, WorldstreamError>;
  readonly seen: string;
}

/** Whether every witness still reads as it did; one that cannot be taken does not hold. */
function holds(witnesses: ReadonlyArray<Witness>): Effect.Effect<boolean> {
  return Effect.gen(function* () {
    for (const w of witnesses) {
      const now = yield* Effect.result(w.take);
      if (now._tag === "Failure" || now.success !== w.seen) return false;
    }
    return true;
  });
}

interface Witnesses {
  /** Takes the identity of the file `path` leads to (through the store's checks). */
  readonly file: (
    what: string,
    path: Effect.Effect<string, WorldstreamError>,
  ) => Effect.Effect<void, WorldstreamError>;
  /** Takes a folder's listing (`list` answers its names). */
  readonly listing: <A extends ReadonlyArray<string>>(
    what: string,
    list: Effect.Effect<A, WorldstreamError>,
  ) => Effect.Effect<A, WorldstreamError>;
  /** Whether a result built on these witnesses may be kept (no file was racily new). */
  readonly trusted: () => boolean;
  readonly taken: Array<Witness>;
}

function makeWitnesses(racyMs: number): Witnesses {
  const taken: Array<Witness> = [];
  let trusted = true;
  return {
    taken,
    trusted: () => trusted,
    file: (_what, path) =>
      Effect.gen(function* () {
        const take = Effect.map(Effect.flatMap(path, statOf), (s) => s.identity);
        const { identity, mtimeMs } = yield* Effect.flatMap(path, statOf);
        const now = yield* Clock.currentTimeMillis;
        if (mtimeMs !== undefined && now - mtimeMs < racyMs) trusted = false;
        taken.push({ take, seen: identity });
      }),
    listing: (_what, list) =>
      Effect.map(list, (names) => {
        taken.push({ take: Effect.map(list, (n) => n.join("\n")), seen: names.join("\n") });
        return names;
      }),
  };
}

/**
 * An OracleRoot that takes a witness of every file before it is read and of every listing it
 * answers. Paths go through the store's own checks (`local`) each time they are witnessed.
 */
function watched(store: OracleRoot, witness: Witnesses): OracleRoot {
  const file = (rel: string) => witness.file(rel, store.local(rel));
  return {
    ...store,
    readText: (rel) => Effect.andThen(file(rel), store.readText(rel)),
    readBytes: (rel) => Effect.andThen(file(rel), store.readBytes(rel)),
    exists: (rel) => Effect.andThen(file(rel), store.exists(rel)),
    digest: (rel) => Effect.andThen(file(rel), store.digest(rel)),
    list: (relDir, pattern) => witness.listing(relDir, store.list(relDir, pattern)),
    listTree: (relDir) =>
      witness.listing(relDir, Effect.map(store.listTree(relDir), (files) => [...files].sort())),
    local: (rel) => Effect.tap(store.local(rel), (path) => witness.file(rel, Effect.succeed(path))),
  };
}

/**
 * The identity of the file at `path` (links followed) as `kind:size:mtime:ctime:ino:dev`, or
 * `absent`, with its modification time.
 */
function statOf(
  path: string,
): Effect.Effect<{ identity: string; mtimeMs?: number }, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      try {
        const s = await Deno.stat(path);
        const identity = [
          s.isFile ? "file" : s.isDirectory ? "dir" : "other",
          s.size,
          s.mtime?.getTime() ?? "-",
          s.ctime?.getTime() ?? "-",
          s.ino ?? "-",
          s.dev,
        ].join(":");
        return s.mtime ? { identity, mtimeMs: s.mtime.getTime() } : { identity };
      } catch (e) {
        if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
          return { identity: "absent" };
        }
        throw e;
      }
    },
    catch: (e) => fail("ORACLE_READ_FAILED", `Cannot stat ${path}: ${(e as Error).message}`),
  });
}

/** The names in folder `dir`, sorted (none when it does not exist). */
function listDir(dir: string): Effect.Effect<ReadonlyArray<string>, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      try {
        return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return [];
        throw e;
      }
    },
    catch: (e) => fail("ORACLE_READ_FAILED", `Cannot list ${dir}: ${(e as Error).message}`),
  });
}

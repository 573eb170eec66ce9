/**
 * The local cache S3 objects are read through: DuckDB here has no httpfs, so a world in S3 is
 * copied to local files first. A cached object is named by its identity (bucket, key, ETag), so a
 * rewritten object is a new entry and never mistaken for the old one. Each object is fetched as
 * explicit byte ranges in parallel (never suffix ranges: s3rver answers those wrongly), every
 * range checked against the listed ETag and size, and renamed into place only when complete.
 *
 * Bounded: after each fetch the least recently used entries are removed until the cache holds at
 * most `maxBytes` (use is the access time, set explicitly on every hit, so a `noatime` mount does
 * not matter). Callers read cached objects through hard links placed where they ask (a mirror of
 * the world's layout), so evicting an entry never pulls a file from under a reader that holds a
 * link; the bytes go when the last link does. The modification time of a cached object is the
 * object's Last-Modified, so what a later check records of a part is the object's, not the
 * download's.
 */
import { Effect } from "effect";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { sha256Hex } from "../core/hash.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { S3, S3Object } from "./s3_client.ts";

/** Where the cache lives and how big it may grow. */
export interface CacheOptions {
  readonly dir: string;
  readonly maxBytes: number;
  /** Bytes per ranged GET (default 8 MiB). */
  readonly chunkBytes?: number;
  /** Ranged GETs in flight at once (default 8). */
  readonly concurrency?: number;
}

/** One object to place at a local path. */
export interface Placement {
  readonly bucket: string;
  readonly object: S3Object;
  /** Absolute local path the object's bytes should be readable at. */
  readonly at: string;
}

/** The cache over one S3 client. */
export interface ObjectCache {
  /** Fetches (or reuses) every object and links it at its `at` path. */
  readonly place: (items: ReadonlyArray<Placement>) => Effect.Effect<void, WorldstreamError>;
}

const MiB = 1024 * 1024;

/** A cache in `options.dir` over `s3`. */
export function makeObjectCache(s3: S3, options: CacheOptions): ObjectCache {
  const objects = join(options.dir, "objects");
  const chunk = options.chunkBytes ?? 8 * MiB;
  const concurrency = options.concurrency ?? 8;
  const io = (what: string, path: string) => (e: unknown) =>
    fail("ORACLE_READ_FAILED", `Object cache: cannot ${what} ${path}: ${(e as Error).message}`);

  const entryOf = (bucket: string, o: S3Object) =>
    join(objects, sha256Hex(`${bucket}\n${o.key}\n${o.etag}`));

  /** Downloads `o` into `path` (a temp file renamed into place once every range checks). */
  const download = (bucket: string, o: S3Object, path: string) =>
    Effect.gen(function* () {
      const tmp = `${path}.${crypto.randomUUID()}.part`;
      const url = `s3://${bucket}/${o.key}`;
      const changed = (why: string) =>
        fail("ORACLE_OBJECT_CHANGED", `${url} changed after it was listed: ${why}`);
      const ranges: Array<[number, number]> = [];
      for (let start = 0; start < o.size; start += chunk) {
        ranges.push([start, Math.min(o.size, start + chunk) - 1]);
      }
      if (ranges.length === 0) ranges.push([0, -1]);
      yield* Effect.acquireUseRelease(
        Effect.tryPromise({ try: () => open(tmp, "w"), catch: io("create", tmp) }),
        (handle) =>
          Effect.forEach(ranges, ([start, end]) =>
            Effect.gen(function* () {
              const got = yield* s3.getRange(bucket, o.key, { start, end, etag: o.etag });
              if (got.etag !== undefined && got.etag !== o.etag) {
                return yield* changed(`ETag ${got.etag}, listed ${o.etag}`);
              }
              if (got.total !== undefined && got.total !== o.size) {
                return yield* changed(`${got.total} bytes, listed ${o.size}`);
              }
              const want = Math.max(0, end - start + 1);
              if (got.bytes.length !== want) {
                return yield* changed(`range ${start}-${end} returned ${got.bytes.length} bytes`);
              }
              yield* Effect.tryPromise({
                try: () => handle.write(got.bytes, 0, want, start),
                catch: io("write", tmp),
              });
            }), { concurrency, discard: true }),
        (handle) => Effect.promise(() => handle.close()),
      ).pipe(
        Effect.andThen(Effect.tryPromise({
          try: async () => {
            await Deno.utime(tmp, new Date(), o.lastModified);
            await Deno.rename(tmp, path);
          },
          catch: io("store", path),
        })),
        Effect.onError(() => Effect.promise(() => Deno.remove(tmp).catch(() => undefined))),
      );
    });

  /** A verified cache entry for `o`, fetched when absent; its use time is set to now. */
  const ensure = (bucket: string, o: S3Object) =>
    Effect.gen(function* () {
      const path = entryOf(bucket, o);
      const size = yield* Effect.promise(() =>
        Deno.stat(path).then((s) => s.size, () => undefined)
      );
      if (size !== o.size) yield* download(bucket, o, path);
      else {
        yield* Effect.tryPromise({
          try: () => Deno.utime(path, new Date(), o.lastModified),
          catch: io("touch", path),
        });
      }
      return path;
    });

  /** Links `entry` at `at`, replacing another file there; false when the entry was evicted. */
  const link = (entry: string, at: string) =>
    Effect.tryPromise({
      try: async () => {
        await Deno.mkdir(dirname(at), { recursive: true });
        await Deno.remove(at).catch(() => undefined);
        try {
          await Deno.link(entry, at);
          return true;
        } catch (e) {
          if (e instanceof Deno.errors.NotFound) return false;
          throw e;
        }
      },
      catch: io("link", at),
    });

  const place = (items: ReadonlyArray<Placement>) =>
    Effect.gen(function* () {
      const total = items.reduce((n, i) => n + i.object.size, 0);
      if (total > options.maxBytes) {
        return yield* fail(
          "ORACLE_CACHE_TOO_SMALL",
          `Object cache ${options.dir} holds at most ${options.maxBytes} bytes, but one read needs ${total} (${items.length} objects); raise WORLDSTREAM_OBJECT_CACHE_BYTES`,
        );
      }
      yield* Effect.tryPromise({
        try: () => Deno.mkdir(objects, { recursive: true }),
        catch: io("create", objects),
      });
      const pinned = new Set<string>();
      yield* Effect.forEach(items, (item) =>
        Effect.gen(function* () {
          let entry = yield* ensure(item.bucket, item.object);
          // Another process may evict between the check and the link: fetch once more.
          if (!(yield* link(entry, item.at))) {
            entry = yield* ensure(item.bucket, item.object);
            if (!(yield* link(entry, item.at))) {
              return yield* fail("ORACLE_READ_FAILED", `Object cache: ${entry} vanished twice`);
            }
          }
          pinned.add(entry);
        }), { concurrency: Math.max(1, Math.floor(concurrency / 2)), discard: true });
      yield* evict(objects, options.maxBytes, pinned);
    });

  return { place };
}

/** Removes least recently used entries (not `pinned`) until at most `maxBytes` remain. */
function evict(dir: string, maxBytes: number, pinned: ReadonlySet<string>) {
  return Effect.promise(async () => {
    const entries: Array<{ path: string; size: number; used: number }> = [];
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || e.name.endsWith(".part")) continue;
      const path = join(dir, e.name);
      const info = await Deno.stat(path).catch(() => undefined);
      if (info) entries.push({ path, size: info.size, used: info.atime?.getTime() ?? 0 });
    }
    let total = entries.reduce((n, e) => n + e.size, 0);
    entries.sort((a, b) => a.used - b.used);
    const removed: Array<string> = [];
    for (const e of entries) {
      if (total <= maxBytes) break;
      if (pinned.has(e.path)) continue;
      await Deno.remove(e.path).catch(() => undefined);
      total -= e.size;
      removed.push(e.path);
    }
    return removed;
  }).pipe(
    Effect.tap((removed) =>
      removed.length === 0
        ? Effect.void
        : Effect.logInfo("object cache evicted least recently used entries").pipe(
          Effect.annotateLogs({ evicted: removed.length }),
        )
    ),
  );
}

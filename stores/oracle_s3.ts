/**
 * The oracle store on S3 (the S3 layer of stores/oracle.ts): an engine run root `s3://bucket/prefix`
 * read through the object cache (stores/object_cache.ts), and stream views under an `s3://` view
 * root pulled down before use and published back after a build.
 *
 * Opening a root lists every object under its prefix once; that listing is the world as this run
 * sees it. Each object read is checked against it (ETag and size), so an object rewritten or
 * removed since fails ORACLE_OBJECT_CHANGED instead of mixing two versions of the world. DuckDB
 * reads objects through hard links in a mirror of the world's layout under this process's
 * session folder, so the rest of worldstream sees local paths. Keys must stay under the prefix:
 * a key with `.`/`..` or empty segments fails PATH_ESCAPES_ROOT when it is read or listed.
 *
 * Publication of a view: the old receipt goes first (a reader then finds no view rather than a
 * mixed one), then the parts, the manifest, and the receipt last, then leftovers of an older view
 * are removed. A failed upload removes what it put; a crash in between leaves parts without a
 * receipt, which readers refuse (STREAM_VIEW_MISSING) and builders report
 * (STREAM_VIEW_PARTIAL_EXISTS, rebuilt with --repair).
 */
import { Effect } from "effect";
import { join, posix } from "node:path";
import { sha256Hex } from "../core/hash.ts";
import type { S3Root } from "../core/store_root.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { ObjectCache } from "./object_cache.ts";
import type { OracleRoot, ViewFolder } from "./oracle.ts";
import { fileDigest, safeJoin } from "./oracle_fs.ts";
import type { S3, S3Object } from "./s3_client.ts";

/** What an S3 root reads through. */
export interface S3Context {
  readonly s3: S3;
  readonly cache: ObjectCache;
  /** This process's folder for mirrors (links into the cache). */
  readonly sessionDir: string;
}

const RECEIPT = "_stream_sort_receipt.json";
const MANIFEST = "_stream_view_manifest.json";

/** Opens `root`; a bucket or prefix holding no object fails ENGINE_ROOT_MISSING. */
export function openOracleS3(
  root: S3Root,
  ctx: S3Context,
): Effect.Effect<OracleRoot, WorldstreamError> {
  return Effect.gen(function* () {
    const listed = yield* ctx.s3.list(root.bucket, root.prefix).pipe(
      Effect.mapError((e) =>
        e.reason === "ORACLE_BUCKET_MISSING"
          ? fail("ENGINE_ROOT_MISSING", `Engine run root ${root.url}: ${e.message}`)
          : e
      ),
    );
    const objects = new Map<string, S3Object>();
    for (const o of listed) {
      // Folder markers (`dir/`) hold nothing to read.
      if (o.key.endsWith("/")) continue;
      objects.set(o.key.slice(root.prefix.length), o);
    }
    if (objects.size === 0) {
      return yield* fail(
        "ENGINE_ROOT_MISSING",
        `Engine run root ${root.url} holds no objects (wrong bucket or prefix?)`,
      );
    }
    const localRoot = join(ctx.sessionDir, "worlds", sha256Hex(root.url).slice(0, 24));
    return makeStore(root, objects, localRoot, ctx);
  });
}

function makeStore(
  root: S3Root,
  objects: ReadonlyMap<string, S3Object>,
  localRoot: string,
  ctx: S3Context,
): OracleRoot {
  const escapes = (rel: string) =>
    fail(
      "PATH_ESCAPES_ROOT",
      `Key ${JSON.stringify(root.prefix + rel)} escapes the engine run root ${root.url}`,
    );
  /** `rel` normalized and checked (as written and as a key under the prefix). */
  const checked = (rel: string) =>
    safeJoin(localRoot, rel).pipe(Effect.map(() => posix.normalize(rel).replace(/\/+$/, "")));
  const keyChecked = (rel: string) =>
    rel.split("/").some((s) => s === "" || s === "." || s === "..")
      ? Effect.fail(escapes(rel))
      : Effect.succeed(rel);
  const placeAll = (rels: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      for (const rel of rels) yield* keyChecked(rel);
      yield* ctx.cache.place(rels.map((rel) => ({
        bucket: root.bucket,
        object: objects.get(rel)!,
        at: join(localRoot, rel),
      })));
      return rels.map((rel) => join(localRoot, rel));
    });

  const local = (rel: string) =>
    checked(rel).pipe(
      Effect.flatMap((norm) =>
        objects.has(norm)
          ? placeAll([norm]).pipe(Effect.map((paths) => paths[0]))
          : Effect.succeed(join(localRoot, norm))
      ),
    );
  const readFile = <A>(rel: string, read: (path: string) => Promise<A>) =>
    checked(rel).pipe(
      Effect.flatMap((norm) =>
        objects.has(norm)
          ? placeAll([norm]).pipe(Effect.flatMap(([path]) =>
            Effect.tryPromise({
              try: () => read(path),
              catch: (e) =>
                fail(
                  "ORACLE_READ_FAILED",
                  `Cannot read ${root.url}/${norm}: ${(e as Error).message}`,
                ),
            })
          ))
          : Effect.succeed(undefined)
      ),
    );
  const under = (dir: string) => (dir === "" || dir === "." ? "" : `${dir}/`);
  const exists = (rel: string) =>
    checked(rel).pipe(
      Effect.map((norm) =>
        objects.has(norm) || [...objects.keys()].some((k) => k.startsWith(under(norm)))
      ),
    );
  const digest = (rel: string) =>
    local(rel).pipe(Effect.flatMap((path) =>
      Effect.tryPromise({
        try: () => fileDigest(path),
        catch: (e) => fail("ORACLE_READ_FAILED", `Cannot read ${path}: ${(e as Error).message}`),
      })
    ));
  const list = (relDir: string, pattern: RegExp) =>
    checked(relDir).pipe(Effect.flatMap((dir) => {
      const prefix = under(dir);
      const rels = [...objects.keys()].filter((k) => {
        if (!k.startsWith(prefix)) return false;
        const name = k.slice(prefix.length);
        return !name.includes("/") && pattern.test(name);
      }).sort();
      return placeAll(rels);
    }));
  const listTree = (relDir: string) =>
    checked(relDir).pipe(Effect.flatMap((dir) =>
      Effect.gen(function* () {
        const prefix = under(dir);
        const rels = [...objects.keys()].filter((k) => k.startsWith(prefix));
        for (const rel of rels) yield* keyChecked(rel);
        return rels.map((k) => k.slice(prefix.length));
      })
    ));
  return {
    root: root.url,
    localRoot,
    readText: (rel) => readFile(rel, (path) => Deno.readTextFile(path)),
    readBytes: (rel) => readFile(rel, (path) => Deno.readFile(path)),
    exists,
    digest,
    list,
    listTree,
    local,
  };
}

/** The view folder of `viewRoot`: a local copy that is pulled before use and published after. */
export function s3ViewFolder(viewRoot: S3Root, ctx: S3Context): ViewFolder {
  const localRoot = join(ctx.sessionDir, "views", sha256Hex(viewRoot.url).slice(0, 24));
  const prefixOf = (outputId: string) => `${viewRoot.prefix}output_id=${outputId}/`;
  const dirOf = (outputId: string) => join(localRoot, `output_id=${outputId}`);
  const remote = (outputId: string) =>
    ctx.s3.list(viewRoot.bucket, prefixOf(outputId)).pipe(
      Effect.map((all) => all.filter((o) => !o.key.slice(prefixOf(outputId).length).includes("/"))),
    );

  const pull = (outputId: string) =>
    Effect.gen(function* () {
      const dir = dirOf(outputId);
      yield* Effect.tryPromise({
        try: () => Deno.remove(dir, { recursive: true }).catch(() => undefined),
        catch: () => fail("WRITE_FAILED", `Cannot clear ${dir}`),
      });
      const found = yield* remote(outputId);
      yield* ctx.cache.place(found.map((o) => ({
        bucket: viewRoot.bucket,
        object: o,
        at: join(dir, o.key.slice(prefixOf(outputId).length)),
      })));
    });

  const publish = (outputId: string) =>
    Effect.gen(function* () {
      const dir = dirOf(outputId);
      const names = yield* Effect.tryPromise({
        try: async () => {
          const out: Array<string> = [];
          for await (const e of Deno.readDir(dir)) if (e.isFile) out.push(e.name);
          return out.sort();
        },
        catch: (e) => fail("WRITE_FAILED", `Cannot list ${dir}: ${(e as Error).message}`),
      });
      if (!names.includes(RECEIPT) || !names.includes(MANIFEST)) {
        return yield* fail("WRITE_FAILED", `Stream view ${dir} is not complete; not published`);
      }
      const prefix = prefixOf(outputId);
      const before = yield* remote(outputId);
      const bucket = viewRoot.bucket;
      if (before.some((o) => o.key === prefix + RECEIPT)) {
        yield* ctx.s3.remove(bucket, [prefix + RECEIPT]);
      }
      const parts = names.filter((n) => n !== RECEIPT && n !== MANIFEST);
      const put = (name: string) =>
        Effect.tryPromise({
          try: () => Deno.readFile(join(dir, name)),
          catch: (e) => fail("WRITE_FAILED", `Cannot read ${dir}/${name}: ${(e as Error).message}`),
        }).pipe(Effect.flatMap((bytes) => ctx.s3.put(bucket, prefix + name, bytes)));
      const keys = [...parts, MANIFEST, RECEIPT].map((n) => prefix + n);
      // Leftovers of an older view go before the new receipt, so no reader counts them in.
      const keep = new Set(keys);
      const stale = before.map((o) => o.key).filter((k) => !keep.has(k));
      if (stale.length > 0) yield* ctx.s3.remove(bucket, stale);
      yield* Effect.gen(function* () {
        yield* Effect.forEach(parts, put, { concurrency: 4, discard: true });
        yield* put(MANIFEST);
        yield* put(RECEIPT);
      }).pipe(
        Effect.onError(() => ctx.s3.remove(bucket, keys).pipe(Effect.ignore)),
      );
    });

  return { root: viewRoot.url, localRoot, pull, publish };
}

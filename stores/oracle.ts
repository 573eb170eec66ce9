/**
 * The oracle store: opens an engine run root for reading, and a stream view root for building and
 * reading views. A service so that where a world lives is the runtime's choice, not the reader's:
 * local folders go to the file layer (stores/oracle_fs.ts), `s3://bucket/prefix` roots to the S3
 * layer (stores/oracle_s3.ts), which copies objects to a local cache DuckDB can read.
 */
import { Context, Effect, Layer } from "effect";
import { join, resolve } from "node:path";
import type { Profile } from "../core/profile.ts";
import { isUrlRoot, parseS3Root, type S3Root } from "../core/store_root.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { makeObjectCache } from "./object_cache.ts";
import { openOracleFs } from "./oracle_fs.ts";
import { openOracleS3, type S3Context, s3ViewFolder } from "./oracle_s3.ts";
import { makeS3, type S3Options } from "./s3_client.ts";

/** Read access to one opened engine run root. */
export interface OracleRoot {
  /** The root as given, resolved: an absolute local path or `s3://bucket/prefix`. */
  readonly root: string;
  /** The local folder the paths this store hands out lie under (for S3, a mirror of the root). */
  readonly localRoot: string;
  /** The text of `rel`, or `undefined` when it does not exist. */
  readonly readText: (rel: string) => Effect.Effect<string | undefined, WorldstreamError>;
  /** The bytes of `rel`, or `undefined` when it does not exist. */
  readonly readBytes: (rel: string) => Effect.Effect<Uint8Array | undefined, WorldstreamError>;
  readonly exists: (rel: string) => Effect.Effect<boolean, WorldstreamError>;
  /** The sha256 (hex) and size of file `rel`. */
  readonly digest: (
    rel: string,
  ) => Effect.Effect<{ sha256_hex: string; size_bytes: number }, WorldstreamError>;
  /**
   * Files in `relDir` whose names match `pattern`, sorted lexicographically, as absolute local
   * paths (what DuckDB reads). A matching entry that is not a file (or a link to one inside the
   * root) fails; none is skipped.
   */
  readonly list: (
    relDir: string,
    pattern: RegExp,
  ) => Effect.Effect<ReadonlyArray<string>, WorldstreamError>;
  /** Every file under `relDir` (links followed), as paths relative to it, in no set order. */
  readonly listTree: (relDir: string) => Effect.Effect<ReadonlyArray<string>, WorldstreamError>;
  /** The absolute local path of `rel` (after the escape checks, as written and symlinks resolved). */
  readonly local: (rel: string) => Effect.Effect<string, WorldstreamError>;
}

/**
 * A stream view root as a local folder. Local roots are the folder itself; an S3 root is a local
 * copy: `pull` fetches an output's view as it stands in S3 (through the cache), `publish` uploads
 * the one built locally (parts, manifest, receipt last).
 */
export interface ViewFolder {
  /** The view root as given (`s3://…` or an absolute path): what manifests record. */
  readonly root: string;
  /** The local folder holding `output_id=<id>/` views. */
  readonly localRoot: string;
  readonly pull: (outputId: string) => Effect.Effect<void, WorldstreamError>;
  readonly publish: (outputId: string) => Effect.Effect<void, WorldstreamError>;
}

/** The object store settings of a profile (`wiring.object_store`), resolved. */
export interface ObjectStoreOptions extends S3Options {
  /** The platform's object store root, when the profile names one. */
  readonly root?: string;
  readonly cacheDir: string;
  readonly cacheMaxBytes: number;
}

/** Opens engine run roots and stream view roots. */
export class OracleStore extends Context.Service<OracleStore, {
  /**
   * Opens `root`; a missing or non-directory root (an empty bucket prefix) fails
   * `ENGINE_ROOT_MISSING`, a scheme with no store `ORACLE_STORE_UNSUPPORTED`.
   */
  readonly open: (root: string) => Effect.Effect<OracleRoot, WorldstreamError>;
  /** The view folder of stream view root `root`. */
  readonly views: (root: string) => Effect.Effect<ViewFolder, WorldstreamError>;
}>()("worldstream/stores/OracleStore") {
  /** The file store alone: `s3://` roots fail ORACLE_STORE_UNSUPPORTED (no object store given). */
  static readonly layer = Layer.succeed(
    OracleStore,
    OracleStore.of({
      open: (root) => isUrlRoot(root) ? Effect.fail(noStore(root)) : openOracleFs(root),
      views: (root) =>
        isUrlRoot(root) ? Effect.fail(noStore(root)) : Effect.succeed(localViews(root)),
    }),
  );

  /** Local folders and `s3://` roots, S3 read through the cache `options` describe. */
  static readonly layerOf = (options: ObjectStoreOptions) =>
    Layer.effect(
      OracleStore,
      Effect.gen(function* () {
        if (options.root !== undefined && isUrlRoot(options.root)) {
          const parsed = parseS3Root(options.root);
          if (parsed instanceof WorldstreamError) return yield* parsed;
        }
        const sessionDir = yield* session(options.cacheDir);
        const s3 = makeS3(options);
        const ctx: S3Context = {
          s3,
          sessionDir,
          cache: makeObjectCache(s3, { dir: options.cacheDir, maxBytes: options.cacheMaxBytes }),
        };
        const s3Root = (root: string): Effect.Effect<S3Root, WorldstreamError> => {
          const parsed = parseS3Root(root);
          return parsed instanceof WorldstreamError ? Effect.fail(parsed) : Effect.succeed(parsed);
        };
        return OracleStore.of({
          open: (root) =>
            isUrlRoot(root)
              ? s3Root(root).pipe(Effect.flatMap((r) => openOracleS3(r, ctx)))
              : openOracleFs(root),
          views: (root) =>
            isUrlRoot(root)
              ? s3Root(root).pipe(Effect.map((r) => s3ViewFolder(r, ctx)))
              : Effect.succeed(localViews(root)),
        });
      }),
    );

  /** The store a profile's `wiring.object_store` describes. */
  static readonly layerFor = (profile: Profile) => OracleStore.layerOf(objectStoreOptions(profile));
}

/** A profile's `wiring.object_store`, with the cache defaults (`<runs_root>/object_cache`, 4 GiB). */
export function objectStoreOptions(profile: Profile): ObjectStoreOptions {
  const o = profile.wiring.object_store;
  return {
    ...(o?.root ? { root: o.root } : {}),
    ...(o?.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o?.region ? { region: o.region } : {}),
    pathStyle: o?.path_style ?? true,
    cacheDir: o?.cache_dir ? resolve(o.cache_dir) : join(profile.paths.runsRoot, "object_cache"),
    cacheMaxBytes: o?.cache_max_bytes ?? 4 * 1024 ** 3,
  };
}

function noStore(root: string): WorldstreamError {
  const parsed = parseS3Root(root);
  return parsed instanceof WorldstreamError ? parsed : fail(
    "ORACLE_STORE_UNSUPPORTED",
    `Root ${root} is in an object store, and this command was given none (a profile's wiring.object_store)`,
  );
}

function localViews(root: string): ViewFolder {
  return { root, localRoot: root, pull: () => Effect.void, publish: () => Effect.void };
}

/**
 * This process's folder for S3 mirrors (hard links into the cache): `<cache>/sessions/<pid>`.
 * Folders of processes that are gone are removed first, so their links stop holding evicted bytes.
 */
function session(cacheDir: string): Effect.Effect<string, WorldstreamError> {
  const sessions = join(cacheDir, "sessions");
  const dir = join(sessions, String(Deno.pid));
  return Effect.tryPromise({
    try: async () => {
      await Deno.mkdir(sessions, { recursive: true });
      for await (const e of Deno.readDir(sessions)) {
        if (e.name === String(Deno.pid) || !/^\d+$/.test(e.name)) continue;
        const alive = await Deno.stat(`/proc/${e.name}`).then(() => true, () => false);
        if (!alive) await Deno.remove(join(sessions, e.name), { recursive: true }).catch(() => {});
      }
      await Deno.mkdir(dir, { recursive: true });
      return dir;
    },
    catch: (e) =>
      fail("ORACLE_READ_FAILED", `Cannot prepare the object cache at ${cacheDir}: ${String(e)}`),
  });
}

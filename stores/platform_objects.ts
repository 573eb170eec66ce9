/**
 * The platform object store root's own small documents (run facts views): each read and written
 * whole, under a local folder or an `s3://bucket/prefix` root. The Scenario Runner's facts live
 * here, not in a world, so they are not read through an engine run root (opening one lists every
 * object under it, and the platform root holds every run's worlds and facts).
 *
 * Never half-written: a local document is written to a temporary file and renamed; an S3 PUT
 * makes the object appear whole or not at all. A read of an S3 object is checked against the
 * ETag and size it was listed with (ORACLE_OBJECT_CHANGED when it changed in between).
 */
import { Effect, type Scope } from "effect";
import { join } from "node:path";
import { isUrlRoot, parseS3Root, resolveRoot } from "../core/store_root.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { writeFileAtomic } from "./oracle_fs.ts";
import { makeS3, type S3Options } from "./s3_client.ts";

/** Whole-document access under one platform object store root. */
export interface PlatformObjects {
  /** The root, resolved: an absolute folder or `s3://bucket/prefix`. */
  readonly root: string;
  /** Where `rel` is, for messages. */
  readonly where: (rel: string) => string;
  /** The text of `rel`, or `undefined` when there is no such document. */
  readonly read: (rel: string) => Effect.Effect<string | undefined, WorldstreamError>;
  /** Writes `rel` whole (replacing it). */
  readonly write: (rel: string, text: string) => Effect.Effect<void, WorldstreamError>;
}

/**
 * Opens `root` (an S3 client for an `s3://` root, closed with the scope). A scheme without a
 * store fails ORACLE_STORE_UNSUPPORTED, a malformed bucket ENGINE_ROOT_INVALID.
 */
export function openPlatformObjects(
  root: string,
  options: S3Options,
): Effect.Effect<PlatformObjects, WorldstreamError, Scope.Scope> {
  if (!isUrlRoot(root)) return Effect.succeed(folderObjects(resolveRoot(root)));
  const parsed = parseS3Root(root);
  if (parsed instanceof WorldstreamError) return Effect.fail(parsed);
  return Effect.acquireRelease(
    Effect.sync(() => makeS3(options)),
    (s3) => Effect.sync(() => s3.close()),
  ).pipe(Effect.map((s3): PlatformObjects => {
    const key = (rel: string) => `${parsed.prefix}${rel}`;
    const where = (rel: string) => `s3://${parsed.bucket}/${key(rel)}`;
    return {
      root: parsed.url,
      where,
      read: (rel) =>
        Effect.gen(function* () {
          const listed = yield* s3.list(parsed.bucket, key(rel));
          const object = listed.find((o) => o.key === key(rel));
          if (object === undefined) return undefined;
          const got = yield* s3.getRange(parsed.bucket, object.key, {
            start: 0,
            end: object.size - 1,
            etag: object.etag,
          });
          if (got.bytes.length !== object.size) {
            return yield* fail(
              "ORACLE_OBJECT_CHANGED",
              `Cannot read ${
                where(rel)
              }: ${got.bytes.length} bytes arrived, ${object.size} were listed`,
            );
          }
          return yield* utf8(got.bytes, where(rel));
        }),
      write: (rel, text) => s3.put(parsed.bucket, key(rel), new TextEncoder().encode(text)),
    };
  }));
}

function folderObjects(root: string): PlatformObjects {
  const where = (rel: string) => join(root, rel);
  return {
    root,
    where,
    read: (rel) =>
      Effect.tryPromise({
        try: () => Deno.readTextFile(where(rel)),
        catch: (e) => e,
      }).pipe(Effect.catch((e) =>
        e instanceof Deno.errors.NotFound ? Effect.succeed(undefined) : Effect.fail(
          fail(
            "ORACLE_READ_FAILED",
            `Cannot read ${where(rel)}: ${String((e as Error).message ?? e).split("\n")[0]}`,
          ),
        )
      )),
    write: (rel, text) => writeFileAtomic(where(rel), text),
  };
}

function utf8(bytes: Uint8Array, where: string): Effect.Effect<string, WorldstreamError> {
  return Effect.try({
    try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    catch: () => fail("ORACLE_READ_FAILED", `Cannot read ${where}: not UTF-8 text`),
  });
}

/**
 * The only door to S3 (`@aws-sdk/client-s3`): list, ranged get, put and delete, each failing with
 * a reason code that names the bucket and key. Path-style addressing is the default, since
 * S3-compatible servers (s3rver, MinIO, LocalStack) rarely resolve virtual-host buckets; the
 * credentials come only from the SDK's default provider chain (the environment first), never from
 * a profile. Checksums are computed and validated only where S3 requires them: s3rver does not
 * understand the SDK's default trailing checksums, and every read is verified here by size and
 * ETag instead.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Effect } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** Where the object store is and how to address it (from the profile's `wiring.object_store`). */
export interface S3Options {
  /** An S3-compatible endpoint (`http://127.0.0.1:4568`); none means AWS itself. */
  readonly endpoint?: string;
  /** Defaults to us-east-1. */
  readonly region?: string;
  /** Path-style addressing (`endpoint/bucket/key`); default true. */
  readonly pathStyle?: boolean;
}

/** One listed object. */
export interface S3Object {
  readonly key: string;
  readonly size: number;
  /** As S3 sends it, quotes included. */
  readonly etag: string;
  readonly lastModified: Date;
}

/** One ranged read: the bytes and what S3 said about the whole object. */
export interface S3Range {
  readonly bytes: Uint8Array;
  readonly etag: string | undefined;
  /** The object's total size from Content-Range. */
  readonly total: number | undefined;
}

/** A connected client. */
export interface S3 {
  readonly describe: string;
  /** Every object under `prefix` (a bucket that does not exist fails ORACLE_BUCKET_MISSING). */
  readonly list: (
    bucket: string,
    prefix: string,
  ) => Effect.Effect<ReadonlyArray<S3Object>, WorldstreamError>;
  /**
   * Bytes `start..end` (inclusive) of an object, only if it still has `etag`; a vanished or
   * changed object fails ORACLE_OBJECT_CHANGED. `end < start` reads a whole (empty) object.
   */
  readonly getRange: (
    bucket: string,
    key: string,
    range: { readonly start: number; readonly end: number; readonly etag: string },
  ) => Effect.Effect<S3Range, WorldstreamError>;
  readonly put: (
    bucket: string,
    key: string,
    body: Uint8Array,
  ) => Effect.Effect<void, WorldstreamError>;
  readonly remove: (
    bucket: string,
    keys: ReadonlyArray<string>,
  ) => Effect.Effect<void, WorldstreamError>;
  /** Closes the client's sockets. */
  readonly close: () => void;
}

/** A client for `options`. */
export function makeS3(options: S3Options): S3 {
  const client = new S3Client({
    region: options.region || "us-east-1",
    forcePathStyle: options.pathStyle ?? true,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const describe = options.endpoint ?? `AWS S3 (${options.region || "us-east-1"})`;
  const call = <A>(what: string, bucket: string, key: string | undefined, f: () => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (e) =>
        s3Error(e, what, `s3://${bucket}${key === undefined ? "" : `/${key}`}`, describe),
    });

  const list = (bucket: string, prefix: string) =>
    call("list", bucket, prefix, async () => {
      const out: Array<S3Object> = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          if (o.Key === undefined || o.ETag === undefined) continue;
          out.push({
            key: o.Key,
            size: o.Size ?? 0,
            etag: o.ETag,
            lastModified: o.LastModified ?? new Date(0),
          });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return out;
    });

  const getRange = (
    bucket: string,
    key: string,
    range: { readonly start: number; readonly end: number; readonly etag: string },
  ) =>
    call("read", bucket, key, async () => {
      // Always an explicit first-last range: s3rver answers suffix ranges (`bytes=-N`) wrongly.
      const res = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          IfMatch: range.etag,
          ...(range.end >= range.start ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array();
      const total = /\/(\d+)$/.exec(res.ContentRange ?? "")?.[1];
      return {
        bytes,
        etag: res.ETag,
        total: total === undefined ? (res.ContentRange ? undefined : bytes.length) : Number(total),
      };
    });

  const put = (bucket: string, key: string, body: Uint8Array) =>
    call(
      "write",
      bucket,
      key,
      () =>
        client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body })).then(() =>
          undefined
        ),
    );

  const remove = (bucket: string, keys: ReadonlyArray<string>) =>
    Effect.forEach(chunks(keys, 1000), (batch) =>
      call("delete", bucket, batch[0], async () => {
        const res = await client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = res.Errors?.[0];
        if (failed) throw new Error(`${failed.Key}: ${failed.Code} ${failed.Message ?? ""}`);
      }), { discard: true });

  return { describe, list, getRange, put, remove, close: () => client.destroy() };
}

function chunks<A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> {
  const out: Array<ReadonlyArray<A>> = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const DENIED = new Set([
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "CredentialsProviderError",
  "ExpiredToken",
  "InvalidToken",
]);

/** The reason code and message of an SDK failure. */
function s3Error(e: unknown, what: string, url: string, endpoint: string): WorldstreamError {
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = err.name ?? "Error";
  const status = err.$metadata?.httpStatusCode;
  const detail = `${name}${status ? ` ${status}` : ""}: ${err.message ?? String(e)}`;
  if (name === "NoSuchBucket") {
    return fail("ORACLE_BUCKET_MISSING", `Cannot ${what} ${url}: the bucket does not exist`);
  }
  if (DENIED.has(name) || status === 403) {
    return fail(
      "ORACLE_ACCESS_DENIED",
      `Cannot ${what} ${url}: access denied by ${endpoint} (${detail})`,
    );
  }
  if (
    what === "read" &&
    (name === "NoSuchKey" || name === "PreconditionFailed" || status === 404 || status === 412)
  ) {
    return fail(
      "ORACLE_OBJECT_CHANGED",
      `Cannot read ${url}: it was removed or replaced after it was listed (${detail})`,
    );
  }
  return fail(
    what === "read" || what === "list" ? "ORACLE_READ_FAILED" : "WRITE_FAILED",
    `Cannot ${what} ${url} at ${endpoint}: ${detail}`,
  );
}

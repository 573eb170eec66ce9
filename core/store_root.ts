/**
 * Roots that name where a world or its stream views live: a local folder, or `s3://bucket/prefix`.
 * Path functions of `node:path` would fold `s3://` into `s3:/`, so every root is joined and
 * resolved here, by its scheme.
 */
import { join, resolve } from "node:path";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** A parsed `s3://bucket/prefix` root; `prefix` is empty or ends with `/`. */
export interface S3Root {
  readonly bucket: string;
  readonly prefix: string;
  /** `s3://bucket/prefix` without a trailing slash. */
  readonly url: string;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Whether `root` names an object store rather than a local folder. */
export function isUrlRoot(root: string): boolean {
  return SCHEME.test(root);
}

/** `root` made absolute when it is a local folder; URLs are kept as given (minus a trailing /). */
export function resolveRoot(root: string): string {
  return isUrlRoot(root) ? root.replace(/\/+$/, "") : resolve(root);
}

/** `parts` joined under `root`, by the root's scheme. */
export function joinRoot(root: string, ...parts: ReadonlyArray<string>): string {
  return isUrlRoot(root) ? [root.replace(/\/+$/, ""), ...parts].join("/") : join(root, ...parts);
}

/**
 * Parses an `s3://` root. Another scheme fails ORACLE_STORE_UNSUPPORTED (no store is built for
 * it); a malformed bucket or a prefix with `.`/`..`/empty segments fails ENGINE_ROOT_INVALID.
 */
export function parseS3Root(root: string): S3Root | WorldstreamError {
  const scheme = SCHEME.exec(root)?.[1]?.toLowerCase();
  if (scheme !== "s3") {
    return fail(
      "ORACLE_STORE_UNSUPPORTED",
      `Root ${root} uses the ${
        scheme ?? "unknown"
      }:// scheme; worldstream reads local folders and s3:// only`,
    );
  }
  const rest = root.slice("s3://".length).replace(/\/+$/, "");
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash + 1);
  if (!BUCKET.test(bucket)) {
    return fail(
      "ENGINE_ROOT_INVALID",
      `Root ${root}: ${JSON.stringify(bucket)} is not a bucket name`,
    );
  }
  const badSegment = path.split("/").some((s) => s === "" || s === "." || s === "..");
  // deno-lint-ignore no-control-regex
  const badChar = /['"\\\u0000-\u001f]/.test(path);
  if (path !== "" && (badSegment || badChar)) {
    return fail(
      "ENGINE_ROOT_INVALID",
      `Root ${root}: the prefix has empty, . or .. segments or quotes`,
    );
  }
  return {
    bucket,
    prefix: path === "" ? "" : `${path}/`,
    url: `s3://${bucket}${path === "" ? "" : `/${path}`}`,
  };
}

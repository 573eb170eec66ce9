/**
 * The oracle store: opens an engine run root for reading. A service so that where a world lives
 * is the runtime's choice, not the reader's: the file store opens local paths today, and an S3
 * store slots in here for `s3://` roots (copying objects to a local cache DuckDB can read).
 */
import { Context, type Effect, Layer } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { openOracleFs } from "./oracle_fs.ts";

/** Read access to one opened engine run root. */
export interface OracleRoot {
  /** The root as an absolute local path (what DuckDB reads). */
  readonly root: string;
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
   * Files in `relDir` whose names match `pattern`, sorted lexicographically, as absolute paths.
   * A matching entry that is not a file (or a link to one inside the root) fails; none is skipped.
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

/** Opens engine run roots. */
export class OracleStore extends Context.Service<OracleStore, {
  /** Opens `root`; a missing or non-directory root fails `ENGINE_ROOT_MISSING`. */
  readonly open: (root: string) => Effect.Effect<OracleRoot, WorldstreamError>;
}>()("worldstream/stores/OracleStore") {
  /** The file store: roots are local folders. */
  static readonly layer = Layer.succeed(OracleStore, OracleStore.of({ open: openOracleFs }));
}

/**
 * Who may call the admin API: bearer tokens from the environment, never from a file or a flag.
 * `WORLDSTREAM_ADMIN_TOKEN` is the operator (every route), `WORLDSTREAM_VIEWER_TOKEN` a viewer
 * (GET routes only). Each token carries a principal name (`user:operator`, `user:viewer`) that
 * handlers see, so governance can later authorize actions per principal.
 *
 * Tokens are compared in constant time (every byte of a same-length candidate is looked at), and
 * are never logged, echoed or put in an error message. Without an operator token, the `local`
 * profile makes a random one at start (printed once to stderr by the caller); any other profile
 * refuses to serve the API (ADMIN_TOKEN_MISSING), so a container never exposes an open API.
 */
import { Effect } from "effect";
import type { Env } from "../core/profile_interpolate.ts";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** Who made a request. */
export interface Principal {
  /** E.g. `user:operator`. */
  readonly name: string;
  readonly role: "operator" | "viewer";
}

/** The tokens the API accepts. */
export interface AdminTokens {
  readonly operator: string;
  readonly viewer?: string;
}

/** The tokens of a start, and the operator token when it was made here (to print once). */
export interface TokenSetup {
  readonly tokens: AdminTokens;
  readonly generated?: string;
}

/** The shortest token accepted: a guessable token is no gate. */
export const MIN_TOKEN_CHARS = 16;

const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/**
 * The tokens from `env`: ADMIN_TOKEN_MISSING without an operator token unless `profileId` is
 * `local` (then a random one is made); ADMIN_TOKEN_INVALID for a token shorter than
 * {@link MIN_TOKEN_CHARS} or with spaces or control characters (the message names the variable,
 * never the value).
 */
export function adminTokens(
  profileId: string,
  env: Env,
): Effect.Effect<TokenSetup, WorldstreamError> {
  return Effect.gen(function* () {
    const check = (name: string, value: string | undefined) =>
      value === undefined || value === ""
        ? Effect.succeed(undefined)
        : value.length < MIN_TOKEN_CHARS || !TOKEN_CHARS.test(value)
        ? Effect.fail(
          fail(
            "ADMIN_TOKEN_INVALID",
            `${name} must be at least ${MIN_TOKEN_CHARS} printable characters without spaces`,
          ),
        )
        : Effect.succeed(value);
    const operator = yield* check("WORLDSTREAM_ADMIN_TOKEN", env.WORLDSTREAM_ADMIN_TOKEN);
    const viewer = yield* check("WORLDSTREAM_VIEWER_TOKEN", env.WORLDSTREAM_VIEWER_TOKEN);
    if (operator !== undefined && viewer === operator) {
      return yield* fail(
        "ADMIN_TOKEN_INVALID",
        "WORLDSTREAM_VIEWER_TOKEN must differ from WORLDSTREAM_ADMIN_TOKEN",
      );
    }
    const withViewer = viewer === undefined ? {} : { viewer };
    if (operator !== undefined) return { tokens: { operator, ...withViewer } };
    if (profileId !== "local") {
      return yield* fail(
        "ADMIN_TOKEN_MISSING",
        `The ${profileId} profile serves the admin API only with WORLDSTREAM_ADMIN_TOKEN set`,
      );
    }
    const generated = randomToken();
    return { tokens: { operator: generated, ...withViewer }, generated };
  });
}

/** 32 random bytes as base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * The principal an `Authorization` header names, or `undefined` for none or a wrong token. Both
 * tokens are always compared, so the time taken does not tell which one nearly matched.
 */
export function principalOf(
  tokens: AdminTokens,
  authorization: string | null | undefined,
): Principal | undefined {
  const match = /^Bearer ([\x21-\x7e]+)$/.exec(authorization ?? "");
  const given = match?.[1] ?? "";
  const isOperator = constantTimeEqual(given, tokens.operator);
  const isViewer = tokens.viewer !== undefined && constantTimeEqual(given, tokens.viewer);
  if (match === null) return undefined;
  if (isOperator) return { name: "user:operator", role: "operator" };
  if (isViewer) return { name: "user:viewer", role: "viewer" };
  return undefined;
}

const encoder = new TextEncoder();

/**
 * Whether `a` equals `b`, looking at every byte of the longer one whatever differs, so the time
 * taken depends on the lengths only.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/**
 * Dashboard sessions: a browser never keeps a bearer token. The login form (or a `?token=` link,
 * redirected away at once) exchanges a valid token for a random session id in an HttpOnly,
 * SameSite=Strict cookie; the session carries the token's principal and a CSRF token of its own,
 * which the page reads from `GET /v1/session` and sends back in {@link CSRF_HEADER} on every
 * mutating request. A cookie alone never changes anything: a cookie-authenticated POST also needs
 * that header (a cross-site form cannot set it) and, when the browser names an Origin, the API's
 * own origin.
 *
 * Sessions live in memory (a restart logs everyone out) for {@link SESSION_TTL_MS}, at most
 * {@link MAX_SESSIONS} at once (the oldest go first). They are kept under the SHA-256 of their id,
 * so a lookup's timing says nothing of a stored id.
 */
import { sha256Hex } from "../core/hash.ts";
import {
  type AdminTokens,
  constantTimeEqual,
  type Principal,
  principalOf,
  randomToken,
} from "./auth.ts";

/** The session cookie's name. */
export const SESSION_COOKIE = "ws_session";

/** The header a cookie-authenticated mutating request must carry, holding the session's CSRF token. */
export const CSRF_HEADER = "x-worldstream-csrf";

/** How long a session lasts: 12 hours. */
export const SESSION_TTL_MS = 12 * 3600_000;

/** Sessions kept at most; a new one beyond evicts the oldest. */
export const MAX_SESSIONS = 1000;

/** One logged-in browser. */
export interface Session {
  readonly principal: Principal;
  readonly csrf: string;
  readonly expiresAtMs: number;
}

/** The sessions of one admin app. */
export class Sessions {
  private readonly byHash = new Map<string, Session>();

  constructor(
    private readonly tokens: AdminTokens,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Exchanges a token for a session: its id (the cookie's value), or `undefined` when the token
   * is neither the operator's nor the viewer's (compared in constant time).
   */
  login(token: string): string | undefined {
    const principal = principalOf(this.tokens, `Bearer ${token}`);
    return principal === undefined ? undefined : this.open(principal);
  }

  private open(principal: Principal): string {
    const id = randomToken();
    this.prune();
    while (this.byHash.size >= MAX_SESSIONS) {
      const oldest = this.byHash.keys().next().value;
      if (oldest === undefined) break;
      this.byHash.delete(oldest);
    }
    this.byHash.set(sha256Hex(id), {
      principal,
      csrf: randomToken(),
      expiresAtMs: this.now() + SESSION_TTL_MS,
    });
    return id;
  }

  /** The live session of a Cookie header, if any. */
  of(cookieHeader: string | null | undefined): Session | undefined {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (id === undefined || !/^[A-Za-z0-9_-]{20,100}$/.test(id)) return undefined;
    const key = sha256Hex(id);
    const session = this.byHash.get(key);
    if (session === undefined) return undefined;
    if (session.expiresAtMs <= this.now()) {
      this.byHash.delete(key);
      return undefined;
    }
    return session;
  }

  /** Ends the session of a Cookie header (logout). */
  close(cookieHeader: string | null | undefined): void {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (id !== undefined) this.byHash.delete(sha256Hex(id));
  }

  /** Live sessions (tests). */
  get size(): number {
    this.prune();
    return this.byHash.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [key, s] of this.byHash) if (s.expiresAtMs <= now) this.byHash.delete(key);
  }
}

/** Whether `given` is the session's CSRF token (constant time). */
export function csrfMatches(session: Session, given: string | null): boolean {
  return given !== null && constantTimeEqual(given, session.csrf);
}

/**
 * Whether a browser request comes from the API's own origin: its `Origin` (or, without one,
 * `Sec-Fetch-Site`) must not name another site. A request naming neither (not a browser) passes;
 * the CSRF header is what stops a forged one.
 */
export function sameOrigin(request: Request): boolean {
  const origin = request.headers.get("origin");
  if (origin !== null) return origin === new URL(request.url).origin;
  const site = request.headers.get("sec-fetch-site");
  return site === null || site === "same-origin" || site === "none";
}

/** The `Set-Cookie` value that stores session `id` (Secure when served over https). */
export function sessionCookie(id: string, request: Request): string {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${
    SESSION_TTL_MS / 1000
  }${secure}`;
}

/** The `Set-Cookie` value that removes the session cookie. */
export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}

function cookieValue(header: string | null | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

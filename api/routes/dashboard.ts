/**
 * The dashboard: `GET /` (the page, plain HTML/CSS/JS from api/dashboard/, no build step), its
 * script and style, and the login that gets a browser a session without it ever keeping a
 * token (api/session.ts):
 *
 * - `POST /login` (a form field `token`) exchanges the operator's or a viewer's token for an
 *   HttpOnly, SameSite=Strict session cookie and sends the browser back to `/`;
 * - `GET /?token=…` does the same once and redirects to `/` at once, so the token leaves the
 *   address bar and the history (and, with `Referrer-Policy: no-referrer`, is never sent on);
 * - `POST /logout` ends the session;
 * - `GET /v1/session` tells the page who it is and the CSRF token its mutating requests carry.
 *
 * The page holds no data and no secret: everything it shows it fetches with the cookie from the
 * `/v1` routes, which check it like a bearer token. A failed login answers the same redirect
 * whatever was wrong, and nothing of a token is logged or echoed.
 */
import { Effect, Schema } from "effect";
import { readBounded } from "../read_bounded.ts";
import { jsonRoute, rawRoute, type RouteModule } from "../route.ts";
import { clearedCookie, sessionCookie } from "../session.ts";

const asset = (name: string) =>
  Deno.readTextFileSync(new URL(`../dashboard/${name}`, import.meta.url));

const PAGE = asset("index.html");
const SCRIPT = asset("dashboard.js");
const STYLE = asset("dashboard.css");

/** What the page may load and do: its own script, style and API, nothing inline, no frames. */
const PAGE_HEADERS = {
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; " +
    "frame-ancestors 'none'",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
};

/** The longest login form body read: a token is at most a few hundred characters. */
const LOGIN_BODY_BYTES = 4096;

function redirect(to: string, cookie?: string): Response {
  const headers: Record<string, string> = { Location: to, "Referrer-Policy": "no-referrer" };
  if (cookie !== undefined) headers["Set-Cookie"] = cookie;
  return new Response(null, { status: 303, headers });
}

function text(body: string, type: string, extra: Record<string, string> = {}): Response {
  return new Response(body, { headers: { "Content-Type": type, ...extra } });
}

/** The `token` field of a login form (urlencoded), read up to {@link LOGIN_BODY_BYTES}. */
async function formToken(request: Request): Promise<string | undefined> {
  if (request.body === null) return undefined;
  const bytes = await readBounded(request, LOGIN_BODY_BYTES);
  if (bytes === undefined) return undefined;
  const token = new URLSearchParams(new TextDecoder().decode(bytes)).get("token")?.trim();
  return token === undefined || token === "" ? undefined : token;
}

/** Who the caller is, and the CSRF token a session's mutating requests must carry. */
export const SessionBody = Schema.Struct({
  principal: Schema.String,
  role: Schema.Literals(["operator", "viewer"]),
  /** Null when the request came with a bearer token (no CSRF token needed). */
  csrf: Schema.NullOr(Schema.String),
}).annotate({ identifier: "Session" });

/** The dashboard's routes. */
export const dashboardRoutes: RouteModule = {
  name: "dashboard",
  routes: [
    rawRoute({
      method: "get",
      path: "/",
      summary:
        "The dashboard page (no data in it); `?token=` is exchanged once for a session cookie and redirected away",
      access: "public",
      needsRuntime: false,
      produces: "text/html",
      query: Schema.Struct({
        token: Schema.optionalKey(Schema.String),
        login: Schema.optionalKey(Schema.Literals(["failed"])),
      }),
      respond: ({ query, request, sessions }) =>
        Effect.sync(() => {
          if (query.token === undefined) {
            return text(PAGE, "text/html; charset=utf-8", PAGE_HEADERS);
          }
          const id = sessions.login(query.token);
          return id === undefined
            ? redirect("/?login=failed")
            : redirect("/", sessionCookie(id, request));
        }),
    }),
    rawRoute({
      method: "get",
      path: "/dashboard.js",
      summary: "The dashboard's script",
      access: "public",
      needsRuntime: false,
      produces: "text/javascript",
      respond: () => Effect.succeed(text(SCRIPT, "text/javascript; charset=utf-8")),
    }),
    rawRoute({
      method: "get",
      path: "/dashboard.css",
      summary: "The dashboard's style",
      access: "public",
      needsRuntime: false,
      produces: "text/css",
      respond: () => Effect.succeed(text(STYLE, "text/css; charset=utf-8")),
    }),
    rawRoute({
      method: "post",
      path: "/login",
      summary:
        "Exchanges a token (form field `token`) for an HttpOnly, SameSite=Strict session cookie",
      access: "public",
      needsRuntime: false,
      produces: "text/html",
      respond: ({ request, sessions }) =>
        Effect.promise(() => formToken(request)).pipe(Effect.map((token) => {
          const id = token === undefined ? undefined : sessions.login(token);
          return id === undefined
            ? redirect("/?login=failed")
            : redirect("/", sessionCookie(id, request));
        })),
    }),
    rawRoute({
      method: "post",
      path: "/logout",
      summary: "Ends the dashboard session of the cookie sent",
      access: "public",
      needsRuntime: false,
      produces: "text/html",
      respond: ({ request, sessions }) =>
        Effect.sync(() => {
          sessions.close(request.headers.get("cookie"));
          return redirect("/", clearedCookie());
        }),
    }),
    jsonRoute({
      method: "get",
      path: "/v1/session",
      summary: "Who the caller is, and the CSRF token a dashboard session's POSTs carry",
      needsRuntime: false,
      response: SessionBody,
      handle: ({ principal, request, sessions }) =>
        Effect.sync(() => {
          const session = request.headers.get("authorization") === null
            ? sessions.of(request.headers.get("cookie"))
            : undefined;
          return {
            principal: principal?.name ?? "",
            role: principal?.role ?? "viewer",
            csrf: session?.csrf ?? null,
          };
        }),
    }),
  ],
};

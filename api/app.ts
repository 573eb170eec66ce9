/**
 * The admin API as one Hono app: the route modules of api/routes/ mounted behind one request
 * pipeline, in this order for every route:
 *
 *   1. auth: public routes pass; others need `Authorization: Bearer <token>` (401
 *      ADMIN_UNAUTHORIZED without a valid one) or, without that header, a dashboard session
 *      cookie (api/session.ts; a mutating request on a cookie also needs the session's CSRF
 *      header and no foreign Origin: 403 ADMIN_CSRF_REFUSED), and a viewer only reaches GET
 *      routes (403 ADMIN_FORBIDDEN) — checked before anything of the request is read;
 *   2. body size: a body over the limit (by Content-Length, or as it is read) is 413
 *      ADMIN_BODY_TOO_LARGE;
 *   3. path parameters: refused when they hold traversal (`..`, `/`, `\`), quotes or control
 *      characters, then decoded with the route's schema (400 ADMIN_PARAM_INVALID);
 *   4. query: decoded with the route's schema; an unknown or repeated key is refused (400);
 *   5. body: JSON, decoded with the route's schema (400 ADMIN_BODY_INVALID naming the field);
 *   6. the handler, an Effect on the runtime's services (503 ADMIN_STARTING before they are
 *      attached); its failure goes through the one error mapper (api/errors.ts), a defect is 500
 *      INTERNAL_ERROR with nothing of the defect in the answer;
 *   7. the answer, encoded with the route's response schema.
 *
 * Unknown routes answer 404 JSON. No CORS headers unless `cors` names origins. Tokens are never
 * logged nor echoed: errors name the header, not its value.
 *
 * Adding a resource is one line: its module in the list handed to {@link adminApp} (see
 * {@link ADMIN_MODULES}); `/openapi.json` then describes it too.
 */
import { Cause, Effect, Exit, Option, Schema } from "effect";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { describe } from "../schemas/decode.ts";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import { type AdminTokens, type Principal, principalOf } from "./auth.ts";
import { errorAnswer } from "./errors.ts";
import { openApiDocument } from "./openapi.ts";
import { readBounded } from "./read_bounded.ts";
import { accessOf, jsonRoute, type Route, type RouteModule } from "./route.ts";
import type { RuntimeSlot } from "./services.ts";
import { CSRF_HEADER, csrfMatches, sameOrigin, Sessions } from "./session.ts";

/** How the admin app is built. */
export interface AdminAppOptions {
  /** The resources served; `/openapi.json` is added. */
  readonly modules: ReadonlyArray<RouteModule>;
  readonly tokens: AdminTokens;
  readonly slot: RuntimeSlot;
  /** Largest request body in bytes (default 1 MiB). */
  readonly bodyLimitBytes?: number;
  /** Origins allowed to call from a browser; none: no CORS headers at all. */
  readonly corsOrigins?: ReadonlyArray<string>;
}

/** The default body size limit: 1 MiB. */
export const BODY_LIMIT_BYTES = 1 << 20;

const PARSE_OPTIONS = { onExcessProperty: "error" } as const;

/** The admin app. */
export function adminApp(options: AdminAppOptions): Hono {
  const app = new Hono();
  const limit = options.bodyLimitBytes ?? BODY_LIMIT_BYTES;
  const sessions = new Sessions(options.tokens);
  if (options.corsOrigins && options.corsOrigins.length > 0) {
    app.use("*", cors({ origin: [...options.corsOrigins], credentials: false }));
  }
  app.use("*", async (c, next) => {
    await next();
    c.header("Cache-Control", "no-store");
    c.header("X-Content-Type-Options", "nosniff");
  });
  const modules = [...options.modules, openApiModule(options.modules)];
  for (const module of modules) {
    for (const route of module.routes) {
      app.on(
        route.method.toUpperCase(),
        route.path.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, ":$1"),
        (c) =>
          serveRoute(
            route,
            c.req.raw,
            c.req.param() as Record<string, string>,
            { ...options, sessions },
            limit,
          ),
      );
    }
  }
  app.notFound((c) => {
    const { status, body } = errorAnswer(
      fail("ADMIN_ROUTE_NOT_FOUND", `No route ${c.req.method} ${new URL(c.req.url).pathname}`),
    );
    return c.json(body, status as 404);
  });
  app.onError((_e, c) => {
    const { status, body } = errorAnswer(fail("INTERNAL_ERROR", "The admin API failed"));
    return c.json(body, status as 500);
  });
  return app;
}

/** `/openapi.json`, describing `modules` and itself. */
function openApiModule(modules: ReadonlyArray<RouteModule>): RouteModule {
  const self: RouteModule = {
    name: "openapi",
    routes: [jsonRoute({
      method: "get",
      path: "/openapi.json",
      summary: "This document: every route, its access, parameters, body and answer",
      needsRuntime: false,
      response: Schema.Unknown,
      handle: () => Effect.sync(() => document),
    })],
  };
  const document = openApiDocument([...modules, self], {
    title: "worldstream admin API",
    version: "1",
  });
  return self;
}

async function serveRoute(
  route: Route,
  request: Request,
  rawParams: Record<string, string>,
  options: AdminAppOptions & { readonly sessions: Sessions },
  limit: number,
): Promise<Response> {
  const exit = await Effect.runPromiseExit(handleRoute(route, request, rawParams, options, limit));
  if (Exit.isSuccess(exit)) return exit.value;
  const error = Option.getOrUndefined(Cause.findErrorOption(exit.cause));
  if (error instanceof WorldstreamError) return errorResponse(error);
  console.error(JSON.stringify({
    level: "ERROR",
    message: "admin_route_defect",
    route: `${route.method.toUpperCase()} ${route.path}`,
    defect: Cause.pretty(exit.cause).split("\n")[0],
  }));
  return errorResponse(fail("INTERNAL_ERROR", "The admin API failed on this request"));
}

function handleRoute(
  route: Route,
  request: Request,
  rawParams: Record<string, string>,
  options: AdminAppOptions & { readonly sessions: Sessions },
  limit: number,
) {
  return Effect.gen(function* () {
    const principal = yield* authorize(route, request, options.tokens, options.sessions);
    const length = request.headers.get("content-length");
    if (length !== null && Number(length) > limit) {
      return yield* fail(
        "ADMIN_BODY_TOO_LARGE",
        `The body is ${length} bytes; the admin API takes at most ${limit}`,
      );
    }
    const params = yield* decodeParams(route, rawParams);
    const query = yield* decodeQuery(route, new URL(request.url));
    const body = route.body === undefined
      ? undefined
      : yield* readBody(request, limit).pipe(Effect.flatMap((text) => decodeBody(route, text)));
    const context = route.needsRuntime === false ? options.slot.early : options.slot.current;
    if (context === undefined) {
      return yield* fail(
        "ADMIN_STARTING",
        "The runtime has not started yet (or is stopping); try again in a moment",
      );
    }
    const input = {
      params,
      query,
      body,
      principal,
      request,
      sessions: options.sessions,
      closing: options.slot.closing,
    };
    if ("respond" in route) return yield* route.respond(input).pipe(Effect.provideContext(context));
    const answer = yield* route.handle(input).pipe(Effect.provideContext(context));
    const encoded = yield* Schema.encodeUnknownEffect(route.response)(answer).pipe(
      Effect.orDie,
    );
    const status = typeof route.status === "function" ? route.status(answer) : route.status ?? 200;
    return Response.json(encoded, { status });
  });
}

function authorize(
  route: Route,
  request: Request,
  tokens: AdminTokens,
  sessions: Sessions,
): Effect.Effect<Principal | undefined, WorldstreamError> {
  const access = accessOf(route);
  if (access === "public") return Effect.succeed(undefined);
  const authorization = request.headers.get("authorization");
  // A bearer header is the whole answer when there is one; a cookie counts only without it.
  const session = authorization === null ? sessions.of(request.headers.get("cookie")) : undefined;
  const principal = session?.principal ?? principalOf(tokens, authorization);
  if (principal === undefined) {
    return Effect.fail(
      fail("ADMIN_UNAUTHORIZED", "This route needs an Authorization: Bearer token that is valid"),
    );
  }
  if (
    session !== undefined && route.method !== "get" &&
    !(csrfMatches(session, request.headers.get(CSRF_HEADER)) && sameOrigin(request))
  ) {
    return Effect.fail(
      fail(
        "ADMIN_CSRF_REFUSED",
        `A dashboard session changes nothing without its ${CSRF_HEADER} header from the dashboard's own origin`,
      ),
    );
  }
  if (access === "operator" && principal.role !== "operator") {
    return Effect.fail(
      fail(
        "ADMIN_FORBIDDEN",
        `${principal.name} may only read; ${route.method.toUpperCase()} ${route.path} needs the operator token`,
      ),
    );
  }
  return Effect.succeed(principal);
}

// Traversal, quotes and control characters are refused in any path parameter, whatever its
// schema, before it reaches a store or a query.
// deno-lint-ignore no-control-regex
const UNSAFE_PARAM = /\.\.|[/\\'"`\u0000-\u001f\u007f]/;

function decodeParams(route: Route, raw: Record<string, string>) {
  return Effect.gen(function* () {
    for (const [name, value] of Object.entries(raw)) {
      if (value === "" || UNSAFE_PARAM.test(value)) {
        return yield* fail(
          "ADMIN_PARAM_INVALID",
          `Path parameter ${name} must not be empty nor hold "..", slashes, quotes or control characters`,
        );
      }
    }
    if (route.params === undefined) return {};
    return yield* Schema.decodeUnknownEffect(route.params)(raw, PARSE_OPTIONS).pipe(
      Effect.mapError((e) => fail("ADMIN_PARAM_INVALID", describe("path", e.issue))),
    );
  });
}

function decodeQuery(route: Route, url: URL) {
  return Effect.gen(function* () {
    const query: Record<string, string> = {};
    for (const [key, value] of url.searchParams) {
      if (key in query) {
        return yield* fail("ADMIN_PARAM_INVALID", `Query parameter ${key} is given twice`);
      }
      query[key] = value;
    }
    if (route.query === undefined) {
      const [first] = Object.keys(query);
      if (first === undefined) return {};
      return yield* fail(
        "ADMIN_PARAM_INVALID",
        `${route.method.toUpperCase()} ${route.path} takes no query parameter (got ${
          JSON.stringify(first.slice(0, 40))
        })`,
      );
    }
    return yield* Schema.decodeUnknownEffect(route.query)(query, PARSE_OPTIONS).pipe(
      Effect.mapError((e) => fail("ADMIN_PARAM_INVALID", describe("query", e.issue))),
    );
  });
}

/** The body as text, at most `limit` bytes (413 beyond, even without a Content-Length). */
function readBody(request: Request, limit: number): Effect.Effect<string, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      const bytes = await readBounded(request, limit);
      if (bytes === undefined) throw new TooLarge();
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    },
    catch: (e) =>
      e instanceof TooLarge
        ? fail("ADMIN_BODY_TOO_LARGE", `The body is over ${limit} bytes, the admin API's limit`)
        : fail("ADMIN_BODY_INVALID", "The body could not be read as UTF-8 text"),
  });
}

class TooLarge {}

function decodeBody(route: Route, text: string) {
  return Effect.gen(function* () {
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: () =>
        fail(
          "ADMIN_BODY_INVALID",
          text.trim() === "" ? "The body is empty; a JSON object is expected" : "Malformed JSON",
        ),
    });
    // deno-lint-ignore no-explicit-any
    return yield* Schema.decodeUnknownEffect(route.body as Schema.Codec<any, any>)(
      json,
      PARSE_OPTIONS,
    ).pipe(Effect.mapError((e) => fail("ADMIN_BODY_INVALID", describe("body", e.issue))));
  });
}

function errorResponse(e: WorldstreamError): Response {
  const { status, body } = errorAnswer(e);
  const headers: Record<string, string> = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
  };
  if (status === 401) headers["WWW-Authenticate"] = 'Bearer realm="worldstream"';
  return Response.json(body, { status, headers });
}

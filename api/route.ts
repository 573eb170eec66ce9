/**
 * The shape of an admin API route and of a route module, shared by every module under
 * api/routes/ and by the app that mounts them (api/app.ts). A route declares its method, its
 * path in OpenAPI form (`/v1/runs/{run}`), who may call it, and the Effect Schemas of its path
 * parameters, query, body and answer; the app decodes the request with them (400
 * ADMIN_PARAM_INVALID / ADMIN_BODY_INVALID naming the field), encodes the answer, and writes
 * `/openapi.json` from the same schemas. A module is a resource's routes; adding one to the app is
 * one line in its module list.
 */
import type { Effect, Schema } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { Principal } from "./auth.ts";
import type { AdminServices } from "./services.ts";
import type { Sessions } from "./session.ts";

/** Who may call a route: anyone (probes), a viewer token (reads) or the operator token. */
export type Access = "public" | "viewer" | "operator";

/** The HTTP methods routes use. */
export type Method = "get" | "post" | "put" | "delete";

/** What a handler gets: the decoded parts of the request and who sent it. */
export interface RouteInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  /** `undefined` only on public routes. */
  readonly principal: Principal | undefined;
  readonly request: Request;
  /** The dashboard's sessions (the login routes open and close them). */
  readonly sessions: Sessions;
  /** Aborted when the runtime stops: a long-lived answer (a stream) must end on it. */
  readonly closing: AbortSignal;
}

/** A schema of path parameters or query: decoded from an object of strings. */
// deno-lint-ignore no-explicit-any
export type StringsSchema = Schema.Codec<any, any>;

interface RouteBase {
  readonly method: Method;
  /** OpenAPI form: `{name}` for a path parameter. */
  readonly path: string;
  readonly summary: string;
  /** Default: `viewer` for GET, `operator` for anything else. */
  readonly access?: Access;
  readonly params?: StringsSchema;
  readonly query?: StringsSchema;
  /** The JSON body's schema (routes without one refuse none; a body is ignored). */
  // deno-lint-ignore no-explicit-any
  readonly body?: Schema.Codec<any, any>;
  /** Needs the runtime's services (503 ADMIN_STARTING until they are attached); default true. */
  readonly needsRuntime?: boolean;
}

/** A route answering JSON encoded with `response`. */
export interface JsonRoute extends RouteBase {
  // deno-lint-ignore no-explicit-any
  readonly response: Schema.Codec<any, any>;
  /** The success status (200), or one per answer (e.g. 202 for a queued run). */
  // deno-lint-ignore no-explicit-any
  readonly status?: number | ((answer: any) => number);
  readonly handle: (
    // deno-lint-ignore no-explicit-any
    input: RouteInput<any, any, any>,
    // deno-lint-ignore no-explicit-any
  ) => Effect.Effect<any, WorldstreamError, AdminServices>;
}

/** A route answering its own `Response` (text, HTML, a stream): `/metrics`, the dashboard. */
export interface RawRoute extends RouteBase {
  /** The media type the answer has, for `/openapi.json` (e.g. `text/plain; version=0.0.4`). */
  readonly produces: string;
  readonly respond: (
    // deno-lint-ignore no-explicit-any
    input: RouteInput<any, any, any>,
  ) => Effect.Effect<Response, WorldstreamError, AdminServices>;
}

/** One route. */
export type Route = JsonRoute | RawRoute;

/** A resource's routes: what the app's module list holds. */
export interface RouteModule {
  /** The OpenAPI tag, e.g. `runs`. */
  readonly name: string;
  readonly routes: ReadonlyArray<Route>;
}

/**
 * Declares a JSON route with its types tied to its schemas (the handler sees the decoded types
 * and must answer the response schema's type).
 */
export function jsonRoute<
  P extends StringsSchema = Schema.Codec<Record<string, never>>,
  Q extends StringsSchema = Schema.Codec<Record<string, never>>,
  // deno-lint-ignore no-explicit-any
  B extends Schema.Codec<any, any> = Schema.Codec<undefined>,
  // deno-lint-ignore no-explicit-any
  O extends Schema.Codec<any, any> = Schema.Codec<unknown>,
>(
  route: RouteBase & {
    readonly params?: P;
    readonly query?: Q;
    readonly body?: B;
    readonly response: O;
    readonly status?: number | ((answer: O["Type"]) => number);
    readonly handle: (
      input: RouteInput<P["Type"], Q["Type"], B["Type"]>,
    ) => Effect.Effect<O["Type"], WorldstreamError, AdminServices>;
  },
): JsonRoute {
  return route as JsonRoute;
}

/** Declares a route that answers its own `Response`. */
export function rawRoute<
  P extends StringsSchema = Schema.Codec<Record<string, never>>,
  Q extends StringsSchema = Schema.Codec<Record<string, never>>,
>(
  route: RouteBase & {
    readonly params?: P;
    readonly query?: Q;
    readonly produces: string;
    readonly respond: (
      input: RouteInput<P["Type"], Q["Type"], undefined>,
    ) => Effect.Effect<Response, WorldstreamError, AdminServices>;
  },
): RawRoute {
  return route as RawRoute;
}

/** Who may call `route`. */
export function accessOf(route: Route): Access {
  return route.access ?? (route.method === "get" ? "viewer" : "operator");
}

/**
 * `/openapi.json`: the OpenAPI 3.1 document of every mounted route, written from the same Effect
 * Schemas the app decodes requests and encodes answers with (`Schema.toJsonSchemaDocument`, JSON
 * Schema 2020-12, which OpenAPI 3.1 embeds as is). Each operation carries `x-access`
 * (`public`, `viewer` or `operator`), so a client or a test can tell who may call it.
 */
import { Schema } from "effect";
import { accessOf, type JsonRoute, type Route, type RouteModule } from "./route.ts";

type Json = Record<string, unknown>;

/** The error body's schema, shared by every failure answer. */
export const ErrorBodySchema = Schema.Struct({
  error: Schema.String,
  reason: Schema.String,
  detail: Schema.String,
}).annotate({ identifier: "ErrorBody" });

/** The OpenAPI document of `modules`. */
export function openApiDocument(
  modules: ReadonlyArray<RouteModule>,
  info: { readonly title: string; readonly version: string },
): Json {
  const components: Record<string, unknown> = {};
  const schemaOf = (schema: Schema.Top): Json => {
    const doc = Schema.toJsonSchemaDocument(schema);
    for (const [name, def] of Object.entries(doc.definitions)) components[name] = relink(def);
    return relink(doc.schema) as Json;
  };
  const errorRef = schemaOf(ErrorBodySchema);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const module of modules) {
    for (const route of module.routes) {
      const access = accessOf(route);
      const parameters = [
        ...fieldsOf(route.params, schemaOf).map((p) => ({ ...p, in: "path", required: true })),
        ...fieldsOf(route.query, schemaOf).map((p) => ({ ...p, in: "query" })),
      ];
      const success = "respond" in route
        ? { description: "OK", content: { [route.produces]: { schema: {} } } }
        : {
          description: "OK",
          content: { "application/json": { schema: schemaOf((route as JsonRoute).response) } },
        };
      const failure = (description: string) => ({
        description,
        content: { "application/json": { schema: errorRef } },
      });
      const responses: Record<string, unknown> = {
        [String(successStatus(route))]: success,
        ...(parameters.length || route.body ? { "400": failure("Bad parameters or body") } : {}),
        ...(access === "public" ? {} : {
          "401": failure("No valid bearer token"),
          ...(access === "operator" ? { "403": failure("A viewer token") } : {}),
        }),
        ...(route.body ? { "413": failure("Body over the size limit") } : {}),
        default: failure("Any other failure: reason names it"),
      };
      (paths[route.path] ??= {})[route.method] = {
        tags: [module.name],
        summary: route.summary,
        operationId: `${route.method}${
          route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c) => c ? String(c).toUpperCase() : "")
        }`,
        "x-access": access,
        security: access === "public" ? [] : [{ bearer: [] }],
        ...(parameters.length ? { parameters } : {}),
        ...(route.body
          ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: schemaOf(route.body) } },
            },
          }
          : {}),
        responses,
      };
    }
  }
  return {
    openapi: "3.1.0",
    info,
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
  };
}

function successStatus(route: Route): number {
  if ("respond" in route) return 200;
  return typeof route.status === "number" ? route.status : 200;
}

/** The parameters of a struct schema of strings, one per field. */
function fieldsOf(
  schema: Schema.Top | undefined,
  schemaOf: (s: Schema.Top) => Json,
): ReadonlyArray<Json> {
  if (schema === undefined) return [];
  const js = schemaOf(schema);
  const properties = (js.properties ?? {}) as Record<string, Json>;
  const required = new Set((js.required ?? []) as ReadonlyArray<string>);
  return Object.entries(properties).map(([name, s]) => ({
    name,
    required: required.has(name),
    schema: s,
    ...(typeof s.description === "string" ? { description: s.description } : {}),
  }));
}

/** JSON Schema `$defs` references as OpenAPI component references. */
function relink(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/'),
  );
}

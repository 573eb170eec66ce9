import assert from "node:assert/strict";
import { Effect, Schema } from "effect";
import { Health } from "../actors/health.ts";
import { adminApp } from "./app.ts";
import { adminTokens, constantTimeEqual, principalOf } from "./auth.ts";
import { jsonRoute, type RouteModule } from "./route.ts";
import { RuntimeSlot } from "./services.ts";
import { healthRoutes } from "./routes/health.ts";

// The request pipeline every route shares, on a small module of its own (no runtime needed for
// what it checks): auth, size limit, path parameters, query, body, the error mapper, 404s and
// the OpenAPI document. tests of each resource's routes are in api/routes/routes_test.ts.

const OPERATOR = "operator-token-0123456789";
const VIEWER = "viewer-token-0123456789ab";

const echoes: Array<unknown> = [];
const echo: RouteModule = {
  name: "echo",
  routes: [
    jsonRoute({
      method: "get",
      path: "/v1/echo/{name}",
      summary: "Echoes a name",
      needsRuntime: false,
      params: Schema.Struct({ name: Schema.String }),
      query: Schema.Struct({ n: Schema.optionalKey(Schema.String) }),
      response: Schema.Struct({ name: Schema.String, principal: Schema.String }),
      handle: ({ params, principal }) =>
        Effect.succeed({ name: params.name, principal: principal?.name ?? "" }),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/echo",
      summary: "Keeps a body",
      needsRuntime: false,
      body: Schema.Struct({ x: Schema.Int }),
      response: Schema.Struct({ kept: Schema.Int }),
      status: 201,
      handle: ({ body }) =>
        Effect.sync(() => {
          echoes.push(body);
          return { kept: echoes.length };
        }),
    }),
    jsonRoute({
      method: "get",
      path: "/v1/needs-runtime",
      summary: "Needs the runtime",
      response: Schema.Struct({}),
      handle: () => Effect.succeed({}),
    }),
  ],
};

const health = await Effect.runPromise(Health.make);
const app = adminApp({
  modules: [healthRoutes, echo],
  tokens: { operator: OPERATOR, viewer: VIEWER },
  slot: new RuntimeSlot(health),
  bodyLimitBytes: 1024,
});

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

async function call(path: string, init: RequestInit = {}) {
  const res = await app.request(path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null, text };
}

Deno.test("a route without a token is 401 ADMIN_UNAUTHORIZED, a wrong token too, and neither token is echoed", async () => {
  for (const headers of [{}, bearer("wrong-token-0123456789"), { Authorization: OPERATOR }]) {
    const r = await call("/v1/echo/a", { headers });
    assert.equal(r.status, 401);
    assert.equal(r.body.reason, "ADMIN_UNAUTHORIZED");
    assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="worldstream"');
    assert.ok(!r.text.includes(OPERATOR) && !r.text.includes("wrong-token"));
  }
});

Deno.test("a viewer reads but gets 403 ADMIN_FORBIDDEN on a mutating route, and nothing is kept", async () => {
  const read = await call("/v1/echo/a", { headers: bearer(VIEWER) });
  assert.equal(read.status, 200);
  assert.deepEqual(read.body, { name: "a", principal: "user:viewer" });
  const before = echoes.length;
  const write = await call("/v1/echo", {
    method: "POST",
    headers: bearer(VIEWER),
    body: JSON.stringify({ x: 1 }),
  });
  assert.equal(write.status, 403);
  assert.equal(write.body.reason, "ADMIN_FORBIDDEN");
  assert.equal(echoes.length, before);
  const ok = await call("/v1/echo", {
    method: "POST",
    headers: bearer(OPERATOR),
    body: JSON.stringify({ x: 1 }),
  });
  assert.equal(ok.status, 201);
  assert.equal(echoes.length, before + 1);
});

Deno.test("bad bodies are 400 ADMIN_BODY_INVALID naming the problem, 413 ADMIN_BODY_TOO_LARGE over the limit, and nothing is kept", async () => {
  const before = echoes.length;
  const post = (body: BodyInit, headers: Record<string, string> = {}) =>
    call("/v1/echo", { method: "POST", headers: { ...bearer(OPERATOR), ...headers }, body });
  const malformed = await post("{not json");
  assert.equal(malformed.status, 400);
  assert.deepEqual(malformed.body, {
    error: "Bad Request",
    reason: "ADMIN_BODY_INVALID",
    detail: "Malformed JSON",
  });
  const wrongType = await post(JSON.stringify({ x: "1" }));
  assert.equal(wrongType.status, 400);
  assert.match(wrongType.body.detail, /^body: x: /);
  const extra = await post(JSON.stringify({ x: 1, y: 2 }));
  assert.equal(extra.body.reason, "ADMIN_BODY_INVALID");
  assert.match(extra.body.detail, /y/);
  const big = await post(JSON.stringify({ x: 1, pad: "a".repeat(2000) }));
  assert.equal(big.status, 413);
  assert.equal(big.body.reason, "ADMIN_BODY_TOO_LARGE");
  // Chunked, without a Content-Length: counted as it is read.
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode(" ".repeat(400)));
      c.close();
    },
  });
  const chunked = await post(stream);
  assert.equal(chunked.status, 413);
  assert.equal(echoes.length, before);
});

Deno.test("path parameters with traversal or quotes are 400 ADMIN_PARAM_INVALID; unknown query keys too", async () => {
  // A bare ".." is resolved away by the URL itself: it never reaches the route.
  const dots = await call("/v1/echo/..", { headers: bearer(OPERATOR) });
  assert.equal(dots.status, 404);
  for (const bad of ["a..b", "..%2Fetc", "a%2F..%2Fb", "%22x%22", "it's", "a%5Cb", "%00"]) {
    const r = await call(`/v1/echo/${bad}`, { headers: bearer(OPERATOR) });
    assert.equal(r.status, 400, bad);
    assert.equal(r.body.reason, "ADMIN_PARAM_INVALID", bad);
  }
  const unknown = await call("/v1/echo/a?zz=1", { headers: bearer(OPERATOR) });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.reason, "ADMIN_PARAM_INVALID");
  const twice = await call("/v1/echo/a?n=1&n=2", { headers: bearer(OPERATOR) });
  assert.match(twice.body.detail, /given twice/);
});

Deno.test("unknown routes are 404 JSON, and a route needing the runtime is 503 ADMIN_STARTING before it is attached", async () => {
  const missing = await call("/v1/nope", { headers: bearer(OPERATOR) });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.reason, "ADMIN_ROUTE_NOT_FOUND");
  const starting = await call("/v1/needs-runtime", { headers: bearer(OPERATOR) });
  assert.equal(starting.status, 503);
  assert.equal(starting.body.reason, "ADMIN_STARTING");
});

Deno.test("no CORS headers unless origins are configured", async () => {
  const plain = await app.request("/healthz", { headers: { Origin: "https://evil.example" } });
  assert.equal(plain.headers.get("access-control-allow-origin"), null);
  await plain.body?.cancel();
  const withCors = adminApp({
    modules: [healthRoutes],
    tokens: { operator: OPERATOR },
    slot: new RuntimeSlot(health),
    corsOrigins: ["https://ops.example"],
  });
  const res = await withCors.request("/healthz", { headers: { Origin: "https://ops.example" } });
  assert.equal(res.headers.get("access-control-allow-origin"), "https://ops.example");
  await res.body?.cancel();
});

Deno.test("/openapi.json describes every route with its access, parameters, body and answer", async () => {
  const doc = await call("/openapi.json", { headers: bearer(VIEWER) });
  assert.equal(doc.status, 200);
  assert.equal(doc.body.openapi, "3.1.0");
  const echoGet = doc.body.paths["/v1/echo/{name}"].get;
  assert.equal(echoGet["x-access"], "viewer");
  assert.deepEqual(
    echoGet.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`),
    ["path:name", "query:n"],
  );
  const echoPost = doc.body.paths["/v1/echo"].post;
  assert.equal(echoPost["x-access"], "operator");
  assert.deepEqual(echoPost.requestBody.content["application/json"].schema.required, ["x"]);
  assert.ok(echoPost.responses["201"]);
  assert.equal(doc.body.paths["/healthz"].get["x-access"], "public");
  assert.ok(doc.body.paths["/openapi.json"].get);
  const unauthenticated = await call("/openapi.json");
  assert.equal(unauthenticated.status, 401);
});

Deno.test("tokens: local makes one when none is set, other profiles refuse, short tokens are refused without echoing them", async () => {
  const local = await Effect.runPromise(adminTokens("local", {}));
  assert.ok(local.generated !== undefined && local.generated.length >= 40);
  assert.equal(local.tokens.operator, local.generated);
  const dev = await Effect.runPromise(Effect.flip(adminTokens("dev", {})));
  assert.equal(dev.reason, "ADMIN_TOKEN_MISSING");
  const short = await Effect.runPromise(
    Effect.flip(adminTokens("dev", { WORLDSTREAM_ADMIN_TOKEN: "secret1" })),
  );
  assert.equal(short.reason, "ADMIN_TOKEN_INVALID");
  assert.ok(!short.message.includes("secret1"));
  const set = await Effect.runPromise(
    adminTokens("prod", { WORLDSTREAM_ADMIN_TOKEN: OPERATOR, WORLDSTREAM_VIEWER_TOKEN: VIEWER }),
  );
  assert.deepEqual(set, { tokens: { operator: OPERATOR, viewer: VIEWER } });
  assert.equal(principalOf(set.tokens, `Bearer ${OPERATOR}`)?.name, "user:operator");
  assert.equal(principalOf(set.tokens, `Bearer ${OPERATOR}x`), undefined);
  assert.equal(principalOf(set.tokens, `bearer ${OPERATOR}`), undefined);
  assert.ok(constantTimeEqual("abc", "abc") && !constantTimeEqual("abc", "abd"));
  assert.ok(!constantTimeEqual("abc", "abcd"));
});

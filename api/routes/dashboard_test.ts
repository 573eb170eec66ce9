import assert from "node:assert/strict";
import { Effect, Schema } from "effect";
import { Health } from "../../actors/health.ts";
import { adminApp } from "../app.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { RuntimeSlot } from "../services.ts";
import { CSRF_HEADER, SESSION_COOKIE } from "../session.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { statusStream } from "./events.ts";

// The dashboard's door through app.request(): the page and its assets without a token (and with
// nothing secret in them), a token exchanged for an HttpOnly SameSite=Strict cookie by the form
// or once by `?token=` (redirected away), the cookie authenticating reads, and a cookie never
// enough to change anything without the session's CSRF header from the same origin. The live
// feed's stream ends when the runtime goes and when the reader does.

const OPERATOR = "operator-token-0123456789";
const VIEWER = "viewer-token-0123456789ab";
const ORIGIN = "http://localhost";

const changed: Array<string> = [];
const probe: RouteModule = {
  name: "probe",
  routes: [
    jsonRoute({
      method: "get",
      path: "/v1/probe",
      summary: "Reads",
      needsRuntime: false,
      response: Schema.Struct({ principal: Schema.String }),
      handle: ({ principal }) => Effect.succeed({ principal: principal?.name ?? "" }),
    }),
    jsonRoute({
      method: "post",
      path: "/v1/probe",
      summary: "Changes something",
      needsRuntime: false,
      response: Schema.Struct({ changes: Schema.Int }),
      handle: ({ principal }) =>
        Effect.sync(() => ({ changes: changed.push(principal?.name ?? "") })),
    }),
  ],
};

const health = await Effect.runPromise(Health.make);
const app = adminApp({
  modules: [dashboardRoutes, probe],
  tokens: { operator: OPERATOR, viewer: VIEWER },
  slot: new RuntimeSlot(health),
});

function form(token: string): RequestInit {
  return {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  };
}

/** The session cookie (`name=value`) a response sets, with its attributes checked. */
function cookieOf(res: Response): string {
  const set = res.headers.get("set-cookie") ?? "";
  assert.match(set, new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{40,}; `));
  assert.match(set, /; HttpOnly/);
  assert.match(set, /; SameSite=Strict/);
  assert.match(set, /; Path=\//);
  assert.ok(!set.includes(OPERATOR) && !set.includes(VIEWER), "the cookie is not the token");
  return set.split(";")[0];
}

async function session(cookie: string) {
  const res = await app.request("/v1/session", { headers: { Cookie: cookie } });
  return { status: res.status, body: await res.json() };
}

Deno.test("the page, its script and its style answer without a token and hold no token", async () => {
  for (
    const [path, type] of [["/", "text/html"], ["/dashboard.js", "text/javascript"], [
      "/dashboard.css",
      "text/css",
    ]]
  ) {
    const res = await app.request(path);
    const body = await res.text();
    assert.equal(res.status, 200, path);
    assert.ok(res.headers.get("content-type")?.startsWith(type), path);
    assert.ok(!body.includes(OPERATOR) && !body.includes(VIEWER));
  }
  const page = await app.request("/");
  await page.body?.cancel();
  assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  assert.equal(page.headers.get("x-frame-options"), "DENY");
});

Deno.test("the login form exchanges a token for an HttpOnly SameSite=Strict session cookie that reads like the token", async () => {
  const login = await app.request("/login", form(OPERATOR));
  assert.equal(login.status, 303);
  assert.equal(login.headers.get("location"), "/");
  const cookie = cookieOf(login);
  assert.deepEqual(await session(cookie), {
    status: 200,
    body: { principal: "user:operator", role: "operator", csrf: (await session(cookie)).body.csrf },
  });
  assert.match((await session(cookie)).body.csrf, /^[A-Za-z0-9_-]{40,}$/);
  const read = await app.request("/v1/probe", { headers: { Cookie: cookie } });
  assert.deepEqual(await read.json(), { principal: "user:operator" });

  const viewer = cookieOf(await app.request("/login", form(VIEWER)));
  assert.equal((await session(viewer)).body.role, "viewer");

  for (const token of ["wrong-token-0123456789", ""]) {
    const failed = await app.request("/login", form(token));
    assert.equal(failed.status, 303);
    assert.equal(failed.headers.get("location"), "/?login=failed");
    assert.equal(failed.headers.get("set-cookie"), null);
  }
  const unknown = await app.request("/v1/probe", {
    headers: { Cookie: `${SESSION_COOKIE}=${"a".repeat(43)}` },
  });
  assert.equal(unknown.status, 401);
  assert.equal((await unknown.json()).reason, "ADMIN_UNAUTHORIZED");
});

Deno.test("a login form is read up to 4096 bytes: one byte more is a failed login without reading on, and one over the API's body limit is 413", async () => {
  const padded = (bytes: number) => {
    const head = `token=${OPERATOR}&pad=`;
    return head + "a".repeat(bytes - head.length);
  };
  /** The body sent chunked, without a Content-Length: the limit holds as it is read. */
  const chunked = (body: string): RequestInit => ({
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new ReadableStream({
      start(c) {
        for (let at = 0; at < body.length; at += 1000) {
          c.enqueue(new TextEncoder().encode(body.slice(at, at + 1000)));
        }
        c.close();
      },
    }),
  });
  const atLimit = await app.request("/login", chunked(padded(4096)));
  assert.equal(atLimit.headers.get("location"), "/");
  cookieOf(atLimit);
  const over = await app.request("/login", chunked(padded(4097)));
  assert.equal(over.status, 303);
  assert.equal(over.headers.get("location"), "/?login=failed");
  assert.equal(over.headers.get("set-cookie"), null);
  const huge = await app.request("/login", {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      "Content-Length": String((1 << 20) + 1),
    },
    body: padded((1 << 20) + 1),
  });
  assert.equal(huge.status, 413);
  assert.equal((await huge.json()).reason, "ADMIN_BODY_TOO_LARGE");
  assert.equal(huge.headers.get("set-cookie"), null);
});

Deno.test("?token= is exchanged once and redirected away, a wrong one gets no cookie", async () => {
  const res = await app.request(`/?token=${VIEWER}`);
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/", "the token leaves the address bar");
  assert.equal(res.headers.get("referrer-policy"), "no-referrer");
  assert.equal((await session(cookieOf(res))).body.principal, "user:viewer");
  const wrong = await app.request("/?token=wrong-token-0123456789");
  assert.equal(wrong.headers.get("location"), "/?login=failed");
  assert.equal(wrong.headers.get("set-cookie"), null);
});

Deno.test("a cookie changes nothing without the session's CSRF header from the same origin, and a viewer's never", async () => {
  const cookie = cookieOf(await app.request("/login", form(OPERATOR)));
  const { csrf } = (await session(cookie)).body;
  const post = (headers: Record<string, string>) =>
    app.request(`${ORIGIN}/v1/probe`, { method: "POST", headers: { Cookie: cookie, ...headers } });
  const before = changed.length;
  const attempts: Array<Record<string, string>> = [
    {},
    { [CSRF_HEADER]: "x".repeat(43) },
    { [CSRF_HEADER]: csrf, Origin: "http://evil.example" },
    { [CSRF_HEADER]: csrf, "Sec-Fetch-Site": "cross-site" },
  ];
  for (const headers of attempts) {
    const res = await post(headers);
    assert.equal(res.status, 403, JSON.stringify(headers));
    assert.equal((await res.json()).reason, "ADMIN_CSRF_REFUSED");
  }
  assert.equal(changed.length, before, "nothing changed");
  const ok = await post({ [CSRF_HEADER]: csrf, Origin: ORIGIN });
  assert.equal(ok.status, 200);
  assert.equal(changed.at(-1), "user:operator");

  const viewer = cookieOf(await app.request("/login", form(VIEWER)));
  const viewerCsrf = (await session(viewer)).body.csrf;
  const refused = await app.request(`${ORIGIN}/v1/probe`, {
    method: "POST",
    headers: { Cookie: viewer, [CSRF_HEADER]: viewerCsrf, Origin: ORIGIN },
  });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).reason, "ADMIN_FORBIDDEN");

  // A bearer header is the whole answer when present: a wrong one is not rescued by a cookie.
  const bearer = await app.request("/v1/probe", {
    headers: { Cookie: cookie, Authorization: "Bearer wrong-token-0123456789" },
  });
  assert.equal(bearer.status, 401);
  await bearer.body?.cancel();
});

Deno.test("logging out ends the session", async () => {
  const cookie = cookieOf(await app.request("/login", form(VIEWER)));
  const out = await app.request("/logout", { method: "POST", headers: { Cookie: cookie } });
  assert.equal(out.status, 303);
  assert.match(out.headers.get("set-cookie") ?? "", /Max-Age=0/);
  assert.equal((await session(cookie)).status, 401);
});

async function events(stream: ReadableStream<Uint8Array>, n: number) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while ((text.match(/^event: status$/gm) ?? []).length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  return { text, reader };
}

Deno.test("the feed sends a snapshot at once and every second, and ends when the runtime goes", async () => {
  let calls = 0;
  const closing = new AbortController();
  const started = performance.now();
  const { text, reader } = await events(
    statusStream(() => Promise.resolve({ n: ++calls }), [closing.signal]),
    2,
  );
  assert.ok(performance.now() - started >= 900, "the second snapshot comes a second later");
  assert.match(
    text,
    /^retry: 2000\n\nevent: status\ndata: \{"n":1\}\n\nevent: status\ndata: \{"n":2\}\n\n/,
  );
  closing.abort();
  let rest = await reader.read();
  while (!rest.done) rest = await reader.read();
  assert.equal(rest.done, true, "the stream ended");
});

Deno.test("the feed stops when its reader cancels, and never starts after the runtime went", async () => {
  const listening = new AbortController();
  const { reader } = await events(statusStream(() => Promise.resolve({}), [listening.signal]), 1);
  await reader.cancel();
  const gone = new AbortController();
  gone.abort();
  const { text } = await events(statusStream(() => Promise.resolve({}), [gone.signal]), 1);
  assert.equal(text, "");
});

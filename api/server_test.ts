import assert from "node:assert/strict";
import { Effect } from "effect";
import { Hono } from "hono";
import { serveAdmin } from "./server.ts";

// The admin API listens on loopback; a port it cannot have must end the start with
// ADMIN_LISTEN_FAILED naming the address, not with an uncaught exception.

const app = new Hono().get("/ping", (c) => c.text("pong"));

Deno.test("serving on a port another listener holds fails ADMIN_LISTEN_FAILED naming the address", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const e = await Effect.runPromise(Effect.flip(Effect.scoped(serveAdmin(app, { port }))));
    assert.equal(e.reason, "ADMIN_LISTEN_FAILED");
    assert.match(e.message, new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${port}: .*in use`, "i"));
  } finally {
    taken.close();
  }
});

Deno.test("a free port serves the app until the scope closes", async () => {
  const url = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const admin = yield* serveAdmin(app, { port: 0 });
    const res = yield* Effect.promise(() => fetch(`${admin.url}/ping`));
    assert.equal(yield* Effect.promise(() => res.text()), "pong");
    return admin.url;
  })));
  await assert.rejects(fetch(`${url}/ping`));
});

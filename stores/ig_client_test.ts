import assert from "node:assert/strict";
import { Effect } from "effect";
import { igHealthy } from "./ig_client.ts";

/** A real HTTP server on a free loopback port answering `/v1/ops/health` with `status`. */
function healthServer(status: number | "hang") {
  let release!: () => void;
  const hung = new Promise<void>((r) => release = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    if (status === "hang") {
      await hung;
      return new Response("late");
    }
    return new Response("{}", { status });
  });
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}`,
    close: async () => {
      release();
      await server.shutdown();
    },
  };
}

Deno.test("igHealthy: 200 is up, 503 and no answer in time are down", async () => {
  for (const [status, expected] of [[200, true], [503, false], ["hang", false]] as const) {
    const server = healthServer(status);
    try {
      const up = await Effect.runPromise(
        igHealthy({ baseUrl: server.baseUrl, timeoutMs: status === "hang" ? 200 : 30_000 }),
      );
      assert.equal(up, expected, `status ${status}`);
    } finally {
      await server.close();
    }
  }
  // Nothing listening.
  const gone = healthServer(200);
  await gone.close();
  assert.equal(
    await Effect.runPromise(igHealthy({ baseUrl: gone.baseUrl, timeoutMs: 30_000 })),
    false,
  );
});

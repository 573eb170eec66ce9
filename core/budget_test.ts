import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Result } from "effect";
import { stringify } from "yaml";
import { shippedProfile } from "../tests/_testing.ts";
import {
  budgetMatches,
  chargedTo,
  prefixWithin,
  TokenBucket,
  usageOf,
  type UsageRow,
  utf8Length,
} from "./budget.ts";
import { loadProfile } from "./profile.ts";

Deno.test("a budget's match is an id, * or a prefix ending in *", () => {
  assert.ok(budgetMatches("*", "anything"));
  assert.ok(budgetMatches("s3_*", "s3_event_stream_with_fraud_6B"));
  assert.ok(!budgetMatches("s3_*", "arrival_events_5B"));
  assert.ok(budgetMatches("arrival_events_5B", "arrival_events_5B"));
  assert.ok(!budgetMatches("arrival_events", "arrival_events_5B"), "no prefix without *");
});

Deno.test("a token bucket starts full, refills at its rate and never holds more than a second", () => {
  const bucket = new TokenBucket(10);
  assert.equal(bucket.available(0), 10);
  bucket.take(0, 10);
  assert.equal(bucket.available(0), 0);
  assert.equal(bucket.waitMs(0, 1), 100);
  assert.equal(bucket.available(250), 2);
  assert.equal(bucket.available(60_000), 10, "capped at one second's worth");
  // A fractional rate still holds one whole unit.
  const slow = new TokenBucket(0.5);
  assert.equal(slow.capacity, 1);
  slow.take(0, 1);
  assert.equal(slow.waitMs(0, 1), 2000);
});

Deno.test("the events that fit a byte limit are the longest prefix whose sum stays within it", () => {
  assert.equal(prefixWithin([3, 3, 3], 9), 3);
  assert.equal(prefixWithin([3, 3, 3], 8), 2);
  assert.equal(prefixWithin([10], 9), 0);
  assert.equal(prefixWithin([], 0), 0);
});

Deno.test("envelope bytes are counted as UTF-8", () => {
  for (const text of ["plain", "é", "€uro", "😀", '{"name":"Zoë 😀"}', "\ud800x"]) {
    assert.equal(utf8Length(text), new TextEncoder().encode(text).length, text);
  }
});

Deno.test("ledger usage adds up per output of a run, per run and per principal", () => {
  const row = (
    principal: string,
    runKey: string,
    outputId: string,
    metric: string,
    amount: number,
    seqTo: number | null,
  ): UsageRow => ({ principal, runKey, outputId, metric, amount, seqTo });
  const rows = [
    row("svc:a", "run1", "out1", "events", 5, 4),
    row("svc:a", "run1", "out1", "bytes", 500, 4),
    row("svc:a", "run1", "out2", "events", 3, 9),
    row("svc:a", "run2", "out1", "events", 7, 6),
    row("svc:b", "run3", "out1", "events", 100, 99),
  ];
  const at = { runKey: "run1", outputId: "out1", principal: "svc:a" };
  assert.deepEqual(usageOf(rows, "output", at), { events: 5, bytes: 500 });
  assert.deepEqual(usageOf(rows, "run", at), { events: 8, bytes: 500 });
  assert.deepEqual(usageOf(rows, "principal", at), { events: 15, bytes: 500 });
  assert.equal(chargedTo(rows, "run1", "out1"), 4);
  assert.equal(chargedTo(rows, "run1", "out3"), -1);
});

// ---------------------------------------------------------------------------------------------
// Bad budgets in a profile

async function loadWithBudgets(budgets: unknown) {
  const dir = await Deno.makeTempDir({ prefix: "budget_profile_" });
  try {
    const path = join(dir, "profile.yaml");
    await Deno.writeTextFile(
      path,
      stringify((() => {
        const shipped = shippedProfile("local") as { governance?: Record<string, unknown> };
        return { ...shipped, governance: { ...shipped.governance, budgets } };
      })()),
    );
    return { path, result: await Effect.runPromise(Effect.result(loadProfile(path, {}))) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("good budgets load, numbers as numbers or their string forms", async () => {
  const { result } = await loadWithBudgets([
    { scope: "output", match: "s3_*", max_events: 100, events_per_second: "2.5" },
    { scope: "run", match: "*", max_bytes: "1000000" },
    { scope: "principal", match: "svc:world_stream_producer", bytes_per_second: 1e6 },
  ]);
  if (Result.isFailure(result)) assert.fail(result.failure.message);
  assert.deepEqual(result.success.governance.budgets, [
    { scope: "output", match: "s3_*", max_events: 100, events_per_second: 2.5 },
    { scope: "run", match: "*", max_bytes: 1000000 },
    { scope: "principal", match: "svc:world_stream_producer", bytes_per_second: 1e6 },
  ]);
});

Deno.test("each bad budget fails the profile with BUDGET_INVALID naming the budget and field", async () => {
  const cases: ReadonlyArray<readonly [unknown, RegExp]> = [
    [{ scope: "output", match: "*", max_events: -5 }, /budgets\[0\]\.max_events: .*>= 1/],
    [{ scope: "output", match: "*", max_events: 0 }, /budgets\[0\]\.max_events: /],
    [{ scope: "output", match: "*", max_events: 2.5 }, /budgets\[0\]\.max_events: .*integer/],
    [{ scope: "output", match: "*", max_bytes: "lots" }, /budgets\[0\]\.max_bytes: /],
    [{ scope: "output", match: "*", events_per_second: 0 }, /events_per_second: .*> 0/],
    [{ scope: "output", match: "*", bytes_per_second: -1 }, /budgets\[0\]\.bytes_per_second: /],
    [{ scope: "output", match: "*", events_per_second: "fast" }, /events_per_second: /],
    [{ scope: "tenant", match: "*", max_events: 1 }, /budgets\[0\]\.scope: /],
    [{ scope: "output", match: "a*b", max_events: 1 }, /budgets\[0\]\.match: /],
    [{ scope: "output", match: "*", max_event: 1 }, /budgets\[0\]\.max_event: Unknown key/],
    [{ scope: "output", match: "*" }, /budgets\[0\]: Expected at least one of max_events/],
  ];
  for (const [budget, message] of cases) {
    const { path, result } = await loadWithBudgets([budget]);
    assert.ok(Result.isFailure(result), `${JSON.stringify(budget)} loaded`);
    assert.equal(result.failure.reason, "BUDGET_INVALID", result.failure.message);
    assert.ok(result.failure.message.startsWith(`${path}: governance.budgets[0]`));
    assert.match(result.failure.message, message);
  }
});

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { chromium } from "playwright-core";
import { publishReady } from "../actions/publish_ready.ts";
import { adminSite, OPERATOR, VIEWER } from "./_admin_site.ts";
import {
  effectTest,
  fileTempDir,
  makeWorld,
  pgliteTemplate,
  scopedTempDir,
  waitFor,
} from "./_testing.ts";

// The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
// browser is ever downloaded) against a real runtime streaming a generated world, paced, into the
// reference gate whose first requests fail so the run's first batch becomes dead letters: the
// page loads and asks for a token, a wrong one is refused, the viewer sees the run's progress bar
// advance live (SSE) without operator buttons, a `?token=` link logs in once and leaves the
// address bar, the session cookie is out of the page's reach, and the operator retries a dead
// letter from the page (the gate admits it).
// Then the operator pauses the run from the page (the Supervisor says paused) and resumes it.

const CHROMIUM = "/usr/bin/chromium";
const HAS_CHROMIUM = existsSync(CHROMIUM);

const TMP = await fileTempDir("dashboard_browser_test_");
const WORLD = join(TMP, "world");
const [TEMPLATE] = HAS_CHROMIUM
  ? await Promise.all([pgliteTemplate(join(TMP, "bare")), makeWorld(WORLD, 3000)])
  : [""];

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: CHROMIUM })),
  (b) => Effect.promise(() => b.close()),
);

effectTest(
  HAS_CHROMIUM
    ? "the dashboard in headless Chromium: login, live progress of a paced run, the operator retries a dead letter, then pauses the run from the page (the Supervisor holds it) and resumes it"
    : `the dashboard in headless Chromium: SKIPPED, no chromium at ${CHROMIUM} (apt-get install chromium)`,
  Effect.gen(function* () {
    const dir = yield* scopedTempDir(TMP, "site");
    const site = yield* adminSite(dir, {
      template: TEMPLATE,
      // About a minute of the world's event time per 8 ms: the run lasts well past the checks.
      speedup: 8000,
      batchSize: 20,
      deadLetterFirstBatch: true,
    });
    const base = site.admin.url;
    const published = yield* publishReady({
      engineRunRoot: WORLD,
      profile: site.profile,
      platformRunId: "platform_20260101T000004Z",
    });
    const chrome = yield* browser;
    const context = yield* Effect.promise(() =>
      chrome.newContext({ viewport: { width: 1366, height: 768 } })
    );
    const page = yield* Effect.promise(() => context.newPage());
    const errors: Array<string> = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const run = <A>(f: () => Promise<A>) => Effect.promise(f);

    // The page loads and asks for a token; a wrong one is refused.
    yield* run(() => page.goto(`${base}/`));
    yield* run(() => page.locator("#login").waitFor({ state: "visible" }));
    yield* run(() => page.fill("#token", "wrong-token-0123456789"));
    yield* run(() => page.click("#sign-in"));
    yield* run(() => page.locator("#login-failed").waitFor({ state: "visible" }));
    assert.equal(page.url(), `${base}/`, "the failure flag leaves the address bar");

    // The viewer signs in and watches the run's progress advance.
    yield* run(() => page.fill("#token", VIEWER));
    yield* run(() => page.click("#sign-in"));
    yield* run(() => page.locator("#dashboard").waitFor({ state: "visible" }));
    assert.equal(yield* run(() => page.textContent("#who")), "user:viewer (viewer)");
    assert.equal(yield* run(() => page.isVisible("#run-controls")), false, "no operator buttons");
    const delivered = () =>
      run(() =>
        page.locator("[data-output]").first().getAttribute("data-delivered", { timeout: 60_000 })
      ).pipe(Effect.map(Number));
    const first = yield* waitFor(
      "the page shows the output delivering",
      delivered().pipe(Effect.map((n) => n > 0 ? n : undefined)),
      { timeoutMs: 90_000 },
    );
    const later = yield* waitFor(
      "the progress bar advances",
      delivered().pipe(Effect.map((n) => n > first ? n : undefined)),
      { timeoutMs: 60_000 },
    );
    const label = yield* run(() => page.textContent("[data-output] .label"));
    assert.match(label ?? "", /delivered \(\d+\.\d%\)/);
    assert.ok(later > first);
    yield* waitFor(
      "the event-rate chart draws a line",
      run(() => page.locator("#rate-chart polyline").count()).pipe(
        Effect.map((n) => n > 0 ? n : undefined),
      ),
      { timeoutMs: 30_000 },
    );
    assert.equal(yield* run(() => page.evaluate("document.cookie")), "", "HttpOnly cookie");

    // Log out; the operator's `?token=` link logs in once and is redirected away.
    yield* run(() => page.click("#logout button"));
    yield* run(() => page.locator("#login").waitFor({ state: "visible" }));
    yield* run(() => page.goto(`${base}/?token=${OPERATOR}`));
    yield* run(() => page.locator("#dashboard").waitFor({ state: "visible" }));
    assert.equal(page.url(), `${base}/`, "the token left the address bar");
    const html = yield* run(() => page.content());
    assert.ok(!html.includes(OPERATOR) && !html.includes(VIEWER), "no token in the page");
    assert.equal(yield* run(() => page.textContent("#who")), "user:operator (operator)");

    // The operator retries a dead letter from the table: the gate admits it.
    const row = page.locator("tr[data-dead-letter]").first();
    yield* run(() => row.waitFor({ state: "visible", timeout: 60_000 }));
    const id = (yield* run(() => row.getAttribute("data-dead-letter")))!;
    const letter = yield* run(async () => {
      const res = await fetch(`${base}/v1/dead-letters?status=all&limit=1000`, {
        headers: { Authorization: `Bearer ${OPERATOR}` },
      });
      const body = await res.json();
      return body.dead_letters.find((d: { id: string }) => d.id === id) as { event_id: string };
    });
    yield* run(() => row.locator("button.retry").click());
    yield* run(() =>
      page.locator("#action-result", { hasText: "closed 1" }).waitFor({ timeout: 30_000 })
    );
    const lookup = yield* run(() =>
      fetch(`${site.ig.url}/v1/ops/lookup?event_id=${letter.event_id}`).then((r) => r.json())
    );
    assert.equal(lookup.admissions[0].receipt.decision, "ADMIT");
    yield* waitFor(
      "the retried dead letter leaves the open list",
      run(() => page.locator(`tr[data-dead-letter="${id}"]`).count()).pipe(
        Effect.map((n) => n === 0 ? true : undefined),
      ),
      { timeoutMs: 15_000 },
    );

    // Pause and resume the run in flight from the page: the Supervisor holds it, then lets it go.
    yield* run(() => page.locator("#run-controls").waitFor({ state: "visible" }));
    const runKey = yield* run(() => page.textContent("#run-key"));
    const liveState = run(() =>
      fetch(`${base}/v1/runs/live`, { headers: { Authorization: `Bearer ${OPERATOR}` } })
        .then((r) => r.json())
        .then((b: { runs: Array<{ run_key: string | null; state: string }> }) =>
          b.runs.find((r) => r.run_key === runKey)?.state
        )
    );
    for (const [action, state] of [["pause", "paused"], ["resume", "running"]] as const) {
      yield* run(() => page.click(`#${action}`));
      yield* run(() =>
        page.locator("#action-result", { hasText: `${action}: ${state}` }).waitFor({
          timeout: 15_000,
        })
      );
      const now = yield* liveState;
      assert.ok(now === state || (action === "resume" && now === "finished"), `${action}: ${now}`);
    }
    const inFlight = yield* run(() =>
      fetch(`${base}/v1/status`, { headers: { Authorization: `Bearer ${OPERATOR}` } })
        .then((r) => r.json())
    );
    assert.equal(inFlight.runs_in_flight[0]?.message_id, published.message_id);
    assert.deepEqual(errors, [], "no script errors on the page");
    yield* run(() => context.close());
  }),
  { ignore: !HAS_CHROMIUM },
);

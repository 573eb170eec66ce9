// The worldstream dashboard: plain script, no build step. It reads everything with the session
// cookie from the admin API (/v1/session, the /v1/events feed, /v1/runs, /v1/dead-letters) and,
// for an operator, posts actions with the session's CSRF token in a header. Data is only ever
// written into the page as text (textContent), never as HTML.

const CSRF_HEADER = "X-Worldstream-CSRF";
const WINDOW_MS = 5 * 60 * 1000;
const REFRESH_MS = 5000;
const COLORS = ["#2f6fde", "#d9822b", "#1f8a4c", "#8e44ad", "#c0392b", "#16a2b8"];

const state = {
  role: "viewer",
  csrf: null,
  /** output id -> [{t, rate, p50, p99}] over the last WINDOW_MS */
  history: new Map(),
  /** output id -> {t, delivered} of the previous snapshot */
  previous: new Map(),
  colors: new Map(),
  runKey: null,
  feed: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const fmt = (n) => Number(n).toLocaleString("en-US");
const ms = (n) => `${Number(n).toFixed(1)} ms`;

function colorOf(output) {
  if (!state.colors.has(output)) {
    state.colors.set(output, COLORS[state.colors.size % COLORS.length]);
  }
  return state.colors.get(output);
}

async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (init.method === "POST" && state.csrf) headers[CSRF_HEADER] = state.csrf;
  const res = await fetch(path, { ...init, headers, credentials: "same-origin" });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text.slice(0, 200) };
  }
  return { status: res.status, body };
}

// ---------------------------------------------------------------------------------------------
// Sign-in

async function start() {
  const url = new URL(location.href);
  if (url.searchParams.get("login") === "failed") {
    $("login-failed").hidden = false;
    history.replaceState(null, "", "/");
  }
  const me = await api("/v1/session");
  if (me.status === 401) return showLogin();
  if (me.status !== 200) {
    $("health").textContent = `API ${me.status}`;
    return setTimeout(start, 3000);
  }
  state.role = me.body.role;
  state.csrf = me.body.csrf;
  $("who").textContent = `${me.body.principal} (${me.body.role})`;
  $("logout").hidden = false;
  $("login").hidden = true;
  $("dashboard").hidden = false;
  for (const node of document.querySelectorAll(".operator-only")) {
    node.hidden = state.role !== "operator";
  }
  openFeed();
  refreshTables();
  setInterval(refreshTables, REFRESH_MS);
}

function showLogin() {
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("health").textContent = "signed out";
  $("token").focus();
}

// ---------------------------------------------------------------------------------------------
// Live feed: /v1/status once a second

function openFeed() {
  const feed = new EventSource("/v1/events");
  state.feed = feed;
  feed.addEventListener("status", (e) => {
    $("feed").textContent = "live";
    render(JSON.parse(e.data));
  });
  feed.addEventListener("error", () => {
    $("feed").textContent = "feed lost, reconnecting…";
    if (feed.readyState === EventSource.CLOSED) {
      // A refused reconnect (the runtime restarting, or the session gone): try again shortly.
      setTimeout(async () => {
        const me = await api("/v1/session");
        if (me.status === 401) return showLogin();
        openFeed();
      }, 3000);
    }
  });
}

function render(status) {
  const health = $("health");
  health.textContent = status.status;
  health.className = `pill ${status.status}`;
  $("wal").textContent = status.wal
    ? `${fmt(status.wal.pending_records)} records (${fmt(status.wal.pending_bytes)} B)`
    : "–";
  $("actors").textContent = status.actors
    .map((a) => `${a.actor} ${a.state}${a.restarts ? ` (${a.restarts} restarts)` : ""}`)
    .join(", ") || "–";

  const run = status.runs_in_flight[0];
  state.runKey = run?.run_key ?? null;
  $("run-none").hidden = run !== undefined;
  $("run-info").hidden = run === undefined;
  $("run-controls").hidden = run === undefined || state.role !== "operator";
  if (run) {
    $("run-key").textContent = run.run_key ?? "(planning)";
    $("run-source").textContent = run.source + (run.message_id ? ` ${run.message_id}` : "");
    $("run-platform").textContent = run.platform_run_id ?? "–";
    $("run-started").textContent = new Date(run.started_at).toLocaleString();
    $("run-queued").textContent = String(status.queued_runs);
  }

  const now = Date.parse(status.at);
  renderOutputs(status.outputs);
  for (const o of status.outputs) {
    const prev = state.previous.get(o.output_id);
    const rate = prev && now > prev.t
      ? ((o.delivered - prev.delivered) * 1000) / (now - prev.t)
      : 0;
    state.previous.set(o.output_id, { t: now, delivered: o.delivered });
    const points = state.history.get(o.output_id) ?? [];
    points.push({
      t: now,
      rate: Math.max(0, rate),
      p50: o.lateness_p50_ms,
      p99: o.lateness_p99_ms,
    });
    while (points.length && points[0].t < now - WINDOW_MS) points.shift();
    state.history.set(o.output_id, points);
  }
  for (const [id, points] of state.history) {
    while (points.length && points[0].t < now - WINDOW_MS) points.shift();
    if (points.length === 0) state.history.delete(id);
  }
  drawChart(
    $("rate-chart"),
    $("rate-legend"),
    now,
    [...state.history].map(([id, pts]) => ({
      id,
      color: colorOf(id),
      points: pts.map((p) => [p.t, p.rate]),
    })),
  );
  drawChart(
    $("lateness-chart"),
    $("lateness-legend"),
    now,
    [...state.history].flatMap(([id, pts]) => [
      { id: `${id} p99`, color: colorOf(id), points: pts.map((p) => [p.t, p.p99]) },
      { id: `${id} p50`, color: colorOf(id), dashed: true, points: pts.map((p) => [p.t, p.p50]) },
    ]),
  );
}

function renderOutputs(outputs) {
  const box = $("outputs");
  $("outputs-none").hidden = outputs.length > 0;
  box.replaceChildren(...outputs.map((o) => {
    const share = o.total > 0 ? o.delivered / o.total : 0;
    const dead = o.total > 0 ? o.dead_lettered / o.total : 0;
    const bar = el(
      "div",
      { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(o.total) },
      el("div", { class: "fill" }),
      el("div", { class: "dead" }),
      el("div", {
        class: "label",
        text: `${fmt(o.delivered)} / ${fmt(o.total)} delivered (${(share * 100).toFixed(1)}%)`,
      }),
    );
    bar.setAttribute("aria-valuenow", String(o.delivered));
    bar.children[0].style.width = `${(share * 100).toFixed(2)}%`;
    bar.children[1].style.left = `${(share * 100).toFixed(2)}%`;
    bar.children[1].style.width = `${(dead * 100).toFixed(2)}%`;
    const figures = el(
      "div",
      { class: "figures" },
      el("span", { text: `emitted ${fmt(o.emitted)}` }),
      el("span", { text: `in lane ${fmt(o.in_lane)}` }),
      el("span", { text: `dead-lettered ${fmt(o.dead_lettered)}` }),
      el("span", { text: `retries ${fmt(o.retries)}` }),
      el("span", { text: `${fmt(Math.round(o.events_per_s))} events/s` }),
      el("span", { text: `event time ${o.event_time ?? "–"}` }),
      el("span", { text: `lateness p50 ${ms(o.lateness_p50_ms)} · p99 ${ms(o.lateness_p99_ms)}` }),
    );
    return el(
      "div",
      { class: "output", "data-output": o.output_id, "data-delivered": String(o.delivered) },
      el("div", { class: "name", text: o.output_id }),
      bar,
      figures,
    );
  }));
}

/** Line chart of `series` ({id, color, points: [[t, y]], dashed?}) over the last WINDOW_MS. */
function drawChart(node, legend, now, series) {
  const W = 600, H = 180, PAD = 28;
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t) => PAD + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (W - PAD - 4);
  const y = (v) => H - 16 - (v / max) * (H - 28);
  const parts = [
    svg("line", { x1: PAD, y1: y(0), x2: W - 4, y2: y(0), stroke: "#d9dde3" }),
    svg("line", { x1: PAD, y1: y(max), x2: W - 4, y2: y(max), stroke: "#eef0f3" }),
  ];
  const top = svg("text", { x: 2, y: y(max) + 4 });
  top.textContent = max >= 100 ? fmt(Math.round(max)) : max.toFixed(1);
  const zero = svg("text", { x: 2, y: y(0) + 4 });
  zero.textContent = "0";
  const ago = svg("text", { x: PAD, y: H - 2 });
  ago.textContent = "−5 min";
  const nowLabel = svg("text", { x: W - 30, y: H - 2 });
  nowLabel.textContent = "now";
  parts.push(top, zero, ago, nowLabel);
  for (const s of series) {
    if (s.points.length === 0) continue;
    parts.push(svg("polyline", {
      fill: "none",
      stroke: s.color,
      "stroke-width": 1.5,
      ...(s.dashed ? { "stroke-dasharray": "4 3" } : {}),
      points: s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
    }));
  }
  node.replaceChildren(...parts);
  legend.replaceChildren(...series.map((s) => {
    const swatch = el("i");
    swatch.style.background = s.color;
    const last = s.points.at(-1)?.[1];
    return el("span", {}, swatch, `${s.id}${last === undefined ? "" : ` ${last.toFixed(1)}`}`);
  }));
}

// ---------------------------------------------------------------------------------------------
// Runs and dead letters, every few seconds

async function refreshTables() {
  const [runs, dead] = await Promise.all([
    api("/v1/runs?limit=20"),
    api("/v1/dead-letters?status=open&limit=100"),
  ]);
  if (runs.status === 401 || dead.status === 401) return showLogin();
  if (runs.status === 200) {
    $("runs").replaceChildren(...runs.body.runs.map((r) =>
      el(
        "tr",
        { "data-run": r.run_key },
        el("td", { class: "mono", text: r.run_key.slice(0, 16) }),
        el("td", { text: r.status }),
        el("td", { text: r.reason ?? "" }),
        el("td", { class: "mono", text: r.platform_run_id ?? "" }),
        el("td", { text: r.started_at ? new Date(r.started_at).toLocaleString() : "" }),
        el("td", { text: r.ended_at ? new Date(r.ended_at).toLocaleString() : "" }),
        el("td", { text: r.emitted === null ? "" : fmt(r.emitted) }),
        el("td", { text: r.dead_lettered === null ? "" : fmt(r.dead_lettered) }),
      )
    ));
  }
  if (dead.status === 200) {
    const rows = dead.body.dead_letters;
    $("dead-letters-none").hidden = rows.length > 0;
    $("dead-letters").replaceChildren(...rows.map((d) => {
      const row = el(
        "tr",
        { "data-dead-letter": d.id },
        el("td", { class: "mono", text: d.id.slice(0, 16) }),
        el("td", { text: d.output_id }),
        el("td", { class: "mono", text: d.event_id.slice(0, 16) }),
        el("td", { text: d.reason }),
        el("td", { text: String(d.attempts) }),
        el("td", { text: String(d.retries) }),
        el("td", { text: new Date(d.at).toLocaleString() }),
      );
      if (state.role === "operator") {
        const retry = el("button", { class: "retry", text: "Retry" });
        retry.addEventListener("click", () => retryDeadLetter(d.id, retry));
        row.append(el("td", {}, retry));
      }
      return row;
    }));
  }
}

// ---------------------------------------------------------------------------------------------
// Operator actions

function showResult(what, answer) {
  const ok = answer.status >= 200 && answer.status < 300;
  const body = answer.body ?? {};
  const summary = ok
    ? (body.state ?? body.status ?? "done") +
      (body.closed !== undefined ? `, closed ${body.closed}` : "")
    : `${answer.status} ${body.reason ?? ""}: ${body.detail ?? ""}`;
  const result = $("action-result");
  result.textContent = `${what}: ${summary}`;
  result.className = ok ? "result" : "result failed";
}

async function runAction(action) {
  const run = state.runKey;
  if (!run) return;
  if (action === "cancel" && !confirm(`Cancel run ${run}?`)) return;
  const answer = await api(`/v1/runs/${encodeURIComponent(run)}/${action}`, { method: "POST" });
  showResult(action, answer);
}

async function retryDeadLetter(id, button) {
  button.disabled = true;
  const answer = await api(`/v1/dead-letters/${encodeURIComponent(id)}/retry`, { method: "POST" });
  showResult(`retry ${id.slice(0, 16)}`, answer);
  await refreshTables();
}

for (const button of document.querySelectorAll("#run-controls button")) {
  button.addEventListener("click", () => runAction(button.dataset.action));
}

start();

import assert from "node:assert/strict";
import { parsePrometheus, sampleValue } from "../tests/prometheus.ts";
import { escapeLabelValue, formatNumber, Registry } from "./metrics.ts";

Deno.test("counters, gauges and histograms render as Prometheus text a strict parser reads back", () => {
  const r = new Registry();
  const sent = r.counter("demo_sent_total", "Envelopes sent", ["output_id"]);
  sent.labels("a").inc(3);
  sent.labels("b").inc();
  sent.labels("a").inc(2);
  r.gauge("demo_backlog_bytes", "Bytes waiting").labels().set(1234.5);
  const latency = r.histogram("demo_latency_seconds", "Latency", ["output_id"], [0.01, 0.1, 1]);
  const h = latency.labels("a");
  for (const v of [0.005, 0.01, 0.05, 0.5, 2, 7]) h.observe(v);

  const text = r.render();
  const parsed = parsePrometheus(text);
  assert.deepEqual([...parsed.keys()], [
    "demo_sent_total",
    "demo_backlog_bytes",
    "demo_latency_seconds",
  ]);
  assert.equal(parsed.get("demo_sent_total")?.type, "counter");
  assert.equal(parsed.get("demo_sent_total")?.help, "Envelopes sent");
  assert.equal(parsed.get("demo_backlog_bytes")?.type, "gauge");
  assert.equal(parsed.get("demo_latency_seconds")?.type, "histogram");
  assert.equal(sampleValue(parsed, "demo_sent_total", { output_id: "a" }), 5);
  assert.equal(sampleValue(parsed, "demo_sent_total", { output_id: "b" }), 1);
  assert.equal(sampleValue(parsed, "demo_backlog_bytes"), 1234.5);
  // Buckets are cumulative and `le` is an upper bound that includes its value.
  const bucket = (le: string) =>
    sampleValue(parsed, "demo_latency_seconds_bucket", { output_id: "a", le });
  assert.deepEqual([bucket("0.01"), bucket("0.1"), bucket("1"), bucket("+Inf")], [2, 3, 4, 6]);
  assert.equal(sampleValue(parsed, "demo_latency_seconds_count", { output_id: "a" }), 6);
  assert.equal(sampleValue(parsed, "demo_latency_seconds_sum", { output_id: "a" }), 9.565);
  assert.match(text, /^# HELP demo_sent_total Envelopes sent\n# TYPE demo_sent_total counter\n/);
});

Deno.test("each scrape shows the values of now and the children made since the last one", () => {
  const r = new Registry();
  const sent = r.counter("demo_sent_total", "Envelopes sent", ["output_id"]);
  const latency = r.histogram("demo_latency_seconds", "Latency", ["output_id"], [0.1, 1]);
  sent.labels("a").inc(2);
  latency.labels("a").observe(0.05);
  const first = parsePrometheus(r.render());
  assert.equal(sampleValue(first, "demo_sent_total", { output_id: "a" }), 2);
  assert.equal(sampleValue(first, "demo_sent_total", { output_id: "b" }), undefined);

  sent.labels("a").inc(5);
  sent.labels("b").inc();
  latency.labels("a").observe(0.5);
  latency.labels("b").observe(3);
  const second = parsePrometheus(r.render());
  assert.equal(sampleValue(second, "demo_sent_total", { output_id: "a" }), 7);
  assert.equal(sampleValue(second, "demo_sent_total", { output_id: "b" }), 1);
  const bucket = (output_id: string, le: string) =>
    sampleValue(second, "demo_latency_seconds_bucket", { output_id, le });
  assert.deepEqual([bucket("a", "0.1"), bucket("a", "1"), bucket("a", "+Inf")], [1, 2, 2]);
  assert.deepEqual([bucket("b", "0.1"), bucket("b", "1"), bucket("b", "+Inf")], [0, 0, 1]);
  assert.equal(sampleValue(second, "demo_latency_seconds_count", { output_id: "b" }), 1);
  assert.equal(sampleValue(second, "demo_latency_seconds_sum", { output_id: "a" }), 0.55);
});

Deno.test("label values and HELP text are escaped so that any string survives the round trip", () => {
  const r = new Registry();
  const nasty = 'a\\b"c\nd}e,f="g"';
  r.counter("demo_total", "Help with a \\ backslash\nand a new line", ["path"]).labels(nasty).inc(
    7,
  );
  const text = r.render();
  assert.ok(text.includes('path="a\\\\b\\"c\\nd}e,f=\\"g\\""'), text);
  const parsed = parsePrometheus(text);
  assert.equal(sampleValue(parsed, "demo_total", { path: nasty }), 7);
  assert.equal(parsed.get("demo_total")?.help, "Help with a \\ backslash\nand a new line");
  assert.equal(escapeLabelValue("plain"), "plain");
});

Deno.test("special values are spelt as the format wants and an untouched unlabelled metric reads 0", () => {
  assert.deepEqual([Infinity, -Infinity, NaN, 0, 1e21, 0.25].map(formatNumber), [
    "+Inf",
    "-Inf",
    "NaN",
    "0",
    "1e+21",
    "0.25",
  ]);
  const r = new Registry();
  r.counter("demo_total", "Nothing yet");
  r.gauge("demo_labelled", "No children yet", ["output_id"]);
  const parsed = parsePrometheus(r.render());
  assert.equal(sampleValue(parsed, "demo_total"), 0);
  assert.equal(parsed.get("demo_labelled")?.samples.length, 0);
});

Deno.test("a counter never goes down and a gauge goes both ways", () => {
  const r = new Registry();
  const c = r.counter("demo_total", "c").labels();
  c.inc(2);
  c.inc(-5);
  assert.equal(c.value, 2);
  const g = r.gauge("demo_gauge", "g").labels();
  g.inc(5);
  g.dec(7);
  assert.equal(g.value, -2);
});

Deno.test("bad metric names, label names, buckets and label counts are refused when made", () => {
  const r = new Registry();
  assert.throws(() => r.counter("1bad", "x"), /Bad metric name/);
  assert.throws(() => r.counter("ok_total", "x", ["bad-label"]), /Bad label name/);
  assert.throws(() => r.counter("ok2_total", "x", ["__reserved"]), /Bad label name/);
  assert.throws(() => r.histogram("h1", "x", [], [1, 1]), /strictly increasing/);
  assert.throws(() => r.histogram("h2", "x", [], [1, Infinity]), /strictly increasing/);
  assert.throws(() => r.histogram("h3", "x", ["le"], [1]), /label le/);
  const f = r.counter("twice_total", "x", ["a"]);
  assert.throws(() => r.counter("twice_total", "x"), /registered twice/);
  assert.throws(() => f.labels("a", "b"), /takes 1 label values, got 2/);
});

Deno.test("the strict parser refuses what Prometheus would refuse", () => {
  const bad: Array<[string, RegExp]> = [
    ["x 1", /end with a line feed/],
    ['x{a="1} 1\n', /unterminated/],
    ['x{a="\\t"} 1\n', /bad escape/],
    ["x one\n", /bad value/],
    ["x 1\ny 2\nx 3\n", /two groups/],
    ['x{a="1"} 1\nx{a="1"} 2\n', /repeated/],
    ["x 1\n# TYPE x counter\n", /after its samples/],
    ["# TYPE x counter\nx -1\n", /Counter x is -1/],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /lacks \+Inf/],
    [
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      /fell/,
    ],
    ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /but _count 1/],
  ];
  for (const [text, why] of bad) assert.throws(() => parsePrometheus(text), why, text);
});

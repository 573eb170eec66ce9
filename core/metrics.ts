/**
 * A small metrics registry and its Prometheus text exposition (format 0.0.4), with no SDK: the
 * streaming path increments plain numbers on objects it looked up once (an output's counters are
 * fetched when its lane opens, not per event), and the text is built only when `/metrics` is
 * scraped.
 *
 * Families are counters, gauges and histograms with fixed buckets, each with a fixed list of label
 * names; a family's children (one per label value set) live for the registry's life, so a counter
 * only ever grows, across runs, as Prometheus expects. Names, label names and label value counts
 * are checked when a family or child is made: a wrong one is a bug in worldstream and throws.
 */

/** The exposition's content type (Prometheus text format 0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A counter child: only grows. */
export class Counter {
  value = 0;
  /** Adds `n` (default 1); a negative `n` is ignored, a counter never goes down. */
  inc(n = 1): void {
    if (n > 0) this.value += n;
  }
}

/** A gauge child: any value, up or down. */
export class Gauge {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

/** A histogram child over its family's upper bounds (the `+Inf` bucket is implicit). */
export class Histogram {
  sum = 0;
  count = 0;
  /** Per-bucket (not cumulative) counts; the last one is `+Inf`. */
  readonly counts: Float64Array;
  constructor(readonly bounds: ReadonlyArray<number>) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  /** Records one value: a scan of a dozen bounds, no allocation. */
  observe(v: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

type Kind = "counter" | "gauge" | "histogram";
type ChildOf<K extends Kind> = K extends "counter" ? Counter
  : K extends "gauge" ? Gauge
  : Histogram;

/** One named metric and its children by label values. */
export class Family<K extends Kind> {
  private readonly children = new Map<
    string,
    { values: ReadonlyArray<string>; child: ChildOf<K> }
  >();
  constructor(
    readonly name: string,
    readonly kind: K,
    readonly help: string,
    readonly labelNames: ReadonlyArray<string>,
    readonly buckets: ReadonlyArray<number>,
  ) {}

  /** The child of these label values (made on first use; keep it, do not look it up per event). */
  labels(...values: ReadonlyArray<string>): ChildOf<K> {
    if (values.length !== this.labelNames.length) {
      throw new Error(
        `Metric ${this.name} takes ${this.labelNames.length} label values, got ${values.length}`,
      );
    }
    const key = values.join("\u0000");
    const found = this.children.get(key);
    if (found) return found.child;
    const child =
      (this.kind === "counter"
        ? new Counter()
        : this.kind === "gauge"
        ? new Gauge()
        : new Histogram(this.buckets)) as ChildOf<K>;
    this.children.set(key, { values: [...values], child });
    return child;
  }

  /** Every child with its label values, in the order they were made. */
  entries(): IterableIterator<{ values: ReadonlyArray<string>; child: ChildOf<K> }> {
    return this.children.values();
  }
}

/** A set of metric families, rendered together. */
export class Registry {
  private readonly families = new Map<string, Family<Kind>>();

  /** A counter family (by convention its name ends in `_total`). */
  counter(name: string, help: string, labelNames: ReadonlyArray<string> = []): Family<"counter"> {
    return this.add(new Family(name, "counter", help, labelNames, []));
  }

  gauge(name: string, help: string, labelNames: ReadonlyArray<string> = []): Family<"gauge"> {
    return this.add(new Family(name, "gauge", help, labelNames, []));
  }

  /** A histogram with fixed, strictly increasing, finite upper bounds. */
  histogram(
    name: string,
    help: string,
    labelNames: ReadonlyArray<string>,
    buckets: ReadonlyArray<number>,
  ): Family<"histogram"> {
    if (
      buckets.length === 0 || buckets.some((b, i) => !isFinite(b) || (i > 0 && b <= buckets[i - 1]))
    ) {
      throw new Error(`Histogram ${name} needs strictly increasing finite buckets`);
    }
    if (labelNames.includes("le")) throw new Error(`Histogram ${name} may not use the label le`);
    return this.add(new Family(name, "histogram", help, labelNames, buckets));
  }

  private add<K extends Kind>(family: Family<K>): Family<K> {
    if (!METRIC_NAME.test(family.name)) throw new Error(`Bad metric name ${family.name}`);
    for (const l of family.labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__")) {
        throw new Error(`Bad label name ${l} of ${family.name}`);
      }
    }
    if (new Set(family.labelNames).size !== family.labelNames.length) {
      throw new Error(`Repeated label name in ${family.name}`);
    }
    if (this.families.has(family.name)) throw new Error(`Metric ${family.name} registered twice`);
    this.families.set(family.name, family as unknown as Family<Kind>);
    return family;
  }

  /**
   * Each family's HELP/TYPE lines and each child's sample names with their labels (`name{...} `),
   * spelled once: they never change, so a scrape only formats the numbers. Scraped 10 times a
   * second beside a stream, re-escaping and joining every label of every bucket line was most of
   * the render.
   */
  private readonly spelled = new WeakMap<object, ReadonlyArray<string>>();

  /** The Prometheus text exposition (0.0.4) of every family, in registration order. */
  render(): string {
    let out = "";
    for (const f of this.families.values()) {
      out += this.spell(f, () => [
        `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.kind}\n`,
      ])[0];
      // An unlabelled family always has its one sample, even before anything touched it.
      if (f.labelNames.length === 0) f.labels();
      for (const { values, child } of f.entries()) {
        const names = this.spell(child, () => sampleNames(f, values));
        if (child instanceof Histogram) {
          let cumulative = 0;
          for (let i = 0; i <= f.buckets.length; i++) {
            cumulative += child.counts[i];
            out += `${names[i]}${cumulative}\n`;
          }
          out += `${names[f.buckets.length + 1]}${formatNumber(child.sum)}\n`;
          out += `${names[f.buckets.length + 2]}${child.count}\n`;
        } else {
          out += `${names[0]}${formatNumber(child.value)}\n`;
        }
      }
    }
    return out;
  }

  private spell(key: object, make: () => ReadonlyArray<string>): ReadonlyArray<string> {
    let found = this.spelled.get(key);
    if (found === undefined) this.spelled.set(key, found = make());
    return found;
  }
}

/**
 * A child's sample names with their labels, each followed by the space before its value: one
 * (counter, gauge), or a histogram's bucket lines (`le` last), then `_sum` and `_count`.
 */
function sampleNames(f: Family<Kind>, values: ReadonlyArray<string>): ReadonlyArray<string> {
  const pairs = f.labelNames.map((l, i) => `${l}="${escapeLabelValue(values[i])}"`);
  const labels = pairs.length ? `{${pairs.join(",")}}` : "";
  if (f.kind !== "histogram") return [`${f.name}${labels} `];
  return [
    ...[...f.buckets.map(formatNumber), "+Inf"].map((le) =>
      `${f.name}_bucket{${[...pairs, `le="${le}"`].join(",")}} `
    ),
    `${f.name}_sum${labels} `,
    `${f.name}_count${labels} `,
  ];
}

/** A sample value as the format spells it (`+Inf`, `-Inf`, `NaN`, else the JS decimal form). */
export function formatNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** A label value escaped: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escaped: backslash and line feed. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

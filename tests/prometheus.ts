/**
 * A strict parser of the Prometheus text exposition format 0.0.4, written from the format's
 * description (prometheus.io, "Exposition formats") for tests: it throws on anything a Prometheus
 * server would refuse or misread — a malformed line, an unknown escape, a TYPE after its samples,
 * a family split in two, a repeated series, a histogram without `+Inf`, with falling buckets, or
 * whose `+Inf` bucket is not its `_count`.
 */

/** One sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One metric family: its TYPE, HELP and samples in order. */
export interface ParsedFamily {
  readonly name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string | undefined;
  readonly samples: Array<Sample>;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = "[a-zA-Z_][a-zA-Z0-9_]*";
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses `text`; throws with the line number on the first problem. */
export function parsePrometheus(text: string): Map<string, ParsedFamily> {
  if (text !== "" && !text.endsWith("\n")) throw new Error("The text must end with a line feed");
  const families = new Map<string, ParsedFamily>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: string | undefined;
  const lines = text.split("\n");
  lines.pop();
  const family = (name: string, line: number) => {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`Line ${line}: family ${name} appears in two groups`);
      if (current !== undefined) closed.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", help: undefined, samples: [] };
      families.set(name, f);
    }
    return f;
  };
  lines.forEach((raw, i) => {
    const n = i + 1;
    if (raw.trim() === "") return;
    if (raw.startsWith("#")) {
      const m = raw.match(new RegExp(`^#\\s+(HELP|TYPE)\\s+(${NAME})(?:\\s(.*))?$`));
      if (!m) return; // a plain comment
      const [, keyword, name, rest = ""] = m;
      const f = family(name, n);
      if (keyword === "HELP") {
        if (f.help !== undefined) throw new Error(`Line ${n}: a second HELP for ${name}`);
        f.help = unescape(rest, false, n);
      } else {
        if (f.samples.length > 0) {
          throw new Error(`Line ${n}: TYPE of ${name} after its samples`);
        }
        if (!TYPES.has(rest.trim())) throw new Error(`Line ${n}: unknown type ${rest}`);
        if (seen.has(`type:${name}`)) throw new Error(`Line ${n}: a second TYPE for ${name}`);
        seen.add(`type:${name}`);
        f.type = rest.trim() as ParsedFamily["type"];
      }
      return;
    }
    const sample = parseSample(raw, n);
    const f = family(familyOf(sample.name, families), n);
    const key = `${sample.name}{${
      Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")
    }}`;
    if (seen.has(key)) throw new Error(`Line ${n}: series ${key} repeated`);
    seen.add(key);
    f.samples.push(sample);
  });
  for (const f of families.values()) checkFamily(f);
  return families;
}

/** The family a sample belongs to: a histogram's `_bucket`/`_sum`/`_count` go to it. */
function familyOf(name: string, families: Map<string, ParsedFamily>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const f = families.get(base);
    if (f && (f.type === "histogram" || f.type === "summary")) return base;
  }
  return name;
}

function parseSample(line: string, n: number): Sample {
  const head = line.match(new RegExp(`^(${NAME})`));
  if (!head) throw new Error(`Line ${n}: no metric name in ${JSON.stringify(line)}`);
  const name = head[1];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === "{") {
    pos++;
    while (line[pos] !== "}") {
      const l = line.slice(pos).match(new RegExp(`^(${LABEL})="`));
      if (!l) throw new Error(`Line ${n}: bad label at ${JSON.stringify(line.slice(pos))}`);
      pos += l[0].length;
      let value = "";
      while (true) {
        const c = line[pos];
        if (c === undefined) throw new Error(`Line ${n}: unterminated label value`);
        if (c === '"') break;
        if (c === "\\") {
          const e = line[pos + 1];
          if (e === "\\") value += "\\";
          else if (e === '"') value += '"';
          else if (e === "n") value += "\n";
          else throw new Error(`Line ${n}: bad escape \\${e} in a label value`);
          pos += 2;
        } else {
          value += c;
          pos++;
        }
      }
      pos++;
      if (l[1] in labels) throw new Error(`Line ${n}: label ${l[1]} repeated`);
      labels[l[1]] = value;
      if (line[pos] === ",") pos++;
      else if (line[pos] !== "}") throw new Error(`Line ${n}: expected , or } after a label`);
    }
    pos++;
  }
  const rest = line.slice(pos).match(/^ +(\S+)(?: +(-?\d+))?$/);
  if (!rest) throw new Error(`Line ${n}: bad value part ${JSON.stringify(line.slice(pos))}`);
  return { name, labels, value: parseValue(rest[1], n) };
}

function parseValue(text: string, n: number): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`Line ${n}: bad value ${text}`);
  }
  return Number(text);
}

function unescape(text: string, quotes: boolean, n: number): string {
  return text.replace(/\\(.)/g, (_, e: string) => {
    if (e === "\\") return "\\";
    if (e === "n") return "\n";
    if (quotes && e === '"') return '"';
    throw new Error(`Line ${n}: bad escape \\${e}`);
  });
}

function checkFamily(f: ParsedFamily): void {
  if (f.type === "counter") {
    for (const s of f.samples) {
      if (s.name !== f.name) throw new Error(`Counter ${f.name} has a sample ${s.name}`);
      if (!(s.value >= 0)) throw new Error(`Counter ${f.name} is ${s.value}`);
    }
  }
  if (f.type === "gauge") {
    for (const s of f.samples) {
      if (s.name !== f.name) throw new Error(`Gauge ${f.name} has a sample ${s.name}`);
    }
  }
  if (f.type !== "histogram") return;
  // Series by their labels without `le`.
  const series = new Map<
    string,
    { buckets: Array<[number, number]>; sum?: number; count?: number }
  >();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${s.name} without le`);
      entry.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name === `${f.name}_sum`) entry.sum = s.value;
    else if (s.name === `${f.name}_count`) entry.count = s.value;
    else throw new Error(`Histogram ${f.name} has a sample ${s.name}`);
  }
  for (const [key, e] of series) {
    if (e.sum === undefined || e.count === undefined) {
      throw new Error(`Histogram ${f.name}${key} lacks _sum or _count`);
    }
    const last = e.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`Histogram ${f.name}${key} lacks +Inf`);
    e.buckets.forEach(([le, v], i) => {
      if (i === 0) return;
      const [ple, pv] = e.buckets[i - 1];
      if (!(le > ple)) throw new Error(`Histogram ${f.name}${key}: le ${le} after ${ple}`);
      if (v < pv) {
        throw new Error(`Histogram ${f.name}${key}: bucket ${le} fell from ${pv} to ${v}`);
      }
    });
    if (last[1] !== e.count) {
      throw new Error(`Histogram ${f.name}${key}: +Inf bucket ${last[1]} but _count ${e.count}`);
    }
  }
}

/** The value of `name` with exactly `labels` (undefined when there is no such series). */
export function sampleValue(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const keys = Object.keys(s.labels);
      if (keys.length !== Object.keys(labels).length) continue;
      if (keys.every((k) => labels[k] === s.labels[k])) return s.value;
    }
  }
  return undefined;
}

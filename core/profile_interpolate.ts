/**
 * `${VAR}` / `${VAR:-default}` interpolation over the string scalars of a parsed YAML tree.
 * `${VAR}` needs VAR set (an empty value is kept); `${VAR:-default}` uses the default when VAR is
 * unset or empty, and the default may itself hold references; `$${` is a literal `${`.
 */

/** The environment interpolation reads from. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Why a string could not be interpolated, with the field path (e.g. `wiring.database.url`). */
export type InterpolationFailure =
  | { readonly kind: "missing"; readonly path: string; readonly variable: string }
  | { readonly kind: "malformed"; readonly path: string; readonly detail: string };

/** The interpolated tree, or the first failure in document order. */
export type InterpolationResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly failure: InterpolationFailure };

type Part = string | { readonly variable: string; readonly fallback?: ReadonlyArray<Part> };

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;

/** Interpolates every string scalar under `value`; `path` names `value` itself in failures. */
export function interpolateTree(value: unknown, env: Env, path = ""): InterpolationResult {
  if (typeof value === "string") return interpolateString(value, env, path);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      const r = interpolateTree(value[i], env, `${path}[${i}]`);
      if (!r.ok) return r;
      out.push(r.value);
    }
    return { ok: true, value: out };
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      const r = interpolateTree(child, env, path === "" ? key : `${path}.${key}`);
      if (!r.ok) return r;
      out[key] = r.value;
    }
    return { ok: true, value: out };
  }
  return { ok: true, value };
}

/** Interpolates one string. */
export function interpolateString(text: string, env: Env, path = ""): InterpolationResult {
  if (!text.includes("$")) return { ok: true, value: text };
  const parsed = parseParts(text, 0, false);
  if (typeof parsed === "string") {
    return { ok: false, failure: { kind: "malformed", path, detail: parsed } };
  }
  const evaluated = evaluate(parsed.parts, env);
  return typeof evaluated === "string"
    ? { ok: true, value: evaluated }
    : { ok: false, failure: { kind: "missing", path, variable: evaluated.missing } };
}

/** Parses from `start` up to the end (or, when `nested`, an unmatched `}`); a string is an error. */
function parseParts(
  text: string,
  start: number,
  nested: boolean,
): { readonly parts: ReadonlyArray<Part>; readonly end: number } | string {
  const parts: Part[] = [];
  let literal = "";
  let i = start;
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      literal += "${";
      i += 3;
    } else if (text.startsWith("${", i)) {
      NAME.lastIndex = i + 2;
      const name = NAME.exec(text)?.[0];
      if (name === undefined) return "expected a variable name after ${";
      if (literal !== "") parts.push(literal);
      literal = "";
      const after = i + 2 + name.length;
      if (text[after] === "}") {
        parts.push({ variable: name });
        i = after + 1;
      } else if (text.startsWith(":-", after)) {
        const inner = parseParts(text, after + 2, true);
        if (typeof inner === "string") return inner;
        if (text[inner.end] !== "}") return `\${${name}:-… is not closed with }`;
        parts.push({ variable: name, fallback: inner.parts });
        i = inner.end + 1;
      } else {
        return `expected } or :- after \${${name}`;
      }
    } else if (nested && text[i] === "}") {
      break;
    } else {
      literal += text[i];
      i += 1;
    }
  }
  if (literal !== "") parts.push(literal);
  return { parts, end: i };
}

function evaluate(parts: ReadonlyArray<Part>, env: Env): string | { readonly missing: string } {
  let out = "";
  for (const part of parts) {
    if (typeof part === "string") {
      out += part;
      continue;
    }
    const value = env[part.variable];
    if (part.fallback === undefined) {
      if (value === undefined) return { missing: part.variable };
      out += value;
    } else if (value !== undefined && value !== "") {
      out += value;
    } else {
      const fallback = evaluate(part.fallback, env);
      if (typeof fallback !== "string") return fallback;
      out += fallback;
    }
  }
  return out;
}

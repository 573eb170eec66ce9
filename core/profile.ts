/**
 * Profile loading: reads a profile YAML (profiles/<name>.yaml or a path), interpolates `${VAR}`
 * in worldstream's sections, decodes them with the profile schema, resolves the refs and loads
 * the output id lists and the producer allowlist. Every key must be one the schema names, at
 * every level: an unknown one (a typo, another component's section, a setting of a later issue)
 * fails PROFILE_INVALID naming the file and the key, instead of loading and doing nothing.
 */
import { Effect, Result, Schema, type SchemaAST, SchemaIssue } from "effect";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { parse } from "yaml";
import { fail, WorldstreamError } from "../schemas/errors.ts";
import type { ReasonCode } from "../schemas/reasons.ts";
import {
  CONTROL_BUS_KINDS,
  OutputIdsFile,
  ProfileDocument,
  type ProfileGovernance,
  type ProfilePolicy,
  type ProfileWiring,
} from "../schemas/profile.ts";
import { profileSource } from "./profile_source.ts";
import { resolveRoot } from "./store_root.ts";
import { type CapabilityRegistry, loadCapabilities } from "./capabilities.ts";
import { loadPolicies, type PolicySet } from "./policy.ts";
import { type Env, interpolateTree, type InterpolationFailure } from "./profile_interpolate.ts";

/** Absolute paths the profile resolves to. */
export interface ProfilePaths {
  /** The folder `*_ref` fields are relative to. */
  readonly profileDir: string;
  readonly trafficOutputIds: string;
  readonly contextOutputIds: string;
  readonly contextOutputIdsBaseline: string;
  readonly producerAllowlist: string;
  readonly interfacePack: string;
  /** The capability registry (`governance.capabilities_ref`). */
  readonly capabilities: string;
  /** The capability policy (`governance.policies_ref`). */
  readonly policies: string;
  readonly runsRoot: string;
  /** The file control bus's folder (unset for a Kinesis bus). */
  readonly controlBusRoot: string | undefined;
  /** Set for the PGlite backend. */
  readonly pgliteDir: string | undefined;
  /** The minimized fields file (`governance.minimized_fields_ref`), when set. */
  readonly minimizedFields: string | undefined;
}

/** A loaded profile: the decoded sections, the resolved paths and the lists they point at. */
export interface Profile {
  /** Absolute path of the profile file. */
  readonly source: string;
  readonly profile_id: string;
  readonly policy: ProfilePolicy;
  readonly wiring: ProfileWiring;
  readonly paths: ProfilePaths;
  readonly outputIds: {
    readonly traffic: ReadonlyArray<string>;
    readonly context: ReadonlyArray<string>;
    readonly contextBaseline: ReadonlyArray<string>;
  };
  readonly producerAllowlist: ReadonlyArray<string>;
  /**
   * The `governance` section (its refs, budgets, minimized fields) with the capability registry
   * and the policy every action is authorized against, loaded.
   */
  readonly governance: ProfileGovernance & {
    readonly registry: CapabilityRegistry;
    readonly policy: PolicySet;
  };
}

/** The keys a profile may hold: each key to the keys under it (undefined for a leaf). */
type KeyTree = ReadonlyMap<string, KeyTree | undefined>;

function keyTreeOf(ast: SchemaAST.AST): KeyTree | undefined {
  if (ast._tag !== "Objects") return undefined;
  return new Map(ast.propertySignatures.map((p) => [String(p.name), keyTreeOf(p.type)]));
}

const KEY_TREE: KeyTree = keyTreeOf(ProfileDocument.ast) ?? new Map();

function leafPaths(tree: KeyTree, prefix: string): Array<string> {
  return [...tree].flatMap(([key, sub]) => {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    return sub === undefined ? [path] : leafPaths(sub, path);
  });
}

/** Every setting a profile may hold, as dotted paths (`wiring.wsp_courier.batch_size`). */
export const PROFILE_KEYS: ReadonlyArray<string> = leafPaths(KEY_TREE, "");

/** The first key in `value` the schema does not name, and the keys allowed where it stands. */
function firstUnknownKey(
  value: unknown,
  tree: KeyTree,
  path = "",
): { readonly path: string; readonly allowed: ReadonlyArray<string> } | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  for (const [key, child] of Object.entries(value)) {
    const here = path === "" ? key : `${path}.${key}`;
    if (!tree.has(key)) return { path: here, allowed: [...tree.keys()] };
    const sub = tree.get(key);
    const deeper = sub === undefined ? undefined : firstUnknownKey(child, sub, here);
    if (deeper !== undefined) return deeper;
  }
  return undefined;
}

/**
 * Loads a profile: a bare name like `local` means profiles/local.yaml in this repo; anything else
 * is a path. `env` (default: the process environment) feeds `${VAR}` interpolation.
 */
export const loadProfile = Effect.fn("loadProfile")(function* (
  pathOrName: string,
  env?: Env,
) {
  const vars = env ?? Deno.env.toObject();
  const source = profileSource(pathOrName);
  const file = displayPath(source);

  const text = yield* readText(source).pipe(
    Effect.mapError((problem) =>
      scrubbed(
        "PROFILE_UNREADABLE",
        problem === "missing"
          ? `Cannot read profile ${file}: it does not exist`
          : `Cannot read profile ${file}: ${problem}`,
      )
    ),
  );
  const doc = yield* parseYaml(text, file, "PROFILE_INVALID");
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return yield* scrubbed("PROFILE_INVALID", `${file}: Expected a mapping at the top level`);
  }

  // Before interpolation, so an unknown section is named as such even when it uses variables
  // that are not set, and before empty values are dropped, so a bare `approvals:` is refused too.
  const unknown = firstUnknownKey(doc, KEY_TREE);
  if (unknown !== undefined) {
    return yield* scrubbed(
      "PROFILE_INVALID",
      `${file}: ${unknown.path}: Unknown key (expected one of: ${unknown.allowed.join(", ")})`,
    );
  }
  const interpolated = interpolateTree(doc, vars);
  if (!interpolated.ok) return yield* interpolationError(file, interpolated.failure);

  const busKind = busKindOf(interpolated.value);
  if (busKind !== undefined && !(CONTROL_BUS_KINDS as ReadonlyArray<unknown>).includes(busKind)) {
    return yield* scrubbed(
      "CONTROL_BUS_UNSUPPORTED",
      `${file}: wiring.control_bus.kind: control bus ${JSON.stringify(busKind)} is not built ` +
        `(built: ${CONTROL_BUS_KINDS.join(", ")})`,
    );
  }
  const decoded = yield* decodeDocument(dropEmpty(interpolated.value), file);

  const profileDir = dirname(source);
  const fromProfile = (ref: string) => resolve(profileDir, ref);
  const { policy, wiring, governance } = decoded;
  const paths: ProfilePaths = {
    profileDir,
    trafficOutputIds: fromProfile(policy.traffic_output_ids_ref),
    contextOutputIds: fromProfile(policy.context_output_ids_ref),
    contextOutputIdsBaseline: fromProfile(policy.context_output_ids_baseline_ref),
    producerAllowlist: fromProfile(wiring.wsp_producer.allowlist_ref),
    interfacePack: fromProfile(wiring.interface_pack_ref),
    capabilities: fromProfile(decoded.governance.capabilities_ref),
    policies: fromProfile(decoded.governance.policies_ref),
    runsRoot: resolve(wiring.runs_root),
    controlBusRoot: wiring.control_bus.root === undefined
      ? undefined
      : resolve(wiring.control_bus.root),
    pgliteDir: wiring.database.backend === "pglite" && wiring.database.pglite_dir !== undefined
      ? resolve(wiring.database.pglite_dir)
      : undefined,
    minimizedFields: governance?.minimized_fields_ref === undefined
      ? undefined
      : fromProfile(governance.minimized_fields_ref),
  };

  const traffic = yield* loadOutputIds(
    paths.trafficOutputIds,
    file,
    "policy.traffic_output_ids_ref",
  );
  const context = yield* loadOutputIds(
    paths.contextOutputIds,
    file,
    "policy.context_output_ids_ref",
  );
  const contextBaseline = yield* loadOutputIds(
    paths.contextOutputIdsBaseline,
    file,
    "policy.context_output_ids_baseline_ref",
  );
  yield* checkDirectory(paths.interfacePack, file, "wiring.interface_pack_ref");
  const producerAllowlist = yield* loadAllowlist(paths.producerAllowlist, file);
  const registry = yield* loadCapabilities(paths.capabilities).pipe(
    Effect.mapError((e) => scrubbed(e.reason, `${file}: ${e.message}`)),
  );
  const policies = yield* loadPolicies(paths.policies).pipe(
    Effect.mapError((e) => scrubbed(e.reason, `${file}: ${e.message}`)),
  );

  const profile: Profile = {
    source,
    profile_id: decoded.profile_id,
    policy,
    wiring,
    paths,
    outputIds: { traffic, context, contextBaseline },
    producerAllowlist,
    governance: { ...decoded.governance, registry, policy: policies },
  };
  return profile;
});

/** Where a Kinesis control bus is: its stream, and the region and endpoint when given. */
export interface KinesisBusWiring {
  readonly stream: string;
  readonly region: string | undefined;
  readonly endpoint: string | undefined;
}

/**
 * The profile's Kinesis control bus, or `undefined` when its bus is another kind. Region and
 * endpoint unset mean the AWS default provider chain's (AWS_REGION, the service's endpoint).
 */
export function kinesisBusOf(profile: Pick<Profile, "wiring">): KinesisBusWiring | undefined {
  const bus = profile.wiring.control_bus;
  if (bus.kind !== "kinesis" || bus.stream === undefined) return undefined;
  return { stream: bus.stream, region: bus.region, endpoint: bus.endpoint_url };
}

/**
 * The platform object store root run facts live under (`facts_view_ref` is relative to it):
 * `wiring.object_store.root` (a folder or `s3://bucket/prefix`), else the runs root (the
 * platform's local object store root is `runs` too).
 */
export function platformStoreRoot(profile: Pick<Profile, "wiring" | "paths">): string {
  const root = profile.wiring.object_store?.root;
  return root ? resolveRoot(root) : profile.paths.runsRoot;
}

/** The traffic and context outputs of a run after the environment's overrides. */
export interface OutputSelection {
  readonly traffic: ReadonlyArray<string>;
  readonly context: ReadonlyArray<string>;
}

const BASELINE_TRAFFIC = "s2_event_stream_baseline_6B";
const FRAUD_TRAFFIC = "s3_event_stream_with_fraud_6B";

/**
 * Picks the outputs to stream: `WSP_TRAFFIC_OUTPUT_IDS` / `WSP_CONTEXT_OUTPUT_IDS` (comma-separated;
 * unset or empty → the profile's lists). As on the platform, the context list follows the traffic
 * mode: baseline traffic alone takes the baseline context list, anything else the fraud one.
 */
export function selectOutputIds(profile: Profile, env?: Env): OutputSelection {
  const vars = env ?? Deno.env.toObject();
  const trafficOverride = splitList(vars["WSP_TRAFFIC_OUTPUT_IDS"]);
  const traffic = trafficOverride.length > 0 ? trafficOverride : profile.outputIds.traffic;
  const contextOverride = splitList(vars["WSP_CONTEXT_OUTPUT_IDS"]);
  if (contextOverride.length > 0) return { traffic, context: contextOverride };
  const baselineOnly = traffic.includes(BASELINE_TRAFFIC) && !traffic.includes(FRAUD_TRAFFIC);
  return {
    traffic,
    context: baselineOnly ? profile.outputIds.contextBaseline : profile.outputIds.context,
  };
}

function splitList(value: string | undefined): ReadonlyArray<string> {
  if (value === undefined) return [];
  const ids = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return [...new Set(ids)];
}

// ---------------------------------------------------------------------------------------------
// Errors that never echo secrets

/** Field names whose values are secret or may carry credentials. */
const SECRET_FIELD = /(^|[._])(url|uri|dsn|token|key|password|passwd|secret|credentials?)$/i;

/** Replaces `user:password@` (or `token@`) in any URL-looking text. */
function scrubCredentials(text: string): string {
  return text.replace(/([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/@"']+@/g, "$1***@");
}

function scrubbed(reason: ReasonCode, message: string): WorldstreamError {
  return fail(reason, scrubCredentials(message));
}

function interpolationError(
  file: string,
  failure: InterpolationFailure,
): Effect.Effect<never, WorldstreamError> {
  return Effect.fail(
    failure.kind === "missing"
      ? scrubbed(
        "PROFILE_ENV_MISSING",
        `${file}: ${failure.path}: Environment variable ${failure.variable} is not set and has no default`,
      )
      : scrubbed(
        "PROFILE_INVALID",
        `${file}: ${failure.path}: Malformed interpolation: ${failure.detail}`,
      ),
  );
}

// ---------------------------------------------------------------------------------------------
// Decoding

const leafHook: SchemaIssue.LeafHook = (issue) => {
  if (issue._tag === "MissingKey") return "Required, but missing or empty";
  if (issue._tag === "UnexpectedKey") {
    const ast = issue.ast;
    const known = ast._tag === "Objects" ? ast.propertySignatures.map((p) => String(p.name)) : [];
    return known.length > 0 ? `Unknown key (expected one of: ${known.join(", ")})` : "Unknown key";
  }
  return SchemaIssue.defaultLeafHook(issue);
};
const MAX_PROBLEM_CHARS = 240;
const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1({ leafHook });

function firstProblem(
  issue: SchemaIssue.Issue,
): { readonly path: string; readonly message: string } {
  const first = formatIssue(issue).issues[0];
  if (first === undefined) return { path: "", message: "Invalid profile" };
  const message = first.message.replace(/\s*\n\s*/g, " ");
  return {
    path: formatPath(first.path ?? []),
    message: message.length > MAX_PROBLEM_CHARS
      ? `${message.slice(0, MAX_PROBLEM_CHARS)}…`
      : message,
  };
}

function formatPath(path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string {
  let out = "";
  for (const segment of path) {
    const key = typeof segment === "object" ? segment.key : segment;
    out += typeof key === "number" ? `[${key}]` : out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

const decodeProfile = Schema.decodeUnknownResult(ProfileDocument, { onExcessProperty: "error" });

function decodeDocument(
  input: unknown,
  file: string,
): Effect.Effect<ProfileDocument, WorldstreamError> {
  const withInput = decodeProfile(input, { reportInput: true });
  if (Result.isSuccess(withInput)) return Effect.succeed(withInput.success);
  let problem = firstProblem(withInput.failure.issue);
  if (SECRET_FIELD.test(problem.path)) {
    // Same failure, described without the offending value.
    const blind = decodeProfile(input, { reportInput: false });
    if (Result.isFailure(blind)) problem = firstProblem(blind.failure.issue);
  }
  const where = problem.path === "" ? "" : `${problem.path}: `;
  // A bad budget has a code of its own: an operator grepping for it finds the budget at fault.
  const reason = problem.path.startsWith("governance.budgets")
    ? "BUDGET_INVALID"
    : "PROFILE_INVALID";
  return Effect.fail(scrubbed(reason, `${file}: ${where}${problem.message}`));
}

/** `wiring.control_bus.kind` as written (after interpolation), when it is a string. */
function busKindOf(doc: unknown): string | undefined {
  const kind = (doc as { wiring?: { control_bus?: { kind?: unknown } } } | null)?.wiring
    ?.control_bus?.kind;
  return typeof kind === "string" ? kind : undefined;
}

/**
 * Removes mapping entries that are empty strings or null, so `${VAR:-}` means "absent"; a
 * mapping whose every entry was removed so goes too (`admin: {port: ${WORLDSTREAM_ADMIN_PORT:-}}`
 * with the variable unset is no admin section, not one missing its port).
 */
function dropEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropEmpty);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (child === "" || child === null) continue;
    const kept = dropEmpty(child);
    if (isEmptied(child, kept)) continue;
    out[key] = kept;
  }
  return out;
}

function isEmptied(before: unknown, after: unknown): boolean {
  const entries = (v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.keys(v).length : -1;
  return entries(before) > 0 && entries(after) === 0;
}

// ---------------------------------------------------------------------------------------------
// Files

function displayPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

type ReadProblem = "missing" | string;

/** Reads UTF-8 text; fails with "missing" or a short description of why it is unreadable. */
function readText(path: string): Effect.Effect<string, ReadProblem> {
  return Effect.tryPromise({
    try: () => Deno.readFile(path),
    catch: (e) => e instanceof Deno.errors.NotFound ? "missing" : errorText(e),
  }).pipe(
    Effect.flatMap((bytes) =>
      Effect.try({
        try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
        catch: () => "not UTF-8 text",
      })
    ),
  );
}

function errorText(e: unknown): string {
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  const message = e instanceof Error ? e.message : String(e);
  return message.split(":")[0].trim() || "unreadable";
}

function parseYaml(
  text: string,
  file: string,
  reason: ReasonCode,
): Effect.Effect<unknown, WorldstreamError> {
  return Effect.try({
    try: () => parse(text, { logLevel: "error" }) as unknown,
    catch: (e) => {
      const err = e as { message?: string; linePos?: ReadonlyArray<{ line: number; col: number }> };
      const where = err.linePos?.[0];
      // The parser's message ends with a copy of the offending lines, which may hold secrets.
      const what = String(err.message ?? e).split(" at line ")[0].split("\n")[0];
      const at = where === undefined ? "" : ` (line ${where.line}, column ${where.col})`;
      return scrubbed(reason, `${file}: Not valid YAML${at}: ${what}`);
    },
  });
}

function loadOutputIds(
  path: string,
  file: string,
  field: string,
): Effect.Effect<ReadonlyArray<string>, WorldstreamError> {
  const shown = displayPath(path);
  return readText(path).pipe(
    Effect.mapError((problem) =>
      scrubbed(
        "PROFILE_REF_MISSING",
        problem === "missing"
          ? `${file}: ${field}: ${shown} does not exist`
          : `${file}: ${field}: Cannot read ${shown}: ${problem}`,
      )
    ),
    Effect.flatMap((text) => parseYaml(text, shown, "PROFILE_REF_INVALID")),
    Effect.flatMap((doc) => {
      const result = Schema.decodeUnknownResult(OutputIdsFile)(doc, { reportInput: true });
      if (Result.isSuccess(result)) return Effect.succeed(result.success.output_ids);
      const problem = firstProblem(result.failure.issue);
      const where = problem.path === "" ? "" : `${problem.path}: `;
      return Effect.fail(
        scrubbed(
          "PROFILE_REF_INVALID",
          `${shown} (${field} of ${file}): ${where}${problem.message}`,
        ),
      );
    }),
  );
}

function checkDirectory(
  path: string,
  file: string,
  field: string,
): Effect.Effect<void, WorldstreamError> {
  return Effect.tryPromise({
    try: () => Deno.stat(path),
    catch: () =>
      scrubbed("PROFILE_REF_MISSING", `${file}: ${field}: ${displayPath(path)} does not exist`),
  }).pipe(
    Effect.flatMap((info) =>
      info.isDirectory ? Effect.void : Effect.fail(
        scrubbed(
          "PROFILE_REF_MISSING",
          `${file}: ${field}: ${displayPath(path)} is not a directory`,
        ),
      )
    ),
  );
}

/** One producer id a line; `#` starts a comment. */
function loadAllowlist(
  path: string,
  file: string,
): Effect.Effect<ReadonlyArray<string>, WorldstreamError> {
  const shown = displayPath(path);
  return readText(path).pipe(
    Effect.mapError((problem) =>
      problem === "missing"
        ? scrubbed(
          "PRODUCER_ALLOWLIST_MISSING",
          `${file}: wiring.wsp_producer.allowlist_ref: ${shown} does not exist`,
        )
        : scrubbed(
          "PRODUCER_ALLOWLIST_UNREADABLE",
          `${file}: wiring.wsp_producer.allowlist_ref: Cannot read ${shown}: ${problem}`,
        )
    ),
    Effect.flatMap((text) => {
      const ids = [
        ...new Set(
          text.split(/\r?\n/).map((line) => line.replace(/#.*/, "").trim()).filter(Boolean),
        ),
      ];
      return ids.length > 0 ? Effect.succeed(ids) : Effect.fail(
        scrubbed(
          "PRODUCER_ALLOWLIST_EMPTY",
          `${file}: wiring.wsp_producer.allowlist_ref: ${shown} lists no producer ids`,
        ),
      );
    }),
  );
}

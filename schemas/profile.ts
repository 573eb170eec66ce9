/**
 * The worldstream sections of a profile (`profile_id`, `policy`, `wiring`) after `${VAR}`
 * interpolation, plus the output id list files the policy refers to. Numbers and booleans also
 * accept their string forms, since an interpolated value is always a string.
 */
import { Effect, Schema, SchemaGetter, SchemaIssue } from "effect";

const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A number (or its decimal string form) of at least `min`, optionally an integer. */
function numberAtLeast(min: number, options: { readonly integer?: boolean } = {}) {
  const expected = `${options.integer ? "an integer" : "a number"} >= ${min}`;
  const target = options.integer
    ? Schema.Finite.check(
      Schema.isInt({ expected }),
      Schema.isGreaterThanOrEqualTo(min, { expected }),
    )
    : Schema.Finite.check(Schema.isGreaterThanOrEqualTo(min, { expected }));
  return Schema.Union([Schema.Number, Schema.String]).annotate({ expected }).pipe(
    Schema.decodeTo(target, {
      decode: SchemaGetter.transformEffect((input: number | string, parseOptions) =>
        typeof input === "number"
          ? Effect.succeed(input)
          : NUMERIC.test(input.trim())
          ? Effect.succeed(Number(input))
          : Effect.fail<SchemaIssue.Issue>(
            new SchemaIssue.InvalidValue({ expected }, input, parseOptions),
          )
      ),
      encode: SchemaGetter.transform((n: number) => n),
    }),
  );
}

/** `true` / `false`, or the same words as strings. */
const BooleanLike = Schema.Union([Schema.Boolean, Schema.String])
  .annotate({ expected: "true or false" })
  .pipe(
    Schema.decodeTo(Schema.Boolean, {
      decode: SchemaGetter.transformEffect((input: boolean | string, parseOptions) =>
        typeof input === "boolean"
          ? Effect.succeed(input)
          : input === "true" || input === "false"
          ? Effect.succeed(input === "true")
          : Effect.fail<SchemaIssue.Issue>(
            new SchemaIssue.InvalidValue({ expected: "true or false" }, input, parseOptions),
          )
      ),
      encode: SchemaGetter.transform((b: boolean) => b),
    }),
  );

const Text = Schema.String.check(Schema.isMinLength(1, { expected: "a non-empty string" }));

/** A path relative to the profile file's folder (or absolute). */
const Ref = Text.annotate({ description: "path relative to the profile's folder" });

/** A filesystem path; relative paths are taken from the current working directory. */
const LocalPath = Text.annotate({ description: "path relative to the working directory" });

const HttpUrl = Schema.String.check(
  Schema.makeFilter((s: string) => isUrl(s, ["http:", "https:"]) || "Expected an http(s) URL"),
);

const PostgresUrl = Schema.String.check(
  Schema.makeFilter((s: string) =>
    isUrl(s, ["postgres:", "postgresql:"]) || "Expected a postgres:// or postgresql:// URL"
  ),
);

function isUrl(s: string, protocols: ReadonlyArray<string>): boolean {
  if (!URL.canParse(s)) return false;
  const url = new URL(s);
  return protocols.includes(url.protocol) && url.host !== "";
}

const ID = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;
const Identifier = Schema.String.check(
  Schema.isPattern(ID, { expected: "an identifier of letters, digits and _ . : -" }),
);

/**
 * How far data may leave the host (ARCHITECTURE section 6): `local` refuses a non-loopback IG;
 * `minimized` pseudonymizes the fields `governance.minimized_fields_ref` lists; `full` sends
 * whole rows. Tiers above `local` need a license pack (core/license.ts).
 */
export const PrivacyTier = Schema.Literals(["local", "minimized", "full"]);
export type PrivacyTier = typeof PrivacyTier.Type;

/** The `policy` section: what worldstream may stream and how. */
export const ProfilePolicy = Schema.Struct({
  /** The policy's revision, stamped into every receipt sealed under it. */
  policy_rev: Text,
  require_gate_pass: BooleanLike,
  /** Missing oracle pack manifest / seal fail the run (dev, prod) instead of being tolerated. */
  strict_world: BooleanLike,
  /** Replay speed relative to event time; 0 means as fast as possible. */
  stream_speedup: numberAtLeast(0),
  traffic_output_ids_ref: Ref,
  context_output_ids_ref: Ref,
  context_output_ids_baseline_ref: Ref,
  privacy_tier: PrivacyTier,
  /** Idle gaps in event time longer than this are compressed to it (seconds, after speedup). */
  stream_max_gap_seconds: Schema.optionalKey(numberAtLeast(0)),
});
export type ProfilePolicy = typeof ProfilePolicy.Type;

/** The control bus kinds worldstream has a listener for. */
export const CONTROL_BUS_KINDS = ["file", "kinesis"] as const;

/**
 * Where READY signals arrive: a folder (`kind: file`, `<root>/<topic>/<message_id>.json`) or a
 * Kinesis stream (`kind: kinesis`, the platform profile's `stream`, `region`, `endpoint_url`;
 * region and credentials otherwise come from the AWS default provider chain). A kind that is not
 * built fails CONTROL_BUS_UNSUPPORTED before this schema is reached (core/profile.ts).
 */
export const ControlBusWiring = Schema.Struct({
  kind: Schema.Literals(CONTROL_BUS_KINDS),
  topic: Text,
  root: Schema.optionalKey(LocalPath),
  stream: Schema.optionalKey(Text),
  region: Schema.optionalKey(Text),
  endpoint_url: Schema.optionalKey(HttpUrl),
  /** How often every shard is read (Kinesis; default 1 000 ms). */
  poll_interval_ms: Schema.optionalKey(numberAtLeast(1, { integer: true })),
}).check(
  Schema.makeFilter((bus) =>
    bus.kind === "file" && bus.root === undefined
      ? { path: ["root"], issue: requiredWhen("kind", "file") }
      : bus.kind === "kinesis" && bus.stream === undefined
      ? { path: ["stream"], issue: requiredWhen("kind", "kinesis") }
      : undefined
  ),
);
export type ControlBusWiring = typeof ControlBusWiring.Type;

/**
 * Postgres: embedded PGlite in a folder, or a server reached by URL. The pool size and the two
 * timeouts apply to the server (stores/postgres.ts `serverOptionsOf`); PGlite has one connection
 * and no timer signal, so they do nothing there.
 */
export const DatabaseWiring = Schema.Struct({
  backend: Schema.Literals(["pglite", "server"]),
  pglite_dir: Schema.optionalKey(LocalPath),
  url: Schema.optionalKey(PostgresUrl),
  /** Connections the server pool opens at most (default 10). */
  pool_max: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  /** A statement running longer is cancelled by the server (PG_STATEMENT_TIMEOUT); 0: never. */
  statement_timeout_ms: Schema.optionalKey(numberAtLeast(0, { integer: true })),
  /** How long opening a connection may take before PG_UNAVAILABLE (default 10 000). */
  connect_timeout_ms: Schema.optionalKey(numberAtLeast(1, { integer: true })),
}).check(
  Schema.makeFilter((db) =>
    db.backend === "pglite" && db.pglite_dir === undefined
      ? { path: ["pglite_dir"], issue: requiredWhen("backend", "pglite") }
      : db.backend === "server" && db.url === undefined
      ? { path: ["url"], issue: requiredWhen("backend", "server") }
      : undefined
  ),
);
export type DatabaseWiring = typeof DatabaseWiring.Type;

/** Courier retry schedule towards the IG (exponential backoff with full jitter). */
export const RetryWiring = Schema.Struct({
  max_attempts: numberAtLeast(1, { integer: true }),
  base_delay_ms: numberAtLeast(0, { integer: true }),
  max_delay_ms: numberAtLeast(0, { integer: true }),
}).check(
  Schema.makeFilter((r) =>
    r.max_delay_ms >= r.base_delay_ms ||
    { path: ["max_delay_ms"], issue: `Expected a value >= base_delay_ms (${r.base_delay_ms})` }
  ),
);
export type RetryWiring = typeof RetryWiring.Type;

/** The producer identity worldstream claims and the allowlist it must appear in. */
export const ProducerWiring = Schema.Struct({
  producer_id: Text,
  allowlist_ref: Ref,
});
export type ProducerWiring = typeof ProducerWiring.Type;

/** The header and token sent with every IG push; no token means no header. */
export const IgAuthWiring = Schema.Struct({
  header: Text,
  token: Schema.optionalKey(Text),
});
export type IgAuthWiring = typeof IgAuthWiring.Type;

/**
 * How the courier talks to the IG. `batch` posts `{events}` to `/v1/ingest/batch`; `push` sends
 * one envelope per request to the platform's `/v1/ingest/push`, `push_concurrency` at a time;
 * `auto` sends batches until the gate answers 404/405 on the batch route, then pushes.
 * More than one request in flight per output gives up per-output time order, so it is opt-in.
 */
export const CourierWiring = Schema.Struct({
  mode: Schema.Literals(["batch", "push", "auto"]),
  batch_size: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  push_concurrency: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  max_in_flight_per_output: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  request_timeout_ms: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  retry_after_cap_ms: Schema.optionalKey(numberAtLeast(0, { integer: true })),
  /** The largest request body (and so envelope) the gate takes; larger envelopes are refused. */
  max_body_bytes: Schema.optionalKey(numberAtLeast(1024, { integer: true })),
  /** After dead-lettering: `stop` the output (default, like the platform) or `continue`. */
  dead_letter_policy: Schema.optionalKey(Schema.Literals(["stop", "continue"])),
  /** With `continue`: how many dead letters an output may pass before it stops. */
  max_dead_letters: Schema.optionalKey(numberAtLeast(0, { integer: true })),
});
export type CourierWiring = typeof CourierWiring.Type;

/** Start-up: `edge` streams at once, degraded; `backend` waits for its dependencies. */
export const BootstrapWiring = Schema.Struct({
  mode: Schema.Literals(["edge", "backend"]),
  poll_interval_seconds: Schema.optionalKey(numberAtLeast(0)),
  timeout_seconds: Schema.optionalKey(numberAtLeast(0)),
});
export type BootstrapWiring = typeof BootstrapWiring.Type;

/**
 * The admin API: `run` serves it on `host` (default 127.0.0.1):`port` (0: any free port); browsers
 * on `cors_origins` may call it (default: none, no CORS headers).
 */
export const AdminWiring = Schema.Struct({
  port: numberAtLeast(0, { integer: true }),
  host: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1))),
  cors_origins: Schema.optionalKey(Schema.Array(Schema.String.check(Schema.isMinLength(1)))),
});
export type AdminWiring = typeof AdminWiring.Type;

/** The WAL (worldstream's local outbox): how many undrained bytes it may hold. */
export const WalWiring = Schema.Struct({
  /** Undrained bytes before appends fail WAL_QUOTA_EXCEEDED (default 1 GiB). */
  quota_bytes: Schema.optionalKey(numberAtLeast(1, { integer: true })),
});
export type WalWiring = typeof WalWiring.Type;

/**
 * `wiring.object_store`: the platform's object store (its shape in the platform's profiles), plus
 * worldstream's local cache of it. Credentials never come from here: only from the environment
 * (the AWS SDK's default provider chain).
 */
export const ObjectStoreWiring = Schema.Struct({
  /** The platform's object store root (`s3://fraud-platform`); only s3:// and folders are built. */
  root: Schema.optionalKey(Text),
  /** An S3-compatible endpoint URL; none means AWS S3 itself. */
  endpoint: Schema.optionalKey(HttpUrl),
  region: Schema.optionalKey(Text),
  /** Path-style addressing (`endpoint/bucket/key`), what S3-compatible servers need. */
  path_style: Schema.optionalKey(BooleanLike),
  /** The local cache S3 objects are read through (default `<runs_root>/object_cache`). */
  cache_dir: Schema.optionalKey(LocalPath),
  /** The cache's bound in bytes, least recently used entries evicted (default 4 GiB). */
  cache_max_bytes: Schema.optionalKey(numberAtLeast(1, { integer: true })),
});
export type ObjectStoreWiring = typeof ObjectStoreWiring.Type;

/** The `wiring` section: where things are. */
export const ProfileWiring = Schema.Struct({
  /** worldstream's own state (WAL, stream views, caches). */
  runs_root: LocalPath,
  oracle_engine_run_root: Schema.optionalKey(Text),
  oracle_scenario_id: Schema.optionalKey(Text),
  oracle_stream_view_root: Schema.optionalKey(Text),
  object_store: Schema.optionalKey(ObjectStoreWiring),
  ig_ingest_url: HttpUrl,
  ig_auth: Schema.optionalKey(IgAuthWiring),
  control_bus: ControlBusWiring,
  database: DatabaseWiring,
  wsp_retry: RetryWiring,
  wsp_courier: Schema.optionalKey(CourierWiring),
  bootstrap: Schema.optionalKey(BootstrapWiring),
  admin: Schema.optionalKey(AdminWiring),
  wal: Schema.optionalKey(WalWiring),
  wsp_producer: ProducerWiring,
  interface_pack_ref: Ref,
});
export type ProfileWiring = typeof ProfileWiring.Type;

/** What a budget counts against: one run, one output of a run, or a principal across runs. */
export const BUDGET_SCOPES = ["run", "output", "principal"] as const;
export type BudgetScope = typeof BUDGET_SCOPES[number];

/** A rate: a number of units per second, above 0. */
const Rate = numberAtLeast(0).check(Schema.isGreaterThan(0, { expected: "a number > 0" }));

/**
 * One budget (`governance.budgets[i]`, ARCHITECTURE section 6): hard caps (`max_events`,
 * `max_bytes`: the output stops with BUDGET_EXCEEDED after exactly the cap) and rates
 * (`events_per_second`, `bytes_per_second`: token buckets that pace, never fail) for the runs,
 * outputs or principals its `match` names (an id, `*`, or a prefix ending in `*`). core/profile.ts
 * refuses a bad one with BUDGET_INVALID.
 */
export const Budget = Schema.Struct({
  scope: Schema.Literals(BUDGET_SCOPES),
  match: Schema.String.check(
    Schema.isPattern(/^[^*\s]*\*?$/, { expected: "an id, *, or a prefix ending in *" }),
    Schema.isMinLength(1, { expected: "an id, *, or a prefix ending in *" }),
  ),
  max_events: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  max_bytes: Schema.optionalKey(numberAtLeast(1, { integer: true })),
  events_per_second: Schema.optionalKey(Rate),
  bytes_per_second: Schema.optionalKey(Rate),
}).check(
  Schema.makeFilter((b) =>
    b.max_events !== undefined || b.max_bytes !== undefined ||
    b.events_per_second !== undefined || b.bytes_per_second !== undefined ||
    "Expected at least one of max_events, max_bytes, events_per_second, bytes_per_second"
  ),
);
export type Budget = typeof Budget.Type;

/**
 * The `governance` section: the capability registry and the policy every action is authorized
 * against (ARCHITECTURE section 6). A missing policy file denies everything.
 */
export const ProfileGovernance = Schema.Struct({
  capabilities_ref: Ref,
  policies_ref: Ref,
  /** Privacy tier minimized: `{outputs: {<output_id>: [field, ...]}}`, the fields pseudonymized. */
  minimized_fields_ref: Schema.optionalKey(Ref),
  /** Rate limits and hard caps (actors/budgets.ts). */
  budgets: Schema.optionalKey(Schema.Array(Budget)),
  /** How long a parked action may wait for an operator's decision (3600 s); then it is denied. */
  approval_ttl_seconds: Schema.optionalKey(numberAtLeast(1, { integer: true })),
});
export type ProfileGovernance = typeof ProfileGovernance.Type;

/**
 * A worldstream profile file. Closed at every level: core/profile.ts refuses any key this schema
 * does not name (a typo, or a section another component or a later issue owns).
 */
export const ProfileDocument = Schema.Struct({
  profile_id: Identifier,
  policy: ProfilePolicy,
  wiring: ProfileWiring,
  governance: ProfileGovernance,
});
export type ProfileDocument = typeof ProfileDocument.Type;

const OUTPUT_ID = /^[A-Za-z0-9_]{1,128}$/;

/** An output id list file (`wsp/*_outputs_v0.yaml`). */
export const OutputIdsFile = Schema.Struct({
  version: Text,
  output_ids: Schema.Array(
    Schema.String.check(Schema.isPattern(OUTPUT_ID, { expected: "an output id" })),
  ),
});
export type OutputIdsFile = typeof OutputIdsFile.Type;

function requiredWhen(field: string, value: string): string {
  return `Required when ${field} is ${value}`;
}

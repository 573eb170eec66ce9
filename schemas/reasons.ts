/**
 * Every reason code worldstream fails with, in one place, each with a one-line meaning. The
 * compiler checks every `fail(...)` and every branch on `error.reason` against this list, so a
 * misspelt code does not compile; the README's table of codes is generated from it
 * (`deno run -A scripts/reason_table.ts`) and a test fails when a code here is asserted by no test.
 *
 * The reference gate's quarantine reasons are the platform gate's names and live apart, in
 * `ig/reasons.ts`: they are answers on the wire, not failures of worldstream.
 */
import { Schema } from "effect";

/** Each reason code and what it means, grouped by where it arises. */
export const REASONS = {
  // Command line and configuration
  BAD_ARGS: "A flag or argument is missing, unknown or malformed",
  BAD_ENV: "An environment variable holds a value that cannot be used",
  PROFILE_UNREADABLE: "The profile file cannot be read or parsed",
  PROFILE_INVALID: "The profile does not match its schema (names the file and the key)",
  PROFILE_ENV_MISSING: "A ${VAR} in the profile has no value and no default",
  PROFILE_REF_MISSING: "A file the profile refers to does not exist",
  PROFILE_REF_INVALID: "A file the profile refers to does not match its schema",
  PRODUCER_ALLOWLIST_MISSING: "The producer allowlist file named by the profile is missing",
  PRODUCER_ALLOWLIST_UNREADABLE: "The producer allowlist file cannot be read",
  PRODUCER_ALLOWLIST_EMPTY: "The producer allowlist lists no producer",
  INTERFACE_PACK_UNREADABLE:
    "A file of the interface pack (catalogue, gates, row schemas) cannot be read",
  INTERFACE_PACK_INVALID: "A file of the interface pack does not match its schema",
  BENCH_DURABILITY_REFUSED: "The bench-only durability switch was set outside the local profile",
  // The world on disk
  ENGINE_ROOT_MISSING: "No engine run root was given, or it does not exist",
  ENGINE_ROOT_INVALID: "The engine run root is not a folder worldstream can read",
  PATH_ESCAPES_ROOT: "A path resolves outside the root it must stay in",
  ORACLE_READ_FAILED: "A file of the world could not be read",
  ORACLE_STORE_UNSUPPORTED: "A root or profile names a store scheme worldstream has no store for",
  ORACLE_BUCKET_MISSING:
    "The S3 bucket a root names (a view root, the object store root) does not exist",
  ORACLE_ACCESS_DENIED: "The object store refused the credentials or the request (403)",
  ORACLE_OBJECT_CHANGED: "An S3 object was rewritten or removed between listing and reading it",
  ORACLE_CACHE_TOO_SMALL: "One read needs more bytes than the object cache may hold",
  RUN_RECEIPT_UNREADABLE: "The world's run_receipt.json is missing or invalid",
  SCENARIO_ID_MISSING: "No scenario id was given and the world does not name exactly one",
  WORLD_KEY_INVALID: "A world key field (fingerprint, parameter hash, seed) is malformed",
  WORLD_KEY_MISSING: "The world's receipt lacks a world key field",
  WORLD_KEY_MISMATCH: "The world on disk is not the one the request or pack names",
  PACK_MANIFEST_MISSING: "A strict profile found no oracle pack manifest",
  PACK_MANIFEST_INVALID: "The oracle pack manifest is malformed or does not match the world",
  PACK_NOT_SEALED: "A strict profile found the oracle pack unsealed",
  GATE_PASS_MISSING: "A gate the output requires has no _passed.flag",
  GATE_PASS_INVALID: "A gate's _passed.flag holds no digest where the gates map says, or says FAIL",
  GATE_BUNDLE_INVALID:
    "A gate's validation bundle lacks its index or a listed file, or is malformed",
  GATE_DIGEST_MISMATCH: "A gate's validation bundle does not hash to the digest its flag holds",
  OUTPUT_ID_INVALID: "An output id is not in the catalogue",
  NO_TRAFFIC_OUTPUTS: "No output is selected for streaming",
  OUTPUT_PARTS_MISSING: "An output has no parquet parts",
  OUTPUT_PARTS_MISMATCH: "An output's parts differ from those its gate bundle vouches for",
  OUTPUT_EMPTY: "An output's parts hold no rows",
  PARQUET_UNREADABLE: "A parquet part cannot be read",
  ROW_SCHEMA_MISSING: "The interface pack has no row schema for an output",
  ROW_COLUMN_MISSING: "A part lacks a column its output's row schema requires",
  ROW_COLUMN_TYPE_MISMATCH: "A part's column has a type its output's row schema does not allow",
  ROW_COLUMN_RESERVED: "A part has a column named filename or file_row_number, which views add",
  PART_COLUMNS_DIFFER: "The parts of one output differ in their columns or column types",
  TS_UTC_NULL: "A row has no ts_utc",
  TS_UTC_INVALID: "A ts_utc value cannot be read as a time",
  OUT_DIR_NOT_EMPTY: "gen-world was asked to write into a folder that is not empty",
  WRITE_FAILED: "A file or folder could not be written (names the path)",
  // Stream views
  STREAM_VIEW_MISSING: "An output has no stream view (run sort first, or let stream build it)",
  STREAM_VIEW_ID_MISMATCH: "The stream view was built for another world or scenario",
  STREAM_VIEW_OUTPUT_MISMATCH: "The stream view belongs to another output",
  STREAM_VIEW_EMPTY: "The stream view holds no rows",
  STREAM_VIEW_PARTIAL_EXISTS: "View parts exist without a sort receipt (use --repair)",
  STREAM_RECEIPT_MISMATCH: "An existing view's receipt does not match the world's sources",
  STREAM_SORT_STATS_MISMATCH: "The sorted view's stats differ from the source's",
  STREAM_VIEW_STALE: "A view's source parts changed since it was built (sort --repair rebuilds)",
  STREAM_VIEW_MANIFEST_INVALID: "A view's manifest is missing, malformed or disagrees with it",
  // Envelopes
  PRIMARY_KEY_MISSING: "A view lacks a catalogue primary key column, or a row has a null key value",
  PRIMARY_KEY_INVALID: "A catalogue primary key column name is not a plain column name",
  PRIMARY_KEY_TYPE_UNSUPPORTED: "A primary key column has a type event ids cannot be built from",
  PINS_INVALID: "An envelope pin (world key, run ids, producer) is malformed",
  PAYLOAD_COLUMN_INVALID: "A view column's name is not a plain column name",
  PAYLOAD_COLUMN_UNDECLARED: "A row has a column its closed row schema does not declare",
  // Control bus and READY
  CONTROL_BUS_UNREADABLE: "The control bus folder cannot be read",
  CONTROL_BUS_NAME_INVALID: "A control bus file name is not <message_id>.json",
  CONTROL_BUS_TOPIC_MISMATCH: "A control bus message is filed under another topic",
  CONTROL_BUS_UNSUPPORTED: "The profile asks for a control bus kind that is not built",
  CONTROL_BUS_STREAM_MISSING: "The Kinesis control bus stream does not exist (names it)",
  CONTROL_BUS_UNAVAILABLE: "The Kinesis control bus did not answer or refused a request",
  CONTROL_BUS_THROTTLED:
    "Kinesis throttled a shard read (ProvisionedThroughputExceeded): backed off",
  CONTROL_BUS_ITERATOR_EXPIRED:
    "A shard iterator expired: re-acquired after the last settled record",
  CONTROL_MESSAGE_UNREADABLE: "A control bus message cannot be read",
  CONTROL_ENVELOPE_INVALID: "A control bus envelope does not match its schema",
  READY_INVALID: "A READY payload does not match run_ready_signal",
  READY_MESSAGE_ID_MISMATCH: "A READY's message id is not the one its content derives",
  KIND_OUT_OF_SCOPE: "The message is not a READY",
  TOPIC_OUT_OF_SCOPE: "The message is on a topic this worldstream does not serve",
  PLATFORM_RUN_OUT_OF_SCOPE: "The READY is for a platform run this worldstream does not serve",
  FACTS_VIEW_MISSING: "The run facts the READY points at do not exist",
  FACTS_VIEW_REF_INVALID: "The READY's run facts reference is malformed or escapes its root",
  FACTS_VIEW_INVALID: "The run facts do not match run_facts_view",
  PLATFORM_RUN_ID_MISMATCH: "READY and run facts name different platform runs",
  PLATFORM_RUN_ID_MISSING: "The run has no platform_run_id",
  SCENARIO_RUN_ID_MISMATCH: "READY and run facts name different scenario runs",
  READY_LEDGER_INVALID: "A READY ledger entry is malformed",
  READY_LEDGER_IO_FAILED: "The READY ledger file could not be read or written",
  READY_LEDGER_UNAVAILABLE: "The READY ledger's history is unknown while Postgres is down",
  // Policy
  PRODUCER_NOT_ALLOWED: "The producer is not in the allowlist",
  PRIVACY_TIER_FORBIDS_NETWORK: "Privacy tier local refuses a gate that is not on loopback",
  LICENSE_MISSING: "No license pack: WORLDSTREAM_LICENSE_PACK is unset or names no file",
  LICENSE_INVALID: "The license pack is malformed (not JSON, wrong shape, signature not base64)",
  LICENSE_UNKNOWN_KID: "The license pack's kid names no key in the public key set",
  LICENSE_SIGNATURE_INVALID: "The license pack's Ed25519 signature does not verify",
  LICENSE_EXPIRED: "The license pack's exp is in the past",
  LICENSE_ENTITLEMENT_MISSING: "The license pack lacks the privacy tier's feature",
  LICENSE_PUBKEYS_MISSING:
    "No license public keys: WORLDSTREAM_LICENSE_PUBKEYS is unset or names no file",
  LICENSE_PUBKEYS_INVALID: "The license public key set is malformed",
  MINIMIZED_FIELDS_MISSING:
    "Privacy tier minimized has no minimized fields file (governance.minimized_fields_ref)",
  MINIMIZED_FIELDS_INVALID:
    "The minimized fields file is malformed or names a field that cannot be pseudonymized",
  PSEUDONYM_KEY_MISSING: "Privacy tier minimized needs WORLDSTREAM_PSEUDONYM_KEY",
  PSEUDONYM_KEY_INVALID: "WORLDSTREAM_PSEUDONYM_KEY is shorter than 16 bytes",
  BUDGET_INVALID:
    "A budget in governance.budgets is malformed (scope, match, or a limit not a number above 0)",
  BUDGET_EXCEEDED:
    "A hard cap (max_events, max_bytes) was reached: the output stopped after exactly the cap",
  CAPABILITY_REGISTRY_MISSING: "The capability registry file is missing or cannot be read",
  CAPABILITY_INVALID:
    "The capability registry is not YAML or breaks its schema (unknown operation type)",
  CAPABILITY_DUPLICATE: "Two capabilities of the registry have the same id",
  CAPABILITY_RISK_INCONSISTENT: "A capability's risk level breaks a risk consistency rule",
  POLICY_INVALID:
    "The policy file is not YAML, is unreadable or breaks its schema (unknown action)",
  POLICY_PATTERN_INVALID: "A policy rule's pattern is malformed (`*` only alone or at the end)",
  POLICY_RULE_DUPLICATE: "Two policy rules have the same principal, capabilities and conditions",
  POLICY_DENIED: "The capability policy denied the action (the message says why); nothing was done",
  APPROVAL_REQUIRED: "The policy requires an operator's approval for the action; nothing was done",
  APPROVAL_UNKNOWN: "No approval has that id; nothing was decided",
  APPROVAL_ALREADY_DECIDED: "The approval was approved or denied before; nothing changed",
  APPROVAL_EXPIRED: "The approval's expiry passed before it was decided (denied); nothing ran",
  APPROVAL_ACTION_GONE:
    "What the approval would act on no longer exists (e.g. the dead letter was closed); nothing ran",
  APPROVAL_PENDING:
    "The action was parked as a pending approval (CLI exit 4, API 202); nothing was done yet",
  APPROVAL_NEEDS_RUNTIME:
    "The approved action acts on the running runtime: approve it through the admin API; still pending",
  // Delivery to the gate
  IG_UNREACHABLE: "The gate did not answer (refused, reset or timed out)",
  IG_PUSH_REJECTED: "The gate refused a request with a 4xx that is not retried",
  IG_PUSH_RETRY_EXHAUSTED: "A request still failed after the last retry",
  IG_ANSWER_UNEXPECTED: "The gate answered in a shape worldstream does not know",
  IG_QUARANTINED: "The gate quarantined a dead letter on retry",
  ENVELOPE_TOO_LARGE:
    "An envelope is larger than the gate takes (max_body_bytes): refused before sending, names the row",
  DEAD_LETTER_INVALID: "A stored dead letter does not match its schema (e.g. an unknown status)",
  DEAD_LETTER_NOT_FOUND: "No dead letter has that id",
  DEAD_LETTERS_STILL_OPEN: "Some selected dead letters are still open after the retry",
  DEAD_LETTERED:
    "The run went on past dead letters (dead_letter_policy: continue): STREAMED_WITH_DEAD_LETTERS",
  STOPPED_BY_OPERATOR: "The run was stopped by a signal or an operator before it finished",
  INTERNAL_ERROR: "A defect (a bug): the run failed, the runtime kept serving",
  // Replay, run control and checkpoint resets
  REPLAY_WINDOW_INVALID:
    "A replay window names both or neither of a time and a sequence range, or a malformed bound",
  REPLAY_WINDOW_REVERSED: "A replay window ends before it starts",
  REPLAY_WINDOW_EMPTY: "A replay window holds no event of the view",
  REPLAY_WINDOW_OUTSIDE_VIEW: "A replay window lies outside the view (rows or event times)",
  RUN_UNKNOWN: "No run in flight or recently finished has that id",
  RUN_FINISHED: "The run has already ended: it can no longer be paused, resumed or cancelled",
  RUN_NOT_PAUSED: "Resume of a run that is not paused",
  RUN_NOT_RUNNING: "Pause of a run that is not running (already paused, or cancelling)",
  RUN_CANCELLED: "The run was cancelled by an operator: in-flight events delivered, checkpointed",
  CHECKPOINT_RESET_INVALID:
    "A checkpoint reset names both or neither of to_seq and to_ts, or a malformed one",
  CHECKPOINT_RESET_OUTSIDE_VIEW:
    "A checkpoint reset's to_seq is past the view's end, or no event is before its to_ts",
  CHECKPOINT_UNKNOWN: "No checkpoint of that output in that run scope (nothing delivered yet)",
  CHECKPOINT_OUTPUT_STREAMING:
    "The output is streaming in that run scope now: its checkpoint cannot be reset under it",
  CHECKPOINT_NO_PREVIOUS: "Undo of a checkpoint that was never reset: there is no previous cursor",
  CHECKPOINT_RECEIPT_OWED:
    "The checkpoint still owes a delivery receipt (a crash came first): stream the scope once",
  // Durable state
  WAL_LOCKED: "Another process holds this runs root's WAL (names its pid)",
  WAL_IO_FAILED: "The WAL could not be read, written or synced",
  WAL_CORRUPT:
    "A WAL record is damaged and intact records follow it (not a torn tail): see wal inspect",
  WAL_RECORD_INVALID: "A WAL record does not match its schema",
  WAL_QUOTA_EXCEEDED: "The WAL reached its disk quota",
  WAL_CLOSED: "The WAL was used after it closed",
  DRAINED_HEAD_INVALID: "The drained-head file is malformed",
  PGLITE_LOCKED: "Another live process owns this PGlite folder (names its pid)",
  PG_UNAVAILABLE: "Postgres did not answer",
  PG_QUERY_FAILED: "Postgres refused a statement",
  PG_STATEMENT_TIMEOUT:
    "A Postgres statement ran past wiring.database.statement_timeout_ms and was cancelled",
  MIGRATION_FAILED: "A migration failed and was rolled back",
  MIGRATION_CHECKSUM_MISMATCH: "An applied migration's file was changed afterwards",
  BOOTSTRAP_TIMEOUT: "A dependency was not healthy within the bootstrap timeout",
  DUCKDB_ERROR: "DuckDB refused a query",
  DUCKDB_OUT_OF_MEMORY:
    "DuckDB ran out of memory on an output (names it, its largest column, WORLDSTREAM_DUCKDB_MEMORY)",
  AUDIT_KIND_INVALID: "An audit event has an unknown kind",
  // Receipts
  RECEIPT_KEY_MISSING: "No receipt signing key in the environment",
  RECEIPT_KEY_INVALID: "The receipt signing key is malformed",
  RECEIPT_INVALID: "A receipt does not match its schema",
  RECEIPT_CONFLICT: "A receipt id was stored twice with different content",
  RECEIPT_CHAIN_FORK: "Two receipts claim the same predecessor",
  // The reference gate and the admin API
  ADMIN_LISTEN_FAILED: "The admin API could not listen on its port",
  ADMIN_TOKEN_MISSING:
    "No WORLDSTREAM_ADMIN_TOKEN on a profile other than local: the admin API is not served",
  ADMIN_TOKEN_INVALID: "An admin or viewer token in the environment is too short or malformed",
  ADMIN_UNAUTHORIZED: "An admin API request without a valid bearer token (401)",
  ADMIN_FORBIDDEN: "A viewer token on a route that changes something (403)",
  ADMIN_CSRF_REFUSED: "A dashboard session's change without its CSRF header or off-origin (403)",
  ADMIN_ROUTE_NOT_FOUND: "No admin API route has that method and path (404)",
  ADMIN_BODY_INVALID: "An admin API request body is not JSON or does not match its schema (400)",
  ADMIN_BODY_TOO_LARGE: "An admin API request body is over the size limit (413)",
  ADMIN_PARAM_INVALID:
    "An admin API path or query parameter is malformed (traversal, quotes, a bad number) (400)",
  ADMIN_STARTING: "The runtime behind the admin API has not started yet, or is stopping (503)",
  RUN_NOT_FOUND: "No run (run key or READY message id) has that id",
  RUN_IN_FLIGHT: "The READY submitted is being streamed now",
  IG_LISTEN_FAILED: "The reference gate could not listen on its port",
  IG_POLICY_INVALID: "A reference gate policy file does not match its schema",
  IG_STOPPING: "The reference gate is shutting down",
  BATCH_TOO_LARGE: "A batch holds more envelopes than the gate takes",
  // The validate command's checks
  VALIDATION_FAILED: "A validate check failed or was skipped (its checks entry names it and why)",
  VALIDATE_SKIPPED: "A validate check did not run because a check it needs failed",
  SMOKE_STREAM_INCOMPLETE: "The bounded smoke stream emitted nothing, too much, or went unanswered",
  RESUME_NOT_CONTINUED:
    "A second run of the same platform run did not resume after the first, or re-sent too much",
  REFUSAL_MISSING:
    "A failure path validate tries (producer off the allowlist, gate flag missing) was not refused",
} as const satisfies Record<string, string>;

/** A reason code. */
export type ReasonCode = keyof typeof REASONS;

/** Every reason code, in the order of {@link REASONS}. */
export const REASON_CODES = Object.keys(REASONS) as ReadonlyArray<ReasonCode>;

/** The Schema of a reason code: a literal union of {@link REASON_CODES}. */
export const ReasonCode = Schema.Literals(REASON_CODES);

/**
 * What `worldstream --help` and `worldstream <command> --help` print: each command's one-line
 * summary and every flag it accepts with a one-line meaning. Data only, so cli/main.ts answers
 * `--help` without loading the command (no database, no DuckDB). cli/help_test.ts checks this
 * page against the flags each command really accepts.
 */

/** One flag: a value it takes (shown as `--name VALUE`), or none for a switch. */
export interface FlagHelp {
  /** Placeholder of the value, e.g. `DIR`; absent for a boolean switch. */
  readonly value?: string;
  readonly meaning: string;
}

/** A command's page. */
export interface CommandHelp {
  readonly summary: string;
  readonly flags: Readonly<Record<string, FlagHelp>>;
  /** For `dead-letters`: its subcommands, each with its own page. */
  readonly subcommands?: Readonly<Record<string, CommandHelp>>;
}

const PROFILE: FlagHelp = {
  value: "P",
  meaning:
    "profile name (profiles/P.yaml) or path to a profile file (default: $WORLDSTREAM_PROFILE, else local)",
};
const ENGINE_RUN_ROOT: FlagHelp = { value: "DIR", meaning: "the world's engine run root" };
const SCENARIO_ID: FlagHelp = {
  value: "ID",
  meaning: "scenario id inside the world (default: the profile's, else the oracle pack manifest's)",
};
const PLATFORM_RUN_ID: FlagHelp = {
  value: "ID",
  meaning: "platform run id (platform_YYYYMMDDTHHMMSSZ; default: one for now)",
};
const SCENARIO_RUN_ID: FlagHelp = {
  value: "ID",
  meaning: "scenario run id, 32 hex characters (default: derived from the run)",
};
const OUTPUT_IDS: FlagHelp = {
  value: "a,b",
  meaning: "comma-separated output ids (default: the profile's traffic and context lists)",
};
const SPEEDUP: FlagHelp = {
  value: "X",
  meaning: "replay speed against event time; 0 is as fast as possible (default: the profile's)",
};
const IG_URL: FlagHelp = {
  value: "URL",
  meaning: "the ingestion gate's base URL (default: the profile's wiring.ig_ingest_url)",
};

const DECISION_NOTE: FlagHelp = {
  value: "TEXT",
  meaning: "why, recorded with the decision and in its receipt (at most 1000 characters)",
};

const DEAD_LETTER_FILTERS: Readonly<Record<string, FlagHelp>> = {
  profile: PROFILE,
  "run-key": { value: "K", meaning: "only dead letters of this run key" },
  "platform-run-id": { value: "ID", meaning: "only dead letters of this platform run" },
  "output-id": { value: "O", meaning: "only dead letters of this output" },
  limit: { value: "N", meaning: "at most N dead letters (list default: 1000)" },
};

const WAL_FLAGS: Readonly<Record<string, FlagHelp>> = {
  profile: { ...PROFILE, meaning: `${PROFILE.meaning}; its runs root's WAL` },
  dir: { value: "DIR", meaning: "the WAL folder itself (as WAL_CORRUPT's message names it)" },
};

/** Every command's page, by command name (the keys of cli/commands.ts). */
export const HELP: Readonly<Record<string, CommandHelp>> = {
  "gen-world": {
    summary: "writes a complete, deterministic engine run root (a synthetic world)",
    flags: {
      out: {
        value: "DIR",
        meaning: "the folder to write into (empty, or a world made from the same flags)",
      },
      events: { value: "N", meaning: "traffic events to generate (default: 20,000)" },
      seed: { value: "S", meaning: "the world's seed (default: 42)" },
      "scenario-id": { value: "ID", meaning: "the world's scenario id" },
      parts: { value: "N", meaning: "parquet parts per output (default: 3 to 64, by size)" },
    },
  },
  sort: {
    summary: "checks a world and builds each output's stream view (SKIPPED when one matches)",
    flags: {
      "engine-run-root": {
        ...ENGINE_RUN_ROOT,
        meaning: "the world to sort (default: the profile's)",
      },
      "output-ids": OUTPUT_IDS,
      "scenario-id": SCENARIO_ID,
      profile: PROFILE,
      repair: {
        meaning:
          "rebuild a view that has files but no receipt (a crashed build), or whose sources changed or whose receipt or manifest no longer match",
      },
    },
  },
  stream: {
    summary: "streams one world into the gate once, without the control bus",
    flags: {
      "engine-run-root": ENGINE_RUN_ROOT,
      profile: PROFILE,
      "scenario-id": SCENARIO_ID,
      "platform-run-id": PLATFORM_RUN_ID,
      "scenario-run-id": SCENARIO_RUN_ID,
      "output-ids": OUTPUT_IDS,
      "max-events": { value: "N", meaning: "stop after N events in all (across outputs)" },
      "max-events-per-output": { value: "N", meaning: "stop each output after N events" },
      speedup: SPEEDUP,
      "ig-url": IG_URL,
    },
  },
  replay: {
    summary: "re-sends one window of one output (same event ids), in a checkpoint scope of its own",
    flags: {
      "engine-run-root": ENGINE_RUN_ROOT,
      "output-id": { value: "O", meaning: "the output to replay" },
      "from-ts": { value: "T", meaning: "window start on ts_utc, inclusive (with --to-ts)" },
      "to-ts": { value: "T", meaning: "window end on ts_utc, exclusive" },
      "from-seq": {
        value: "A",
        meaning: "first row of the stream view, 0-based (with --to-seq; not with --from-ts)",
      },
      "to-seq": { value: "B", meaning: "end row of the stream view, exclusive" },
      "scenario-id": SCENARIO_ID,
      "platform-run-id": {
        value: "ID",
        meaning:
          "the platform run to send into (the original run's makes the gate answer DUPLICATE; default: a new one for now)",
      },
      speedup: SPEEDUP,
      "ig-url": IG_URL,
      profile: PROFILE,
    },
  },
  "publish-ready": {
    summary: "writes run facts and a valid READY on the control bus (file or Kinesis)",
    flags: {
      "engine-run-root": ENGINE_RUN_ROOT,
      "platform-run-id": PLATFORM_RUN_ID,
      "scenario-run-id": SCENARIO_RUN_ID,
      bus: {
        value: "file|kinesis",
        meaning: "the bus to publish on (default: the profile's control_bus.kind)",
      },
      "bus-root": { value: "DIR", meaning: "the control bus folder (default: the profile's)" },
      "object-store-root": {
        value: "DIR|s3://BUCKET/PREFIX",
        meaning:
          "where the run facts are written (default: the profile's wiring.object_store.root, else its runs root)",
      },
      profile: PROFILE,
      "scenario-id": SCENARIO_ID,
    },
  },
  run: {
    summary: "the runtime: serves the control bus and streams each READY it receives",
    flags: {
      profile: PROFILE,
      once: { meaning: "exit after the first run, with its status as the exit code" },
      "ig-url": IG_URL,
      "engine-run-root": {
        ...ENGINE_RUN_ROOT,
        meaning: "an existing world to publish a READY for",
      },
      speedup: SPEEDUP,
      "admin-port": {
        value: "P",
        meaning: "serve /healthz and /readyz on 127.0.0.1:P (0: any free port)",
      },
    },
  },
  ig: {
    summary: "the reference ingestion gate (push, batch and ops routes)",
    flags: {
      port: { value: "P", meaning: "port to listen on (default: 8081; 0: any free port)" },
      host: { value: "H", meaning: "address to listen on (default: 127.0.0.1)" },
      db: { value: "DIR|URL", meaning: "PGlite folder or postgres:// URL of the gate's database" },
      "api-key": { value: "K", meaning: "require this X-IG-Api-Key (default: IG_API_KEY, none)" },
      "fail-rate": { value: "F", meaning: "answer this fraction of requests with --fail-status" },
      "fail-status": { value: "S", meaning: "the status injected failures answer (default: 503)" },
      "latency-ms": { value: "M", meaning: "delay every answer by M milliseconds" },
      "reset-rate": { value: "F", meaning: "reset the connection of this fraction of requests" },
      "fault-seed": { value: "N", meaning: "seed of the injected faults, for repeatable runs" },
      "no-batch": {
        meaning:
          "serve no batch route (404, as the platform's own gate does), to try courier mode auto",
      },
    },
  },
  "audit-verify": {
    summary: "walks the receipt chain from the first receipt and reports its first break",
    flags: { profile: PROFILE },
  },
  "dead-letters": {
    summary: "lists dead letters, or re-posts them to the gate",
    flags: {},
    subcommands: {
      list: {
        summary: "lists dead letters, one JSON line each, then a summary line",
        flags: {
          ...DEAD_LETTER_FILTERS,
          status: { value: "open|closed|all", meaning: "which dead letters (default: open)" },
          envelopes: { meaning: "include each dead letter's whole envelope" },
        },
      },
      retry: {
        summary: "re-posts dead letters; ADMIT or DUPLICATE closes one (exit 0 when all closed)",
        flags: {
          ...DEAD_LETTER_FILTERS,
          "ig-url": IG_URL,
          actor: {
            value: "A",
            meaning: "who retries, recorded in receipts (default: operator:cli)",
          },
          id: { value: "ID", meaning: "retry this one dead letter" },
          all: { meaning: "retry every open dead letter the filters select" },
        },
      },
    },
  },
  approvals: {
    summary:
      "lists actions the policy parked for approval, or approves or denies one (as user:cli)",
    flags: {},
    subcommands: {
      list: {
        summary: "lists approvals, one JSON line each, then a summary line",
        flags: {
          profile: PROFILE,
          status: {
            value: "pending|approved|denied|expired|all",
            meaning: "which approvals (default: pending)",
          },
          limit: { value: "N", meaning: "at most N approvals (default: 1000)" },
        },
      },
      approve: {
        summary: "approves approval ID: the parked action runs once (exit 0 when it ran)",
        flags: { profile: PROFILE, note: DECISION_NOTE },
      },
      deny: {
        summary: "denies approval ID: a policy_denied receipt, nothing runs",
        flags: { profile: PROFILE, note: DECISION_NOTE },
      },
    },
  },
  validate: {
    summary:
      "the operator's checks of a profile: dependencies, world, gates, a smoke stream, resume, refusals",
    flags: {
      profile: PROFILE,
      "engine-run-root": {
        ...ENGINE_RUN_ROOT,
        meaning: "the world to check and stream (default: the profile's; local: the demo world)",
      },
      "ig-url": {
        ...IG_URL,
        meaning:
          "the gate to check and stream into (default: the profile's; local: one in process)",
      },
      "smoke-events": {
        value: "N",
        meaning: "events per output in each of the two bounded runs (default: 100)",
      },
    },
  },
  checkpoints: {
    summary: "moves a checkpoint (with the runtime stopped; the admin API while it runs)",
    flags: {},
    subcommands: {
      reset: {
        summary:
          "moves one output's checkpoint in one run scope; the cursor it replaces is kept for --undo",
        flags: {
          scope: { value: "S", meaning: "the run scope (run_key in GET /v1/checkpoints)" },
          "output-id": { value: "O", meaning: "the output whose checkpoint moves" },
          "to-seq": {
            value: "N",
            meaning: "view row N becomes the last delivered (the next stream re-sends after it)",
          },
          "to-ts": {
            value: "T",
            meaning: "the last event before UTC time T becomes the last delivered",
          },
          undo: { meaning: "back to the cursor the last reset replaced" },
          profile: PROFILE,
        },
      },
    },
  },
  license: {
    summary: "checks the license pack the privacy tier needs (WORLDSTREAM_LICENSE_PACK)",
    flags: {},
    subcommands: {
      verify: {
        summary:
          "verifies the pack's Ed25519 signature, expiry and the profile tier's feature (exit 0 when VALID)",
        flags: { profile: PROFILE },
      },
    },
  },
  explain: {
    summary:
      "how the capability policy decides a principal's request: decision, rule, risk and why",
    flags: {
      profile: PROFILE,
      principal: {
        value: "X",
        meaning: "who asks: svc:<producer>, agent:<control-bus sender> or user:<admin token name>",
      },
      capability: {
        value: "Y",
        meaning:
          "what they ask for, e.g. wsp.stream or deadletter.purge (profiles/capabilities.yaml)",
      },
    },
  },
  wal: {
    summary: "shows a damaged WAL (WAL_CORRUPT), or sets its damage aside and keeps the rest",
    flags: {},
    subcommands: {
      inspect: {
        summary: "reads the WAL past its damage: intact records, damaged offsets, what open does",
        flags: WAL_FLAGS,
      },
      salvage: {
        summary:
          "copies each corrupt segment to salvaged/, then keeps only its intact records (exit 0)",
        flags: WAL_FLAGS,
      },
    },
  },
};

/** True when `argv` asks for help (`--help` or `-h` before any `--`). */
export function wantsHelp(argv: ReadonlyArray<string>): boolean {
  for (const arg of argv) {
    if (arg === "--") return false;
    if (arg === "--help" || arg === "-h") return true;
  }
  return false;
}

/** `worldstream --help`: every command with its summary. */
export function commandList(): string {
  const width = Math.max(...Object.keys(HELP).map((name) => name.length));
  return [
    "Usage: worldstream <command> [flags]   (worldstream <command> --help for its flags)",
    "",
    "Commands:",
    ...Object.entries(HELP).map(([name, page]) => `  ${name.padEnd(width)}  ${page.summary}`),
    "",
    "The last stdout line of every command is its JSON result; logs are JSON lines on stderr.",
  ].join("\n");
}

/** `worldstream <command> --help` (or `<command> <subcommand> --help`). */
export function commandUsage(command: string, page: CommandHelp): string {
  const flags = Object.entries(page.flags).map(([name, flag]) =>
    [`--${name}${flag.value === undefined ? "" : ` ${flag.value}`}`, flag.meaning] as const
  );
  const subs = Object.entries(page.subcommands ?? {});
  const width = Math.max(0, ...flags.map(([left]) => left.length), ...subs.map(([n]) => n.length));
  const lines = [
    `Usage: worldstream ${command}${subs.length > 0 ? " <subcommand>" : ""} [flags]`,
    "",
    page.summary,
  ];
  if (subs.length > 0) {
    lines.push("", "Subcommands:");
    for (const [name, sub] of subs) lines.push(`  ${name.padEnd(width)}  ${sub.summary}`);
  }
  if (flags.length > 0) {
    lines.push("", "Flags:");
    for (const [left, meaning] of flags) lines.push(`  ${left.padEnd(width)}  ${meaning}`);
  }
  lines.push(`  ${"--help".padEnd(width)}  this page`);
  return lines.join("\n");
}

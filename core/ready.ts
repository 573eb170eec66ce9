/**
 * Reads one control-bus message as a READY signal and turns it into a plan to stream a world, or
 * into a rejection that says how the READY ledger should record it. Checks run in this order:
 * envelope → topic → kind → READY schema → platform run scope → message id → run facts view →
 * platform/scenario run ids → world key → engine run root.
 *
 * Engine run root, first found wins: the profile's `oracle_engine_run_root`; READY
 * `oracle_pack_ref.engine_run_root`; the facts' `oracle_pack_ref.engine_run_root`; the prefix
 * before `/data/layer` of an absolute facts locator path (engine outputs live under `data/`, see
 * the catalogue's path templates). Relative locator paths name nothing outside the root, so they
 * cannot give one; without any of these the READY fails ENGINE_ROOT_MISSING.
 */
import { Effect, Schema } from "effect";
import { isAbsolute, join, normalize, resolve } from "node:path";
import { CONTROL_BUS_TOPIC, ControlBusEnvelope } from "../schemas/control_bus.ts";
import { decodeJsonText, decodeWith } from "../schemas/decode.ts";
import { RunReadySignal } from "../schemas/ready.ts";
import { RunFactsView } from "../schemas/run_facts.ts";
import { sha256Hex } from "./hash.ts";
import { platformStoreRoot, type Profile } from "./profile.ts";
import { isUrlRoot, joinRoot } from "./store_root.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import type { RunPinned } from "../schemas/messages.ts";
import { isWithin, realPathOf } from "./real_path.ts";

/** Where READY's references point and which platform run this runtime serves. */
export interface ReadyContext {
  /** The platform object store root `facts_view_ref` is relative to (a folder or `s3://…`). */
  readonly objectStoreRoot: string;
  /**
   * Reads a document under an `s3://` object store root (the runtime opens the store): its
   * text, or `undefined` when it does not exist. Without it such a root's facts are missing.
   */
  readonly readObject?: (ref: string) => Effect.Effect<string | undefined, WorldstreamError>;
  /** The profile's `oracle_engine_run_root`: when set, it beats any root named by READY. */
  readonly engineRunRootOverride?: string;
  /** When set, READY signals for other platform runs are out of scope. */
  readonly expectedPlatformRunId?: string;
  /** The control topic READY arrives on (default `fp.bus.control.v1`). */
  readonly topic?: string;
}

/** A READY that passed every check: what to stream and why. */
export interface ReadyPlan {
  readonly message_id: string;
  readonly platform_run_id: string;
  readonly scenario_run_id: string;
  /** From the facts' pins. */
  readonly scenario_id: string;
  readonly engine_run_root: string;
  /** READY's `run_id` (the Scenario Runner's run id, not the engine run receipt's). */
  readonly run_id: string;
  readonly bundle_hash: string;
  readonly ready: RunReadySignal;
  readonly facts: RunFactsView;
  /** The world READY and its facts vouch for; the plan step compares it with the world on disk. */
  readonly pins: RunPinned;
  /**
   * Who sent the READY, for the capability policy (`agent:<sender>`): the envelope's
   * `attributes.sender` when it names one, else `scenario_runner`, the platform's READY publisher.
   */
  readonly sender: string;
}

/** How a READY ledger records a message that yields no plan. */
export const ReadyRejectionStatus = Schema.Literals(["FAILED", "SKIPPED_OUT_OF_SCOPE"]);
export type ReadyRejectionStatus = typeof ReadyRejectionStatus.Type;

/**
 * A control-bus message that yields no plan: the ledger `status`, a reason code, a one-line
 * message and the ids known when it was refused (for the ledger row).
 */
export class ReadyRejection extends Schema.TaggedError<ReadyRejection>()("ReadyRejection", {
  status: ReadyRejectionStatus,
  reason: Schema.String,
  message: Schema.String,
  message_id: Schema.optionalKey(Schema.String),
  platform_run_id: Schema.optionalKey(Schema.String),
  scenario_run_id: Schema.optionalKey(Schema.String),
}) {}

/** Reason codes of {@link ReadyRejection}, by status. */
export const READY_REASONS = {
  FAILED: [
    "CONTROL_ENVELOPE_INVALID",
    "READY_INVALID",
    "READY_MESSAGE_ID_MISMATCH",
    "FACTS_VIEW_REF_INVALID",
    "FACTS_VIEW_MISSING",
    "FACTS_VIEW_INVALID",
    "PLATFORM_RUN_ID_MISMATCH",
    "SCENARIO_RUN_ID_MISMATCH",
    "WORLD_KEY_MISMATCH",
    "ENGINE_ROOT_MISSING",
    "PATH_ESCAPES_ROOT",
    "ORACLE_BUCKET_MISSING",
    "ORACLE_ACCESS_DENIED",
    "ORACLE_OBJECT_CHANGED",
    "ORACLE_READ_FAILED",
  ],
  SKIPPED_OUT_OF_SCOPE: ["TOPIC_OUT_OF_SCOPE", "KIND_OUT_OF_SCOPE", "PLATFORM_RUN_OUT_OF_SCOPE"],
} as const;

/** READY's message id rule: `sha256_hex("ready|{platform_run_id}|{scenario_run_id}|{bundle_hash}")`. */
export function readyMessageId(
  ready: Pick<RunReadySignal, "platform_run_id" | "scenario_run_id" | "bundle_hash">,
): string {
  return sha256Hex(`ready|${ready.platform_run_id}|${ready.scenario_run_id}|${ready.bundle_hash}`);
}

/**
 * The context a runtime with this profile reads READY in: facts relative to the platform object
 * store root (`wiring.object_store.root`, else the runs root: see `platformStoreRoot`), the
 * profile's engine run root override. An `s3://` root also needs `readObject`.
 */
export function readyContext(
  profile: Pick<Profile, "wiring" | "paths">,
  options: { readonly expectedPlatformRunId?: string; readonly objectStoreRoot?: string } = {},
): ReadyContext {
  const override = profile.wiring.oracle_engine_run_root;
  return {
    objectStoreRoot: options.objectStoreRoot ?? platformStoreRoot(profile),
    topic: profile.wiring.control_bus.topic,
    ...(override === undefined || override === "" ? {} : { engineRunRootOverride: override }),
    ...(options.expectedPlatformRunId === undefined
      ? {}
      : { expectedPlatformRunId: options.expectedPlatformRunId }),
  };
}

const decodeEnvelope = decodeJsonText(
  ControlBusEnvelope,
  "CONTROL_ENVELOPE_INVALID",
  "control bus message",
);
const decodeReady = decodeWith(RunReadySignal, "READY_INVALID", "READY payload");

/** Interprets one control-bus message (its JSON text) as READY; see the file comment. */
export const interpretReady = Effect.fn("interpretReady")(function* (
  text: string,
  context: ReadyContext,
): Effect.fn.Return<ReadyPlan, ReadyRejection> {
  const topic = context.topic ?? CONTROL_BUS_TOPIC;
  const envelope = yield* decodeEnvelope(text).pipe(
    Effect.mapError((e) => rejection("FAILED", e.reason, e.message, {})),
  );
  const known = { message_id: envelope.message_id };
  if (envelope.topic !== topic) {
    return yield* rejection(
      "SKIPPED_OUT_OF_SCOPE",
      "TOPIC_OUT_OF_SCOPE",
      `Message is on topic ${envelope.topic}, not ${topic}`,
      known,
    );
  }
  const kind = envelope.attributes?.kind;
  // The platform's minimal envelope may carry no kind; its payload is then read as READY.
  if (kind !== undefined && kind !== "READY") {
    return yield* rejection(
      "SKIPPED_OUT_OF_SCOPE",
      "KIND_OUT_OF_SCOPE",
      `Message kind is ${kind}, not READY`,
      known,
    );
  }
  const ready = yield* decodeReady(envelope.payload).pipe(
    Effect.mapError((e) => rejection("FAILED", e.reason, e.message, known)),
  );
  const ids = {
    message_id: envelope.message_id,
    platform_run_id: ready.platform_run_id,
    scenario_run_id: ready.scenario_run_id,
  };
  if (
    context.expectedPlatformRunId !== undefined &&
    ready.platform_run_id !== context.expectedPlatformRunId
  ) {
    return yield* rejection(
      "SKIPPED_OUT_OF_SCOPE",
      "PLATFORM_RUN_OUT_OF_SCOPE",
      `READY is for platform run ${ready.platform_run_id}; this runtime serves ${context.expectedPlatformRunId}`,
      ids,
    );
  }
  const expectedId = readyMessageId(ready);
  if (ready.message_id !== expectedId) {
    return yield* rejection(
      "FAILED",
      "READY_MESSAGE_ID_MISMATCH",
      `READY message_id ${ready.message_id} is not sha256_hex("ready|platform_run_id|scenario_run_id|bundle_hash") = ${expectedId}`,
      ids,
    );
  }
  if (envelope.message_id !== ready.message_id) {
    return yield* rejection(
      "FAILED",
      "READY_MESSAGE_ID_MISMATCH",
      `Envelope message_id ${envelope.message_id} differs from READY message_id ${ready.message_id}`,
      ids,
    );
  }

  const facts = yield* loadFacts(ready.facts_view_ref, context, ids);
  const platformIds = new Set([facts.platform_run_id, facts.pins.platform_run_id]);
  if (platformIds.size > 1 || !platformIds.has(ready.platform_run_id)) {
    return yield* rejection(
      "FAILED",
      "PLATFORM_RUN_ID_MISMATCH",
      `READY platform_run_id ${ready.platform_run_id} differs from the run facts (${
        [...platformIds].join(", ")
      })`,
      ids,
    );
  }
  const scenarioIds = new Set([facts.scenario_run_id, facts.pins.scenario_run_id]);
  if (scenarioIds.size > 1 || !scenarioIds.has(ready.scenario_run_id)) {
    return yield* rejection(
      "FAILED",
      "SCENARIO_RUN_ID_MISMATCH",
      `READY scenario_run_id ${ready.scenario_run_id} differs from the run facts (${
        [...scenarioIds].join(", ")
      })`,
      ids,
    );
  }
  const differing = worldKeyDifferences(ready, facts);
  if (differing.length > 0) {
    return yield* rejection(
      "FAILED",
      "WORLD_KEY_MISMATCH",
      `READY and its run facts pins differ in ${differing.join(", ")}`,
      ids,
    );
  }
  const packId = ready.oracle_pack_ref?.oracle_pack_id ?? facts.oracle_pack_ref?.oracle_pack_id;
  const engineRunRoot = context.engineRunRootOverride ||
    ready.oracle_pack_ref?.engine_run_root ||
    facts.oracle_pack_ref?.engine_run_root ||
    rootFromLocators(facts);
  if (engineRunRoot === undefined) {
    return yield* rejection(
      "FAILED",
      "ENGINE_ROOT_MISSING",
      "No engine run root: the profile sets none, and neither READY nor its run facts name one",
      ids,
    );
  }
  return {
    message_id: ready.message_id,
    platform_run_id: ready.platform_run_id,
    scenario_run_id: ready.scenario_run_id,
    scenario_id: facts.pins.scenario_id,
    engine_run_root: engineRunRoot,
    run_id: ready.run_id,
    bundle_hash: ready.bundle_hash,
    ready,
    facts,
    sender: senderOf(envelope.attributes?.sender),
    pins: {
      manifest_fingerprint: facts.pins.manifest_fingerprint,
      parameter_hash: facts.pins.parameter_hash,
      seed: facts.pins.seed,
      scenario_id: facts.pins.scenario_id,
      ...(packId === undefined ? {} : { oracle_pack_id: packId }),
    },
  } satisfies ReadyPlan;
});

interface KnownIds {
  readonly message_id?: string;
  readonly platform_run_id?: string;
  readonly scenario_run_id?: string;
}

function rejection(
  status: ReadyRejectionStatus,
  reason: string,
  message: string,
  ids: KnownIds,
): ReadyRejection {
  return new ReadyRejection({ status, reason, message, ...ids });
}

/** The facts view at `ref` under the context's root; refs that leave the root are refused. */
function loadFacts(
  ref: string,
  context: ReadyContext,
  ids: KnownIds,
): Effect.Effect<RunFactsView, ReadyRejection> {
  return Effect.gen(function* () {
    const root = context.objectStoreRoot;
    if (!isStoreRelative(ref)) {
      return yield* rejection(
        "FAILED",
        "FACTS_VIEW_REF_INVALID",
        `facts_view_ref ${JSON.stringify(ref)} is not a path inside the platform object store root`,
        ids,
      );
    }
    if (isUrlRoot(root)) return yield* loadObjectFacts(ref, context, ids);
    const path = join(root, ref);
    // Where the file really is: a link out of the object store root is not followed.
    const [realRoot, realFacts] = yield* Effect.tryPromise({
      try: () => Promise.all([realPathOf(resolve(root)), realPathOf(resolve(path))]),
      catch: (e) =>
        rejection(
          "FAILED",
          "FACTS_VIEW_MISSING",
          `Run facts view ${path} cannot be resolved: ${(e as Error).message.split("\n")[0]}`,
          ids,
        ),
    });
    if (!isWithin(realRoot, realFacts)) {
      return yield* rejection(
        "FAILED",
        "PATH_ESCAPES_ROOT",
        `Run facts view ${path} (facts_view_ref) resolves to ${realFacts}, outside the object store root ${realRoot}`,
        ids,
      );
    }
    const text = yield* Effect.tryPromise({
      try: () => Deno.readTextFile(path),
      catch: (e) =>
        rejection(
          "FAILED",
          "FACTS_VIEW_MISSING",
          e instanceof Deno.errors.NotFound
            ? `Run facts view ${path} does not exist`
            : `Run facts view ${path} is unreadable: ${(e as Error).message.split("\n")[0]}`,
          ids,
        ),
    });
    return yield* decodeJsonText(RunFactsView, "FACTS_VIEW_INVALID", path)(text).pipe(
      Effect.mapError((e) => rejection("FAILED", e.reason, e.message, ids)),
    );
  });
}

/** The facts view at `ref` under an `s3://` root, read through the context's `readObject`. */
function loadObjectFacts(
  ref: string,
  context: ReadyContext,
  ids: KnownIds,
): Effect.Effect<RunFactsView, ReadyRejection> {
  const where = joinRoot(context.objectStoreRoot, ref);
  const read = context.readObject;
  if (read === undefined) {
    return Effect.fail(rejection(
      "FAILED",
      "FACTS_VIEW_MISSING",
      `Run facts view ${where} is in an object store this reader was given no access to`,
      ids,
    ));
  }
  return read(ref).pipe(
    Effect.mapError((e) => rejection("FAILED", e.reason, e.message, ids)),
    Effect.flatMap((text) =>
      text === undefined
        ? Effect.fail(
          rejection("FAILED", "FACTS_VIEW_MISSING", `Run facts view ${where} does not exist`, ids),
        )
        : decodeJsonText(RunFactsView, "FACTS_VIEW_INVALID", where)(text).pipe(
          Effect.mapError((e) => rejection("FAILED", e.reason, e.message, ids)),
        )
    ),
  );
}

/** A plain relative path: no scheme, no leading `/`, no `..`, no backslash or control character. */
function isStoreRelative(ref: string): boolean {
  // deno-lint-ignore no-control-regex
  const oddCharacter = /[\\\u0000-\u001f]/.test(ref);
  return !isAbsolute(ref) && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(ref) && !oddCharacter &&
    !normalize(ref).split("/").includes("..");
}

function worldKeyDifferences(ready: RunReadySignal, facts: RunFactsView): ReadonlyArray<string> {
  const differing: Array<string> = [];
  for (const key of ["manifest_fingerprint", "parameter_hash", "scenario_id"] as const) {
    if (ready[key] !== facts.pins[key]) differing.push(key);
  }
  const packRefs = [["READY", ready.oracle_pack_ref], ["facts", facts.oracle_pack_ref]] as const;
  for (const [where, ref] of packRefs) {
    if (ref?.scenario_id !== undefined && ref.scenario_id !== facts.pins.scenario_id) {
      differing.push(`${where} oracle_pack_ref.scenario_id`);
    }
  }
  const [readyPack, factsPack] = packRefs.map(([, ref]) => ref?.oracle_pack_id);
  if (readyPack !== undefined && factsPack !== undefined && readyPack !== factsPack) {
    differing.push("oracle_pack_ref.oracle_pack_id");
  }
  return differing;
}

const DATA_DIR = /^(.+?)\/data\/layer[^/]*\//;

function rootFromLocators(facts: RunFactsView): string | undefined {
  for (const locator of facts.locators) {
    const path = locator.path;
    if (!isAbsolute(path) && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(path)) continue;
    const match = DATA_DIR.exec(path);
    if (match !== null) return match[1];
  }
  return undefined;
}

const SENDER = /^[A-Za-z0-9_.@-]{1,128}$/;

/** The READY's sender: `attributes.sender` when it is a plain name, else `scenario_runner`. */
function senderOf(value: unknown): string {
  return typeof value === "string" && SENDER.test(value) ? value : "scenario_runner";
}

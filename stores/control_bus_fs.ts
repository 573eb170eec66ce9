/**
 * The file control bus: one JSON file per message at `<root>/<topic>/<message_id>.json`, the
 * platform's local form of `fp.bus.control.v1` (CONTRACTS.md). Publishing writes a message
 * atomically; polling returns the messages a caller has not seen yet, unreadable ones included,
 * so every file ends up receipted and none is silently dropped.
 *
 * Poll order: by `published_at_utc` (as text; the platform writes one fixed UTC format, so text
 * order is time order), then by message id. A file whose `published_at_utc` cannot be read sorts
 * first, so a broken message is receipted before the valid ones that follow it.
 */
import { Effect } from "effect";
import { join } from "node:path";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import { canonicalJson } from "../core/hash.ts";
import { writeFileAtomic } from "./oracle_fs.ts";

/** One message file found by {@link poll}: its text, or why it could not be read. */
export type PolledMessage =
  | {
    /** The file name without `.json` (the publisher's message id). */
    readonly message_id: string;
    /** Absolute path of the message file. */
    readonly file: string;
    readonly text: string;
  }
  | {
    readonly message_id: string;
    readonly file: string;
    /** Why the file could not be read as UTF-8 text. */
    readonly error: string;
  };

/** The envelope fields {@link publish} needs; every other key is written as given. */
export interface PublishableEnvelope {
  readonly topic: string;
  readonly message_id: string;
  readonly [key: string]: unknown;
}

/** Messages larger than this are reported unreadable instead of being loaded. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

// A message id or topic becomes a file or folder name: no separators, no leading dot.
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$/;
const MESSAGE_FILE = /^(.+)\.json$/;

/**
 * Writes `envelope` to `<root>/<topic>/<message_id>.json` atomically (a reader sees the old file
 * or the whole new one) and returns the file's path. A message id or topic that is not a plain
 * file name fails CONTROL_BUS_NAME_INVALID; an envelope for another topic fails
 * CONTROL_BUS_TOPIC_MISMATCH.
 */
export const publish = Effect.fn("ControlBusFs.publish")(function* (
  root: string,
  topic: string,
  envelope: PublishableEnvelope,
): Effect.fn.Return<string, WorldstreamError> {
  yield* checkName("topic", topic);
  yield* checkName("message id", envelope.message_id);
  if (envelope.topic !== topic) {
    return yield* fail(
      "CONTROL_BUS_TOPIC_MISMATCH",
      `Envelope topic ${
        JSON.stringify(envelope.topic)
      } is not the topic it is published on (${topic})`,
    );
  }
  const file = join(root, topic, `${envelope.message_id}.json`);
  yield* writeFileAtomic(file, `${canonicalJson(envelope)}\n`);
  return file;
});

/**
 * The messages under `<root>/<topic>/` whose ids are not in `seen`, in poll order (see the file
 * comment). A missing topic folder means no messages yet; a folder that cannot be listed fails
 * CONTROL_BUS_UNREADABLE. Files that vanish between listing and reading are left out: they are no
 * longer on the bus.
 */
export const poll = Effect.fn("ControlBusFs.poll")(function* (
  root: string,
  topic: string,
  seen: ReadonlySet<string>,
): Effect.fn.Return<ReadonlyArray<PolledMessage>, WorldstreamError> {
  yield* checkName("topic", topic);
  const dir = join(root, topic);
  const names = yield* listMessageFiles(dir);
  const found: Array<{ readonly message: PolledMessage; readonly publishedAt: string }> = [];
  for (const name of names) {
    const messageId = MESSAGE_FILE.exec(name)![1];
    if (seen.has(messageId)) continue;
    const file = join(dir, name);
    const read = yield* readMessage(file);
    if (read === undefined) continue;
    const message: PolledMessage = "text" in read
      ? { message_id: messageId, file, text: read.text }
      : { message_id: messageId, file, error: read.error };
    found.push({ message, publishedAt: "text" in read ? publishedAtOf(read.text) : "" });
  }
  found.sort((a, b) =>
    compare(a.publishedAt, b.publishedAt) || compare(a.message.message_id, b.message.message_id)
  );
  return found.map((f) => f.message);
});

function checkName(what: string, name: string): Effect.Effect<void, WorldstreamError> {
  return SAFE_NAME.test(name) ? Effect.void : Effect.fail(
    fail(
      "CONTROL_BUS_NAME_INVALID",
      `Control bus ${what} ${JSON.stringify(name)} is not a safe file name`,
    ),
  );
}

function listMessageFiles(dir: string): Effect.Effect<ReadonlyArray<string>, WorldstreamError> {
  return Effect.tryPromise({
    try: async () => {
      const names: Array<string> = [];
      try {
        for await (const entry of Deno.readDir(dir)) {
          // Temp files of an atomic write end in `.tmp-<uuid>`, so they never match.
          if (entry.isFile && MESSAGE_FILE.test(entry.name) && !entry.name.startsWith(".")) {
            names.push(entry.name);
          }
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      return names;
    },
    catch: (e) =>
      fail("CONTROL_BUS_UNREADABLE", `Cannot list control bus folder ${dir}: ${errorText(e)}`),
  });
}

type ReadResult = { readonly text: string } | { readonly error: string } | undefined;

function readMessage(file: string): Effect.Effect<ReadResult> {
  return Effect.promise(async (): Promise<ReadResult> => {
    try {
      const bytes = await Deno.readFile(file);
      if (bytes.byteLength > MAX_MESSAGE_BYTES) {
        return {
          error: `Message file is ${bytes.byteLength} bytes, over the ${MAX_MESSAGE_BYTES} limit`,
        };
      }
      return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      if (e instanceof TypeError) return { error: "Message file is not valid UTF-8" };
      return { error: `Cannot read message file: ${errorText(e)}` };
    }
  });
}

function publishedAtOf(text: string): string {
  try {
    const value = JSON.parse(text)?.published_at_utc;
    return typeof value === "string" ? value : "";
  } catch {
    return "";
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { MAX_MESSAGE_BYTES, poll, type PolledMessage, publish } from "./control_bus_fs.ts";

const TOPIC = "fp.bus.control.v1";

async function withBus(body: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "control_bus_fs_test_" });
  try {
    await body(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function envelope(messageId: string, publishedAt: string, topic = TOPIC) {
  return {
    topic,
    message_id: messageId,
    published_at_utc: publishedAt,
    attributes: { kind: "READY", run_id: "platform_20260101T000000Z" },
    partition_key: "platform_20260101T000000Z",
    payload: { note: messageId },
  };
}

function run<A>(effect: Effect.Effect<A, WorldstreamError>): Promise<A> {
  return Effect.runPromise(effect);
}

function failure<A>(effect: Effect.Effect<A, WorldstreamError>): Promise<WorldstreamError> {
  return Effect.runPromise(Effect.flip(effect));
}

const ids = (messages: ReadonlyArray<PolledMessage>) => messages.map((m) => m.message_id);

Deno.test("a published message is one JSON file named by its id, and poll reads it back", () =>
  withBus(async (root) => {
    const sent = envelope("m1", "2026-01-01T00:00:00.000000Z");
    const file = await run(publish(root, TOPIC, sent));
    assert.equal(file, join(root, TOPIC, "m1.json"));
    assert.deepEqual([...Deno.readDirSync(join(root, TOPIC))].map((e) => e.name), ["m1.json"]);

    const [message, ...rest] = await run(poll(root, TOPIC, new Set()));
    assert.equal(rest.length, 0);
    assert.equal(message.message_id, "m1");
    assert.equal(message.file, file);
    assert.ok("text" in message);
    assert.deepEqual(JSON.parse(message.text), sent);
  }));

Deno.test("publish refuses message ids and topics that are not plain file names", () =>
  withBus(async (root) => {
    for (const bad of ["../escape", "a/b", ".hidden", "", "x\u0000y"]) {
      const error = await failure(publish(root, TOPIC, envelope(bad, "t")));
      assert.equal(error.reason, "CONTROL_BUS_NAME_INVALID", bad);
    }
    const error = await failure(publish(root, "../up", envelope("m1", "t", "../up")));
    assert.equal(error.reason, "CONTROL_BUS_NAME_INVALID");
    assert.deepEqual([...Deno.readDirSync(root)], []);
  }));

Deno.test("publish refuses an envelope whose topic is not the one it is published on", () =>
  withBus(async (root) => {
    const error = await failure(publish(root, TOPIC, envelope("m1", "t", "fp.bus.other.v1")));
    assert.equal(error.reason, "CONTROL_BUS_TOPIC_MISMATCH");
  }));

Deno.test("poll returns unseen messages by publish time, then by message id", () =>
  withBus(async (root) => {
    await run(publish(root, TOPIC, envelope("c", "2026-01-01T00:00:02.000000Z")));
    await run(publish(root, TOPIC, envelope("b", "2026-01-01T00:00:01.000000Z")));
    await run(publish(root, TOPIC, envelope("a", "2026-01-01T00:00:02.000000Z")));
    await run(publish(root, TOPIC, envelope("d", "2026-01-01T00:00:00.000000Z")));

    assert.deepEqual(ids(await run(poll(root, TOPIC, new Set()))), ["d", "b", "a", "c"]);
    assert.deepEqual(ids(await run(poll(root, TOPIC, new Set(["d", "a"])))), ["b", "c"]);
    assert.deepEqual(ids(await run(poll(root, TOPIC, new Set(["a", "b", "c", "d"])))), []);
  }));

Deno.test("poll returns broken message files too, first, so they can be receipted", () =>
  withBus(async (root) => {
    const dir = join(root, TOPIC);
    await run(publish(root, TOPIC, envelope("good", "2026-01-01T00:00:00.000000Z")));
    await Deno.writeTextFile(join(dir, "malformed.json"), "{not json");
    await Deno.writeFile(join(dir, "binary.json"), new Uint8Array([0xff, 0xfe, 0x00]));
    await Deno.writeFile(join(dir, "huge.json"), new Uint8Array(MAX_MESSAGE_BYTES + 1));

    const messages = await run(poll(root, TOPIC, new Set()));
    assert.deepEqual(ids(messages), ["binary", "huge", "malformed", "good"]);
    const byId = new Map(messages.map((m) => [m.message_id, m]));
    assert.deepEqual(byId.get("malformed"), {
      message_id: "malformed",
      file: join(dir, "malformed.json"),
      text: "{not json",
    });
    const binary = byId.get("binary")!;
    assert.ok("error" in binary && /not valid UTF-8/.test(binary.error));
    const huge = byId.get("huge")!;
    assert.ok("error" in huge && /over the 1048576 limit/.test(huge.error));
  }));

Deno.test("poll ignores temp files, other extensions and folders, and an absent topic", () =>
  withBus(async (root) => {
    assert.deepEqual(await run(poll(root, TOPIC, new Set())), []);
    const dir = join(root, TOPIC);
    await Deno.mkdir(join(dir, "folder.json"), { recursive: true });
    await Deno.writeTextFile(join(dir, "m1.json.tmp-1234"), "{}");
    await Deno.writeTextFile(join(dir, "notes.txt"), "hello");
    await Deno.writeTextFile(join(dir, ".hidden.json"), "{}");
    assert.deepEqual(await run(poll(root, TOPIC, new Set())), []);
  }));

Deno.test("republishing a message id replaces its file whole", () =>
  withBus(async (root) => {
    await run(publish(root, TOPIC, envelope("m1", "2026-01-01T00:00:00.000000Z")));
    await run(publish(root, TOPIC, envelope("m1", "2026-01-01T00:00:09.000000Z")));
    const messages = await run(poll(root, TOPIC, new Set()));
    assert.equal(messages.length, 1);
    const only = messages[0];
    assert.ok("text" in only);
    assert.equal(JSON.parse(only.text).published_at_utc, "2026-01-01T00:00:09.000000Z");
    assert.deepEqual([...Deno.readDirSync(join(root, TOPIC))].map((e) => e.name), ["m1.json"]);
  }));

Deno.test("a topic path that is a file, not a folder, fails CONTROL_BUS_UNREADABLE naming it", () =>
  withBus(async (root) => {
    await Deno.writeTextFile(join(root, TOPIC), "not a folder");
    const e = await failure(poll(root, TOPIC, new Set()));
    assert.equal(e.reason, "CONTROL_BUS_UNREADABLE");
    assert.match(e.message, new RegExp(`^Cannot list control bus folder ${join(root, TOPIC)}: `));
  }));

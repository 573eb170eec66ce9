import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { parsePayload } from "../actors/wal/writer.ts";
import { FRAME_HEADER_BYTES, scanSegment } from "../stores/wal_format.ts";
import {
  effectTest,
  gateCounts,
  logLines,
  pgliteSite,
  type ProcessSite,
  processSite,
  runCommand,
  streamArgs,
  tail,
} from "./_testing.ts";

// The WAL left by a real stream, damaged on disk, through the real commands (issue 12, item 9):
// a flipped byte in a middle frame with intact frames after it is WAL_CORRUPT — the next start
// refuses, naming the segment and the offset, sends nothing and cuts nothing — and the command
// its message names (`wal salvage`) lets it start again; a torn last frame is still cut off and
// the run goes on. The quota is a profile setting (WSP_WAL_QUOTA_BYTES in the shipped profiles).

const { tmp: TMP, world: WORLD, template: TEMPLATE, total: TOTAL } = await processSite(
  "wal_corrupt_test_",
  300,
);

function site(name: string) {
  return pgliteSite(TMP, name, { template: TEMPLATE, bus: true, gate: true }).pipe(
    Effect.map((s) => ({ ...s, wal: join(s.vars.WORLDSTREAM_RUNS_ROOT, "wal") })),
  );
}

function stream(s: ProcessSite & { ig: { url: string } }, run: string) {
  return runCommand(streamArgs(WORLD, s.ig.url, { platformRunId: run }), s);
}

/** The WAL's last segment file and the offsets of its frames. */
function lastSegment(wal: string) {
  const name = readdirSync(wal).filter((n) => n.endsWith(".seg")).sort().at(-1)!;
  const file = join(wal, name);
  const offsets = scanSegment(Deno.readFileSync(file), parsePayload).frames.map((f) => f.offset);
  return { name, file, offsets };
}

effectTest(
  "a flipped byte in a middle WAL frame refuses the next start with WAL_CORRUPT naming segment and offset, sends nothing, and wal salvage lets it start",
  Effect.gen(function* () {
    const s = yield* site("corrupt");
    const first = yield* stream(s, "platform_20260101T000001Z");
    assert.equal(first.code, 0, `${first.stdout}\n${tail(first.stderr)}`);
    assert.equal((yield* gateCounts(s.ig, "platform_20260101T000001Z")).admitted, TOTAL);

    const { name, file, offsets } = lastSegment(s.wal);
    assert.ok(offsets.length >= 6, `only ${offsets.length} frames in ${name}`);
    const victim = Math.floor(offsets.length / 2);
    const bytes = Deno.readFileSync(file);
    bytes[offsets[victim] + FRAME_HEADER_BYTES + 30] ^= 0x01;
    Deno.writeFileSync(file, bytes);

    const refused = yield* stream(s, "platform_20260101T000002Z");
    const what = `${refused.stdout}\n${tail(refused.stderr)}`;
    assert.equal(refused.code, 1, what);
    assert.equal(refused.result?.reason, "WAL_CORRUPT", what);
    const message = String(refused.result?.message);
    assert.ok(message.includes(`${name} is corrupt at offset ${offsets[victim]}`), what);
    assert.ok(message.includes(`wal salvage --dir ${s.wal}`), what);
    assert.equal((yield* gateCounts(s.ig, "platform_20260101T000002Z")).admitted, 0, "sent none");
    assert.deepEqual(Deno.readFileSync(file), bytes, "the damaged segment is left as it was");

    const inspected = yield* runCommand(["wal", "inspect", "--dir", s.wal], s);
    assert.equal(inspected.code, 1, "inspect exits 1 while the WAL would refuse to open");
    assert.equal(inspected.result?.status, "CORRUPT", inspected.stdout);

    const salvaged = yield* runCommand(["wal", "salvage"], s);
    assert.equal(salvaged.code, 0, `${salvaged.stdout}\n${tail(salvaged.stderr)}`);
    const [segment] = (salvaged.result as { segments: Array<Record<string, unknown>> }).segments;
    assert.equal(segment.records_kept, offsets.length - 1);
    assert.deepEqual(Deno.readFileSync(String(segment.saved_as)), bytes, "original kept aside");

    const after = yield* stream(s, "platform_20260101T000003Z");
    assert.equal(after.code, 0, `${after.stdout}\n${tail(after.stderr)}`);
    assert.equal((yield* gateCounts(s.ig, "platform_20260101T000003Z")).admitted, TOTAL);
  }),
);

effectTest(
  "a torn last WAL frame is still cut off at the next start, and the run goes on",
  Effect.gen(function* () {
    const s = yield* site("torn");
    const first = yield* stream(s, "platform_20260101T000011Z");
    assert.equal(first.code, 0, `${first.stdout}\n${tail(first.stderr)}`);
    const { file, offsets } = lastSegment(s.wal);
    const bytes = Deno.readFileSync(file);
    // An append cut short by a crash: the header and part of a copy of the last frame.
    const torn = bytes.subarray(offsets.at(-1)!, offsets.at(-1)! + FRAME_HEADER_BYTES + 40);
    Deno.writeFileSync(file, torn, { append: true });

    const after = yield* stream(s, "platform_20260101T000012Z");
    assert.equal(after.code, 0, `${after.stdout}\n${tail(after.stderr)}`);
    assert.ok(logLines(after.stderr, "WAL tail of").length === 1, tail(after.stderr));
    assert.equal((yield* gateCounts(s.ig, "platform_20260101T000012Z")).admitted, TOTAL);
  }),
);

effectTest(
  "the WAL quota comes from the profile: WSP_WAL_QUOTA_BYTES too small for one record fails WAL_QUOTA_EXCEEDED naming it",
  Effect.gen(function* () {
    const s = yield* site("quota");
    const exited = yield* runCommand(streamArgs(WORLD, s.ig.url), {
      ...s,
      vars: { ...s.vars, WSP_WAL_QUOTA_BYTES: "64" },
    });
    const what = `${exited.stdout}\n${tail(exited.stderr)}`;
    assert.notEqual(exited.code, 0, what);
    assert.match(what, /WAL_QUOTA_EXCEEDED/);
    assert.match(what, /64-byte quota/);
  }),
);

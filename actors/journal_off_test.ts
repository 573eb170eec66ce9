import assert from "node:assert/strict";
import { Effect, Layer, Logger } from "effect";
import { loadProfile, type Profile } from "../core/profile.ts";
import { checkpointRecord } from "../stores/wal_records.ts";
import { Journal } from "./journal.ts";
import { BENCH_DURABILITY_ENV, journalOrBenchOff } from "./journal_off.ts";

const local = await Effect.runPromise(loadProfile("local", {}));
const dev: Profile = { ...local, profile_id: "dev" };

/** A stand-in for the durable journal that counts what it is given. */
function countingJournal() {
  const appended: number[] = [];
  const layer = Layer.succeed(
    Journal,
    Journal.of({
      append: (records) => Effect.sync(() => (appended.push(records.length), [])),
      now: Effect.succeed(new Date(0)),
    }),
  );
  return { appended, layer };
}

/** Builds the switched journal under `env`, appends one record, and returns what was logged. */
function appendOnce(profile: Profile, env: Record<string, string>) {
  const durable = countingJournal();
  const warnings: string[] = [];
  const logs = Logger.layer([
    Logger.make((o) => warnings.push(String((o.message as ReadonlyArray<unknown>)[0]))),
  ]);
  const position = { seq: 0, filename: "part-0.parquet", file_row_number: 0, ts_utc: "t" };
  const record = checkpointRecord("run", "output", position, new Date(0));
  return Journal.use((j) => j.append([record])).pipe(
    Effect.provide(journalOrBenchOff(profile, durable.layer, env)),
    Effect.provide(logs),
    Effect.map(() => ({ durableAppends: durable.appended, warnings })),
  );
}

Deno.test("without the bench variable the durable journal is used", async () => {
  const out = await Effect.runPromise(appendOnce(local, {}));
  assert.deepEqual(out.durableAppends, [1]);
  assert.deepEqual(out.warnings, []);
});

Deno.test("durability off keeps nothing and says so loudly", async () => {
  const out = await Effect.runPromise(appendOnce(local, { [BENCH_DURABILITY_ENV]: "off" }));
  assert.deepEqual(out.durableAppends, []);
  assert.match(out.warnings.join("\n"), /DURABILITY OFF/);
});

Deno.test("durability off is refused outside the local profile", async () => {
  const error = await Effect.runPromise(
    Effect.flip(appendOnce(dev, { [BENCH_DURABILITY_ENV]: "off" })),
  );
  assert.equal(error.reason, "BENCH_DURABILITY_REFUSED");
});

Deno.test("an unknown value of the bench variable fails naming it", async () => {
  const error = await Effect.runPromise(
    Effect.flip(appendOnce(local, { [BENCH_DURABILITY_ENV]: "false" })),
  );
  assert.equal(error.reason, "BAD_ENV");
  assert.match(error.message, new RegExp(BENCH_DURABILITY_ENV));
});

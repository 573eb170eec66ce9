import assert from "node:assert/strict";
import { Effect } from "effect";
import { DeadLetters } from "./dead_letters.ts";
import { Postgres } from "./postgres.ts";
import { migrate } from "./postgres_migrate.ts";
import { failure, pgTest } from "./postgres_testing.ts";

// ws_dead_letters is a boundary: rows may be written by hand or by another version. A row the
// schema does not know (here a status other than OPEN/CLOSED, or an envelope that is not an
// object) is refused with DEAD_LETTER_INVALID naming the field, never retried as if it were open.

const ROW = `insert into ws_dead_letters
  (record_id, run_key, output_id, event_id, envelope, attempts, last_status, reason, status, at)
  values ($1, 'run', 's3_event_stream_with_fraud_6B', 'ev-1', $2::text::jsonb, 1, 400,
    'IG_PUSH_REJECTED', $3, now())`;

pgTest(
  "a stored dead letter with an unknown status or a non-object envelope fails DEAD_LETTER_INVALID",
  () =>
    Effect.gen(function* () {
      yield* migrate;
      const pg = yield* Postgres;
      yield* pg.query(ROW, ["dead-purged", JSON.stringify({ event_id: "ev-1" }), "PURGED"]);
      yield* pg.query(ROW, ["dead-array", "[1, 2]", "OPEN"]);
      const store = yield* DeadLetters;
      const purged = yield* failure(store.find("dead-purged"));
      assert.equal(purged.reason, "DEAD_LETTER_INVALID");
      assert.match(purged.message, /^ws_dead_letters row: status: /);
      const array = yield* failure(store.find("dead-array"));
      assert.equal(array.reason, "DEAD_LETTER_INVALID");
      assert.match(array.message, /^ws_dead_letters row: envelope: /);
      // A listing does not skip them silently either.
      assert.equal((yield* failure(store.list())).reason, "DEAD_LETTER_INVALID");
    }).pipe(Effect.provide(DeadLetters.layer)),
  { only: "pglite" },
);

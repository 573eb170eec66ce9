/**
 * The WAL records a run writes besides checkpoints: its run_start / run_end receipts and its dead
 * letters (each envelope whole, with one dead_letter receipt per failed batch).
 */
import { Effect } from "effect";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import { walRecord } from "../stores/wal_records.ts";
import type { ViewPosition } from "../stores/stream_view_read.ts";
import type { DeadLetterBatch } from "./courier.ts";
import type { Journal } from "./journal.ts";

/** Appends a run_start or run_end receipt for a run. */
export function runReceipt(
  journal: Journal["Service"],
  kind: "run_start" | "run_end",
  runKey: string,
  actor: string,
  detail: Record<string, unknown>,
  status: "pass" | "soft_block" = "pass",
) {
  return journal.append([], [{
    kind,
    status,
    rationale: kind === "run_start"
      ? `run started for ${String(detail.platform_run_id)}`
      : `run ended ${String(detail.status)} with ${String(detail.emitted)} events`,
    inputs_digest: sha256Hex(canonicalJson(detail)),
    actor,
    run_key: runKey,
    detail,
  }]);
}

/** Stores each envelope of a failed batch whole, with a dead_letter receipt, in one append. */
export function deadLetter(
  journal: Journal["Service"],
  runKey: string,
  outputId: string,
  actor: string,
  dead: DeadLetterBatch<ViewPosition>,
) {
  return Effect.gen(function* () {
    const at = yield* journal.now;
    const records = dead.batch.envelopes.map((text, i) =>
      walRecord(
        "dead_letter",
        {
          run_key: runKey,
          output_id: outputId,
          event_id: dead.batch.eventIds[i],
          envelope: JSON.parse(text),
          attempts: dead.attempts,
          last_status: dead.lastStatus,
          reason: dead.reason,
          status: "OPEN",
        },
        at,
        sha256Hex(`dead_letter|${runKey}|${dead.batch.eventIds[i]}`),
      )
    );
    yield* journal.append(records, [{
      kind: "dead_letter",
      status: "hard_block",
      rationale:
        `${outputId}: ${dead.batch.envelopes.length} envelopes dead-lettered (${dead.reason})`,
      badges: ["dead_letter"],
      inputs_digest: sha256Hex(dead.batch.eventIds.join("\n")),
      actor,
      run_key: runKey,
      output_id: outputId,
      detail: {
        reason: dead.reason,
        message: dead.message,
        attempts: dead.attempts,
        last_status: dead.lastStatus,
        event_ids: [...dead.batch.eventIds],
        last_position: { ...dead.batch.last },
      },
    }]);
  });
}

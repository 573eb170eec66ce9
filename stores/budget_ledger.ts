/**
 * The budget ledger in Postgres (`ws_budget_ledger`, written by the WAL drain): what a run and
 * its principal have consumed so far, so a restart does not reset a hard cap. This module reads
 * it; actors/budgets.ts adds what the WAL still holds.
 */
import { Effect } from "effect";
import type { UsageRow } from "../core/budget.ts";
import type { WorldstreamError } from "../schemas/errors.ts";
import { pgQuery, Postgres } from "./postgres.ts";

const USAGE = pgQuery("budget_usage");

/** The ledger's sums for `principal` and `runKey`, leaving out the rows `excluded` names. */
export function loadBudgetUsage(
  principal: string,
  runKey: string,
  excluded: ReadonlyArray<string>,
): Effect.Effect<ReadonlyArray<UsageRow>, WorldstreamError, Postgres> {
  return Effect.gen(function* () {
    const pg = yield* Postgres;
    const rows = yield* pg.query<{
      principal: string;
      run_key: string | null;
      output_id: string | null;
      metric: string;
      amount: string;
      seq_to: string | null;
    }>(USAGE, [principal, runKey, JSON.stringify(excluded)]);
    return rows.map((r): UsageRow => ({
      principal: r.principal,
      runKey: r.run_key,
      outputId: r.output_id,
      metric: r.metric,
      amount: Number(r.amount),
      seqTo: r.seq_to === null ? null : Number(r.seq_to),
    }));
  });
}

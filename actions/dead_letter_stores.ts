/**
 * The stores a dead-letter action needs: Postgres (migrated), the profile's WAL with its drain,
 * and the Journal that seals retry receipts onto the chain, built as the runtime builds them.
 * Opening the WAL takes its lock, so these actions run while the runtime of the same runs root is
 * stopped (WAL_LOCKED otherwise), which also keeps one writer on the receipt chain.
 */
import { Layer } from "effect";
import { durableLayer } from "../actors/runtime.ts";
import type { RunConfigShape } from "../actors/run_config.ts";
import type { Env } from "../core/profile_interpolate.ts";
import { DeadLetters } from "../stores/dead_letters.ts";

/** Dead letters over the profile's durable path; `env` is where the receipt key is read. */
export function deadLetterStores(config: RunConfigShape, env: Env) {
  return DeadLetters.layer.pipe(Layer.provideMerge(durableLayer(config, { env })));
}

/**
 * Receipts: `GET /v1/receipts?kind=&run=&after=&limit=` pages through the stored receipts in
 * chain order (the cursor `after` is the `seq` of the previous page's last receipt; `next` is
 * null on the last page), and `GET /v1/receipts/verify` answers what `audit-verify` says of the
 * whole chain (actions/audit_verify.ts). Both drain the WAL to Postgres first.
 */
import { Effect, Schema } from "effect";
import { RunConfig } from "../../actors/run_config.ts";
import { WalDrain } from "../../actors/wal/drain.ts";
import { auditVerify } from "../../actions/audit_verify.ts";
import { pgQuery, Postgres } from "../../stores/postgres.ts";
import { jsonRoute, type RouteModule } from "../route.ts";
import { Cursor, Id, Limit } from "./params.ts";

const PAGE = pgQuery("admin_receipts_page");

/** A receipt kind in a query: lower_snake. */
const Kind = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_]{0,63}$/, { expected: "a lower_snake receipt kind" }),
);

/** `GET /v1/receipts/verify`'s answer. */
export const AuditVerdict = Schema.Struct({
  status: Schema.Literals(["OK", "BROKEN"]),
  count: Schema.Int,
  first_break: Schema.optionalKey(Schema.Struct({
    index: Schema.Int,
    receipt_id: Schema.String,
    problem: Schema.String,
    detail: Schema.String,
  })),
}).annotate({ identifier: "AuditVerdict" });

/** The receipts routes. */
export const receiptsRoutes: RouteModule = {
  name: "receipts",
  routes: [
    jsonRoute({
      method: "get",
      path: "/v1/receipts",
      summary: "Receipts in chain order, by kind and run, with cursor paging",
      query: Schema.Struct({
        kind: Schema.optionalKey(Kind),
        run: Schema.optionalKey(Id),
        after: Schema.optionalKey(Cursor),
        limit: Schema.optionalKey(Limit),
      }),
      response: Schema.Struct({
        receipts: Schema.Array(Schema.Struct({ seq: Schema.Int, receipt: Schema.Unknown })),
        /** The `after` of the next page, null on the last. */
        next: Schema.NullOr(Schema.String),
      }),
      handle: ({ query }) =>
        Effect.gen(function* () {
          yield* (yield* WalDrain).drainNow;
          const limit = query.limit ?? 100;
          const rows = yield* (yield* Postgres).query<
            { readonly seq: number | string; readonly body: unknown }
          >(PAGE, [query.after ?? 0, query.kind ?? null, query.run ?? null, limit + 1]);
          const page = rows.slice(0, limit).map((r) => ({ seq: Number(r.seq), receipt: r.body }));
          return {
            receipts: page,
            next: rows.length > limit ? String(page[page.length - 1].seq) : null,
          };
        }),
    }),
    jsonRoute({
      method: "get",
      path: "/v1/receipts/verify",
      summary: "Walks the whole receipt chain: OK with its length, or its first break",
      response: AuditVerdict,
      handle: () =>
        Effect.gen(function* () {
          yield* (yield* WalDrain).drainNow;
          const { profile } = yield* RunConfig;
          return yield* auditVerify(profile, Deno.env.toObject());
        }),
    }),
  ],
};

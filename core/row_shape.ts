/**
 * Checks an output's parts before a stream view is built from them: each part's columns and
 * types against the output's row schema, and the parts against each other.
 *
 * Why before: DuckDB reads many parts with the first part's schema. It drops a column that only
 * a later part has and casts a later part's column to the first part's type, so a view built
 * from parts that disagree silently differs from its source rows; and a part that lacks a
 * required column or holds the wrong type would have every one of its events quarantined at the
 * gate, after the run was reported STREAMED.
 */
import { Effect } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";
import type { JsonType, RowShape } from "./catalogue.ts";

/** One part's columns as DuckDB describes them, in file order. */
export interface PartColumns {
  /** The part's path relative to the engine run root (what messages name). */
  readonly part: string;
  readonly columns: ReadonlyArray<{ readonly name: string; readonly type: string }>;
}

/** Columns a stream view adds to every source row; a source column may not bear their names. */
export const RESERVED_COLUMNS: ReadonlyArray<string> = ["filename", "file_row_number"];

/** DuckDB's integer types, signed and unsigned. */
export const INTEGER_TYPES: ReadonlyArray<string> = [
  "TINYINT",
  "SMALLINT",
  "INTEGER",
  "BIGINT",
  "HUGEINT",
  "UTINYINT",
  "USMALLINT",
  "UINTEGER",
  "UBIGINT",
  "UHUGEINT",
];

// The DuckDB types whose values DuckDB's JSON functions write as the JSON type (the payload is
// built by json_object over the view's columns).
const DUCK_TYPES: Readonly<Record<Exclude<JsonType, "null">, (t: string) => boolean>> = {
  string: (t) => t === "VARCHAR",
  integer: (t) => INTEGER_TYPES.includes(t),
  number: (t) =>
    INTEGER_TYPES.includes(t) || t === "DOUBLE" || t === "FLOAT" || /^DECIMAL\(/.test(t),
  boolean: (t) => t === "BOOLEAN",
};

/** Whether a column of DuckDB type `duckType` can hold what `allowed` JSON types allow. */
export function typeFits(duckType: string, allowed: ReadonlyArray<JsonType>): boolean {
  return allowed.some((j) => j !== "null" && DUCK_TYPES[j](duckType));
}

/**
 * Fails with a reason naming the output, the part and the column when a part does not fit the
 * row shape or differs from the first part; parts are checked in the order given.
 */
export function checkPartColumns(
  outputId: string,
  shape: RowShape,
  parts: ReadonlyArray<PartColumns>,
): Effect.Effect<void, WorldstreamError> {
  return Effect.gen(function* () {
    for (const { part, columns } of parts) {
      const where = `Output ${outputId}, part ${part}`;
      const names = new Set(columns.map((c) => c.name));
      const reserved = RESERVED_COLUMNS.find((r) => names.has(r));
      if (reserved !== undefined) {
        return yield* fail(
          "ROW_COLUMN_RESERVED",
          `${where}: has a column named ${reserved}, which a stream view adds to every row`,
        );
      }
      const missing = shape.required.find((r) => !names.has(r));
      if (missing !== undefined) {
        return yield* fail(
          "ROW_COLUMN_MISSING",
          `${where}: lacks column ${missing}, which the row schema requires`,
        );
      }
      for (const { name, type } of columns) {
        const allowed = shape.types.get(name);
        if (allowed === undefined) {
          if (shape.additionalProperties) continue;
          return yield* fail(
            "PAYLOAD_COLUMN_UNDECLARED",
            `${where}: has a column ${name} that the output's closed row schema does not declare`,
          );
        }
        if (name === "ts_utc" && type !== "VARCHAR") {
          // The time column's order is the view's order: text in RFC 3339 micros, nothing else.
          return yield* fail(
            "TS_UTC_INVALID",
            `${where}: ts_utc must be a VARCHAR in RFC 3339 micros form, found ${type}`,
          );
        }
        if (!typeFits(type, allowed)) {
          return yield* fail(
            "ROW_COLUMN_TYPE_MISMATCH",
            `${where}: column ${name} is ${type}, the row schema wants ${allowed.join(" or ")}`,
          );
        }
      }
    }
    const [first, ...rest] = parts;
    if (first === undefined) return;
    const firstTypes = new Map(first.columns.map((c) => [c.name, c.type]));
    for (const { part, columns } of rest) {
      const types = new Map(columns.map((c) => [c.name, c.type]));
      const differ = (detail: string) =>
        fail("PART_COLUMNS_DIFFER", `Output ${outputId}, part ${part}: ${detail}`);
      for (const { name, type } of columns) {
        const theirs = firstTypes.get(name);
        if (theirs === undefined) {
          return yield* differ(`has a column ${name} that part ${first.part} does not have`);
        }
        if (theirs !== type) {
          return yield* differ(`column ${name} is ${type}, in part ${first.part} ${theirs}`);
        }
      }
      const lacking = first.columns.find((c) => !types.has(c.name));
      if (lacking !== undefined) {
        return yield* differ(`lacks column ${lacking.name}, which part ${first.part} has`);
      }
    }
  });
}

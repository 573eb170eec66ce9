import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import type { RowShape } from "./catalogue.ts";
import { checkPartColumns, type PartColumns, typeFits } from "./row_shape.ts";

const SHAPE: RowShape = {
  columns: ["ts_utc", "amount", "campaign_id", "flow_id"],
  required: ["ts_utc", "amount", "flow_id"],
  types: new Map([
    ["ts_utc", ["string"]],
    ["amount", ["number"]],
    ["campaign_id", ["null", "string"]],
    ["flow_id", ["integer"]],
  ]),
  additionalProperties: false,
};
const GOOD = [
  { name: "ts_utc", type: "VARCHAR" },
  { name: "amount", type: "DOUBLE" },
  { name: "campaign_id", type: "VARCHAR" },
  { name: "flow_id", type: "BIGINT" },
];

function reasonOf(shape: RowShape, parts: ReadonlyArray<PartColumns>) {
  const exit = Effect.runSyncExit(checkPartColumns("out", shape, parts));
  if (Exit.isSuccess(exit)) return "OK";
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as {
    reason: string;
    message: string;
  };
  return `${error.reason}: ${error.message}`;
}

Deno.test("DuckDB types fit the JSON types their JSON values have", () => {
  assert.ok(typeFits("DOUBLE", ["number"]));
  assert.ok(typeFits("DECIMAL(18,2)", ["number"]));
  assert.ok(typeFits("INTEGER", ["number"]));
  assert.ok(typeFits("UBIGINT", ["integer"]));
  assert.ok(typeFits("VARCHAR", ["null", "string"]));
  assert.ok(!typeFits("DOUBLE", ["integer"]));
  assert.ok(!typeFits("VARCHAR", ["number"]));
  assert.ok(!typeFits("BOOLEAN", ["null"]));
});

Deno.test("parts that fit the row shape and each other pass, whatever their column order", () => {
  assert.equal(
    reasonOf(SHAPE, [
      { part: "a.parquet", columns: GOOD },
      { part: "b.parquet", columns: [...GOOD].reverse() },
    ]),
    "OK",
  );
});

Deno.test("each misfit is refused with its own code, naming the part and the column", () => {
  const cases: Array<[string, RowShape, ReadonlyArray<PartColumns>, string]> = [
    [
      "a required column missing",
      SHAPE,
      [{ part: "a.parquet", columns: GOOD.filter((c) => c.name !== "amount") }],
      "ROW_COLUMN_MISSING: Output out, part a.parquet: lacks column amount",
    ],
    [
      "a number as text",
      SHAPE,
      [{
        part: "a.parquet",
        columns: GOOD.map((c) => c.name === "amount" ? { ...c, type: "VARCHAR" } : c),
      }],
      "ROW_COLUMN_TYPE_MISMATCH: Output out, part a.parquet: column amount is VARCHAR, the row schema wants number",
    ],
    [
      "an undeclared column in a closed shape",
      SHAPE,
      [{ part: "a.parquet", columns: [...GOOD, { name: "note", type: "VARCHAR" }] }],
      "PAYLOAD_COLUMN_UNDECLARED: Output out, part a.parquet: has a column note",
    ],
    [
      "an undeclared column in one part of an open shape",
      { ...SHAPE, additionalProperties: true },
      [
        { part: "a.parquet", columns: GOOD },
        { part: "b.parquet", columns: [...GOOD, { name: "note", type: "VARCHAR" }] },
      ],
      "PART_COLUMNS_DIFFER: Output out, part b.parquet: has a column note that part a.parquet does not have",
    ],
    [
      "an optional column in the first part only",
      SHAPE,
      [
        { part: "a.parquet", columns: GOOD },
        { part: "b.parquet", columns: GOOD.filter((c) => c.name !== "campaign_id") },
      ],
      "PART_COLUMNS_DIFFER: Output out, part b.parquet: lacks column campaign_id, which part a.parquet has",
    ],
    [
      "two integer widths",
      SHAPE,
      [
        { part: "a.parquet", columns: GOOD },
        {
          part: "b.parquet",
          columns: GOOD.map((c) => c.name === "flow_id" ? { ...c, type: "INTEGER" } : c),
        },
      ],
      "PART_COLUMNS_DIFFER: Output out, part b.parquet: column flow_id is INTEGER, in part a.parquet BIGINT",
    ],
    [
      "a provenance column",
      { ...SHAPE, additionalProperties: true },
      [{ part: "a.parquet", columns: [...GOOD, { name: "filename", type: "VARCHAR" }] }],
      "ROW_COLUMN_RESERVED: Output out, part a.parquet: has a column named filename",
    ],
  ];
  for (const [what, shape, parts, expected] of cases) {
    assert.ok(reasonOf(shape, parts).startsWith(expected), `${what}: ${reasonOf(shape, parts)}`);
  }
});

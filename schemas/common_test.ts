import assert from "node:assert/strict";
import {
  boundedString,
  Hex32,
  Hex64,
  NonNegativeInt,
  PlatformRunId,
  Rfc3339Micros,
  Uint64,
} from "./common.ts";
import { accepted, isAccepted, rejection } from "./_testing.ts";

const HEX64 = "0123456789abcdef".repeat(4);

Deno.test("a 64-char lowercase hex digest is accepted", () => {
  assert.equal(accepted(Hex64, HEX64), HEX64);
});

Deno.test("uppercase, short, non-hex and newline-terminated digests are rejected", () => {
  assert.equal(
    rejection(Hex64, HEX64.toUpperCase()),
    `input: Expected a 64-char lowercase hex string, got "${HEX64.toUpperCase()}"`,
  );
  for (const bad of [HEX64.slice(1), `${HEX64.slice(1)}g`, `${HEX64}\n`, `${HEX64}0`, 7]) {
    assert.equal(isAccepted(Hex64, bad), false, JSON.stringify(bad));
  }
});

Deno.test("a run id is exactly 32 lowercase hex chars", () => {
  assert.equal(isAccepted(Hex32, HEX64.slice(0, 32)), true);
  assert.equal(isAccepted(Hex32, HEX64), false);
  assert.equal(isAccepted(Hex32, HEX64.slice(0, 32).toUpperCase()), false);
});

Deno.test("a uint64 is a non-negative integer up to 2^64 - 1", () => {
  assert.equal(accepted(Uint64, 0), 0);
  assert.equal(accepted(Uint64, Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  // JSON's 18446744073709551615 is parsed to 2^64, so the cap is checked as a double.
  assert.equal(isAccepted(Uint64, JSON.parse("18446744073709551615")), true);
  assert.equal(isAccepted(Uint64, 1e20), false);
  assert.equal(rejection(Uint64, -1), "input: Expected an unsigned 64-bit integer, got -1");
  assert.equal(rejection(Uint64, 1.5), "input: Expected an unsigned 64-bit integer, got 1.5");
  assert.equal(rejection(Uint64, "1"), `input: Expected number, got "1"`);
  assert.equal(isAccepted(Uint64, Number.NaN), false);
});

Deno.test("the platform files' uint64 has no upper bound", () => {
  assert.equal(isAccepted(NonNegativeInt, 1e20), true);
  assert.equal(isAccepted(NonNegativeInt, -1), false);
});

Deno.test("a micros timestamp has exactly six fractional digits and a Z", () => {
  assert.equal(
    accepted(Rfc3339Micros, "2026-01-02T10:15:30.123456Z"),
    "2026-01-02T10:15:30.123456Z",
  );
  for (
    const bad of [
      "2026-01-02T10:15:30.12345Z",
      "2026-01-02T10:15:30.1234567Z",
      "2026-01-02T10:15:30.123456",
      "2026-01-02T10:15:30.123456+00:00",
      "2026-01-02 10:15:30.123456Z",
      "2026-01-02T10:15:30Z",
    ]
  ) {
    assert.match(rejection(Rfc3339Micros, bad), /exactly 6 fractional digits/, bad);
  }
});

Deno.test("a platform run id is platform_ plus a compact UTC timestamp", () => {
  assert.equal(isAccepted(PlatformRunId, "platform_20260212T085637Z"), true);
  for (
    const bad of [
      "platform_20260212T085637",
      "platform_2026-02-12T08:56:37Z",
      "run_20260212T085637Z",
    ]
  ) {
    assert.match(rejection(PlatformRunId, bad), /platform run id/, bad);
  }
});

Deno.test("string lengths count code points, as JSON Schema does", () => {
  const upTo3 = boundedString(1, 3);
  assert.equal(isAccepted(upTo3, "😀😀😀"), true);
  assert.equal(isAccepted(upTo3, "abcd"), false);
  assert.equal(isAccepted(upTo3, ""), false);
});

Deno.test("a micros timestamp must name a date and time that exist", () => {
  for (const good of ["2024-02-29T23:59:59.999999Z", "2016-12-31T23:59:60.000000Z"]) {
    assert.equal(isAccepted(Rfc3339Micros, good), true, good);
  }
  for (
    const bad of [
      "2026-02-29T00:00:00.000000Z",
      "2026-04-31T00:00:00.000000Z",
      "2026-13-01T00:00:00.000000Z",
      "2026-00-10T00:00:00.000000Z",
      "2026-01-01T24:00:00.000000Z",
      "2026-01-01T10:60:00.000000Z",
      "2026-01-01T10:15:60.000000Z",
    ]
  ) {
    assert.equal(
      rejection(Rfc3339Micros, bad),
      `input: Expected a UTC date and time that exists, got "${bad}"`,
    );
  }
});

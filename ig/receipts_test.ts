import assert from "node:assert/strict";
import { canonicalJson, sha256Hex } from "../core/hash.ts";
import {
  dedupeKey,
  makePayloadHasher,
  payloadHash,
  quarantineId,
  receiptId,
  utcMicros,
} from "./receipts.ts";

Deno.test("the dedupe key is sha256 of run, class and event id joined by colons", () => {
  assert.equal(
    dedupeKey("platform_20260101T000000Z", "traffic_fraud", "ev-1"),
    sha256Hex("platform_20260101T000000Z:traffic_fraud:ev-1"),
  );
});

Deno.test("the payload hash is taken over the platform's canonical JSON", () => {
  const envelope = {
    event_id: "ignored",
    payload: { b: 1, a: ["é", "\u007f", "😀"], c: { z: null, y: 2.5 } },
    event_type: "t",
  };
  const expected =
    '{"event_type":"t","payload":{"a":["\\u00e9","\\u007f","\\ud83d\\ude00"],"b":1,"c":{"y":2.5,"z":null}},"schema_version":null}';
  assert.equal(payloadHash(envelope), sha256Hex(expected));
  assert.notEqual(payloadHash({ ...envelope, schema_version: "v1" }), payloadHash(envelope));
});

Deno.test("receipt and quarantine ids follow the platform's derivation", () => {
  assert.equal(receiptId("ADMIT", "ev-1"), sha256Hex("ADMIT:ev-1").slice(0, 32));
  assert.equal(quarantineId("ev-1"), sha256Hex("QUARANTINE:ev-1").slice(0, 32));
});

Deno.test("times are written with exactly six fractional digits", () => {
  assert.equal(utcMicros(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), "2026-01-02T03:04:05.678000Z");
});

Deno.test("the payload hash agrees with canonicalJson on nested ASCII documents", () => {
  const docs = [
    { payload: { z: [{ b: 1, a: { d: [3, { f: null, e: "x" }], c: true } }], y: -0.5 } },
    { event_type: "t", schema_version: "v1", payload: {} },
    { event_type: "t", payload: { list: [[], {}, [{}]], n: 1e21, s: 'q"\\\n' } },
  ];
  for (const doc of docs) {
    const canonical = canonicalJson({
      event_type: doc.event_type ?? null,
      schema_version: (doc as { schema_version?: string }).schema_version ?? null,
      payload: doc.payload,
    });
    assert.equal(payloadHash(doc), sha256Hex(canonical));
  }
});

Deno.test("the fast payload hasher agrees with payloadHash on every shape it is given", () => {
  const hash = makePayloadHasher();
  const flat = (i: number) => ({
    flow_id: i,
    amount: 1.5 * i,
    note: `n${i}`,
    ok: i % 2 === 0,
    c: null,
  });
  const envelopes: Array<Record<string, unknown>> = [
    { event_type: "t", schema_version: "v1", payload: flat(1) },
    { event_type: "t", schema_version: "v1", payload: flat(2) },
    { event_type: "t", payload: flat(3) },
    { event_type: "t", payload: { ...flat(4), note: "café ☕" } },
    { event_type: "t", payload: { ...flat(5), nested: { b: 1, a: 2 } } },
    { event_type: "t", payload: { zé: 1, a: 2 } },
    { event_type: "t", payload: { b: [2, { y: 1, x: 0 }], a: "x" } },
    { event_type: "t", payload: {} },
    { event_type: "t" },
    { event_type: "t", payload: { amount: 1e21, tiny: 5e-7, neg: -0 } },
    { event_type: "t", payload: { a: '\u007f\n"' } },
    { event_type: "t", schema_version: "v1", payload: flat(6) },
  ];
  for (const envelope of envelopes) {
    assert.equal(hash(envelope), payloadHash(envelope), JSON.stringify(envelope));
  }
});

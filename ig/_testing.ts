/** Test support for the gate: envelopes that pass every check, and the gate over a test database. */
import { Ajv2020 } from "ajv/dist/2020.js";
import { Effect, Layer, type Scope } from "effect";
import { parse } from "yaml";
import type { WorldstreamError } from "../schemas/errors.ts";
import { Postgres } from "../stores/postgres.ts";
import { SERVER_URL } from "../stores/postgres_testing.ts";
import { type GateOptions, IgGate } from "./gate.ts";
import { IgStore } from "./store.ts";

/** The platform run of the test envelopes. */
export const RUN = "platform_20260101T000000Z";

const MF = "a".repeat(64);
const PH = "b".repeat(64);

/** A payload of `s3_event_stream_with_fraud_6B` that fits its row schema. */
export function payload(flowId: number): Record<string, unknown> {
  return {
    flow_id: flowId,
    event_seq: 1,
    event_type: "AUTH_REQUEST",
    ts_utc: "2026-01-01T00:00:00.000000Z",
    amount: 12.5,
    seed: 42,
    manifest_fingerprint: MF,
    parameter_hash: PH,
    scenario_id: "baseline",
    fraud_flag: false,
    campaign_id: null,
  };
}

/** An admissible traffic envelope with event id `ev-{n}`; `overrides` replace its fields. */
export function envelope(
  n: number,
  overrides: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  return {
    event_id: `ev-${n}`,
    event_type: "s3_event_stream_with_fraud_6B",
    schema_version: "v1",
    ts_utc: "2026-01-01T00:00:00.000000Z",
    manifest_fingerprint: MF,
    parameter_hash: PH,
    seed: 42,
    scenario_id: "baseline",
    run_id: "c".repeat(32),
    platform_run_id: RUN,
    scenario_run_id: "d".repeat(32),
    producer: "svc:world_stream_producer",
    payload: payload(n),
    ...overrides,
  };
}

/** `envelope(n)` without the named fields. */
export function envelopeWithout(n: number, ...fields: ReadonlyArray<string>) {
  const out = envelope(n);
  for (const f of fields) delete out[f];
  return out;
}

/** The gate over the Postgres of the context. */
export function gateLayer(
  options: GateOptions = {},
): Layer.Layer<IgGate, WorldstreamError, Postgres> {
  return IgGate.layer(options).pipe(Layer.provide(IgStore.layer));
}

/** A database created on the test server for one test and dropped afterwards. */
export const freshServerDatabase: Effect.Effect<string, WorldstreamError, Scope.Scope> = Effect.gen(
  function* () {
    const admin = SERVER_URL!;
    const name = `ws_ig_test_${crypto.randomUUID().replaceAll("-", "")}`;
    const adminOp = (sql: string) =>
      Effect.gen(function* () {
        const pg = yield* Postgres;
        yield* pg.query(sql);
      }).pipe(Effect.provide(Postgres.layerServer(admin, { max: 1 })));
    yield* Effect.acquireRelease(
      adminOp(`create database ${name}`),
      () => adminOp(`drop database if exists ${name} with (force)`).pipe(Effect.ignore),
    );
    const url = new URL(admin);
    url.pathname = `/${name}`;
    return url.toString();
  },
);

const FIXTURES = new URL("../tests/fixtures/contracts/platform/", import.meta.url);

/** A validator for one of the platform's IG formats (`ingestion_receipt`, `quarantine_record`). */
export function platformValidator(
  name: "ingestion_receipt" | "quarantine_record",
): (doc: unknown) => string | undefined {
  const ajv = new Ajv2020({ strict: false });
  const validate = ajv.compile(
    parse(Deno.readTextFileSync(new URL(`${name}.schema.yaml`, FIXTURES))) as object,
  );
  return (doc) => validate(doc) ? undefined : ajv.errorsText(validate.errors);
}

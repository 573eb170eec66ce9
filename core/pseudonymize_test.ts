/**
 * What tier minimized needs before a run: the pseudonym key and a minimized fields file that
 * names only integer or string fields of known outputs; each bad input has its code. And the
 * privacy check as the supervisor calls it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Effect, Exit } from "effect";
import type { WorldstreamError } from "../schemas/errors.ts";
import { loadInterfacePack } from "./catalogue.ts";
import { authorizePrivacy, checkPrivacyAtStart } from "./privacy.ts";
import { loadMinimizedFields, PSEUDONYM_KEY_ENV, pseudonymKeyFromEnv } from "./pseudonymize.ts";

const { rows } = await Effect.runPromise(loadInterfacePack());
const SHIPPED = new URL("../profiles/minimized_fields.yaml", import.meta.url).pathname;

async function reasonOf(effect: Effect.Effect<unknown, WorldstreamError>) {
  const exit = await Effect.runPromiseExit(effect);
  if (Exit.isSuccess(exit)) return "OK";
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError;
  assert.doesNotMatch(error.message, /\n/);
  return error.reason;
}

Deno.test("the shipped minimized fields file loads against the interface pack", async () => {
  const fields = await Effect.runPromise(loadMinimizedFields(SHIPPED, rows));
  assert.deepEqual(fields.get("s3_flow_anchor_with_fraud_6B"), [
    "party_id",
    "account_id",
    "instrument_id",
    "device_id",
    "ip_id",
  ]);
});

Deno.test("a bad minimized fields file fails with its code and names the problem", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pseudonymize_test_" });
  try {
    const cases: Array<readonly [string, string, RegExp]> = [
      ["outputs: [", "MINIMIZED_FIELDS_INVALID", /Not valid YAML/],
      ["fields: {}", "MINIMIZED_FIELDS_INVALID", /fields: Unexpected key/],
      ["outputs: {no_such_output: [a]}", "MINIMIZED_FIELDS_INVALID", /no such output/],
      [
        "outputs: {s3_flow_anchor_with_fraud_6B: [card_no]}",
        "MINIMIZED_FIELDS_INVALID",
        /card_no: Not a field/,
      ],
      [
        "outputs: {s3_flow_anchor_with_fraud_6B: [amount]}",
        "MINIMIZED_FIELDS_INVALID",
        /amount: Is number/,
      ],
      [
        "outputs: {s3_flow_anchor_with_fraud_6B: [fraud_flag]}",
        "MINIMIZED_FIELDS_INVALID",
        /fraud_flag: Is boolean/,
      ],
      [
        "outputs: {s3_flow_anchor_with_fraud_6B: [ip_id, ip_id]}",
        "MINIMIZED_FIELDS_INVALID",
        /Listed twice/,
      ],
      [
        'outputs: {s3_flow_anchor_with_fraud_6B: ["ip id"]}',
        "MINIMIZED_FIELDS_INVALID",
        /plain column name/,
      ],
    ];
    for (const [i, [text, reason, message]] of cases.entries()) {
      const path = join(dir, `f${i}.yaml`);
      await Deno.writeTextFile(path, text);
      const exit = await Effect.runPromiseExit(loadMinimizedFields(path, rows));
      assert.ok(Exit.isFailure(exit), text);
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error as WorldstreamError;
      assert.equal(error.reason, reason, `${text}: ${error.message}`);
      assert.match(error.message, message, text);
    }
    assert.equal(
      await reasonOf(loadMinimizedFields(join(dir, "absent.yaml"), rows)),
      "MINIMIZED_FIELDS_MISSING",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the pseudonym key comes from the environment and has at least 16 bytes", async () => {
  assert.equal(await reasonOf(pseudonymKeyFromEnv({})), "PSEUDONYM_KEY_MISSING");
  assert.equal(
    await reasonOf(pseudonymKeyFromEnv({ [PSEUDONYM_KEY_ENV]: "" })),
    "PSEUDONYM_KEY_MISSING",
  );
  assert.equal(
    await reasonOf(pseudonymKeyFromEnv({ [PSEUDONYM_KEY_ENV]: "fifteen bytes.." })),
    "PSEUDONYM_KEY_INVALID",
  );
  assert.equal(
    await reasonOf(pseudonymKeyFromEnv({ [PSEUDONYM_KEY_ENV]: "sixteen bytes..." })),
    "OK",
  );
});

const profileOf = (tier: "local" | "minimized" | "full", minimizedFields?: string) => ({
  policy: { privacy_tier: tier } as never,
  paths: { minimizedFields } as never,
});

Deno.test("tier local refuses a gate off loopback and needs no license", async () => {
  const run = (url: string) =>
    authorizePrivacy(profileOf("local"), { igBaseUrl: url, outputIds: [], rows }, {});
  assert.equal(await reasonOf(run("http://192.0.2.2:8081")), "PRIVACY_TIER_FORBIDS_NETWORK");
  assert.equal(await reasonOf(run("http://gate.example")), "PRIVACY_TIER_FORBIDS_NETWORK");
  assert.equal(await reasonOf(run("http://127.0.0.1:8081")), "OK");
  assert.equal(await reasonOf(run("http://localhost:8081")), "OK");
  assert.equal(await reasonOf(checkPrivacyAtStart(profileOf("local"), {})), "OK");
});

Deno.test("tiers above local check the license first, even on loopback", async () => {
  for (const tier of ["minimized", "full"] as const) {
    const run = authorizePrivacy(profileOf(tier, SHIPPED), {
      igBaseUrl: "http://127.0.0.1:1",
      outputIds: [],
      rows,
    }, { [PSEUDONYM_KEY_ENV]: "sixteen bytes..." });
    assert.equal(await reasonOf(run), "LICENSE_MISSING", tier);
    assert.equal(
      await reasonOf(checkPrivacyAtStart(profileOf(tier, SHIPPED), {})),
      "LICENSE_MISSING",
    );
  }
});

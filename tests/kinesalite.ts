/**
 * Test support for the Kinesis control bus: kinesalite (a Kinesis-compatible server, npm
 * `kinesalite`) in a Node process of its own, bound to 127.0.0.1 on a port the OS picks, started
 * and stopped by the test's scope; and a plain Kinesis client for the test's own requests
 * (creating, resharding and writing streams as the platform or an operator would).
 *
 * kinesalite is installed with npm into `.tools/kinesalite` (git-ignored): by `.ci/run`
 * (`deno run -A tests/kinesalite.ts`), or here on first use.
 */
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  MergeShardsCommand,
  PutRecordCommand,
  SplitShardCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { Effect, type Scope } from "effect";
import { REPO, shippedProfile } from "./_testing.ts";

/** The kinesalite release the tests run against. */
export const KINESALITE_VERSION = "3.3.3";
const TOOLS = join(REPO, ".tools", "kinesalite");
const MODULE = join(TOOLS, "node_modules", "kinesalite");

/** Credentials kinesalite accepts (any); worldstream reads them from the environment. */
export const KINESIS_ENV = {
  AWS_ACCESS_KEY_ID: "worldstream-test",
  AWS_SECRET_ACCESS_KEY: "worldstream-test-secret",
  AWS_REGION: "us-east-1",
} as const;

/** Installs kinesalite under `.tools/kinesalite` unless it is there. */
export async function installKinesalite(): Promise<void> {
  if (existsSync(join(MODULE, "package.json"))) return;
  await Deno.mkdir(TOOLS, { recursive: true });
  const out = await new Deno.Command("npm", {
    args: [
      "install",
      "--silent",
      "--no-audit",
      "--no-fund",
      "--prefix",
      TOOLS,
      `kinesalite@${KINESALITE_VERSION}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`npm could not install kinesalite: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A running kinesalite. */
export interface Kinesalite {
  readonly endpoint: string;
  readonly client: KinesisClient;
}

/** Starts kinesalite on 127.0.0.1 for the scope; stopped (and waited for) when it closes. */
export function startKinesalite(): Effect.Effect<Kinesalite, never, Scope.Scope> {
  return Effect.gen(function* () {
    yield* Effect.promise(installKinesalite);
    const server = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        // Streams become ACTIVE, and reshards finish, at once.
        const script = `const k = require(${JSON.stringify(MODULE)});
const s = k({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 50 });
s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
        const child = new Deno.Command("node", {
          args: ["-e", script],
          stdin: "null",
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        while (!text.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          text += value;
        }
        await reader.cancel();
        const port = Number(text.trim());
        if (!Number.isInteger(port) || port <= 0) throw new Error(`kinesalite said ${text}`);
        return { child, port };
      }),
      ({ child }) =>
        Effect.promise(async () => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Already gone.
          }
          await child.status;
        }),
    );
    const endpoint = `http://127.0.0.1:${server.port}`;
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new KinesisClient({
          endpoint,
          region: KINESIS_ENV.AWS_REGION,
          credentials: {
            accessKeyId: KINESIS_ENV.AWS_ACCESS_KEY_ID,
            secretAccessKey: KINESIS_ENV.AWS_SECRET_ACCESS_KEY,
          },
          requestHandler: new NodeHttpHandler(),
        })
      ),
      (c) => Effect.sync(() => c.destroy()),
    );
    return { endpoint, client };
  });
}

/** Creates a stream of `shards` shards and waits until it is ACTIVE. */
export async function createStream(k: Kinesalite, name: string, shards: number): Promise<void> {
  await k.client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await untilActive(k, name);
}

async function untilActive(k: Kinesalite, name: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    const d = await k.client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (d.StreamDescriptionSummary?.StreamStatus === "ACTIVE") return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`stream ${name} not ACTIVE after 10 s`);
}

/** Puts raw bytes (or text) on a stream; returns the shard and sequence number. */
export async function putRecord(
  k: Kinesalite,
  stream: string,
  data: string | Uint8Array,
  partitionKey: string,
): Promise<{ shardId: string; sequenceNumber: string }> {
  const r = await k.client.send(
    new PutRecordCommand({
      StreamName: stream,
      Data: typeof data === "string" ? new TextEncoder().encode(data) : data,
      PartitionKey: partitionKey,
    }),
  );
  return { shardId: r.ShardId!, sequenceNumber: r.SequenceNumber! };
}

/** Every record on a stream's open shards, from TRIM_HORIZON: partition key and data as text. */
export async function readRecords(
  k: Kinesalite,
  stream: string,
): Promise<Array<{ shardId: string; partitionKey: string; data: string }>> {
  const out: Array<{ shardId: string; partitionKey: string; data: string }> = [];
  for (const shard of await listShards(k, stream)) {
    let iterator = (await k.client.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shard.shardId,
        ShardIteratorType: "TRIM_HORIZON",
      }),
    )).ShardIterator;
    while (iterator !== undefined) {
      const page = await k.client.send(new GetRecordsCommand({ ShardIterator: iterator }));
      for (const r of page.Records ?? []) {
        out.push({
          shardId: shard.shardId,
          partitionKey: r.PartitionKey ?? "",
          data: new TextDecoder().decode(r.Data),
        });
      }
      // An open shard always has a next iterator: stop once it is read to its tip.
      iterator = (page.Records ?? []).length === 0 ? undefined : page.NextShardIterator;
    }
  }
  return out;
}

/** The ids of every shard of a stream, with their parents. */
export async function listShards(k: Kinesalite, stream: string) {
  const r = await k.client.send(new ListShardsCommand({ StreamName: stream }));
  return (r.Shards ?? []).map((s) => ({
    shardId: s.ShardId!,
    parent: s.ParentShardId,
    adjacentParent: s.AdjacentParentShardId,
    closed: s.SequenceNumberRange?.EndingSequenceNumber !== undefined,
  }));
}

/** Splits a shard in two at the middle of the hash key space; waits until ACTIVE again. */
export async function splitShard(k: Kinesalite, stream: string, shardId: string): Promise<void> {
  await k.client.send(
    new SplitShardCommand({
      StreamName: stream,
      ShardToSplit: shardId,
      NewStartingHashKey: (2n ** 127n).toString(),
    }),
  );
  await untilActive(k, stream);
}

/** Merges two adjacent shards; waits until ACTIVE again. */
export async function mergeShards(
  k: Kinesalite,
  stream: string,
  shardId: string,
  adjacent: string,
): Promise<void> {
  await k.client.send(
    new MergeShardsCommand({
      StreamName: stream,
      ShardToMerge: shardId,
      AdjacentShardToMerge: adjacent,
    }),
  );
  await untilActive(k, stream);
}

// kinesalite's iterator: 8 bytes of version, then AES-256-CBC of
// "<14-digit ms>/<stream>/<shard>/<sequence>/<zeros>" under its fixed key (db/index.js).
const ITERATOR_KEY = Buffer.from(
  "1133a5a833666b49abf28c8ba302930f0b2fb240dccd43cf4dfbc0ca91f17751",
  "hex",
);
const ITERATOR_IV = Buffer.from("7bf139dbabbea2d9995d6fcae1dff7da", "hex");

/**
 * A real TRIM_HORIZON iterator of `shardId`, aged by `ageMs` (kinesalite expires iterators
 * after 5 minutes, as Kinesis does): what a listener holds after a long pause.
 */
export async function agedIterator(
  k: Kinesalite,
  stream: string,
  shardId: string,
  ageMs: number,
): Promise<string> {
  const r = await k.client.send(
    new GetShardIteratorCommand({
      StreamName: stream,
      ShardId: shardId,
      ShardIteratorType: "TRIM_HORIZON",
    }),
  );
  const bytes = Buffer.from(r.ShardIterator!, "base64");
  const decipher = createDecipheriv("aes-256-cbc", ITERATOR_KEY, ITERATOR_IV);
  const plain = Buffer.concat([decipher.update(bytes.subarray(8)), decipher.final()]).toString();
  const [time, ...rest] = plain.split("/");
  const aged = [String(Number(time) - ageMs).padStart(14, "0"), ...rest].join("/");
  const cipher = createCipheriv("aes-256-cbc", ITERATOR_KEY, ITERATOR_IV);
  return Buffer.concat([bytes.subarray(0, 8), cipher.update(aged, "utf8"), cipher.final()])
    .toString("base64");
}

if (import.meta.main) {
  await installKinesalite();
  console.log(`kinesalite ${KINESALITE_VERSION} in ${TOOLS}`);
}

/**
 * profiles/local_parity.yaml as a site runs it against kinesalite: the Kinesis control bus at
 * `endpoint`, PGlite in `pgliteDir`, the gate at `igUrl`, run facts under the runs root, refs
 * made absolute so the copy works from any folder. Returns the written path.
 */
export function kinesisProfile(path: string, options: {
  readonly endpoint: string;
  readonly stream: string;
  readonly runsRoot: string;
  readonly pgliteDir: string;
  readonly igUrl: string;
  readonly pollIntervalMs?: number;
  /** `wiring.bootstrap` instead of the shipped one (mode, poll interval, timeout). */
  readonly bootstrap?: {
    readonly mode: "edge" | "backend";
    readonly poll_interval_seconds: number;
    readonly timeout_seconds: number;
  };
}): string {
  const profile = shippedProfile("local_parity");
  profile.wiring.runs_root = options.runsRoot;
  profile.wiring.control_bus = {
    kind: "kinesis",
    topic: "fp.bus.control.v1",
    stream: options.stream,
    region: KINESIS_ENV.AWS_REGION,
    endpoint_url: options.endpoint,
    ...(options.pollIntervalMs ? { poll_interval_ms: options.pollIntervalMs } : {}),
  };
  profile.wiring.database = { backend: "pglite", pglite_dir: options.pgliteDir };
  profile.wiring.ig_ingest_url = options.igUrl;
  if (options.bootstrap) profile.wiring.bootstrap = options.bootstrap;
  // Run facts in the runs root, not the parity default s3://fraud-platform (no S3 here).
  profile.wiring.object_store = { root: options.runsRoot };
  Deno.writeTextFileSync(path, stringify(profile));
  return path;
}

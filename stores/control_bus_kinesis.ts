/**
 * The Kinesis control bus: the only module that talks to Kinesis (`@aws-sdk/client-kinesis`). A
 * record's Data is the same control-bus envelope JSON as a file on the file bus; the platform's
 * Scenario Runner puts it with PartitionKey = the envelope's partition_key (the platform run id),
 * or its message_id when it has none (`scenario_runner/bus.py`).
 *
 * Requests go over HTTP/1.1 (`NodeHttpHandler`), which S3-compatible and Kinesis-compatible
 * servers on `http://` endpoints (kinesalite) need. Credentials and, unless the profile names
 * one, the region come from the AWS default provider chain (the environment), never a file here.
 * Every failure is one reason code naming the stream (and shard): a stream that does not exist
 * CONTROL_BUS_STREAM_MISSING, throttling CONTROL_BUS_THROTTLED, an expired iterator
 * CONTROL_BUS_ITERATOR_EXPIRED, anything else CONTROL_BUS_UNAVAILABLE; the listener decides what
 * each means for its shard (actors/control_bus_kinesis.ts).
 */
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { Context, Effect, Layer } from "effect";
import { fail, type WorldstreamError } from "../schemas/errors.ts";

/** Where the stream is (see core/profile.ts `kinesisBusOf`). */
export interface KinesisBusConfig {
  readonly stream: string;
  readonly region?: string | undefined;
  readonly endpoint?: string | undefined;
}

/** One shard as ListShards describes it. */
export interface KinesisShard {
  readonly shardId: string;
  /** The shards it was split or merged from; read to their end before this one is read. */
  readonly parents: ReadonlyArray<string>;
}

/** One record of a shard. */
export interface KinesisRecord {
  readonly sequenceNumber: string;
  readonly data: Uint8Array;
  readonly partitionKey: string;
  /** When Kinesis took the record (epoch ms), if it says. */
  readonly arrivedAt: number | undefined;
}

/** One GetRecords answer. */
export interface KinesisPage {
  readonly records: ReadonlyArray<KinesisRecord>;
  /** Undefined once a closed shard has been read to its end. */
  readonly next: string | undefined;
  /** 0 when the page reached the shard's tip. */
  readonly millisBehindLatest: number | undefined;
}

/** Where PutRecord put a record. */
export interface PutResult {
  readonly shardId: string;
  readonly sequenceNumber: string;
}

/** The Kinesis control bus of one stream. */
export class KinesisBus extends Context.Service<KinesisBus, {
  readonly stream: string;
  /** Fails CONTROL_BUS_STREAM_MISSING unless the stream exists. */
  readonly check: Effect.Effect<void, WorldstreamError>;
  /** Every shard of the stream, open and closed, in creation order. */
  readonly shards: Effect.Effect<ReadonlyArray<KinesisShard>, WorldstreamError>;
  /** An iterator at the shard's oldest record, or just after `after` (a sequence number). */
  readonly iterator: (
    shardId: string,
    after: string | undefined,
  ) => Effect.Effect<string, WorldstreamError>;
  /** One page of records from `iterator`. */
  readonly records: (
    shardId: string,
    iterator: string,
    limit: number,
  ) => Effect.Effect<KinesisPage, WorldstreamError>;
  /** Puts one record. */
  readonly put: (
    data: Uint8Array,
    partitionKey: string,
  ) => Effect.Effect<PutResult, WorldstreamError>;
}>()("worldstream/stores/KinesisBus") {
  /** A client for `config`, destroyed (its sockets closed) when the scope closes. */
  static readonly layer = (config: KinesisBusConfig): Layer.Layer<KinesisBus> =>
    Layer.effect(KinesisBus, make(config));
}

const make = (config: KinesisBusConfig) =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new KinesisClient({
          ...(config.region ? { region: config.region } : {}),
          ...(config.endpoint ? { endpoint: config.endpoint } : {}),
          requestHandler: new NodeHttpHandler({ connectionTimeout: 3000, requestTimeout: 10_000 }),
          // Throttling is backed off per shard by the listener, which knows what else to read.
          maxAttempts: 2,
        })
      ),
      (c) => Effect.sync(() => c.destroy()),
    );
    const stream = config.stream;
    const where = `Kinesis stream ${stream}${config.endpoint ? ` at ${config.endpoint}` : ""}`;
    const call = <A>(what: string, send: () => Promise<A>) =>
      Effect.tryPromise({ try: send, catch: (e) => kinesisError(e, what, where) });

    const check = call("describe", () =>
      client.send(new DescribeStreamSummaryCommand({ StreamName: stream }))).pipe(Effect.asVoid);

    const shards = Effect.gen(function* () {
      const out: Array<KinesisShard> = [];
      let token: string | undefined;
      do {
        const page = yield* call("list the shards of", () =>
          client.send(
            new ListShardsCommand(token ? { NextToken: token } : { StreamName: stream }),
          ));
        for (const s of page.Shards ?? []) {
          if (!s.ShardId) {
            continue;
          }
          const parents = [s.ParentShardId, s.AdjacentParentShardId].filter(
            (p): p is string =>
              typeof p === "string" && p !== "",
          );
          out.push({ shardId: s.ShardId, parents });
        }
        token = page.NextToken;
      } while (token);
      return out as ReadonlyArray<KinesisShard>;
    });

    const iterator = (shardId: string, after: string | undefined) =>
      call(`get an iterator of shard ${shardId} of`, () =>
        client.send(
          new GetShardIteratorCommand({
            StreamName: stream,
            ShardId: shardId,
            ...(after === undefined
              ? { ShardIteratorType: "TRIM_HORIZON" }
              : { ShardIteratorType: "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber: after }),
          }),
        )).pipe(
          Effect.flatMap((r) =>
            r.ShardIterator ? Effect.succeed(r.ShardIterator) : Effect.fail(
              fail("CONTROL_BUS_UNAVAILABLE", `${where} gave no iterator for shard ${shardId}`),
            )
          ),
        );

    const records = (shardId: string, it: string, limit: number) =>
      call(`read shard ${shardId} of`, () =>
        client.send(new GetRecordsCommand({ ShardIterator: it, Limit: limit }))).pipe(
          Effect.map((r): KinesisPage => ({
            records: (r.Records ?? []).map((x) => ({
              sequenceNumber: x.SequenceNumber ?? "",
              data: x.Data ?? new Uint8Array(),
              partitionKey: x.PartitionKey ?? "",
              arrivedAt: x.ApproximateArrivalTimestamp?.getTime(),
            })),
            next: r.NextShardIterator ?? undefined,
            millisBehindLatest: r.MillisBehindLatest,
          })),
        );

    const put = (data: Uint8Array, partitionKey: string) =>
      call("put a record on", () =>
        client.send(
          new PutRecordCommand({ StreamName: stream, Data: data, PartitionKey: partitionKey }),
        )).pipe(
          Effect.map((r) => ({ shardId: r.ShardId ?? "", sequenceNumber: r.SequenceNumber ?? "" })),
        );

    return KinesisBus.of({ stream, check, shards, iterator, records, put });
  });

function kinesisError(e: unknown, what: string, where: string): WorldstreamError {
  const name = (e as { name?: unknown } | null)?.name;
  const text = (e instanceof Error ? e.message : String(e)).split("\n")[0];
  switch (name) {
    case "ResourceNotFoundException":
      return fail("CONTROL_BUS_STREAM_MISSING", `${where} does not exist (could not ${what} it)`);
    case "ProvisionedThroughputExceededException":
    case "LimitExceededException":
      return fail("CONTROL_BUS_THROTTLED", `${where} throttled a request to ${what} it: ${text}`);
    case "ExpiredIteratorException":
      return fail("CONTROL_BUS_ITERATOR_EXPIRED", `Could not ${what} ${where}: ${text}`);
    default:
      return fail(
        "CONTROL_BUS_UNAVAILABLE",
        `Could not ${what} ${where}: ${typeof name === "string" ? `${name}: ` : ""}${text}`,
      );
  }
}

/**
 * s3rver (an S3-compatible server, npm `s3rver`) for tests: started on 127.0.0.1 on a port it
 * picks, with the buckets asked for, stopped and waited for when the test's scope closes. It is
 * installed in `.tools/s3rver` (`.ci/run` does it on a fresh machine:
 * `npm install --prefix .tools/s3rver s3rver@3.7.1`). s3rver checks request signatures against
 * its fixed credentials S3RVER / S3RVER.
 */
import { Effect, type Scope } from "effect";
import { join, relative } from "node:path";
import { REPO } from "./_testing.ts";
import { makeS3, type S3 } from "../stores/s3_client.ts";

/** Where `.ci/run` installs s3rver. */
export const S3RVER_BIN = join(REPO, ".tools/s3rver/node_modules/s3rver/bin/s3rver.js");

/** The credentials s3rver accepts, as worldstream reads them (the environment). */
export const S3RVER_ENV = {
  AWS_ACCESS_KEY_ID: "S3RVER",
  AWS_SECRET_ACCESS_KEY: "S3RVER",
  AWS_REGION: "us-east-1",
};

/** A running s3rver. */
export interface RunningS3rver {
  readonly endpoint: string;
  /** A client for the test's own uploads and checks. */
  readonly s3: S3;
}

/** Starts s3rver with `buckets` in `dir`; stopped when the scope closes. */
export function startS3rver(
  dir: string,
  buckets: ReadonlyArray<string>,
): Effect.Effect<RunningS3rver, never, Scope.Scope> {
  return Effect.acquireRelease(
    Effect.promise(async () => {
      await Deno.stat(S3RVER_BIN).catch(() => {
        throw new Error(
          `s3rver is not installed at ${S3RVER_BIN}: run .ci/run, or npm install --prefix .tools/s3rver s3rver@3.7.1`,
        );
      });
      const child = new Deno.Command("node", {
        args: [
          S3RVER_BIN,
          "-d",
          dir,
          "-a",
          "127.0.0.1",
          "-p",
          "0",
          ...buckets.flatMap((b) => ["--configure-bucket", b]),
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // Both streams are read to their end (s3rver logs every request; a full pipe would stall it).
      let seen = "";
      let ready: (port: number) => void = () => {};
      const port = new Promise<number>((resolve) => (ready = resolve));
      const drain = async (stream: ReadableStream<Uint8Array>) => {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
          seen = (seen + chunk).slice(-4000);
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
          if (m) ready(Number(m[1]));
        }
      };
      const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
      const exited = child.status;
      const first = await Promise.race([
        port,
        exited.then((s) => new Error(`s3rver exited (${s.code}) before listening: ${seen}`)),
        new Promise<Error>((resolve) => {
          const t = setTimeout(() => resolve(new Error(`s3rver did not start: ${seen}`)), 20_000);
          port.then(() => clearTimeout(t), () => clearTimeout(t));
          exited.then(() => clearTimeout(t));
        }),
      ]);
      if (first instanceof Error) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await Promise.all([exited, drained]);
        throw first;
      }
      const endpoint = `http://127.0.0.1:${first}`;
      for (const [k, v] of Object.entries(S3RVER_ENV)) Deno.env.set(k, v);
      return { endpoint, s3: makeS3({ endpoint, pathStyle: true }), child, exited, drained };
    }),
    ({ s3, child, exited, drained }) =>
      Effect.promise(async () => {
        s3.close();
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        await Promise.all([exited, drained]);
      }),
  ).pipe(Effect.map(({ endpoint, s3 }) => ({ endpoint, s3 })));
}

/** Uploads every file under local folder `from` to `s3://bucket/prefix/…`. */
export function uploadTree(s3: S3, from: string, bucket: string, prefix: string) {
  return Effect.gen(function* () {
    const files: Array<string> = [];
    const walk = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        const path = join(dir, e.name);
        if (e.isDirectory) await walk(path);
        else if (e.isFile) files.push(path);
      }
    };
    yield* Effect.promise(() => walk(from));
    yield* Effect.forEach(files, (path) =>
      Effect.promise(() => Deno.readFile(path)).pipe(
        Effect.flatMap((bytes) => s3.put(bucket, `${prefix}/${relative(from, path)}`, bytes)),
      ), { concurrency: 8, discard: true });
    return files.length;
  }).pipe(Effect.orDie);
}

/**
 * Test support: a private Postgres server (scripts/pg_cluster.sh) on a free loopback port with a
 * data folder of the test's own, stopped when the test's scope closes, and stoppable and
 * startable in between (`pg_ctl stop -m fast`), for tests of Postgres going away under a run.
 */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { freePort, REPO } from "./_testing.ts";

const PG_CLUSTER = join(REPO, "scripts", "pg_cluster.sh");

/** Whether pg_cluster.sh can find initdb and pg_ctl here. */
export function havePostgresTools(): boolean {
  const dirs = ["/usr/lib/postgresql/15/bin", ...(Deno.env.get("PATH") ?? "").split(":")];
  if (Deno.env.get("PG_BIN")) dirs.unshift(Deno.env.get("PG_BIN")!);
  return ["pg_ctl", "initdb"].every((tool) =>
    dirs.some((d) => {
      try {
        return statSync(join(d, tool)).isFile();
      } catch {
        return false;
      }
    })
  );
}

function pgCluster(...args: ReadonlyArray<string>) {
  return Effect.promise(async () => {
    const out = await new Deno.Command("bash", {
      args: [PG_CLUSTER, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(
      out.success,
      `pg_cluster.sh ${args.join(" ")}: ${text}${new TextDecoder().decode(out.stderr)}`,
    );
    return text;
  });
}

/** A running private cluster. */
export interface PrivateCluster {
  readonly url: string;
  /** `pg_ctl stop -m fast`: every connection is terminated, new ones are refused. */
  readonly stop: Effect.Effect<string>;
  /** Starts it again on the same port and data folder. */
  readonly start: Effect.Effect<string>;
}

/** A private Postgres server in `dir` on a free port, stopped when the scope closes. */
export function privateCluster(dir: string) {
  const port = String(freePort());
  return Effect.acquireRelease(
    pgCluster("start", dir, port).pipe(Effect.map((text): PrivateCluster => {
      const url = text.match(/^DATABASE_URL=(\S+)$/m)?.[1];
      assert.ok(url, `pg_cluster.sh printed no DATABASE_URL: ${text}`);
      return { url, stop: pgCluster("stop", dir), start: pgCluster("start", dir, port) };
    })),
    () => pgCluster("stop", dir).pipe(Effect.ignore),
  );
}

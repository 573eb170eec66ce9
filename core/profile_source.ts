/**
 * Where a profile lives, and a look ahead at the one setting a runtime wants before its modules
 * have loaded: the PGlite folder. Light on purpose (no Effect, no schema): main.ts reads it as
 * its first step to start PGlite's process early (see cli/early_start.ts).
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { type Env, interpolateTree } from "./profile_interpolate.ts";

const PROFILES_DIR = new URL("../profiles/", import.meta.url);
const BARE_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * The profile a command loads: the `--profile` value, else the `WORLDSTREAM_PROFILE` environment
 * variable (how a container picks one: an exec-form entrypoint cannot expand a variable into a
 * flag), else `local`.
 */
export function profileName(flag: string | boolean | undefined, env: Env): string {
  if (typeof flag === "string") return flag;
  const fromEnv = env.WORLDSTREAM_PROFILE;
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : "local";
}

/** The profile file: a bare name like `local` means profiles/local.yaml here, else a path. */
export function profileSource(pathOrName: string): string {
  return BARE_NAME.test(pathOrName)
    ? fileURLToPath(new URL(`${pathOrName}.yaml`, PROFILES_DIR))
    : resolve(pathOrName);
}

/**
 * The PGlite folder the profile's runtime will open (absolute), or `undefined` when its database
 * is not PGlite or the profile cannot be read this way. Only a guess made ahead of time:
 * loadProfile decodes and checks the profile, and a PGlite started early is used only when the
 * loaded profile names the same folder (stores/pglite_channel.ts).
 */
export function peekPgliteDir(pathOrName: string, env: Env): string | undefined {
  try {
    const doc = parse(Deno.readTextFileSync(profileSource(pathOrName))) as {
      wiring?: { database?: unknown };
    };
    const database = interpolateTree(doc?.wiring?.database, env);
    if (!database.ok) return undefined;
    const { backend, pglite_dir } = (database.value ?? {}) as Record<string, unknown>;
    return backend === "pglite" && typeof pglite_dir === "string" && pglite_dir !== ""
      ? resolve(pglite_dir)
      : undefined;
  } catch {
    return undefined;
  }
}

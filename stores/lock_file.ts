/**
 * Lock files that name their holder: an exclusive flock, taken without waiting, on a file that
 * then holds `{"pid": N}`. A process that finds the lock taken can say at once who holds it,
 * instead of waiting in silence for it to go. The OS drops the lock when its holder dies, so a
 * held lock always means a live holder; the pid inside may be stale, never the lock.
 */
import { writeAll } from "./durable_file.ts";

/** What {@link tryLockFile} found: the lock (now ours), or the pid of the process holding it. */
export type LockAttempt =
  | { readonly locked: true; readonly file: Deno.FsFile }
  | { readonly locked: false; readonly holder: number | undefined };

/**
 * Takes the exclusive lock on `path` (created if missing) and writes this process's pid into it;
 * the lock is held until the returned file is closed. When another process holds it, answers its
 * pid (`undefined` if it has not written it yet).
 */
export async function tryLockFile(path: string): Promise<LockAttempt> {
  const file = await Deno.open(path, { create: true, read: true, write: true });
  try {
    if (!(await file.tryLock(true))) {
      file.close();
      return { locked: false, holder: await lockHolder(path) };
    }
    await file.truncate(0);
    await writeAll(file, new TextEncoder().encode(JSON.stringify({ pid: Deno.pid })));
    return { locked: true, file };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** The pid a lock file names, when it names one. */
export async function lockHolder(path: string): Promise<number | undefined> {
  try {
    const pid = (JSON.parse(await Deno.readTextFile(path)) as { pid?: unknown }).pid;
    return typeof pid === "number" && Number.isSafeInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Small files that must survive a crash whole (the WAL's drained position, the drained receipt
 * head, the READY-ledger summary): written beside, fsynced, renamed over, and the folder fsynced,
 * so a reader finds either the old content or the new one, never a mix.
 */
import { dirname } from "node:path";

/** Writes all of `bytes` at the file's position (one write may take only part of them). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/** fsyncs a folder so that files created, renamed or removed in it survive a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

/** Replaces `path` with `bytes` atomically and durably, making its folder if needed. */
export async function replaceFileDurably(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp`;
  const handle = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(handle, bytes);
    await handle.syncData();
  } finally {
    handle.close();
  }
  await Deno.rename(tmp, path);
  await syncDir(dir);
}

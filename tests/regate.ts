/**
 * Test support: re-gates a generated world after a test changed its parts, as an engine that
 * validated the changed data would, so a test of what comes after the gates (a corrupt part, a bad
 * ts_utc) reaches that check instead of stopping at OUTPUT_PARTS_MISMATCH. Each bundle's part
 * list is re-read from disk (parts gone are dropped), and its index and flag are rewritten in the
 * formats gen-world writes (stores/gate_verify.ts checks them).
 */
import { dirname, join } from "node:path";
import { sha256Hex } from "../core/hash.ts";

type Json = Record<string, unknown>;
interface FileEntry {
  path: string;
  sha256_hex: string;
  size_bytes: number;
}

/** Re-gates the world at `root` (see the file comment). */
export async function regate(root: string): Promise<void> {
  for (const bundle of await bundles(root)) {
    const reportPath = join(bundle, "validation_report.json");
    const report = JSON.parse(await Deno.readTextFile(reportPath)) as Json;
    for (const output of report.outputs as Array<{ files: Array<FileEntry> }>) {
      const files: Array<FileEntry> = [];
      for (const f of output.files) {
        const bytes = await Deno.readFile(join(root, f.path)).catch(() => undefined);
        if (bytes !== undefined) {
          files.push({ path: f.path, sha256_hex: sha256Hex(bytes), size_bytes: bytes.length });
        }
      }
      output.files = files;
    }
    const text = `${JSON.stringify(report, null, 2)}\n`;
    await Deno.writeTextFile(reportPath, text);
    const digest = sha256Hex(text);
    const indexPath = join(bundle, "index.json");
    const index = JSON.parse(await Deno.readTextFile(indexPath)) as Json;
    for (const key of ["items", "entries"]) {
      if (Array.isArray(index[key])) {
        index[key] = [{ path: "validation_report.json", sha256_hex: digest }];
      }
    }
    await Deno.writeTextFile(indexPath, `${JSON.stringify(index, null, 2)}\n`);
    const flagPath = join(bundle, "_passed.flag");
    const flag = await Deno.readTextFile(flagPath);
    await Deno.writeTextFile(
      flagPath,
      flag.trim().startsWith("{")
        ? JSON.stringify({ ...JSON.parse(flag), bundle_digest_sha256: digest })
        : `sha256_hex = ${digest}\n`,
    );
  }
}

/** Re-gates the world that holds `path` (the nearest folder above it with a run receipt). */
export async function regateAt(path: string): Promise<void> {
  let dir = dirname(path);
  while (!(await Deno.stat(join(dir, "run_receipt.json")).then(() => true, () => false))) {
    if (dirname(dir) === dir) throw new Error(`${path} is in no world`);
    dir = dirname(dir);
  }
  await regate(dir);
}

/** The folders under `root`'s data that hold a gen-world validation report. */
async function bundles(root: string): Promise<Array<string>> {
  const found: Array<string> = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(join(dir, e.name));
      else if (e.name === "validation_report.json") found.push(dir);
    }
  };
  await walk(join(root, "data"));
  return found;
}

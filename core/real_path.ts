/**
 * Where a path really leads, symlinks resolved: a check that a file stays inside its root is only
 * worth something on the real path, since a link inside the root may point anywhere.
 */
import { basename, dirname, join } from "node:path";

/**
 * The real path of absolute `path`; for one that does not exist (yet), the real path of its
 * nearest existing ancestor joined with the rest, so a missing file still resolves to where it
 * would be.
 */
export async function realPathOf(path: string): Promise<string> {
  const rest: Array<string> = [];
  let head = path;
  while (true) {
    try {
      return join(await Deno.realPath(head), ...rest);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
      const parent = dirname(head);
      if (parent === head) return path;
      rest.unshift(basename(head));
      head = parent;
    }
  }
}

/** Whether real path `path` is `root` or inside it (both real, absolute, normalized). */
export function isWithin(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : `${root}/`);
}

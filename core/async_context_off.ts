/**
 * Keeps Effect from tracking node:async_hooks contexts. Import this before anything that loads
 * `effect`, as the first import of an entry point.
 *
 * Effect 4.1 wraps every fiber suspension in an `AsyncResource` when `process.getBuiltinModule`
 * offers one, so async_hooks consumers see fibers as async resources. worldstream uses no
 * AsyncLocalStorage, and on Deno 2.9.6 each resumed resource stays reachable from the next:
 * about 0.45 KB of heap per fiber wait that is never freed (a 5M-event stream grew by 100+ MB),
 * plus the cost of `runInAsyncScope` on every resume. Effect reads the module once, as it
 * loads, so hiding it during that load is enough; `restoreAsyncHooks` puts it back after.
 */
type GetBuiltin = (id: string) => unknown;
const proc = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process;
const original = proc?.getBuiltinModule;

if (proc !== undefined && original !== undefined) {
  proc.getBuiltinModule = (id: string) =>
    id === "node:async_hooks" || id === "async_hooks" ? undefined : original.call(proc, id);
}

/** Gives `process.getBuiltinModule` its own behaviour back, once `effect` has loaded. */
export function restoreAsyncHooks(): void {
  if (proc !== undefined && original !== undefined) proc.getBuiltinModule = original;
}

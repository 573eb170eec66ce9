/**
 * A request body read whole, but never past a byte limit: the JSON bodies of the admin routes
 * (api/app.ts, 413 beyond the limit) and the dashboard's login form (api/routes/dashboard.ts)
 * both stop reading the moment a body passes their limit, with or without a Content-Length.
 */

/** The body's bytes (empty without a body), or `undefined` once it passes `limit` bytes. */
export async function readBounded(
  request: Request,
  limit: number,
): Promise<Uint8Array | undefined> {
  if (request.body === null) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Array<Uint8Array> = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

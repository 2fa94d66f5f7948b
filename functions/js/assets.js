// One static asset read through the Worker's `[assets]` binding, in one call
// from wasm (`functions/src/assets.rs`): the binding's `fetch`, then the
// whole body. Resolves to `{ status, body }`, or to `null` when the binding
// is not there; rejects when the binding's fetch fails.
export function fetchAsset(env, binding, path) {
  const assets = env[binding];
  if (!assets || typeof assets.fetch !== "function") {
    return Promise.resolve(null);
  }
  // The binding resolves the path alone; the host is never contacted.
  return assets
    .fetch(new Request(new URL(path, "https://assets.invalid")))
    .then((response) =>
      response.arrayBuffer().then((buffer) => ({
        status: response.status,
        body: new Uint8Array(buffer),
      })),
    );
}

// The usage queue's producer in one call from wasm (`functions/src/queue_producer.rs`):
// `queue.sendBatch` with each body as JSON text.
//
// Through `worker::Queue::send_batch`, every body and its options went
// through serde-wasm-bindgen: its serializer was kilobytes of the Worker's
// wasm for strings that are already JSON, and each message cost several
// crossings between wasm and JavaScript.

// The producer binding `name` of `env`, or `undefined` when it is not bound.
export function queueBinding(env, name) {
  const queue = env[name];
  return queue !== null && typeof queue === "object" && typeof queue.sendBatch === "function"
    ? queue
    : undefined;
}

// Sends `bodies` (each a message's JSON text) as one batch, each as a JSON
// message whose body is that text, as `worker`'s `send_batch` of a `String`
// did. Resolves when the queue took them; rejects (or throws, for a batch it
// refuses outright) otherwise.
export function sendBodies(queue, bodies) {
  return queue.sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
}

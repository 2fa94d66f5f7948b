// One REST subrequest in one call from wasm (`functions/src/rest.rs`).
//
// Built from Rust through `worker`'s wrappers, the same call crossed between
// wasm and JavaScript a few dozen times: once per header set, per
// `RequestInit` field, per promise and its two callbacks, for the abort
// controller and the timer. Here the request, the timeout and the body read
// are plain JavaScript, and wasm sees one promise and one answer.
//
// `headerLines` holds name and value alternately, each ended by "\n"; no
// header name or value may contain a line break (`rest.rs` checks, as
// `Headers` would refuse one).
export function restCall(url, method, headerLines, body, timeoutMs) {
  const headers = new Headers();
  const parts = headerLines.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) {
    headers.set(parts[i], parts[i + 1]);
  }
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const init = { method, headers, signal: controller.signal };
  if (body !== undefined) {
    init.body = body;
  }
  // Built before `fetch`, so a malformed request throws here, at once,
  // instead of rejecting like a failed connection would.
  let request;
  try {
    request = new Request(url, init);
  } catch (error) {
    clearTimeout(timer);
    throw error;
  }
  return fetch(request)
    .then((response) =>
      response.arrayBuffer().then((buffer) => ({
        status: response.status,
        body: new Uint8Array(buffer),
      })),
    )
    .then(
      (answer) => {
        clearTimeout(timer);
        return answer;
      },
      (error) => {
        clearTimeout(timer);
        throw timedOut ? new RestTimeout(timeoutMs) : error;
      },
    );
}

// No answer within the timeout (`rest.rs` tells it from a network failure).
class RestTimeout extends Error {
  constructor(timeoutMs) {
    super(`timed out after ${timeoutMs} ms`);
    this.name = "RestTimeout";
  }
}

// One REST subrequest in one call from wasm (`functions/src/rest.rs`).
//
// Built from Rust through `worker`'s wrappers, the same call crossed between
// wasm and JavaScript a few dozen times: once per header set, per
// `RequestInit` field, per promise and its two callbacks, for the abort
// controller and the timer. Here the request, the timeout and the body read
// are plain JavaScript, and wasm sees one promise and one answer.
//
// The request is handed to `fetch` as a URL and a plain init, its headers a
// plain object, as a TypeScript Worker would write it: a `Headers` filled one
// `set` at a time and a `Request` built before `fetch` cost the runtime a
// native call per header and a second request object (8 % of the
// isolate's samples in a V8 profile of this Worker in workerd). Nothing here can
// make a malformed request: the URL is the configured project's (checked
// when the configuration is read), and `rest.rs` refuses a header with a
// line break before calling.
//
// `headerLines` holds name and value alternately, each ended by "\n"; no
// header name or value may contain a line break (`rest.rs` checks, as
// `Headers` would refuse one). A repeated name keeps its last value, as
// `Headers.set` would.
export function restCall(url, method, headerLines, body, timeoutMs) {
  const headers = {};
  const parts = headerLines.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) {
    headers[parts[i]] = parts[i + 1];
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
  let answered;
  try {
    answered = fetch(url, init);
  } catch (error) {
    clearTimeout(timer);
    throw error;
  }
  return answered
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

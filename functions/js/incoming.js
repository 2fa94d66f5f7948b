// What `functions/src/incoming.rs` reads of a request, in one call from
// wasm: whether it has a body, the method, the URL and every header, as
// lines. Read one by one through `worker`'s wrappers, they cost a crossing
// between wasm and JavaScript each (and the wrapper reads `cf` and more that
// the edge never looks at).
//
// None of these can hold a line break: the URL parser drops them, and
// header names and values may not contain one. Names come lower-cased, and
// a repeated header once, its values joined by ", " (as `Headers.get`).
export function readRequest(request) {
  let text = (request.body === null ? "0\n" : "1\n") + request.method + "\n" + request.url + "\n";
  for (const [name, value] of request.headers) {
    text += name + "\n" + value + "\n";
  }
  return text;
}

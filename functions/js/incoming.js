// What `functions/src/incoming.rs` reads of a request, in one call from
// wasm: whether it has a body, the method, the URL and the headers the edge
// reads (`names`, one per line: `incoming::HEADERS`), as lines. Read one by
// one through `worker`'s wrappers, they cost a crossing between wasm and
// JavaScript each (and the wrapper reads `cf` and more that the edge never
// looks at); copying every header the client sent cost more than looking up
// the few the edge uses.
//
// None of these can hold a line break: the URL parser drops them, and
// header names and values may not contain one. Each named header is one
// line: empty when absent, else "=" and its value; a repeated header's
// values come joined by ", " (`Headers.get`), and names match in any case.
let cachedNames = null;
let cachedList = [];

export function readRequest(request, names) {
  if (names !== cachedNames) {
    cachedList = names.split("\n");
    cachedNames = names;
  }
  const headers = request.headers;
  let text = (request.body === null ? "0\n" : "1\n") + request.method + "\n" + request.url + "\n";
  for (const name of cachedList) {
    const value = headers.get(name);
    text += value === null ? "\n" : "=" + value + "\n";
  }
  return text;
}

// What `functions/src/incoming.rs` reads of a request, in one call from
// wasm: whether it has a body, the method, the URL and the headers the edge
// reads with every request (`names`, one per line: the eager part of
// `incoming::HEADERS`), as lines, UTF-8 encoded here by the runtime: passed
// as a string, wasm-bindgen's glue would copy it into wasm one character at
// a time in JavaScript, and it holds the caller's token. Read one by
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
const encoder = new TextEncoder();

// One header read on demand (`incoming.rs` reads the rarely needed ones so).
export function readHeader(request, name) {
  const value = request.headers.get(name);
  return value === null ? undefined : value;
}

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
  return encoder.encode(text);
}

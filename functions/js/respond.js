// Our answer, made into a JavaScript `Response` in one call from wasm
// (`functions/src/respond.rs`), instead of one call per header and per
// `ResponseInit` field through `worker`'s wrappers.
//
// `headerLines` holds name and value alternately, each ended by "\n"
// (`respond.rs` leaves out a header with a line break). A header the
// runtime refuses is dropped, never fatal, as before. `body` is a fresh
// copy of the bytes, or undefined for no body at all.
export function makeResponse(status, headerLines, body) {
  const parts = headerLines.split("\n");
  const pairs = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    pairs.push([parts[i], parts[i + 1]]);
  }
  const payload = body === undefined ? null : body;
  // The runtime takes the pairs in one native call; a `Headers` filled one
  // `append` at a time costs a call per header. Only when it refuses one of
  // them are they added one by one, to leave out just the refused ones.
  try {
    return new Response(payload, { status, headers: pairs });
  } catch {
    const headers = new Headers();
    for (const [name, value] of pairs) {
      try {
        headers.append(name, value);
      } catch {
        // Refused by the runtime: left out.
      }
    }
    return new Response(payload, { status, headers });
  }
}

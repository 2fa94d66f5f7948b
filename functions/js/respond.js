// Our answer, made into a JavaScript `Response` in one call from wasm
// (`functions/src/respond.rs`), instead of one call per header and per
// `ResponseInit` field through `worker`'s wrappers.
//
// `headerLines` holds name and value alternately, each ended by "\n"
// (`respond.rs` leaves out a header with a line break). A header the
// runtime refuses is dropped, never fatal, as before. `body` is a fresh
// copy of the bytes, or undefined for no body at all.
export function makeResponse(status, headerLines, body) {
  const headers = new Headers();
  const parts = headerLines.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) {
    try {
      headers.append(parts[i], parts[i + 1]);
    } catch {
      // Refused by the runtime: left out.
    }
  }
  return new Response(body === undefined ? null : body, { status, headers });
}

// Awaiting a JavaScript promise from wasm without a closure per await
// (`functions/src/js_await.rs`).
//
// `wasm_bindgen_futures::JsFuture` makes two wasm-bindgen closures per
// promise (each a JavaScript function wrapping a boxed Rust closure,
// registered with a FinalizationRegistry and dropped through another call
// into wasm). Here the promise's two reactions are plain arrow functions,
// and both call the one wasm export `settleAwait` with the slot the Rust
// future waits on and the key that slot was handed out with.
//
// This file is copied by wasm-bindgen to `snippets/<crate>/js/await.js` in
// the glue's directory, three levels below the glue (`index.js`), which
// exports `settleAwait`; the two modules import each other, which is fine
// for ES modules (the export is only called once a promise settles).
import { settleAwait } from "../../../index.js";

export function awaitSlot(promise, index, key) {
  promise.then(
    (value) => settleAwait(index, key, true, value),
    (error) => settleAwait(index, key, false, error),
  );
}

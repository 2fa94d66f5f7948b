//! Minifies `src/openapi.json` for the Worker: the document is kept indented
//! for people to read and diff, and served without the indentation, which
//! was a third of its bytes in the Worker's wasm.

use std::path::Path;

fn main() {
    let source = Path::new("src/openapi.json");
    println!("cargo::rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(source).expect("reading src/openapi.json");
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("openapi.min.json");
    std::fs::write(out, minify(&text)).expect("writing openapi.min.json");
}

/// JSON text without the whitespace between tokens; strings (escapes
/// included) and the order of keys are kept exactly. A test in
/// `openapi.rs` checks the result is the same JSON value as the source.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

//! Reading what a request carries: method, path, headers and its body. (The
//! body's size was already checked by `app`.)
//!
//! [`Request`] reads the method, URL and the headers the edge looks at once,
//! in one call into JavaScript (`js/incoming.js`), and answers from that
//! copy: the handlers read a dozen headers per request, and through
//! `worker::Request` each read crossed into JavaScript and back. Only the
//! names in [`HEADERS`] are read (`Headers.get` each), not every header the
//! client sent.

use serde_json::Value;
use shared::ApiError;
use wasm_bindgen::prelude::*;
use worker::web_sys;

/// Every header name the edge reads, in lower case. [`Request::header`]
/// answers `None` for any other, so a handler reading a new header adds it
/// here (a test checks the header names the crate reads against it).
pub const HEADERS: [&str; 14] = [
    "access-control-request-method",
    "authorization",
    "cf-connecting-ip",
    "content-length",
    "content-type",
    "idempotency-key",
    "origin",
    "prefer",
    "transfer-encoding",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
    "x-request-id",
    crate::handlers::hooks::DB_WEBHOOK_SECRET_HEADER,
];

#[wasm_bindgen(module = "/js/incoming.js")]
extern "C" {
    /// `names`: [`HEADERS`] joined by line breaks.
    #[wasm_bindgen(js_name = readRequest)]
    fn read_request(request: &web_sys::Request, names: &JsValue) -> String;
}

thread_local! {
    /// [`HEADERS`] as one JavaScript string, made once per isolate.
    static NAMES: JsValue = JsValue::from_str(&HEADERS.join("\n"));
}

/// A request as workerd handed it over, with its method, URL and headers
/// read.
pub struct Request {
    raw: web_sys::Request,
    has_body: bool,
    method: String,
    url: String,
    /// The values of [`HEADERS`], in its order; `None` when absent.
    headers: Vec<Option<String>>,
}

impl Request {
    pub fn new(raw: web_sys::Request) -> Self {
        let text = NAMES.with(|names| read_request(&raw, names));
        let mut lines = text.split('\n');
        let has_body = lines.next() == Some("1");
        let method = lines.next().unwrap_or_default().to_string();
        let url = lines.next().unwrap_or_default().to_string();
        let headers = header_values(lines);
        Request {
            raw,
            has_body,
            method,
            url,
            headers,
        }
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    /// The full URL, query included.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn path(&self) -> &str {
        shared::http::path_of(&self.url)
    }

    /// A header's value; `name` in lower case, one of [`HEADERS`].
    pub fn header(&self, name: &str) -> Option<&str> {
        let at = HEADERS.iter().position(|n| *n == name)?;
        self.headers.get(at)?.as_deref()
    }

    pub fn has_body(&self) -> bool {
        self.has_body
    }

    /// The whole body in one `arrayBuffer()`.
    pub async fn bytes(&self) -> Result<Vec<u8>, JsValue> {
        let buffer = crate::js_await::settled(&self.raw.array_buffer()?).await?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }

    /// The body as a stream of chunks, through `worker` (a body without a
    /// declared length is rare: chunked uploads).
    pub fn stream(&self) -> worker::Result<worker::ByteStream> {
        // The same JavaScript object (`Clone`), not `Request.clone()`, which
        // would tee the body.
        let mut request = worker::Request::from(Clone::clone(&self.raw));
        request.stream()
    }
}

/// A header's value, or `None` when absent; `name` in lower case.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.header(name).map(str::to_string)
}

/// The body as JSON, insisting on `Content-Type: application/json`.
pub fn json_body(req: &Request, body: &[u8]) -> Result<Value, ApiError> {
    shared::http::parse_json(req.header("content-type"), body)
}

/// The header lines `js/incoming.js` wrote, one per name of [`HEADERS`]:
/// empty when absent, else "=" and the value.
fn header_values<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Option<String>> {
    let mut values: Vec<Option<String>> = lines
        .take(HEADERS.len())
        .map(|line| line.strip_prefix('=').map(str::to_string))
        .collect();
    values.resize(HEADERS.len(), None);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_read_in_the_order_of_the_names() {
        let mut lines = vec![""; HEADERS.len()];
        lines[1] = "=Bearer abc";
        lines[4] = "=";
        lines[7] = "=respond-async, wait=1";
        let values = header_values(lines.into_iter());
        assert_eq!(values.len(), HEADERS.len());
        assert_eq!(values[1].as_deref(), Some("Bearer abc"));
        assert_eq!(values[4].as_deref(), Some(""), "present but empty");
        assert_eq!(values[7].as_deref(), Some("respond-async, wait=1"));
        assert_eq!(values.iter().filter(|v| v.is_some()).count(), 3);
    }

    #[test]
    fn missing_lines_read_as_absent_headers() {
        let values = header_values(["=x"].into_iter());
        assert_eq!(values.len(), HEADERS.len());
        assert_eq!(values[0].as_deref(), Some("x"));
        assert!(values[1..].iter().all(Option::is_none));
    }

    #[test]
    fn names_are_lower_case_and_distinct() {
        for (i, name) in HEADERS.iter().enumerate() {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(!name.contains('\n'));
            assert!(!HEADERS[..i].contains(name), "{name} twice");
        }
    }

    /// Every header name the crate reads by a literal is in
    /// [`HEADERS`]; one missing would always read as absent.
    #[test]
    fn every_header_the_crate_reads_is_in_the_list() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.clone()];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("the source folder") {
                    files.push(entry.expect("an entry").path());
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for call in ["header(req, \"", "header(&req, \"", "header(\""] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    let name = &rest[..rest.find('"').expect("a closing quote")];
                    assert!(
                        HEADERS.contains(&name),
                        "{} reads the header {name}, which incoming::HEADERS lacks",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "found only {checked} header reads");
    }
}

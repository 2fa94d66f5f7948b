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
use std::cell::OnceCell;
use wasm_bindgen::prelude::*;
use worker::web_sys;

/// Every header name the edge reads, in lower case. [`Request::header`]
/// answers `None` for any other, so a handler reading a new header adds it
/// here (a test checks the header names the crate reads against it).
///
/// The first [`EAGER`] are read with the request, in one call, because
/// almost every request reads them; the rest (a preflight's, the webhooks')
/// are looked up one `Headers.get` each the first time they are asked for,
/// so a usage call does not pay for the webhooks' headers.
pub const HEADERS: [&str; 14] = [
    "authorization",
    "cf-connecting-ip",
    "content-length",
    "content-type",
    "idempotency-key",
    "origin",
    "prefer",
    "transfer-encoding",
    "x-request-id",
    "access-control-request-method",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
    crate::handlers::hooks::DB_WEBHOOK_SECRET_HEADER,
];

/// How many of [`HEADERS`] are read with the request.
const EAGER: usize = 9;

#[wasm_bindgen(module = "/js/incoming.js")]
extern "C" {
    /// `names`: the first [`EAGER`] of [`HEADERS`] joined by line breaks.
    /// The request's text, UTF-8 encoded by the runtime's `TextEncoder`.
    #[wasm_bindgen(js_name = readRequest)]
    fn read_request(request: &web_sys::Request, names: &JsValue) -> js_sys::Uint8Array;

    /// One header's value (`Headers.get`).
    #[wasm_bindgen(js_name = readHeader)]
    fn read_header(request: &web_sys::Request, name: &str) -> Option<String>;
}

thread_local! {
    /// The eager names as one JavaScript string, made once per isolate.
    static NAMES: JsValue = JsValue::from_str(&HEADERS[..EAGER].join("\n"));
}

/// A request as workerd handed it over, with its method, URL and headers
/// read.
pub struct Request {
    raw: web_sys::Request,
    has_body: bool,
    method: String,
    url: String,
    path: String,
    /// The values of the eager [`HEADERS`], in its order; `None` when absent.
    headers: Vec<Option<String>>,
    /// The others', each read on first use.
    lazy: [OnceCell<Option<String>>; HEADERS.len() - EAGER],
}

impl Request {
    pub fn new(raw: web_sys::Request) -> Self {
        let bytes = NAMES.with(|names| read_request(&raw, names)).to_vec();
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let mut lines = text.split('\n');
        let has_body = lines.next() == Some("1");
        let method = lines.next().unwrap_or_default().to_string();
        let url = lines.next().unwrap_or_default().to_string();
        // Found once: the router, the page and the anonymous-user rule
        // each ask for it.
        let path = shared::http::path_of(&url).to_string();
        let headers = header_values(lines);
        Request {
            raw,
            has_body,
            method,
            url,
            path,
            headers,
            lazy: Default::default(),
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
        &self.path
    }

    /// A header's value; `name` in lower case, one of [`HEADERS`].
    pub fn header(&self, name: &str) -> Option<&str> {
        let at = HEADERS.iter().position(|n| *n == name)?;
        match at.checked_sub(EAGER) {
            None => self.headers.get(at)?.as_deref(),
            Some(lazy) => self
                .lazy
                .get(lazy)?
                .get_or_init(|| read_header(&self.raw, name))
                .as_deref(),
        }
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

/// The header lines `js/incoming.js` wrote, one per eager name of
/// [`HEADERS`]: empty when absent, else "=" and the value.
fn header_values<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Option<String>> {
    let mut values: Vec<Option<String>> = lines
        .take(EAGER)
        .map(|line| line.strip_prefix('=').map(str::to_string))
        .collect();
    values.resize(EAGER, None);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_read_in_the_order_of_the_names() {
        let mut lines = vec![""; EAGER];
        lines[1] = "=Bearer abc";
        lines[4] = "=";
        lines[7] = "=respond-async, wait=1";
        let values = header_values(lines.into_iter());
        assert_eq!(values.len(), EAGER);
        assert_eq!(values[1].as_deref(), Some("Bearer abc"));
        assert_eq!(values[4].as_deref(), Some(""), "present but empty");
        assert_eq!(values[7].as_deref(), Some("respond-async, wait=1"));
        assert_eq!(values.iter().filter(|v| v.is_some()).count(), 3);
    }

    #[test]
    fn missing_lines_read_as_absent_headers() {
        let values = header_values(["=x", "=y", "=z"].into_iter().chain(["=past"; 20]));
        assert_eq!(
            values.len(),
            EAGER,
            "lines past the eager names are not read"
        );
        assert_eq!(values[0].as_deref(), Some("x"));
        assert_eq!(values[2].as_deref(), Some("z"));
        assert!(values[3..].iter().all(|v| v.as_deref() == Some("past")));
        let values = header_values(["=x"].into_iter());
        assert_eq!(values.len(), EAGER);
        assert!(values[1..].iter().all(Option::is_none));
    }

    /// The eager names are the ones nearly every request reads: the
    /// pipeline's own, the caller's token and the usage call's.
    #[test]
    fn the_pipeline_reads_only_eager_headers_on_every_request() {
        for name in [
            "authorization",
            "content-length",
            "content-type",
            "idempotency-key",
            "origin",
            "prefer",
            "transfer-encoding",
            "x-request-id",
            "cf-connecting-ip",
        ] {
            let at = HEADERS.iter().position(|n| *n == name);
            assert!(
                at.is_some_and(|at| at < EAGER),
                "{name} is not read eagerly"
            );
        }
        assert!(EAGER <= HEADERS.len());
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

//! Reading what a request carries: method, path, headers and its body. (The
//! body's size was already checked by `app`.)
//!
//! [`Request`] reads the method, URL and headers once, in one call into
//! JavaScript (`js/incoming.js`), and answers from that copy: the handlers
//! read a dozen headers per request, and through `worker::Request` each read
//! crossed into JavaScript and back.

use serde_json::Value;
use shared::ApiError;
use wasm_bindgen::prelude::*;
use worker::web_sys;

#[wasm_bindgen(module = "/js/incoming.js")]
extern "C" {
    #[wasm_bindgen(js_name = readRequest)]
    fn read_request(request: &web_sys::Request) -> String;
}

/// A request as workerd handed it over, with its method, URL and headers
/// read.
pub struct Request {
    raw: web_sys::Request,
    has_body: bool,
    method: String,
    url: String,
    /// Lower-cased names, in the order the runtime gives them.
    headers: Vec<(String, String)>,
}

impl Request {
    pub fn new(raw: web_sys::Request) -> Self {
        let text = read_request(&raw);
        let mut lines = text.split('\n');
        let has_body = lines.next() == Some("1");
        let method = lines.next().unwrap_or_default().to_string();
        let url = lines.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        while let (Some(name), Some(value)) = (lines.next(), lines.next()) {
            headers.push((name.to_string(), value.to_string()));
        }
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

    /// A header's value; `name` in lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
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

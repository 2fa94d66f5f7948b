//! Bodies sent chunked, declaring no `Content-Length`: the Worker reads them
//! as a stream and stops at `MAX_BODY_BYTES`.
//!
//! The upload is 64 MiB, 256 times the limit, produced lazily by a writer
//! thread over a bare socket while this thread waits for the answer: the 413
//! must come back before the body ends, which it cannot if the Worker reads
//! the whole body first. That the Worker's memory stays bounded follows from
//! the code (`shared::http::BoundedBody` keeps no byte past the limit and the
//! stream is cancelled at the first refusal) and from this body, far larger
//! than the limit, being refused without the Worker falling over: it serves
//! the next request as before.

use e2e_tests::{env, request, send, worker_url};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `MAX_BODY_BYTES` in wrangler.toml.
const MAX_BODY_BYTES: u64 = 262_144;
const UPLOAD_BYTES: u64 = 64 * 1024 * 1024;
const CHUNK_BYTES: usize = 64 * 1024;

/// What came back, and how much of the body had been sent by then.
struct Outcome {
    raw: String,
    status: u16,
    body: String,
    sent_when_answered: u64,
    elapsed: Duration,
}

/// POSTs `total` bytes of JSON-looking padding to `path`, chunked, from a
/// writer thread (a chunk at a time, generated as it goes; a write error
/// means the Worker closed the connection, and ends the upload).
fn upload_chunked(path: &str, total: u64) -> Outcome {
    let base = env("CDS_WORKER_URL");
    let authority = base
        .strip_prefix("http://")
        .expect("the worker URL is http://")
        .trim_end_matches('/')
        .to_string();
    let mut reader = TcpStream::connect(&authority).expect("connecting to the Worker");
    reader
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = reader.try_clone().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicBool::new(false));
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let upload = {
        let (sent, answered) = (Arc::clone(&sent), Arc::clone(&answered));
        std::thread::spawn(move || {
            writer.write_all(head.as_bytes())?;
            let chunk = vec![b' '; CHUNK_BYTES];
            let mut framed = format!("{CHUNK_BYTES:x}\r\n").into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            while sent.load(Ordering::SeqCst) < total && !answered.load(Ordering::SeqCst) {
                writer.write_all(&framed)?;
                sent.fetch_add(CHUNK_BYTES as u64, Ordering::SeqCst);
                // A fast client, not an instant one: 64 MiB take at least a
                // quarter of a second, so an answer given at the limit
                // cannot race the end of the body.
                if sent.load(Ordering::SeqCst) % (1024 * 1024) == 0 {
                    std::thread::sleep(Duration::from_millis(4));
                }
            }
            writer.write_all(b"0\r\n\r\n")
        })
    };
    let started = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let mut sent_when_answered = None;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sent_when_answered.get_or_insert_with(|| sent.load(Ordering::SeqCst));
                answered.store(true, Ordering::SeqCst);
                raw.extend_from_slice(&buf[..n]);
            }
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("no answer to a chunked upload: {e}"),
        }
    }
    let elapsed = started.elapsed();
    answered.store(true, Ordering::SeqCst);
    // The writer ends on its own: answered, or the connection closed.
    let _ = upload.join();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    // A chunked response: the JSON object sits between its size lines.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) => body[start..=end].to_string(),
        _ => body.to_string(),
    };
    Outcome {
        raw: text.clone(),
        status,
        body,
        sent_when_answered: sent_when_answered.unwrap_or(0),
        elapsed,
    }
}

#[test]
fn a_chunked_body_far_over_the_limit_is_refused_before_it_ends() {
    // The Worker stops reading at the limit and cancels the body stream. The
    // local stack's `wrangler dev` proxies each request to workerd, and the
    // cancelled upload sometimes reaches the client as that proxy's own 503
    // ("Your worker restarted mid-request"), or as the 413's head with the
    // connection reset before its body. Every attempt must be answered
    // before the body ended; the first whole answer from the Worker must be
    // 413 `payload_too_large`.
    let mut code = None;
    let mut seen = Vec::new();
    for attempt in 1..=8 {
        let outcome = upload_chunked("/v1/usage", UPLOAD_BYTES);
        let context = format!(
            "attempt {attempt}: {:?} after {} bytes in {:?}",
            outcome.raw, outcome.sent_when_answered, outcome.elapsed
        );
        let from_the_proxy =
            outcome.status == 503 && outcome.raw.contains("Your worker restarted mid-request");
        assert!(
            outcome.status == 413 || from_the_proxy,
            "neither the Worker's 413 nor the dev proxy's 503: {context}"
        );
        assert!(
            outcome.sent_when_answered < UPLOAD_BYTES,
            "the 413 came only after all {UPLOAD_BYTES} bytes were sent: the Worker read \
             the whole body before judging it ({context})"
        );
        assert!(
            // Whole chunks written; the one crossing the limit may be in flight.
            outcome.sent_when_answered >= MAX_BODY_BYTES,
            "answered before the limit: {context}"
        );
        let body: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
        seen.push(context.clone());
        if from_the_proxy {
            continue;
        }
        assert!(
            outcome.raw.to_ascii_lowercase().contains("x-request-id:"),
            "not the Worker's answer: {context}"
        );
        if let Some(got) = body["error"]["code"].as_str() {
            code = Some(got.to_string());
            break;
        }
    }
    assert_eq!(code.as_deref(), Some("payload_too_large"), "{seen:#?}");

    // The Worker keeps serving.
    let health = send(request("GET", &worker_url("/health")), None);
    assert_eq!(health.status, 200, "{}", health.body);
}

#[test]
fn a_chunked_body_within_the_limit_is_read_whole() {
    // No credentials: a body read whole reaches authentication (401), where
    // a refused or unreadable one would be a 413 or 400.
    let outcome = upload_chunked("/v1/usage", 3 * CHUNK_BYTES as u64);
    let body: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
    assert_eq!(
        (outcome.status, body["error"]["code"].as_str()),
        (401, Some("missing_token")),
        "{}",
        outcome.body
    );
}

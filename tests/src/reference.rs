//! The reference implementations in `tests/js/reference.mjs` (npm `jose` and
//! `standardwebhooks`), run with Node.js, so the Worker is checked against
//! code this project did not write.

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

fn run(request: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/js/reference.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running node (Node.js 20+ is needed): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("writing to node");
    let output = child.wait_with_output().expect("waiting for node");
    assert!(
        output.status.success(),
        "{script} failed on {request}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("node answered JSON")
}

/// A signing key pair made by `jose`.
pub struct KeyPair {
    pub alg: &'static str,
    pub kid: String,
    pub private_jwk: Value,
    /// With `kid`, `alg` and `use: sig`, as Supabase publishes it.
    pub public_jwk: Value,
}

impl KeyPair {
    /// `alg` is `ES256` (P-256) or `RS256` (RSA-2048).
    pub fn generate(alg: &'static str, kid: &str) -> Self {
        let answer = run(json!({"op": "generate_key", "alg": alg, "kid": kid}));
        KeyPair {
            alg,
            kid: kid.to_string(),
            private_jwk: answer["private_jwk"].clone(),
            public_jwk: answer["public_jwk"].clone(),
        }
    }

    /// A token signed by `jose`, naming this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(json!({"typ": "JWT", "kid": self.kid}), claims)
    }

    /// A token signed by `jose` with this key and exactly this header (plus
    /// `alg`).
    pub fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        let answer = run(json!({
            "op": "sign_jwt",
            "alg": self.alg,
            "private_jwk": self.private_jwk,
            "header": header,
            "claims": claims,
        }));
        answer["token"].as_str().expect("a token").to_string()
    }
}

/// `webhook-signature` as the `standardwebhooks` package computes it.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    payload: &str,
) -> String {
    let answer = run(json!({
        "op": "sign_webhook",
        "secret": secret,
        "id": id,
        "timestamp": timestamp,
        "payload": payload,
    }));
    answer["signature"]
        .as_str()
        .expect("a signature")
        .to_string()
}

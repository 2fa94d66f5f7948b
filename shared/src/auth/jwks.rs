//! The project's public signing keys, parsed from a JSON Web Key Set.
//!
//! Supabase publishes them at `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`
//! as `{"keys": [{"kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"}]}`.
//! A key we cannot use (an encryption key, another curve, a symmetric key, a
//! weak RSA modulus, a malformed entry) is skipped rather than failing the
//! whole set: one odd key must not lock every user out.
//!
//! Keys are kept as the plain bytes of their JWK members: the Worker imports
//! them into WebCrypto (`crypto.subtle`), tests and fuzzing into RustCrypto
//! (`signature::verify`), and neither needs big-number code to read them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

/// A public key the verifier can check signatures with.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA on P-256 with SHA-256: the point's affine coordinates, 32 bytes
    /// each, big-endian. Whether the point lies on the curve is checked by
    /// whatever imports it; one that does not verifies nothing.
    Es256 { x: [u8; 32], y: [u8; 32] },
    /// RSA PKCS#1 v1.5 with SHA-256: modulus and public exponent, big-endian
    /// without leading zeros; the modulus is 2048, 3072 or 4096 bits.
    Rs256 { n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    /// The JWS `alg` this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Es256 { .. } => "ES256",
            PublicKey::Rs256 { .. } => "RS256",
        }
    }

    /// The length a signature made with this key has: `r ‖ s` for ES256, the
    /// modulus' length for RS256. Anything else is refused before any
    /// cryptography runs.
    pub fn signature_len(&self) -> usize {
        match self {
            PublicKey::Es256 { .. } => 64,
            PublicKey::Rs256 { n, .. } => n.len(),
        }
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicKey::Es256 { .. } => f.write_str("Es256"),
            PublicKey::Rs256 { n, .. } => write!(f, "Rs256({} bits)", n.len() * 8),
        }
    }
}

/// The usable signing keys of a JWKS, by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<(String, PublicKey)>,
    skipped: usize,
}

/// The JWKS document as a whole could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not a JSON object with a `keys` array: {0}")]
    NotAKeySet(String),
}

impl JwkSet {
    /// Parses a JWKS document, keeping the keys it can use.
    ///
    /// Fails only when the document is not `{"keys": [...]}`; an empty set is
    /// valid (a project signing only with the legacy HS256 secret publishes one).
    pub fn parse(document: &[u8]) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| JwksError::NotAKeySet(e.to_string()))?;
        let mut set = JwkSet::default();
        for entry in &document.keys {
            match usable_key(entry) {
                // The first key with a given id wins; a duplicate id is ambiguous,
                // and trusting the later one would let the order decide.
                Some((kid, key)) if set.get(&kid).is_none() => set.keys.push((kid, key)),
                _ => set.skipped += 1,
            }
        }
        Ok(set)
    }

    /// The key with this `kid`, if we hold one.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|(id, _)| id == kid)
            .map(|(_, key)| key)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many entries of the document were skipped, for the operator's log.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Builds a set from keys at hand (tests, or keys pinned in configuration).
    pub fn from_keys(keys: impl IntoIterator<Item = (String, PublicKey)>) -> Self {
        JwkSet {
            keys: keys.into_iter().collect(),
            skipped: 0,
        }
    }
}

/// The key id and key of one JWKS entry, or `None` when we cannot use it.
fn usable_key(entry: &serde_json::Value) -> Option<(String, PublicKey)> {
    let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
    // A base64url member (RFC 7518 §6: no padding) decoded to bytes.
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(field(name)?).ok();
    // Without a `kid` a token cannot name the key; Supabase always sets one.
    let kid = field("kid").filter(|kid| !kid.is_empty())?.to_string();
    if field("use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    let declared_alg = field("alg");
    let key = match field("kty")? {
        "EC" => {
            if field("crv")? != "P-256" {
                return None;
            }
            PublicKey::Es256 {
                x: bytes("x")?.try_into().ok()?,
                y: bytes("y")?.try_into().ok()?,
            }
        }
        "RSA" => {
            let n = bytes("n")?;
            let e = bytes("e")?;
            // RFC 7518 §3.3: at least 2048 bits; like jwt-compact's
            // `StrongKey`, only the three sizes keys are actually made with.
            let n = strip_leading_zeros(n);
            let e = strip_leading_zeros(e);
            if !matches!(bit_length(&n), 2048 | 3072 | 4096) || e.is_empty() || e.len() > 8 {
                return None;
            }
            PublicKey::Rs256 { n, e }
        }
        // `oct` keys are secrets and never belong in a public key set; `OKP`
        // (EdDSA) is not something Supabase signs with.
        _ => return None,
    };
    // A key declared for another algorithm (e.g. an RSA key marked PS256) is
    // not ours to use for RS256.
    if declared_alg.is_some_and(|alg| alg != key.algorithm()) {
        return None;
    }
    Some((kid, key))
}

/// `bytes` as a JWK member: base64url without padding.
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jwt_compact::alg::{ModulusBits, Rsa, RsaPrivateKey, RsaPublicKey, StrongKey};
    use jwt_compact::jwk::JsonWebKey;
    use rand_core::OsRng;
    use std::sync::OnceLock;

    /// An RSA key pair, generated once per test run.
    ///
    /// Generating a 2048-bit key in an unoptimised build takes 15 to 60
    /// seconds; the `openssl` command, when installed, takes well under one,
    /// so it is tried first.
    pub(crate) fn rsa_keys() -> &'static (StrongKey<RsaPrivateKey>, StrongKey<RsaPublicKey>) {
        static KEYS: OnceLock<(StrongKey<RsaPrivateKey>, StrongKey<RsaPublicKey>)> =
            OnceLock::new();
        KEYS.get_or_init(|| match rsa_key_from_openssl() {
            Some(private) => {
                let private = StrongKey::try_from(private).expect("a 2048-bit key");
                let public = private.to_public_key();
                (private, public)
            }
            None => {
                Rsa::generate(&mut OsRng, ModulusBits::TwoKibibytes).expect("RSA key generation")
            }
        })
    }

    fn rsa_key_from_openssl() -> Option<RsaPrivateKey> {
        use rsa::pkcs8::DecodePrivateKey;
        let output = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .ok()
            .filter(|output| output.status.success())?;
        RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&output.stdout).ok()?).ok()
    }

    pub(crate) fn ec_signing_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::random(&mut OsRng)
    }

    /// The JWK of a public key, with `kid` and any extra members.
    pub(crate) fn jwk_json(key: JsonWebKey<'_>, extra: serde_json::Value) -> serde_json::Value {
        let mut value = serde_json::to_value(&key).expect("JWK serializes");
        let object = value.as_object_mut().expect("JWK is an object");
        for (name, member) in extra.as_object().expect("extra is an object") {
            object.insert(name.clone(), member.clone());
        }
        value
    }

    pub(crate) fn ec_jwk(kid: &str, key: &p256::ecdsa::SigningKey) -> serde_json::Value {
        jwk_json(
            JsonWebKey::from(key.verifying_key()),
            serde_json::json!({"kid": kid, "alg": "ES256", "use": "sig"}),
        )
    }

    /// The key [`JwkSet`] holds for `key`'s public half.
    pub(crate) fn es256_public(key: &p256::ecdsa::SigningKey) -> PublicKey {
        let point = key.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            <[u8; 32]>::try_from(&c.expect("an uncompressed point")[..]).expect("32 bytes")
        };
        PublicKey::Es256 {
            x: coordinate(point.x()),
            y: coordinate(point.y()),
        }
    }

    pub(crate) fn rsa_jwk(kid: &str) -> serde_json::Value {
        jwk_json(
            JsonWebKey::from(rsa_keys().1.as_ref()),
            serde_json::json!({"kid": kid, "alg": "RS256", "use": "sig"}),
        )
    }

    fn parse(keys: Vec<serde_json::Value>) -> JwkSet {
        let document = serde_json::json!({ "keys": keys }).to_string();
        JwkSet::parse(document.as_bytes()).expect("a key set")
    }

    #[test]
    fn reads_ec_and_rsa_signing_keys_by_kid() {
        let ec = ec_signing_key();
        let set = parse(vec![ec_jwk("ec-1", &ec), rsa_jwk("rsa-1")]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("ec-1"), Some(&es256_public(&ec)));
        assert_eq!(set.get("rsa-1").map(PublicKey::algorithm), Some("RS256"));
        assert!(!set.contains("other"));
    }

    /// One row per entry we cannot use; each is skipped and the good key stays.
    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let ec = ec_signing_key();
        let mut p384 = ec_jwk("p384", &ec);
        p384["crv"] = "P-384".into();
        let mut short_x = ec_jwk("short-x", &ec);
        short_x["x"] = "AAAA".into();
        let mut padded_x = ec_jwk("padded-x", &ec);
        padded_x["x"] = format!("{}=", padded_x["x"].as_str().unwrap()).into();
        let mut weak_rsa = rsa_jwk("weak");
        // A 1024-bit modulus: too weak for RFC 7518.
        weak_rsa["n"] = URL_SAFE_NO_PAD.encode([0xc5; 128]).into();
        let mut no_exponent = rsa_jwk("no-e");
        no_exponent["e"] = "".into();
        let cases: Vec<(&str, serde_json::Value)> = vec![
            (
                "encryption key",
                jwk_json(
                    JsonWebKey::from(ec.verifying_key()),
                    serde_json::json!({"kid": "enc", "use": "enc"}),
                ),
            ),
            ("unknown kty", serde_json::json!({"kty": "XYZ", "kid": "x"})),
            (
                "symmetric key",
                serde_json::json!({"kty": "oct", "kid": "hs", "k": "c2VjcmV0"}),
            ),
            (
                "no kid",
                jwk_json(JsonWebKey::from(ec.verifying_key()), serde_json::json!({})),
            ),
            ("other curve", p384),
            ("malformed coordinate", short_x),
            ("padded base64url coordinate", padded_x),
            ("weak RSA modulus", weak_rsa),
            ("empty RSA exponent", no_exponent),
            (
                "declared for another algorithm",
                jwk_json(
                    JsonWebKey::from(rsa_keys().1.as_ref()),
                    serde_json::json!({"kid": "ps", "alg": "PS256"}),
                ),
            ),
            ("not an object", serde_json::json!("nope")),
        ];
        for (case, entry) in cases {
            let set = parse(vec![entry, ec_jwk("good", &ec)]);
            assert_eq!((set.len(), set.skipped()), (1, 1), "{case}");
            assert!(set.contains("good"), "{case}");
        }
    }

    #[test]
    fn a_key_without_use_or_alg_is_accepted() {
        let ec = ec_signing_key();
        let entry = jwk_json(
            JsonWebKey::from(ec.verifying_key()),
            serde_json::json!({"kid": "bare"}),
        );
        assert!(parse(vec![entry]).contains("bare"));
    }

    #[test]
    fn a_duplicate_kid_keeps_the_first_key() {
        let (first, second) = (ec_signing_key(), ec_signing_key());
        let set = parse(vec![ec_jwk("k", &first), ec_jwk("k", &second)]);
        assert_eq!(set.get("k"), Some(&es256_public(&first)));
        assert_eq!(set.skipped(), 1);
    }

    #[test]
    fn an_empty_set_is_valid_but_a_non_set_is_not() {
        assert!(JwkSet::parse(br#"{"keys": []}"#).unwrap().is_empty());
        for bad in [&b"[]"[..], b"{}", b"not json", br#"{"keys": {}}"#] {
            assert!(
                JwkSet::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! The project's public signing keys, parsed from a JSON Web Key Set.
//!
//! Supabase publishes them at `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`
//! as `{"keys": [{"kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"}]}`.
//! A key we cannot use (an encryption key, another curve, a symmetric key, a
//! weak RSA modulus, a malformed entry) is skipped rather than failing the
//! whole set: one odd key must not lock every user out.

use jwt_compact::alg::{RsaPublicKey, StrongKey};
use jwt_compact::jwk::JsonWebKey;
use serde::Deserialize;

/// A public key the verifier can check signatures with.
#[derive(Debug, Clone, PartialEq)]
pub enum PublicKey {
    /// ECDSA on P-256 with SHA-256.
    Es256(p256::ecdsa::VerifyingKey),
    /// RSA PKCS#1 v1.5 with SHA-256; the modulus is 2048, 3072 or 4096 bits.
    Rs256(StrongKey<RsaPublicKey>),
}

impl PublicKey {
    /// The JWS `alg` this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Es256(_) => "ES256",
            PublicKey::Rs256(_) => "RS256",
        }
    }
}

/// The usable signing keys of a JWKS, by key id.
#[derive(Debug, Clone, Default, PartialEq)]
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
    // Without a `kid` a token cannot name the key; Supabase always sets one.
    let kid = field("kid").filter(|kid| !kid.is_empty())?.to_string();
    if field("use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    let declared_alg = field("alg");
    let key = match field("kty")? {
        "EC" => {
            let jwk: JsonWebKey<'_> = serde_json::from_value(entry.clone()).ok()?;
            PublicKey::Es256(p256::ecdsa::VerifyingKey::try_from(&jwk).ok()?)
        }
        "RSA" => {
            let jwk: JsonWebKey<'_> = serde_json::from_value(entry.clone()).ok()?;
            let key = RsaPublicKey::try_from(&jwk).ok()?;
            PublicKey::Rs256(StrongKey::try_from(key).ok()?)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jwt_compact::alg::{ModulusBits, Rsa, RsaPrivateKey};
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
        assert_eq!(
            set.get("ec-1"),
            Some(&PublicKey::Es256(*ec.verifying_key()))
        );
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
        assert_eq!(
            set.get("k"),
            Some(&PublicKey::Es256(*first.verifying_key()))
        );
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

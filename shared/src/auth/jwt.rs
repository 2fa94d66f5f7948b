//! Verification of Supabase access tokens.
//!
//! Supabase Auth signs access tokens with the project's legacy shared secret
//! (HS256) or with asymmetric signing keys (ES256, RS256) published as a JWKS.
//! A token is accepted when, in this order: it is present and not oversized;
//! it parses; its `alg` is one of those three; the key it calls for exists and
//! is of the matching type; the signature verifies; and its claims hold up:
//! `exp` present and not passed, `nbf` (if any) reached, `aud` and `iss` as
//! expected, `sub` a UUID, `role` one Supabase issues.
//!
//! The algorithm is taken from the token only to pick among keys we hold:
//! HS256 is checked with the configured secret alone and never with a public
//! key (the classic "public key as HMAC secret" forgery), and a public key is
//! used only for the one algorithm it was published for.
//!
//! The compact serialization is read here (split at the dots, base64url,
//! the header's `alg`/`kid`/`cty`, the claims' JSON) rather than by a JWT
//! library: measured in workerd, a library's constant-time base64 and its
//! generic claim buffering were most of an HS256 verification. The
//! signature of an ES256/RS256 token is checked by the platform (see
//! [`Verifier`]); tests build tokens with jwt-compact, independently of this
//! code.

use super::jwks::{JwkSet, PublicKey};
use super::{is_uuid, AuthError};
use crate::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use sha2::Sha256;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The audience Supabase Auth puts in a signed-in user's token.
pub const AUTHENTICATED_AUDIENCE: &str = "authenticated";
/// Clock skew we tolerate between Supabase Auth and the edge.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;
/// Supabase tokens are about 1 KiB; metadata can grow them, but a token of
/// more than 8 KiB is junk we refuse before parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The database role a token asks PostgREST to assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A signed-in user (including anonymous sign-ins, see `is_anonymous`).
    Authenticated,
    /// The project's public `anon` key.
    Anon,
    /// The project's `service_role` key: bypasses row-level security.
    ServiceRole,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Authenticated => "authenticated",
            Role::Anon => "anon",
            Role::ServiceRole => "service_role",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "authenticated" => Some(Role::Authenticated),
            "anon" => Some(Role::Anon),
            "service_role" => Some(Role::ServiceRole),
            _ => None,
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// The user's id (`auth.users.id`), lowercase.
    pub sub: String,
    pub role: Role,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub session_id: Option<String>,
    /// A user who signed in anonymously: role `authenticated`, no email.
    pub is_anonymous: bool,
    /// Authenticator assurance level (`aal1`, `aal2`), when present.
    pub aal: Option<String>,
    /// `user_metadata.username`: the handle chosen at sign-up, when a string
    /// (the same value the `auth.users` webhook carries).
    pub username: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds, when present.
    pub iat: Option<i64>,
}

/// Accepts only tokens of signed-in users.
///
/// User-facing endpoints act for a person, so they need `role =
/// authenticated`. An `anon` token names nobody, and a `service_role` token is
/// a server credential that must never be accepted from a browser (it would
/// let the caller skip row-level security). Anonymous sign-ins have role
/// `authenticated` and pass; an endpoint that needs a real account checks
/// [`VerifiedClaims::is_anonymous`].
pub fn require_user(claims: VerifiedClaims) -> Result<VerifiedClaims, AuthError> {
    match claims.role {
        Role::Authenticated => Ok(claims),
        Role::Anon | Role::ServiceRole => Err(AuthError::UserRequired),
    }
}

/// The token from an `Authorization: Bearer <token>` header value.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// What the verifier checks tokens against, apart from the JWKS.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierSettings {
    /// The legacy JWT secret, used as raw bytes as Supabase does; `None`
    /// refuses every HS256 token.
    pub hs256_secret: Option<String>,
    /// The accepted `iss` values (`SUPABASE_JWT_ISSUERS`; by default
    /// `<SUPABASE_URL>/auth/v1`).
    pub issuers: Vec<String>,
    pub audience: String,
    pub leeway_secs: i64,
    pub max_token_bytes: usize,
}

impl VerifierSettings {
    pub fn from_config(config: &Config) -> Self {
        VerifierSettings {
            hs256_secret: config.jwt_secret.clone(),
            issuers: config.jwt_issuers.clone(),
            audience: AUTHENTICATED_AUDIENCE.to_string(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

impl fmt::Debug for VerifierSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierSettings")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("issuers", &self.issuers)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish()
    }
}

/// Verifies access tokens against the settings and one key set.
///
/// Verification has three steps, so the signature of an asymmetric token can
/// be checked by whatever the platform offers:
/// 1. [`Verifier::start`]: size, parse, `alg` and `kid` rules, key selection;
///    an HS256 signature is checked right there (the HMAC key is prepared
///    once, when the verifier is built);
/// 2. the ES256/RS256 signature, described by [`Pending::signature`]: the
///    Worker asks WebCrypto, tests and fuzzing ask RustCrypto
///    ([`Verifier::verify`]);
/// 3. [`Verifier::finish`]: the claims, judged only once the signature held.
///
/// Cheap to clone, and [`with_keys`](Self::with_keys) swaps the key set
/// without preparing the HMAC key again: keep one per isolate.
#[derive(Clone)]
pub struct Verifier {
    rules: Arc<Rules>,
    keys: Arc<JwkSet>,
}

/// Everything but the key set, fixed for the isolate's life.
struct Rules {
    /// HMAC-SHA256 already keyed with the legacy secret: each token clones
    /// this state instead of hashing the key's pads again.
    hs256: Option<Hmac<Sha256>>,
    issuers: Vec<String>,
    audience: String,
    leeway_secs: i64,
    max_token_bytes: usize,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.rules.hs256.is_some())
            .field("keys", &self.keys.len())
            .field("issuers", &self.rules.issuers)
            .field("audience", &self.rules.audience)
            .finish_non_exhaustive()
    }
}

/// The claims as they arrive, loosely typed: only their JSON shape is read,
/// and only after the signature is checked; what they mean is judged then.
///
/// Each member is read straight into what the rules look at, borrowing
/// strings from the decoded claims where JSON has no escapes, instead of
/// into `serde_json::Value` trees: the claims are most of an HS256
/// verification's work, and a `Value` per member (`user_metadata` a whole
/// map) was an allocation each. A member of another JSON type than the one
/// its rule reads counts as absent, as a `Value` read through `as_str` /
/// `as_bool` did; a member named twice is malformed, as before.
#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(default, deserialize_with = "timestamp")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    iat: Option<i64>,
    #[serde(borrow, default, deserialize_with = "audience")]
    aud: Vec<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    phone: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    session_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "loose_bool")]
    is_anonymous: Option<bool>,
    #[serde(borrow, default, deserialize_with = "loose_str")]
    aal: Option<Cow<'a, str>>,
    /// `user_metadata.username`, the only member of it we read.
    #[serde(borrow, default, deserialize_with = "username")]
    user_metadata: Option<Cow<'a, str>>,
}

/// A claim's value as the rules read it: a string, a boolean, the strings
/// of an array, or nothing they look at (skipped, never an error).
enum Loose<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Strings(Vec<Cow<'a, str>>),
    /// The last `username` member of an object (a JSON object that names a
    /// member twice keeps the last, as `serde_json::Map` does).
    Username(Option<Cow<'a, str>>),
    Other,
}

/// Reads any JSON value into [`Loose`]: an array for its strings, an
/// object for its `username`; whichever the member's rule does not look at
/// is dropped by it.
#[derive(Clone, Copy)]
struct LooseVisitor;

impl<'de> de::Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Vec::new();
        while let Some(item) = seq.next_element_seed(LooseVisitor)? {
            if let Loose::Str(s) = item {
                strings.push(s);
            }
        }
        Ok(Loose::Strings(strings))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut username = None;
        while let Some(is_username) = map.next_key_seed(IsUsername)? {
            let value = map.next_value_seed(LooseVisitor)?;
            if is_username {
                username = match value {
                    Loose::Str(s) => Some(s),
                    _ => None,
                };
            }
        }
        Ok(Loose::Username(username))
    }
}

impl<'de> de::DeserializeSeed<'de> for LooseVisitor {
    type Value = Loose<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Whether an object member's name is `username`, without keeping the name.
struct IsUsername;

impl<'de> de::Visitor<'de> for IsUsername {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v == "username")
    }
}

impl<'de> de::DeserializeSeed<'de> for IsUsername {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

/// A string member; any other type counts as absent.
fn loose_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(match d.deserialize_any(LooseVisitor)? {
        Loose::Str(s) => Some(s),
        _ => None,
    })
}

/// A boolean member; any other type counts as absent.
fn loose_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match d.deserialize_any(LooseVisitor)? {
        Loose::Bool(b) => Some(b),
        _ => None,
    })
}

/// `aud`: one string or an array of them (RFC 7519 §4.1.3); the strings it
/// names (non-strings in the array name none).
fn audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'de, str>>, D::Error> {
    Ok(match d.deserialize_any(LooseVisitor)? {
        Loose::Str(s) => vec![s],
        Loose::Strings(strings) => strings,
        _ => Vec::new(),
    })
}

/// `user_metadata`'s `username` when it is an object holding a string there.
fn username<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(match d.deserialize_any(LooseVisitor)? {
        Loose::Username(name) => name,
        _ => None,
    })
}

/// The JOSE header members we read (RFC 7515 §4.1); the others are skipped.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Content type of the claims: JSON is the only one we read.
    #[serde(default)]
    cty: Option<String>,
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, an integer or a
/// number with a fraction (dropped). `null` or any other type is malformed.
fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Seconds;
    impl de::Visitor<'_> for Seconds {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of seconds")
        }
        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Self::Value, E> {
            Ok(Some(secs))
        }
        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Self::Value, E> {
            i64::try_from(secs)
                .map(Some)
                .map_err(|_| E::custom("timestamp out of range"))
        }
        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Self::Value, E> {
            // `as` saturates; a time that far off is out of range anyway.
            if secs.is_finite() && secs.abs() < 9.0e18 {
                Ok(Some(secs as i64))
            } else {
                Err(E::custom("timestamp out of range"))
            }
        }
    }
    deserializer.deserialize_any(Seconds)
}

/// A token split at its dots, its header read, nothing verified yet.
struct Parsed<'t> {
    header: Header,
    /// The JWS signing input: the first two parts with the dot between them.
    message: &'t [u8],
    /// The claims part, decoded (its JSON is read only once the signature
    /// holds).
    claims: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits a compact JWS (`header.claims.signature`, RFC 7515 §7.1) and reads
/// its header. Base64url without padding, canonical (no stray trailing
/// bits), header and claims JSON objects: anything else is malformed.
fn parse(token: &str) -> Result<Parsed<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header_part), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedToken);
    };
    let header: Header = json_object(&decode(header_part)?)?;
    if header
        .cty
        .as_deref()
        .is_some_and(|cty| !cty.eq_ignore_ascii_case("json"))
    {
        return Err(AuthError::MalformedToken);
    }
    // Decoded now, so a malformed token is malformed whatever its signature
    // (and the claims are read in one pass, not checked and then decoded).
    if claims.is_empty() {
        return Err(AuthError::MalformedToken);
    }
    Ok(Parsed {
        header,
        message: &token.as_bytes()[..header_part.len() + 1 + claims.len()],
        claims: decode(claims)?,
        signature: decode(signature)?,
    })
}

fn decode(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::MalformedToken)
}

/// `bytes` as `T`, provided they are a JSON object (RFC 7519 §7.2: the
/// header and the claims are objects; serde would also fill a struct from
/// an array).
fn json_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AuthError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(AuthError::MalformedToken);
    }
    serde_json::from_slice(bytes).map_err(|_| AuthError::MalformedToken)
}

/// An asymmetric signature algorithm a JWKS key is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    /// ECDSA P-256 / SHA-256; the JWS signature is `r ‖ s` (64 bytes).
    Es256,
    /// RSASSA-PKCS1-v1_5 / SHA-256.
    Rs256,
}

/// A signature for the platform to check: `signature` over `message` with
/// `key` (the JWKS key named `kid`), by `alg`. The key's type always matches
/// `alg`, and the signature has the length the key makes.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    pub alg: SignatureAlg,
    pub kid: &'a str,
    pub key: &'a PublicKey,
    /// The JWS signing input: `base64url(header) "." base64url(claims)`.
    pub message: &'a [u8],
    pub signature: &'a [u8],
}

/// A parsed token whose key was chosen, waiting for its signature's verdict.
pub struct Pending<'t> {
    token: Parsed<'t>,
    signature: Signature,
}

enum Signature {
    /// HS256, checked by [`Verifier::start`].
    Checked(bool),
    /// ES256/RS256: the key's id in the verifier's set.
    Asymmetric { alg: SignatureAlg, kid: String },
}

impl Pending<'_> {
    /// The signature the platform must check, or `None` when it was checked
    /// already (HS256). `keys` is the verifier that started this token.
    pub fn signature<'a>(&'a self, verifier: &'a Verifier) -> Option<SignatureCheck<'a>> {
        match &self.signature {
            Signature::Checked(_) => None,
            Signature::Asymmetric { alg, kid } => Some(SignatureCheck {
                alg: *alg,
                kid,
                // `start` found the key in this set; a verifier with another
                // set verifies nothing.
                key: verifier.keys.get(kid)?,
                message: self.token.message,
                signature: &self.token.signature,
            }),
        }
    }
}

impl Verifier {
    pub fn new(settings: &VerifierSettings, keys: Arc<JwkSet>) -> Self {
        Verifier {
            rules: Arc::new(Rules {
                hs256: settings.hs256_secret.as_ref().map(|secret| {
                    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
                        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
                }),
                issuers: settings.issuers.clone(),
                audience: settings.audience.clone(),
                leeway_secs: settings.leeway_secs,
                max_token_bytes: settings.max_token_bytes,
            }),
            keys,
        }
    }

    /// The same rules over another key set.
    pub fn with_keys(&self, keys: Arc<JwkSet>) -> Self {
        Verifier {
            rules: Arc::clone(&self.rules),
            keys,
        }
    }

    /// The key set tokens are checked against.
    pub fn keys(&self) -> &Arc<JwkSet> {
        &self.keys
    }

    /// Step 1: everything before an asymmetric signature.
    ///
    /// On [`AuthError::UnknownKeyId`] the caller may ask the
    /// [`JwksCache`](super::JwksCache) whether to refetch, and start once more.
    pub fn start<'t>(&self, token: &'t str) -> Result<Pending<'t>, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > self.rules.max_token_bytes {
            return Err(AuthError::TokenTooLarge);
        }
        let parsed = parse(token)?;
        let signature = match parsed.header.alg.as_str() {
            "HS256" => {
                let mac = self
                    .rules
                    .hs256
                    .as_ref()
                    .ok_or(AuthError::AlgorithmKeyMismatch)?;
                let mut mac = mac.clone();
                mac.update(parsed.message);
                // Constant-time comparison (`subtle`, inside `hmac`).
                Signature::Checked(mac.verify_slice(&parsed.signature).is_ok())
            }
            alg @ ("ES256" | "RS256") => {
                let kid = parsed
                    .header
                    .kid
                    .as_deref()
                    .ok_or(AuthError::MissingKeyId)?;
                let key = self.keys.get(kid).ok_or_else(|| AuthError::UnknownKeyId {
                    kid: kid.chars().take(64).collect(),
                })?;
                let alg = match (alg, key) {
                    ("ES256", PublicKey::Es256 { .. }) => SignatureAlg::Es256,
                    ("RS256", PublicKey::Rs256 { .. }) => SignatureAlg::Rs256,
                    _ => return Err(AuthError::AlgorithmKeyMismatch),
                };
                if parsed.signature.len() != key.signature_len() {
                    // Wrong length: a bad signature, known without cryptography.
                    Signature::Checked(false)
                } else {
                    Signature::Asymmetric {
                        alg,
                        kid: kid.to_string(),
                    }
                }
            }
            // `none`, HS384, PS256, EdDSA...: nothing Supabase signs our tokens with.
            _ => return Err(AuthError::UnsupportedAlgorithm),
        };
        Ok(Pending {
            token: parsed,
            signature,
        })
    }

    /// Step 3: the claims at `now_unix` (seconds), given whether the
    /// signature [`Pending::signature`] described verified (ignored for
    /// HS256, whose verdict `start` holds). Any failure of the platform's
    /// check (a key it cannot import, an exception) must come in as `false`.
    pub fn finish(
        &self,
        pending: Pending<'_>,
        signature_verified: bool,
        now_unix: i64,
    ) -> Result<VerifiedClaims, AuthError> {
        let valid = match pending.signature {
            Signature::Checked(valid) => valid,
            Signature::Asymmetric { .. } => signature_verified,
        };
        if !valid {
            return Err(AuthError::InvalidSignature);
        }
        self.check_claims(&json_object(&pending.token.claims)?, now_unix)
    }

    /// All three steps, the signature checked with RustCrypto: for tests,
    /// fuzzing and native tools. The Worker checks it with WebCrypto instead,
    /// and its wasm links no RustCrypto signature code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<VerifiedClaims, AuthError> {
        let pending = self.start(token)?;
        let verified = pending
            .signature(self)
            .is_some_and(|check| super::rust_signatures::verify(&check));
        self.finish(pending, verified, now_unix)
    }

    fn check_claims(&self, raw: &RawClaims<'_>, now: i64) -> Result<VerifiedClaims, AuthError> {
        let exp = raw.exp.ok_or(AuthError::MissingExpiry)?;
        if exp.saturating_add(self.rules.leeway_secs) < now {
            return Err(AuthError::TokenExpired);
        }
        if let Some(nbf) = raw.nbf {
            if nbf.saturating_sub(self.rules.leeway_secs) > now {
                return Err(AuthError::TokenNotYetValid);
            }
        }
        if !raw.aud.iter().any(|aud| *aud == self.rules.audience) {
            return Err(AuthError::WrongAudience);
        }
        // Exact match: a project on a custom domain still issues tokens as
        // `https://<ref>.supabase.co/auth/v1`, so the operator lists both.
        let issuer_accepted = raw
            .iss
            .as_deref()
            .is_some_and(|iss| self.rules.issuers.iter().any(|accepted| accepted == iss));
        if !issuer_accepted {
            return Err(AuthError::WrongIssuer);
        }
        let sub = raw
            .sub
            .as_deref()
            .filter(|sub| is_uuid(sub))
            .ok_or(AuthError::InvalidSubject)?
            .to_ascii_lowercase();
        let role = raw
            .role
            .as_deref()
            .and_then(Role::parse)
            .ok_or(AuthError::InvalidRole)?;
        Ok(VerifiedClaims {
            sub,
            role,
            // Supabase sends "" for a user without email or phone.
            email: non_empty(&raw.email),
            phone: non_empty(&raw.phone),
            session_id: non_empty(&raw.session_id),
            is_anonymous: raw.is_anonymous.unwrap_or(false),
            aal: non_empty(&raw.aal),
            username: non_empty(&raw.user_metadata),
            exp,
            iat: raw.iat,
        })
    }
}

fn non_empty(value: &Option<Cow<'_, str>>) -> Option<String> {
    value
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwks::tests::{ec_jwk, ec_signing_key, rsa_jwk, rsa_keys};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jwt_compact::alg::{Es256, Hs256, Hs256Key, Rsa, StrongAlg};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{AlgorithmExt, Claims, Header};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const ISSUER: &str = "https://abc.supabase.co/auth/v1";
    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";
    const USER: &str = "0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f60";

    /// Keys made for one test: an HS256 secret, an ES256 key (`ec-1`) and the
    /// shared RS256 key (`rsa-1`) in the JWKS.
    struct Fixture {
        ec: p256::ecdsa::SigningKey,
        verifier: Verifier,
    }

    fn settings(secret: Option<&str>) -> VerifierSettings {
        VerifierSettings {
            hs256_secret: secret.map(Into::into),
            issuers: vec![ISSUER.into()],
            audience: AUTHENTICATED_AUDIENCE.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    fn fixture_with(secret: Option<&str>) -> Fixture {
        let ec = ec_signing_key();
        let document = json!({"keys": [ec_jwk("ec-1", &ec), rsa_jwk("rsa-1")]}).to_string();
        let keys = JwkSet::parse(document.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        Fixture {
            ec,
            verifier: Verifier::new(&settings(secret), Arc::new(keys)),
        }
    }

    fn fixture() -> Fixture {
        fixture_with(Some(SECRET))
    }

    /// Claims as Supabase Auth issues them to a signed-in user.
    fn user_claims() -> serde_json::Value {
        json!({
            "aud": "authenticated",
            "exp": NOW + 3600,
            "iat": NOW,
            "iss": ISSUER,
            "sub": USER,
            "email": "ada@example.com",
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": NOW}],
            "session_id": "5b9c5d0e-1f2a-4b3c-8d4e-6f7a8b9c0d1e",
            "is_anonymous": false
        })
    }

    fn with(mut claims: serde_json::Value, changes: serde_json::Value) -> serde_json::Value {
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    fn header(kid: Option<&str>) -> Header {
        match kid {
            Some(kid) => Header::empty().with_key_id(kid),
            None => Header::empty(),
        }
    }

    fn hs256(secret: &[u8], kid: Option<&str>, claims: serde_json::Value) -> String {
        Hs256
            .token(&header(kid), &Claims::new(claims), &Hs256Key::new(secret))
            .unwrap()
    }

    fn es256(
        key: &p256::ecdsa::SigningKey,
        kid: Option<&str>,
        claims: serde_json::Value,
    ) -> String {
        Es256
            .token(&header(kid), &Claims::new(claims), key)
            .unwrap()
    }

    fn rs256(kid: Option<&str>, claims: serde_json::Value) -> String {
        StrongAlg(Rsa::rs256())
            .token(&header(kid), &Claims::new(claims), &rsa_keys().0)
            .unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An HS256 token built by hand with the `hmac` crate, independently of
    /// the JWT library under test.
    fn hand_made_hs256(secret: &[u8], header: &str, claims: &str) -> String {
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
    }

    #[test]
    fn accepts_user_tokens_signed_with_each_algorithm() {
        let f = fixture();
        let tokens = [
            ("HS256", hs256(SECRET.as_bytes(), None, user_claims())),
            (
                "HS256 with kid",
                hs256(SECRET.as_bytes(), Some("legacy"), user_claims()),
            ),
            ("ES256", es256(&f.ec, Some("ec-1"), user_claims())),
            ("RS256", rs256(Some("rsa-1"), user_claims())),
            (
                "HS256 made by hand",
                hand_made_hs256(
                    SECRET.as_bytes(),
                    r#"{"alg":"HS256","typ":"JWT"}"#,
                    &user_claims().to_string(),
                ),
            ),
        ];
        for (case, token) in tokens {
            let claims = f
                .verifier
                .verify(&token, NOW)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(claims.sub, USER, "{case}");
            assert_eq!(claims.role, Role::Authenticated, "{case}");
            assert_eq!(claims.email.as_deref(), Some("ada@example.com"), "{case}");
            assert_eq!(claims.phone, None, "{case}");
            assert_eq!(
                claims.session_id.as_deref(),
                Some("5b9c5d0e-1f2a-4b3c-8d4e-6f7a8b9c0d1e")
            );
            assert!(!claims.is_anonymous);
            assert_eq!((claims.exp, claims.iat), (NOW + 3600, Some(NOW)));
            assert_eq!(claims.aal.as_deref(), Some("aal1"));
            assert_eq!(claims.username, None, "{case}");
        }
    }

    #[test]
    fn the_chosen_username_is_read_from_user_metadata() {
        let f = fixture();
        let cases = [
            (json!({"username": "Ada L"}), Some("Ada L")),
            (json!({"username": ""}), None),
            (json!({"username": 42}), None),
            (json!({"full_name": "Ada"}), None),
            (json!("not an object"), None),
        ];
        for (meta, want) in cases {
            let token = hs256(
                SECRET.as_bytes(),
                None,
                with(user_claims(), json!({ "user_metadata": meta })),
            );
            let claims = f.verifier.verify(&token, NOW).unwrap();
            assert_eq!(claims.username.as_deref(), want, "{meta}");
        }
    }

    /// The claims are read member by member into what the rules look at: a
    /// member of another JSON type than the rule reads counts as absent, and
    /// strings with JSON escapes read as well as plain ones.
    #[test]
    fn claims_of_other_types_count_as_absent() {
        let f = fixture();
        let token = hs256(
            SECRET.as_bytes(),
            None,
            with(
                user_claims(),
                json!({
                    "email": 5,
                    "phone": {"number": "+1"},
                    "session_id": ["5b9c5d0e-1f2a-4b3c-8d4e-6f7a8b9c0d1e"],
                    "is_anonymous": "true",
                    "aal": false,
                    "aud": [1, ["authenticated"], {"a": "authenticated"}, "authenticated"],
                }),
            ),
        );
        let claims = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(claims.email, None);
        assert_eq!(claims.phone, None);
        assert_eq!(claims.session_id, None);
        assert!(!claims.is_anonymous);
        assert_eq!(claims.aal, None);

        // Escapes: `\u0040` is "@", `\"` a quote; nested values are skipped.
        let claims_json = format!(
            r#"{{"aud":"authenticated","exp":{exp},"iss":"{ISSUER}","sub":"{USER}","role":"authenticated","email":"ada\u0040example.com","user_metadata":{{"x":[{{"username":"no"}}],"username":"A \"B\""}},"is_anonymous":true}}"#,
            exp = NOW + 60
        );
        let token = hand_made_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, &claims_json);
        let claims = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
        assert_eq!(claims.username.as_deref(), Some("A \"B\""));
        assert!(claims.is_anonymous);
        // A nested array holding ours is not ours.
        let token = hs256(
            SECRET.as_bytes(),
            None,
            with(user_claims(), json!({"aud": [["authenticated"]]})),
        );
        assert_eq!(
            f.verifier.verify(&token, NOW),
            Err(AuthError::WrongAudience)
        );
    }

    /// JSON text naming a member twice: in the claims it is malformed (which
    /// one counts would be a guess); in `user_metadata`, which is not ours to
    /// judge, the last one counts, as a JSON map keeps it.
    #[test]
    fn members_named_twice() {
        let f = fixture();
        let base = format!(
            r#""aud":"authenticated","exp":{exp},"iss":"{ISSUER}","sub":"{USER}","role":"authenticated""#,
            exp = NOW + 60
        );
        let twice = format!(r#"{{{base},"role":"service_role"}}"#);
        let token = hand_made_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, &twice);
        assert_eq!(
            f.verifier.verify(&token, NOW),
            Err(AuthError::MalformedToken)
        );
        let metadata =
            format!(r#"{{{base},"user_metadata":{{"username":"first","username":"last"}}}}"#);
        let token = hand_made_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, &metadata);
        let claims = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(claims.username.as_deref(), Some("last"));
        let metadata = format!(r#"{{{base},"user_metadata":{{"username":"first","username":7}}}}"#);
        let token = hand_made_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, &metadata);
        assert_eq!(f.verifier.verify(&token, NOW).unwrap().username, None);
    }

    /// One row per claim rule: the claims changed from a valid user token,
    /// and the code the verifier must answer with.
    #[test]
    fn refuses_tokens_whose_claims_do_not_hold() {
        let f = fixture();
        let cases: &[(&str, serde_json::Value, Result<(), &str>)] = &[
            ("exp missing", json!({"exp": null}), Err("missing_expiry")),
            (
                "expired beyond leeway",
                json!({"exp": NOW - 31}),
                Err("token_expired"),
            ),
            ("expired within leeway", json!({"exp": NOW - 30}), Ok(())),
            (
                "nbf beyond leeway",
                json!({"nbf": NOW + 31}),
                Err("token_not_yet_valid"),
            ),
            ("nbf within leeway", json!({"nbf": NOW + 30}), Ok(())),
            ("nbf passed", json!({"nbf": NOW - 10}), Ok(())),
            ("aud missing", json!({"aud": null}), Err("wrong_audience")),
            ("aud another", json!({"aud": "anon"}), Err("wrong_audience")),
            (
                "aud array with ours",
                json!({"aud": ["x", "authenticated"]}),
                Ok(()),
            ),
            (
                "aud array without ours",
                json!({"aud": ["x", "y"]}),
                Err("wrong_audience"),
            ),
            ("aud a number", json!({"aud": 1}), Err("wrong_audience")),
            ("iss missing", json!({"iss": null}), Err("wrong_issuer")),
            (
                "iss another project",
                json!({"iss": "https://evil.supabase.co/auth/v1"}),
                Err("wrong_issuer"),
            ),
            (
                "iss trailing slash",
                json!({"iss": format!("{ISSUER}/")}),
                Err("wrong_issuer"),
            ),
            ("sub missing", json!({"sub": null}), Err("invalid_subject")),
            (
                "sub not a uuid",
                json!({"sub": "admin"}),
                Err("invalid_subject"),
            ),
            ("sub a number", json!({"sub": 42}), Err("invalid_subject")),
            ("sub uppercase", json!({"sub": USER.to_uppercase()}), Ok(())),
            ("role missing", json!({"role": null}), Err("invalid_role")),
            (
                "role unknown",
                json!({"role": "postgres"}),
                Err("invalid_role"),
            ),
            (
                "role supabase_admin",
                json!({"role": "supabase_admin"}),
                Err("invalid_role"),
            ),
            ("role anon", json!({"role": "anon"}), Ok(())),
            ("role service_role", json!({"role": "service_role"}), Ok(())),
            (
                "exp a string",
                json!({"exp": "tomorrow"}),
                Err("malformed_token"),
            ),
        ];
        for (case, changes, want) in cases {
            let token = es256(&f.ec, Some("ec-1"), with(user_claims(), changes.clone()));
            let got = f
                .verifier
                .verify(&token, NOW)
                .map(|_| ())
                .map_err(|e| e.code());
            assert_eq!(got, *want, "{case}");
        }
    }

    /// A project on a custom domain: tokens carry the `<ref>.supabase.co`
    /// issuer, and the operator lists it beside the custom one. One row per
    /// `iss`: accepted or `wrong_issuer`.
    #[test]
    fn accepts_exactly_the_configured_issuers() {
        const CUSTOM: &str = "https://api.example.com/auth/v1";
        let f = fixture();
        let settings = VerifierSettings {
            issuers: vec![CUSTOM.into(), ISSUER.into()],
            ..settings(Some(SECRET))
        };
        let verifier = Verifier::new(&settings, Arc::new(JwkSet::default()));
        let cases: &[(&str, serde_json::Value, Result<(), &str>)] = &[
            ("the project's own", json!(ISSUER), Ok(())),
            ("the custom domain's", json!(CUSTOM), Ok(())),
            (
                "trailing slash",
                json!(format!("{CUSTOM}/")),
                Err("wrong_issuer"),
            ),
            (
                "another case",
                json!(ISSUER.to_uppercase()),
                Err("wrong_issuer"),
            ),
            (
                "a prefix of one",
                json!("https://api.example.com"),
                Err("wrong_issuer"),
            ),
            (
                "both joined",
                json!(format!("{CUSTOM},{ISSUER}")),
                Err("wrong_issuer"),
            ),
            (
                "an array of both",
                json!([CUSTOM, ISSUER]),
                Err("wrong_issuer"),
            ),
            (
                "another project",
                json!("https://evil.supabase.co/auth/v1"),
                Err("wrong_issuer"),
            ),
        ];
        for (case, iss, want) in cases {
            let token = hs256(
                SECRET.as_bytes(),
                None,
                with(user_claims(), json!({ "iss": iss })),
            );
            let got = verifier
                .verify(&token, NOW)
                .map(|_| ())
                .map_err(|e| e.code());
            assert_eq!(got, *want, "{case}");
        }
        // The default, one issuer, refuses the custom domain's.
        let token = hs256(
            SECRET.as_bytes(),
            None,
            with(user_claims(), json!({ "iss": CUSTOM })),
        );
        assert_eq!(
            f.verifier.verify(&token, NOW).map(|_| ()),
            Err(AuthError::WrongIssuer)
        );
    }

    #[test]
    fn an_uppercase_subject_is_returned_lowercase() {
        let f = fixture();
        let token = hs256(
            SECRET.as_bytes(),
            None,
            with(user_claims(), json!({"sub": USER.to_uppercase()})),
        );
        assert_eq!(f.verifier.verify(&token, NOW).unwrap().sub, USER);
    }

    #[test]
    fn refuses_malformed_and_oversized_tokens() {
        let f = fixture();
        let valid = hs256(SECRET.as_bytes(), None, user_claims());
        let parts: Vec<&str> = valid.split('.').collect();
        let cases: Vec<(&str, String, &str)> = vec![
            ("empty", String::new(), "missing_token"),
            ("one part", "abc".into(), "malformed_token"),
            (
                "two parts",
                format!("{}.{}", parts[0], parts[1]),
                "malformed_token",
            ),
            ("four parts", format!("{valid}.x"), "malformed_token"),
            (
                "bad base64 header",
                format!("!!.{}.{}", parts[1], parts[2]),
                "malformed_token",
            ),
            (
                "bad base64 claims",
                format!("{}.*.{}", parts[0], parts[2]),
                "malformed_token",
            ),
            (
                "header not JSON",
                format!("{}.{}.{}", b64(b"nope"), parts[1], parts[2]),
                "malformed_token",
            ),
            (
                "header without alg",
                format!("{}.{}.{}", b64(b"{}"), parts[1], parts[2]),
                "malformed_token",
            ),
            (
                "claims not JSON",
                hand_made_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, "nope"),
                "malformed_token",
            ),
            (
                "claims an array",
                hand_made_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, "[1]"),
                "malformed_token",
            ),
            (
                "oversized",
                "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1),
                "token_too_large",
            ),
        ];
        for (case, token, want) in cases {
            assert_eq!(
                f.verifier
                    .verify(&token, NOW)
                    .map(|_| ())
                    .map_err(|e| e.code()),
                Err(want),
                "{case}"
            );
        }
    }

    #[test]
    fn refuses_alg_none_and_algorithms_we_do_not_use() {
        let f = fixture();
        let claims = b64(user_claims().to_string().as_bytes());
        for alg in [
            "none", "None", "HS384", "HS512", "PS256", "ES384", "EdDSA", "",
        ] {
            let header = b64(json!({"alg": alg, "kid": "ec-1"}).to_string().as_bytes());
            for signature in ["", "c2ln"] {
                let token = format!("{header}.{claims}.{signature}");
                assert_eq!(
                    f.verifier.verify(&token, NOW).unwrap_err(),
                    AuthError::UnsupportedAlgorithm,
                    "{alg:?} {signature:?}"
                );
            }
        }
    }

    #[test]
    fn hs256_token_signed_with_public_key_is_refused() {
        // The public key's bytes, as an attacker would find them in the JWKS.
        let public_jwk = serde_json::to_vec(&rsa_jwk("rsa-1")).unwrap();
        let public_canonical = JsonWebKey::from(rsa_keys().1.as_ref()).to_string();
        for forged_secret in [public_jwk.as_slice(), public_canonical.as_bytes()] {
            let token = hs256(forged_secret, Some("rsa-1"), user_claims());
            // Without a legacy secret configured, HS256 is never tried at all.
            let without_secret = fixture_with(None).verifier.verify(&token, NOW);
            assert_eq!(without_secret, Err(AuthError::AlgorithmKeyMismatch));
            // With one, only that secret is tried, never the key the kid names.
            let with_secret = fixture().verifier.verify(&token, NOW);
            assert_eq!(with_secret, Err(AuthError::InvalidSignature));
        }
    }

    #[test]
    fn an_asymmetric_alg_naming_a_key_of_the_other_type_is_refused() {
        let f = fixture();
        let rs_claims_with_ec_kid = rs256(Some("ec-1"), user_claims());
        assert_eq!(
            f.verifier.verify(&rs_claims_with_ec_kid, NOW),
            Err(AuthError::AlgorithmKeyMismatch)
        );
        let es_with_rsa_kid = es256(&f.ec, Some("rsa-1"), user_claims());
        assert_eq!(
            f.verifier.verify(&es_with_rsa_kid, NOW),
            Err(AuthError::AlgorithmKeyMismatch)
        );
    }

    #[test]
    fn unknown_and_missing_kids_are_told_apart() {
        let f = fixture();
        let rotated = es256(&ec_signing_key(), Some("ec-2"), user_claims());
        assert_eq!(
            f.verifier.verify(&rotated, NOW),
            Err(AuthError::UnknownKeyId { kid: "ec-2".into() })
        );
        let no_kid = es256(&f.ec, None, user_claims());
        assert_eq!(
            f.verifier.verify(&no_kid, NOW),
            Err(AuthError::MissingKeyId)
        );
        let no_kid = rs256(None, user_claims());
        assert_eq!(
            f.verifier.verify(&no_kid, NOW),
            Err(AuthError::MissingKeyId)
        );
    }

    #[test]
    fn bad_signatures_are_refused() {
        let f = fixture();
        let other_ec = ec_signing_key();
        let tampered = {
            let token = es256(&f.ec, Some("ec-1"), user_claims());
            let parts: Vec<&str> = token.split('.').collect();
            let forged = b64(with(user_claims(), json!({"role": "service_role"}))
                .to_string()
                .as_bytes());
            format!("{}.{forged}.{}", parts[0], parts[2])
        };
        let truncated = {
            let token = rs256(Some("rsa-1"), user_claims());
            let (signed, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            format!("{signed}.{}", b64(&signature[..200]))
        };
        let cases = [
            (
                "HS256 with another secret",
                hs256(
                    b"another-secret-of-at-least-32-bytes!!",
                    None,
                    user_claims(),
                ),
            ),
            (
                "ES256 with another key",
                es256(&other_ec, Some("ec-1"), user_claims()),
            ),
            ("claims changed after signing", tampered),
            ("RS256 signature truncated", truncated),
            ("HS256 with an empty signature", {
                let token = hs256(SECRET.as_bytes(), None, user_claims());
                token[..token.rfind('.').unwrap() + 1].to_string()
            }),
        ];
        for (case, token) in cases {
            assert_eq!(
                f.verifier.verify(&token, NOW),
                Err(AuthError::InvalidSignature),
                "{case}"
            );
        }
    }

    /// The steps the Worker runs with WebCrypto in the middle: `start`
    /// describes exactly the signature to check, and `finish` takes the
    /// platform's verdict for ES256/RS256 but never overrides HS256's.
    #[test]
    fn the_signature_step_is_handed_to_the_platform_and_its_verdict_decides() {
        let f = fixture();
        for (alg, token) in [
            ("ES256", es256(&f.ec, Some("ec-1"), user_claims())),
            ("RS256", rs256(Some("rsa-1"), user_claims())),
        ] {
            let pending = f.verifier.start(&token).unwrap();
            let check = pending.signature(&f.verifier).expect("an asymmetric check");
            let (signed, signature) = token.rsplit_once('.').unwrap();
            assert_eq!(check.message, signed.as_bytes(), "{alg}");
            assert_eq!(
                check.signature,
                URL_SAFE_NO_PAD.decode(signature).unwrap(),
                "{alg}"
            );
            assert_eq!(check.key.algorithm(), alg);
            assert!(crate::auth::rust_signatures::verify(&check), "{alg}");
            // The platform says no: a bad signature, whatever the claims.
            assert_eq!(
                f.verifier.finish(pending, false, NOW),
                Err(AuthError::InvalidSignature),
                "{alg}"
            );
            let pending = f.verifier.start(&token).unwrap();
            assert_eq!(
                f.verifier.finish(pending, true, NOW).unwrap().sub,
                USER,
                "{alg}"
            );
        }
        // HS256 is checked by `start` itself; no verdict from outside turns a
        // bad one good.
        let forged = hs256(
            b"another-secret-of-at-least-32-bytes!!",
            None,
            user_claims(),
        );
        let pending = f.verifier.start(&forged).unwrap();
        assert!(pending.signature(&f.verifier).is_none());
        assert_eq!(
            f.verifier.finish(pending, true, NOW),
            Err(AuthError::InvalidSignature)
        );
        // A signature of the wrong length never reaches the platform.
        let token = es256(&f.ec, Some("ec-1"), user_claims());
        let short = format!("{}.{}", token.rsplit_once('.').unwrap().0, b64(&[1; 63]));
        let pending = f.verifier.start(&short).unwrap();
        assert!(pending.signature(&f.verifier).is_none());
        assert_eq!(
            f.verifier.finish(pending, true, NOW),
            Err(AuthError::InvalidSignature)
        );
    }

    /// A key the RustCrypto step cannot build (a point off the curve) fails
    /// closed, as a WebCrypto import error does in the Worker.
    #[test]
    fn a_key_that_cannot_be_built_verifies_nothing() {
        let ec = ec_signing_key();
        let mut jwk = ec_jwk("off", &ec);
        let mut y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        jwk["y"] = b64(&y).into();
        let keys = JwkSet::parse(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        let verifier = Verifier::new(&settings(None), Arc::new(keys));
        let token = es256(&ec, Some("off"), user_claims());
        assert_eq!(
            verifier.verify(&token, NOW),
            Err(AuthError::InvalidSignature)
        );
    }

    #[test]
    fn with_keys_keeps_the_rules_and_swaps_the_key_set() {
        let f = fixture();
        let token = es256(&f.ec, Some("ec-1"), user_claims());
        let without = f.verifier.with_keys(Arc::default());
        assert_eq!(
            without.verify(&token, NOW),
            Err(AuthError::UnknownKeyId { kid: "ec-1".into() })
        );
        let hs = hs256(SECRET.as_bytes(), None, user_claims());
        assert_eq!(without.verify(&hs, NOW).unwrap().sub, USER);
    }

    #[test]
    fn claims_are_judged_only_after_the_signature() {
        // An expired token with a forged signature is a bad signature, so the
        // claim codes never tell an attacker anything about unsigned input.
        let f = fixture();
        let token = hs256(
            b"not-the-secret-but-32-bytes-long!!",
            None,
            with(user_claims(), json!({"exp": 1})),
        );
        assert_eq!(
            f.verifier.verify(&token, NOW),
            Err(AuthError::InvalidSignature)
        );
    }

    #[test]
    fn require_user_accepts_only_the_authenticated_role() {
        let f = fixture();
        let cases = [
            ("authenticated", Ok(Role::Authenticated)),
            ("anon", Err(AuthError::UserRequired)),
            ("service_role", Err(AuthError::UserRequired)),
        ];
        for (role, want) in cases {
            let token = hs256(
                SECRET.as_bytes(),
                None,
                with(user_claims(), json!({"role": role})),
            );
            let claims = f.verifier.verify(&token, NOW).unwrap();
            assert_eq!(require_user(claims).map(|c| c.role), want, "{role}");
        }
    }

    #[test]
    fn anonymous_sign_ins_are_users_marked_anonymous() {
        let f = fixture();
        let claims = with(user_claims(), json!({"is_anonymous": true, "email": ""}));
        let token = hs256(SECRET.as_bytes(), None, claims);
        let claims = require_user(f.verifier.verify(&token, NOW).unwrap()).unwrap();
        assert!(claims.is_anonymous);
        assert_eq!(claims.email, None);
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let cases = [
            (Some("Bearer abc.def.ghi"), Ok("abc.def.ghi")),
            (Some("bearer   abc"), Ok("abc")),
            (Some("BEARER abc "), Ok("abc")),
            (Some("Bearer"), Err(AuthError::MissingToken)),
            (Some("Bearer "), Err(AuthError::MissingToken)),
            (Some("Basic dXNlcjpwYXNz"), Err(AuthError::MissingToken)),
            (Some("abc.def.ghi"), Err(AuthError::MissingToken)),
            (Some(""), Err(AuthError::MissingToken)),
            (None, Err(AuthError::MissingToken)),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_token(header), want, "{header:?}");
        }
    }

    #[test]
    fn settings_debug_redacts_the_secret() {
        let printed = format!("{:?} {:?}", settings(Some(SECRET)), fixture().verifier);
        assert!(!printed.contains(SECRET), "{printed}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever bytes arrive, the verifier answers with an error and
            /// never panics.
            #[test]
            fn arbitrary_input_never_verifies(token in "[A-Za-z0-9_.\\-]{0,300}") {
                let verifier = Verifier::new(&settings(Some(SECRET)), Arc::new(JwkSet::default()));
                prop_assert!(verifier.verify(&token, NOW).is_err());
            }

            /// Flipping any one character of a valid token makes it invalid.
            #[test]
            fn any_single_change_invalidates_a_token(index in 0usize..1000, replacement in "[A-Za-z0-9_\\-]") {
                let verifier = Verifier::new(&settings(Some(SECRET)), Arc::new(JwkSet::default()));
                let token = hs256(SECRET.as_bytes(), None, user_claims());
                let index = index % token.len();
                let mut changed = token.clone().into_bytes();
                changed[index] = replacement.as_bytes()[0];
                let changed = String::from_utf8(changed).unwrap();
                prop_assume!(changed != token);
                prop_assert!(verifier.verify(&changed, NOW).is_err());
            }

            /// Expiry is decided by `exp + leeway < now`, at every distance.
            #[test]
            fn expiry_follows_the_leeway(offset in -120i64..120) {
                let verifier = Verifier::new(&settings(Some(SECRET)), Arc::new(JwkSet::default()));
                let token = hs256(SECRET.as_bytes(), None, with(user_claims(), json!({"exp": NOW + offset})));
                let expired = NOW + offset + DEFAULT_LEEWAY_SECS < NOW;
                prop_assert_eq!(verifier.verify(&token, NOW) == Err(AuthError::TokenExpired), expired);
                prop_assert_eq!(verifier.verify(&token, NOW).is_ok(), !expired);
            }
        }
    }
}

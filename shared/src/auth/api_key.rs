//! API keys for LLM servers: `cds_<id>_<secret>`.
//!
//! - `cds_` marks the string as ours (and tells it apart from a JWT, which
//!   starts with `eyJ`);
//! - `<id>` is 24 lowercase hex characters (96 random bits); `cds_<id>` is
//!   the key's `prefix`, stored in clear (unique: the lookup finds the key by
//!   it) and shown in the dashboard so a user can tell keys apart. At 96 bits
//!   two keys share an id with probability about n²/2⁹⁷ for n keys: never, in
//!   practice (a billion keys give odds of one in 10¹¹). Keys with the
//!   8-character ids of the first drafts (32 bits, where collisions were
//!   likely past tens of thousands of keys) were never released and are
//!   refused as malformed;
//! - `<secret>` is 43 base64url characters encoding 32 random bytes (256 bits).
//!
//! Only the SHA-256 of the secret is stored. A slow password hash is not
//! needed: the secret is random with 256 bits of entropy, so there is no
//! dictionary to try. `resolve_api_key` (SQL) finds the key by its `prefix`,
//! which is not secret, and compares the stored hash with the hash of the
//! presented secret as HMACs under a per-call random key, so the comparison's
//! timing is about values nobody can choose or predict.
//!
//! [`NewApiKey`] is the request that creates one (`POST /v1/api-keys`).

use super::AuthError;
use crate::error::ApiError;
use crate::rpc::account::{CreateApiKey, ResolveApiKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// What every key starts with.
pub const KEY_MARKER: &str = "cds_";
/// Length of the id part, in hex characters.
pub const ID_LEN: usize = 24;
/// Random bytes for the id: 96 bits.
const ID_BYTES: usize = ID_LEN / 2;
/// Random bytes for the secret: 256 bits.
const SECRET_BYTES: usize = 32;
/// Random bytes [`ApiKey::generate`] takes: id then secret.
pub const RANDOM_BYTES: usize = ID_BYTES + SECRET_BYTES;
/// Accepted secret lengths, in base64url characters: at least 192 bits, and
/// a ceiling so junk is refused before hashing.
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 32..=128;

/// A freshly generated key.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedApiKey {
    /// The whole key, shown to the user once and never stored.
    pub full_key: String,
    /// `cds_<id>`, stored and shown.
    pub prefix: String,
    /// Hex SHA-256 of the secret, stored.
    pub secret_hash_hex: String,
}

impl fmt::Debug for GeneratedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedApiKey")
            .field("full_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("secret_hash_hex", &self.secret_hash_hex)
            .finish()
    }
}

/// A presented key, reduced to what the lookup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedApiKey {
    pub prefix: String,
    pub secret_hash_hex: String,
}

impl ParsedApiKey {
    /// The `resolve_api_key` call that finds who owns it.
    pub fn rpc(&self) -> ResolveApiKey<'_> {
        ResolveApiKey {
            prefix: &self.prefix,
            secret_hash: &self.secret_hash_hex,
        }
    }
}

/// Generating and reading API keys.
pub struct ApiKey;

impl ApiKey {
    /// Makes a key from random bytes (the first 12 for the id, the other 32
    /// for the secret); the Worker passes `crypto.getRandomValues` output.
    pub fn generate(random_bytes: [u8; RANDOM_BYTES]) -> GeneratedApiKey {
        let (id, secret) = random_bytes.split_at(ID_BYTES);
        let prefix = format!("{KEY_MARKER}{}", hex::encode(id));
        let secret = URL_SAFE_NO_PAD.encode(secret);
        GeneratedApiKey {
            full_key: format!("{prefix}_{secret}"),
            secret_hash_hex: secret_hash(&secret),
            prefix,
        }
    }

    /// Reads a presented key strictly: marker, 24 lowercase hex characters, an
    /// underscore, and a base64url secret of 32 to 128 characters.
    pub fn parse(presented: &str) -> Result<ParsedApiKey, AuthError> {
        let malformed = AuthError::MalformedApiKey;
        let rest = presented
            .strip_prefix(KEY_MARKER)
            .ok_or(malformed.clone())?;
        // Byte offsets below are safe: everything checked is ASCII.
        let id = rest.get(..ID_LEN).ok_or(malformed.clone())?;
        let secret = rest
            .get(ID_LEN..)
            .and_then(|after_id| after_id.strip_prefix('_'))
            .ok_or(malformed.clone())?;
        let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let secret_ok = SECRET_CHARS.contains(&secret.len())
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !(id_ok && secret_ok) {
            return Err(malformed);
        }
        Ok(ParsedApiKey {
            prefix: format!("{KEY_MARKER}{id}"),
            secret_hash_hex: secret_hash(secret),
        })
    }
}

/// `POST /v1/api-keys`: `{"name", "scopes"?, "expires_at"?}`.
///
/// Anything but an object, and an unknown or missing field, is `invalid_json`
/// (400). The database judges the name's length, the scopes and whether the
/// expiry is in the future; what it could not even take as an argument is
/// refused here with the same codes, so it never becomes a 502: a NUL
/// character (PostgreSQL text cannot hold one) in the name or a scope, and an
/// `expires_at` that is not an RFC 3339 date-time (OpenAPI `date-time`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "openapi",
    schemars(description = "`POST /v1/api-keys`: a key for an LLM server, shown once.")
)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// 1 to 100 characters, surrounding spaces trimmed
    #[cfg_attr(feature = "openapi", schemars(length(min = 1, max = 100)))]
    pub name: String,
    /// default `["usage:write"]`
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schemars(length(min = 1), extend("items" = {"enum": ["usage:write", "usage:read"]}))
    )]
    #[cfg_attr(feature = "openapi", schemars(transform = crate::openapi::optional))]
    pub scopes: Option<Vec<String>>,
    /// in the future; default never
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(extend("format" = "date-time")))]
    #[cfg_attr(feature = "openapi", schemars(transform = crate::openapi::optional))]
    pub expires_at: Option<String>,
}

impl NewApiKey {
    pub fn parse(body: serde_json::Value) -> Result<Self, ApiError> {
        // serde would also fill the struct from an array (`["name"]`).
        if !body.is_object() {
            return Err(ApiError::InvalidJson {
                reason: "an API key request must be a JSON object".into(),
            });
        }
        let key: NewApiKey = serde_json::from_value(body).map_err(|e| ApiError::InvalidJson {
            reason: e.to_string(),
        })?;
        let refuse = |code, message: &str| ApiError::Unprocessable {
            code,
            message: message.to_string(),
        };
        if key.name.contains('\0') {
            return Err(refuse(
                "invalid_name",
                "name must not contain NUL characters",
            ));
        }
        if key
            .scopes
            .iter()
            .flatten()
            .any(|scope| scope.contains('\0'))
        {
            return Err(refuse(
                "invalid_scopes",
                "scopes are usage:write and/or usage:read",
            ));
        }
        if key
            .expires_at
            .as_deref()
            .is_some_and(|at| !is_date_time(at))
        {
            return Err(refuse(
                "invalid_expiry",
                "expires_at must be an RFC 3339 date-time, like 2026-12-31T23:59:59Z",
            ));
        }
        Ok(key)
    }

    /// The `create_api_key` call that stores `generated` for `user_id`, the
    /// signed-in user the edge verified (the service role's call: a user
    /// calling it straight through the REST layer could choose their own
    /// key material).
    pub fn rpc<'a>(&'a self, generated: &'a GeneratedApiKey, user_id: &'a str) -> CreateApiKey<'a> {
        CreateApiKey {
            name: &self.name,
            prefix: &generated.prefix,
            secret_hash: &generated.secret_hash_hex,
            scopes: self.scopes.as_deref(),
            expires_at: self.expires_at.as_deref(),
            user_id,
        }
    }
}

/// An RFC 3339 date-time (`2026-12-31T23:59:59Z`, optional fractional
/// seconds, `Z` or `±hh:mm`) that PostgreSQL's `timestamptz` also takes.
///
/// RFC 3339 allows offsets up to ±23:59 and the year 0000; PostgreSQL
/// refuses an offset of 16 hours or more ("time zone displacement out of
/// range") and the year 0, and such a value reaching `create_api_key` was a
/// 502. Four-digit years (RFC 3339's only form) are otherwise well inside
/// PostgreSQL's range (4713 BC to 294276 AD), even after the offset moves
/// the instant across a year. A leap second (`:60`) is taken, as PostgreSQL
/// takes it.
///
/// The fields sit at fixed places, so they are cut out here and judged by
/// the `time` crate's constructors (the calendar, the clock, the offset).
/// Its RFC 3339 parser (`OffsetDateTime::parse`) would do both, but cost
/// the Worker 5.2 KiB gzipped for this one field.
fn is_date_time(s: &str) -> bool {
    const MAX_OFFSET_HOURS: u8 = 15;
    // ASCII only, so byte offsets are character offsets.
    if !s.is_ascii() || s.len() < 20 {
        return false;
    }
    let b = s.as_bytes();
    let number = |at: usize, len: usize| -> Option<u32> {
        let digits = s.get(at..at + len)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators = b[4] == b'-'
        && b[7] == b'-'
        && b[10].eq_ignore_ascii_case(&b'T')
        && b[13] == b':'
        && b[16] == b':';
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        number(0, 4),
        number(5, 2),
        number(8, 2),
        number(11, 2),
        number(14, 2),
        number(17, 2),
    ) else {
        return false;
    };
    let date_ok = year >= 1
        && u8::try_from(month)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .is_some_and(|month| {
                time::Date::from_calendar_date(year as i32, month, day as u8).is_ok()
            });
    // :60 is judged as :59: a leap second has no `time::Time` of its own.
    let time_ok = time::Time::from_hms(hour as u8, minute as u8, second.min(59) as u8).is_ok()
        && second <= 60;
    let mut zone = 19;
    if b[zone] == b'.' {
        let digits = b[zone + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return false;
        }
        zone += 1 + digits;
    }
    let zone_ok = match &b[zone..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', _, _, b':', _, _] => match (number(zone + 1, 2), number(zone + 4, 2)) {
            (Some(hours), Some(minutes)) => {
                hours <= u32::from(MAX_OFFSET_HOURS)
                    && time::UtcOffset::from_hms(hours as i8, minutes as i8, 0).is_ok()
            }
            _ => false,
        },
        _ => false,
    };
    separators && date_ok && time_ok && zone_ok
}

/// Whether a bearer token is meant as an API key rather than a JWT.
pub fn looks_like_api_key(token: &str) -> bool {
    token.starts_with(KEY_MARKER)
}

/// Hex SHA-256 of a secret, as stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One row per create request: accepted, or the status and code.
    #[test]
    fn new_key_requests_refuse_what_the_database_cannot_take() {
        let cases: Vec<(serde_json::Value, Option<(u16, &str)>)> = vec![
            (serde_json::json!({"name": "llm"}), None),
            (
                serde_json::json!({"name": "llm", "scopes": ["usage:read"],
                    "expires_at": "2026-12-31T23:59:59Z"}),
                None,
            ),
            (
                serde_json::json!({"name": "llm", "expires_at": "2026-06-30t12:59:60.123456+05:30"}),
                None,
            ),
            (
                serde_json::json!({"name": "llm", "expires_at": "2026-12-31T23:59:59.5+05:30"}),
                None,
            ),
            // The widest offsets PostgreSQL takes, at both ends of the
            // four-digit years.
            (
                serde_json::json!({"name": "llm", "expires_at": "9999-12-31T23:59:59-15:59"}),
                None,
            ),
            (
                serde_json::json!({"name": "llm", "expires_at": "0001-01-01T00:00:00+15:59"}),
                None,
            ),
            (serde_json::json!({"name": "llm", "expires_at": null}), None),
            (
                serde_json::json!({"name": "k\u{0}"}),
                Some((422, "invalid_name")),
            ),
            (
                serde_json::json!({"name": "k", "scopes": ["usage:read\u{0}"]}),
                Some((422, "invalid_scopes")),
            ),
            (
                serde_json::json!({"name": "k", "admin": true}),
                Some((400, "invalid_json")),
            ),
            (
                serde_json::json!({"scopes": []}),
                Some((400, "invalid_json")),
            ),
            (serde_json::json!(["k"]), Some((400, "invalid_json"))),
        ];
        for bad_expiry in [
            "tomorrow",
            "x'; drop table platform.api_keys; --",
            "2026-12-31",
            "2026-12-31T23:59:59",
            "2026-12-31 23:59:59Z",
            "2026-02-30T00:00:00Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31T23:60:00Z",
            "2026-12-31T23:59:59.Z",
            "2026-12-31T23:59:59+24:00",
            // Valid RFC 3339 that PostgreSQL refuses: a 502 before.
            "2026-12-31T23:59:59+16:00",
            "2026-12-31T23:59:59-23:59",
            "0000-06-30T12:00:00Z",
            "2026-12-31T23:59:61Z",
            "2026-12-31T23:59:59+0100",
            "infinity",
            "2026-12-31T23:59:59Zx",
            "２０２６-12-31T23:59:59Z",
        ] {
            let got = NewApiKey::parse(serde_json::json!({"name": "k", "expires_at": bad_expiry}))
                .map_err(|e| (e.status(), e.code().to_string()));
            assert_eq!(
                got,
                Err((422, "invalid_expiry".to_string())),
                "{bad_expiry}"
            );
        }
        for (body, want) in cases {
            let got =
                NewApiKey::parse(body.clone()).map_err(|e| (e.status(), e.code().to_string()));
            match want {
                None => assert!(got.is_ok(), "{body}: {got:?}"),
                Some((status, code)) => {
                    assert_eq!(got, Err((status, code.to_string())), "{body}")
                }
            }
        }
    }

    fn bytes(seed: u8) -> [u8; RANDOM_BYTES] {
        std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let mut random = [0u8; RANDOM_BYTES];
        random[..ID_BYTES].copy_from_slice(&[
            0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5,
        ]);
        random[ID_BYTES..].fill(0xff);
        let key = ApiKey::generate(random);
        assert_eq!(key.prefix, "cds_1a2b3c4d5e6f708192a3b4c5");
        // 32 bytes of 0xff in base64url without padding.
        let secret = "_".repeat(42) + "8";
        assert_eq!(
            key.full_key,
            format!("cds_1a2b3c4d5e6f708192a3b4c5_{secret}")
        );
        // Independently: SHA-256 of the secret text, in hex.
        let expected: String = Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(key.secret_hash_hex, expected);
        assert_eq!(key.secret_hash_hex.len(), 64);
    }

    #[test]
    fn the_hash_of_an_empty_secret_matches_the_sha256_test_vector() {
        assert_eq!(
            secret_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// One row per presented string: accepted, or refused as malformed.
    #[test]
    fn parses_strictly() {
        let good_secret = "A".repeat(43);
        let cases: Vec<(&str, String, bool)> = vec![
            (
                "generated shape",
                format!("cds_1a2b3c4d5e6f708192a3b4c5_{good_secret}"),
                true,
            ),
            (
                "secret with - and _",
                format!(
                    "cds_1a2b3c4d5e6f708192a3b4c5_{}-_{}",
                    "a".repeat(20),
                    "b".repeat(20)
                ),
                true,
            ),
            (
                "shortest secret",
                format!("cds_000000000000000000000000_{}", "x".repeat(32)),
                true,
            ),
            (
                "secret too short",
                format!("cds_000000000000000000000000_{}", "x".repeat(31)),
                false,
            ),
            (
                "secret too long",
                format!("cds_000000000000000000000000_{}", "x".repeat(129)),
                false,
            ),
            (
                "uppercase id",
                format!("cds_1A2B3C4D5E6F708192A3B4C5_{good_secret}"),
                false,
            ),
            (
                "id not hex",
                format!("cds_1a2b3c4d5e6f708192a3b4cz_{good_secret}"),
                false,
            ),
            (
                "id too short",
                format!("cds_1a2b3c4d5e6f708192a3b4c_{good_secret}"),
                false,
            ),
            (
                "the 8-character id of the drafts",
                format!("cds_1a2b3c4d_{good_secret}"),
                false,
            ),
            (
                "id too long",
                format!("cds_1a2b3c4d5e6f708192a3b4c5d_{good_secret}"),
                false,
            ),
            (
                "no separator",
                format!("cds_{}{good_secret}", "1a2b3c4d5e6f708192a3b4c5"),
                false,
            ),
            (
                "other marker",
                format!("cdx_1a2b3c4d5e6f708192a3b4c5_{good_secret}"),
                false,
            ),
            (
                "padding in secret",
                format!("cds_1a2b3c4d5e6f708192a3b4c5_{}=", "A".repeat(42)),
                false,
            ),
            (
                "standard base64 in secret",
                format!("cds_1a2b3c4d5e6f708192a3b4c5_{}+/", "A".repeat(41)),
                false,
            ),
            (
                "space in secret",
                format!("cds_1a2b3c4d5e6f708192a3b4c5_{} ", "A".repeat(42)),
                false,
            ),
            (
                "non-ASCII in id",
                format!("cds_1a2b3c4d5e6f708192a3b4é_{good_secret}"),
                false,
            ),
            ("marker only", "cds_".into(), false),
            ("a JWT", "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(), false),
            ("empty", String::new(), false),
        ];
        for (case, presented, ok) in cases {
            let got = ApiKey::parse(&presented);
            assert_eq!(got.is_ok(), ok, "{case}: {got:?}");
            if let Err(err) = got {
                assert_eq!((err.code(), err.status()), ("malformed_api_key", 401));
            }
        }
    }

    #[test]
    fn the_secret_never_appears_in_debug_output() {
        let key = ApiKey::generate(bytes(1));
        let secret = key
            .full_key
            .rsplit_once('_')
            .map(|(_, s)| s.to_string())
            .unwrap();
        assert!(!format!("{key:?}").contains(&secret));
    }

    #[test]
    fn api_keys_and_jwts_are_told_apart() {
        assert!(looks_like_api_key(&ApiKey::generate(bytes(2)).full_key));
        assert!(!looks_like_api_key("eyJhbGciOiJFUzI1NiJ9.e30.sig"));
        assert!(!looks_like_api_key(""));
    }

    proptest! {
        /// Every generated key parses back to the prefix and hash it was
        /// stored with.
        #[test]
        fn generated_keys_parse_back(random in proptest::array::uniform32(any::<u8>()), id in any::<[u8; ID_BYTES]>()) {
            let mut all = [0u8; RANDOM_BYTES];
            all[..ID_BYTES].copy_from_slice(&id);
            all[ID_BYTES..].copy_from_slice(&random);
            let key = ApiKey::generate(all);
            let parsed = ApiKey::parse(&key.full_key).unwrap();
            prop_assert_eq!(parsed.prefix, key.prefix);
            prop_assert_eq!(parsed.secret_hash_hex, key.secret_hash_hex);
        }

        /// Parsing any string never panics (slicing at odd UTF-8 boundaries included).
        #[test]
        fn parse_never_panics(presented in "\\PC{0,80}") {
            let _ = ApiKey::parse(&presented);
            let _ = ApiKey::parse(&format!("cds_{presented}"));
        }
    }
}

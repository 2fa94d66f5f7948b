//! The Supabase project's API keys (`SUPABASE_ANON_KEY`,
//! `SUPABASE_SERVICE_ROLE_KEY`), classified when the configuration is read.
//!
//! A project has the legacy keys, long-lived JWTs whose `role` claim is
//! `anon` or `service_role`, and may instead (or as well) have the newer
//! `sb_publishable_…` and `sb_secret_…` keys. The kinds differ in how they
//! may be sent: a legacy key is a JWT PostgREST can verify, so it also goes
//! as `Authorization: Bearer`; the new keys are not JWTs, so they go only as
//! `apikey`, from which Supabase's gateway picks the role (sent as a bearer
//! token, hosted PostgREST refuses them with PGRST301). `postgrest::Client`
//! decides the headers from [`SupabaseKey::is_jwt`].
//!
//! A key in the wrong slot can only be a mistake, and one of them (a secret
//! or service-role key where the public key goes) hands out the right to skip
//! row-level security, so it is refused at load. No refusal quotes the key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use std::fmt;

const PUBLISHABLE_PREFIX: &str = "sb_publishable_";
const SECRET_PREFIX: &str = "sb_secret_";

/// The form a configured key has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A legacy API key: a JWT carrying its role.
    LegacyJwt,
    /// `sb_publishable_…`: the public key, in place of the legacy `anon`.
    Publishable,
    /// `sb_secret_…`: a server key, in place of the legacy `service_role`.
    Secret,
}

/// Which key format the edge runs with, as `GET /health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub enum KeyScheme {
    /// Both keys are legacy JWTs.
    LegacyJwt,
    /// A publishable and a secret key.
    PublishableSecret,
    /// One of each, e.g. halfway through moving to the new keys.
    Mixed,
}

impl KeyScheme {
    pub fn of(anon: &SupabaseKey, service_role: &SupabaseKey) -> Self {
        match (anon.is_jwt(), service_role.is_jwt()) {
            (true, true) => KeyScheme::LegacyJwt,
            (false, false) => KeyScheme::PublishableSecret,
            _ => KeyScheme::Mixed,
        }
    }
}

/// A project API key whose kind fits the slot it was configured in.
#[derive(Clone, PartialEq, Eq)]
pub struct SupabaseKey {
    value: String,
    kind: KeyKind,
}

// Hand-written so a stray `{:?}` can never print a key.
impl fmt::Debug for SupabaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SupabaseKey({:?}, <redacted>)", self.kind)
    }
}

impl SupabaseKey {
    /// `SUPABASE_ANON_KEY`: a publishable key or the legacy `anon` JWT.
    pub fn anon(raw: &str) -> Result<Self, String> {
        let kind = match classify(raw)? {
            Form::Publishable => KeyKind::Publishable,
            Form::Secret => {
                return Err("is a secret key (sb_secret_…); this is the public key: \
                     use the publishable key (sb_publishable_…) or the legacy anon key"
                    .into())
            }
            Form::LegacyJwt { role } if role == "anon" => KeyKind::LegacyJwt,
            Form::LegacyJwt { role } if role == "service_role" => {
                return Err("is the legacy service_role key; this is the public key: \
                     use the legacy anon key or a publishable key (sb_publishable_…)"
                    .into())
            }
            Form::LegacyJwt { .. } => {
                return Err(
                    "is a JWT whose role is not `anon`: use the legacy anon key \
                     or a publishable key (sb_publishable_…)"
                        .into(),
                )
            }
        };
        Ok(SupabaseKey {
            value: raw.to_string(),
            kind,
        })
    }

    /// `SUPABASE_SERVICE_ROLE_KEY`: a secret key or the legacy
    /// `service_role` JWT.
    pub fn service_role(raw: &str) -> Result<Self, String> {
        let kind = match classify(raw)? {
            Form::Secret => KeyKind::Secret,
            Form::Publishable => {
                return Err(
                    "is a publishable key (sb_publishable_…), which only has the \
                     anon role: use a secret key (sb_secret_…) or the legacy service_role key"
                        .into(),
                )
            }
            Form::LegacyJwt { role } if role == "service_role" => KeyKind::LegacyJwt,
            Form::LegacyJwt { role } if role == "anon" => {
                return Err("is the legacy anon key: use the legacy service_role key \
                     or a secret key (sb_secret_…)"
                    .into())
            }
            Form::LegacyJwt { .. } => {
                return Err("is a JWT whose role is not `service_role`: use the legacy \
                     service_role key or a secret key (sb_secret_…)"
                    .into())
            }
        };
        Ok(SupabaseKey {
            value: raw.to_string(),
            kind,
        })
    }

    /// The key as configured, for the `apikey` header (and `Authorization`
    /// when it is a JWT).
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Whether PostgREST accepts this key as a bearer token.
    pub fn is_jwt(&self) -> bool {
        self.kind == KeyKind::LegacyJwt
    }
}

/// What a configured key looks like, before the slot is considered.
enum Form {
    Publishable,
    Secret,
    /// A JWT; `role` is its unverified `role` claim ("" when it has none).
    LegacyJwt {
        role: String,
    },
}

fn classify(raw: &str) -> Result<Form, String> {
    if raw.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters".into());
    }
    for (prefix, is_publishable) in [(PUBLISHABLE_PREFIX, true), (SECRET_PREFIX, false)] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            if rest.is_empty() {
                return Err(format!("is only the {prefix} prefix, without the key"));
            }
            return Ok(if is_publishable {
                Form::Publishable
            } else {
                Form::Secret
            });
        }
    }
    // The role is read without checking the signature: this only tells
    // which key the operator pasted where; PostgREST verifies the key itself.
    let mut parts = raw.split('.');
    let (Some(_header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_a_key());
    };
    if signature.is_empty() {
        return Err(not_a_key());
    }
    let claims = URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter(serde_json::Value::is_object)
        .ok_or_else(not_a_key)?;
    let role = claims["role"].as_str().unwrap_or_default().to_string();
    Ok(Form::LegacyJwt { role })
}

fn not_a_key() -> String {
    "is neither a legacy JWT API key nor an sb_publishable_ / sb_secret_ key".into()
}

/// Keys of each kind for tests: JWT-shaped legacy keys (their signatures are
/// placeholders; nothing here verifies them) and new-format keys.
#[cfg(test)]
pub(crate) mod test_keys {
    /// `{"alg":"HS256","typ":"JWT"}`.`{"role":"anon"}`.`signature`
    pub const LEGACY_ANON: &str =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl";
    /// `{"alg":"HS256","typ":"JWT"}`.`{"role":"service_role"}`.`signature`
    pub const LEGACY_SERVICE_ROLE: &str =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl";
    pub const PUBLISHABLE: &str = "sb_publishable_Xq3mZ8kP2vN7rT1yW5uB9c_a1b2c3d4";
    pub const SECRET: &str = "sb_secret_Lk9jH7gF5dS3aQ1wE2rT4y_e5f6g7h8";
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    /// `{"role":"authenticated"}` and `{"iss":"supabase"}`, as JWTs.
    const USER_JWT: &str =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2lnbmF0dXJl";
    const ROLELESS_JWT: &str =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSJ9.c2lnbmF0dXJl";

    /// One row per key: what it is accepted as in each slot.
    #[test]
    fn each_slot_takes_its_own_kinds_of_key() {
        type Slot = Result<KeyKind, ()>;
        let cases: &[(&str, &str, Slot, Slot)] = &[
            ("legacy anon", LEGACY_ANON, Ok(KeyKind::LegacyJwt), Err(())),
            (
                "legacy service_role",
                LEGACY_SERVICE_ROLE,
                Err(()),
                Ok(KeyKind::LegacyJwt),
            ),
            (
                "publishable",
                PUBLISHABLE,
                Ok(KeyKind::Publishable),
                Err(()),
            ),
            ("secret", SECRET, Err(()), Ok(KeyKind::Secret)),
            ("a user's token", USER_JWT, Err(()), Err(())),
            ("a JWT without role", ROLELESS_JWT, Err(()), Err(())),
            ("the prefix alone", "sb_secret_", Err(()), Err(())),
            ("a project ref", "abcdefghijklmnopqrst", Err(()), Err(())),
            (
                "two parts",
                "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9",
                Err(()),
                Err(()),
            ),
            (
                "no signature",
                "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.",
                Err(()),
                Err(()),
            ),
            ("claims not base64", "a.b!.c", Err(()), Err(())),
            ("a space inside", "sb_secret_abc def", Err(()), Err(())),
        ];
        for &(case, raw, as_anon, as_service) in cases {
            let kind = |got: Result<SupabaseKey, String>| got.map(|k| k.kind()).map_err(|_| ());
            assert_eq!(kind(SupabaseKey::anon(raw)), as_anon, "{case} as anon");
            assert_eq!(
                kind(SupabaseKey::service_role(raw)),
                as_service,
                "{case} as service role"
            );
        }
    }

    #[test]
    fn a_refusal_says_what_the_key_is_and_never_quotes_it() {
        let cases = [
            (SupabaseKey::anon(SECRET), "is a secret key"),
            (
                SupabaseKey::anon(LEGACY_SERVICE_ROLE),
                "is the legacy service_role key",
            ),
            (
                SupabaseKey::service_role(PUBLISHABLE),
                "is a publishable key",
            ),
            (
                SupabaseKey::service_role(LEGACY_ANON),
                "is the legacy anon key",
            ),
            (SupabaseKey::anon("not-a-key"), "is neither"),
        ];
        for (got, reason) in cases {
            let err = got.unwrap_err();
            assert!(err.starts_with(reason), "{err}");
            for key in [SECRET, LEGACY_SERVICE_ROLE, PUBLISHABLE, LEGACY_ANON] {
                assert!(!err.contains(&key[15..]), "{err}");
            }
        }
    }

    #[test]
    fn only_legacy_keys_are_jwts() {
        assert!(SupabaseKey::anon(LEGACY_ANON).unwrap().is_jwt());
        assert!(SupabaseKey::service_role(LEGACY_SERVICE_ROLE)
            .unwrap()
            .is_jwt());
        assert!(!SupabaseKey::anon(PUBLISHABLE).unwrap().is_jwt());
        assert!(!SupabaseKey::service_role(SECRET).unwrap().is_jwt());
    }

    #[test]
    fn the_scheme_names_the_kinds_in_use() {
        let anon = |raw| SupabaseKey::anon(raw).unwrap();
        let service = |raw| SupabaseKey::service_role(raw).unwrap();
        let cases = [
            (
                LEGACY_ANON,
                LEGACY_SERVICE_ROLE,
                KeyScheme::LegacyJwt,
                "legacy_jwt",
            ),
            (
                PUBLISHABLE,
                SECRET,
                KeyScheme::PublishableSecret,
                "publishable_secret",
            ),
            (LEGACY_ANON, SECRET, KeyScheme::Mixed, "mixed"),
            (PUBLISHABLE, LEGACY_SERVICE_ROLE, KeyScheme::Mixed, "mixed"),
        ];
        for (a, s, scheme, json) in cases {
            let got = KeyScheme::of(&anon(a), &service(s));
            assert_eq!(got, scheme);
            assert_eq!(serde_json::to_value(got).unwrap(), json);
        }
    }

    #[test]
    fn debug_never_prints_a_key() {
        for key in [
            SupabaseKey::anon(PUBLISHABLE).unwrap(),
            SupabaseKey::service_role(SECRET).unwrap(),
            SupabaseKey::service_role(LEGACY_SERVICE_ROLE).unwrap(),
        ] {
            let printed = format!("{key:?}");
            assert!(printed.ends_with("<redacted>)"), "{printed}");
            assert!(!printed.contains(&key.value()[15..]), "{printed}");
        }
    }
}

//! The Database Webhook on `auth.users`: a new user, to mirror into our schema.
//!
//! Supabase sends `{"type": "INSERT" | "UPDATE" | "DELETE", "table", "schema",
//! "record", "old_record"}`, with `record` an `auth.users` row (columns
//! `id`, `email`, `phone`, `raw_user_meta_data`, ...). Only inserts into
//! `auth.users` are handled; anything else was routed here by mistake and is
//! refused with `unsupported_webhook_event`, so the misconfiguration shows in
//! the webhook's log instead of being silently dropped.

use crate::auth::{Role, VerifiedClaims};
use crate::config::UserRole;
use crate::error::ApiError;
use crate::rpc::account::MirrorAuthUser;
use serde::{Deserialize, Serialize};

/// Usernames are at most this long (in ASCII characters).
pub const MAX_USERNAME_LEN: usize = 32;
/// A sanitized candidate shorter than this is not used.
const MIN_USERNAME_LEN: usize = 3;

/// The row the edge creates for a new user. Serialized into a queue message
/// when the queue consumer must mirror the user (see
/// [`crate::hooks::jit_mirror`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorUser {
    /// `auth.users.id`, lowercase.
    pub id: String,
    pub email: Option<String>,
    /// A readable handle: lowercase ASCII letters, digits and `_`, 3 to 32
    /// characters. Not unique by construction; the database resolves clashes.
    pub username: String,
    pub role: UserRole,
}

/// Who asks for the mirror: `mirror_auth_user`'s `p_source`, recorded in
/// telemetry (`user_mirror_webhook`, `user_mirror_jit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorSource {
    /// The `auth.users` Database Webhook.
    Webhook,
    /// A verified access token of a user not mirrored yet
    /// ([`crate::hooks::jit_mirror`]).
    Jit,
}

impl MirrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorSource::Webhook => "webhook",
            MirrorSource::Jit => "jit",
        }
    }
}

/// The Database Webhook's body (Supabase's `pg_net` trigger): only an
/// INSERT into `auth.users` is handled; its `record` is the new row.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct DatabaseWebhook {
    /// `INSERT`
    #[serde(rename = "type")]
    kind: String,
    /// `users`
    table: String,
    /// `auth`
    schema: String,
    /// the new row: `id`, `email`, `raw_user_meta_data`
    #[serde(default)]
    record: Option<serde_json::Value>,
}

fn unprocessable(code: &'static str, message: &str) -> ApiError {
    ApiError::Unprocessable {
        code,
        message: message.to_string(),
    }
}

impl MirrorUser {
    /// Reads an `auth.users` INSERT webhook body; new users get `role`.
    pub fn from_webhook(body: &[u8], role: UserRole) -> Result<Self, ApiError> {
        let event: DatabaseWebhook =
            serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson {
                reason: e.to_string(),
            })?;
        if (
            event.kind.as_str(),
            event.schema.as_str(),
            event.table.as_str(),
        ) != ("INSERT", "auth", "users")
        {
            return Err(unprocessable(
                "unsupported_webhook_event",
                "this endpoint handles inserts into auth.users only",
            ));
        }
        let record = event
            .record
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| unprocessable("invalid_webhook_record", "the record is missing"))?;
        let id = record
            .get("id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| crate::auth::is_uuid(id))
            .ok_or_else(|| unprocessable("invalid_webhook_record", "the record has no user id"))?
            .to_ascii_lowercase();
        let email = clean_email(record.get("email").and_then(serde_json::Value::as_str));
        // PostgreSQL text cannot hold NUL (the mirror RPC would fail, a 502),
        // and no real auth.users row has one.
        if email.as_deref().is_some_and(|e| e.contains('\0')) {
            return Err(unprocessable(
                "invalid_webhook_record",
                "the record's email contains a NUL character",
            ));
        }
        let chosen = record
            .pointer("/raw_user_meta_data/username")
            .and_then(serde_json::Value::as_str);
        let username = username_for(chosen, email.as_deref(), &id);
        Ok(MirrorUser {
            id,
            email,
            username,
            role,
        })
    }

    /// The same row from a verified access token: `sub`, `email` and
    /// `user_metadata.username` are the `auth.users` columns the webhook
    /// reads. `None` for a token that names no real account: an anonymous
    /// sign-in, or a role other than `authenticated`.
    pub fn from_claims(claims: &VerifiedClaims, role: UserRole) -> Option<Self> {
        if claims.is_anonymous || claims.role != Role::Authenticated {
            return None;
        }
        let id = claims.sub.to_ascii_lowercase();
        // A NUL cannot be stored; such an email is left out rather than
        // failing the caller's request.
        let email = clean_email(claims.email.as_deref()).filter(|e| !e.contains('\0'));
        let username = username_for(claims.username.as_deref(), email.as_deref(), &id);
        Some(MirrorUser {
            id,
            email,
            username,
            role,
        })
    }

    /// The same row without its email, for when the database refuses the
    /// email (see [`crate::hooks::jit_mirror::after_mirror`]).
    pub fn without_email(&self) -> Self {
        MirrorUser {
            email: None,
            ..self.clone()
        }
    }

    /// The `platform.mirror_auth_user` call for this row.
    pub fn rpc(&self, source: MirrorSource) -> MirrorAuthUser<'_> {
        MirrorAuthUser {
            id: &self.id,
            email: self.email.as_deref(),
            username: &self.username,
            role: self.role.as_str(),
            source: source.as_str(),
        }
    }
}

/// An email as stored: trimmed, and absent rather than empty.
fn clean_email(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|e| !e.is_empty())
        .map(ToString::to_string)
}

/// The first usable of: the username the user chose at sign-up, the local
/// part of their email (without a `+tag`), or `user_` and the start of their id.
fn username_for(chosen: Option<&str>, email: Option<&str>, id: &str) -> String {
    let from_email = email
        .and_then(|e| e.rsplit_once('@'))
        .map(|(local, _)| local.split('+').next().unwrap_or(local));
    [chosen, from_email]
        .into_iter()
        .flatten()
        .map(sanitize_username)
        .find(|name| name.len() >= MIN_USERNAME_LEN)
        .unwrap_or_else(|| format!("user_{}", id.get(..8).unwrap_or(id)))
}

/// Lowercase ASCII letters and digits kept; `.`, `-`, `+`, spaces and `_`
/// become a single `_`; everything else is dropped; no `_` at either end.
fn sanitize_username(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len().min(MAX_USERNAME_LEN));
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if name.len() == MAX_USERNAME_LEN {
                break;
            }
            name.push(c);
        } else if matches!(c, '.' | '-' | '+' | '_' | ' ')
            && !name.is_empty()
            && !name.ends_with('_')
            && name.len() < MAX_USERNAME_LEN
        {
            name.push('_');
        }
    }
    name.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "ff7fc9ae-3b1b-4642-9241-64adb9848a03";

    fn insert(record: serde_json::Value) -> Vec<u8> {
        json!({"type": "INSERT", "table": "users", "schema": "auth",
               "record": record, "old_record": null})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_new_user_becomes_a_mirror_row() {
        let body = insert(json!({
            "id": ID.to_uppercase(),
            "email": "Ada.Lovelace+test@example.com",
            "raw_user_meta_data": {"username": "Ada Lovelace"},
            "raw_app_meta_data": {"provider": "email"}
        }));
        let user = MirrorUser::from_webhook(&body, UserRole::Developer).unwrap();
        assert_eq!(
            user,
            MirrorUser {
                id: ID.into(),
                email: Some("Ada.Lovelace+test@example.com".into()),
                username: "ada_lovelace".into(),
                role: UserRole::Developer,
            }
        );
        assert_eq!(
            serde_json::to_value(&user).unwrap()["role"],
            json!("developer")
        );
    }

    /// One row per record: where the username comes from and what it becomes.
    #[test]
    fn usernames_fall_back_and_are_sanitized() {
        let x32 = "x".repeat(32);
        let a31 = "a".repeat(31);
        let cases = [
            (json!({"username": "grace_h"}), Some("x@y.com"), "grace_h"),
            (json!({"username": "  --Zoë!! "}), Some("zoe@y.com"), "zoe"),
            (
                json!({"username": "ab"}),
                Some("grace.hopper+w@navy.mil"),
                "grace_hopper",
            ),
            (json!({"username": 42}), Some("linus@kernel.org"), "linus"),
            (json!({}), Some("a..b--c@x.io"), "a_b_c"),
            (json!({}), Some("日本@x.jp"), "user_ff7fc9ae"),
            (json!({}), None, "user_ff7fc9ae"),
            (json!({"username": "x".repeat(40)}), None, x32.as_str()),
            (
                json!({"username": format!("{}_{}", "a".repeat(31), "b")}),
                None,
                a31.as_str(),
            ),
        ];
        for (meta, email, want) in cases {
            let body = insert(json!({"id": ID, "email": email, "raw_user_meta_data": meta}));
            let got = MirrorUser::from_webhook(&body, UserRole::Viewer).unwrap();
            assert_eq!(got.username, want, "{meta} {email:?}");
        }
    }

    #[test]
    fn sanitizing_keeps_only_the_safe_characters() {
        let cases = [
            ("Ada Lovelace", "ada_lovelace"),
            ("  --Zoë!! ", "zo"),
            ("__x__y__", "x_y"),
            ("a.b-c+d e", "a_b_c_d_e"),
            ("<script>", "script"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_username(raw), want, "{raw:?}");
        }
    }

    fn claims(changes: serde_json::Value) -> VerifiedClaims {
        let mut claims = VerifiedClaims {
            sub: ID.to_uppercase(),
            role: Role::Authenticated,
            email: Some("Ada.Lovelace+test@example.com".into()),
            phone: None,
            session_id: None,
            is_anonymous: false,
            aal: Some("aal1".into()),
            username: Some("Ada Lovelace".into()),
            exp: 2_000_000_000,
            iat: None,
        };
        let text = |v: &serde_json::Value| v.as_str().map(ToString::to_string);
        for (name, value) in changes.as_object().unwrap() {
            match name.as_str() {
                "email" => claims.email = text(value),
                "username" => claims.username = text(value),
                "is_anonymous" => claims.is_anonymous = value.as_bool().unwrap(),
                "role" => {
                    claims.role = if value == "anon" {
                        Role::Anon
                    } else {
                        Role::ServiceRole
                    }
                }
                _ => panic!("no claim {name} here"),
            }
        }
        claims
    }

    #[test]
    fn a_token_gives_the_row_the_webhook_would() {
        let from_token = MirrorUser::from_claims(&claims(json!({})), UserRole::Developer).unwrap();
        let body = insert(json!({
            "id": ID,
            "email": "Ada.Lovelace+test@example.com",
            "raw_user_meta_data": {"username": "Ada Lovelace"}
        }));
        let from_webhook = MirrorUser::from_webhook(&body, UserRole::Developer).unwrap();
        assert_eq!(from_token, from_webhook);
        assert_eq!(from_token.id, ID, "the id is lowercase");
    }

    /// One row per token: the username and email mirrored, or no row.
    #[test]
    fn tokens_are_mirrored_unless_anonymous() {
        let cases = [
            (json!({"username": null}), Some(("ada_lovelace", true))),
            (
                json!({"username": null, "email": null}),
                Some(("user_ff7fc9ae", false)),
            ),
            (json!({"email": "  "}), Some(("ada_lovelace", false))),
            (
                json!({"email": "a\u{0}@example.com", "username": null}),
                Some(("user_ff7fc9ae", false)),
            ),
            (json!({"is_anonymous": true}), None),
            (json!({"role": "anon"}), None),
            (json!({"role": "service_role"}), None),
        ];
        for (changes, want) in cases {
            let got = MirrorUser::from_claims(&claims(changes.clone()), UserRole::Viewer)
                .map(|u| (u.username, u.email.is_some(), u.role));
            let want = want.map(|(name, email)| (name.to_string(), email, UserRole::Viewer));
            assert_eq!(got, want, "{changes}");
        }
    }

    #[test]
    fn the_rpc_names_every_field_and_the_source() {
        let user = MirrorUser::from_claims(&claims(json!({})), UserRole::Developer).unwrap();
        assert_eq!(
            serde_json::to_value(user.rpc(MirrorSource::Jit)).unwrap(),
            json!({"p_id": ID, "p_email": "Ada.Lovelace+test@example.com",
                   "p_username": "ada_lovelace", "p_role": "developer", "p_source": "jit"})
        );
        assert_eq!(
            serde_json::to_value(user.without_email().rpc(MirrorSource::Webhook)).unwrap(),
            json!({"p_id": ID, "p_email": null, "p_username": "ada_lovelace",
                   "p_role": "developer", "p_source": "webhook"})
        );
    }

    /// One row per event that is not a new user: the code it is refused with.
    #[test]
    fn other_events_are_refused() {
        let record = json!({"id": ID});
        let event = |kind: &str, schema: &str, table: &str, record: serde_json::Value| {
            json!({"type": kind, "schema": schema, "table": table, "record": record,
                   "old_record": null})
            .to_string()
        };
        let cases = [
            (
                event("UPDATE", "auth", "users", record.clone()),
                422,
                "unsupported_webhook_event",
            ),
            (
                event("DELETE", "auth", "users", json!(null)),
                422,
                "unsupported_webhook_event",
            ),
            (
                event("INSERT", "public", "users", record.clone()),
                422,
                "unsupported_webhook_event",
            ),
            (
                event("INSERT", "auth", "identities", record.clone()),
                422,
                "unsupported_webhook_event",
            ),
            (
                event("INSERT", "auth", "users", json!(null)),
                422,
                "invalid_webhook_record",
            ),
            (
                event("INSERT", "auth", "users", json!({})),
                422,
                "invalid_webhook_record",
            ),
            (
                event("INSERT", "auth", "users", json!({"id": "42"})),
                422,
                "invalid_webhook_record",
            ),
            (
                event("INSERT", "auth", "users", json!([ID])),
                422,
                "invalid_webhook_record",
            ),
            (
                event(
                    "INSERT",
                    "auth",
                    "users",
                    json!({"id": ID, "email": "a\u{0}@example.com"}),
                ),
                422,
                "invalid_webhook_record",
            ),
            (r#"{"type": "INSERT"}"#.to_string(), 400, "invalid_json"),
            ("not json".to_string(), 400, "invalid_json"),
        ];
        for (body, status, code) in cases {
            let err = MirrorUser::from_webhook(body.as_bytes(), UserRole::Developer).unwrap_err();
            assert_eq!((err.status(), err.code()), (status, code), "{body}");
        }
    }
}

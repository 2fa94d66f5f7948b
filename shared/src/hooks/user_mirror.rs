//! The Database Webhook on `auth.users`: a new user, to mirror into our schema.
//!
//! Supabase sends `{"type": "INSERT" | "UPDATE" | "DELETE", "table", "schema",
//! "record", "old_record"}`, with `record` an `auth.users` row (columns
//! `id`, `email`, `phone`, `raw_user_meta_data`, ...). Only inserts into
//! `auth.users` are handled; anything else was routed here by mistake and is
//! refused with `unsupported_webhook_event`, so the misconfiguration shows in
//! the webhook's log instead of being silently dropped.

use crate::config::UserRole;
use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// Usernames are at most this long (in ASCII characters).
pub const MAX_USERNAME_LEN: usize = 32;
/// A sanitized candidate shorter than this is not used.
const MIN_USERNAME_LEN: usize = 3;

/// The row the edge creates for a new user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorUser {
    /// `auth.users.id`, lowercase.
    pub id: String,
    pub email: Option<String>,
    /// A readable handle: lowercase ASCII letters, digits and `_`, 3 to 32
    /// characters. Not unique by construction; the database resolves clashes.
    pub username: String,
    pub role: UserRole,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    table: String,
    schema: String,
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
        let event: Event = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson {
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
        let email = record
            .get("email")
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(ToString::to_string);
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

//! Users, their API keys, their default model, and admins' grants.

use super::{Answer, Rpc};
use serde::Serialize;
use serde_json::Value;

/// `platform.mirror_auth_user`: the idempotent mirror of a Supabase Auth
/// user (`hooks::MirrorUser::rpc`), as the service role.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorAuthUser<'a> {
    #[serde(rename = "p_id")]
    pub id: &'a str,
    #[serde(rename = "p_email")]
    pub email: Option<&'a str>,
    #[serde(rename = "p_username")]
    pub username: &'a str,
    #[serde(rename = "p_role")]
    pub role: &'a str,
    /// `webhook` or `jit`, counted in telemetry as `user_mirror_<source>`.
    #[serde(rename = "p_source")]
    pub source: &'a str,
}

impl Rpc for MirrorAuthUser<'_> {
    const NAME: &'static str = "mirror_auth_user";
    const ARGS: &'static [&'static str] = &["p_id", "p_email", "p_username", "p_role", "p_source"];
    type Output = Value;
}

/// `platform.resolve_api_key`: who owns a presented key (by its public
/// prefix and the secret's hash), as the service role; revoked, expired and
/// unknown keys are refused by the function.
#[derive(Debug, Clone, Serialize)]
pub struct ResolveApiKey<'a> {
    #[serde(rename = "p_prefix")]
    pub prefix: &'a str,
    #[serde(rename = "p_secret_hash")]
    pub secret_hash: &'a str,
}

/// The key's owner and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedApiKey {
    pub key_id: String,
    pub user_id: String,
    /// Left out or not a list: none.
    pub scopes: Vec<String>,
}

impl Answer for ResolvedApiKey {
    fn from_answer(mut value: Value) -> Result<Self, String> {
        // `get_mut`, not indexing: indexing a non-object to write panics.
        let mut take = |field: &str| value.get_mut(field).map_or(Value::Null, Value::take);
        let mut text = |field: &str| match take(field) {
            Value::String(s) => Ok(s),
            other => Err(format!("{field} is {other}, not a string")),
        };
        let (key_id, user_id) = (text("key_id")?, text("user_id")?);
        let scopes = match take("scopes") {
            Value::Array(scopes) => scopes
                .into_iter()
                .filter_map(|s| match s {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(ResolvedApiKey {
            key_id,
            user_id,
            scopes,
        })
    }
}

impl Rpc for ResolveApiKey<'_> {
    const NAME: &'static str = "resolve_api_key";
    const ARGS: &'static [&'static str] = &["p_prefix", "p_secret_hash"];
    type Output = ResolvedApiKey;
}

/// `platform.create_api_key`: stores a key the edge generated, as the
/// service role naming the signed-in user, so nobody chooses their own key
/// material. Left-out scopes take the function's default.
#[derive(Debug, Clone, Serialize)]
pub struct CreateApiKey<'a> {
    #[serde(rename = "p_name")]
    pub name: &'a str,
    #[serde(rename = "p_prefix")]
    pub prefix: &'a str,
    #[serde(rename = "p_secret_hash")]
    pub secret_hash: &'a str,
    #[serde(rename = "p_scopes", skip_serializing_if = "Option::is_none")]
    pub scopes: Option<&'a [String]>,
    #[serde(rename = "p_expires_at")]
    pub expires_at: Option<&'a str>,
    #[serde(rename = "p_user_id")]
    pub user_id: &'a str,
}

impl Rpc for CreateApiKey<'_> {
    const NAME: &'static str = "create_api_key";
    const ARGS: &'static [&'static str] = &[
        "p_name",
        "p_prefix",
        "p_secret_hash",
        "p_scopes",
        "p_expires_at",
        "p_user_id",
    ];
    type Output = Value;
}

rpc_without_arguments! {
    /// `platform.list_api_keys`: the caller's keys, without secrets.
    ListApiKeys = "list_api_keys"
}

/// `platform.revoke_api_key`: one of the caller's keys.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeApiKey<'a> {
    #[serde(rename = "p_key_id")]
    pub key_id: &'a str,
}

impl Rpc for RevokeApiKey<'_> {
    const NAME: &'static str = "revoke_api_key";
    const ARGS: &'static [&'static str] = &["p_key_id"];
    type Output = Value;
}

/// `platform.set_default_model`: the caller's default model.
#[derive(Debug, Clone, Serialize)]
pub struct SetDefaultModel<'a> {
    #[serde(rename = "p_model")]
    pub model: &'a str,
}

impl Rpc for SetDefaultModel<'_> {
    const NAME: &'static str = "set_default_model";
    const ARGS: &'static [&'static str] = &["p_model"];
    type Output = Value;
}

/// `platform.grant_user_tokens`: an admin credits a balance, audited. The
/// user is named by exactly one of `user_id` and `email`; both are always
/// sent (`p_user_id` has no default, so PostgREST finds the function only
/// when it is named, null or not).
#[derive(Debug, Clone, Serialize)]
pub struct GrantUserTokens<'a> {
    #[serde(rename = "p_user_id")]
    pub user_id: Option<&'a str>,
    #[serde(rename = "p_email")]
    pub email: Option<&'a str>,
    #[serde(rename = "p_amount")]
    pub amount: u64,
    #[serde(rename = "p_reason")]
    pub reason: &'a str,
    #[serde(rename = "p_idempotency_key")]
    pub idempotency_key: Option<&'a str>,
}

impl Rpc for GrantUserTokens<'_> {
    const NAME: &'static str = "grant_user_tokens";
    const ARGS: &'static [&'static str] = &[
        "p_user_id",
        "p_email",
        "p_amount",
        "p_reason",
        "p_idempotency_key",
    ];
    type Output = Value;
}

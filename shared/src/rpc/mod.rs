//! Every SQL function the edge calls, one type each, in the manner of
//! mini-redis's commands: the function's name, the schema it lives in, its
//! arguments as a struct whose serde names are the SQL parameter names
//! (`p_…`), and the answer's type. Handlers build calls from these types only;
//! `postgrest::Client::rpc` turns one into the request, and
//! `doctor::EXPECTED_RPCS` (what `cargo xtask doctor` checks against a live
//! project) is [`ALL`], so the names the edge sends, the ones it checks and
//! the ones the migrations define cannot drift apart unnoticed (the tests
//! below serialize every type and compare its keys with its [`Rpc::ARGS`]).
//!
//! The areas: [`usage`] (recording and holds), [`account`] (users, API keys,
//! grants), [`catalogue`] (models), [`operations`] (cron, telemetry, the
//! queue, metrics, the deployment report).

/// A function without arguments: an empty struct, sent as `{}`, whose
/// answer is passed on as it came.
macro_rules! rpc_without_arguments {
    ($(#[$doc:meta])* $ty:ident = $name:literal $(, schema $schema:literal)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, serde::Serialize)]
        pub struct $ty {}

        impl $crate::rpc::Rpc for $ty {
            const NAME: &'static str = $name;
            const ARGS: &'static [&'static str] = &[];
            $(const SCHEMA: &'static str = $schema;)?
            type Output = serde_json::Value;
        }
    };
}

pub mod account;
pub mod catalogue;
pub mod operations;
pub mod usage;

use crate::error::ApiError;
use serde::Serialize;
use serde_json::Value;

/// The schema every function of the edge lives in; PostgREST must expose it.
pub const SCHEMA: &str = "platform";

/// One SQL function, called through PostgREST as `POST /rest/v1/rpc/<NAME>`
/// with the value serialized as the JSON object of named arguments.
pub trait Rpc: Serialize {
    /// The function's name in [`Rpc::SCHEMA`].
    const NAME: &'static str;
    /// Its parameter names, as the migrations define them: PostgREST picks a
    /// function by the names of the arguments sent.
    const ARGS: &'static [&'static str];
    /// `Content-Profile`: `platform`, but for the deployment report.
    const SCHEMA: &'static str = SCHEMA;
    /// What the edge reads from the answer.
    type Output: Answer;

    /// The JSON object of named arguments, as sent: serde's ([`arguments`]),
    /// unless a type writes its own. The usage queue's calls do: they paste
    /// each message's events in as delivered (`crate::queue`), which serde
    /// cannot do without serde_json's `raw_value` feature.
    fn arguments(&self) -> Result<String, ApiError> {
        arguments(self)
    }
}

/// A function's name and parameters, as the doctor checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

const fn signature<R: Rpc>() -> Signature {
    Signature {
        name: R::NAME,
        args: R::ARGS,
    }
}

/// Every function in `platform` the edge calls (or an operator is told to
/// call, `deployment_status`), for the doctor.
pub const ALL: &[Signature] = &[
    signature::<catalogue::DeactivateModel>(),
    signature::<catalogue::UpsertModel>(),
    signature::<operations::DeploymentStatus>(),
    signature::<account::CreateApiKey>(),
    signature::<usage::GetUsageOverview>(),
    signature::<account::GrantUserTokens>(),
    signature::<account::ListApiKeys>(),
    signature::<catalogue::ListModels>(),
    signature::<usage::ListUsageEvents>(),
    signature::<operations::MetricsSnapshot>(),
    signature::<account::MirrorAuthUser>(),
    signature::<operations::RecordExecutionMetrics>(),
    signature::<operations::PruneTelemetry>(),
    signature::<operations::RecordQueuedUsage>(),
    signature::<usage::RecordTokenUsage>(),
    signature::<usage::RecordTokenUsageBatch>(),
    signature::<operations::RecordUsageDeadLetters>(),
    signature::<operations::RefreshDailyTokenSummary>(),
    signature::<operations::ReleaseExpiredReservations>(),
    signature::<usage::ReleaseTokenReservation>(),
    signature::<usage::ReserveTokens>(),
    signature::<account::ResolveApiKey>(),
    signature::<account::RevokeApiKey>(),
    signature::<account::SetDefaultModel>(),
    signature::<usage::UsageEventStatus>(),
];

/// Who a call made as the service role acts for: an API key's calls name the
/// key's owner and the key; a user's own token speaks for itself, and then
/// neither is sent (the functions default them to null).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActingFor<'a> {
    #[serde(rename = "p_user_id", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(rename = "p_api_key_id", skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<&'a str>,
}

impl<'a> ActingFor<'a> {
    /// A user's own token: nobody to name.
    pub const TOKEN: ActingFor<'static> = ActingFor {
        user_id: None,
        api_key_id: None,
    };

    pub fn api_key(user_id: &'a str, api_key_id: &'a str) -> Self {
        ActingFor {
            user_id: Some(user_id),
            api_key_id: Some(api_key_id),
        }
    }
}

/// How an answer becomes the type the edge reads. An answer the edge passes
/// on untouched stays a `Value` (no second pass over it). The few the edge
/// reads field by field take their fields out of the `Value` by hand: a
/// derived `Deserialize` per answer costs the Worker's wasm more than the
/// reading does. `Err` says what was missing.
pub trait Answer: Sized {
    fn from_answer(value: Value) -> Result<Self, String>;
}

impl Answer for Value {
    fn from_answer(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}

/// The answer of `R`, read as `R::Output`; an answer of another shape is
/// the deployment's fault (the function is not the one the edge expects).
pub fn output<R: Rpc>(answer: Value) -> Result<R::Output, ApiError> {
    R::Output::from_answer(answer).map_err(|e| unreadable_answer(R::NAME, e))
}

/// The JSON object of named arguments. Our argument types are structs of
/// strings, numbers and JSON values, which always serialize; should one not,
/// the call is not sent.
pub fn arguments<R: Rpc + ?Sized>(rpc: &R) -> Result<String, ApiError> {
    serde_json::to_string(rpc).map_err(|e| unserializable(R::NAME, e))
}

// The error paths are not generic, so each call type adds only its
// serialization to the Worker's wasm, not another copy of the formatting.
#[cold]
#[inline(never)]
fn unreadable_answer(name: &str, e: String) -> ApiError {
    ApiError::Upstream {
        detail: format!("{name} answered in a shape the edge does not read: {e}"),
    }
}

#[cold]
#[inline(never)]
pub(crate) fn unserializable(name: &str, e: serde_json::Error) -> ApiError {
    ApiError::Internal {
        detail: format!("arguments of {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    /// One fully populated value of every type (every optional argument
    /// given), serialized: its keys must be exactly what the type declares
    /// in `ARGS`, which is what the doctor checks the database against.
    fn samples() -> Vec<(Signature, Value)> {
        fn sample<R: Rpc>(rpc: R) -> (Signature, Value) {
            let value = serde_json::to_value(&rpc).expect("serializes");
            (signature::<R>(), value)
        }
        let acting = ActingFor::api_key("u", "k");
        let metadata = json!({"a": 1});
        vec![
            sample(catalogue::DeactivateModel { name: "m" }),
            sample(catalogue::UpsertModel {
                name: "m",
                provider: "p",
                context_size: 1,
                input_cost_per_1k_tokens: &serde_json::Number::from(1),
                output_cost_per_1k_tokens: &serde_json::Number::from(2),
                repo_url: Some("https://x"),
                metadata: &metadata,
                is_active: true,
            }),
            sample(operations::DeploymentStatus {}),
            sample(account::CreateApiKey {
                name: "n",
                prefix: "cds_0",
                secret_hash: "00",
                scopes: Some(&[]),
                expires_at: Some("2030-01-01T00:00:00Z"),
                user_id: "u",
            }),
            sample(usage::GetUsageOverview {
                from: Some("2026-01-01"),
                to: Some("2026-01-02"),
                user_id: Some("u"),
            }),
            sample(account::GrantUserTokens {
                user_id: Some("u"),
                email: None,
                amount: 1,
                reason: "r",
                idempotency_key: Some("k"),
            }),
            sample(account::ListApiKeys {}),
            sample(catalogue::ListModels {}),
            sample(usage::ListUsageEvents {
                limit: 50,
                before_us: Some(1),
                before_id: Some(1),
                acting,
            }),
            sample(operations::MetricsSnapshot {}),
            sample(account::MirrorAuthUser {
                id: "u",
                email: Some("a@example.com"),
                username: "ada",
                role: "developer",
                source: "jit",
            }),
            sample(operations::RecordExecutionMetrics { cells: vec![] }),
            sample(operations::PruneTelemetry {}),
            sample(operations::RecordQueuedUsage { messages: &[] }),
            sample(usage::RecordTokenUsage {
                model: "m",
                prompt_tokens: 1,
                completion_tokens: 1,
                idempotency_key: "k",
                project_id: Some("p"),
                session_id: Some("s"),
                reservation_id: Some("r"),
                metadata: &metadata,
                acting,
            }),
            sample(usage::RecordTokenUsageBatch {
                events: vec![],
                acting,
            }),
            sample(operations::RecordUsageDeadLetters {
                messages: &[],
                reason: operations::DEAD_LETTER_REASON,
            }),
            sample(operations::RefreshDailyTokenSummary {}),
            sample(operations::ReleaseExpiredReservations {}),
            sample(usage::ReleaseTokenReservation {
                reservation_id: "r",
                acting,
            }),
            sample(usage::ReserveTokens {
                tokens: 1,
                ttl_seconds: 60,
                acting,
            }),
            sample(account::ResolveApiKey {
                prefix: "cds_0",
                secret_hash: "00",
            }),
            sample(account::RevokeApiKey { key_id: "k" }),
            sample(account::SetDefaultModel { model: "m" }),
            sample(usage::UsageEventStatus {
                idempotency_key: "k",
                acting,
            }),
        ]
    }

    #[test]
    fn every_type_sends_exactly_the_arguments_it_declares() {
        for (signature, value) in samples() {
            let sent: BTreeSet<&str> = value
                .as_object()
                .unwrap_or_else(|| panic!("{} is not sent as an object", signature.name))
                .keys()
                .map(String::as_str)
                .collect();
            let declared: BTreeSet<&str> = signature.args.iter().copied().collect();
            assert_eq!(sent, declared, "{}", signature.name);
            assert_eq!(
                declared.len(),
                signature.args.len(),
                "{} declares an argument twice",
                signature.name
            );
        }
    }

    #[test]
    fn the_doctor_checks_every_type_once() {
        let sampled: Vec<Signature> = samples().into_iter().map(|(s, _)| s).collect();
        assert_eq!(sampled.as_slice(), ALL);
        let names: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), ALL.len(), "a function listed twice");
        assert_eq!(crate::doctor::EXPECTED_RPCS, ALL);
    }

    /// Each function the types name is defined in the migrations with the
    /// parameters the type declares (names only; `create or replace function
    /// platform.<name>(p_a type, p_b type default …)`).
    #[test]
    fn every_type_matches_its_definition_in_the_migrations() {
        let sql = migrations_text();
        for signature in ALL {
            let name = format!("function {}.{}(", SCHEMA, signature.name);
            let start = ["create or replace ", "create "]
                .iter()
                .find_map(|create| {
                    sql.find(&format!("{create}{name}"))
                        .map(|at| at + create.len())
                })
                .unwrap_or_else(|| panic!("no migration defines {}", signature.name))
                + name.len();
            let params = parameter_list(&sql[start..]);
            let defined: BTreeSet<&str> = params
                .split(',')
                .filter_map(|p| p.split_whitespace().next())
                .filter(|p| !p.is_empty())
                .collect();
            let declared: BTreeSet<&str> = signature.args.iter().copied().collect();
            assert_eq!(defined, declared, "{}", signature.name);
        }
    }

    /// Up to the parenthesis that closes the parameter list (defaults may
    /// hold parentheses of their own).
    fn parameter_list(from: &str) -> &str {
        let mut depth = 1;
        for (i, c) in from.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &from[..i];
                    }
                }
                _ => {}
            }
        }
        from
    }

    pub(crate) fn migrations_text() -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../supabase/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("supabase/migrations")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a migration reads"))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase()
    }

    #[test]
    fn a_users_own_token_names_nobody_and_an_api_key_names_both() {
        assert_eq!(serde_json::to_value(ActingFor::TOKEN).unwrap(), json!({}));
        assert_eq!(
            serde_json::to_value(ActingFor::api_key("u", "k")).unwrap(),
            json!({"p_user_id": "u", "p_api_key_id": "k"})
        );
    }

    #[test]
    fn an_answer_of_another_shape_is_an_upstream_fault() {
        let err = output::<account::ResolveApiKey>(json!({"user_id": 1})).unwrap_err();
        assert_eq!((err.status(), err.code()), (502, "upstream_error"));
        assert!(err.log_detail().unwrap().contains("resolve_api_key"));
        let passed = output::<catalogue::ListModels>(json!([{"name": "m"}])).unwrap();
        assert_eq!(passed, json!([{"name": "m"}]));
        // Whatever the shape, an answer is refused, never a panic.
        for odd in [json!([1]), json!("x"), json!(null), json!({"results": {}})] {
            assert!(
                output::<account::ResolveApiKey>(odd.clone()).is_err(),
                "{odd}"
            );
            assert!(
                output::<usage::RecordTokenUsageBatch>(odd.clone()).is_err(),
                "{odd}"
            );
        }
    }

    #[test]
    fn typed_answers_read_their_fields() {
        let resolved = output::<account::ResolveApiKey>(json!({
            "key_id": "k", "user_id": "u", "scopes": ["usage:read", 7, "usage:write"]
        }))
        .unwrap();
        assert_eq!(
            resolved,
            account::ResolvedApiKey {
                key_id: "k".into(),
                user_id: "u".into(),
                scopes: vec!["usage:read".into(), "usage:write".into()],
            }
        );
        let no_scopes = output::<account::ResolveApiKey>(json!({"key_id": "k", "user_id": "u"}));
        assert_eq!(no_scopes.unwrap().scopes, Vec::<String>::new());
        let batch = output::<usage::RecordTokenUsageBatch>(json!({
            "recorded": 1, "results": [{"status": "recorded"}]
        }))
        .unwrap();
        assert_eq!(batch.results, vec![json!({"status": "recorded"})]);
    }

    /// Scopes left out take the function's default; the key's owner is the
    /// user the edge verified, never a field of the request.
    #[test]
    fn a_new_key_is_stored_for_the_verified_user() {
        use crate::auth::api_key::{NewApiKey, RANDOM_BYTES};
        let generated = crate::auth::ApiKey::generate([7; RANDOM_BYTES]);
        let plain = NewApiKey::parse(json!({"name": "llm"})).unwrap();
        assert_eq!(
            serde_json::to_value(plain.rpc(&generated, "u")).unwrap(),
            json!({"p_name": "llm", "p_prefix": generated.prefix,
                   "p_secret_hash": generated.secret_hash_hex,
                   "p_expires_at": null, "p_user_id": "u"})
        );
        let scoped = NewApiKey::parse(json!({"name": "llm", "scopes": ["usage:read"]})).unwrap();
        let sent = serde_json::to_value(scoped.rpc(&generated, "u")).unwrap();
        assert_eq!(sent["p_scopes"], json!(["usage:read"]));
        assert!(!sent.to_string().contains(&generated.full_key));
    }
}

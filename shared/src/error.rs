//! The one error type every edge function answers with.
//!
//! Each variant has a stable machine `code`, an HTTP `status` and a `message`
//! that is safe to show the caller. Detail meant for operators is logged by the
//! caller of [`ApiError::log_detail`], never put into the response. Every
//! code, the edge's and the database's, is listed in [`CATALOGUE`].

use crate::auth::AuthError;
use crate::rate_limit::Limiter;
use serde::Serialize;

pub mod catalogue;
pub use catalogue::CATALOGUE;

/// An error the edge answers with `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no route for this path")]
    NotFound,

    #[error("method not allowed for this path")]
    MethodNotAllowed { allowed: Vec<&'static str> },

    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    #[error("content type must be application/json")]
    UnsupportedMediaType,

    #[error("request body is not valid JSON: {reason}")]
    InvalidJson { reason: String },

    #[error("origin is not allowed")]
    OriginNotAllowed,

    /// A request the endpoint cannot take as it is (e.g. no idempotency key).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },

    #[error("a batch carries at most {max} events")]
    BatchTooLarge { max: usize },

    /// The caller's credentials were refused. The message is the same for
    /// every reason; `code` says which check failed.
    #[error("{message}")]
    Unauthorized {
        code: &'static str,
        message: &'static str,
    },

    /// The caller is known but may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },

    /// Well-formed JSON that asks for something this endpoint does not do
    /// (e.g. a webhook event it does not handle).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },

    /// The database refused the request for a reason it chose to expose: one of
    /// our own functions raised `PTxyz` with a stable code in the hint.
    #[error("{message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },

    /// The caller went over one of the rate limits (`crate::rate_limit`).
    #[error("too many requests: {} was reached; retry after {retry_after_secs} s", .limiter.describe())]
    RateLimited {
        limiter: Limiter,
        retry_after_secs: u32,
    },

    /// The REST layer or the database is down, overloaded or too slow.
    #[error("the database is temporarily unavailable")]
    Unavailable { retry_after_secs: u32 },

    /// An asymmetric token cannot be checked: the project's signing keys
    /// could not be fetched for longer than `JWKS_MAX_STALE_SECS`, so the
    /// edge no longer trusts the ones it holds.
    #[error("the signing keys are temporarily unavailable")]
    JwksUnavailable { retry_after_secs: u32 },

    /// The REST layer answered something we did not expect: a missing function,
    /// a refused service key, an unexpected body. A deployment problem, not the
    /// caller's.
    #[error("the database answered unexpectedly")]
    Upstream { detail: String },

    /// PostgREST does not serve the schema our functions live in
    /// (`PGRST106`): the project's exposed schemas lack it. The operator's
    /// fix is in `detail`.
    #[error("the service is misconfigured")]
    SchemaNotExposed { detail: String },

    /// PostgREST has no function of that name taking these arguments
    /// (`PGRST202`): the migrations this edge expects are not applied. The
    /// function and the fix are in `detail`.
    #[error("the service is misconfigured")]
    RpcMissing { detail: String },

    /// A required Worker variable or secret is missing or invalid.
    #[error("the service is misconfigured")]
    Misconfigured { detail: String },

    #[error("internal error")]
    Internal { detail: String },
}

impl ApiError {
    /// The stable, documented machine code.
    pub fn code(&self) -> &str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::BatchTooLarge { .. } => "batch_too_large",
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Rejected { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "database_unavailable",
            ApiError::JwksUnavailable { .. } => "jwks_unavailable",
            ApiError::Upstream { .. } => "upstream_error",
            ApiError::SchemaNotExposed { .. } => "schema_not_exposed",
            ApiError::RpcMissing { .. } => "rpc_missing",
            ApiError::Misconfigured { .. } => "misconfigured",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::InvalidJson { .. } => 400,
            ApiError::OriginNotAllowed => 403,
            ApiError::BadRequest { .. } => 400,
            ApiError::BatchTooLarge { .. } => 413,
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::Unprocessable { .. } => 422,
            ApiError::Rejected { status, .. } => *status,
            ApiError::RateLimited { .. } => 429,
            ApiError::Unavailable { .. } | ApiError::JwksUnavailable { .. } => 503,
            // The REST layer answered, but the project behind it is not set
            // up for this edge: a fault upstream of the Worker, as for
            // `Upstream`; not 503, since waiting does not fix it.
            ApiError::Upstream { .. }
            | ApiError::SchemaNotExposed { .. }
            | ApiError::RpcMissing { .. } => 502,
            ApiError::Misconfigured { .. } | ApiError::Internal { .. } => 500,
        }
    }

    /// Extra headers the status calls for (`Allow` on 405, `Retry-After` on
    /// 429 and 503, `WWW-Authenticate` on 401 as RFC 9110 requires).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::MethodNotAllowed { allowed } => vec![("allow", allowed.join(", "))],
            ApiError::Unauthorized { .. } => vec![("www-authenticate", "Bearer".to_string())],
            ApiError::Unavailable { retry_after_secs }
            | ApiError::JwksUnavailable { retry_after_secs }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                vec![("retry-after", retry_after_secs.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// What operators need to see in the logs and callers must not.
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            ApiError::Upstream { detail }
            | ApiError::SchemaNotExposed { detail }
            | ApiError::RpcMissing { detail }
            | ApiError::Misconfigured { detail }
            | ApiError::Internal { detail } => Some(detail),
            _ => None,
        }
    }

    /// The JSON body: `{"error": {"code": ..., "message": ...}}`.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: String,
        }
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
            },
        };
        // Serializing two strings cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// A refused caller is a 401 with a generic message; our own broken webhook
/// secret is a 500 for operators.
impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::WebhookSecretMisconfigured { reason } => ApiError::Misconfigured {
                detail: format!("AUTH_HOOK_SECRET: {reason}"),
            },
            other => ApiError::Unauthorized {
                code: other.code(),
                message: other.public_message(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_and_message_only() {
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::PayloadTooLarge { limit: 10 }.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "payload_too_large",
                "message": "request body is larger than 10 bytes"}})
        );
    }

    #[test]
    fn operator_detail_never_reaches_the_body() {
        let err = ApiError::Upstream {
            detail: "PGRST202 record_token_usage(secret_arg)".into(),
        };
        assert!(!err.body().contains("PGRST202"));
        assert_eq!(
            err.log_detail(),
            Some("PGRST202 record_token_usage(secret_arg)")
        );
        assert_eq!(err.status(), 502);
    }

    #[test]
    fn deployment_faults_name_the_fix_for_operators_only() {
        let cases = [
            (
                ApiError::SchemaNotExposed {
                    detail: "PGRST106 ... Exposed schemas".into(),
                },
                "schema_not_exposed",
            ),
            (
                ApiError::RpcMissing {
                    detail: "PGRST202 ... supabase db push".into(),
                },
                "rpc_missing",
            ),
        ];
        for (err, code) in cases {
            assert_eq!((err.status(), err.code()), (502, code));
            assert_eq!(err.to_string(), "the service is misconfigured");
            assert!(err.log_detail().unwrap().contains("PGRST"));
            assert!(!err.body().contains("PGRST"), "{}", err.body());
            assert!(err.headers().is_empty());
        }
    }

    #[test]
    fn statuses_carry_their_headers() {
        let err = ApiError::Unavailable {
            retry_after_secs: 3,
        };
        assert_eq!(err.headers(), vec![("retry-after", "3".to_string())]);
        let err = ApiError::MethodNotAllowed {
            allowed: vec!["GET", "HEAD"],
        };
        assert_eq!(err.headers(), vec![("allow", "GET, HEAD".to_string())]);
    }

    #[test]
    fn rejected_uses_the_database_code_and_status() {
        let err = ApiError::Rejected {
            status: 402,
            code: "insufficient_balance".into(),
            message: "balance too low".into(),
        };
        assert_eq!((err.status(), err.code()), (402, "insufficient_balance"));
    }

    #[test]
    fn auth_errors_become_generic_401s_with_a_bearer_challenge() {
        let cases = [
            (AuthError::TokenExpired, "token_expired"),
            (AuthError::InvalidSignature, "invalid_signature"),
            (AuthError::AlgorithmKeyMismatch, "invalid_signature"),
            (
                AuthError::UnknownKeyId {
                    kid: "forged".into(),
                },
                "unknown_key_id",
            ),
            (AuthError::MalformedApiKey, "malformed_api_key"),
        ];
        for (auth, code) in cases {
            let err = ApiError::from(auth);
            assert_eq!((err.status(), err.code()), (401, code));
            assert_eq!(err.to_string(), "invalid access token");
            assert_eq!(
                err.headers(),
                vec![("www-authenticate", "Bearer".to_string())]
            );
            assert!(!err.body().contains("forged"), "{}", err.body());
        }
        let err = ApiError::from(AuthError::WebhookTimestampTooOld);
        assert_eq!(
            (err.status(), err.code(), err.to_string().as_str()),
            (
                401,
                "webhook_timestamp_too_old",
                "invalid webhook signature"
            )
        );
    }

    #[test]
    fn a_misconfigured_webhook_secret_is_a_500_for_operators() {
        let err = ApiError::from(AuthError::WebhookSecretMisconfigured {
            reason: "not base64",
        });
        assert_eq!((err.status(), err.code()), (500, "misconfigured"));
        assert!(err.log_detail().unwrap().contains("not base64"));
        assert!(!err.body().contains("base64"));
    }

    #[test]
    fn forbidden_and_unprocessable_carry_their_code_and_message() {
        let err = ApiError::Forbidden {
            code: "viewer_cannot_write",
            message: "viewers cannot create API keys".into(),
        };
        assert_eq!((err.status(), err.code()), (403, "viewer_cannot_write"));
        let err = ApiError::Unprocessable {
            code: "unsupported_webhook_event",
            message: "inserts only".into(),
        };
        assert_eq!(
            (err.status(), err.code(), err.to_string().as_str()),
            (422, "unsupported_webhook_event", "inserts only")
        );
    }
}

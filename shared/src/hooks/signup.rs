//! The "before user created" Auth hook: may this person sign up?
//!
//! Supabase Auth calls the hook with `{"metadata": {"uuid", "time", "name":
//! "before-user-created", "ip_address"}, "user": {...auth.users shape...}}`
//! before the user exists. The answer is `{}` to allow or `{"error":
//! {"http_code", "message"}}` to refuse, always with HTTP 200: Supabase Auth's
//! hook client reads the body only on 200/202 (supabase/auth issue 2235).
//!
//! The policy, from `SIGNUP_ALLOWED_DOMAINS` and `SIGNUP_BLOCKED_DOMAINS`:
//! - a blocked domain refuses its subdomains too (`mail.tempmail.com` when
//!   `tempmail.com` is blocked), and blocking wins over allowing;
//! - an allow list, when set, admits exactly those domains (not their
//!   subdomains: trust in `example.com` is not trust in whoever runs
//!   `x.example.com`);
//! - domains compare case-insensitively (and ignore a trailing dot);
//! - a sign-up without an email (phone, anonymous) has no domain to judge: it
//!   is allowed when there is no allow list and refused when there is one,
//!   since an allow list means "only these organisations".

use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// The hook's `metadata.name` for this hook.
pub const HOOK_NAME: &str = "before-user-created";
/// The status Supabase Auth gives the sign-up request when we refuse.
pub const REFUSAL_HTTP_CODE: u16 = 403;

/// The hook's payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct BeforeUserCreated {
    #[serde(default)]
    pub metadata: HookMetadata,
    pub user: HookUser,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct HookMetadata {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
}

/// The fields of the would-be `auth.users` row the policy reads; the rest is
/// kept in `metadata` maps as sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct HookUser {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub is_anonymous: Option<bool>,
    #[serde(default)]
    pub app_metadata: serde_json::Value,
    #[serde(default)]
    pub user_metadata: serde_json::Value,
}

impl BeforeUserCreated {
    /// Reads the raw (already signature-checked) body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let payload: BeforeUserCreated =
            serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson {
                reason: e.to_string(),
            })?;
        // Older payloads may lack `metadata`; one that names another hook was
        // sent to the wrong endpoint.
        match payload.metadata.name.as_deref() {
            None | Some(HOOK_NAME) => Ok(payload),
            Some(_) => Err(ApiError::Unprocessable {
                code: "unsupported_hook_event",
                message: format!("this endpoint handles the {HOOK_NAME} hook only"),
            }),
        }
    }

    /// The email, when the user signs up with one (Supabase sends "" otherwise).
    pub fn email(&self) -> Option<&str> {
        self.user
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }
}

/// The hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    Allow,
    Refuse { http_code: u16, message: String },
}

impl HookDecision {
    fn refuse(message: &str) -> Self {
        HookDecision::Refuse {
            http_code: REFUSAL_HTTP_CODE,
            message: message.to_string(),
        }
    }

    /// The JSON body, always sent with HTTP 200 (see the module docs).
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Refusal<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            http_code: u16,
            message: &'a str,
        }
        match self {
            HookDecision::Allow => "{}".to_string(),
            HookDecision::Refuse { http_code, message } => serde_json::to_string(&Refusal {
                error: Inner {
                    http_code: *http_code,
                    message,
                },
            })
            // A number and a string always serialize.
            .unwrap_or_default(),
        }
    }
}

/// Which email domains may sign up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignupPolicy {
    /// Empty: every domain not blocked.
    pub allowed_domains: Vec<String>,
    /// Disposable-address providers and the like, with their subdomains.
    pub blocked_domains: Vec<String>,
}

const REFUSED_DOMAIN: &str = "Sign-ups with this email domain are not allowed.";
const EMAIL_REQUIRED: &str = "Sign-ups need an email address from an approved domain.";
const INVALID_EMAIL: &str = "This email address cannot be used to sign up.";

impl SignupPolicy {
    /// Reads the comma-separated lists of the two settings; `None` or blank is
    /// an empty list. The error names the offending entry.
    pub fn from_lists(allowed: Option<&str>, blocked: Option<&str>) -> Result<Self, String> {
        Ok(SignupPolicy {
            allowed_domains: parse_domain_list(allowed.unwrap_or_default())?,
            blocked_domains: parse_domain_list(blocked.unwrap_or_default())?,
        })
    }

    pub fn decide(&self, payload: &BeforeUserCreated) -> HookDecision {
        let Some(email) = payload.email() else {
            return if self.allowed_domains.is_empty() {
                HookDecision::Allow
            } else {
                HookDecision::refuse(EMAIL_REQUIRED)
            };
        };
        let Some(domain) = email_domain(email) else {
            return HookDecision::refuse(INVALID_EMAIL);
        };
        let blocked = self
            .blocked_domains
            .iter()
            .any(|b| domain == *b || domain.ends_with(&format!(".{b}")));
        let allowed = self.allowed_domains.is_empty() || self.allowed_domains.contains(&domain);
        if blocked || !allowed {
            HookDecision::refuse(REFUSED_DOMAIN)
        } else {
            HookDecision::Allow
        }
    }
}

/// The lowercase domain of an address, without a trailing dot; `None` when
/// the address has no local part or no domain.
fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let domain: String = domain
        .trim_end_matches('.')
        .chars()
        .map(fold_case)
        .collect();
    (!local.is_empty() && !domain.is_empty()).then_some(domain)
}

/// A domain's character lowercased for comparing with the configured
/// domains, which are ASCII (`parse_domain_list`): ASCII letters, and the
/// Kelvin sign, the one non-ASCII character whose lowercase is ASCII (`K`
/// → `k`, as IDNA maps it too, so `\u{212A}mail.com` is still `kmail.com`).
/// Every other non-ASCII character matches no configured domain whether
/// lowercased or not (`İ` lowercases to `i` plus a combining dot), so it is
/// kept as sent: the decisions are those of `str::to_lowercase`, which
/// linked Unicode's case tables (about 14 KB of the Worker) for this alone.
fn fold_case(c: char) -> char {
    match c {
        '\u{212A}' => 'k',
        _ => c.to_ascii_lowercase(),
    }
}

/// Reads a comma-separated list of domains, lowercased; blank is empty. The
/// error names the offending entry.
pub fn parse_domain_list(list: &str) -> Result<Vec<String>, String> {
    let mut domains = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // `@example.com` is a common way to write a mail domain.
        let domain = entry
            .strip_prefix('@')
            .unwrap_or(entry)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let well_formed = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !well_formed {
            return Err(format!("`{entry}` is not a domain like example.com"));
        }
        domains.push(domain);
    }
    Ok(domains)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(email: Option<&str>, phone: Option<&str>) -> BeforeUserCreated {
        let body = json!({
            "metadata": {
                "uuid": "8b34dcdd-9df1-4c10-850a-b3277c653040",
                "time": "2025-04-29T13:13:24.755552-07:00",
                "name": "before-user-created",
                "ip_address": "127.0.0.1"
            },
            "user": {
                "id": "ff7fc9ae-3b1b-4642-9241-64adb9848a03",
                "aud": "authenticated",
                "role": "",
                "email": email.unwrap_or(""),
                "phone": phone.unwrap_or(""),
                "app_metadata": {"provider": "email", "providers": ["email"]},
                "user_metadata": {},
                "identities": [],
                "created_at": "0001-01-01T00:00:00Z",
                "updated_at": "0001-01-01T00:00:00Z",
                "is_anonymous": false
            }
        });
        BeforeUserCreated::parse(body.to_string().as_bytes()).unwrap()
    }

    fn policy(allowed: &str, blocked: &str) -> SignupPolicy {
        SignupPolicy::from_lists(Some(allowed), Some(blocked)).unwrap()
    }

    /// One row per sign-up: the policy, the email (or phone), allowed or not.
    #[test]
    fn decides_by_email_domain() {
        let open = policy("", "mailinator.com, @TempMail.org");
        let closed = policy("example.com, partner.io", "mailinator.com");
        // (case, policy, email, phone, allowed)
        type Case<'a> = (
            &'a str,
            &'a SignupPolicy,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: &[Case<'_>] = &[
            (
                "ordinary domain, open policy",
                &open,
                Some("ada@gmail.com"),
                None,
                true,
            ),
            (
                "blocked domain",
                &open,
                Some("ada@mailinator.com"),
                None,
                false,
            ),
            (
                "blocked, other case",
                &open,
                Some("Ada@MAILINATOR.com"),
                None,
                false,
            ),
            (
                "blocked, written with the Kelvin sign",
                &policy("", "kmail.com"),
                Some("ada@\u{212A}MAIL.com"),
                None,
                false,
            ),
            (
                "allowed, written with the Kelvin sign",
                &policy("kmail.com", ""),
                Some("ada@\u{212A}mail.com"),
                None,
                true,
            ),
            (
                "a non-ASCII letter matches no configured domain",
                &policy("mail.com", ""),
                Some("ada@MA\u{130}L.com"),
                None,
                false,
            ),
            (
                "blocked via @ entry and case",
                &open,
                Some("ada@tempmail.org"),
                None,
                false,
            ),
            (
                "subdomain of blocked",
                &open,
                Some("ada@x.mailinator.com"),
                None,
                false,
            ),
            (
                "trailing dot",
                &open,
                Some("ada@mailinator.com."),
                None,
                false,
            ),
            (
                "look-alike is not a subdomain",
                &open,
                Some("ada@notmailinator.com"),
                None,
                true,
            ),
            (
                "allowed domain",
                &closed,
                Some("ada@example.com"),
                None,
                true,
            ),
            (
                "allowed, other case",
                &closed,
                Some("ada@EXAMPLE.COM"),
                None,
                true,
            ),
            (
                "not on the allow list",
                &closed,
                Some("ada@gmail.com"),
                None,
                false,
            ),
            (
                "subdomain of allowed",
                &closed,
                Some("ada@eng.example.com"),
                None,
                false,
            ),
            (
                "blocked beats allowed",
                &policy("mailinator.com", "mailinator.com"),
                Some("a@mailinator.com"),
                None,
                false,
            ),
            ("phone, open policy", &open, None, Some("15555550100"), true),
            (
                "phone, allow list",
                &closed,
                None,
                Some("15555550100"),
                false,
            ),
            ("neither, open policy", &open, None, None, true),
            ("no domain", &open, Some("ada@"), None, false),
            ("no local part", &open, Some("@example.com"), None, false),
            ("no @ at all", &open, Some("ada"), None, false),
        ];
        for (case, policy, email, phone, allowed) in cases {
            let decision = policy.decide(&payload(*email, *phone));
            assert_eq!(
                decision == HookDecision::Allow,
                *allowed,
                "{case}: {decision:?}"
            );
            if let HookDecision::Refuse { http_code, .. } = decision {
                assert_eq!(http_code, 403, "{case}");
            }
        }
    }

    #[test]
    fn the_body_is_empty_to_allow_and_an_error_to_refuse() {
        assert_eq!(HookDecision::Allow.body(), "{}");
        let refusal: serde_json::Value = serde_json::from_str(
            &policy("", "mailinator.com")
                .decide(&payload(Some("a@mailinator.com"), None))
                .body(),
        )
        .unwrap();
        assert_eq!(
            refusal,
            json!({"error": {"http_code": 403, "message": REFUSED_DOMAIN}})
        );
    }

    #[test]
    fn domain_lists_are_validated_by_entry() {
        assert_eq!(
            SignupPolicy::from_lists(None, Some(" , ")).unwrap(),
            SignupPolicy::default()
        );
        for bad in [
            "localhost",
            "exa mple.com",
            "-x.com",
            "x..com",
            "*.x.com",
            "ada@x.com",
        ] {
            let err = SignupPolicy::from_lists(Some(bad), None).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn payloads_for_another_hook_or_of_another_shape_are_refused() {
        let other = json!({"metadata": {"name": "custom-access-token"}, "user": {}});
        let err = BeforeUserCreated::parse(other.to_string().as_bytes()).unwrap_err();
        assert_eq!((err.status(), err.code()), (422, "unsupported_hook_event"));
        let err = BeforeUserCreated::parse(b"{\"metadata\": {}}").unwrap_err();
        assert_eq!((err.status(), err.code()), (400, "invalid_json"));
        // Without metadata at all, the user is still judged.
        let bare = BeforeUserCreated::parse(br#"{"user": {"email": "a@b.com"}}"#).unwrap();
        assert_eq!(bare.email(), Some("a@b.com"));
    }
}

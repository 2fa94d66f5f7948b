//! What an API key may do: the scopes it was created with. A signed-in
//! user's token carries no scopes; it may do whatever the user's role allows
//! (the database decides that).

use crate::error::ApiError;

/// A scope an endpoint asks of an API key, as stored in `platform.api_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Record usage and hold tokens.
    UsageWrite,
    /// Read usage: the overview.
    UsageRead,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsageWrite => "usage:write",
            Scope::UsageRead => "usage:read",
        }
    }
}

/// Whether an API key holding `granted` may call an endpoint that any one
/// of `accepted` allows; refused with 403 `insufficient_scope`, naming the
/// last scope that would have done.
pub fn require_any(granted: &[String], accepted: &[Scope]) -> Result<(), ApiError> {
    if accepted
        .iter()
        .any(|scope| granted.iter().any(|g| g == scope.as_str()))
    {
        return Ok(());
    }
    let wanted = accepted.last().map_or("", |s| s.as_str());
    Err(ApiError::Forbidden {
        code: "insufficient_scope",
        message: format!("this API key lacks the {wanted} scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scope::{UsageRead, UsageWrite};

    /// One row per key and endpoint: allowed, or the scope the refusal names.
    #[test]
    fn a_key_may_do_what_one_of_its_scopes_allows() {
        let cases: &[(&[&str], &[Scope], Option<&str>)] = &[
            (&["usage:write"], &[UsageWrite], None),
            (&["usage:read"], &[UsageWrite], Some("usage:write")),
            (&["usage:read", "usage:write"], &[UsageRead], None),
            (&[], &[UsageRead], Some("usage:read")),
            // Reading an event's status: the server that sent it, or a reader.
            (&["usage:write"], &[UsageWrite, UsageRead], None),
            (&["usage:read"], &[UsageWrite, UsageRead], None),
            (&[], &[UsageWrite, UsageRead], Some("usage:read")),
            // Scopes are compared exactly.
            (
                &["usage:*", "USAGE:WRITE"],
                &[UsageWrite],
                Some("usage:write"),
            ),
        ];
        for &(granted, accepted, refused) in cases {
            let granted: Vec<String> = granted.iter().map(|s| s.to_string()).collect();
            match (require_any(&granted, accepted), refused) {
                (Ok(()), None) => {}
                (Err(err), Some(scope)) => {
                    assert_eq!((err.status(), err.code()), (403, "insufficient_scope"));
                    assert_eq!(
                        err.to_string(),
                        format!("this API key lacks the {scope} scope")
                    );
                }
                (got, _) => panic!("{granted:?} {accepted:?}: {got:?}"),
            }
        }
    }
}

//! When a background job tries a failed database call again. Only failures
//! that may pass are retried: the REST layer or Postgres down, overloaded or
//! too slow, or an unexpected upstream answer. A refusal (4xx) or a
//! misconfiguration would fail the same way every time.

use crate::ApiError;
use std::time::Duration;

/// The cron refresh's waits between attempts: three attempts within about
/// five seconds, well inside a scheduled handler's time and far from the next
/// tick. Retrying is safe because each refresh is one transaction: a run that
/// failed changed nothing, and one that committed before its answer was lost
/// leaves nothing for the retry to fold twice.
pub const CRON_BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

impl ApiError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::Upstream { .. }
        ) || matches!(self, ApiError::Rejected { status, .. } if *status >= 500)
    }
}

/// How long to wait before attempt `failed_attempts + 1` after `error`, or
/// `None` to give up.
pub fn delay_before_retry(
    schedule: &[Duration],
    failed_attempts: usize,
    error: &ApiError,
) -> Option<Duration> {
    if !error.is_transient() || failed_attempts == 0 {
        return None;
    }
    schedule.get(failed_attempts - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> ApiError {
        ApiError::Unavailable {
            retry_after_secs: 1,
        }
    }

    #[test]
    fn transient_failures_are_retried_on_the_schedule_then_given_up() {
        let e = unavailable();
        assert_eq!(
            delay_before_retry(&CRON_BACKOFF, 1, &e),
            Some(CRON_BACKOFF[0])
        );
        assert_eq!(
            delay_before_retry(&CRON_BACKOFF, 2, &e),
            Some(CRON_BACKOFF[1])
        );
        assert_eq!(delay_before_retry(&CRON_BACKOFF, 3, &e), None);
    }

    #[test]
    fn only_failures_that_may_pass_are_transient() {
        let rejected = |status: u16| ApiError::Rejected {
            status,
            code: "x".into(),
            message: "x".into(),
        };
        assert!(unavailable().is_transient());
        assert!(ApiError::Upstream {
            detail: "502".into()
        }
        .is_transient());
        assert!(rejected(503).is_transient());
        assert!(!rejected(403).is_transient());
        assert!(!rejected(409).is_transient());
        assert!(!ApiError::Misconfigured {
            detail: "no key".into()
        }
        .is_transient());
        // A schema not exposed or a function not migrated stays so until an
        // operator acts.
        assert!(!ApiError::SchemaNotExposed { detail: "x".into() }.is_transient());
        assert!(!ApiError::RpcMissing { detail: "x".into() }.is_transient());
        assert_eq!(
            delay_before_retry(&CRON_BACKOFF, 1, &rejected(403)),
            None,
            "a refusal is not retried"
        );
    }
}

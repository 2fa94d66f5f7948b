//! What the Worker runs for itself, as the service role: the cron's steps,
//! telemetry flushes, the usage queue's consumer, the metrics snapshot, and
//! the deployment checks.

use super::Rpc;
use crate::queue::{self, DeliveredUsage};
use crate::ApiError;
use serde::Serialize;
use serde_json::Value;

rpc_without_arguments! {
    /// `platform.refresh_daily_token_summary`: folds pending deltas into the
    /// rollup; skipped while another run holds the lock.
    RefreshDailyTokenSummary = "refresh_daily_token_summary"
}

rpc_without_arguments! {
    /// `platform.release_expired_reservations`: the cron's sweep of holds.
    ReleaseExpiredReservations = "release_expired_reservations"
}

rpc_without_arguments! {
    /// `platform.prune_telemetry`: deletes telemetry past its retention.
    PruneTelemetry = "prune_telemetry"
}

/// `platform.record_execution_metrics`: one isolate's flush of counted calls
/// (`telemetry::Aggregator::take`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordExecutionMetrics {
    #[serde(rename = "p_cells")]
    pub cells: Vec<Value>,
}

impl Rpc for RecordExecutionMetrics {
    const NAME: &'static str = "record_execution_metrics";
    const ARGS: &'static [&'static str] = &["p_cells"];
    type Output = Value;
}

rpc_without_arguments! {
    /// `platform.metrics_snapshot`: the lifetime totals `GET /v1/metrics`
    /// renders (`metrics::render` reads it).
    MetricsSnapshot = "metrics_snapshot"
}

/// `platform.record_queued_usage`: one delivered batch of the usage queue.
/// It answers the counts and only the rejected events (`{"messages",
/// "recorded", "replayed", "rejected", "lag_ms", "rejections"}`): the
/// consumer acknowledges or retries the whole batch, so an answer per event
/// would be built, sent and parsed for nothing.
#[derive(Debug, Serialize)]
pub struct RecordQueuedUsage<'a> {
    #[serde(rename = "p_messages")]
    pub messages: &'a [DeliveredUsage<'a>],
}

impl Rpc for RecordQueuedUsage<'_> {
    const NAME: &'static str = "record_queued_usage";
    const ARGS: &'static [&'static str] = &["p_messages"];
    type Output = Value;

    /// Each message's events pasted in as delivered.
    fn arguments(&self) -> Result<String, ApiError> {
        let mut out = String::from(r#"{"p_messages":"#);
        queue::write_entries(&mut out, self.messages)?;
        out.push('}');
        Ok(out)
    }
}

/// Why dead-lettered events are rejected, as `usage_rejections` keeps it.
pub const DEAD_LETTER_REASON: &str = "the usage queue gave up after its retries";

/// `platform.record_usage_dead_letters`: a batch of the dead-letter queue,
/// each event kept as a rejection with the reason.
#[derive(Debug, Serialize)]
pub struct RecordUsageDeadLetters<'a> {
    #[serde(rename = "p_messages")]
    pub messages: &'a [DeliveredUsage<'a>],
    #[serde(rename = "p_reason")]
    pub reason: &'a str,
}

impl Rpc for RecordUsageDeadLetters<'_> {
    const NAME: &'static str = "record_usage_dead_letters";
    const ARGS: &'static [&'static str] = &["p_messages", "p_reason"];
    type Output = Value;

    /// Each message's events pasted in as delivered.
    fn arguments(&self) -> Result<String, ApiError> {
        let mut out = String::from(r#"{"p_messages":"#);
        queue::write_entries(&mut out, self.messages)?;
        out.push_str(r#","p_reason":"#);
        let reason =
            serde_json::to_string(self.reason).map_err(|e| super::unserializable(Self::NAME, e))?;
        out.push_str(&reason);
        out.push('}');
        Ok(out)
    }
}

rpc_without_arguments! {
    /// `platform.deployment_status`: what the deployment lacks. The edge does
    /// not call it; the README tells operators to, so the doctor checks it.
    DeploymentStatus = "deployment_status"
}

rpc_without_arguments! {
    /// `public.cds_deployment_report`: what the doctor reads of a project. In
    /// `public`, which every project exposes, so it answers before `platform`
    /// is; not in [`super::ALL`], since the report is what checks those.
    DeploymentReport = "cds_deployment_report", schema "public"
}

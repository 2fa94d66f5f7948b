//! The isolate's telemetry. Each call is counted in memory
//! (`shared::telemetry::Aggregator`), and the counts reach the database in one
//! `record_execution_metrics` call at most every `TELEMETRY_FLUSH_MS`: the
//! first call that finds no flush scheduled returns one, which its caller
//! hands to `waitUntil`, so the flush runs after the response and an idle
//! isolate still flushes within the interval. A flush that fails is logged
//! and its counts dropped: it may have committed before failing, and sending
//! it again could count calls twice. An isolate evicted before its flush
//! loses at most one interval of counts.

use crate::rpc;
use shared::postgrest::Auth;
use shared::telemetry::Aggregator;
use shared::Config;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use worker::Delay;

thread_local! {
    // One per isolate, made with the first call's configuration (an
    // isolate's vars never change while it lives).
    static AGGREGATOR: RefCell<Option<Aggregator>> = const { RefCell::new(None) };
}

fn now_ms() -> f64 {
    // One call into JavaScript, where `worker::Date::now` makes two.
    js_sys::Date::now()
}

/// Counts one call. `http_status` is `None` for work no request asked for
/// (a queue batch, a cron run), whose `status` is then `ok` or `error`, and
/// which flushes at once (`Aggregator::schedule_now`: a delay would hold the
/// invocation, and with it the queue's next delivery, open). Answers the
/// flush to hand to `waitUntil` when one is due.
#[must_use = "hand the flush to waitUntil, or the counts wait for the next call"]
pub fn record(
    config: &Rc<Config>,
    function: &'static str,
    status: &'static str,
    http_status: Option<u16>,
    duration_ms: f64,
) -> Option<impl Future<Output = ()> + 'static> {
    let now = now_ms();
    let delay_ms = AGGREGATOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let aggregator = cell.get_or_insert_with(|| Aggregator::new(config.telemetry_flush_ms));
        aggregator.record(function, status, http_status, duration_ms, now);
        if http_status.is_some() {
            aggregator.schedule(now)
        } else {
            aggregator.schedule_now(now)
        }
    })?;
    Some(flush_after(config.clone(), delay_ms))
}

/// Counts one routed request, by its HTTP status.
#[must_use = "hand the flush to waitUntil, or the counts wait for the next call"]
pub fn record_request(
    config: &Rc<Config>,
    function: &'static str,
    http_status: u16,
    duration_ms: f64,
) -> Option<impl Future<Output = ()> + 'static> {
    record(
        config,
        function,
        shared::telemetry::outcome(http_status),
        Some(http_status),
        duration_ms,
    )
}

async fn flush_after(config: Rc<Config>, delay_ms: u32) {
    if delay_ms > 0 {
        Delay::from(Duration::from_millis(u64::from(delay_ms))).await;
    }
    let Some(flush) = AGGREGATOR.with(|cell| cell.borrow_mut().as_mut()?.take(now_ms())) else {
        return;
    };
    if let Err(e) = rpc::call(&config, &flush.args, Auth::ServiceRole).await {
        // Losing metrics must never fail a call; say so in the logs.
        worker::console_warn!(
            "telemetry flush of {} calls in {} cells not recorded: {} ({})",
            flush.calls,
            flush.cells,
            e.code(),
            e.log_detail().unwrap_or("-")
        );
    }
}

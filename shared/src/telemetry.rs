//! What the edge records about its calls: not one row per call, but counts an
//! isolate adds up in memory ([`Aggregator`]) and sends every few seconds in
//! one `record_execution_metrics` call. A cell is one (minute, function,
//! status, HTTP status) with its calls, duration sum and maximum, and
//! cumulative histogram buckets; the database adds flushed cells to
//! `telemetry.execution_metrics` (per minute) and `telemetry.execution_totals`
//! (lifetime, what `GET /v1/metrics` reads). So a flood of requests, refused
//! ones included, costs the database one write per isolate per interval, not
//! one per request.

use crate::rpc::operations::RecordExecutionMetrics;
use serde_json::{json, Value};

/// Histogram bucket bounds in milliseconds; `telemetry.duration_bounds_ms()`
/// in SQL is the same list (the database refuses cells with another count).
pub const BOUNDS_MS: [f64; 10] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];

/// Cells an aggregator holds at most between two flushes. The edge has a few
/// dozen functions and statuses, so this is only reached by a bug; calls past
/// it are dropped and counted as [`OVERFLOW_FUNCTION`] rather than grow an
/// isolate's memory without bound.
pub const MAX_CELLS: usize = 2_000;

/// The function name under which calls dropped for [`MAX_CELLS`] are counted.
pub const OVERFLOW_FUNCTION: &str = "telemetry_overflow";

/// A flush never waits longer than this after it is due: the `waitUntil`
/// that carries it may have been cut short (Workers give it 30 s), and the
/// next call then schedules another.
const LOST_FLUSH_GRACE_MS: f64 = 30_000.0;

/// `ok` when the call was served, `error` for any 4xx or 5xx answer; the
/// HTTP status is recorded alongside, so metrics split the two kinds.
pub fn outcome(http_status: u16) -> &'static str {
    if http_status < 400 {
        "ok"
    } else {
        "error"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CellKey {
    /// Seconds since the epoch, a whole minute.
    minute: i64,
    /// Function names are the route table's and the jobs' own constants, so
    /// counting a call allocates nothing unless it opens a new cell.
    function: &'static str,
    status: &'static str,
    http_status: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Cell {
    calls: u64,
    sum_ms: f64,
    max_ms: f64,
    /// Calls that took at most `BOUNDS_MS[i]` (cumulative, as Prometheus).
    buckets: [u64; BOUNDS_MS.len()],
}

impl Cell {
    fn add(&mut self, duration_ms: f64) {
        self.calls += 1;
        self.sum_ms += duration_ms;
        self.max_ms = self.max_ms.max(duration_ms);
        for (bucket, bound) in self.buckets.iter_mut().zip(BOUNDS_MS) {
            if duration_ms <= bound {
                *bucket += 1;
            }
        }
    }
}

/// The calls one isolate made since its last flush, and when to flush next.
#[derive(Debug)]
pub struct Aggregator {
    interval_ms: f64,
    max_cells: usize,
    /// Sorted by key, searched by bisection: an interval opens a few cells,
    /// and a `BTreeMap` of its own (two, with `dropped`) cost the wasm more
    /// code than the sorted `Vec`s (`serde_json::Map` is the one kept).
    cells: Vec<(CellKey, Cell)>,
    /// Calls not counted in a cell because `max_cells` was reached, per
    /// minute, sorted; sent as [`OVERFLOW_FUNCTION`] with the next flush.
    dropped: Vec<(i64, u64)>,
    last_flush_ms: Option<f64>,
    /// When the flush already scheduled is due, if one is.
    scheduled_for_ms: Option<f64>,
}

/// One flush: the arguments of `record_execution_metrics`, and what they
/// hold (for the log line when a flush fails).
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub args: RecordExecutionMetrics,
    pub cells: usize,
    pub calls: u64,
}

impl Aggregator {
    /// An aggregator that flushes at most every `interval_ms`.
    pub fn new(interval_ms: u32) -> Self {
        Self::with_max_cells(interval_ms, MAX_CELLS)
    }

    pub fn with_max_cells(interval_ms: u32, max_cells: usize) -> Self {
        Aggregator {
            interval_ms: f64::from(interval_ms),
            max_cells,
            cells: Vec::new(),
            dropped: Vec::new(),
            last_flush_ms: None,
            scheduled_for_ms: None,
        }
    }

    /// Counts one call that ended at `now_ms` (milliseconds since the epoch).
    /// `http_status` is `None` for work no HTTP request asked for (a queue
    /// batch). A negative or non-finite duration counts as 0.
    pub fn record(
        &mut self,
        function: &'static str,
        status: &'static str,
        http_status: Option<u16>,
        duration_ms: f64,
        now_ms: f64,
    ) {
        let duration_ms = if duration_ms.is_finite() {
            duration_ms.max(0.0)
        } else {
            0.0
        };
        let key = CellKey {
            minute: minute_of(now_ms),
            function,
            status,
            http_status,
        };
        match self.cells.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.cells[i].1.add(duration_ms),
            Err(i) if self.cells.len() < self.max_cells => {
                let mut cell = Cell::default();
                cell.add(duration_ms);
                self.cells.insert(i, (key, cell));
            }
            Err(_) => match self.dropped.binary_search_by_key(&key.minute, |(m, _)| *m) {
                Ok(i) => self.dropped[i].1 += 1,
                Err(i) => self.dropped.insert(i, (key.minute, 1)),
            },
        }
    }

    /// Whether the caller should schedule a flush, and after how many
    /// milliseconds: `None` while nothing waits or a flush is already
    /// scheduled. The delay keeps flushes at least an interval apart.
    pub fn schedule(&mut self, now_ms: f64) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        if let Some(due) = self.scheduled_for_ms {
            if now_ms < due + LOST_FLUSH_GRACE_MS {
                return None;
            }
        }
        let due = match self.last_flush_ms {
            Some(last) => (last + self.interval_ms).max(now_ms),
            None => now_ms,
        };
        self.scheduled_for_ms = Some(due);
        // Bounded by the interval, itself a u32.
        Some((due - now_ms).clamp(0.0, f64::from(u32::MAX)) as u32)
    }

    /// Like [`Aggregator::schedule`], for work that runs in the background
    /// (a queue batch, a cron run): a flush at once whenever anything waits.
    /// Such an invocation lasts until its `waitUntil` work settles, and a
    /// queue delivers a consumer's next batch only after that, so a delayed
    /// flush there would throttle the queue to one batch per interval. A
    /// batch is far rarer than a request, so one flush each costs little.
    pub fn schedule_now(&mut self, now_ms: f64) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        self.scheduled_for_ms = Some(now_ms);
        Some(0)
    }

    /// Takes everything counted so far as one flush (`None` when there is
    /// nothing), and starts the next interval. The cells are gone from the
    /// aggregator: a failed flush is not retried, because a call that timed
    /// out may still have committed, and sending it again would count its
    /// calls twice.
    pub fn take(&mut self, now_ms: f64) -> Option<Flush> {
        self.scheduled_for_ms = None;
        if self.is_empty() {
            return None;
        }
        self.last_flush_ms = Some(now_ms);
        let mut cells: Vec<Value> = std::mem::take(&mut self.cells)
            .into_iter()
            .map(|(key, cell)| {
                json!({
                    "minute": key.minute,
                    "function": key.function,
                    "status": key.status,
                    "http_status": key.http_status,
                    "count": cell.calls,
                    "sum_ms": round_ms(cell.sum_ms),
                    "max_ms": round_ms(cell.max_ms),
                    "buckets": cell.buckets,
                })
            })
            .collect();
        let no_buckets = [0u64; BOUNDS_MS.len()];
        for (minute, calls) in std::mem::take(&mut self.dropped) {
            cells.push(json!({
                "minute": minute,
                "function": OVERFLOW_FUNCTION,
                "status": "error",
                "http_status": null,
                "count": calls,
                "sum_ms": 0,
                "max_ms": 0,
                "buckets": no_buckets,
            }));
        }
        let calls = cells.iter().filter_map(|c| c["count"].as_u64()).sum();
        Some(Flush {
            cells: cells.len(),
            calls,
            args: RecordExecutionMetrics { cells },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.dropped.is_empty()
    }
}

fn minute_of(now_ms: f64) -> i64 {
    // Whole minutes since the epoch; a clock before 1970 is not a concern.
    ((now_ms / 60_000.0).floor() as i64) * 60
}

/// Milliseconds to a thousandth, as the table keeps them.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole minute (29,933,333 minutes since the epoch, in December 2026).
    const T0: f64 = 1_795_999_980_000.0;

    fn cells(flush: &Flush) -> &Vec<Value> {
        &flush.args.cells
    }

    #[test]
    fn client_and_server_errors_are_errors() {
        assert_eq!(outcome(201), "ok");
        assert_eq!(outcome(304), "ok");
        assert_eq!(outcome(402), "error");
        assert_eq!(outcome(503), "error");
    }

    #[test]
    fn calls_of_one_cell_add_up_with_cumulative_buckets() {
        let mut agg = Aggregator::new(5_000);
        for ms in [3.0, 40.0, 700.0] {
            agg.record("usage_record", outcome(201), Some(201), ms, T0);
        }
        let flush = agg.take(T0).unwrap();
        assert_eq!((flush.cells, flush.calls), (1, 3));
        let cell = &cells(&flush)[0];
        assert_eq!(cell["function"], "usage_record");
        assert_eq!(cell["status"], "ok");
        assert_eq!(cell["http_status"], 201);
        assert_eq!(cell["count"], 3);
        assert_eq!(cell["sum_ms"], 743.0);
        assert_eq!(cell["max_ms"], 700.0);
        assert_eq!(cell["buckets"], json!([1, 1, 1, 2, 2, 2, 2, 3, 3, 3]));
        assert_eq!(cell["minute"].as_i64().unwrap() % 60, 0);
    }

    #[test]
    fn each_minute_function_and_status_is_its_own_cell() {
        let mut agg = Aggregator::new(5_000);
        agg.record("me", "error", Some(401), 1.0, T0);
        agg.record("me", "error", Some(401), 1.0, T0 + 1_000.0);
        agg.record("me", "ok", Some(200), 1.0, T0);
        agg.record("health", "ok", Some(200), 1.0, T0);
        agg.record("usage_queue_consumer", "ok", None, 1.0, T0);
        agg.record("me", "error", Some(401), 1.0, T0 + 60_000.0);
        let flush = agg.take(T0 + 60_000.0).unwrap();
        assert_eq!((flush.cells, flush.calls), (5, 6));
        let minutes: Vec<i64> = cells(&flush)
            .iter()
            .map(|c| c["minute"].as_i64().unwrap())
            .collect();
        assert!(minutes.iter().all(|m| m % 60 == 0));
        let me_401: Vec<u64> = cells(&flush)
            .iter()
            .filter(|c| c["function"] == "me" && c["http_status"] == 401)
            .map(|c| c["count"].as_u64().unwrap())
            .collect();
        assert_eq!(
            me_401,
            vec![2, 1],
            "two calls in one minute, one in the next"
        );
        assert!(cells(&flush)
            .iter()
            .any(|c| c["function"] == "usage_queue_consumer" && c["http_status"].is_null()));
    }

    #[test]
    fn negative_and_non_finite_durations_count_as_zero_and_keep_microseconds() {
        let mut agg = Aggregator::new(5_000);
        agg.record("x", "ok", Some(200), -3.0, T0);
        agg.record("x", "ok", Some(200), f64::NAN, T0);
        agg.record("x", "ok", Some(200), 1.23456, T0);
        let flush = agg.take(T0).unwrap();
        let cell = &cells(&flush)[0];
        assert_eq!(cell["sum_ms"], 1.235);
        assert_eq!(cell["max_ms"], 1.235);
        assert_eq!(cell["buckets"][0], 3);
    }

    #[test]
    fn a_thousand_calls_are_one_flush_not_a_thousand() {
        let mut agg = Aggregator::new(5_000);
        let mut scheduled = 0;
        for i in 0..1_000 {
            let now = T0 + f64::from(i);
            agg.record("me", "error", Some(401), 0.5, now);
            scheduled += usize::from(agg.schedule(now).is_some());
        }
        assert_eq!(scheduled, 1, "one flush scheduled for the whole burst");
        let flush = agg.take(T0 + 1_000.0).unwrap();
        assert_eq!((flush.cells, flush.calls), (1, 1_000));
        assert!(agg.take(T0 + 1_001.0).is_none(), "nothing left to send");
    }

    #[test]
    fn flushes_are_at_least_an_interval_apart() {
        let mut agg = Aggregator::new(5_000);
        assert_eq!(agg.schedule(T0), None, "nothing to flush yet");
        agg.record("me", "ok", Some(200), 1.0, T0);
        assert_eq!(agg.schedule(T0), Some(0), "the first flush goes at once");
        assert_eq!(agg.schedule(T0 + 10.0), None, "already scheduled");
        agg.take(T0 + 20.0).unwrap();
        agg.record("me", "ok", Some(200), 1.0, T0 + 1_000.0);
        assert_eq!(
            agg.schedule(T0 + 1_000.0),
            Some(4_020),
            "the next waits out the interval since the last flush"
        );
        agg.take(T0 + 5_020.0).unwrap();
        agg.record("me", "ok", Some(200), 1.0, T0 + 60_000.0);
        assert_eq!(
            agg.schedule(T0 + 60_000.0),
            Some(0),
            "after a quiet interval, at once"
        );
    }

    #[test]
    fn background_work_flushes_at_once_whatever_the_interval() {
        let mut agg = Aggregator::new(5_000);
        assert_eq!(agg.schedule_now(T0), None, "nothing to flush yet");
        agg.record("usage_queue_consumer", "ok", None, 300.0, T0);
        assert_eq!(agg.schedule_now(T0), Some(0));
        agg.take(T0 + 300.0).unwrap();
        agg.record("usage_queue_consumer", "ok", None, 300.0, T0 + 600.0);
        assert_eq!(
            agg.schedule_now(T0 + 600.0),
            Some(0),
            "not held back by the interval since the last flush"
        );
        assert_eq!(
            agg.schedule(T0 + 601.0),
            None,
            "a request finds that flush scheduled"
        );
    }

    #[test]
    fn a_flush_that_never_ran_is_scheduled_again() {
        let mut agg = Aggregator::new(5_000);
        agg.record("me", "ok", Some(200), 1.0, T0);
        assert_eq!(agg.schedule(T0), Some(0));
        // Its waitUntil was cut short: no take() came.
        agg.record("me", "ok", Some(200), 1.0, T0 + 1_000.0);
        assert_eq!(agg.schedule(T0 + 1_000.0), None);
        assert!(agg.schedule(T0 + LOST_FLUSH_GRACE_MS + 1.0).is_some());
    }

    #[test]
    fn cells_past_the_cap_are_dropped_and_counted() {
        let mut agg = Aggregator::with_max_cells(5_000, 2);
        for function in ["a", "b", "c", "d", "a"] {
            agg.record(function, "ok", Some(200), 1.0, T0);
        }
        let flush = agg.take(T0).unwrap();
        assert_eq!(flush.calls, 5, "every call is counted somewhere");
        let by_function: Vec<(String, u64)> = cells(&flush)
            .iter()
            .map(|c| {
                (
                    c["function"].as_str().unwrap().to_string(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_function,
            vec![
                ("a".to_string(), 2),
                ("b".to_string(), 1),
                (OVERFLOW_FUNCTION.to_string(), 2)
            ]
        );
        let overflow = &cells(&flush)[2];
        assert_eq!(
            overflow["buckets"].as_array().unwrap().len(),
            BOUNDS_MS.len()
        );
        assert!(overflow["http_status"].is_null());
    }

    #[test]
    fn scrambled_calls_are_counted_per_key_in_key_order() {
        // Against a BTreeMap of the same keys: the order and the counts.
        let functions = ["me", "usage_record", "a", "zz"];
        let statuses = [("ok", Some(200)), ("error", Some(401)), ("ok", None)];
        let mut agg = Aggregator::new(5_000);
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..600u32 {
            let function = functions[(i * 7 % 4) as usize];
            let (status, http) = statuses[(i * 5 % 3) as usize];
            let minute = i64::from(i * 11 % 3);
            agg.record(function, status, http, 1.0, T0 + minute as f64 * 60_000.0);
            let key = (
                minute_of(T0 + minute as f64 * 60_000.0),
                function,
                status,
                http,
            );
            *expected.entry(key).or_insert(0u64) += 1;
        }
        let flush = agg.take(T0).unwrap();
        let sent: Vec<_> = cells(&flush)
            .iter()
            .map(|c| {
                (
                    c["minute"].as_i64().unwrap(),
                    c["function"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                    c["http_status"].as_u64().map(|s| s as u16),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
        let expected: Vec<_> = expected
            .into_iter()
            .map(|((m, f, s, h), n)| (m, f.to_string(), s.to_string(), h, n))
            .collect();
        assert_eq!(sent, expected);
        assert_eq!(flush.calls, 600);
    }

    #[test]
    fn cells_are_sent_in_key_order() {
        // The database upserts in its own order anyway; a stable order keeps
        // flushes comparable in logs and tests.
        let mut agg = Aggregator::new(5_000);
        agg.record("z", "ok", Some(200), 1.0, T0);
        agg.record("a", "ok", Some(200), 1.0, T0);
        let flush = agg.take(T0).unwrap();
        assert_eq!(cells(&flush)[0]["function"], "a");
    }
}

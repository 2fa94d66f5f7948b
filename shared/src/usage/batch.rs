//! The answers of `POST /v1/usage/batch`: one result per event, at the
//! event's position, whether the edge refused it, the database judged it,
//! or (with `Prefer: respond-async`) it was queued.

use super::{UsageBatch, UsageEvent};
use crate::error::ApiError;
use crate::queue;
use serde_json::{json, Value};

/// A batch recorded now. Events refused at the edge never reach the
/// database; the others go in one RPC, in order, and each answer goes back
/// to its event's position.
#[derive(Debug)]
pub struct BatchPlan {
    /// Every event's result; `Null` where the database's answer goes.
    results: Vec<Value>,
    /// The position of each event sent, in the order sent.
    sent_at: Vec<usize>,
}

impl UsageBatch {
    /// The plan, and the events to send (as `record_token_usage_batch`
    /// takes them); none to send when every event was refused here.
    pub fn plan(&self) -> (BatchPlan, Vec<Value>) {
        let mut results = vec![Value::Null; self.items.len()];
        let mut sent_at = Vec::new();
        let mut sent = Vec::new();
        for (index, item) in self.items.iter().enumerate() {
            match item {
                Ok(event) => {
                    sent_at.push(index);
                    sent.push(event.to_batch_item());
                }
                Err(err) => results[index] = at(rejected(err), index),
            }
        }
        (BatchPlan { results, sent_at }, sent)
    }

    /// The events valid enough to queue.
    pub fn valid(&self) -> Vec<&UsageEvent> {
        self.items.iter().filter_map(|i| i.as_ref().ok()).collect()
    }

    /// The answer with `Prefer: respond-async` once the valid events are
    /// queued: each queued with its status URL, or refused with its reason.
    pub fn queued_answer(&self) -> Value {
        let results: Vec<Value> = self
            .items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Ok(event) => at(queue::queued_answer(&event.idempotency_key), index),
                Err(err) => at(rejected(err), index),
            })
            .collect();
        let queued = self.items.iter().filter(|i| i.is_ok()).count();
        json!({
            "queued": queued,
            "rejected": results.len() - queued,
            "results": results,
        })
    }
}

impl BatchPlan {
    /// The 200 body: the database's results (one per event sent, in the
    /// order sent) put back at their events' positions, with the counts. A
    /// database answering another number of results is a fault upstream.
    pub fn answer(self, recorded: Vec<Value>) -> Result<Value, ApiError> {
        let BatchPlan {
            mut results,
            sent_at,
        } = self;
        if recorded.len() != sent_at.len() {
            return Err(ApiError::Upstream {
                detail: format!(
                    "batch RPC answered {} results for {} events",
                    recorded.len(),
                    sent_at.len()
                ),
            });
        }
        for (mut result, index) in recorded.into_iter().zip(sent_at) {
            // The single-event route's `replayed` flag; the batch counts
            // replays by status instead.
            if let Some(fields) = result.as_object_mut() {
                fields.insert("index".into(), json!(index));
                fields.remove("replayed");
            }
            results[index] = result;
        }
        let count = |status: &str| results.iter().filter(|r| r["status"] == status).count();
        Ok(json!({
            "recorded": count("recorded"),
            "replayed": count("replayed"),
            "rejected": count("rejected"),
            "results": results,
        }))
    }
}

/// A batch event refused at the edge, as the batch answers list it.
fn rejected(err: &ApiError) -> Value {
    json!({"status": "rejected", "error": {"code": err.code(), "message": err.to_string()}})
}

fn at(mut result: Value, index: usize) -> Value {
    result["index"] = json!(index);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str) -> Value {
        json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": key})
    }

    /// Events 0 and 2 valid, 1 refused at the edge (no tokens at all).
    fn mixed() -> UsageBatch {
        let bad = json!({"model": "m", "prompt_tokens": 0, "completion_tokens": 0,
                         "idempotency_key": "k1"});
        UsageBatch::parse(&json!({"events": [event("k0"), bad, event("k2")]})).unwrap()
    }

    #[test]
    fn results_go_back_to_their_events_positions() {
        let (plan, sent) = mixed().plan();
        let keys: Vec<&str> = sent
            .iter()
            .map(|e| e["idempotency_key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["k0", "k2"]);
        let answer = plan
            .answer(vec![
                json!({"status": "recorded", "usage_id": "u0", "replayed": false}),
                json!({"status": "replayed", "usage_id": "u2", "replayed": true}),
            ])
            .unwrap();
        assert_eq!(
            (
                &answer["recorded"],
                &answer["replayed"],
                &answer["rejected"]
            ),
            (&json!(1), &json!(1), &json!(1))
        );
        let results = answer["results"].as_array().unwrap();
        assert_eq!(
            results[0],
            json!({"status": "recorded", "usage_id": "u0", "index": 0})
        );
        assert_eq!(results[1]["status"], "rejected");
        assert_eq!(results[1]["index"], 1);
        assert_eq!(results[1]["error"]["code"], "invalid_field");
        assert_eq!(
            results[2],
            json!({"status": "replayed", "usage_id": "u2", "index": 2})
        );
    }

    #[test]
    fn a_database_answering_another_count_is_an_upstream_fault() {
        for recorded in [vec![], vec![json!({}); 3]] {
            let (plan, _) = mixed().plan();
            let err = plan.answer(recorded).unwrap_err();
            assert_eq!((err.status(), err.code()), (502, "upstream_error"));
        }
    }

    #[test]
    fn a_batch_refused_whole_at_the_edge_sends_nothing() {
        let bad = json!({"model": "m", "prompt_tokens": 0, "completion_tokens": 0,
                         "idempotency_key": "k"});
        let batch = UsageBatch::parse(&json!({"events": [bad.clone(), bad]})).unwrap();
        let (plan, sent) = batch.plan();
        assert!(sent.is_empty());
        let answer = plan.answer(Vec::new()).unwrap();
        assert_eq!(
            (&answer["recorded"], &answer["rejected"]),
            (&json!(0), &json!(2))
        );
    }

    #[test]
    fn the_queued_answer_lists_each_event_in_place() {
        let batch = mixed();
        assert_eq!(batch.valid().len(), 2);
        let answer = batch.queued_answer();
        assert_eq!(
            (&answer["queued"], &answer["rejected"]),
            (&json!(2), &json!(1))
        );
        let results = answer["results"].as_array().unwrap();
        assert_eq!(
            results[0],
            json!({"status": "queued", "idempotency_key": "k0",
                   "status_url": "/v1/usage/events/k0", "index": 0})
        );
        assert_eq!(
            (&results[1]["status"], &results[1]["index"]),
            (&json!("rejected"), &json!(1))
        );
        assert_eq!(results[2]["index"], 2);
    }
}

//! The model catalogue's admin routes end to end, through workerd, the REST
//! layer and PostgreSQL: `PUT /v1/admin/models/{name}` creates or changes a
//! model, `DELETE` deactivates it, usage is priced at the model's input and
//! output prices, and a price change leaves usage already recorded as it was.
//! Each test works on models and users of its own, so the tests run in
//! parallel (and beside the other suites, which use the catalogue's models).

mod usage_common;

use serde_json::{json, Value};
use usage_common::*;

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[track_caller]
fn assert_close(got: &Value, want: f64) {
    assert!((number(got) - want).abs() < 1e-9, "{got} ≠ {want}");
}

/// A model name no other test uses.
fn model_name() -> String {
    unique("e2e-model")
}

fn description(input: f64, output: f64) -> Value {
    json!({
        "provider": "acme",
        "context_size": 32768,
        "input_cost_per_1k_tokens": input,
        "output_cost_per_1k_tokens": output,
    })
}

fn put_model(bearer: &str, name: &str, body: &Value) -> Answer {
    call(
        "PUT",
        &format!("/v1/admin/models/{name}"),
        Some(bearer),
        &[],
        Some(body),
    )
}

fn deactivate(bearer: &str, name: &str) -> Answer {
    call(
        "DELETE",
        &format!("/v1/admin/models/{name}"),
        Some(bearer),
        &[],
        None,
    )
}

/// The catalogue entry `GET /v1/models` lists for `name`, if any.
fn listed(name: &str) -> Option<Value> {
    let answer = call("GET", "/v1/models", None, &[], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
}

fn overview_cost(user: &User) -> f64 {
    let answer = call("GET", "/v1/usage/overview", Some(&user.token), &[], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    number(&answer.json()["totals"]["cost"])
}

#[test]
fn an_admin_creates_a_model_and_usage_is_priced_at_its_input_and_output_prices() {
    let admin = User::admin();
    let user = User::with_tokens(100_000);
    let name = model_name();

    let mut body = description(0.25, 1.25);
    body["repo_url"] = json!("https://huggingface.co/acme/chat");
    body["metadata"] = json!({"kind": "chat"});
    let created = put_model(&admin.token, &name, &body);

    assert_eq!(created.status, 201, "{}", created.body);
    let model = created.json();
    assert_eq!(model["name"], json!(name));
    assert_eq!(model["provider"], "acme");
    assert_eq!(model["context_size"], 32768);
    assert_close(&model["input_cost_per_1k_tokens"], 0.25);
    assert_close(&model["output_cost_per_1k_tokens"], 1.25);
    assert_eq!(model["repo_url"], "https://huggingface.co/acme/chat");
    assert_eq!(model["metadata"], json!({"kind": "chat"}));
    assert_eq!(model["is_active"], true);
    assert!(
        model.get("created").is_none(),
        "the status says it: {model}"
    );

    let entry = listed(&name).expect("the new model is in the public catalogue");
    assert_close(&entry["input_cost_per_1k_tokens"], 0.25);
    assert_close(&entry["output_cost_per_1k_tokens"], 1.25);

    // 1000 prompt tokens at 0.25 and 500 completion tokens at 1.25 per 1k.
    let recorded = record(&user.token, &unique("evt"), &event(&name, 1000, 500));
    assert_eq!(recorded.status, 201, "{}", recorded.body);
    assert_close(&recorded.json()["cost"], 0.25 + 0.625);
    // The other way round costs what its own parts do.
    let swapped = record(&user.token, &unique("evt"), &event(&name, 500, 1000));
    assert_eq!(swapped.status, 201, "{}", swapped.body);
    assert_close(&swapped.json()["cost"], 0.125 + 1.25);
    assert_eq!(user.balance().used, 3000);
}

#[test]
fn a_put_of_an_existing_model_changes_it_and_answers_200() {
    let admin = User::admin();
    let name = model_name();
    assert_eq!(
        put_model(&admin.token, &name, &description(0.1, 0.2)).status,
        201
    );

    let mut body = description(0.3, 0.9);
    body["provider"] = json!("acme labs");
    let changed = put_model(&admin.token, &name, &body);

    assert_eq!(changed.status, 200, "{}", changed.body);
    let model = changed.json();
    assert_eq!(model["provider"], "acme labs");
    assert_close(&model["input_cost_per_1k_tokens"], 0.3);
    assert_close(&model["output_cost_per_1k_tokens"], 0.9);
    assert_eq!(
        scalar(
            "select count(*) from platform.models where name = $1",
            &[&name]
        ),
        1
    );
}

#[test]
fn a_price_change_never_rewrites_the_cost_of_recorded_usage() {
    let admin = User::admin();
    let user = User::with_tokens(100_000);
    let name = model_name();
    assert_eq!(
        put_model(&admin.token, &name, &description(0.5, 1.5)).status,
        201
    );
    let old_key = unique("old");
    let old = record(&user.token, &old_key, &event(&name, 1000, 500));
    assert_eq!(old.status, 201, "{}", old.body);
    assert_close(&old.json()["cost"], 1.25);

    let repriced = put_model(&admin.token, &name, &description(1.0, 3.0));
    assert_eq!(repriced.status, 200, "{}", repriced.body);

    let ledger_cost = text(
        "select cost::text from platform.token_usage \
         where user_id = $1::text::uuid and idempotency_key = $2",
        &[&user.id, &old_key],
    );
    assert_eq!(ledger_cost.as_deref(), Some("1.250000"), "the ledger row");
    assert!((overview_cost(&user) - 1.25).abs() < 1e-9, "the overview");
    let retry = record(&user.token, &old_key, &event(&name, 1000, 500));
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, old.body, "a retry answers the first answer");

    let new = record(&user.token, &unique("new"), &event(&name, 1000, 500));
    assert_eq!(new.status, 201, "{}", new.body);
    assert_close(&new.json()["cost"], 2.5);
    assert!(
        (overview_cost(&user) - 3.75).abs() < 1e-9,
        "each event at the prices of its own time"
    );
}

#[test]
fn only_admins_manage_models() {
    let admin = User::admin();
    let developer = User::with_tokens(0);
    let admin_key = admin.api_key(&["usage:write", "usage:read"]);
    let name = model_name();
    assert_eq!(
        put_model(&admin.token, &name, &description(0.1, 0.2)).status,
        201
    );
    let before = model_row(&name);
    let fresh = model_name();

    let refusals = [
        (
            put_model(&developer.token, &name, &description(0.0, 0.0)),
            403,
            "forbidden",
        ),
        (
            put_model(&developer.token, &fresh, &description(0.0, 0.0)),
            403,
            "forbidden",
        ),
        (deactivate(&developer.token, &name), 403, "forbidden"),
        (
            put_model(&admin_key, &name, &description(0.0, 0.0)),
            403,
            "user_token_required",
        ),
        (deactivate(&admin_key, &name), 403, "user_token_required"),
        (
            call(
                "DELETE",
                &format!("/v1/admin/models/{name}"),
                None,
                &[],
                None,
            ),
            401,
            "missing_token",
        ),
    ];
    for (answer, status, code) in &refusals {
        assert_refused(answer, *status, code);
    }
    assert_eq!(
        model_row(&name),
        before,
        "no refused call changed the model"
    );
    assert_eq!(model_row(&fresh), None, "no refused call created a model");
}

#[test]
fn a_deactivated_model_refuses_new_usage_and_stays_in_the_ledger() {
    let admin = User::admin();
    let user = User::with_tokens(10_000);
    let name = model_name();
    assert_eq!(
        put_model(&admin.token, &name, &description(0.1, 0.2)).status,
        201
    );
    let before = record(&user.token, &unique("evt"), &event(&name, 10, 10));
    assert_eq!(before.status, 201, "{}", before.body);

    let answer = deactivate(&admin.token, &name);

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["name"], json!(name));
    assert_eq!(answer.json()["is_active"], false);
    assert_refused(
        &record(&user.token, &unique("evt"), &event(&name, 10, 10)),
        422,
        "unknown_model",
    );
    assert!(listed(&name).is_none(), "no longer in the public catalogue");
    assert_eq!(user.ledger_rows(), 1, "the usage recorded before stays");
    assert!(model_row(&name).is_some(), "the model's row stays");
    let again = deactivate(&admin.token, &name);
    assert_eq!(again.status, 200, "deactivating twice: {}", again.body);
    assert_refused(
        &deactivate(&admin.token, &model_name()),
        404,
        "unknown_model",
    );

    // Described as active again, it takes usage again.
    let reactivated = put_model(&admin.token, &name, &description(0.1, 0.2));
    assert_eq!(reactivated.status, 200, "{}", reactivated.body);
    assert_eq!(reactivated.json()["is_active"], true);
    let after = record(&user.token, &unique("evt"), &event(&name, 10, 10));
    assert_eq!(after.status, 201, "{}", after.body);
}

#[test]
fn a_name_with_a_slash_travels_percent_encoded() {
    let admin = User::admin();
    let user = User::with_tokens(1_000);
    let name = format!("acme/{}", model_name());
    let encoded = name.replace('/', "%2F");

    let created = put_model(&admin.token, &encoded, &description(1.0, 1.0));

    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["name"], json!(name));
    let recorded = record(&user.token, &unique("evt"), &event(&name, 500, 500));
    assert_eq!(recorded.status, 201, "{}", recorded.body);
    assert_close(&recorded.json()["cost"], 1.0);
    assert_eq!(deactivate(&admin.token, &encoded).status, 200);
}

#[test]
fn bad_requests_name_the_field_and_change_nothing() {
    let admin = User::admin();
    let name = model_name();
    let mut unknown = description(0.1, 0.2);
    unknown["cost_per_1k_tokens"] = json!(0.1);
    let cases = [
        (
            name.as_str(),
            description(-0.1, 0.2),
            "invalid_field",
            "input_cost_per_1k_tokens",
        ),
        (
            name.as_str(),
            description(0.1, 0.0000001),
            "invalid_field",
            "output_cost_per_1k_tokens",
        ),
        (
            name.as_str(),
            json!({"provider": "acme"}),
            "invalid_field",
            "context_size",
        ),
        (
            name.as_str(),
            unknown,
            "unknown_field",
            "cost_per_1k_tokens",
        ),
        (
            "-not-a-name",
            description(0.1, 0.2),
            "invalid_field",
            "name",
        ),
    ];
    for (name, body, code, field) in cases {
        let answer = put_model(&admin.token, name, &body);
        assert_refused(&answer, 422, code);
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{field}: {}",
            answer.body
        );
    }
    assert_eq!(model_row(&name), None, "no refused request created a model");
}

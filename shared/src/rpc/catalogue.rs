//! The model catalogue: listed for anyone, managed by admins (the functions
//! decide who is one, from the forwarded token).

use super::Rpc;
use serde::Serialize;
use serde_json::{Number, Value};

rpc_without_arguments! {
    /// `platform.list_models`: the active models. Anyone may call it; it is
    /// also the `/health` probe of the `platform` schema.
    ListModels = "list_models"
}

/// `platform.upsert_model`: create a model or replace its description; the
/// answer's `created` says which (`models::put_answer`).
#[derive(Debug, Clone, Serialize)]
pub struct UpsertModel<'a> {
    #[serde(rename = "p_name")]
    pub name: &'a str,
    #[serde(rename = "p_provider")]
    pub provider: &'a str,
    #[serde(rename = "p_context_size")]
    pub context_size: u32,
    #[serde(rename = "p_input_cost_per_1k_tokens")]
    pub input_cost_per_1k_tokens: &'a Number,
    #[serde(rename = "p_output_cost_per_1k_tokens")]
    pub output_cost_per_1k_tokens: &'a Number,
    #[serde(rename = "p_repo_url")]
    pub repo_url: Option<&'a str>,
    #[serde(rename = "p_metadata")]
    pub metadata: &'a Value,
    #[serde(rename = "p_is_active")]
    pub is_active: bool,
}

impl Rpc for UpsertModel<'_> {
    const NAME: &'static str = "upsert_model";
    const ARGS: &'static [&'static str] = &[
        "p_name",
        "p_provider",
        "p_context_size",
        "p_input_cost_per_1k_tokens",
        "p_output_cost_per_1k_tokens",
        "p_repo_url",
        "p_metadata",
        "p_is_active",
    ];
    type Output = Value;
}

/// `platform.deactivate_model`: `is_active = false`; the row stays for the
/// ledger.
#[derive(Debug, Clone, Serialize)]
pub struct DeactivateModel<'a> {
    #[serde(rename = "p_name")]
    pub name: &'a str,
}

impl Rpc for DeactivateModel<'_> {
    const NAME: &'static str = "deactivate_model";
    const ARGS: &'static [&'static str] = &["p_name"];
    type Output = Value;
}

/// A model of the catalogue as `list_models` answers it, which the edge
/// passes on as it comes (the admin routes add its state:
/// `openapi::answers::AdminModel`). Described here for the OpenAPI
/// document; the end-to-end tests hold every answer to it.
#[cfg(feature = "openapi")]
#[derive(schemars::JsonSchema)]
#[schemars(
    rename = "Model",
    deny_unknown_fields,
    description = "A model of the catalogue. Prices are per 1,000 tokens: prompt tokens at the input price, completion tokens at the output price."
)]
pub struct CatalogueModel {
    pub name: String,
    pub provider: String,
    /// Required, and `null` when the model has no repository.
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub repo_url: Option<String>,
    #[schemars(range(min = 1))]
    pub context_size: i64,
    #[schemars(range(min = 0))]
    pub input_cost_per_1k_tokens: f64,
    #[schemars(range(min = 0))]
    pub output_cost_per_1k_tokens: f64,
    pub metadata: serde_json::Map<String, Value>,
}

//! The HTTP side: Supabase's gateway check, the `/rest/v1` routes, the
//! request log, and turning outcomes into PostgREST's answers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use deadpool_postgres::{Pool, PoolError, TimeoutType};
use serde_json::{Map, Value};

use crate::auth::{self, Identity};
use crate::catalog::{self, Catalog, Function, Resolution};
use crate::errors::{ApiError, DbErrorParts, GatewayError};
use crate::gateway::{self, Admission, ApiKeys, KeyRole};
use crate::keys::SigningKeys;
use crate::rpc::{self, Arguments, RequestSettings};

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// What every request handler shares.
pub struct AppState {
    pub pool: Pool,
    pub catalog: Catalog,
    /// Exposed schemas; the first is the default.
    pub schemas: Vec<String>,
    pub keys: SigningKeys,
    pub anon_role: String,
    pub api_keys: ApiKeys,
}

pub fn router(state: Arc<AppState>) -> Router {
    // Supabase Auth publishes its signing keys without an API key, so this
    // route sits outside the gateway check.
    let auth = Router::new()
        .route("/auth/v1/.well-known/jwks.json", get(jwks))
        .with_state(state.clone());
    Router::new()
        .route("/rest/v1", get(root))
        .route("/rest/v1/", get(root))
        .route("/rest/v1/rpc/{function}", any(rpc))
        .fallback(|| async { error_response(&ApiError::invalid_path()) })
        .with_state(state.clone())
        // Layers run outside-in from the last one: log, then gateway.
        .layer(middleware::from_fn_with_state(state, gateway))
        .merge(auth)
        .layer(middleware::from_fn(log_request))
}

/// `GET /auth/v1/.well-known/jwks.json`: the key set from `--jwks-file`, or
/// an empty set (a project signing only with the legacy HS256 secret).
async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    json_response(state.keys.document().await)
}

/// One line per request on stderr: method, path, status, milliseconds.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    eprintln!(
        "{method} {path} {} {}ms",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

/// Supabase's API gateway (see [`crate::gateway`]): refuses a request
/// without one of the project's API keys, and puts a bearer token in
/// `Authorization` for the key when the request has none.
async fn gateway(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let from_header = request
        .headers()
        .get("apikey")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let apikey = from_header.or_else(|| {
        Query::<Vec<(String, String)>>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(pairs)| {
                pairs
                    .into_iter()
                    .find(|(key, _)| key == "apikey")
                    .map(|(_, value)| value)
            })
    });
    let has_authorization = request.headers().contains_key(AUTHORIZATION);
    let bearer = match gateway::admit(apikey.as_deref(), has_authorization, &state.api_keys) {
        Err(refusal) => return gateway_error_response(refusal),
        Ok(Admission::Unchanged) => None,
        Ok(Admission::KeyAsBearer) => apikey,
        Ok(Admission::TokenFor(role)) => {
            let role = match role {
                KeyRole::Anon => state.anon_role.as_str(),
                KeyRole::ServiceRole => "service_role",
            };
            match gateway::mint_token(role, &state.keys.secret) {
                Ok(token) => Some(token),
                Err(_) => return gateway_error_response(GatewayError::TokenNotMinted),
            }
        }
    };
    if let Some(token) = bearer {
        // A key that is not a valid header value cannot be a JWT either;
        // the request then goes on as anonymous, which is what PostgREST
        // does without a token.
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            request.headers_mut().insert(AUTHORIZATION, value);
        }
    }
    next.run(request).await
}

/// `GET /rest/v1/`: PostgREST serves its OpenAPI document here; a minimal
/// one says what this is.
async fn root() -> Response {
    let document = serde_json::json!({
        "swagger": "2.0",
        "info": {
            "title": "rest-standin (dev tooling)",
            "description": "stand-in for PostgREST: only /rpc/<function> is served",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": {},
    });
    json_response(document.to_string())
}

/// `/rest/v1/rpc/<function>`, any method.
async fn rpc(
    State(state): State<Arc<AppState>>,
    method: Method,
    Path(function): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match call(
        &state,
        &method,
        &function,
        &headers,
        query.as_deref(),
        &body,
    )
    .await
    {
        Ok(Answer::Json(body)) => json_response(body),
        // PostgREST v12 answers a `void` function with 204 and neither a
        // body nor a Content-Type.
        Ok(Answer::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error_response(&error),
    }
}

/// A successful call's answer.
enum Answer {
    /// The JSON text of the result.
    Json(String),
    /// The function returns `void`.
    NoContent,
}

/// The arguments of a request, before a function is chosen.
struct Payload {
    /// The argument names supplied (object keys or query parameters), sorted.
    keys: BTreeSet<String>,
    /// The JSON text passed to PostgreSQL as `$1`.
    json: String,
    /// False when the body is JSON but not an object: only a function with a
    /// single unnamed json/jsonb argument can take it.
    is_object: bool,
    /// POST with a JSON body: the single-json-argument fallback applies.
    whole_body_allowed: bool,
}

async fn call(
    state: &AppState,
    method: &Method,
    function_name: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let published = if auth::needs_published_keys(authorization.as_deref()) {
        state.keys.published().await
    } else {
        Vec::new()
    };
    let keys = auth::Keys {
        secret: &state.keys.secret,
        published: &published,
    };
    let identity = auth::identify(authorization.as_deref(), keys, &state.anon_role)
        .map_err(|rejected| ApiError::invalid_jwt(rejected.0))?;

    let is_get = match *method {
        Method::GET => true,
        Method::POST => false,
        _ => return Err(ApiError::rpc_method_not_allowed()),
    };
    let profile_header = if is_get {
        "accept-profile"
    } else {
        "content-profile"
    };
    let schema = pick_schema(&state.schemas, headers.get(profile_header))?;
    let payload = if is_get {
        query_payload(query)
    } else {
        body_payload(headers.get(CONTENT_TYPE), body)?
    };

    let authenticated = identity.role != state.anon_role;
    let db_error = |error: tokio_postgres::Error| map_db_error(error, authenticated);
    let mut client = state.pool.get().await.map_err(map_pool_error)?;

    // A miss is retried once on a fresh read of the catalog, so functions
    // created since the last read are found without a restart.
    let mut functions = state
        .catalog
        .functions(&client, &schema, false)
        .await
        .map_err(|error| map_load_error(error, authenticated))?;
    if matches!(
        choose(&functions, function_name, &payload),
        Resolution::NotFound
    ) {
        functions = state
            .catalog
            .functions(&client, &schema, true)
            .await
            .map_err(|error| map_load_error(error, authenticated))?;
    }
    let (function, arguments) = match choose(&functions, function_name, &payload) {
        Resolution::Named(function) => (
            function,
            Arguments::Named(payload.keys.iter().map(String::as_str).collect()),
        ),
        Resolution::WholeBody(function) => (function, Arguments::WholeBody),
        Resolution::NotFound if !payload.is_object => {
            return Err(ApiError::invalid_body(
                "Function arguments must be a JSON object",
            ));
        }
        Resolution::NotFound => {
            let keys: Vec<String> = payload.keys.iter().cloned().collect();
            return Err(ApiError::function_not_found(
                &schema,
                function_name,
                &keys,
                payload.whole_body_allowed,
            ));
        }
        Resolution::Ambiguous(candidates) => {
            let signatures: Vec<String> = candidates.iter().map(|f| f.signature()).collect();
            return Err(ApiError::ambiguous_function(&signatures));
        }
    };

    let role_settings = state
        .catalog
        .role_settings(&client)
        .await
        .map_err(|error| map_load_error(error, authenticated))?;
    let sql = rpc::call_sql(function, &arguments);
    let settings = RequestSettings {
        role: identity.role.clone(),
        role_settings: role_settings
            .get(&identity.role)
            .cloned()
            .unwrap_or_default(),
        search_path: rpc::search_path_for(&schema),
        jwt_claims: identity_claims(&identity),
        headers: headers_json(headers),
        method: method.as_str().to_owned(),
        // Behind Supabase's gateway PostgREST sees the path without the
        // `/rest/v1` prefix.
        path: format!("/rpc/{function_name}"),
        // PostgREST writes only through POST to a VOLATILE function; GET, and
        // POST to a STABLE or IMMUTABLE one, run READ ONLY.
        read_only: is_get || function.volatility != catalog::Volatility::Volatile,
    };
    let answer = rpc::run(&mut client, &settings, &sql, &payload.json)
        .await
        .map_err(db_error)?;
    Ok(match (function.returns, answer) {
        (catalog::Returns::Void, _) => Answer::NoContent,
        // A function that returns SQL NULL answers JSON `null`.
        (_, None) => Answer::Json("null".to_owned()),
        (_, Some(json)) => Answer::Json(json),
    })
}

/// The function the payload calls, by PostgREST's rules. A body that is JSON
/// but not an object can only go whole to a single json/jsonb argument.
fn choose<'a>(functions: &'a [Function], name: &str, payload: &Payload) -> Resolution<'a> {
    if payload.is_object {
        return catalog::resolve(functions, name, &payload.keys, payload.whole_body_allowed);
    }
    let whole: Vec<&Function> = functions
        .iter()
        .filter(|function| function.name == name && function.takes_whole_body())
        .collect();
    match whole.as_slice() {
        [] => Resolution::NotFound,
        [one] => Resolution::WholeBody(one),
        _ => Resolution::Ambiguous(whole),
    }
}

/// The schema named by the profile header, or the first exposed one.
fn pick_schema(exposed: &[String], header: Option<&HeaderValue>) -> Result<String, ApiError> {
    let Some(value) = header else {
        // `serve` refuses an empty schema list, so there is a first one.
        return exposed
            .first()
            .cloned()
            .ok_or_else(|| ApiError::invalid_schema("", exposed));
    };
    let requested = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    if exposed.contains(&requested) {
        Ok(requested)
    } else {
        Err(ApiError::invalid_schema(&requested, exposed))
    }
}

/// GET: each query parameter is an argument, its value a JSON string that
/// PostgreSQL converts to the declared type. A repeated parameter becomes
/// an array (PostgREST's form for VARIADIC). The gateway's `apikey` is not
/// an argument.
fn query_payload(query: Option<&str>) -> Payload {
    let pairs: Vec<(String, String)> = query
        .and_then(|query| {
            let uri = format!("/?{query}").parse().ok()?;
            Query::<Vec<(String, String)>>::try_from_uri(&uri)
                .ok()
                .map(|Query(pairs)| pairs)
        })
        .unwrap_or_default();
    let mut object = Map::new();
    for (key, value) in pairs.into_iter().filter(|(key, _)| key != "apikey") {
        match object.get_mut(&key) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                object.insert(key, Value::Array(vec![first, Value::String(value)]));
            }
            None => {
                object.insert(key, Value::String(value));
            }
        }
    }
    Payload {
        keys: object.keys().cloned().collect(),
        json: Value::Object(object).to_string(),
        is_object: true,
        whole_body_allowed: false,
    }
}

/// POST: the body must be JSON (`Content-Type: application/json`, with any
/// parameters; a missing Content-Type counts as JSON, as in PostgREST). An
/// empty body is an empty object.
fn body_payload(content_type: Option<&HeaderValue>, body: &Bytes) -> Result<Payload, ApiError> {
    if let Some(value) = content_type {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let essence = text.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::unsupported_content_type(&text));
        }
    }
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        "{}"
    } else {
        std::str::from_utf8(body).map_err(|_| ApiError::invalid_body("Empty or invalid json"))?
    };
    let value: Value =
        serde_json::from_str(text).map_err(|_| ApiError::invalid_body("Empty or invalid json"))?;
    let (keys, is_object) = match &value {
        Value::Object(object) => (object.keys().cloned().collect(), true),
        _ => (BTreeSet::new(), false),
    };
    // The raw text goes to PostgreSQL, not a re-encoding: numbers keep every
    // digit, as they do through PostgREST.
    Ok(Payload {
        keys,
        json: text.to_owned(),
        is_object,
        whole_body_allowed: true,
    })
}

fn identity_claims(identity: &Identity) -> String {
    identity.claims.to_string()
}

/// The request headers as a JSON object with lowercase names (the form of
/// `request.headers`); repeated headers are joined with ", ".
fn headers_json(headers: &HeaderMap) -> String {
    let mut object = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let merged = match object.remove(name.as_str()) {
            Some(Value::String(previous)) => format!("{previous}, {value}"),
            _ => value,
        };
        object.insert(name.as_str().to_owned(), Value::String(merged));
    }
    Value::Object(object).to_string()
}

fn map_db_error(error: tokio_postgres::Error, authenticated: bool) -> ApiError {
    match error.as_db_error() {
        Some(db) => ApiError::from_db(
            &DbErrorParts {
                sqlstate: db.code().code(),
                message: db.message(),
                details: db.detail(),
                hint: db.hint(),
            },
            authenticated,
        ),
        // No server error: the connection broke under the request.
        None => ApiError::database_client_error(with_causes(&error)),
    }
}

fn map_load_error(error: catalog::LoadError, authenticated: bool) -> ApiError {
    match error {
        catalog::LoadError::Db(error) => map_db_error(error, authenticated),
        catalog::LoadError::Decode(error) => ApiError::database_client_error(error.to_string()),
    }
}

/// Failing to get a connection is PostgREST's "database unreachable"
/// (`PGRST000`, 503), except waiting too long for a busy pool (`PGRST003`).
fn map_pool_error(error: PoolError) -> ApiError {
    match error {
        PoolError::Timeout(TimeoutType::Wait) => ApiError::pool_timeout(),
        PoolError::Backend(error) => ApiError::database_unreachable(with_causes(&error)),
        other => ApiError::database_unreachable(with_causes(&other)),
    }
}

/// An error and its causes on one line: tokio-postgres's own text
/// ("error connecting to server") hides the useful part in its source.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))],
        body,
    )
        .into_response()
}

fn gateway_error_response(error: GatewayError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))],
        error.body_json(),
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    // Every status the error module produces is a valid HTTP status; 500
    // guards the conversion all the same.
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(error.body_json()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    if let Some(challenge) = error.www_authenticate() {
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
    }
    response
}

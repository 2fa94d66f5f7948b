//! The request pipeline every call goes through: request id, configuration,
//! CORS, body limit, routing, the handler, and errors turned into responses in
//! one place.

use crate::incoming::{header, Request};
use crate::respond::Response;
use crate::{env_config, handlers, rate_limit, respond, telemetry};
use futures_util::StreamExt;
use shared::rate_limit::{public_route, refusal_charge, Charge, RefusalCharge};
use shared::routes::{Endpoint, Router};
use shared::{cors, http, ApiError, Config};
use std::cell::OnceCell;
use std::rc::Rc;
use worker::{Context, Env};

thread_local! {
    static ROUTER: OnceCell<Rc<Router>> = const { OnceCell::new() };
}

pub(crate) fn router() -> Rc<Router> {
    ROUTER.with(|r| r.get_or_init(|| Rc::new(Router::new())).clone())
}

pub async fn handle(req: Request, env: Env, ctx: Context) -> Response {
    // `Date.now()`, one call into JavaScript (`worker::Date::now` makes a
    // `Date` and reads it: two).
    let started = js_sys::Date::now();
    let request_id = request_id(&req);
    let origin = header(&req, "origin");
    let client_ip = header(&req, "cf-connecting-ip");
    rate_limit::bind(&env);
    let response = match env_config::load(&env) {
        Ok(config) => {
            let cors_headers = cors::response_headers(&config.allowed_origins, origin.as_deref());
            let mut endpoint = None;
            let mut reached_handler = false;
            let answered = answer(
                req,
                &env,
                &config,
                origin.as_deref(),
                client_ip.as_deref(),
                &mut endpoint,
                &mut reached_handler,
            )
            .await;
            let response = match answered {
                Ok(Answered::Preflight(response)) => response,
                Ok(Answered::Normal(response)) => respond::add_headers(response, cors_headers),
                Err(err) => {
                    // Refused before its caller was known: charged to the
                    // client address (shared::rate_limit::RefusalCharge).
                    let charge = Charge::client(client_ip.as_deref());
                    let err = match refusal_charge(&err, reached_handler) {
                        RefusalCharge::None => err,
                        RefusalCharge::AfterAnswer => {
                            ctx.wait_until(async move {
                                if let Err(e) = rate_limit::charge(&charge).await {
                                    if let Some(detail) = e.log_detail() {
                                        worker::console_error!("{detail}");
                                    }
                                }
                            });
                            err
                        }
                        RefusalCharge::BeforeAnswer => match rate_limit::charge(&charge).await {
                            Ok(()) => err,
                            Err(limited) => limited,
                        },
                    };
                    respond::add_headers(respond::error(&err), cors_headers)
                }
            };
            if let Some(endpoint) = endpoint.filter(|e| e.records_telemetry()) {
                let elapsed = js_sys::Date::now() - started;
                let status = response.status_code();
                if let Some(flush) =
                    telemetry::record_request(&config, endpoint.name(), status, elapsed)
                {
                    ctx.wait_until(flush);
                }
            }
            response
        }
        Err(e) => respond::error(&ApiError::Misconfigured {
            detail: e.to_string(),
        }),
    };
    respond::add_headers(response, vec![("x-request-id", request_id)])
}

enum Answered {
    /// A CORS preflight, complete with its own `Access-Control-*` headers.
    Preflight(Response),
    Normal(Response),
}

/// Answers one request; `endpoint` is set once the route is known, so the
/// call is recorded in telemetry even when its handler fails, and
/// `reached_handler` once the pipeline's own checks passed.
async fn answer(
    req: Request,
    env: &Env,
    config: &Config,
    origin: Option<&str>,
    client_ip: Option<&str>,
    endpoint: &mut Option<Endpoint>,
    reached_handler: &mut bool,
) -> Result<Answered, ApiError> {
    let method = req.method().to_string();
    // Only a preflight's matters, and it is read on demand (`incoming`).
    let requested_method = if method.eq_ignore_ascii_case("OPTIONS") {
        header(&req, "access-control-request-method")
    } else {
        None
    };
    if let (true, Some(origin)) = (
        cors::is_preflight(&method, origin, requested_method.as_deref()),
        origin,
    ) {
        let headers = cors::preflight(&config.allowed_origins, origin)?;
        return Ok(Answered::Preflight(respond::add_headers(
            respond::empty(204),
            headers,
        )));
    }
    http::check_declared_length(
        header(&req, "content-length").as_deref(),
        config.max_body_bytes,
    )?;
    if let Some(page) = shared::page::route(&method, req.path()) {
        // Like the page's static assets, its HTML and config are constants
        // that reach no database, so they are not charged to a rate limiter:
        // a page that cannot load its config could not even show a 429.
        return Ok(Answered::Normal(
            handlers::page::get(page, config, env).await?,
        ));
    }
    let matched = router().resolve(&method, req.path())?;
    *endpoint = Some(matched.endpoint);
    let body = read_body(&req, &method, config.max_body_bytes).await?;
    let id = matched.param("id").unwrap_or_default();
    let name = matched.param("name").unwrap_or_default();
    let deep_health = matched.endpoint == Endpoint::Health && wants_deep_check(&req);
    *reached_handler = true;
    if public_route(matched.endpoint, deep_health) {
        rate_limit::charge(&Charge::client(client_ip)).await?;
    }
    let response = match matched.endpoint {
        Endpoint::Health if deep_health => handlers::deep_health::get(&req, env, config).await?,
        Endpoint::Health => handlers::health::get(config).await,
        Endpoint::OpenApi => handlers::openapi::get(env).await?,
        Endpoint::Metrics => handlers::metrics::get(&req, config).await?,
        Endpoint::DbUserInsertHook => handlers::hooks::db_user_insert(&req, &body, config).await?,
        Endpoint::BeforeUserCreatedHook => {
            handlers::hooks::before_user_created(&req, &body, config).await?
        }
        Endpoint::Me => handlers::me::get(&req, config).await?,
        Endpoint::SetDefaultModel => {
            handlers::account::set_default_model(&req, &body, config).await?
        }
        Endpoint::ListModels => handlers::models::list(config).await?,
        Endpoint::AdminGrant => handlers::account::grant(&req, &body, config).await?,
        Endpoint::PutModel => handlers::models::put(&req, name, &body, config).await?,
        Endpoint::DeactivateModel => handlers::models::deactivate(&req, name, config).await?,
        Endpoint::CreateApiKey => handlers::api_keys::create(&req, &body, config).await?,
        Endpoint::ListApiKeys => handlers::api_keys::list(&req, config).await?,
        Endpoint::RevokeApiKey => handlers::api_keys::revoke(&req, id, config).await?,
        Endpoint::RecordUsage => handlers::usage::record(&req, &body, config, env).await?,
        Endpoint::RecordUsageBatch => {
            handlers::usage::record_batch(&req, &body, config, env).await?
        }
        Endpoint::UsageEventStatus => handlers::usage::event_status(&req, id, config).await?,
        Endpoint::ReserveTokens => handlers::usage::reserve(&req, &body, config).await?,
        Endpoint::ReleaseReservation => handlers::usage::release(&req, id, config).await?,
        Endpoint::UsageOverview => handlers::usage::overview(&req, config).await?,
        Endpoint::ListUsageEvents => handlers::usage::list_events(&req, config).await?,
    };
    Ok(Answered::Normal(response))
}

/// `GET /health?deep=1`: the deployment checklist instead of the quick probe.
/// (The raw URL, not `Request::url`: parsing a `url::Url` links the `url`
/// crate's IDNA tables into the Worker, tens of KiB for one flag.)
fn wants_deep_check(req: &Request) -> bool {
    http::query_pairs(req.url())
        .iter()
        .any(|(k, v)| k == "deep" && v == "1")
}

/// The raw body of a request that may carry one. A body framed by its
/// declared length (already held to `limit`) is read whole; any other (a
/// chunked upload declares no length) is read from its stream chunk by chunk
/// and refused with 413 as soon as more than `limit` bytes have arrived.
/// Reading stops there and the stream is cancelled, so nothing past the limit
/// is buffered (`shared::http::BoundedBody`), however much the caller goes on
/// sending.
async fn read_body(req: &Request, method: &str, limit: usize) -> Result<Vec<u8>, ApiError> {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") || !req.has_body() {
        return Ok(Vec::new());
    }
    let unreadable = |e: worker::Error| ApiError::InvalidJson {
        reason: format!("the request body could not be read: {e}"),
    };
    if http::framed_by_length(
        header(req, "transfer-encoding").as_deref(),
        header(req, "content-length").as_deref(),
    ) {
        // The declared length was already held to the limit, and HTTP ends
        // such a body there, so one `arrayBuffer()` is as bounded as the
        // stream and much cheaper: the stream costs a reader, a read per
        // chunk and one more to see the end, each a promise crossing between
        // JavaScript and wasm. The check below still stands guard.
        let bytes = req
            .bytes()
            .await
            .map_err(|e| unreadable(worker::Error::from(e)))?;
        let mut body = http::BoundedBody::new(limit);
        body.push(&bytes)?;
        return Ok(body.into_bytes());
    }
    let mut stream = req.stream().map_err(unreadable)?;
    let mut body = http::BoundedBody::new(limit);
    while let Some(chunk) = stream.next().await {
        body.push(&chunk.map_err(unreadable)?)?;
    }
    Ok(body.into_bytes())
}

/// The caller's `x-request-id` when it is plain, else a fresh random one.
fn request_id(req: &Request) -> String {
    if let Some(id) = http::accept_request_id(header(req, "x-request-id").as_deref()) {
        return id;
    }
    let mut bytes = [0u8; 16];
    // crypto.getRandomValues does not fail for 16 bytes; zeros would still be
    // a valid (if unhelpful) id.
    let _ = getrandom::getrandom(&mut bytes);
    http::request_id_from_bytes(bytes)
}

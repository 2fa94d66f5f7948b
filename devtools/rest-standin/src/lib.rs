//! # rest-standin: a local stand-in for PostgREST
//!
//! **This is not PostgREST.** It is dev tooling that answers, on this machine,
//! the small part of PostgREST (as Supabase runs it at `/rest/v1`) that our
//! Cloudflare Worker uses, because real PostgREST cannot be installed here.
//! Production, staging and any real Supabase project use Supabase's real
//! PostgREST; nothing in this crate is deployed.
//!
//! The subset it implements, with the observable behaviour of PostgREST
//! v12 (status codes, error bodies, transaction settings) and of Supabase's
//! API gateway, checked by `tests/conformance.rs` against a real PostgreSQL:
//!
//! * Supabase's gateway: a request without an `apikey` (header or query
//!   parameter) is refused with 401; when the project's API keys are
//!   configured, any other `apikey` is refused with 401 ("Invalid API
//!   key"). Without `Authorization`, a legacy JWT key is the bearer token,
//!   an `sb_publishable_…` key runs as the anonymous role and an
//!   `sb_secret_…` key as `service_role`; with `Authorization`, the request
//!   goes on unchanged (so `Bearer sb_…` is refused by the JWT check).
//! * `GET /rest/v1/`: a minimal OpenAPI root document;
//!   `GET /auth/v1/.well-known/jwks.json`: the project's published keys.
//! * `POST` and `GET /rest/v1/rpc/<function>`: function lookup by argument
//!   names in `pg_proc` (overloads, defaults, a single unnamed json/jsonb
//!   argument), schema choice by `Content-Profile`/`Accept-Profile`, argument
//!   conversion by PostgreSQL (`json_to_record`), answers shaped as PostgREST
//!   shapes them (scalar, object, array; 204 without a body for `void`).
//! * JWTs signed HS256 with the project's JWT secret, or ES256/RS256 with a
//!   key of the published JSON Web Key Set (by `kid`); no token, or an empty
//!   Bearer token, is the anonymous role.
//! * The call's one transaction: READ ONLY for GET and for STABLE or
//!   IMMUTABLE functions; `search_path`, the impersonated role's own
//!   settings (`ALTER ROLE … SET`, e.g. `statement_timeout`), the role (the
//!   `role` claim), `request.jwt.claims` (always with `role`),
//!   `request.method`, `request.path`, `request.headers`.
//! * PostgREST's error bodies and its SQLSTATE → HTTP status table,
//!   including `PTxyz` statuses raised from SQL and the message-dependent
//!   `21000`.
//!
//! Not implemented: table and view routes (`/rest/v1/<table>`), filters,
//! `select`, `Prefer` headers, embedding, counting, non-JSON bodies,
//! `request.cookies`, `RAISE SQLSTATE 'PGRST'` custom errors, function
//! settings (`CREATE FUNCTION … SET`), a role's
//! `default_transaction_isolation` and `search_path` settings, schema cache
//! reload by `NOTIFY` (the function list and role settings are re-read
//! every few seconds and whenever a lookup misses).
//!
//! Modules, one job each: [`gateway`] (Supabase's API key check),
//! [`auth`] (JWT → role and claims), [`keys`] (the secret and the published
//! key set), [`errors`] (error bodies and the status table), [`catalog`]
//! (functions and role settings from the catalog, overload choice), [`rpc`]
//! (building and running the call), [`server`] (HTTP routes, request log,
//! turning outcomes into answers).

pub mod auth;
pub mod catalog;
pub mod errors;
pub mod gateway;
pub mod keys;
pub mod rpc;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// How long a request waits for a free pooled connection before `PGRST003`.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// How long opening (or checking) a connection may take before the
/// database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the stand-in needs to run.
#[derive(Clone)]
pub struct Settings {
    /// Address to listen on (used by the binary; [`serve`] takes a bound
    /// listener so tests can bind port 0).
    pub listen: SocketAddr,
    /// Connection URL of the `authenticator` role, as PostgREST's `db-uri`.
    pub db_url: String,
    /// Exposed schemas (`db-schemas`); the first is the default.
    pub schemas: Vec<String>,
    /// The project's HS256 JWT secret.
    pub jwt_secret: String,
    /// The role for requests without a JWT role (`db-anon-role`).
    pub anon_role: String,
    /// Maximum number of database connections (`db-pool`).
    pub pool_size: usize,
    /// The project's API keys the gateway accepts in `apikey`; all optional.
    pub api_keys: gateway::ApiKeys,
    /// A JSON Web Key Set served at `/auth/v1/.well-known/jwks.json`, standing
    /// in for Supabase Auth's endpoint, whose ES256/RS256 keys verify user
    /// tokens; read on every use, so a test rotates keys by rewriting the
    /// file.
    pub jwks_file: Option<std::path::PathBuf>,
}

/// Serves the stand-in on `listener` until the server fails.
///
/// The database is not contacted until the first request: the stand-in
/// starts while PostgreSQL is down, answers 503 meanwhile, and works once
/// the database is back. Pooled connections are checked before reuse, so
/// connections broken by a database restart are dropped, not reused.
pub async fn serve(settings: Settings, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    if settings.schemas.is_empty() {
        bail!("at least one schema must be exposed");
    }
    if settings.pool_size == 0 {
        bail!("pool size must be at least 1");
    }
    let pg_config: tokio_postgres::Config = settings
        .db_url
        .parse()
        .context("the database URL is not a valid PostgreSQL connection string")?;
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .context("could not build the connection pool")?;
    let state = Arc::new(server::AppState {
        pool,
        catalog: catalog::Catalog::default(),
        schemas: settings.schemas,
        keys: keys::SigningKeys {
            secret: settings.jwt_secret.into_bytes(),
            jwks_file: settings.jwks_file,
        },
        anon_role: settings.anon_role,
        api_keys: settings.api_keys,
    });
    axum::serve(listener, server::router(state))
        .await
        .context("the HTTP server stopped")
}

//! Conformance of the stand-in with PostgREST as Supabase runs it at
//! `/rest/v1`: real PostgreSQL, real HTTP, no mocks.
//!
//! Needs `CDS_PG_SUPERUSER_URL`, a superuser URL such as
//! `postgres://postgres:postgres@127.0.0.1:PORT/postgres`; `cargo xtask test`
//! provides it with the local stack up. Without it every test fails (never
//! passes silently).
//!
//! One-time setup, shared by all tests: (re)create the database
//! `rest_standin_conformance`, apply `devtools/supabase_base.sql` (Supabase's
//! roles and `auth` schema), create the fixture schemas and functions below,
//! then run the stand-in in-process on 127.0.0.1:0, connected as
//! `authenticator`, exposing `conformance, conformance_b` and configured with
//! the project's four API keys (one more instance has none configured).
//!
//! The expected behaviour is PostgREST v12's as its documentation
//! (docs.postgrest.org: "Errors", "Functions as RPC", "Transactions",
//! "Authentication") and Supabase's API gateway describe it: error bodies, the
//! SQLSTATE → HTTP status table, `PGRST` codes, the per-request transaction
//! settings. Each test names the rule it checks.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const DATABASE: &str = "rest_standin_conformance";
const JWT_SECRET: &str = "conformance-jwt-secret-with-at-least-32-characters";
const SUPABASE_BASE_SQL: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../supabase_base.sql"));
/// `application_name` of the instance whose connections the recovery test
/// kills, so no other test's connection is touched.
const RECOVERY_APP: &str = "rest-standin-conformance-recovery";

/// Fixtures: one function per behaviour under test.
const FIXTURES_SQL: &str = r#"
create schema conformance;
create schema conformance_b;
create schema conformance_hidden;  -- exists, but is not exposed
grant usage on schema conformance, conformance_b, conformance_hidden
  to anon, authenticated, service_role;

create table conformance.items (id integer primary key, name text not null unique);
insert into conformance.items values (1, 'one'), (2, 'two');
grant select, insert on conformance.items to anon, authenticated, service_role;

-- Readable by service_role only: anon and authenticated get 42501.
create table conformance.secrets (id integer, secret text);
insert into conformance.secrets values (1, 'hidden');
grant select on conformance.secrets to service_role;

create function conformance.add_them(a integer, b integer) returns integer
  language sql immutable as $$ select a + b $$;
create function conformance.numbers(n integer) returns setof integer
  language sql immutable as $$ select generate_series(1, n) $$;
create function conformance.list_items() returns setof conformance.items
  language sql stable as $$ select * from conformance.items where id <= 2 order by id $$;
create function conformance.item_labels() returns table (id integer, label text)
  language sql stable as $$
    select id, 'item ' || name from conformance.items where id <= 2 order by id
  $$;
create function conformance.first_item() returns conformance.items
  language sql stable as $$ select * from conformance.items order by id limit 1 $$;
create function conformance.nothing() returns void
  language plpgsql as $$ begin end $$;
create function conformance.pay(amount integer) returns void
  language plpgsql as $$
  begin
    raise sqlstate 'PT402' using
      message = 'Insufficient balance',
      detail = format('needed %s, have 0', amount),
      hint = 'Top up the balance';
  end $$;
create function conformance.fail_plainly() returns void
  language plpgsql as $$
  begin
    raise exception 'plain failure' using detail = 'raised with P0001', hint = 'none needed';
  end $$;
create function conformance.add_item(id integer, name text) returns void
  language sql as $$ insert into conformance.items (id, name) values (id, name) $$;
create function conformance.whoami() returns json
  language sql stable as $$
    select json_build_object(
      'current_user', current_user,
      'uid', auth.uid(),
      'claims', current_setting('request.jwt.claims', true)::json,
      'method', current_setting('request.method', true),
      'path', current_setting('request.path', true),
      'headers', current_setting('request.headers', true)::json,
      'search_path', current_setting('search_path'),
      'jwt', auth.jwt())
  $$;
-- Unqualified call of an extension function: needs `extensions` on the path.
create function conformance.uses_extension() returns boolean
  language plpgsql as $$ begin return uuid_generate_v4() is not null; end $$;
create function conformance.overloaded(x integer) returns text
  language sql as $$ select 'integer' $$;
create function conformance.overloaded(x text) returns text
  language sql as $$ select 'text' $$;
create function conformance.greet(name text, greeting text default 'hello') returns text
  language sql as $$ select greeting || ', ' || name $$;
create function conformance.echo_body(jsonb) returns jsonb
  language sql as $$ select $1 $$;
-- A role with its own settings, as Supabase gives `anon` and `authenticated`
-- a statement_timeout. Roles belong to the cluster, not the database, so
-- this part must survive being run again.
do $$
begin
  if not exists (select from pg_roles where rolname = 'conformance_hurried') then
    create role conformance_hurried nologin noinherit;
  end if;
end
$$;
grant conformance_hurried to authenticator;
grant usage on schema conformance to conformance_hurried;
alter role conformance_hurried set statement_timeout = '200ms';
-- Superuser-only: PostgREST skips it (setting it would fail every request).
alter role conformance_hurried set session_preload_libraries = '';
-- Database-specific: PostgREST reads only the role's global settings.
alter role conformance_hurried in database rest_standin_conformance set lock_timeout = '7s';
create function conformance.timeouts() returns json
  language sql stable as $$
    select json_build_object(
      'statement_timeout', current_setting('statement_timeout'),
      'lock_timeout', current_setting('lock_timeout'))
  $$;
create function conformance.sleep(seconds float8) returns text
  language sql volatile as $$ select pg_sleep(seconds); select 'awake' $$;
-- The same write (nextval) from functions of each volatility.
create sequence conformance.counter;
grant usage on sequence conformance.counter to anon, authenticated, service_role;
create function conformance.next_count() returns bigint
  language sql volatile as $$ select nextval('conformance.counter') $$;
create function conformance.next_count_stable() returns bigint
  language sql stable as $$ select nextval('conformance.counter') $$;
create function conformance.next_count_immutable() returns bigint
  language sql immutable as $$ select nextval('conformance.counter') $$;
-- SQLSTATE 21000 twice: pg-safeupdate's refusal (as Supabase's API sessions
-- raise it for an unqualified DELETE/UPDATE), and a genuine cardinality error.
create function conformance.delete_everything() returns void
  language plpgsql as $$
  begin
    raise sqlstate '21000' using message = 'DELETE requires a WHERE clause';
  end $$;
create function conformance.one_of_many() returns integer
  language sql stable as $$ select (select id from conformance.items) $$;
create function conformance.shut_down() returns void
  language plpgsql as $$
  begin
    raise sqlstate '57P01' using message = 'terminating connection due to administrator command';
  end $$;
create function conformance.read_secrets() returns setof conformance.secrets
  language sql stable as $$ select * from conformance.secrets $$;
create function conformance.where_am_i() returns text
  language sql as $$ select 'conformance' $$;
create function conformance_b.where_am_i() returns text
  language sql as $$ select 'conformance_b' $$;
create function conformance_hidden.where_am_i() returns text
  language sql as $$ select 'conformance_hidden' $$;
"#;

struct Stack {
    /// `http://127.0.0.1:PORT/rest/v1` of the main instance.
    base: String,
    /// An instance whose connections the recovery test terminates.
    recovery_base: String,
    /// An instance pointed at a closed port: the database is "down".
    down_base: String,
    /// An instance configured with no API keys.
    open_base: String,
    /// Superuser connection string for the conformance database.
    admin: String,
}

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

fn stack() -> &'static Stack {
    match STACK.get_or_init(set_up) {
        Ok(stack) => stack,
        Err(message) => panic!("{message}"),
    }
}

fn set_up() -> Result<Stack, String> {
    let admin_url = std::env::var("CDS_PG_SUPERUSER_URL").map_err(|_| {
        "CDS_PG_SUPERUSER_URL is not set: the rest-standin conformance tests need a real \
         PostgreSQL superuser URL. Run them with `cargo xtask test`, which starts the \
         local stack and sets it."
            .to_owned()
    })?;
    let admin_config: tokio_postgres::Config = admin_url
        .parse()
        .map_err(|error| format!("CDS_PG_SUPERUSER_URL is not a PostgreSQL URL: {error}"))?;
    let (host, port) = tcp_host_and_port(&admin_config)?;
    let admin_user = admin_config.get_user().unwrap_or("postgres").to_owned();
    let admin_password = admin_config
        .get_password()
        .map(|password| String::from_utf8_lossy(password).into_owned())
        .unwrap_or_default();
    let admin = format!(
        "host={host} port={port} user={admin_user} password='{admin_password}' dbname={DATABASE}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("tokio runtime: {error}"))?;
    runtime.block_on(async {
        let server = connect(&admin_url).await?;
        // Two statements: neither may run inside the implicit transaction
        // of a multi-statement batch.
        for statement in [
            format!("drop database if exists {DATABASE} with (force)"),
            format!("create database {DATABASE}"),
        ] {
            server
                .batch_execute(&statement)
                .await
                .map_err(|error| format!("{statement}: {}", describe(&error)))?;
        }
        let database = connect(&admin).await?;
        database
            .batch_execute(SUPABASE_BASE_SQL)
            .await
            .map_err(|error| format!("applying supabase_base.sql: {}", describe(&error)))?;
        database
            .batch_execute("alter role authenticator password 'postgres';")
            .await
            .map_err(|error| format!("setting authenticator's password: {}", describe(&error)))?;
        database
            .batch_execute(FIXTURES_SQL)
            .await
            .map_err(|error| format!("creating the fixtures: {}", describe(&error)))
    })?;

    let authenticator = |application: &str| {
        format!(
            "host={host} port={port} user=authenticator password=postgres \
             dbname={DATABASE} application_name={application}"
        )
    };
    let closed_port = {
        // Bind and drop: nothing listens on this port afterwards.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|error| format!("finding a closed port: {error}"))?;
        listener
            .local_addr()
            .map_err(|error| error.to_string())?
            .port()
    };
    let instances = vec![
        (authenticator("rest-standin-conformance"), 4, project_keys()),
        (authenticator(RECOVERY_APP), 1, project_keys()),
        (
            format!(
                "host=127.0.0.1 port={closed_port} user=authenticator password=postgres \
                 dbname={DATABASE} connect_timeout=2"
            ),
            1,
            project_keys(),
        ),
        (
            authenticator("rest-standin-conformance-open"),
            1,
            rest_standin::gateway::ApiKeys::default(),
        ),
    ];
    let addresses = start_stand_ins(instances)?;
    let base = |address: &SocketAddr| format!("http://{address}/rest/v1");
    Ok(Stack {
        base: base(&addresses[0]),
        recovery_base: base(&addresses[1]),
        down_base: base(&addresses[2]),
        open_base: base(&addresses[3]),
        admin,
    })
}

fn tcp_host_and_port(config: &tokio_postgres::Config) -> Result<(String, u16), String> {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(_) => return Err("CDS_PG_SUPERUSER_URL must name a TCP host".to_owned()),
        None => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Ok((host, port))
}

/// The server's message when there is one (`Display` says only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

async fn connect(config: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("connecting to PostgreSQL ({config}): {error}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Starts one stand-in per (db_url, pool size, API keys) on its own
/// background runtime; returns their addresses once all listen.
fn start_stand_ins(
    instances: Vec<(String, usize, rest_standin::gateway::ApiKeys)>,
) -> Result<Vec<SocketAddr>, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = sender.send(Err(format!("stand-in runtime: {error}")));
                return;
            }
        };
        runtime.block_on(async move {
            let mut addresses = Vec::new();
            for (db_url, pool_size, api_keys) in instances {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = sender.send(Err(format!("binding the stand-in: {error}")));
                        return;
                    }
                };
                let address = listener
                    .local_addr()
                    .expect("bound listener has an address");
                addresses.push(address);
                let settings = rest_standin::Settings {
                    listen: address,
                    db_url,
                    schemas: vec!["conformance".into(), "conformance_b".into()],
                    jwt_secret: JWT_SECRET.into(),
                    anon_role: "anon".into(),
                    pool_size,
                    api_keys,
                    jwks_file: Some(jwks_path()),
                };
                tokio::spawn(async move {
                    if let Err(error) = rest_standin::serve(settings, listener).await {
                        eprintln!("stand-in stopped: {error:#}");
                    }
                });
            }
            let _ = sender.send(Ok(addresses));
            // Serve for the rest of the test process.
            std::future::pending::<()>().await;
        });
    });
    receiver
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the stand-ins did not start".to_owned())?
}

/// The key set every instance serves (Supabase Auth's JWKS endpoint).
fn jwks_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "rest-standin-conformance-{}.jwks.json",
        std::process::id()
    ))
}

/// Runs SQL as the superuser in the conformance database.
fn admin_sql(sql: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
    // Set up first: the setup runs its own runtime, which cannot start
    // inside the one below.
    let admin = &stack().admin;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let client = connect(admin).await.expect("admin connection");
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {}", describe(&error)))
    })
}

// ---------------------------------------------------------------- tokens

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn sign(algorithm: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signing a test token")
}

fn token(claims: Value) -> String {
    sign(Algorithm::HS256, &claims, JWT_SECRET)
}

/// When Supabase's legacy demo keys expire (2032); fixed, so every call of
/// [`anon_key`] gives the one configured key.
const LEGACY_KEY_EXP: u64 = 1_983_812_996;

/// Supabase's legacy anon key: a JWT with `role: anon`.
fn anon_key() -> String {
    token(json!({"iss": "supabase-demo", "role": "anon", "exp": LEGACY_KEY_EXP}))
}

/// Supabase's legacy service key: a JWT with `role: service_role`.
fn service_key() -> String {
    token(json!({"iss": "supabase-demo", "role": "service_role", "exp": LEGACY_KEY_EXP}))
}

/// The project's new opaque keys (not JWTs).
const PUBLISHABLE_KEY: &str = "sb_publishable_conformanceKeyForTheStandIn";
const SECRET_KEY: &str = "sb_secret_conformanceSecretForTheStandIn";

/// The API keys the instances under test are configured with.
fn project_keys() -> rest_standin::gateway::ApiKeys {
    rest_standin::gateway::ApiKeys {
        anon: Some(anon_key()),
        service_role: Some(service_key()),
        publishable: Some(PUBLISHABLE_KEY.to_owned()),
        secret: Some(SECRET_KEY.to_owned()),
    }
}

const USER_ID: &str = "5f0c7a1e-2d43-4c1b-9a7e-3b2f8d6c4e10";

/// A Supabase Auth access token for a signed-in user.
fn user_claims() -> Value {
    json!({
        "aud": "authenticated", "role": "authenticated", "sub": USER_ID,
        "email": "ada@example.com", "exp": now() + 3600, "iat": now(),
        "iss": "http://127.0.0.1:54321/auth/v1", "aal": "aal1", "is_anonymous": false
    })
}

// ------------------------------------------------ asymmetric signing keys

/// Serialises the tests that rewrite the key set file every instance reads.
static JWKS_FILE: Mutex<()> = Mutex::new(());

/// The key set file, held by one test at a time; removed when released, so
/// no run leaves one behind in the temporary folder.
struct JwksFile {
    _held: MutexGuard<'static, ()>,
}

impl Drop for JwksFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(jwks_path());
    }
}

fn lock_jwks() -> JwksFile {
    // A failed test poisons the lock; the file is rewritten by the next one.
    JwksFile {
        _held: JWKS_FILE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    }
}

/// Replaces the published key set (what Supabase Auth serves at
/// `/auth/v1/.well-known/jwks.json`).
fn publish(keys: &[&Value]) {
    std::fs::write(jwks_path(), json!({ "keys": keys }).to_string()).expect("writing the key set");
}

/// A freshly generated signing key and its public half as a JWK, in the
/// shape Supabase Auth publishes (`alg`, `use`, `key_ops`, `ext`).
struct KeyPair {
    alg: Algorithm,
    kid: String,
    private: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl KeyPair {
    fn es256(kid: &str) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let der = secret.to_pkcs8_der().expect("PKCS#8 encoding");
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            panic!("an uncompressed point has coordinates");
        };
        KeyPair {
            alg: Algorithm::ES256,
            kid: kid.to_owned(),
            private: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                        "key_ops": ["verify"], "ext": true, "kid": kid,
                        "x": b64(x), "y": b64(y)}),
        }
    }

    /// One RSA-2048 key per test process (generating one takes a while).
    fn rs256() -> &'static KeyPair {
        static RSA: OnceLock<KeyPair> = OnceLock::new();
        RSA.get_or_init(|| {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
            let der = key.to_pkcs1_der().expect("PKCS#1 encoding");
            KeyPair {
                alg: Algorithm::RS256,
                kid: "rsa-published".to_owned(),
                private: EncodingKey::from_rsa_der(der.as_bytes()),
                jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig",
                            "key_ops": ["verify"], "ext": true, "kid": "rsa-published",
                            "n": b64(&key.n().to_bytes_be()),
                            "e": b64(&key.e().to_bytes_be())}),
            }
        })
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, Some(&self.kid), claims)
    }

    /// Signs with this key under any `alg` and `kid` header.
    fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.private).expect("signing a test token")
    }
}

// ---------------------------------------------------------------- HTTP

struct Request {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

struct Reply {
    status: u16,
    content_type: Option<String>,
    www_authenticate: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", self.body))
    }

    /// An error body has exactly PostgREST's four keys.
    fn error(&self) -> Value {
        let body = self.json();
        let mut keys: Vec<&String> = body.as_object().expect("error object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["code", "details", "hint", "message"], "{body}");
        body
    }
}

/// `POST /rest/v1/rpc/<function>` with the anon key and a JSON body.
fn post(function: &str, body: &str) -> Request {
    Request {
        method: "POST",
        url: format!("{}/rpc/{function}", stack().base),
        headers: vec![
            ("apikey".into(), anon_key()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body: Some(body.to_owned()),
    }
}

/// `GET /rest/v1/rpc/<function_and_query>` with the anon key.
fn get(function_and_query: &str) -> Request {
    Request {
        method: "GET",
        url: format!("{}/rpc/{function_and_query}", stack().base),
        headers: vec![("apikey".into(), anon_key())],
        body: None,
    }
}

impl Request {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn at(mut self, base: &str) -> Self {
        let (_, rest) = self.url.split_once("/rest/v1").expect("a /rest/v1 URL");
        self.url = format!("{base}{rest}");
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    fn send(self) -> Reply {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .redirects(0)
            .build();
        let mut request = agent.request(self.method, &self.url);
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        let outcome = match &self.body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match outcome {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{} {}: {error}", self.method, self.url),
        };
        Reply {
            status: response.status(),
            content_type: response.header("content-type").map(str::to_owned),
            www_authenticate: response.header("www-authenticate").map(str::to_owned),
            body: response.into_string().expect("reading the body"),
        }
    }
}

fn whoami(request: Request) -> Value {
    let reply = request.send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

// ------------------------------------------------------ 1. the gateway

#[test]
fn missing_apikey_is_refused_by_the_gateway() {
    // Even a valid bearer token does not replace the apikey at the gateway.
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
        .without("apikey")
        .bearer(&anon_key())
        .send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["message"], "No API key found in request");

    let root = Request {
        method: "GET",
        url: format!("{}/", stack().base),
        headers: vec![],
        body: None,
    }
    .send();
    assert_eq!(root.status, 401);
    assert_eq!(root.json()["message"], "No API key found in request");
}

#[test]
fn unknown_apikey_is_refused_by_the_gateway() {
    // With the project's keys configured, Supabase's gateway lets only those
    // keys through: any other `apikey` (header or query parameter), even a
    // valid JWT, is refused with its own 401 body before PostgREST.
    let user_token = token(user_claims());
    for apikey in [
        "not-a-key",
        "sb_publishable_someOtherProject",
        "sb_secret_someOtherProject",
        user_token.as_str(),
    ] {
        let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
            .header("apikey", apikey)
            .send();
        assert_eq!(reply.status, 401, "{apikey}: {}", reply.body);
        assert_eq!(
            reply.json(),
            json!({"message": "Invalid API key",
                   "hint": "Double check your Supabase `anon` or `service_role` API key."}),
            "{apikey}"
        );
    }
    let reply = get("add_them?a=1&b=2&apikey=not-a-key")
        .without("apikey")
        .send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["message"], "Invalid API key");
    for apikey in [
        anon_key(),
        service_key(),
        PUBLISHABLE_KEY.to_owned(),
        SECRET_KEY.to_owned(),
    ] {
        let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
            .header("apikey", &apikey)
            .send();
        assert_eq!((reply.status, reply.body.as_str()), (200, "3"), "{apikey}");
    }
}

#[test]
fn opaque_keys_without_authorization_run_as_their_role() {
    // The sb_publishable_/sb_secret_ keys are not JWTs: without an
    // Authorization header, Supabase's gateway sends PostgREST a token of its
    // own for the key's role, `anon` or `service_role`.
    let me = whoami(post("whoami", "{}").header("apikey", PUBLISHABLE_KEY));
    assert_eq!(me["current_user"], "anon");
    assert_eq!(me["claims"], json!({"role": "anon"}));
    let me = whoami(post("whoami", "{}").header("apikey", SECRET_KEY));
    assert_eq!(me["current_user"], "service_role");
    assert_eq!(me["claims"], json!({"role": "service_role"}));
    let me = whoami(get(&format!("whoami?apikey={SECRET_KEY}")).without("apikey"));
    assert_eq!(me["current_user"], "service_role");
    let reply = post("read_secrets", "{}")
        .header("apikey", SECRET_KEY)
        .send();
    assert_eq!(reply.json(), json!([{"id": 1, "secret": "hidden"}]));
}

#[test]
fn opaque_key_sent_as_bearer_token_is_pgrst301() {
    // Sent as `Authorization: Bearer sb_…`, the hosted gateway forwards the
    // key and PostgREST refuses it: it is not a JWT.
    for key in [PUBLISHABLE_KEY, SECRET_KEY] {
        let reply = post("whoami", "{}")
            .header("apikey", key)
            .bearer(key)
            .send();
        assert_pgrst301(&reply, "Expected 3 parts in JWT; got 1");
    }
}

#[test]
fn user_token_with_a_publishable_key_runs_as_the_user() {
    // The browser's pair: the publishable key in `apikey`, the user's access
    // token in Authorization; the request runs as the user.
    let me = whoami(
        post("whoami", "{}")
            .header("apikey", PUBLISHABLE_KEY)
            .bearer(&token(user_claims())),
    );
    assert_eq!(me["current_user"], "authenticated");
    assert_eq!(me["uid"], USER_ID);
}

#[test]
fn without_configured_keys_any_apikey_passes_and_is_the_bearer() {
    // A stand-in started without the project's keys cannot tell keys apart:
    // any non-empty apikey passes and, without Authorization, is the bearer
    // token (a missing one is still refused).
    let open = &stack().open_base;
    let key = token(json!({"role": "service_role", "exp": now() + 60}));
    let me = whoami(post("whoami", "{}").at(open).header("apikey", &key));
    assert_eq!(me["current_user"], "service_role");
    let reply = post("whoami", "{}")
        .at(open)
        .header("apikey", PUBLISHABLE_KEY)
        .send();
    assert_pgrst301(&reply, "Expected 3 parts in JWT; got 1");
    let reply = post("whoami", "{}").at(open).without("apikey").send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["message"], "No API key found in request");
}

#[test]
fn apikey_is_the_bearer_token_when_there_is_no_authorization() {
    let me = whoami(post("whoami", "{}").header("apikey", &service_key()));
    assert_eq!(me["current_user"], "service_role");
    // An Authorization header wins over the apikey.
    let me = whoami(
        post("whoami", "{}")
            .header("apikey", &service_key())
            .bearer(&token(user_claims())),
    );
    assert_eq!(me["current_user"], "authenticated");
}

#[test]
fn apikey_query_parameter_passes_the_gateway_and_is_no_argument() {
    let key = anon_key();
    let reply = get(&format!("add_them?a=1&b=2&apikey={key}"))
        .without("apikey")
        .send();
    assert_eq!((reply.status, reply.body.as_str()), (200, "3"));
    let me = whoami(get(&format!("whoami?apikey={key}")).without("apikey"));
    assert_eq!(me["current_user"], "anon");
}

// ------------------------------------------------------ 2. the root

#[test]
fn root_serves_a_json_openapi_document() {
    for path in ["/", ""] {
        let reply = Request {
            method: "GET",
            url: format!("{}{path}", stack().base),
            headers: vec![("apikey".into(), anon_key())],
            body: None,
        }
        .send();
        assert_eq!(reply.status, 200, "GET /rest/v1{path}");
        let document = reply.json();
        assert_eq!(document["swagger"], "2.0");
        assert!(document["paths"].is_object());
        assert!(document["info"]["description"]
            .as_str()
            .is_some_and(|text| text.contains("stand-in for PostgREST")));
    }
}

#[test]
fn jwks_is_served_without_an_api_key_and_follows_the_file() {
    let _file = lock_jwks();
    let url = stack()
        .base
        .replace("/rest/v1", "/auth/v1/.well-known/jwks.json");
    let fetch = || {
        Request {
            method: "GET",
            url: url.clone(),
            headers: vec![],
            body: None,
        }
        .send()
    };
    let _ = std::fs::remove_file(jwks_path());
    let reply = fetch();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"keys": []}),
        "no file: an empty key set"
    );
    for kid in ["key-1", "key-2"] {
        let set = json!({"keys": [{"kty": "EC", "kid": kid, "crv": "P-256", "x": "x", "y": "y"}]});
        std::fs::write(jwks_path(), set.to_string()).expect("writing the key set");
        assert_eq!(
            fetch().json(),
            set,
            "a rewritten file is served at once ({kid})"
        );
    }
    let _ = std::fs::remove_file(jwks_path());
}

// ------------------------------------------------------ 3. requests

#[test]
fn get_passes_query_parameters_as_arguments() {
    let reply = get("add_them?a=40&b=2").send();
    assert_eq!((reply.status, reply.body.as_str()), (200, "42"));
    let reply = get("greet?name=Ada").send();
    assert_eq!(reply.json(), json!("hello, Ada"));
}

#[test]
fn get_runs_read_only_so_writes_are_25006_405() {
    let reply = get("add_item?id=100&name=hundred").send();
    assert_eq!(reply.status, 405, "{}", reply.body);
    assert_eq!(reply.error()["code"], "25006");
}

#[test]
fn post_runs_stable_and_immutable_functions_read_only() {
    // PostgREST opens a READ WRITE transaction only for POST to a VOLATILE
    // function; POST to a STABLE or IMMUTABLE one runs READ ONLY (as every
    // GET does), so a write inside it fails with 25006 → 405.
    for function in ["next_count_stable", "next_count_immutable"] {
        let reply = post(function, "{}").send();
        assert_eq!(reply.status, 405, "{function}: {}", reply.body);
        assert_eq!(reply.error()["code"], "25006", "{function}");
    }
    let reply = post("next_count", "{}").send();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn other_methods_on_rpc_are_pgrst101_405() {
    for method in ["PUT", "PATCH", "DELETE"] {
        let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
            .method(method)
            .send();
        assert_eq!(reply.status, 405, "{method}");
        let body = reply.error();
        assert_eq!(body["code"], "PGRST101", "{method}");
        assert_eq!(body["message"], "Only GET and POST verbs are allowed");
    }
}

#[test]
fn malformed_json_is_pgrst102_400() {
    let reply = post("add_them", r#"{"a": 1,"#).send();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["code"], "PGRST102");
}

#[test]
fn non_object_body_is_pgrst102_400() {
    for body in ["[1, 2]", "3", "\"text\""] {
        let reply = post("add_them", body).send();
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.error()["code"], "PGRST102", "{body}");
    }
}

#[test]
fn non_json_content_type_is_pgrst107_415() {
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
            .header("Content-Type", content_type)
            .send();
        assert_eq!(reply.status, 415, "{content_type}");
        assert_eq!(reply.error()["code"], "PGRST107");
    }
}

#[test]
fn json_content_type_with_charset_and_empty_body_are_accepted() {
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
        .header("Content-Type", "application/json; charset=utf-8")
        .send();
    assert_eq!((reply.status, reply.body.as_str()), (200, "3"));
    // An empty POST body calls the function without arguments.
    let reply = post("where_am_i", "").without("Content-Type").send();
    assert_eq!(reply.json(), json!("conformance"));
}

#[test]
fn profile_headers_pick_the_schema_and_the_first_is_the_default() {
    assert_eq!(post("where_am_i", "{}").send().json(), json!("conformance"));
    let reply = post("where_am_i", "{}")
        .header("Content-Profile", "conformance_b")
        .send();
    assert_eq!(reply.json(), json!("conformance_b"));
    let reply = get("where_am_i")
        .header("Accept-Profile", "conformance_b")
        .send();
    assert_eq!(reply.json(), json!("conformance_b"));
    // GET reads Accept-Profile only.
    let reply = get("where_am_i")
        .header("Content-Profile", "conformance_b")
        .send();
    assert_eq!(reply.json(), json!("conformance"));
}

#[test]
fn unexposed_schema_is_pgrst106_406() {
    let reply = post("where_am_i", "{}")
        .header("Content-Profile", "conformance_hidden")
        .send();
    assert_eq!(reply.status, 406);
    assert_eq!(
        reply.error(),
        json!({
            "code": "PGRST106",
            "message": "Invalid schema: conformance_hidden",
            "details": null,
            "hint": "Only the following schemas are exposed: conformance, conformance_b",
        })
    );
}

// ------------------------------------------------------ 4. resolution

#[test]
fn unknown_function_is_pgrst202_404() {
    let reply = post("no_such_function", r#"{"b": 1, "a": 2}"#).send();
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.error(),
        json!({
            "code": "PGRST202",
            "message": "Could not find the function conformance.no_such_function(a, b) in the schema cache",
            "details": "Searched for the function conformance.no_such_function with parameters a, b \
                        or with a single unnamed json/jsonb parameter, but no matches were found \
                        in the schema cache.",
            "hint": null,
        })
    );
}

#[test]
fn argument_names_must_fit_or_it_is_pgrst202_404() {
    for body in [r#"{"a": 1}"#, r#"{"a": 1, "b": 2, "c": 3}"#, "{}"] {
        let reply = post("add_them", body).send();
        assert_eq!(reply.status, 404, "{body}");
        assert_eq!(reply.error()["code"], "PGRST202", "{body}");
    }
    // A function of an unexposed schema is not found from an exposed one.
    let reply = post("where_am_i", "{}").send();
    assert_eq!(reply.json(), json!("conformance"));
}

#[test]
fn overloads_with_the_same_argument_names_are_pgrst203_300() {
    let reply = post("overloaded", r#"{"x": 1}"#).send();
    assert_eq!(reply.status, 300);
    let body = reply.error();
    assert_eq!(body["code"], "PGRST203");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.starts_with("Could not choose the best candidate function between: ")
            && message.contains("conformance.overloaded(x => integer)")
            && message.contains("conformance.overloaded(x => text)"),
        "{message}"
    );
}

#[test]
fn arguments_with_defaults_may_be_left_out() {
    assert_eq!(
        post("greet", r#"{"name": "Ada"}"#).send().json(),
        json!("hello, Ada")
    );
    assert_eq!(
        post("greet", r#"{"name": "Ada", "greeting": "hi"}"#)
            .send()
            .json(),
        json!("hi, Ada")
    );
}

#[test]
fn single_unnamed_jsonb_parameter_receives_the_whole_body() {
    let body = json!({"anything": [1, 2, {"nested": true}], "other": null});
    let reply = post("echo_body", &body.to_string()).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), body);
    let reply = post("echo_body", "[1, 2, 3]").send();
    assert_eq!(reply.json(), json!([1, 2, 3]));
}

#[test]
fn new_function_is_found_without_restart() {
    let reply = post("late_arrival", "{}").send();
    assert_eq!(reply.status, 404);
    admin_sql(
        "create function conformance.late_arrival() returns text \
         language sql as $$ select 'here now' $$",
    );
    let reply = post("late_arrival", "{}").send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!("here now"));
}

// ------------------------------------------------------ 5. binding

#[test]
fn postgres_converts_argument_types() {
    // Strings convert as PostgreSQL's input functions read them.
    let reply = post("add_them", r#"{"a": "40", "b": 2}"#).send();
    assert_eq!((reply.status, reply.body.as_str()), (200, "42"));
}

#[test]
fn bad_integer_value_is_22p02_400() {
    let reply = post("add_them", r#"{"a": "abc", "b": 1}"#).send();
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        json!({
            "code": "22P02",
            "message": "invalid input syntax for type integer: \"abc\"",
            "details": null,
            "hint": null,
        })
    );
}

// ------------------------------------------------------ 6. results

#[test]
fn scalar_function_returns_the_bare_json_value() {
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#).send();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "3");
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
}

#[test]
fn setof_scalar_returns_an_array_of_values() {
    assert_eq!(
        post("numbers", r#"{"n": 3}"#).send().json(),
        json!([1, 2, 3])
    );
    assert_eq!(post("numbers", r#"{"n": 0}"#).send().json(), json!([]));
}

#[test]
fn setof_composite_and_table_return_arrays_of_objects() {
    assert_eq!(
        post("list_items", "{}").send().json(),
        json!([{"id": 1, "name": "one"}, {"id": 2, "name": "two"}])
    );
    assert_eq!(
        get("item_labels").send().json(),
        json!([{"id": 1, "label": "item one"}, {"id": 2, "label": "item two"}])
    );
}

#[test]
fn single_composite_returns_an_object() {
    // PostgREST >= 8 answers a non-SETOF composite with an object.
    assert_eq!(
        post("first_item", "{}").send().json(),
        json!({"id": 1, "name": "one"})
    );
}

#[test]
fn void_function_answers_204_without_body_or_content_type() {
    // PostgREST v12 answers a function returning `void` with 204 No Content
    // and no Content-Type (before v12: 200 with `null`).
    let reply = post("nothing", "{}").send();
    assert_eq!((reply.status, reply.body.as_str()), (204, ""));
    assert_eq!(reply.content_type, None);
    let reply = get("nothing").send();
    assert_eq!((reply.status, reply.body.as_str()), (204, ""));
}

// ------------------------------------------------------ 7. auth

#[test]
fn role_claim_becomes_current_user() {
    let me = whoami(post("whoami", "{}").bearer(&token(user_claims())));
    assert_eq!(me["current_user"], "authenticated");
    assert_eq!(me["uid"], USER_ID, "auth.uid() reads sub from the claims");
}

#[test]
fn no_role_claim_means_the_anon_role() {
    let me = whoami(post("whoami", "{}").bearer(&token(json!({"sub": USER_ID}))));
    assert_eq!(me["current_user"], "anon");
    assert_eq!(me["uid"], USER_ID);
}

#[test]
fn claims_always_carry_the_role() {
    // PostgREST v12 inserts the role it switched to into the claims it sets
    // as `request.jwt.claims`: anonymous requests see {"role": "anon"}, and a
    // token without a `role` claim gets the anonymous role added.
    // A credential of another scheme is no token for PostgREST.
    let me = whoami(post("whoami", "{}").header("Authorization", "Basic dXNlcjpwYXNz"));
    assert_eq!(me["current_user"], "anon");
    assert_eq!(me["claims"], json!({"role": "anon"}));
    let me = whoami(post("whoami", "{}").bearer(&token(json!({"sub": USER_ID}))));
    assert_eq!(me["claims"], json!({"sub": USER_ID, "role": "anon"}));
}

#[test]
fn empty_bearer_token_is_anonymous() {
    // PostgREST v12 treats `Authorization: Bearer ` with an empty token as no
    // token at all: the request runs as the anonymous role.
    for header in ["Bearer ", "Bearer", "bearer  "] {
        let reply = post("whoami", "{}").header("Authorization", header).send();
        assert_eq!(reply.status, 200, "{header:?}: {}", reply.body);
        let me = reply.json();
        assert_eq!(me["current_user"], "anon", "{header:?}");
        assert_eq!(me["claims"], json!({"role": "anon"}), "{header:?}");
    }
}

#[test]
fn request_claims_headers_method_and_path_are_set() {
    let claims = user_claims();
    let me = whoami(
        post("whoami", "{}")
            .bearer(&token(claims.clone()))
            .header("X-Custom-Header", "Hello"),
    );
    assert_eq!(me["claims"], claims);
    assert_eq!(me["method"], "POST");
    assert_eq!(me["path"], "/rpc/whoami");
    assert_eq!(me["headers"]["x-custom-header"], "Hello");
    assert_eq!(me["headers"]["content-type"], "application/json");
    let me = whoami(get("whoami"));
    assert_eq!(me["method"], "GET");
}

#[test]
fn search_path_is_the_target_schema_then_public_and_extensions() {
    let me = whoami(post("whoami", "{}"));
    let path: String = me["search_path"]
        .as_str()
        .expect("search_path")
        .chars()
        .filter(|c| *c != '"' && *c != ' ')
        .collect();
    assert_eq!(path, "conformance,public,extensions");
    let reply = post("uses_extension", "{}").send();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "true"),
        "{}",
        reply.body
    );
}

#[test]
fn settings_do_not_leak_between_requests() {
    // Each request's settings are transaction-local: a later anonymous
    // request sees no trace of an earlier user's role or claims.
    for _ in 0..5 {
        whoami(post("whoami", "{}").bearer(&token(user_claims())));
        let me = whoami(post("whoami", "{}"));
        assert_eq!(me["current_user"], "anon");
        assert_eq!(me["uid"], Value::Null);
    }
}

#[test]
fn the_impersonated_roles_settings_apply_to_its_requests_only() {
    // PostgREST reads the settings of the roles `authenticator` may switch to
    // (`ALTER ROLE r SET ...`, without a database) and applies those of the
    // request's role in its transaction: a role with statement_timeout
    // 200ms gets SQLSTATE 57014 (query canceled) from a longer call, which
    // PostgREST answers 500 (57* → 500). Other roles are not affected, and
    // nothing outlives the request.
    let hurried = token(json!({"role": "conformance_hurried"}));
    let reply = post("timeouts", "{}").bearer(&hurried).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    // `ALTER ROLE .. IN DATABASE ..` settings are not PostgREST's to apply:
    // lock_timeout stays the login role's own (`authenticator`, 8s on a
    // hosted project, which PostgreSQL applies when the session starts).
    assert_eq!(
        reply.json(),
        json!({"statement_timeout": "200ms", "lock_timeout": "8s"})
    );

    let reply = post("sleep", r#"{"seconds": 0.6}"#).bearer(&hurried).send();
    assert_eq!(reply.status, 500, "{}", reply.body);
    let body = reply.error();
    assert_eq!(body["code"], "57014");
    assert_eq!(
        body["message"],
        "canceling statement due to statement timeout"
    );

    for _ in 0..3 {
        let reply = post("sleep", r#"{"seconds": 0.6}"#).send();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "\"awake\""),
            "anon"
        );
        let me = post("timeouts", "{}").send().json();
        assert_ne!(me["statement_timeout"], "200ms");
    }
}

fn assert_pgrst301(reply: &Reply, message: &str) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    let body = reply.error();
    assert_eq!(body["code"], "PGRST301");
    assert_eq!(body["message"], message);
    let challenge = reply.www_authenticate.as_deref().unwrap_or("");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=")
            && challenge.contains(message),
        "WWW-Authenticate: {challenge:?}"
    );
}

#[test]
fn tokens_signed_with_published_es256_and_rs256_keys_are_accepted() {
    // Supabase Auth signs access tokens with the project's asymmetric keys
    // (ES256 by default, or RS256) and publishes their public halves at
    // /auth/v1/.well-known/jwks.json; Supabase gives PostgREST that key set
    // besides the legacy HS256 secret, so a token verified by the published
    // key its `kid` names is accepted, and HS256 tokens keep working.
    let _file = lock_jwks();
    let ec = KeyPair::es256("ec-current");
    let rsa = KeyPair::rs256();
    publish(&[&ec.jwk, &rsa.jwk]);
    let claims = user_claims();
    let tokens = [
        ("ES256", ec.sign(&claims)),
        ("RS256", rsa.sign(&claims)),
        (
            "ES256 without kid",
            ec.sign_as(Algorithm::ES256, None, &claims),
        ),
        ("HS256", token(claims.clone())),
    ];
    for (what, token) in tokens {
        let me = whoami(post("whoami", "{}").bearer(&token));
        assert_eq!(me["current_user"], "authenticated", "{what}");
        assert_eq!(me["uid"], USER_ID, "{what}");
        assert_eq!(me["jwt"], claims, "{what}: auth.jwt()");
    }
}

#[test]
fn asymmetric_tokens_no_published_key_verifies_are_pgrst301_401() {
    // PostgREST refuses (PGRST301, 401) a token that no key of the project
    // verifies: an unknown `kid`, a signature by another key, a key of the
    // wrong type for the `alg`, claims altered after signing. Claims are
    // checked once the signature holds (`exp`: "JWT expired").
    let _file = lock_jwks();
    let ec = KeyPair::es256("ec-published");
    let rsa = KeyPair::rs256();
    let unpublished = KeyPair::es256("ec-unpublished");
    publish(&[&ec.jwk, &rsa.jwk]);
    let claims = user_claims();
    let tampered = {
        let token = ec.sign(&claims);
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims.clone();
        forged["role"] = json!("service_role");
        format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        )
    };
    let cases = [
        ("unknown kid", unpublished.sign(&claims)),
        (
            "another key's signature under a published kid",
            unpublished.sign_as(Algorithm::ES256, Some("ec-published"), &claims),
        ),
        (
            "another key's signature without kid",
            unpublished.sign_as(Algorithm::ES256, None, &claims),
        ),
        (
            "ES256 naming the RSA key",
            ec.sign_as(Algorithm::ES256, Some(&rsa.kid), &claims),
        ),
        (
            "RS256 naming the EC key",
            rsa.sign_as(Algorithm::RS256, Some("ec-published"), &claims),
        ),
        ("claims altered after signing", tampered),
    ];
    for (what, token) in cases {
        let reply = post("whoami", "{}").bearer(&token).send();
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_pgrst301(&reply, "JWSError JWSInvalidSignature");
    }
    let mut expired = user_claims();
    expired["exp"] = json!(now() - 3600);
    let reply = post("whoami", "{}").bearer(&ec.sign(&expired)).send();
    assert_pgrst301(&reply, "JWT expired");
}

#[test]
fn rotated_keys_take_effect_at_once() {
    // Keys rotate: a token verifies against the key set as published now,
    // so a key added is trusted and a key removed is not, at once.
    let _file = lock_jwks();
    let old = KeyPair::es256("rotation-old");
    let new = KeyPair::es256("rotation-new");
    let status = |key: &KeyPair| {
        post("whoami", "{}")
            .bearer(&key.sign(&user_claims()))
            .send()
            .status
    };
    publish(&[&old.jwk]);
    assert_eq!((status(&old), status(&new)), (200, 401), "old key only");
    publish(&[&old.jwk, &new.jwk]);
    assert_eq!((status(&old), status(&new)), (200, 200), "both keys");
    publish(&[&new.jwk]);
    assert_eq!((status(&old), status(&new)), (401, 200), "new key only");
}

#[test]
fn expired_jwt_is_pgrst301_401() {
    let mut claims = user_claims();
    claims["exp"] = json!(now() - 3600);
    let reply = post("whoami", "{}").bearer(&token(claims)).send();
    assert_pgrst301(&reply, "JWT expired");
}

#[test]
fn bad_signature_jwt_is_pgrst301_401() {
    let forged = sign(
        Algorithm::HS256,
        &user_claims(),
        "some-other-secret-that-is-also-32-characters",
    );
    let reply = post("whoami", "{}").bearer(&forged).send();
    assert_pgrst301(&reply, "JWSError JWSInvalidSignature");
}

#[test]
fn other_algorithm_jwt_is_pgrst301_401() {
    let hs512 = sign(Algorithm::HS512, &user_claims(), JWT_SECRET);
    let reply = post("whoami", "{}").bearer(&hs512).send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error()["code"], "PGRST301");
    let reply = post("whoami", "{}").bearer("not-a-jwt").send();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error()["code"], "PGRST301");
}

#[test]
fn aud_claim_is_not_required() {
    let mut claims = user_claims();
    claims.as_object_mut().expect("object").remove("aud");
    assert_eq!(
        whoami(post("whoami", "{}").bearer(&token(claims)))["current_user"],
        "authenticated"
    );
    let mut claims = user_claims();
    claims["aud"] = json!("some-other-audience");
    assert_eq!(
        whoami(post("whoami", "{}").bearer(&token(claims)))["current_user"],
        "authenticated"
    );
}

// ------------------------------------------------------ 8. errors

#[test]
fn pt402_raise_answers_402_with_code_message_details_hint() {
    let reply = post("pay", r#"{"amount": 5}"#).send();
    assert_eq!(reply.status, 402);
    assert_eq!(
        reply.error(),
        json!({
            "code": "PT402",
            "message": "Insufficient balance",
            "details": "needed 5, have 0",
            "hint": "Top up the balance",
        })
    );
}

#[test]
fn plain_raise_is_p0001_400() {
    let reply = post("fail_plainly", "{}").send();
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        json!({
            "code": "P0001",
            "message": "plain failure",
            "details": "raised with P0001",
            "hint": "none needed",
        })
    );
}

#[test]
fn cardinality_violation_is_400_from_safeupdate_and_500_otherwise() {
    // PostgREST special-cases SQLSTATE 21000 whose message ends with
    // "requires a WHERE clause" (pg-safeupdate, loaded for every API session
    // on Supabase) as a client error, 400; any other 21000 is 500.
    let reply = post("delete_everything", "{}").send();
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.error(),
        json!({"code": "21000", "message": "DELETE requires a WHERE clause",
               "details": null, "hint": null})
    );
    let reply = post("one_of_many", "{}").send();
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.error()["code"], "21000");
    assert_eq!(
        reply.error()["message"],
        "more than one row returned by a subquery used as an expression"
    );
}

#[test]
fn admin_shutdown_is_57p01_503() {
    // PostgREST answers 57P01 (terminating connection due to administrator
    // command) with 503, ahead of the 57* → 500 row: a retry may succeed.
    let reply = post("shut_down", "{}").send();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.error()["code"], "57P01");
}

#[test]
fn unique_violation_is_23505_409() {
    let reply = post("add_item", r#"{"id": 1, "name": "uno"}"#).send();
    assert_eq!(reply.status, 409, "{}", reply.body);
    let body = reply.error();
    assert_eq!(body["code"], "23505");
    assert_eq!(body["details"], "Key (id)=(1) already exists.");
}

#[test]
fn insufficient_privilege_is_401_for_anon_and_403_for_a_signed_in_role() {
    let reply = post("read_secrets", "{}").send();
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.error()["code"], "42501");
    assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"));

    let reply = post("read_secrets", "{}")
        .bearer(&token(user_claims()))
        .send();
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.error()["code"], "42501");

    let reply = post("read_secrets", "{}").bearer(&service_key()).send();
    assert_eq!(reply.json(), json!([{"id": 1, "secret": "hidden"}]));
}

#[test]
fn database_down_is_503_and_recovers() {
    // An instance whose database port is closed answers PGRST000 503...
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#)
        .at(&stack().down_base)
        .send();
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body = reply.error();
    assert_eq!(body["code"], "PGRST000");
    assert!(body["message"]
        .as_str()
        .is_some_and(|message| message.contains("Retrying the connection")));

    // ...and an instance whose connections the database drops (as a restart
    // does) throws the broken connection away and answers on a new one.
    let recovery = &stack().recovery_base;
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#).at(recovery).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let killed = admin_sql(&format!(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where application_name = '{RECOVERY_APP}'"
    ));
    let killed_rows = killed
        .iter()
        .filter(|message| matches!(message, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert!(killed_rows >= 1, "no stand-in connection was terminated");
    std::thread::sleep(Duration::from_millis(200));
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#).at(recovery).send();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "3"),
        "{}",
        reply.body
    );

    // The main instance was never affected.
    let reply = post("add_them", r#"{"a": 1, "b": 2}"#).send();
    assert_eq!(reply.status, 200);
}

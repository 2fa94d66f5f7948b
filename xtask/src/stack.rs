//! The whole local stack: PostgreSQL, the Supabase base and our migrations,
//! the REST layer, and the Worker in workerd, started in order and stopped in
//! reverse.

use crate::devkeys::{uuid_v4, DemoUser, DevKeys, KeyScheme};
use crate::paths::{exposed_schemas, repo_root, Profile};
use crate::postgres::{self, LOCAL_PASSWORD};
use crate::proc::{ensure_port_free, run, wait_until, Service};
use crate::tools::{self, cargo, PgTools, WorkerTools};
use crate::worker;
use anyhow::{bail, Context, Result};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Stack {
    pub profile: Profile,
    pub keys: DevKeys,
    pub demo: DemoUser,
    pub pg: PgTools,
    /// The Worker's build and dev tools, already checked and installed.
    pub worker_tools: WorkerTools,
    /// The REST stand-in's binary, for a second project beside this one.
    pub rest_binary: std::path::PathBuf,
    /// In start order; stopped in reverse.
    services: Vec<Service>,
}

/// Everything installed and built, before any service starts.
pub struct Prepared {
    pub worker_tools: WorkerTools,
    pub pg: PgTools,
    pub rest_binary: std::path::PathBuf,
}

/// How the REST stand-in is built: debug for dev and tests (quick to build),
/// release for benchmarks (its speed is part of every full-stack figure).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RestBuild {
    Debug,
    Release,
}

pub fn prepare(rest_build: RestBuild) -> Result<Prepared> {
    let started = Instant::now();
    let pg = tools::pg_tools()?;
    let worker_tools = tools::worker_tools()?;
    eprintln!("==> building the REST stand-in");
    let mut build = Command::new(cargo());
    build.args(["build", "--quiet", "-p", "rest-standin"]);
    if rest_build == RestBuild::Release {
        build.arg("--release");
    }
    run(build.current_dir(repo_root()))?;
    worker::build(&worker_tools)?;
    eprintln!("    ready to start after {:.1?}", started.elapsed());
    let folder = match rest_build {
        RestBuild::Debug => "debug",
        RestBuild::Release => "release",
    };
    Ok(Prepared {
        worker_tools,
        pg,
        rest_binary: repo_root().join("target").join(folder).join("rest-standin"),
    })
}

impl Stack {
    pub fn start(profile: Profile, prepared: Prepared) -> Result<Self> {
        let Prepared {
            worker_tools,
            pg,
            rest_binary,
        } = prepared;
        ensure_port_free(profile.pg_port, "PostgreSQL", "CDS_PG_PORT")?;
        ensure_port_free(profile.rest_port, "the REST layer", "CDS_REST_PORT")?;
        let keys = DevKeys::load_or_create(&profile)?;
        let mut stack = Stack {
            demo: DemoUser {
                id: String::new(),
                email: DemoUser::EMAIL,
                access_token: String::new(),
                api_key: String::new(),
            },
            profile,
            keys,
            pg,
            worker_tools,
            rest_binary,
            services: Vec::new(),
        };

        eprintln!(
            "==> 1/5 PostgreSQL {} on port {}",
            tools::PG_MAJOR,
            stack.profile.pg_port
        );
        let postgres = postgres::start_cluster(&stack.profile, &stack.pg)?;
        stack.services.push(postgres);

        eprintln!("==> 2/5 Supabase base (roles, auth schema)  3/5 migrations and seed");
        let applied = postgres::reset_database(&stack.profile, &stack.pg)?;
        eprintln!("    {applied} migrations applied");

        stack.create_demo_user()?;

        eprintln!(
            "==> 4/5 REST layer (PostgREST stand-in) on port {}",
            stack.profile.rest_port
        );
        let rest = start_rest(
            &stack.profile,
            &stack.keys,
            &stack.rest_binary,
            &exposed_schemas()?,
        )?;
        stack.services.push(rest);

        eprintln!(
            "==> 5/5 Worker in workerd (wrangler dev) on port {}",
            stack.profile.worker_port
        );
        let vars = worker::write_vars(&stack.profile, &stack.keys, KeyScheme::Opaque)?;
        let mut wrangler = worker::start_wrangler(&stack.profile, &stack.worker_tools, &vars)?;
        let health = format!("{}/health", stack.profile.worker_url());
        let waited = wait_until(&mut wrangler, Duration::from_secs(180), || {
            ureq::get(&health)
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok()
        });
        stack.services.push(wrangler);
        waited?;
        Ok(stack)
    }

    /// A user in `auth.users`, as Supabase Auth would have created at signup,
    /// mirrored into `platform.users` as the edge's webhook does, granted
    /// tokens, and an access token for them.
    fn create_demo_user(&mut self) -> Result<()> {
        let id = uuid_v4()?;
        let email = DemoUser::EMAIL;
        postgres::execute(
            &self.pg,
            &self.profile.admin_db_url(),
            &format!(
                "insert into auth.users (id, aud, role, email, email_confirmed_at, \
                 raw_app_meta_data, raw_user_meta_data, created_at, updated_at) \
                 values ('{id}', 'authenticated', 'authenticated', '{email}', now(), \
                 '{{\"provider\":\"email\",\"providers\":[\"email\"]}}', '{{}}', now(), now())"
            ),
        )?;
        postgres::as_service_role(
            &self.pg,
            &self.profile.admin_db_url(),
            &format!(
                "select platform.mirror_auth_user('{id}', '{email}', 'demo'); \
                 select platform.grant_user_tokens('{id}', 1000000, 'local demo account', 'demo-welcome');"
            ),
        )?;
        self.demo.api_key = self.create_demo_api_key(&id)?;
        self.demo.access_token = self.keys.user_token(&self.profile, &id, email)?;
        self.demo.id = id;
        Ok(())
    }

    /// An API key for the demo user, created the way `POST /v1/api-keys`
    /// does: the key generated here, stored by the service role naming the
    /// user; the database gets the prefix and the hash, the banner the key.
    fn create_demo_api_key(&self, user_id: &str) -> Result<String> {
        let mut random = [0u8; shared::auth::api_key::RANDOM_BYTES];
        getrandom::getrandom(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let key = shared::auth::ApiKey::generate(random);
        postgres::execute(
            &self.pg,
            &self.profile.admin_db_url(),
            &format!(
                "begin; set local role service_role; \
                 select set_config('request.jwt.claims', '{{\"role\": \"service_role\"}}', true); \
                 select platform.create_api_key('local demo key', '{}', '{}', \
                   p_user_id => '{user_id}'); commit;",
                key.prefix, key.secret_hash_hex
            ),
        )?;
        Ok(key.full_key.clone())
    }

    /// A few usage events for the demo user, recorded through the Worker
    /// with the demo API key as an LLM server would: the usage page the
    /// banner links to then has a balance, a chart, totals and events to
    /// show on a brand-new stack. Only for `dev`: the tests make their own.
    fn record_demo_usage(&self) -> Result<()> {
        let models = postgres::execute(
            &self.pg,
            &self.profile.admin_db_url(),
            "select string_agg(name, ' ' order by name) from \
             (select name from platform.models where is_active order by name limit 3) m",
        )?;
        let models: Vec<&str> = models.split_whitespace().collect();
        if models.is_empty() {
            bail!("the seeded catalogue has no active model for the demo usage");
        }
        let events: Vec<serde_json::Value> = (0..12u64)
            .map(|i| {
                serde_json::json!({
                    "model": models[i as usize % models.len()],
                    "prompt_tokens": 400 + 75 * i,
                    "completion_tokens": 120 + 40 * (i % 5),
                    "idempotency_key": format!("demo-usage-{i}"),
                })
            })
            .collect();
        let answer = ureq::post(&format!("{}/v1/usage/batch", self.profile.worker_url()))
            .set("authorization", &format!("Bearer {}", self.demo.api_key))
            .timeout(Duration::from_secs(30))
            .send_json(serde_json::json!({ "events": events }));
        match answer {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => bail!("recording the demo usage answered {}", r.status()),
            Err(ureq::Error::Status(s, r)) => bail!(
                "recording the demo usage answered {s}: {}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => bail!("recording the demo usage: the Worker did not answer: {e}"),
        }
    }

    /// The README's deploy steps after `db push` that can be done locally:
    /// pg_cron enabled (as the dashboard does) and the maintenance job
    /// installed, so the project is a fully deployed one (`GET
    /// /health?deep=1` all green). There is no pg_net here: users are
    /// mirrored just in time. `cargo xtask test` runs pgTAP before this, on
    /// the project as pushed.
    pub fn complete_deploy_steps(&self) -> Result<()> {
        postgres::execute(
            &self.pg,
            &self.profile.superuser_db_url(),
            postgres::ENABLE_PG_CRON,
        )?;
        postgres::execute(
            &self.pg,
            &self.profile.admin_db_url(),
            "select platform.install_maintenance_jobs()",
        )?;
        Ok(())
    }

    /// Fails when any service has died.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.services
            .iter_mut()
            .try_for_each(Service::ensure_running)
    }

    /// The pid of the running service called `name` (`postgres`,
    /// `rest-standin`, ...), for measuring what it spends.
    pub fn service_pid(&self, name: &str) -> Option<u32> {
        self.services
            .iter()
            .find(|service| service.name == name)
            .map(Service::pid)
    }

    pub fn stop(&mut self) {
        while let Some(mut service) = self.services.pop() {
            eprintln!("    stopping {} (pid {})", service.name, service.pid());
            service.stop(Duration::from_secs(10));
        }
    }

    /// Environment for tests that talk to the running stack.
    pub fn test_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CDS_WORKER_URL", self.profile.worker_url()),
            ("CDS_SUPABASE_URL", self.profile.supabase_url()),
            ("CDS_PG_ADMIN_URL", self.profile.admin_db_url()),
            ("CDS_PG_SUPERUSER_URL", self.profile.superuser_db_url()),
            ("CDS_JWT_SECRET", self.keys.jwt_secret.clone()),
            (
                "CDS_JWKS_FILE",
                self.profile.jwks_file().display().to_string(),
            ),
            ("CDS_DB_WEBHOOK_SECRET", self.keys.db_webhook_secret.clone()),
            ("CDS_AUTH_HOOK_SECRET", self.keys.auth_hook_secret.clone()),
            ("CDS_METRICS_TOKEN", self.keys.metrics_token.clone()),
            ("CDS_ANON_KEY", self.keys.anon_key.clone()),
            ("CDS_SERVICE_ROLE_KEY", self.keys.service_role_key.clone()),
            ("CDS_PUBLISHABLE_KEY", self.keys.publishable_key.clone()),
            ("CDS_SECRET_KEY", self.keys.secret_key.clone()),
            ("CDS_DEMO_USER_ID", self.demo.id.clone()),
            ("CDS_DEMO_USER_TOKEN", self.demo.access_token.clone()),
            ("CDS_DEMO_API_KEY", self.demo.api_key.clone()),
            // Where each service's output is captured (`<service>.log`).
            ("CDS_LOG_DIR", self.profile.dir.display().to_string()),
            // What the Worker's rate limiting bindings allow per minute here.
            (
                "CDS_RATE_LIMIT",
                crate::worker::rate_limit_override(self.profile.name)
                    .map_or_else(String::new, |limit| limit.to_string()),
            ),
        ]
    }

    fn print_banner(&self) {
        let p = &self.profile;
        println!(
            "\nCyberDevStudio local stack is up.\n\n\
             \x20 Usage page         {worker}/#local_session={token}\n\
             \x20                    (signs the demo user in; local only)\n\n\
             \x20 Worker (workerd)   {worker}\n\
             \x20 REST (stand-in)    {rest}/rest/v1\n\
             \x20 PostgreSQL         {db}\n\
             \x20 Logs               {logs}\n\n\
             \x20 publishable key    {publishable}  (the Worker's)\n\
             \x20 secret key         {secret}\n\
             \x20 anon key (legacy)  {anon}\n\
             \x20 service_role key   {service}\n\
             \x20 demo user          {email} ({id})\n\
             \x20 demo user JWT      {token}\n\
             \x20 demo API key       {api_key}\n\n\
             Try:\n\
             \x20 curl {worker}/health\n\
             \x20 curl {worker}/v1/me -H 'authorization: Bearer {api_key}'\n\
             \x20 curl -X POST {worker}/__scheduled?cron=*/5+*+*+*+*\n\
             \x20 psql {db}\n\n\
             Ctrl-C stops everything.",
            worker = p.worker_url(),
            rest = p.supabase_url(),
            db = p.admin_db_url(),
            logs = p.dir.display(),
            anon = self.keys.anon_key,
            publishable = self.keys.publishable_key,
            secret = self.keys.secret_key,
            service = self.keys.service_role_key,
            email = self.demo.email,
            id = self.demo.id,
            token = self.demo.access_token,
            api_key = self.demo.api_key,
        );
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The REST layer (the PostgREST stand-in) for `profile`'s database,
/// exposing `schemas` as PostgREST's `db-schemas` would.
pub fn start_rest(
    profile: &Profile,
    keys: &DevKeys,
    binary: &std::path::Path,
    schemas: &[String],
) -> Result<Service> {
    // The legacy HS256 secret signs the local tokens; the asymmetric key
    // set starts empty, and tests publish keys by rewriting the file.
    std::fs::write(profile.jwks_file(), r#"{"keys":[]}"#)?;
    let mut command = Command::new(binary);
    command
        .args(["--listen", &format!("127.0.0.1:{}", profile.rest_port)])
        .args([
            "--db-url",
            &format!(
                "postgresql://authenticator:{LOCAL_PASSWORD}@127.0.0.1:{}/postgres",
                profile.pg_port
            ),
        ])
        .args(["--schemas", &schemas.join(",")])
        .args(["--jwt-secret", &keys.jwt_secret])
        // The gateway accepts exactly the project's four keys.
        .args(["--anon-key", &keys.anon_key])
        .args(["--service-role-key", &keys.service_role_key])
        .args(["--publishable-key", &keys.publishable_key])
        .args(["--secret-key", &keys.secret_key])
        .arg("--jwks-file")
        .arg(profile.jwks_file());
    let mut service = Service::spawn(
        "rest-standin",
        command,
        &profile.log("rest"),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let root = format!("{}/rest/v1/", profile.supabase_url());
    let anon = keys.anon_key.clone();
    wait_until(&mut service, Duration::from_secs(30), || {
        ureq::get(&root)
            .set("apikey", &anon)
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok()
    })?;
    Ok(service)
}

/// Installs a Ctrl-C / SIGTERM handler that only raises a flag; the main
/// loop then stops the services in order.
pub fn stop_requested() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let raised = flag.clone();
    ctrlc::set_handler(move || raised.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    Ok(flag)
}

/// `cargo xtask dev`.
pub fn dev() -> Result<ExitCode> {
    let stop = stop_requested()?;
    let profile = Profile::dev()?;
    let prepared = prepare(RestBuild::Debug)?;
    let mut stack = Stack::start(profile, prepared)?;
    stack.complete_deploy_steps()?;
    stack.record_demo_usage()?;
    stack.print_banner();
    let outcome = loop {
        if stop.load(Ordering::SeqCst) {
            eprintln!("\n==> stopping");
            break Ok(ExitCode::SUCCESS);
        }
        if let Err(e) = stack.ensure_running() {
            break Err(e);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    stack.stop();
    outcome
}

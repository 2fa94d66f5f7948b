//! Serving a built Worker with `workerd serve` alone, the way Cloudflare's
//! runtime runs it: no `wrangler dev`, so no Node proxy in front of the
//! Worker and none behind its `fetch` calls (wrangler passes both through
//! Node, which costs several milliseconds per request and is not what a
//! deployed Worker pays). The benchmark measures the Worker this way.
//!
//! The config is generated from the same sources `wrangler dev` reads: the
//! compatibility date, flags and `[vars]` of a `wrangler.toml`, the local
//! secrets `worker::local_vars` gives, and the modules of the build folder,
//! embedded by a path relative to the config file (capnp resolves `embed`
//! that way). Bare workerd has no queue broker: `start_edge` leaves the
//! `[[queues.producers]]` bindings out (our Worker answers `Prefer:
//! respond-async` with its coded `500 misconfigured` then, as a deployment
//! without the queue would), and `start_edge_with_queues` binds them to a
//! stand-in broker (`queue_standin.js`, see there what it does and does
//! not) that delivers to the Worker's `queue` handler as
//! `[[queues.consumers]]` say, with a chosen concurrency. The `[[ratelimits]]` bindings are
//! served by a stand-in (`ratelimit_standin.js`, a fixed-window counter per
//! key, as wrangler's local one), wrapped as wrangler wraps its own, with the
//! profile's limits (`worker::rate_limit_override`), so a measured request
//! pays for its limiter call.
//!
//! Outbound `fetch` goes through a `network` service allowing loopback
//! addresses only: the REST layer is on 127.0.0.1 and nothing here may
//! reach another host.
//!
//! The `[assets]` binding (`env.ASSETS.fetch`) is a read-only `disk`
//! service on the assets directory: like Cloudflare's binding with
//! `html_handling = "none"`, it answers a path with the file of exactly that
//! path (200 and its bytes) or 404. Cloudflare's adds caching headers and a
//! content type by extension, which the Worker does not read; bare workerd
//! serves no assets to clients, so every request reaches the Worker, as the
//! paths the Worker reads from the binding do on Cloudflare
//! (`run_worker_first`).

use crate::devkeys::{DevKeys, KeyScheme};
use crate::paths::{repo_root, Profile};
use crate::proc::{ensure_port_free, Service};
use crate::tools::WorkerTools;
use crate::worker;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// How workerd loads a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    EsModule,
    Wasm,
}

/// One module of the Worker: the name other modules import it by, and its
/// file as the config names it (relative to the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub kind: ModuleKind,
    pub path: String,
}

/// Everything a `workerd serve` config for one Worker holds.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub port: u16,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    /// The first module is the Worker's main module.
    pub modules: Vec<Module>,
    /// Vars and secrets, as `text` bindings (what wrangler makes of both).
    pub bindings: Vec<(String, String)>,
    /// Rate limiting bindings, served by the stand-in module.
    pub rate_limiters: Vec<RateLimiter>,
    /// The `[assets]` binding, served from its directory.
    pub assets: Option<Assets>,
}

/// An `[assets]` binding: its name, and the directory it reads (absolute,
/// as text for the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assets {
    pub binding: String,
    pub directory: String,
}

/// The name of the service behind the `[assets]` binding.
const ASSETS_SERVICE: &str = "assets";

/// One `[[ratelimits]]` binding: its name, and `simple`'s limit and period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimiter {
    pub name: String,
    pub limit: u32,
    pub period: u32,
}

/// The module name of the rate limiting stand-in: internal, so only a
/// wrapped binding can load it, never the Worker's own code.
const RATELIMIT_STANDIN_MODULE: &str = "cds-internal:ratelimit-standin";

/// A stand-in for the rate limiting binding (bare workerd has none).
const RATELIMIT_STANDIN_SOURCE: &str = include_str!("ratelimit_standin.js");

/// The service of the queue stand-in, and its source.
const QUEUE_STANDIN_SERVICE: &str = "queue-standin";
const QUEUE_STANDIN_SOURCE: &str = include_str!("queue_standin.js");

/// One `[[queues.producers]]` binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProducer {
    pub binding: String,
    pub queue: String,
}

/// One `[[queues.consumers]]` entry, with Cloudflare's defaults for what it
/// leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConsumer {
    pub queue: String,
    pub max_batch_size: u32,
    pub max_batch_timeout_secs: u32,
    pub max_retries: u32,
    pub retry_delay_secs: u32,
    pub dead_letter_queue: Option<String>,
    pub max_concurrency: Option<u32>,
}

/// The queues of a Worker served with the stand-in broker: what it
/// produces to, what it consumes, and how many batches the stand-in hands
/// the consumer at once (capped by a consumer's `max_concurrency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    pub producers: Vec<QueueProducer>,
    pub consumers: Vec<QueueConsumer>,
    pub concurrency: u32,
}

impl Queues {
    /// The stand-in's `QUEUES` binding: every queue named by a producer or a
    /// consumer (a dead-letter queue included), with its consumer's
    /// settings; a queue nobody consumes keeps its messages.
    fn settings_json(&self) -> String {
        let mut names: Vec<&str> = self.producers.iter().map(|p| p.queue.as_str()).collect();
        for c in &self.consumers {
            names.push(&c.queue);
            names.extend(c.dead_letter_queue.as_deref());
        }
        let mut out = serde_json::Map::new();
        for name in names {
            let consumer = self.consumers.iter().find(|c| c.queue == name);
            let settings = match consumer {
                Some(c) => serde_json::json!({
                    "maxBatchSize": c.max_batch_size,
                    "maxBatchTimeout": c.max_batch_timeout_secs,
                    "maxRetries": c.max_retries,
                    "retryDelay": c.retry_delay_secs,
                    "deadLetterQueue": c.dead_letter_queue,
                    "concurrency": c.max_concurrency.map_or(self.concurrency, |m| m.min(self.concurrency)),
                }),
                None => serde_json::json!({
                    "maxBatchSize": 10, "maxBatchTimeout": 5, "maxRetries": 3,
                    "retryDelay": 0, "deadLetterQueue": null, "concurrency": 0,
                }),
            };
            out.insert(name.to_string(), settings);
        }
        serde_json::Value::Object(out).to_string()
    }
}

/// The capnp text of the config: constant `config`, one socket on
/// 127.0.0.1, the Worker, and its loopback-only outbound network; with
/// `queues`, the queue stand-in too, and the Worker's producer bindings to it.
fn render(config: &WorkerConfig, queues: Option<&Queues>) -> String {
    let mut out = String::new();
    let standin_service = match queues {
        Some(_) => format!(
            "(name = {0}, worker = .queueStandin),\n    ",
            quoted(QUEUE_STANDIN_SERVICE)
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "# Generated by `cargo xtask` (xtask/src/workerd_serve.rs); not for editing.\n\
         using Workerd = import \"/workerd/workerd.capnp\";\n\n\
         const config :Workerd.Config = (\n  \
           services = [\n    \
             (name = \"worker\", worker = .worker),\n    \
             {standin_service}\
             (name = \"loopback\", network = (allow = [\"local\"])),\n\
             {}  \
           ],\n  \
           sockets = [\n    \
             (name = \"http\", address = \"127.0.0.1:{}\", http = (), service = \"worker\"),\n  \
           ],\n\
           {}\
         );\n\n\
         const worker :Workerd.Worker = (\n  \
           compatibilityDate = {},",
        assets_service(config),
        config.port,
        extensions(config),
        quoted(&config.compatibility_date)
    );
    let flags: Vec<String> = config
        .compatibility_flags
        .iter()
        .map(|f| quoted(f))
        .collect();
    let _ = writeln!(out, "  compatibilityFlags = [{}],", flags.join(", "));
    out.push_str("  modules = [\n");
    for m in &config.modules {
        let kind = match m.kind {
            ModuleKind::EsModule => "esModule",
            ModuleKind::Wasm => "wasm",
        };
        let _ = writeln!(
            out,
            "    (name = {}, {kind} = embed {}),",
            quoted(&m.name),
            quoted(&m.path)
        );
    }
    out.push_str("  ],\n  bindings = [\n");
    for (name, value) in &config.bindings {
        let _ = writeln!(
            out,
            "    (name = {}, text = {}),",
            quoted(name),
            quoted(value)
        );
    }
    if let Some(assets) = &config.assets {
        let _ = writeln!(
            out,
            "    (name = {}, service = {}),",
            quoted(&assets.binding),
            quoted(ASSETS_SERVICE)
        );
    }
    for limiter in &config.rate_limiters {
        let _ = writeln!(
            out,
            "    (name = {}, wrapped = (moduleName = {}, innerBindings = [\
             (name = \"limit\", json = \"{}\"), (name = \"period\", json = \"{}\")])),",
            quoted(&limiter.name),
            quoted(RATELIMIT_STANDIN_MODULE),
            limiter.limit,
            limiter.period
        );
    }
    if let Some(queues) = queues {
        for producer in &queues.producers {
            let props = serde_json::json!({ "queue": producer.queue }).to_string();
            let _ = writeln!(
                out,
                "    (name = {}, queue = (name = {}, props = (json = {}))),",
                quoted(&producer.binding),
                quoted(QUEUE_STANDIN_SERVICE),
                quoted(&props)
            );
        }
    }
    out.push_str("  ],\n  globalOutbound = \"loopback\",\n);\n");
    if let Some(queues) = queues {
        // `service_binding_extra_handlers` gives the stand-in
        // `CONSUMER.queue(...)`, the way miniflare's broker delivers; the
        // flag is experimental, so workerd runs with `--experimental`.
        let _ = writeln!(
            out,
            "\nconst queueStandin :Workerd.Worker = (\n  \
               compatibilityDate = {},\n  \
               compatibilityFlags = [\"service_binding_extra_handlers\"],\n  \
               modules = [(name = \"queue-standin.js\", esModule = {})],\n  \
               bindings = [\n    \
                 (name = \"CONSUMER\", service = \"worker\"),\n    \
                 (name = \"QUEUES\", json = {}),\n  \
               ],\n\
             );",
            quoted(&config.compatibility_date),
            quoted(QUEUE_STANDIN_SOURCE),
            quoted(&queues.settings_json())
        );
    }
    out
}

/// The `services` entry behind the `[assets]` binding, when there is one:
/// the directory, read-only.
fn assets_service(config: &WorkerConfig) -> String {
    match &config.assets {
        None => String::new(),
        Some(assets) => format!(
            "    (name = {}, disk = (path = {}, writable = false)),\n",
            quoted(ASSETS_SERVICE),
            quoted(&assets.directory)
        ),
    }
}

/// The config's `extensions` line: the rate limiting stand-in, when a
/// binding needs it.
fn extensions(config: &WorkerConfig) -> String {
    if config.rate_limiters.is_empty() {
        return String::new();
    }
    format!(
        "extensions = [(modules = [(name = {}, esModule = {}, internal = true)])],\n",
        quoted(RATELIMIT_STANDIN_MODULE),
        quoted(RATELIMIT_STANDIN_SOURCE)
    )
}

/// A capnp text literal.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What `wrangler dev` takes from a `wrangler.toml` that bare workerd
/// needs too.
#[derive(Debug, PartialEq, Eq)]
pub struct WranglerSettings {
    pub compatibility_date: String,
    pub compatibility_flags: Vec<String>,
    pub vars: Vec<(String, String)>,
    pub rate_limiters: Vec<RateLimiter>,
    /// `[assets]`: the binding's name and the directory as written.
    pub assets: Option<(String, String)>,
    pub queue_producers: Vec<QueueProducer>,
    pub queue_consumers: Vec<QueueConsumer>,
}

pub fn wrangler_settings(toml_text: &str) -> Result<WranglerSettings> {
    let table: toml::Table = toml_text.parse().context("parsing wrangler.toml")?;
    let compatibility_date = table
        .get("compatibility_date")
        .and_then(|d| d.as_str())
        .context("wrangler.toml has no compatibility_date")?
        .to_string();
    let compatibility_flags = match table.get("compatibility_flags") {
        None => Vec::new(),
        Some(flags) => flags
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|f| f.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .context("wrangler.toml's compatibility_flags is not a list of strings")?,
    };
    let mut vars = Vec::new();
    if let Some(table) = table.get("vars").and_then(|v| v.as_table()) {
        for (name, value) in table {
            let Some(value) = value.as_str() else {
                bail!("wrangler.toml var {name} is not a string; only text vars are bound");
            };
            vars.push((name.clone(), value.to_string()));
        }
    }
    let mut rate_limiters = Vec::new();
    if let Some(list) = table.get("ratelimits") {
        let list = list
            .as_array()
            .context("wrangler.toml's ratelimits is not a list of tables")?;
        for entry in list {
            let number = |field: &str| {
                entry
                    .get("simple")
                    .and_then(|s| s.get(field))
                    .and_then(|v| v.as_integer())
                    .and_then(|v| u32::try_from(v).ok())
            };
            let (Some(name), Some(limit), Some(period)) = (
                entry.get("name").and_then(|n| n.as_str()),
                number("limit"),
                number("period"),
            ) else {
                bail!("a [[ratelimits]] binding lacks a name or simple = {{ limit, period }}");
            };
            rate_limiters.push(RateLimiter {
                name: name.to_string(),
                limit,
                period,
            });
        }
    }
    let assets = match table.get("assets") {
        None => None,
        Some(assets) => {
            let text = |field: &str| assets.get(field).and_then(|v| v.as_str());
            match (text("binding"), text("directory")) {
                (Some(binding), Some(directory)) => {
                    Some((binding.to_string(), directory.to_string()))
                }
                // Assets the Worker cannot read need no binding here.
                (None, Some(_)) => None,
                _ => bail!("wrangler.toml's [assets] names no directory"),
            }
        }
    };
    let (queue_producers, queue_consumers) = queues(&table)?;
    Ok(WranglerSettings {
        compatibility_date,
        compatibility_flags,
        vars,
        rate_limiters,
        assets,
        queue_producers,
        queue_consumers,
    })
}

/// `[[queues.producers]]` and `[[queues.consumers]]`; what a consumer
/// leaves out takes Cloudflare's documented default (batches of 10, 5 s,
/// 3 retries, no retry delay, concurrency scaled by the platform).
fn queues(table: &toml::Table) -> Result<(Vec<QueueProducer>, Vec<QueueConsumer>)> {
    let Some(queues) = table.get("queues") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let list = |key: &str| -> Result<Vec<toml::Table>> {
        match queues.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|e| e.as_table().cloned()).collect())
                .with_context(|| format!("wrangler.toml's queues.{key} is not a list of tables")),
        }
    };
    let text = |entry: &toml::Table, field: &str| {
        entry
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let mut producers = Vec::new();
    for entry in list("producers")? {
        let (Some(binding), Some(queue)) = (text(&entry, "binding"), text(&entry, "queue")) else {
            bail!("a [[queues.producers]] entry lacks a binding or a queue");
        };
        producers.push(QueueProducer { binding, queue });
    }
    let mut consumers = Vec::new();
    for entry in list("consumers")? {
        let Some(queue) = text(&entry, "queue") else {
            bail!("a [[queues.consumers]] entry lacks its queue");
        };
        let number = |field: &str| -> Result<Option<u32>> {
            entry
                .get(field)
                .map(|v| {
                    v.as_integer()
                        .and_then(|n| u32::try_from(n).ok())
                        .with_context(|| format!("queue {queue}'s {field} is not a whole number"))
                })
                .transpose()
        };
        consumers.push(QueueConsumer {
            max_batch_size: number("max_batch_size")?.unwrap_or(10),
            max_batch_timeout_secs: number("max_batch_timeout")?.unwrap_or(5),
            max_retries: number("max_retries")?.unwrap_or(3),
            retry_delay_secs: number("retry_delay")?.unwrap_or(0),
            max_concurrency: number("max_concurrency")?,
            dead_letter_queue: text(&entry, "dead_letter_queue"),
            queue,
        });
    }
    Ok((producers, consumers))
}

/// The modules of a build folder (`*.js`, `*.mjs` as ES modules, `*.wasm`),
/// named by their path inside it, `main` first, with paths relative to
/// `config_dir`.
pub fn modules_in(build_dir: &Path, main: &str, config_dir: &Path) -> Result<Vec<Module>> {
    let mut files = Vec::new();
    collect_files(build_dir, &mut files)?;
    let mut modules = Vec::new();
    for file in files {
        let kind = match file.extension().and_then(|e| e.to_str()) {
            Some("js" | "mjs") => ModuleKind::EsModule,
            Some("wasm") => ModuleKind::Wasm,
            _ => continue,
        };
        let name = file
            .strip_prefix(build_dir)?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let path = relative_path(config_dir, &file)
            .to_str()
            .with_context(|| format!("{} is not UTF-8", file.display()))?
            .to_string();
        modules.push(Module { name, kind, path });
    }
    let Some(at) = modules.iter().position(|m| m.name == main) else {
        bail!(
            "{} has no {main}: build the Worker first",
            build_dir.display()
        );
    };
    let main = modules.remove(at);
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    modules.insert(0, main);
    Ok(modules)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// `to` as seen from directory `from`; both absolute.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

/// Writes the config to `config_path` and starts `workerd serve` on it; the
/// caller waits for the first answer (the socket opens before the Worker
/// is loaded).
pub fn start(
    name: &'static str,
    workerd: &Path,
    config: &WorkerConfig,
    config_path: &Path,
    log: &Path,
) -> Result<Service> {
    spawn(name, workerd, config, None, config_path, log)
}

fn spawn(
    name: &'static str,
    workerd: &Path,
    config: &WorkerConfig,
    queues: Option<&Queues>,
    config_path: &Path,
    log: &Path,
) -> Result<Service> {
    ensure_port_free(config.port, name, "CDS_WORKER_PORT")?;
    std::fs::write(config_path, render(config, queues))
        .with_context(|| format!("writing {}", config_path.display()))?;
    let mut command = Command::new(workerd);
    command.arg("serve");
    if queues.is_some() {
        command.arg("--experimental");
    }
    command.arg(config_path).arg("config");
    Service::spawn(name, command, log, nix::sys::signal::Signal::SIGTERM)
}

/// Our Worker as `worker::build` left it in `functions/build`, on
/// `profile`'s worker port, with the vars of `wrangler.toml` and the local
/// secrets `wrangler dev` would read from its vars file (which win over a
/// `[vars]` entry of the same name, as in wrangler). The config is written
/// to `profile.dir`.
pub fn start_edge(
    profile: &Profile,
    keys: &DevKeys,
    scheme: KeyScheme,
    tools: &WorkerTools,
) -> Result<Service> {
    serve_edge(profile, keys, scheme, tools, None)
}

/// [`start_edge`] with the queues of `wrangler.toml` served by the stand-in
/// broker, which hands the consumer up to `concurrency` batches at once.
pub fn start_edge_with_queues(
    profile: &Profile,
    keys: &DevKeys,
    scheme: KeyScheme,
    tools: &WorkerTools,
    concurrency: u32,
) -> Result<Service> {
    serve_edge(profile, keys, scheme, tools, Some(concurrency))
}

fn serve_edge(
    profile: &Profile,
    keys: &DevKeys,
    scheme: KeyScheme,
    tools: &WorkerTools,
    queue_concurrency: Option<u32>,
) -> Result<Service> {
    let root = repo_root();
    let toml_path = root.join("wrangler.toml");
    let settings = wrangler_settings(
        &std::fs::read_to_string(&toml_path)
            .with_context(|| format!("reading {}", toml_path.display()))?,
    )?;
    let mut bindings = settings.vars;
    for (name, value) in worker::local_vars(profile, keys, scheme) {
        bindings.retain(|(n, _)| n != name);
        bindings.push((name.to_string(), value));
    }
    let mut rate_limiters = settings.rate_limiters;
    if let Some(limit) = worker::rate_limit_override(profile.name) {
        for limiter in &mut rate_limiters {
            limiter.limit = limit;
        }
    }
    let assets = match settings.assets {
        None => None,
        Some((binding, directory)) => {
            let directory = root.join(directory);
            Some(Assets {
                binding,
                directory: directory
                    .to_str()
                    .with_context(|| format!("{} is not UTF-8", directory.display()))?
                    .to_string(),
            })
        }
    };
    let config = WorkerConfig {
        port: profile.worker_port,
        compatibility_date: settings.compatibility_date,
        compatibility_flags: settings.compatibility_flags,
        modules: modules_in(&root.join("functions/build"), "index.js", &profile.dir)?,
        bindings,
        rate_limiters,
        assets,
    };
    let queues = queue_concurrency.map(|concurrency| Queues {
        producers: settings.queue_producers,
        consumers: settings.queue_consumers,
        concurrency,
    });
    spawn(
        "workerd serve",
        &tools.workerd,
        &config,
        queues.as_ref(),
        &profile.dir.join("workerd.capnp"),
        &profile.log("workerd"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig {
            port: 8907,
            compatibility_date: "2025-09-01".into(),
            compatibility_flags: vec!["nodejs_compat".into()],
            modules: vec![
                Module {
                    name: "index.js".into(),
                    kind: ModuleKind::EsModule,
                    path: "../../../functions/build/index.js".into(),
                },
                Module {
                    name: "index_bg.wasm".into(),
                    kind: ModuleKind::Wasm,
                    path: "../../../functions/build/index_bg.wasm".into(),
                },
            ],
            bindings: vec![
                ("SUPABASE_URL".into(), "http://127.0.0.1:54341".into()),
                ("ODD".into(), "a \"quoted\" back\\slash\nline\u{1}".into()),
            ],
            rate_limiters: vec![RateLimiter {
                name: "USER_LIMITER".into(),
                limit: 1_000_000,
                period: 60,
            }],
            assets: Some(Assets {
                binding: "ASSETS".into(),
                directory: "/r/web/dist".into(),
            }),
        }
    }

    #[test]
    fn the_assets_binding_is_a_read_only_disk_service() {
        let text = render(&config(), None);
        assert!(
            text.contains(
                "(name = \"assets\", disk = (path = \"/r/web/dist\", writable = false)),"
            ),
            "{text}"
        );
        assert!(
            text.contains("(name = \"ASSETS\", service = \"assets\"),"),
            "{text}"
        );
        let mut bare = config();
        bare.assets = None;
        let text = render(&bare, None);
        assert!(!text.contains("disk ="), "{text}");
        assert!(!text.contains("\"ASSETS\""), "{text}");
    }

    #[test]
    fn rate_limiters_are_wrapped_around_the_internal_stand_in() {
        let text = render(&config(), None);
        assert!(
            text.contains(
                "(name = \"USER_LIMITER\", wrapped = (moduleName = \"cds-internal:ratelimit-standin\", \
                 innerBindings = [(name = \"limit\", json = \"1000000\"), (name = \"period\", json = \"60\")])),"
            ),
            "{text}"
        );
        assert!(text.contains(
            "extensions = [(modules = [(name = \"cds-internal:ratelimit-standin\", esModule = \""
        ));
        assert!(text.contains("internal = true)])],"));
        // The module's source travels as one capnp text literal.
        assert!(text.contains("class Ratelimit {\\n"), "{text}");
        // Without limiters, no extension.
        let mut bare = config();
        bare.rate_limiters.clear();
        let text = render(&bare, None);
        assert!(!text.contains("extensions"));
        assert!(!text.contains("wrapped"));
    }

    #[test]
    fn producers_are_bound_to_the_queue_stand_in_which_delivers_to_the_worker() {
        let queues = Queues {
            producers: vec![QueueProducer {
                binding: "USAGE_QUEUE".into(),
                queue: "q".into(),
            }],
            consumers: vec![QueueConsumer {
                queue: "q".into(),
                max_batch_size: 50,
                max_batch_timeout_secs: 1,
                max_retries: 10,
                retry_delay_secs: 0,
                dead_letter_queue: Some("q-dlq".into()),
                max_concurrency: Some(2),
            }],
            concurrency: 4,
        };
        let text = render(&config(), Some(&queues));
        for line in [
            "(name = \"queue-standin\", worker = .queueStandin),",
            "(name = \"USAGE_QUEUE\", queue = (name = \"queue-standin\", \
             props = (json = \"{\\\"queue\\\":\\\"q\\\"}\"))),",
            "compatibilityFlags = [\"service_binding_extra_handlers\"],",
            "(name = \"CONSUMER\", service = \"worker\"),",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let settings: serde_json::Value = serde_json::from_str(&queues.settings_json()).unwrap();
        // The consumer's own max_concurrency caps the chosen concurrency.
        assert_eq!(settings["q"]["concurrency"], 2);
        assert_eq!(settings["q"]["maxBatchSize"], 50);
        assert_eq!(settings["q"]["deadLetterQueue"], "q-dlq");
        // A queue nobody consumes holds its messages.
        assert_eq!(settings["q-dlq"]["concurrency"], 0);
        assert!(!render(&config(), None).contains("queueStandin"));
    }

    #[test]
    fn wrangler_settings_take_the_queues_with_cloudflares_defaults() {
        let s = wrangler_settings(
            "compatibility_date = \"d\"\n[[queues.producers]]\nbinding = \"B\"\nqueue = \"q\"\n\
             [[queues.consumers]]\nqueue = \"q\"\nmax_batch_size = 7\n",
        )
        .unwrap();
        assert_eq!(
            s.queue_producers,
            vec![QueueProducer {
                binding: "B".into(),
                queue: "q".into()
            }]
        );
        assert_eq!(
            s.queue_consumers,
            vec![QueueConsumer {
                queue: "q".into(),
                max_batch_size: 7,
                max_batch_timeout_secs: 5,
                max_retries: 3,
                retry_delay_secs: 0,
                dead_letter_queue: None,
                max_concurrency: None,
            }]
        );
        assert!(wrangler_settings(
            "compatibility_date = \"d\"\n[[queues.consumers]]\nmax_batch_size = 7\n"
        )
        .is_err());
        assert!(wrangler_settings(
            "compatibility_date = \"d\"\n[[queues.consumers]]\nqueue = \"q\"\nmax_retries = -1\n"
        )
        .is_err());
    }

    #[test]
    fn wrangler_settings_take_the_rate_limiters() {
        let s = wrangler_settings(
            "compatibility_date = \"d\"\n[[ratelimits]]\nname = \"A\"\nnamespace_id = \"1\"\n\
             simple = { limit = 5, period = 10 }\n",
        )
        .unwrap();
        assert_eq!(
            s.rate_limiters,
            vec![RateLimiter {
                name: "A".into(),
                limit: 5,
                period: 10
            }]
        );
        assert!(wrangler_settings(
            "compatibility_date = \"d\"\n[[ratelimits]]\nname = \"A\"\nsimple = { limit = 5 }\n"
        )
        .is_err());
    }

    #[test]
    fn the_config_serves_the_modules_on_loopback_with_text_bindings() {
        let text = render(&config(), None);
        for line in [
            "address = \"127.0.0.1:8907\", http = (), service = \"worker\"",
            "(name = \"loopback\", network = (allow = [\"local\"])),",
            "compatibilityDate = \"2025-09-01\",",
            "compatibilityFlags = [\"nodejs_compat\"],",
            "(name = \"index.js\", esModule = embed \"../../../functions/build/index.js\"),",
            "(name = \"index_bg.wasm\", wasm = embed \"../../../functions/build/index_bg.wasm\"),",
            "(name = \"SUPABASE_URL\", text = \"http://127.0.0.1:54341\"),",
            "(name = \"ODD\", text = \"a \\\"quoted\\\" back\\\\slash\\nline\\x01\"),",
            "globalOutbound = \"loopback\",",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // The main module comes first: workerd runs the first one.
        assert!(text.find("index.js").unwrap() < text.find("index_bg.wasm").unwrap());
    }

    #[test]
    fn wrangler_settings_take_the_date_flags_and_text_vars() {
        let s = wrangler_settings(
            "name = \"w\"\ncompatibility_date = \"2025-09-01\"\n\
             compatibility_flags = [\"a\"]\n[vars]\nX = \"1\"\nY = \"two\"\n",
        )
        .unwrap();
        assert_eq!(s.compatibility_date, "2025-09-01");
        assert_eq!(s.compatibility_flags, vec!["a".to_string()]);
        assert_eq!(
            s.vars,
            vec![("X".into(), "1".into()), ("Y".into(), "two".into())]
        );
        assert!(wrangler_settings("compatibility_date = \"d\"\n[vars]\nN = 3\n").is_err());
        assert!(wrangler_settings("name = \"no date\"").is_err());
    }

    #[test]
    fn the_repository_wrangler_toml_is_readable() {
        let text =
            std::fs::read_to_string(crate::paths::repo_root().join("wrangler.toml")).unwrap();
        let s = wrangler_settings(&text).unwrap();
        assert!(s.vars.iter().any(|(k, _)| k == "ALLOWED_ORIGINS"));
        assert_eq!(s.rate_limiters.len(), 3);
        assert_eq!(s.assets, Some(("ASSETS".into(), "web/dist".into())));
        assert_eq!(s.queue_producers.len(), 1);
        let usage = &s.queue_consumers[0];
        assert_eq!(
            usage.dead_letter_queue.as_deref(),
            Some("cds-usage-events-dlq")
        );
        // Cloudflare scales an uncapped consumer up to 250 with a backlog,
        // each delivery holding one of PostgREST's pooled connections.
        let caps: Vec<_> = s
            .queue_consumers
            .iter()
            .map(|c| c.max_concurrency)
            .collect();
        assert_eq!(caps, [Some(3), Some(1)]);
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        assert_eq!(
            relative_path(
                Path::new("/r/target/devstack/bench"),
                Path::new("/r/functions/build/index.js")
            ),
            PathBuf::from("../../../functions/build/index.js")
        );
        assert_eq!(
            relative_path(Path::new("/r/b"), Path::new("/r/b/x.js")),
            PathBuf::from("x.js")
        );
    }

    #[test]
    fn a_build_folder_gives_its_modules_main_first() {
        let dir = std::env::temp_dir().join(format!("workerd-serve-test-{}", std::process::id()));
        let build = dir.join("build");
        std::fs::create_dir_all(build.join("snippets")).unwrap();
        for f in [
            "index.js",
            "index_bg.wasm",
            "package.json",
            "snippets/a.mjs",
        ] {
            std::fs::write(build.join(f), "").unwrap();
        }
        let cfg = dir.join("cfg");
        let modules = modules_in(&build, "index.js", &cfg).unwrap();
        let names: Vec<(&str, ModuleKind, &str)> = modules
            .iter()
            .map(|m| (m.name.as_str(), m.kind, m.path.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("index.js", ModuleKind::EsModule, "../build/index.js"),
                ("index_bg.wasm", ModuleKind::Wasm, "../build/index_bg.wasm"),
                (
                    "snippets/a.mjs",
                    ModuleKind::EsModule,
                    "../build/snippets/a.mjs"
                ),
            ]
        );
        assert!(modules_in(&build, "missing.js", &cfg).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Building the Worker to wasm and serving it with `wrangler dev` (workerd).

use crate::devkeys::{DevKeys, KeyScheme};
use crate::paths::{repo_root, Profile};
use crate::proc::{ensure_port_free, Service};
use crate::tools::{self, WorkerTools};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Set by `cargo xtask dev|test` for the `wrangler dev` it starts: the Worker
/// is already built, so wrangler's `[build] command` returns at once.
const PREBUILT_ENV: &str = "CDS_WORKER_PREBUILT";

/// `cargo xtask build-worker`, also wrangler's `[build] command` for
/// `wrangler deploy`.
pub fn build_command() -> Result<ExitCode> {
    if std::env::var_os(PREBUILT_ENV).is_some() {
        eprintln!("xtask: Worker already built by `cargo xtask`; skipping");
        return Ok(ExitCode::SUCCESS);
    }
    let tools = tools::worker_tools()?;
    build(&tools)?;
    Ok(ExitCode::SUCCESS)
}

pub fn wasm_path() -> PathBuf {
    repo_root().join("functions/build/index_bg.wasm")
}

/// The usage page's assets, then the Worker: the crate built to wasm,
/// wasm-bindgen's glue, `wasm-opt`, and our entry module bundled with the
/// glue by esbuild, into `functions/build` (`index.js`, `index_bg.wasm`).
///
/// These are worker-build 0.8.7's steps with one change: its entry shim
/// (a Proxy around the entrypoint and every method on every request) is
/// replaced by `functions/js/entry.js`, which recovers from a wasm trap the
/// same way for the handlers this Worker has. The wasm-bindgen flags are
/// the ones worker-build passes for that recovery.
pub fn build(tools: &WorkerTools) -> Result<()> {
    crate::web::build(tools)?;
    eprintln!("==> building the Worker (cargo, wasm-bindgen, wasm-opt, esbuild)");
    let root = repo_root();
    let ok = crate::proc::run_visible(
        Command::new(tools::cargo())
            .args([
                "build",
                "--lib",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .args(["--package", "edge"])
            .current_dir(&root),
    )?;
    if !ok {
        bail!("building the Worker's wasm failed");
    }
    let staging = root.join("target/worker-build");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    crate::proc::run(
        Command::new(&tools.wasm_bindgen)
            .arg(root.join("target/wasm32-unknown-unknown/release/edge.wasm"))
            .args(["--out-dir"])
            .arg(&staging)
            .args([
                "--no-typescript",
                "--target",
                "module",
                "--out-name",
                "index",
            ])
            // What the entry module's trap recovery needs:
            // `__wbg_reset_state`, and glue that notes an abort.
            .args([
                "--experimental-reset-state-function",
                "--force-enable-abort-handler",
            ]),
    )?;
    let wasm = staging.join("index_bg.wasm");
    crate::proc::run(
        Command::new(&tools.wasm_opt)
            .arg(&wasm)
            .arg("-o")
            .arg(&wasm)
            .args(wasm_opt_profile()?)
            .args(WASM_OPT_FEATURES)
            .arg("--debuginfo"),
    )?;
    std::fs::copy(root.join("functions/js/entry.js"), staging.join("entry.js"))
        .context("copying functions/js/entry.js")?;
    crate::proc::run(
        Command::new(&tools.esbuild)
            .args([
                "./entry.js",
                "--bundle",
                "--format=esm",
                "--minify",
                "--external:./index_bg.wasm",
                "--external:cloudflare:*",
                "--outfile=bundle.js",
            ])
            .current_dir(&staging),
    )?;
    // wasm-bindgen's module target imports the wasm as `import source`
    // (the source-phase proposal); workerd imports a wasm module plainly.
    let bundle =
        std::fs::read_to_string(staging.join("bundle.js"))?.replace("import source ", "import ");
    let out = root.join("functions/build");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("index.js"), bundle)?;
    std::fs::copy(&wasm, out.join("index_bg.wasm"))?;
    let (raw, gzipped) = wasm_size(&wasm_path())?;
    eprintln!(
        "    wasm: {:.1} KiB raw, {:.1} KiB gzipped",
        raw as f64 / 1024.0,
        gzipped as f64 / 1024.0
    );
    Ok(())
}

/// The `wasm-opt` arguments of `functions/Cargo.toml`'s
/// `[package.metadata.wasm-pack.profile.release]` (where worker-build reads
/// them), `-O` when it names none.
fn wasm_opt_profile() -> Result<Vec<String>> {
    let path = repo_root().join("functions/Cargo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    wasm_opt_args(&text)
        .with_context(|| format!("reading wasm-opt's arguments from {}", path.display()))
}

fn wasm_opt_args(manifest: &str) -> Result<Vec<String>> {
    let manifest: toml::Table = toml::from_str(manifest)?;
    let args = [
        "package",
        "metadata",
        "wasm-pack",
        "profile",
        "release",
        "wasm-opt",
    ]
    .iter()
    .try_fold(&toml::Value::Table(manifest), |v, key| v.get(key))
    .cloned();
    match args {
        None => Ok(vec!["-O".into()]),
        Some(toml::Value::Array(args)) => args
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_string)
                    .context("wasm-opt's arguments must be strings")
            })
            .collect(),
        Some(_) => bail!("wasm-opt must be a list of arguments"),
    }
}

/// Raw and gzip (level 9) sizes of the Worker's wasm, as Cloudflare counts
/// the upload limit on the compressed size.
pub fn wasm_size(path: &Path) -> Result<(usize, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    Ok((bytes.len(), gz.finish()?.len()))
}

/// The Worker's local secrets and per-profile variables, in the order
/// `write_vars` writes them; `workerd_serve` binds the same values.
pub fn local_vars(
    profile: &Profile,
    keys: &DevKeys,
    scheme: KeyScheme,
) -> Vec<(&'static str, String)> {
    let (anon_key, service_role_key) = keys.worker_keys(scheme);
    vec![
        ("SUPABASE_URL", profile.supabase_url()),
        ("SUPABASE_ANON_KEY", anon_key.to_string()),
        ("SUPABASE_SERVICE_ROLE_KEY", service_role_key.to_string()),
        ("SUPABASE_JWT_SECRET", keys.jwt_secret.clone()),
        ("DB_WEBHOOK_SECRET", keys.db_webhook_secret.clone()),
        ("AUTH_HOOK_SECRET", keys.auth_hook_secret.clone()),
        // Tests rotate signing keys and must not wait out the production floor.
        (
            "JWKS_MIN_REFETCH_SECS",
            if profile.name == "test" { "1" } else { "30" }.to_string(),
        ),
        // Tests read telemetry right after their calls; production flushes
        // every few seconds (wrangler.toml).
        (
            "TELEMETRY_FLUSH_MS",
            if profile.name == "test" {
                "200"
            } else {
                "5000"
            }
            .to_string(),
        ),
        // The consumer gives up on its recording call sooner in tests than
        // in production, so a test can hold a lock past it (and under the
        // statement timeout) and see the retried delivery replay what the
        // abandoned call committed.
        (
            "QUEUE_REST_TIMEOUT_MS",
            if profile.name == "test" {
                5_000
            } else {
                shared::config::DEFAULT_QUEUE_REST_TIMEOUT_MS
            }
            .to_string(),
        ),
        ("METRICS_TOKEN", keys.metrics_token.clone()),
        // The usage page's sign-in link (`cargo xtask dev` prints it; the
        // browser test follows one). The rehearsal runs as a deployment does.
        (
            "LOCAL_SIGN_IN",
            matches!(profile.name, "dev" | "test").to_string(),
        ),
    ]
}

/// Writes the Worker's local variables. The dev profile writes `.dev.vars`
/// beside `wrangler.toml` (git-ignored); other profiles write their own file,
/// passed with `--env-file`.
pub fn write_vars(profile: &Profile, keys: &DevKeys, scheme: KeyScheme) -> Result<PathBuf> {
    let path = if profile.name == "dev" {
        repo_root().join(".dev.vars")
    } else {
        profile.dir.join("dev.vars")
    };
    let mut vars = format!(
        "# Generated by `cargo xtask {}`; do not commit.\n",
        profile.name
    );
    for (name, value) in local_vars(profile, keys, scheme) {
        vars.push_str(&format!("{name}={value}\n"));
    }
    std::fs::write(&path, vars).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The per-request limit each rate limiting binding gets in the test
/// profile: out of reach of the ordinary tests (all of whose unauthenticated
/// requests share 127.0.0.1), within reach of the ones that send a fresh
/// key's, user's or address's requests until the 429 (`tests/tests/rate_limits.rs`,
/// which reads it from `CDS_TEST_RATE_LIMIT`).
pub const TEST_RATE_LIMIT: u32 = 1000;

/// The limit for the profiles that measure rather than test (the load run,
/// the bench): never reached, yet each request still pays for the call.
pub const UNREACHED_RATE_LIMIT: u32 = 1_000_000;

/// The limit replacing every `[[ratelimits]]` binding's `simple.limit` for a
/// profile, or `None` to run `wrangler.toml` as it is (dev, the rehearsal:
/// what a deployment runs).
pub fn rate_limit_override(profile: &str) -> Option<u32> {
    match profile {
        "test" => Some(TEST_RATE_LIMIT),
        "load" | "bench" => Some(UNREACHED_RATE_LIMIT),
        _ => None,
    }
}

/// `wrangler.toml` with every rate limiting binding's limit set to `limit`
/// and its paths (`main`, `[assets] directory`) made absolute under `root`,
/// for a copy written elsewhere.
pub fn with_rate_limit(toml_text: &str, limit: u32, root: &Path) -> Result<String> {
    let mut table: toml::Table = toml_text.parse().context("parsing wrangler.toml")?;
    let absolute = |relative: Option<&toml::Value>, what: &str| -> Result<toml::Value> {
        let relative = relative
            .and_then(|v| v.as_str())
            .with_context(|| format!("wrangler.toml names no {what}"))?;
        let path = root.join(relative);
        let path = path
            .to_str()
            .with_context(|| format!("the path of {what} is not UTF-8"))?;
        Ok(toml::Value::String(path.to_string()))
    };
    let main = absolute(table.get("main"), "main")?;
    table.insert("main".into(), main);
    if let Some(assets) = table.get_mut("assets").and_then(|a| a.as_table_mut()) {
        let directory = absolute(assets.get("directory"), "[assets] directory")?;
        assets.insert("directory".into(), directory);
    }
    let limiters = table
        .get_mut("ratelimits")
        .and_then(|r| r.as_array_mut())
        .context("wrangler.toml declares no [[ratelimits]]")?;
    for limiter in limiters {
        let simple = limiter
            .get_mut("simple")
            .and_then(|s| s.as_table_mut())
            .context("a [[ratelimits]] binding has no `simple` table")?;
        simple.insert("limit".into(), toml::Value::Integer(i64::from(limit)));
    }
    Ok(format!(
        "# Generated by `cargo xtask` from wrangler.toml with every rate limit at {limit}; \
         not for editing.\n{}",
        toml::to_string(&table).context("writing the generated wrangler config")?
    ))
}

/// The config `wrangler dev` runs for `profile`: `wrangler.toml`, or a copy
/// in the profile's folder with the profile's rate limits.
fn wrangler_config(profile: &Profile) -> Result<PathBuf> {
    let root = repo_root();
    let original = root.join("wrangler.toml");
    let Some(limit) = rate_limit_override(profile.name) else {
        return Ok(original);
    };
    let text = std::fs::read_to_string(&original)
        .with_context(|| format!("reading {}", original.display()))?;
    let generated = profile.dir.join("wrangler.toml");
    std::fs::create_dir_all(&profile.dir)?;
    std::fs::write(&generated, with_rate_limit(&text, limit, &root)?)
        .with_context(|| format!("writing {}", generated.display()))?;
    Ok(generated)
}

/// Starts `wrangler dev` on the profile's port with the given vars file.
pub fn start_wrangler(profile: &Profile, tools: &WorkerTools, vars: &Path) -> Result<Service> {
    ensure_port_free(profile.worker_port, "the Worker", "CDS_WORKER_PORT")?;
    ensure_port_free(
        profile.inspector_port,
        "the Worker's inspector",
        "CDS_INSPECTOR_PORT",
    )?;
    let config = wrangler_config(profile)?;
    let mut command = Command::new(&tools.wrangler);
    command
        .args(["dev", "--ip", "127.0.0.1"])
        .arg("--config")
        .arg(&config)
        .args(["--port", &profile.worker_port.to_string()])
        .args(["--inspector-port", &profile.inspector_port.to_string()])
        .arg("--test-scheduled")
        .arg("--show-interactive-dev-session=false")
        .arg("--persist-to")
        .arg(profile.dir.join("wrangler-state"))
        .arg("--env-file")
        .arg(vars)
        .current_dir(repo_root())
        .env("WRANGLER_SEND_METRICS", "false")
        // Miniflare would fetch the `Request.cf` placeholder from
        // workers.cloudflare.com; nothing here may reach another host.
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true")
        // xtask has just built the Worker; wrangler's `[build] command` would
        // only build it again. After an edit, `cargo xtask build-worker` in
        // another terminal rebuilds, and wrangler reloads the new bundle.
        .env(PREBUILT_ENV, "1");
    // wrangler runs workerd as a child; SIGTERM to the group stops both.
    Service::spawn(
        "wrangler dev",
        command,
        &profile.log("worker"),
        nix::sys::signal::Signal::SIGTERM,
    )
}

/// The arguments worker-build 0.8.7 passes to wasm-opt after the profile's
/// flags (its `step_run_wasm_opt`).
const WASM_OPT_FEATURES: [&str; 7] = [
    "--enable-mutable-globals",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-reference-types",
    "--enable-exception-handling",
];

/// The `n` biggest items of the Worker's wasm by `twiggy top` (raw bytes),
/// data segments included. The shipped module has no names, so this builds
/// a copy with function names kept (`target/size-analysis`), through the
/// same wasm-bindgen and `wasm-opt -Oz` as worker-build.
pub fn top_contributors(tools: &WorkerTools, n: usize) -> Result<Vec<(String, u64)>> {
    let out = repo_root().join("target/size-analysis");
    let ok = crate::proc::run_visible(
        Command::new(tools::cargo())
            .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
            .args(["--package", "edge", "--target-dir"])
            .arg(&out)
            .env("CARGO_PROFILE_RELEASE_STRIP", "false")
            .current_dir(repo_root()),
    )?;
    if !ok {
        bail!("building the Worker with names for twiggy failed");
    }
    let bindgen = out.join("bindgen");
    crate::proc::run(
        Command::new(&tools.wasm_bindgen)
            .args(["--target", "bundler", "--out-name", "edge", "--out-dir"])
            .arg(&bindgen)
            .arg(out.join("wasm32-unknown-unknown/release/edge.wasm")),
    )?;
    let named = out.join("edge-named.wasm");
    crate::proc::run(
        Command::new(&tools.wasm_opt)
            .arg(bindgen.join("edge_bg.wasm"))
            .arg("-o")
            .arg(&named)
            .args(wasm_opt_profile()?)
            .args(WASM_OPT_FEATURES)
            // Keeps the name section, and nothing else wasm-opt drops.
            .arg("--debuginfo"),
    )?;
    let twiggy = tools::twiggy()?;
    let top = Command::new(twiggy)
        .args(["top", "--format", "csv", "-n", "200"])
        .arg(&named)
        .output()
        .context("running twiggy")?;
    if !top.status.success() {
        bail!("twiggy failed: {}", String::from_utf8_lossy(&top.stderr));
    }
    Ok(parse_twiggy_top(&String::from_utf8_lossy(&top.stdout))
        .into_iter()
        // The names exist only in this copy; custom sections are not code.
        .filter(|(name, _)| !name.contains("subsection") && !name.starts_with("custom section"))
        .take(n)
        .map(|(name, bytes)| (short_name(&name), bytes))
        .collect())
}

/// A symbol without its `::h<hash>` suffix, cut to fit the bench table.
fn short_name(name: &str) -> String {
    let name = match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            path
        }
        _ => name,
    };
    if name.chars().count() > 54 {
        let cut: String = name.chars().take(53).collect();
        format!("{cut}…")
    } else {
        name.to_string()
    }
}

/// `Name,ShallowSize,...` rows of `twiggy top --format csv`; a name with
/// commas or quotes is quoted, with `""` for a quote.
fn parse_twiggy_top(csv: &str) -> Vec<(String, u64)> {
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let (name, rest) = match line.strip_prefix('"') {
                Some(quoted) => {
                    let mut name = String::new();
                    let mut chars = quoted.char_indices().peekable();
                    let mut end = None;
                    while let Some((i, c)) = chars.next() {
                        if c == '"' {
                            if chars.peek().map(|(_, c)| *c) == Some('"') {
                                chars.next();
                                name.push('"');
                            } else {
                                end = Some(i + 1);
                                break;
                            }
                        } else {
                            name.push(c);
                        }
                    }
                    (name, quoted.get(end?..)?.strip_prefix(',')?)
                }
                None => {
                    let (name, rest) = line.split_once(',')?;
                    (name.to_string(), rest)
                }
            };
            let bytes = rest.split(',').next()?.parse().ok()?;
            Some((name, bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_opt_runs_with_the_crate_profile_or_worker_builds_default() {
        let with = "[package]\nname = \"edge\"\n\
                    [package.metadata.wasm-pack.profile.release]\nwasm-opt = [\"-Oz\", \"--x\"]\n";
        assert_eq!(wasm_opt_args(with).unwrap(), ["-Oz", "--x"]);
        assert_eq!(
            wasm_opt_args("[package]\nname = \"edge\"\n").unwrap(),
            ["-O"]
        );
        let odd = "[package.metadata.wasm-pack.profile.release]\nwasm-opt = [1]\n";
        assert!(wasm_opt_args(odd).is_err());
        let ours = std::fs::read_to_string(repo_root().join("functions/Cargo.toml")).unwrap();
        assert!(wasm_opt_args(&ours)
            .unwrap()
            .iter()
            .any(|a| a.starts_with("-O")));
    }

    #[test]
    fn profiles_that_test_or_measure_get_their_own_rate_limits() {
        assert_eq!(rate_limit_override("dev"), None);
        assert_eq!(rate_limit_override("rehearsal"), None);
        assert_eq!(rate_limit_override("test"), Some(TEST_RATE_LIMIT));
        assert_eq!(rate_limit_override("load"), Some(UNREACHED_RATE_LIMIT));
        assert_eq!(rate_limit_override("bench"), Some(UNREACHED_RATE_LIMIT));
    }

    #[test]
    fn the_generated_config_changes_only_the_limits_and_main() {
        let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).unwrap();
        let original: toml::Table = text.parse().unwrap();
        let generated: toml::Table = with_rate_limit(&text, 7, Path::new("/abs"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            generated["main"].as_str(),
            Some("/abs/functions/build/index.js")
        );
        assert_eq!(
            generated["assets"]["directory"].as_str(),
            Some("/abs/web/dist")
        );
        let limiters = generated["ratelimits"].as_array().unwrap();
        assert_eq!(limiters.len(), 3);
        for (new, old) in limiters
            .iter()
            .zip(original["ratelimits"].as_array().unwrap())
        {
            assert_eq!(new["simple"]["limit"].as_integer(), Some(7));
            assert_eq!(new["simple"]["period"], old["simple"]["period"]);
            assert_eq!(new["name"], old["name"]);
            assert_eq!(new["namespace_id"], old["namespace_id"]);
        }
        for key in ["vars", "queues", "triggers", "compatibility_date", "name"] {
            assert_eq!(generated[key], original[key], "{key}");
        }
    }

    #[test]
    fn wrangler_toml_binds_every_limiter_with_the_period_retry_after_gives() {
        let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let limiters = table["ratelimits"].as_array().unwrap();
        let mut names: Vec<&str> = limiters
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        let mut expected: Vec<&str> = shared::rate_limit::Limiter::ALL
            .iter()
            .map(|l| l.binding())
            .collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
        let mut namespaces: Vec<&str> = limiters
            .iter()
            .map(|l| l["namespace_id"].as_str().unwrap())
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        assert_eq!(
            namespaces.len(),
            limiters.len(),
            "namespace_id must be unique"
        );
        for limiter in limiters {
            assert_eq!(
                limiter["simple"]["period"].as_integer(),
                Some(i64::from(shared::rate_limit::PERIOD_SECS)),
                "{limiter}"
            );
            assert!(limiter["simple"]["limit"].as_integer().unwrap() > 0);
        }
    }

    #[test]
    fn symbols_lose_their_hash_and_fit_the_table() {
        assert_eq!(
            short_name("edge::rest::send::h0e948e7620053b5f"),
            "edge::rest::send"
        );
        assert_eq!(
            short_name("data segment \".rodata\""),
            "data segment \".rodata\""
        );
        let long = format!("{}::habcdef0123456789", "x".repeat(80));
        assert_eq!(short_name(&long).chars().count(), 54);
    }

    #[test]
    fn twiggy_rows_are_read_with_quoted_names() {
        let csv = "Name,ShallowSize,ShallowSizePercent,RetainedSize,RetainedSizePercent\n\
                   \"<a as b<c, d>>::fmt\",1234,1.5,1234,1.5\n\
                   \"data segment \"\".rodata\"\"\",99,0.1,,\n\
                   plain::name,7,0.01,7,0.01\n";
        assert_eq!(
            parse_twiggy_top(csv),
            vec![
                ("<a as b<c, d>>::fmt".to_string(), 1234),
                ("data segment \".rodata\"".to_string(), 99),
                ("plain::name".to_string(), 7),
            ]
        );
    }
}

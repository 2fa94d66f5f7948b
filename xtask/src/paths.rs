//! Where things live: the repository, the ignored build folder, the tool cache,
//! and the ports of each profile.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Tools built from crates.io, cached per version across clones of the repo.
/// Rewrites the generated part of a file of the repository: `render` gets
/// the file's text and returns it with that part regenerated; the file is
/// written only when that changes it. `what` names the part in messages.
pub fn rewrite_generated(
    file: &str,
    what: &str,
    render: impl FnOnce(&str) -> anyhow::Result<String>,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    let path = repo_root().join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rendered = render(&text)?;
    if rendered == text {
        eprintln!("{file}'s {what} is up to date");
    } else {
        std::fs::write(&path, rendered).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {file}'s {what}");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn tool_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cyberdevstudio").join("tools")
}

/// A set of ports and a state folder, so `dev` and `test` can run side by side.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub pg_port: u16,
    pub rest_port: u16,
    pub worker_port: u16,
    pub inspector_port: u16,
    /// Under the repository's ignored `target/` folder.
    pub dir: PathBuf,
}

impl Profile {
    pub fn dev() -> Result<Self> {
        Self::with_defaults("dev", [54322, 54321, 8787, 9229])
    }

    pub fn test() -> Result<Self> {
        Self::with_defaults("test", [54332, 54331, 8797, 9239])
    }

    pub fn bench() -> Result<Self> {
        Self::with_defaults("bench", [54342, 54341, 8807, 9249])
    }

    pub fn load() -> Result<Self> {
        Self::with_defaults("load", [54352, 54351, 8817, 9259])
    }

    /// The bare hosted-like project of the deploy rehearsal, run beside the
    /// test stack: its own variables (`CDS_REHEARSAL_PG_PORT`, ...), so
    /// moving the test stack's ports never puts both on the same ones. Its
    /// ports are below Linux's ephemeral range (32768-60999): it starts while
    /// the test stack holds many pooled connections, whose local ports are
    /// drawn from that range and could take a fixed port there.
    pub fn rehearsal() -> Result<Self> {
        Self::with_env_prefix("rehearsal", "CDS_REHEARSAL", [25432, 25431, 8827, 9269])
    }

    fn with_defaults(name: &'static str, ports: [u16; 4]) -> Result<Self> {
        Self::with_env_prefix(name, "CDS", ports)
    }

    /// Ports from `<prefix>_PG_PORT` etc., else the defaults.
    fn with_env_prefix(
        name: &'static str,
        prefix: &str,
        [pg, rest, worker, inspector]: [u16; 4],
    ) -> Result<Self> {
        let dir = repo_root().join("target").join("devstack").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = |what: &str, default| port_from_env(&format!("{prefix}_{what}_PORT"), default);
        Ok(Profile {
            name,
            pg_port: port("PG", pg)?,
            rest_port: port("REST", rest)?,
            worker_port: port("WORKER", worker)?,
            inspector_port: port("INSPECTOR", inspector)?,
            dir,
        })
    }

    pub fn supabase_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    pub fn worker_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.worker_port)
    }

    /// `postgres`, as on a hosted project: not a superuser. Migrations, the
    /// seed and the tests' own SQL run as this role.
    pub fn admin_db_url(&self) -> String {
        self.db_url_as("postgres")
    }

    /// `supabase_admin`, the cluster's superuser: only for what Supabase
    /// itself does on a project (roles, the `auth` schema, extensions).
    pub fn superuser_db_url(&self) -> String {
        self.db_url_as(crate::postgres::SUPERUSER)
    }

    fn db_url_as(&self, role: &str) -> String {
        format!(
            "postgresql://{role}:{}@127.0.0.1:{}/postgres",
            crate::postgres::LOCAL_PASSWORD,
            self.pg_port
        )
    }

    /// The signing keys the local Supabase Auth stand-in publishes; tests
    /// rotate keys by rewriting it.
    pub fn jwks_file(&self) -> PathBuf {
        self.dir.join("jwks.json")
    }

    pub fn log(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.log"))
    }
}

fn port_from_env(name: &str, default: u16) -> Result<u16> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a port number")),
        Err(_) => Ok(default),
    }
}

/// The exposed schemas from `supabase/config.toml` `[api] schemas`, the same
/// list a real Supabase project is configured with.
pub fn exposed_schemas() -> Result<Vec<String>> {
    let path = repo_root().join("supabase/config.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let schemas = config
        .get("api")
        .and_then(|api| api.get("schemas"))
        .and_then(|s| s.as_array())
        .context("supabase/config.toml has no [api] schemas list")?;
    Ok(schemas
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    /// The Supabase CLI validates `config.toml` on every load (`start`,
    /// `link`, `db push`). An `env(NAME)` value whose variable is unset stays
    /// the literal string, and an enabled hook whose URI is not
    /// http(s):// or pg-functions://, or whose secret is not
    /// `v1,whsec_<base64>`, is refused. So, read with no variable set, every
    /// enabled hook must already be valid.
    #[test]
    fn config_toml_loads_in_a_fresh_shell() {
        let path = super::repo_root().join("supabase/config.toml");
        let config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let hooks = config["auth"]
            .get("hook")
            .and_then(|h| h.as_table())
            .cloned()
            .unwrap_or_default();
        for (name, hook) in hooks {
            if hook.get("enabled").and_then(|e| e.as_bool()) != Some(true) {
                continue;
            }
            let uri = hook.get("uri").and_then(|u| u.as_str()).unwrap_or("");
            assert!(
                ["http://", "https://", "pg-functions://"]
                    .iter()
                    .any(|scheme| uri.starts_with(scheme)),
                "[auth.hook.{name}] is enabled with uri {uri:?}, which the CLI refuses \
                 when no variable is set"
            );
            if let Some(secrets) = hook.get("secrets").and_then(|s| s.as_str()) {
                assert!(
                    secrets.split('|').all(|s| s.starts_with("v1,whsec_")),
                    "[auth.hook.{name}] is enabled with secrets {secrets:?}, which the CLI refuses"
                );
            }
        }
    }
}

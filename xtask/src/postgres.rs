//! A throwaway PostgreSQL cluster for the local stack, and applying SQL to it
//! the way `supabase db reset` does.

use crate::paths::{repo_root, Profile};
use crate::proc::{run, wait_until, Service};
use crate::tools::PgTools;
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, Uid};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Password of the `supabase_admin`, `postgres` and `authenticator` roles in
/// the local cluster, as in Supabase's own local stack. Loopback only, data
/// thrown away.
pub const LOCAL_PASSWORD: &str = "postgres";

/// The cluster's bootstrap superuser. As on Supabase, it is not `postgres`:
/// PostgreSQL cannot take superuser away from the bootstrap user, and
/// `postgres` must not be one (devtools/supabase_base.sql).
pub const SUPERUSER: &str = "supabase_admin";

/// Who owns the cluster: initdb refuses root, so as root we switch to the
/// `postgres` user Debian's package creates.
struct Owner {
    uid: u32,
    gid: u32,
}

fn owner() -> Result<Option<Owner>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("no `postgres` user: install Debian's postgresql package")
    };
    Ok(Some(Owner {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

fn as_owner(command: &mut Command, owner: &Option<Owner>) {
    if let Some(o) = owner {
        // std drops supplementary groups itself when root sets a uid.
        command.uid(o.uid).gid(o.gid);
    }
}

/// The cluster's folder: under the profile's build folder, unless the
/// `postgres` user cannot reach it (a clone under a private temp folder), then
/// under /var/tmp.
fn cluster_dir(profile: &Profile, owner: &Option<Owner>) -> PathBuf {
    let preferred = profile.dir.join("pg");
    if owner.is_none() || reachable_by_others(&profile.dir) {
        return preferred;
    }
    let tag: u64 = profile
        .dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    PathBuf::from(format!("/var/tmp/cyberdevstudio-{tag:016x}/pg"))
}

fn reachable_by_others(dir: &Path) -> bool {
    dir.ancestors().all(|a| {
        std::fs::metadata(a)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Creates a fresh cluster (any earlier one from this profile is stopped and
/// deleted) and starts it on the profile's port.
pub fn start_cluster(profile: &Profile, tools: &PgTools) -> Result<Service> {
    let owner = owner()?;
    let dir = cluster_dir(profile, &owner);
    let data = dir.join("data");
    stop_stale(&data);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, LOCAL_PASSWORD)?;
    if let Some(o) = &owner {
        for path in [&dir, &pwfile] {
            std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))?;
        }
    }

    let mut initdb = Command::new(tools.bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ])
        .arg(format!("--pwfile={}", pwfile.display()));
    as_owner(&mut initdb, &owner);
    run(&mut initdb).context("initdb")?;

    let mut postgres = Command::new(tools.bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &profile.pg_port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "max_connections=200"])
        // Preloaded as on Supabase; the extension itself is enabled (or not)
        // per project.
        .args(["-c", "shared_preload_libraries=pg_cron"])
        .args(["-c", "cron.database_name=postgres"]);
    as_owner(&mut postgres, &owner);
    // SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
    let mut service = Service::spawn(
        "postgres",
        postgres,
        &profile.log("postgres"),
        Signal::SIGINT,
    )?;
    let url = profile.superuser_db_url();
    wait_until(&mut service, Duration::from_secs(30), || {
        psql(tools, &url)
            .args(["-c", "select 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })?;
    Ok(service)
}

/// A postmaster left running by a killed xtask would hold the port and the
/// data folder; stop it first.
fn stop_stale(data: &Path) {
    let Ok(pidfile) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    if let Some(pid) = pidfile
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    {
        let pid = Pid::from_raw(pid);
        // Fails only when the postmaster is already gone.
        let _ = kill(pid, Signal::SIGINT);
        for _ in 0..100 {
            // Signal 0 only asks whether the process still exists.
            if kill(pid, None).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `psql` against `url`, stopping at the first error, without ~/.psqlrc.
pub fn psql(tools: &PgTools, url: &str) -> Command {
    let mut cmd = Command::new(tools.bin.join("psql"));
    cmd.arg(url).args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    cmd
}

/// Runs one SQL file in a single transaction.
pub fn apply_file(tools: &PgTools, url: &str, file: &Path) -> Result<()> {
    run(psql(tools, url)
        .arg("--single-transaction")
        .arg("-f")
        .arg(file))
    .with_context(|| format!("applying {}", file.display()))
}

pub fn execute(tools: &PgTools, url: &str, sql: &str) -> Result<String> {
    let out = psql(tools, url)
        .args(["-A", "-t", "-c", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        anyhow::bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What the dashboard does when someone enables pg_cron on a hosted project
/// (Database → Extensions): the superuser creates it and lets `postgres` use
/// it. The library itself is preloaded on every cluster, as on Supabase.
pub const ENABLE_PG_CRON: &str = "create extension if not exists pg_cron; \
     grant usage on schema cron to postgres; \
     grant all on all tables in schema cron to postgres;";

/// Applies what a Supabase project has before our migrations (as the
/// superuser), then every migration in name order, then the seed, as
/// `supabase db reset` does: as `postgres`, not a superuser.
pub fn reset_database(profile: &Profile, tools: &PgTools) -> Result<usize> {
    set_up_platform(profile, tools)?;
    apply_migrations_and_seed(tools, &profile.admin_db_url())
}

/// The roles, schemas and settings a Supabase project has before any
/// migration (devtools/supabase_base.sql), and the local passwords.
pub fn set_up_platform(profile: &Profile, tools: &PgTools) -> Result<()> {
    let superuser = profile.superuser_db_url();
    apply_file(
        tools,
        &superuser,
        &repo_root().join("devtools/supabase_base.sql"),
    )?;
    execute(
        tools,
        &superuser,
        &format!(
            "alter role postgres with password '{LOCAL_PASSWORD}'; \
             alter role authenticator with password '{LOCAL_PASSWORD}'"
        ),
    )?;
    Ok(())
}

/// Every migration, each in its own transaction, as `supabase db push`
/// applies them.
pub fn apply_migrations(tools: &PgTools, url: &str) -> Result<usize> {
    let migrations = crate::init_sql::migrations(&repo_root())?;
    for migration in &migrations {
        apply_file(tools, url, migration)?;
    }
    Ok(migrations.len())
}

/// Every migration, each in its own transaction, then the seed.
pub fn apply_migrations_and_seed(tools: &PgTools, url: &str) -> Result<usize> {
    let applied = apply_migrations(tools, url)?;
    let seed = repo_root().join("supabase/seed.sql");
    if seed.exists() {
        apply_file(tools, url, &seed)?;
    }
    Ok(applied)
}

/// Runs `sql` in one transaction as the service role, the way the edge's
/// RPCs run through PostgREST.
pub fn as_service_role(tools: &PgTools, url: &str, sql: &str) -> Result<String> {
    execute(
        tools,
        url,
        &format!(
            "begin; set local role service_role; \
             select set_config('request.jwt.claims', '{{\"role\": \"service_role\"}}', true); \
             {sql} commit;"
        ),
    )
}

/// A fingerprint of every row in our schemas: row count and a hash per table.
pub fn data_fingerprint(tools: &PgTools, url: &str) -> Result<String> {
    let tables = execute(
        tools,
        url,
        "select string_agg(format('%I.%I', n.nspname, c.relname), ' ' order by n.nspname, c.relname) \
           from pg_class c join pg_namespace n on n.oid = c.relnamespace \
          where n.nspname in ('platform', 'telemetry', 'analytics', 'auth') and c.relkind in ('r', 'm')",
    )?;
    let mut lines = Vec::new();
    for table in tables.split_whitespace() {
        let row = execute(
            tools,
            url,
            &format!(
                "select count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t"
            ),
        )?;
        lines.push(format!("{table} {row}"));
    }
    Ok(lines.join("\n"))
}

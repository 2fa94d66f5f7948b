//! Child processes of the stack: started in their own process group so a
//! Ctrl-C reaches only xtask, which then stops them in order and waits.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A long-running service of the stack.
pub struct Service {
    pub name: &'static str,
    pub log: PathBuf,
    child: Child,
    /// The signal that asks this service for a quick, clean shutdown.
    stop_signal: Signal,
}

impl Service {
    /// Spawns `command` with its output appended to `log`.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        stop_signal: Signal,
    ) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Service {
            name,
            log: log.to_path_buf(),
            child,
            stop_signal,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails with the tail of the log when the service has died.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.exited() {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 25)
            );
        }
        Ok(())
    }

    /// Asks the whole process group to stop, then kills it after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // The child leads the group `spawn` made; the pid fits in an i32.
        let group = Pid::from_raw(self.child.id() as i32);
        // An error means the group is already gone, which is what we want.
        let _ = killpg(group, self.stop_signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                // Children of the leader (workerd under wrangler) may linger.
                let _ = killpg(group, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("    {} did not stop in {grace:?}; killing it", self.name);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Fails with a clear message when a port the stack needs is taken.
pub fn ensure_port_free(port: u16, what: &str, env_var: &str) -> Result<()> {
    if TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!(
            "port {port} ({what}) is already in use on 127.0.0.1. Stop whatever holds it \
             (`ss -ltnp 'sport = :{port}'` shows it; an earlier `cargo xtask dev` is the usual \
             suspect) or pick another port with {env_var}=<port>"
        );
    }
    Ok(())
}

/// Polls `ready` until it returns true, the service dies, or `timeout` passes.
pub fn wait_until(
    service: &mut Service,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        service.ensure_running()?;
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not become ready within {timeout:?}; last lines of {}:\n{}",
                service.name,
                service.log.display(),
                tail(&service.log, 25)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to completion, failing with its output when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Runs a command with its output shown, returning whether it succeeded.
pub fn run_visible(command: &mut Command) -> Result<bool> {
    let status = command
        .status()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    Ok(status.success())
}

//! The Worker's entry module (`functions/js/entry.js`) recovers from a wasm
//! trap: the call that trapped fails, the next call runs on a fresh
//! instance, and calls after that do not re-instantiate again.
//!
//! A Rust panic in the Worker is a trap (`panic = "abort"`), but no request
//! may be able to cause one, so the entry module is served here by its own
//! `workerd` with `tests/fixtures/trap_glue.js` in place of wasm-bindgen's
//! glue: the same exports the entry module calls, whose `fetch` runs a real
//! wasm `unreachable` on request, and which counts the instances it is
//! asked to rebuild (`__wbg_reset_state`). The Worker's own build is checked
//! to bundle this entry module.

use e2e_tests::node::repo_root;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A wasm module exporting `trap`, whose body is `unreachable`.
const TRAP_WASM: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x07, 0x08, 0x01, 0x04, b't', b'r', b'a', b'p', 0x00, 0x00, // export "trap"
    0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // code: unreachable
];

/// `workerd serve` with the entry module and the fixture, stopped on drop.
struct Served {
    child: Child,
    url: String,
    _dir: Scratch,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve() -> Served {
    let root = repo_root();
    let workerd = root.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    assert!(
        workerd.exists(),
        "{} is missing: run `cargo xtask test` (it installs it with npm ci)",
        workerd.display()
    );
    let dir = Scratch(std::env::temp_dir().join(format!(
        "cds-trap-recovery-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::copy(root.join("functions/js/entry.js"), dir.0.join("entry.js")).unwrap();
    std::fs::copy(
        root.join("tests/fixtures/trap_glue.js"),
        dir.0.join("index.js"),
    )
    .unwrap();
    std::fs::write(dir.0.join("trap.wasm"), TRAP_WASM).unwrap();
    // A port the system just handed out; workerd binds it right after.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
    (name = "entry.js", esModule = embed "entry.js"),
    (name = "index.js", esModule = embed "index.js"),
    (name = "trap.wasm", wasm = embed "trap.wasm"),
  ],
  compatibilityDate = "2025-09-01",
);
"#
    );
    std::fs::write(dir.0.join("config.capnp"), config).unwrap();
    let child = Command::new(&workerd)
        .arg("serve")
        .arg(dir.0.join("config.capnp"))
        .arg("config")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting workerd");
    let mut served = Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let started = Instant::now();
    while get(&served, "/").is_none() {
        if let Ok(Some(status)) = served.child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = served.child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("workerd exited ({status}): {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "workerd did not answer within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    served
}

/// The status and body of `GET path`, or `None` when nothing answered.
fn get(served: &Served, path: &str) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    match agent.get(&format!("{}{path}", served.url)).call() {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(status, r)) => Some((status, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

/// How many times the fixture was asked for a fresh instance.
fn resets(served: &Served) -> u64 {
    let (status, body) = get(served, "/").expect("an answer");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    json["resets"].as_u64().expect("resets")
}

#[test]
fn a_trap_fails_its_own_call_and_the_next_call_runs_on_a_fresh_instance() {
    let served = serve();
    assert_eq!(resets(&served), 0);
    // Thrown from the call into wasm, and rejected from a later task.
    for (path, expected) in [("/trap", 1), ("/trap-later", 2)] {
        let (status, _) = get(&served, path).expect("an answer");
        assert_eq!(status, 500, "{path}: the trapping call fails");
        assert_eq!(resets(&served), expected, "{path}: re-instantiated once");
        assert_eq!(resets(&served), expected, "{path}: and not again");
    }
}

#[test]
fn an_error_that_is_not_a_trap_leaves_the_instance_alone() {
    let served = serve();
    let (status, _) = get(&served, "/throw").expect("an answer");
    assert_eq!(status, 500);
    assert_eq!(resets(&served), 0);
}

#[test]
fn the_worker_build_bundles_this_entry_module() {
    let bundle = std::fs::read_to_string(repo_root().join("functions/build/index.js"))
        .expect("the Worker is built (cargo xtask build-worker)");
    let entry = std::fs::read_to_string(repo_root().join("functions/js/entry.js")).unwrap();
    // esbuild keeps string literals: the entry module's log line is there,
    // and worker-build's Proxy shim is not.
    let line = "Reinitializing Wasm application";
    assert!(entry.contains(line));
    assert!(
        bundle.contains(line),
        "functions/build/index.js lacks {line:?}"
    );
    assert!(
        !bundle.contains("new Proxy("),
        "functions/build/index.js still wraps its entrypoint in a Proxy"
    );
}

# workerd configuration of the JWT benchmark harness: `workerd serve
# harness.capnp --socket-addr http=127.0.0.1:<port>` (the port comes from
# `cargo xtask bench`). The modules are what worker-build leaves in build/.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "harness", worker = .harness)],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "harness")],
);

const harness :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "build/index.js"),
    (name = "index_bg.wasm", wasm = embed "build/index_bg.wasm"),
  ],
  # The edge's (wrangler.toml).
  compatibilityDate = "2025-09-01",
);

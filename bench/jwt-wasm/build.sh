#!/usr/bin/env bash
# Builds the JWT verification benchmark to wasm the way the Worker is built:
# release profile (opt-level "z", LTO, one codegen unit, panic=abort), then
# wasm-bindgen, then `wasm-opt -Oz` (functions/Cargo.toml asks worker-build for
# -Oz). Output: target/bench/jwt-wasm/pkg, which run.mjs loads.
#
# Run from anywhere: bash bench/jwt-wasm/build.sh
# Env: WASM_BINDGEN_BIN  the wasm-bindgen CLI matching Cargo.lock's wasm-bindgen
#                        (default: the copy `cargo xtask` caches)
#      WASM_OPT_BIN      wasm-opt (default: node_modules/.bin/wasm-opt);
#                        WASM_OPT_BIN=none skips it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
manifest=bench/jwt-wasm/Cargo.toml
out=target/bench/jwt-wasm

# The CLI must be the exact version the crate links, or wasm-bindgen refuses
# the module; read it from the lockfile rather than repeating it here.
version="$(grep -A1 '^name = "wasm-bindgen"$' bench/jwt-wasm/Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
bindgen="${WASM_BINDGEN_BIN:-}"
if [[ -z "$bindgen" ]]; then
  tools="${XDG_CACHE_HOME:-$HOME/.cache}/cyberdevstudio/tools"
  bindgen="$tools/wasm-bindgen-cli-$version/bin/wasm-bindgen"
fi
if [[ ! -x "$bindgen" ]]; then
  echo "build.sh: no wasm-bindgen $version CLI at $bindgen;" \
    "run \`cargo xtask build-worker\` once (it caches it) or set WASM_BINDGEN_BIN" >&2
  exit 1
fi

# Not --locked: the lock pins every version already there, and this lets a
# dependency newly added to `shared` in; commit the updated Cargo.lock.
cargo build --release --target wasm32-unknown-unknown \
  --manifest-path "$manifest" --target-dir "$out/cargo"

rm -rf "$out/pkg"
"$bindgen" --target nodejs --out-dir "$out/pkg" \
  "$out/cargo/wasm32-unknown-unknown/release/jwt_wasm_bench.wasm"

wasm_opt="${WASM_OPT_BIN:-node_modules/.bin/wasm-opt}"
if [[ "$wasm_opt" == none ]]; then
  echo "build.sh: wasm-opt skipped (WASM_OPT_BIN=none)" >&2
elif [[ -x "$wasm_opt" ]]; then
  # The arguments worker-build 0.8.7 passes (its build/mod.rs,
  # step_run_wasm_opt): the profile's -Oz, an explicit feature list, and the
  # names section kept.
  wasm="$out/pkg/jwt_wasm_bench_bg.wasm"
  "$wasm_opt" "$wasm" -o "$wasm.opt" -Oz \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-bulk-memory --enable-multivalue --enable-reference-types \
    --enable-exception-handling --debuginfo
  mv "$wasm.opt" "$wasm"
else
  echo "build.sh: no wasm-opt at $wasm_opt (npm ci installs it; WASM_OPT_BIN=none to time the" \
    "un-optimized module, which the Worker does not ship)" >&2
  exit 1
fi

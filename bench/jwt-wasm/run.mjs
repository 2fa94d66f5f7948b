// Times shared::auth::jwt::Verifier inside wasm: per call, warm, for HS256,
// ES256 and RS256. Prints one line of JSON to stdout (microseconds per call):
//   {"hs256_us":{"median","min","max"},"es256_us":{...},"rs256_us":{...},"wasm_bytes":N}
// Progress and the batch sizes go to stderr. Any failed verification throws,
// and the process exits non-zero.
//
// Build first: bash bench/jwt-wasm/build.sh (writes target/bench/jwt-wasm/pkg).
// Then, from anywhere: node bench/jwt-wasm/run.mjs

import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PKG = path.join(ROOT, "target/bench/jwt-wasm/pkg");
const ALGS = ["HS256", "ES256", "RS256"];
const REPEATS = 7;
// Long enough for V8 to tier the hot wasm functions up from Liftoff to
// TurboFan, which is what a busy isolate runs.
const WARMUP_MS = 500;
// Each repeat is sized to take about this long, so the clock's resolution and
// the one JS→wasm call per batch vanish in the figure whatever the speed.
const REPEAT_MS = 250;

// Settings as the Worker has them locally (SUPABASE_URL + /auth/v1; the
// audience is fixed in the verifier's settings).
const ISSUER = "http://127.0.0.1:54321/auth/v1";
const SUB = crypto.randomUUID();

const b64url = (value) => Buffer.from(value).toString("base64url");

/** Keys as Supabase has them: a legacy HS256 secret, one ES256 (P-256) and one RS256 (2048-bit) signing key. */
function makeKeys() {
  const es = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const rs = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  // The members Supabase publishes at /auth/v1/.well-known/jwks.json.
  const jwk = (key, kid, alg) => ({
    ...key.export({ format: "jwk" }),
    kid,
    alg,
    use: "sig",
    key_ops: ["verify"],
    ext: true,
  });
  const esKid = crypto.randomUUID();
  const rsKid = crypto.randomUUID();
  return {
    secret: crypto.randomBytes(30).toString("base64"),
    es: { kid: esKid, privateKey: es.privateKey },
    rs: { kid: rsKid, privateKey: rs.privateKey },
    jwks: JSON.stringify({ keys: [jwk(es.publicKey, esKid, "ES256"), jwk(rs.publicKey, rsKid, "RS256")] }),
  };
}

/** A signed-in user's access token as Supabase Auth issues it (about 1 KiB with the header and signature). */
function claims(now) {
  const email = "bench.user@example.com";
  return {
    iss: ISSUER,
    sub: SUB,
    aud: "authenticated",
    exp: now + 3600,
    iat: now,
    email,
    phone: "",
    app_metadata: { provider: "email", providers: ["email"] },
    user_metadata: { email, email_verified: true, phone_verified: false, sub: SUB },
    role: "authenticated",
    aal: "aal1",
    amr: [{ method: "password", timestamp: now }],
    session_id: crypto.randomUUID(),
    is_anonymous: false,
  };
}

function sign(alg, keys, payload) {
  const header = { alg, typ: "JWT" };
  if (alg !== "HS256") header.kid = (alg === "ES256" ? keys.es : keys.rs).kid;
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  let signature;
  if (alg === "HS256") {
    // Supabase uses the secret's bytes as they are, not base64-decoded.
    signature = crypto.createHmac("sha256", keys.secret).update(input).digest();
  } else if (alg === "ES256") {
    // JWS wants r‖s (IEEE P1363), not node's default DER.
    signature = crypto.sign("sha256", Buffer.from(input), { key: keys.es.privateKey, dsaEncoding: "ieee-p1363" });
  } else {
    signature = crypto.sign("sha256", Buffer.from(input), keys.rs.privateKey); // PKCS#1 v1.5
  }
  return `${input}.${signature.toString("base64url")}`;
}

/** Microseconds per verification over one batch of `n`. */
function timeBatch(bench, alg, n) {
  const start = process.hrtime.bigint();
  bench.verify_n(alg, n);
  return Number(process.hrtime.bigint() - start) / 1e3 / n;
}

function main() {
  const wasmPath = path.join(PKG, "jwt_wasm_bench_bg.wasm");
  if (!fs.existsSync(wasmPath)) {
    throw new Error(`${wasmPath} is missing; run bash bench/jwt-wasm/build.sh first`);
  }
  // wasm-bindgen's --target nodejs output is CommonJS.
  const { Bench } = createRequire(import.meta.url)(path.join(PKG, "jwt_wasm_bench.js"));

  const now = Math.floor(Date.now() / 1000);
  const keys = makeKeys();
  const payload = claims(now);
  const tokens = ALGS.map((alg) => sign(alg, keys, payload));
  // The constructor verifies each token once and throws if any is refused.
  const bench = new Bench(keys.secret, keys.jwks, ISSUER, ...tokens, SUB, BigInt(now));

  // Guard against a harness that accepts anything: a token signed with
  // another secret must be refused.
  const forged = sign("HS256", { ...keys, secret: `${keys.secret}x` }, payload);
  try {
    new Bench(keys.secret, keys.jwks, ISSUER, forged, tokens[1], tokens[2], SUB, BigInt(now)).free();
    throw new Error("a forged HS256 token verified; the harness is broken");
  } catch (e) {
    if (!String(e.message).includes("invalid_signature")) throw e;
  }

  // Warm up every algorithm first (they share base64, JSON and claim code),
  // and size each algorithm's batch from its warm speed.
  const batch = {};
  for (const alg of ALGS) {
    let n = 1;
    let perCall = Infinity;
    for (const deadline = performance.now() + WARMUP_MS; performance.now() < deadline; n = Math.min(n * 2, 4096)) {
      perCall = timeBatch(bench, alg, n);
    }
    batch[alg] = Math.max(1, Math.round((REPEAT_MS * 1e3) / perCall));
  }

  const result = {};
  for (const alg of ALGS) {
    const samples = Array.from({ length: REPEATS }, () => timeBatch(bench, alg, batch[alg])).sort((a, b) => a - b);
    const round = (us) => Math.round(us * 1000) / 1000;
    result[`${alg.toLowerCase()}_us`] = {
      median: round(samples[REPEATS >> 1]),
      min: round(samples[0]),
      max: round(samples[REPEATS - 1]),
    };
    console.error(
      `${alg}: median ${round(samples[REPEATS >> 1])} µs/verify (${REPEATS} × ${batch[alg]} verifications)`,
    );
  }
  bench.free();
  result.wasm_bytes = fs.statSync(wasmPath).size;
  console.log(JSON.stringify(result));
}

try {
  main();
} catch (e) {
  console.error(`run.mjs: ${e?.stack ?? e}`);
  process.exit(1);
}

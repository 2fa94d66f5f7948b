#!/usr/bin/env node
// Self-check of the usage-ts benchmark peer: starts a fake REST layer on
// 127.0.0.1:18902 that records what it is sent and answers as
// platform.record_token_usage does, serves the peer with the repo's wrangler
// on 18900 (inspector 18901), checks the answers, and stops everything.
// Exits non-zero on any failure.
//
//   node bench/peers/usage-ts/selfcheck.mjs        (from anywhere)

import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import os from "node:os";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../../..");
const HTTP_PORT = 18900;
const INSPECTOR_PORT = 18901;
const REST_PORT = 18902;
const SUPABASE_URL = `http://127.0.0.1:${REST_PORT}`;
const JWT_SECRET = "selfcheck-jwt-secret-of-at-least-32-characters";
const ANON_KEY = "selfcheck-anon-key";
const SERVICE_ROLE_KEY = "selfcheck-service-role-key";
const USER = "0b6c1f0e-8e2a-4c57-9a3e-5d1c2b3a4f60";
const WORKER = `http://127.0.0.1:${HTTP_PORT}`;

// ------------------------------------------------------------ fake REST ---

/** Every request the fake REST layer received, in order. */
const seen = [];
const recorded = new Map(); // idempotency key -> first result

function usageResult(args, replayed) {
  const total = args.p_prompt_tokens + args.p_completion_tokens;
  // platform.usage_result's keys (jsonb prints them shortest first).
  return {
    cost: Math.round(total * 0.15) / 1000,
    model: args.p_model,
    balance: 1000000 - total,
    usage_id: 42,
    replayed,
    exhausted: false,
    created_at: "2026-11-25T12:00:00.000000+00:00",
    reservation: null,
    total_tokens: total,
    prompt_tokens: args.p_prompt_tokens,
    completion_tokens: args.p_completion_tokens,
  };
}

function answer(res, status, body) {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(text);
}

const rest = createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    seen.push({ method: req.method, path: req.url, headers: { ...req.headers }, body });
    if (req.method === "POST" && req.url === "/rest/v1/rpc/record_execution_metric") {
      return answer(res, 204);
    }
    if (req.method !== "POST" || req.url !== "/rest/v1/rpc/record_token_usage") {
      return answer(res, 404, { code: "PGRST202", message: "no such function", details: null, hint: null });
    }
    const args = JSON.parse(body);
    switch (args.p_model) {
      case "unknown-model":
        return answer(res, 422, { code: "PT422", message: `unknown model '${args.p_model}'`, details: null, hint: "unknown_model" });
      case "db-down":
        return answer(res, 503, { code: "PGRST001", message: "Database client error", details: null, hint: null });
      case "deploy-fault":
        return answer(res, 404, { code: "PGRST202", message: "Could not find the function", details: null, hint: null });
      case "gateway-page":
        res.writeHead(502, { "content-type": "text/html" });
        return res.end("<html>Bad Gateway</html>");
    }
    const first = recorded.get(args.p_idempotency_key);
    if (first) return answer(res, 200, { ...first, replayed: true });
    const result = usageResult(args, false);
    recorded.set(args.p_idempotency_key, result);
    return answer(res, 200, result);
  });
});

// ----------------------------------------------------------------- tokens ---

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

function sign(claims, { secret = JWT_SECRET, header = { alg: "HS256", typ: "JWT" } } = {}) {
  const signing = `${b64(header)}.${b64(claims)}`;
  return `${signing}.${createHmac("sha256", secret).update(signing).digest("base64url")}`;
}

function claims(changes = {}) {
  const now = Math.floor(Date.now() / 1000);
  const base = {
    aud: "authenticated",
    exp: now + 3600,
    iat: now,
    iss: `${SUPABASE_URL}/auth/v1`,
    sub: USER,
    email: "ada@example.com",
    phone: "",
    app_metadata: { provider: "email", providers: ["email"] },
    user_metadata: {},
    role: "authenticated",
    aal: "aal1",
    session_id: "5b9c5d0e-1f2a-4b3c-8d4e-6f7a8b9c0d1e",
    is_anonymous: false,
  };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

// ---------------------------------------------------------------- wrangler ---

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** The exact command README.md documents, run from the repo root; with
 * `envFile`, the secrets come from that file instead of `--var`s. */
function startWrangler(extraVars = [], envFile = undefined) {
  const args = [
    "--prefix", REPO, "wrangler", "dev",
    "--config", "bench/peers/usage-ts/wrangler.toml",
    "--port", String(HTTP_PORT),
    "--inspector-port", String(INSPECTOR_PORT),
    "--ip", "127.0.0.1",
    "--var", `SUPABASE_URL:${SUPABASE_URL}`,
    ...(envFile
      ? ["--env-file", envFile]
      : ["--var", `JWT_SECRET:${JWT_SECRET}`, "--var", `SUPABASE_ANON_KEY:${ANON_KEY}`]),
    ...extraVars.flatMap((v) => ["--var", v]),
  ];
  const child = spawn("npx", args, {
    cwd: REPO,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so stopping it stops workerd too
  });
  child.log = "";
  child.stdout.on("data", (d) => (child.log += d));
  child.stderr.on("data", (d) => (child.log += d));
  return child;
}

async function waitReady(child) {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler exited early:\n${child.log}`);
    try {
      const r = await fetch(`${WORKER}/ready-probe`);
      await r.text();
      if (r.status === 404) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`wrangler not ready after 120 s:\n${child.log}`);
}

const groupAlive = (pgid) => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Stops the process group we started (npx, wrangler, workerd) and waits
 * until every member is gone; SIGKILL after 10 s. */
async function stopWrangler(child) {
  if (!child || !groupAlive(child.pid)) return;
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    // already gone
  }
  const deadline = Date.now() + 10_000;
  while (groupAlive(child.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (groupAlive(child.pid)) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    while (groupAlive(child.pid)) await new Promise((r) => setTimeout(r, 100));
  }
}

// ------------------------------------------------------------------ checks ---

const failures = [];
let passed = 0;

function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`  ok    ${name}`);
  } else {
    failures.push(name);
    console.log(`  FAIL  ${name}${detail ? `\n        ${detail}` : ""}`);
  }
}

const event = (changes = {}) => ({ model: "gpt-4o-mini", prompt_tokens: 12, completion_tokens: 34, ...changes });

async function post(token, body, headers = {}) {
  const h = { "content-type": "application/json", ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  const r = await fetch(`${WORKER}/v1/usage`, {
    method: "POST",
    headers: h,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** Headers the HTTP client or workerd adds to every subrequest (cf-worker:
 * the Worker's zone), not chosen by the Worker's code. */
const TRANSPORT_HEADERS = new Set(["host", "content-length", "connection", "accept-encoding", "transfer-encoding", "user-agent", "cf-worker"]);

function appHeaders(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !TRANSPORT_HEADERS.has(k)).sort());
}

async function expectError(name, res, status, code, { reachedRest = false, before } = {}) {
  const ok =
    res.status === status &&
    res.json?.error?.code === code &&
    typeof res.json?.error?.message === "string" &&
    Object.keys(res.json).length === 1 &&
    Object.keys(res.json.error).length === 2 &&
    (before === undefined || (seen.length > before) === reachedRest);
  check(`${name} -> ${status} ${code}`, ok, `got ${res.status} ${res.text}`);
}

async function userChecks() {
  console.log("checks (TELEMETRY off):");
  const token = sign(claims());

  // A valid call: 201, and the REST layer got exactly what the Rust Worker sends.
  let before = seen.length;
  const key = `selfcheck-${randomUUID()}`;
  let res = await post(token, event(), { "idempotency-key": key, "x-request-id": "selfcheck-1" });
  const call = seen[before];
  check("valid HS256 token -> 201", res.status === 201, `got ${res.status} ${res.text}`);
  check("exactly one REST call", seen.length === before + 1, `saw ${seen.length - before}`);
  check("REST call is POST /rest/v1/rpc/record_token_usage",
    call?.method === "POST" && call?.path === "/rest/v1/rpc/record_token_usage", JSON.stringify(call && [call.method, call.path]));
  const wantHeaders = {
    accept: "application/json",
    apikey: ANON_KEY,
    authorization: `Bearer ${token}`,
    "content-profile": "platform",
    "content-type": "application/json",
  };
  check("REST headers are exactly apikey, authorization (the user's JWT), content-type, accept, content-profile",
    JSON.stringify(appHeaders(call?.headers ?? {})) === JSON.stringify(wantHeaders),
    `got ${JSON.stringify(call?.headers)}`);
  const wantBody =
    `{"p_completion_tokens":34,"p_idempotency_key":"${key}","p_metadata":{},"p_model":"gpt-4o-mini",` +
    `"p_project_id":null,"p_prompt_tokens":12,"p_reservation_id":null,"p_session_id":null}`;
  check("REST body is byte-for-byte what serde_json writes for UsageEvent::rpc_args", call?.body === wantBody,
    `got  ${call?.body}\n        want ${wantBody}`);
  const { replayed, ...firstBody } = usageResult(JSON.parse(wantBody), false);
  check("201 body is the RPC result without `replayed`",
    JSON.stringify(res.json) === JSON.stringify(firstBody), res.text);
  check("201 headers: idempotent-replayed false, content-type json, vary Origin, x-request-id kept",
    res.headers.get("idempotent-replayed") === "false" &&
    res.headers.get("content-type") === "application/json" &&
    res.headers.get("vary") === "Origin" &&
    res.headers.get("x-request-id") === "selfcheck-1",
    JSON.stringify([...res.headers]));
  console.log(`        REST saw: ${call?.method} ${call?.path}\n        headers: ${JSON.stringify(call?.headers)}\n        body: ${call?.body}`);

  res = await post(token, event(), { "idempotency-key": key });
  check("retry -> 201 same body, idempotent-replayed true",
    res.status === 201 && JSON.stringify(res.json) === JSON.stringify(firstBody) &&
    res.headers.get("idempotent-replayed") === "true" && /^[0-9a-f]{32}$/.test(res.headers.get("x-request-id") ?? ""),
    `${res.status} ${res.text} ${JSON.stringify([...res.headers])}`);

  before = seen.length;
  res = await post(token, event({ idempotency_key: "in-the-body", project_id: USER.toUpperCase(), metadata: { a: 1 } }));
  check("idempotency_key in the body, optional fields passed -> 201", res.status === 201, res.text);
  check("  ...sent as p_idempotency_key, UUIDs lowercased, metadata kept",
    seen[before]?.body ===
      `{"p_completion_tokens":34,"p_idempotency_key":"in-the-body","p_metadata":{"a":1},"p_model":"gpt-4o-mini",` +
      `"p_project_id":"${USER}","p_prompt_tokens":12,"p_reservation_id":null,"p_session_id":null}`,
    seen[before]?.body);

  // Refused tokens: 401, and nothing reaches the REST layer.
  const now = Math.floor(Date.now() / 1000);
  const [h, c] = sign(claims()).split(".");
  const refusals = [
    ["expired token", sign(claims({ exp: now - 3600 })), "token_expired"],
    ["bad signature (another secret)", sign(claims(), { secret: "another-secret-of-at-least-32-characters!" }), "invalid_signature"],
    ["alg none, no signature", `${b64({ alg: "none", typ: "JWT" })}.${c}.`, "unsupported_algorithm"],
    ["alg none, HS256 signature kept", `${b64({ alg: "none" })}.${c}.${sign(claims()).split(".")[2]}`, "unsupported_algorithm"],
    ["alg HS512", sign(claims(), { header: { alg: "HS512" } }), "unsupported_algorithm"],
    ["claims changed after signing", `${h}.${b64(claims({ role: "service_role" }))}.${sign(claims()).split(".")[2]}`, "invalid_signature"],
    ["exp 60 s ago (beyond the 30 s leeway)", sign(claims({ exp: now - 60 })), "token_expired"],
    ["nbf beyond leeway", sign(claims({ nbf: now + 120 })), "token_not_yet_valid"],
    ["no exp", sign(claims({ exp: undefined })), "missing_expiry"],
    ["exp a string", sign(claims({ exp: "tomorrow" })), "malformed_token"],
    ["wrong aud", sign(claims({ aud: "anon" })), "wrong_audience"],
    ["wrong iss", sign(claims({ iss: "https://evil.supabase.co/auth/v1" })), "wrong_issuer"],
    ["sub not a UUID", sign(claims({ sub: "admin" })), "invalid_subject"],
    ["role unknown", sign(claims({ role: "postgres" })), "invalid_role"],
    ["role anon", sign(claims({ role: "anon" })), "user_required"],
    ["role service_role", sign(claims({ role: "service_role" })), "user_required"],
    ["two parts", `${h}.${c}`, "malformed_token"],
    ["oversized", "a".repeat(8 * 1024 + 1), "token_too_large"],
  ];
  for (const [name, tok, code] of refusals) {
    before = seen.length;
    res = await post(tok, event(), { "idempotency-key": `k-${randomUUID()}` });
    await expectError(name, res, 401, code, { before });
    if (res.status === 401 && res.headers.get("www-authenticate") !== "Bearer") check(`${name}: www-authenticate`, false);
  }
  before = seen.length;
  res = await post(sign(claims({ exp: now - 20, nbf: now + 20 })), event(), { "idempotency-key": `k-${randomUUID()}` });
  check("exp/nbf within the 30 s leeway -> 201", res.status === 201, res.text);
  before = seen.length;
  res = await post(null, event(), { "idempotency-key": "k" });
  await expectError("no Authorization header", res, 401, "missing_token", { before });

  // Refused requests: nothing reaches the REST layer.
  const bad = [
    ["missing Idempotency-Key", event(), {}, 400, "idempotency_key_required"],
    ["header and body keys differ", event({ idempotency_key: "b" }), { "idempotency-key": "a" }, 400, "idempotency_key_mismatch"],
    ["invalid JSON", "{", { "idempotency-key": "k" }, 400, "invalid_json"],
    ["not application/json", event(), { "idempotency-key": "k", "content-type": "text/plain" }, 415, "unsupported_media_type"],
    ["body not an object", [1], { "idempotency-key": "k" }, 422, "invalid_body"],
    ["unknown field", event({ tokens: 1 }), { "idempotency-key": "k" }, 422, "unknown_field"],
    ["model missing", { prompt_tokens: 1, completion_tokens: 1 }, { "idempotency-key": "k" }, 422, "invalid_field"],
    ["model empty", event({ model: "" }), { "idempotency-key": "k" }, 422, "invalid_field"],
    ["negative prompt_tokens", event({ prompt_tokens: -1 }), { "idempotency-key": "k" }, 422, "invalid_field"],
    ["fractional completion_tokens", event({ completion_tokens: 1.5 }), { "idempotency-key": "k" }, 422, "invalid_field"],
    ["string prompt_tokens", event({ prompt_tokens: "12" }), { "idempotency-key": "k" }, 422, "invalid_field"],
    ["project_id not a UUID", event({ project_id: "p1" }), { "idempotency-key": "k" }, 422, "invalid_field"],
  ];
  for (const [name, body, headers, status, code] of bad) {
    before = seen.length;
    res = await post(token, body, headers);
    await expectError(name, res, status, code, { before });
  }

  // PostgREST's answers, passed through as map_error does.
  const upstreamCases = [
    ["PT422 unknown_model passed through", "unknown-model", 422, "unknown_model"],
    ["PGRST001 / 503 -> database_unavailable", "db-down", 503, "database_unavailable"],
    ["PGRST202 (a deployment fault) -> upstream_error", "deploy-fault", 502, "upstream_error"],
    ["gateway HTML page on 502 -> database_unavailable", "gateway-page", 503, "database_unavailable"],
  ];
  for (const [name, model, status, code] of upstreamCases) {
    before = seen.length;
    res = await post(token, event({ model }), { "idempotency-key": `k-${randomUUID()}` });
    await expectError(name, res, status, code, { before, reachedRest: true });
  }
  check("503 carries Retry-After: 2", (await post(token, event({ model: "db-down" }), { "idempotency-key": "k" })).headers.get("retry-after") === "2");

  // Routing.
  let r = await fetch(`${WORKER}/v1/other`, { method: "POST" });
  let t = await r.text();
  check("POST /v1/other -> 404 not_found JSON", r.status === 404 && JSON.parse(t).error?.code === "not_found", t);
  r = await fetch(`${WORKER}/v1/usage`);
  t = await r.text();
  check("GET /v1/usage -> 405 with Allow: POST", r.status === 405 && r.headers.get("allow") === "POST" && JSON.parse(t).error?.code === "method_not_allowed", t);
  check("no telemetry calls while TELEMETRY is off", !seen.some((s) => s.path.endsWith("/record_execution_metric")));
}

async function telemetryChecks() {
  console.log("checks (TELEMETRY on):");
  const before = seen.length;
  const res = await post(sign(claims()), event(), { "idempotency-key": `k-${randomUUID()}`, "x-request-id": "telemetry-1" });
  check("valid call -> 201 (JWT_SECRET from the env file)", res.status === 201, res.text);
  const usage = seen.slice(before).find((s) => s.path === "/rest/v1/rpc/record_token_usage");
  check("  ...RPC sent with the anon key from the env file", usage?.headers.apikey === ANON_KEY, JSON.stringify(usage?.headers));
  const deadline = Date.now() + 5000;
  let metric;
  while (!metric && Date.now() < deadline) {
    metric = seen.slice(before).find((s) => s.path === "/rest/v1/rpc/record_execution_metric");
    if (!metric) await new Promise((r) => setTimeout(r, 50));
  }
  check("record_execution_metric called after the response", !!metric);
  const args = metric ? JSON.parse(metric.body) : {};
  check("  ...as the service role, in the platform profile",
    metric?.headers.apikey === SERVICE_ROLE_KEY && metric?.headers.authorization === `Bearer ${SERVICE_ROLE_KEY}` &&
    metric?.headers["content-profile"] === "platform", JSON.stringify(metric?.headers));
  check("  ...with the Rust Worker's arguments, keys sorted",
    JSON.stringify(Object.keys(args)) === JSON.stringify(["p_duration_ms", "p_function", "p_http_status", "p_request_id", "p_status"]) &&
    args.p_function === "usage_record" && args.p_http_status === 201 && args.p_status === "ok" &&
    args.p_request_id === "telemetry-1" && typeof args.p_duration_ms === "number",
    metric?.body);
  const r = await fetch(`${WORKER}/nope`);
  await r.text();
  await new Promise((r) => setTimeout(r, 300));
  const after404 = seen.filter((s) => s.path === "/rest/v1/rpc/record_execution_metric").length;
  check("  ...and not for an unrouted request", after404 === 1, `metric calls: ${after404}`);
}

// -------------------------------------------------------------------- main ---

let wrangler;
let tmp;
let status = 0;
try {
  for (const port of [HTTP_PORT, INSPECTOR_PORT, REST_PORT]) {
    if (!(await portFree(port))) throw new Error(`port ${port} is in use; stop what holds it first`);
  }
  await new Promise((resolve) => rest.listen(REST_PORT, "127.0.0.1", resolve));
  console.log(`fake REST layer on ${SUPABASE_URL}`);

  let t0 = Date.now();
  wrangler = startWrangler();
  await waitReady(wrangler);
  console.log(`wrangler dev ready on ${WORKER} in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${wrangler.pid})`);
  await userChecks();
  await stopWrangler(wrangler);

  t0 = Date.now();
  tmp = mkdtempSync(path.join(os.tmpdir(), "usage-ts-selfcheck-"));
  const envFile = path.join(tmp, "secrets.env");
  writeFileSync(envFile,
    `JWT_SECRET=${JWT_SECRET}\nSUPABASE_ANON_KEY=${ANON_KEY}\nSUPABASE_SERVICE_ROLE_KEY=${SERVICE_ROLE_KEY}\n`);
  wrangler = startWrangler(["TELEMETRY:on"], envFile);
  await waitReady(wrangler);
  console.log(`wrangler dev (TELEMETRY on, secrets from --env-file) ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${wrangler.pid})`);
  seen.length = 0;
  await telemetryChecks();
} catch (e) {
  console.error(`selfcheck aborted: ${e.stack ?? e}`);
  status = 2;
} finally {
  await stopWrangler(wrangler);
  await new Promise((resolve) => rest.close(resolve));
  rest.closeAllConnections?.();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
if (failures.length && status === 0) status = 1;
console.log(`\n${passed} passed, ${failures.length} failed${status === 2 ? ", aborted" : ""}`);
if (failures.length) console.log(`failed: ${failures.join("; ")}`);
if (status !== 0 && wrangler) console.log(`--- wrangler log ---\n${wrangler.log}`);
process.exit(status);

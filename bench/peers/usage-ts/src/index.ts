// Benchmark peer, not product code: a plain TypeScript Worker that does what
// the Rust Worker's `POST /v1/usage` does for a signed-in user presenting an
// HS256 Supabase access token, so the two can be compared on the same workerd.
//
// Mirrors, step for step: functions/src/app.rs (request id, body limit,
// route), functions/src/caller.rs + shared/src/auth/jwt.rs (the token),
// shared/src/usage.rs (`UsageEvent::parse`), shared/src/postgrest.rs (the RPC
// request, `interpret_rpc`, `map_error`), functions/src/respond.rs (the 201
// and error bodies) and, when TELEMETRY is "on", functions/src/telemetry.rs.
// What it leaves out is listed in README.md.
//
// No runtime dependencies; wrangler's esbuild strips the types.

interface Env {
  SUPABASE_URL?: string;
  SUPABASE_ANON_KEY?: string;
  JWT_SECRET?: string;
  /** The Rust Worker's name for the same secret; used when JWT_SECRET is unset. */
  SUPABASE_JWT_SECRET?: string;
  MAX_BODY_BYTES?: string;
  REST_TIMEOUT_MS?: string;
  /** "on": write one telemetry row per routed call, as the Rust Worker does. */
  TELEMETRY?: string;
  SUPABASE_SERVICE_ROLE_KEY?: string;
  /** The per-user rate limiting binding, as the Rust Worker's; charged when bound. */
  USER_LIMITER?: RateLimit;
}

interface RateLimit {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

interface Ctx {
  waitUntil(promise: Promise<unknown>): void;
}

// ---------------------------------------------------------------- errors ---

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly logDetail?: string,
  ) {
    super(message);
  }
}

const INVALID_CREDENTIALS_MESSAGE = "invalid access token";
const RETRY_AFTER_SECS = 2;
/** shared::rate_limit::PERIOD_SECS. */
const RATE_LIMIT_PERIOD_SECS = 60;

const unauthorized = (code: string) =>
  new ApiError(401, code, INVALID_CREDENTIALS_MESSAGE, { "www-authenticate": "Bearer" });
const invalid = (field: string, reason: string) =>
  new ApiError(422, "invalid_field", `${field}: ${reason}`);
const unavailable = () =>
  new ApiError(503, "database_unavailable", "the database is temporarily unavailable", {
    "retry-after": String(RETRY_AFTER_SECS),
  });
const upstream = (detail: string) =>
  new ApiError(502, "upstream_error", "the database answered unexpectedly", {}, detail);

// ---------------------------------------------------------------- config ---

interface Config {
  supabaseUrl: string;
  issuer: string;
  rpcUrl: string;
  anonKey: string;
  jwtSecret: string | undefined;
  maxBodyBytes: number;
  restTimeoutMs: number;
  telemetry: { url: string; serviceRoleKey: string } | undefined;
  /** HMAC key for JWT_SECRET, imported once per isolate. */
  hmacKey: Promise<CryptoKey> | undefined;
}

let CONFIG: Config | undefined;

function optional(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v ? v : undefined;
}

function number(value: string | undefined, fallback: number, min: number, max: number, name: string): number {
  const v = optional(value);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) {
    throw new ApiError(500, "misconfigured", "the service is misconfigured", {}, `${name}: out of range`);
  }
  return n;
}

/** The configuration, read once per isolate (as functions/src/env_config.rs). */
function config(env: Env): Config {
  if (CONFIG) return CONFIG;
  const missing = (["SUPABASE_URL", "SUPABASE_ANON_KEY"] as const).filter((n) => !optional(env[n]));
  if (missing.length) {
    throw new ApiError(500, "misconfigured", "the service is misconfigured", {}, `missing ${missing.join(", ")}`);
  }
  const supabaseUrl = optional(env.SUPABASE_URL)!.replace(/\/+$/, "");
  if (!/^https?:\/\//.test(supabaseUrl)) {
    throw new ApiError(500, "misconfigured", "the service is misconfigured", {}, "SUPABASE_URL: not http(s)");
  }
  const jwtSecret = optional(env.JWT_SECRET) ?? optional(env.SUPABASE_JWT_SECRET);
  if (jwtSecret !== undefined && [...jwtSecret].length < 32) {
    throw new ApiError(500, "misconfigured", "the service is misconfigured", {}, "JWT_SECRET: shorter than 32");
  }
  const serviceRoleKey = optional(env.SUPABASE_SERVICE_ROLE_KEY);
  const telemetryOn = optional(env.TELEMETRY)?.toLowerCase() === "on";
  if (telemetryOn && !serviceRoleKey) {
    throw new ApiError(500, "misconfigured", "the service is misconfigured", {}, "TELEMETRY=on needs SUPABASE_SERVICE_ROLE_KEY");
  }
  CONFIG = {
    supabaseUrl,
    issuer: `${supabaseUrl}/auth/v1`,
    rpcUrl: `${supabaseUrl}/rest/v1/rpc/record_token_usage`,
    anonKey: optional(env.SUPABASE_ANON_KEY)!,
    jwtSecret,
    maxBodyBytes: number(env.MAX_BODY_BYTES, 256 * 1024, 1, 16 * 1024 * 1024, "MAX_BODY_BYTES"),
    restTimeoutMs: number(env.REST_TIMEOUT_MS, 5000, 50, 60000, "REST_TIMEOUT_MS"),
    telemetry: telemetryOn
      ? { url: `${supabaseUrl}/rest/v1/rpc/record_execution_metric`, serviceRoleKey: serviceRoleKey! }
      : undefined,
    hmacKey:
      jwtSecret === undefined
        ? undefined
        : crypto.subtle.importKey(
            "raw",
            new TextEncoder().encode(jwtSecret),
            { name: "HMAC", hash: "SHA-256" },
            false,
            ["verify"],
          ),
  };
  return CONFIG;
}

// ------------------------------------------------------------------- JWT ---

const LEEWAY_SECS = 30;
const MAX_TOKEN_BYTES = 8 * 1024;
const B64URL = /^[A-Za-z0-9_-]*$/;
const B64_INDEX = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();

/** Unpadded base64url, refusing non-canonical trailing bits as the `base64` crate does. */
function b64urlDecode(s: string): Uint8Array | null {
  if (!B64URL.test(s) || s.length % 4 === 1) return null;
  const rest = s.length % 4;
  if (rest !== 0) {
    const last = B64_INDEX.indexOf(s[s.length - 1]);
    if ((rest === 2 && (last & 0x0f) !== 0) || (rest === 3 && (last & 0x03) !== 0)) return null;
  }
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseJsonBytes(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(UTF8.decode(bytes));
  } catch {
    return undefined;
  }
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A NumericDate as jwt_compact reads one: absent/null, or a whole number of seconds. */
function timestamp(v: unknown): number | null | undefined {
  if (v === undefined || v === null) return null;
  return typeof v === "number" && Number.isSafeInteger(v) ? v : undefined;
}

/** `Authorization: Bearer <token>`, as shared::auth::bearer_token. */
function bearerToken(authorization: string | null): string {
  const value = (authorization ?? "").trim();
  const space = value.indexOf(" ");
  const scheme = space < 0 ? value : value.slice(0, space);
  const token = space < 0 ? "" : value.slice(space + 1).trim();
  if (scheme.toLowerCase() !== "bearer" || token === "") throw unauthorized("missing_token");
  return token;
}

interface User {
  sub: string;
  token: string;
}

/** Verifies a signed-in user's HS256 access token (shared::auth::jwt::Verifier + require_user). */
async function verifyUser(token: string, cfg: Config): Promise<User> {
  if (token.length > MAX_TOKEN_BYTES) throw unauthorized("token_too_large");
  const parts = token.split(".");
  if (parts.length !== 3) throw unauthorized("malformed_token");
  const [headerB64, claimsB64, signatureB64] = parts;
  const headerBytes = b64urlDecode(headerB64);
  const claimsBytes = b64urlDecode(claimsB64);
  const signature = b64urlDecode(signatureB64);
  if (!headerBytes || !claimsBytes || !signature) throw unauthorized("malformed_token");
  const header = parseJsonBytes(headerBytes);
  if (!isObject(header) || typeof header.alg !== "string") throw unauthorized("malformed_token");
  // Only HS256 here: the Rust Worker also takes ES256/RS256 against the JWKS.
  if (header.alg !== "HS256") throw unauthorized("unsupported_algorithm");
  if (!cfg.hmacKey) throw unauthorized("invalid_signature");
  const signed = ENCODER.encode(token.slice(0, headerB64.length + 1 + claimsB64.length));
  if (!(await crypto.subtle.verify("HMAC", await cfg.hmacKey, signature, signed))) {
    throw unauthorized("invalid_signature");
  }

  // Claims are judged only after the signature.
  const claims = parseJsonBytes(claimsBytes);
  if (!isObject(claims)) throw unauthorized("malformed_token");
  const exp = timestamp(claims.exp);
  const nbf = timestamp(claims.nbf);
  const iat = timestamp(claims.iat);
  if (exp === undefined || nbf === undefined || iat === undefined) throw unauthorized("malformed_token");
  const now = Math.floor(Date.now() / 1000);
  if (exp === null) throw unauthorized("missing_expiry");
  if (exp + LEEWAY_SECS < now) throw unauthorized("token_expired");
  if (nbf !== null && nbf - LEEWAY_SECS > now) throw unauthorized("token_not_yet_valid");
  const aud = claims.aud;
  const audOk =
    aud === "authenticated" || (Array.isArray(aud) && aud.some((a) => a === "authenticated"));
  if (!audOk) throw unauthorized("wrong_audience");
  if (claims.iss !== cfg.issuer) throw unauthorized("wrong_issuer");
  const sub = claims.sub;
  if (typeof sub !== "string" || !UUID.test(sub)) throw unauthorized("invalid_subject");
  const role = claims.role;
  if (role !== "authenticated" && role !== "anon" && role !== "service_role") {
    throw unauthorized("invalid_role");
  }
  if (role !== "authenticated") throw unauthorized("user_required");
  return { sub: sub.toLowerCase(), token };
}

// ------------------------------------------------------------ usage event ---

const MAX_TOKENS = 1_000_000_000_000;
const MAX_KEY_CHARS = 255;
const MAX_MODEL_CHARS = 128;
const MAX_METADATA_BYTES = 8 * 1024;
const EVENT_FIELDS = new Set([
  "model",
  "prompt_tokens",
  "completion_tokens",
  "idempotency_key",
  "project_id",
  "session_id",
  "reservation_id",
  "metadata",
]);

const charCount = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function tokenCount(map: Record<string, unknown>, field: string): number {
  if (!(field in map)) throw invalid(field, "is required");
  const v = map[field];
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TOKENS) return v;
  throw invalid(field, "must be a whole number from 0 to 1000000000000");
}

function text(map: Record<string, unknown>, field: string, maxChars: number): string | null {
  const v = map[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw invalid(field, "must be a string");
  const n = charCount(v);
  if (n === 0 || n > maxChars) throw invalid(field, `must be 1 to ${maxChars} characters`);
  if (v.includes("\0")) throw invalid(field, "must not contain NUL characters");
  return v;
}

function optionalUuid(map: Record<string, unknown>, field: string): string | null {
  const v = map[field];
  if (v === undefined || v === null) return null;
  if (typeof v === "string" && UUID.test(v)) return v.toLowerCase();
  throw invalid(field, "must be a UUID");
}

function metadata(map: Record<string, unknown>): Record<string, unknown> {
  const v = map.metadata;
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw invalid("metadata", "must be a JSON object");
  const serialized = JSON.stringify(v);
  if (serialized.includes("\\u0000")) throw invalid("metadata", "must not contain NUL characters");
  if (ENCODER.encode(serialized).length > MAX_METADATA_BYTES) throw invalid("metadata", "must be at most 8 KiB");
  return v;
}

function idempotencyKey(header: string | null, body: string | null): string {
  const h = header?.trim() || null;
  let key: string;
  if (h !== null && body !== null && h !== body) {
    throw new ApiError(400, "idempotency_key_mismatch", "the Idempotency-Key header and idempotency_key differ");
  } else if (h !== null) {
    key = h;
  } else if (body !== null) {
    key = body;
  } else {
    throw new ApiError(
      400,
      "idempotency_key_required",
      "send an Idempotency-Key header (or idempotency_key) so a retry counts once",
    );
  }
  if (charCount(key) > MAX_KEY_CHARS || key.includes("\0")) {
    throw invalid("idempotency_key", "must be 1 to 255 characters");
  }
  return key;
}

/** shared::usage::UsageEvent::parse, then `rpc_args()`: the RPC's arguments. */
function usageRpcArgs(body: unknown, idempotencyHeader: string | null): Record<string, unknown> {
  if (!isObject(body)) throw new ApiError(422, "invalid_body", "a usage event must be a JSON object");
  for (const k in body) {
    if (!EVENT_FIELDS.has(k)) {
      throw new ApiError(422, "unknown_field", `${[...k].slice(0, 64).join("")}: not a field of a usage event`);
    }
  }
  const model = text(body, "model", MAX_MODEL_CHARS);
  if (model === null) throw invalid("model", "is required");
  const prompt = tokenCount(body, "prompt_tokens");
  const completion = tokenCount(body, "completion_tokens");
  const key = idempotencyKey(idempotencyHeader, text(body, "idempotency_key", MAX_KEY_CHARS));
  const project = optionalUuid(body, "project_id");
  const session = optionalUuid(body, "session_id");
  const reservation = optionalUuid(body, "reservation_id");
  const meta = metadata(body);
  // Key order as serde_json (without preserve_order) writes them: sorted.
  return {
    p_completion_tokens: completion,
    p_idempotency_key: key,
    p_metadata: meta,
    p_model: model,
    p_project_id: project,
    p_prompt_tokens: prompt,
    p_reservation_id: reservation,
    p_session_id: session,
  };
}

// -------------------------------------------------------------- PostgREST ---

interface Answer {
  status: number;
  body: string;
}

/** functions/src/rest.rs `send`: fetch with a timeout; no answer in time is a 503. */
async function send(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<Answer> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { method: "POST", headers, body, signal: controller.signal });
    return { status: response.status, body: await response.text() };
  } catch (e) {
    console.warn(`REST request to ${url} failed: ${e}`);
    throw unavailable();
  } finally {
    clearTimeout(timer);
  }
}

function rpcHeaders(apikey: string, bearer: string): Record<string, string> {
  return {
    apikey,
    authorization: `Bearer ${bearer}`,
    "content-type": "application/json",
    accept: "application/json",
    "content-profile": "platform",
  };
}

const TRANSIENT = new Set([
  "PGRST000", "PGRST001", "PGRST002", "PGRST003",
  "57014", "57P01", "57P02", "57P03", "40001", "40P01", "55P03",
]);

const isStableCode = (s: string) => s.length > 0 && s.length <= 64 && /^[a-z_]+$/.test(s) && s[0] !== "_";

/** shared::postgrest::map_error. */
function mapError(status: number, err: { code: string; message: string; details?: unknown; hint?: unknown }): ApiError {
  const code = err.code;
  const hint = typeof err.hint === "string" && isStableCode(err.hint) ? err.hint : undefined;
  if ((code.startsWith("PT") || code === "P0001") && hint !== undefined) {
    return new ApiError(status, hint, err.message);
  }
  if (TRANSIENT.has(code) || code.startsWith("08") || code.startsWith("53") || status === 503 || status === 504) {
    return unavailable();
  }
  return upstream(`REST ${status} ${code}: ${err.message} (details: ${err.details ?? "-"}, hint: ${err.hint ?? "-"})`);
}

/** shared::postgrest::interpret_rpc. */
function interpretRpc({ status, body }: Answer): unknown {
  if (status >= 200 && status < 300) {
    if (status === 204 || body.trim() === "") return null;
    try {
      return JSON.parse(body);
    } catch (e) {
      throw upstream(`REST answered ${status} with a body that is not JSON: ${e}`);
    }
  }
  let err: unknown;
  try {
    err = JSON.parse(body);
  } catch {
    err = undefined;
  }
  const optionalText = (v: unknown) => v === undefined || v === null || typeof v === "string";
  if (isObject(err) && typeof err.code === "string" && typeof err.message === "string" &&
      optionalText(err.details) && optionalText(err.hint)) {
    throw mapError(status, err as { code: string; message: string; details?: string; hint?: string });
  }
  if (status >= 502 && status <= 504) throw unavailable();
  throw upstream(`REST answered ${status}: ${body.slice(0, 200)}`);
}

// -------------------------------------------------------------- responses ---

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function errorResponse(err: ApiError): Response {
  if (err.logDetail) console.error(`${err.status} ${err.code}: ${err.logDetail}`);
  return json(err.status, { error: { code: err.code, message: err.message } }, err.headers);
}

/** respond::created: `replayed` moves from the body to `Idempotent-Replayed`. */
function created(result: unknown): Response {
  let replayed = false;
  if (isObject(result) && "replayed" in result) {
    replayed = result.replayed === true;
    delete result.replayed;
  }
  return json(201, result, { "idempotent-replayed": String(replayed) });
}

function requestId(supplied: string | null): string {
  const id = supplied?.trim();
  if (id && id.length <= 64 && /^[A-Za-z0-9._-]+$/.test(id)) return id;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

// ---------------------------------------------------------------- handler ---

/** handlers::usage::record for a signed-in user. */
async function recordUsage(request: Request, body: Uint8Array, cfg: Config, env: Env): Promise<Response> {
  const user = await verifyUser(bearerToken(request.headers.get("authorization")), cfg);
  await chargeUser(env, user.sub);
  const contentType = request.headers.get("content-type");
  const media = contentType?.split(";")[0].trim().toLowerCase();
  if (media !== "application/json") {
    throw new ApiError(415, "unsupported_media_type", "content type must be application/json");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(UTF8.decode(body));
  } catch (e) {
    throw new ApiError(400, "invalid_json", `request body is not valid JSON: ${(e as Error).message}`);
  }
  const args = usageRpcArgs(parsed, request.headers.get("idempotency-key"));
  const answer = await send(
    cfg.rpcUrl,
    rpcHeaders(cfg.anonKey, user.token),
    JSON.stringify(args),
    cfg.restTimeoutMs,
  );
  return created(await interpretRpc(answer));
}

/**
 * functions/src/rate_limit.rs: the verified user charged to their limiter
 * before any database call; 429 over the limit, let through (logged) when
 * the limiter itself fails. Without the binding (the self-check) nothing is
 * charged.
 */
async function chargeUser(env: Env, sub: string): Promise<void> {
  if (!env.USER_LIMITER) return;
  let outcome: { success: boolean };
  try {
    outcome = await env.USER_LIMITER.limit({ key: sub });
  } catch (e) {
    console.error(`rate limiter USER_LIMITER failed, request let through: ${e}`);
    return;
  }
  if (outcome.success !== true) {
    throw new ApiError(429, "rate_limited", `too many requests: the per-user rate limit was reached; retry after ${RATE_LIMIT_PERIOD_SECS} s`, {
      "retry-after": String(RATE_LIMIT_PERIOD_SECS),
    });
  }
}

/** functions/src/telemetry.rs: one metric row, after the response. */
async function recordMetric(cfg: Config, status: number, durationMs: number, id: string): Promise<void> {
  const t = cfg.telemetry!;
  const args = {
    p_duration_ms: Math.round(Math.max(durationMs, 0) * 1000) / 1000,
    p_function: "usage_record",
    p_http_status: status,
    p_request_id: id,
    p_status: status < 400 ? "ok" : "error",
  };
  try {
    await interpretRpc(
      await send(t.url, rpcHeaders(t.serviceRoleKey, t.serviceRoleKey), JSON.stringify(args), cfg.restTimeoutMs),
    );
  } catch (e) {
    const err = e as ApiError;
    console.warn(`metric for usage_record not recorded: ${err.code} (${err.logDetail ?? "-"})`);
  }
}

async function answer(request: Request, cfg: Config, env: Env, routed: { yes: boolean }): Promise<Response> {
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\s*\d+\s*$/.test(declared) && Number(declared) > cfg.maxBodyBytes) {
    throw new ApiError(413, "payload_too_large", `request body is larger than ${cfg.maxBodyBytes} bytes`);
  }
  const path = new URL(request.url).pathname;
  if (path !== "/v1/usage") throw new ApiError(404, "not_found", "no route for this path");
  if (request.method !== "POST") {
    throw new ApiError(405, "method_not_allowed", "method not allowed for this path", { allow: "POST" });
  }
  routed.yes = true;
  const body = new Uint8Array(await request.arrayBuffer());
  if (body.length > cfg.maxBodyBytes) {
    throw new ApiError(413, "payload_too_large", `request body is larger than ${cfg.maxBodyBytes} bytes`);
  }
  return recordUsage(request, body, cfg, env);
}

// Calibration for the benchmark table: what the runtime itself costs under
// wrangler dev, with no work of ours. `/__bench/noop` answers at once;
// `/__bench/subrequest` makes one fetch to the REST layer's root (a cheap
// answer) and returns its status.
async function calibration(path: string, env: Env): Promise<Response | null> {
  if (path === "/__bench/noop") return new Response(null, { status: 204 });
  if (path === "/__bench/subrequest") {
    const upstream = await fetch(`${env.SUPABASE_URL}/rest/v1/`);
    await upstream.arrayBuffer();
    return new Response(null, { status: upstream.status < 500 ? 204 : 502 });
  }
  return null;
}

export default {
  async fetch(request: Request, env: Env, ctx: Ctx): Promise<Response> {
    const calibrated = await calibration(new URL(request.url).pathname, env);
    if (calibrated) return calibrated;
    const started = Date.now();
    const id = requestId(request.headers.get("x-request-id"));
    let response: Response;
    try {
      const cfg = config(env);
      const routed = { yes: false };
      try {
        response = await answer(request, cfg, env, routed);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        response = errorResponse(e);
      }
      // The Rust Worker always varies by Origin (no CORS for the benchmark's calls).
      response.headers.set("vary", "Origin");
      if (routed.yes && cfg.telemetry) {
        ctx.waitUntil(recordMetric(cfg, response.status, Date.now() - started, id));
      }
    } catch (e) {
      response =
        e instanceof ApiError
          ? errorResponse(e)
          : errorResponse(new ApiError(500, "internal_error", "internal error", {}, String(e)));
    }
    response.headers.set("x-request-id", id);
    return response;
  },
};

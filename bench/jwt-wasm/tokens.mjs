// Makes what the JWT benchmark harness verifies: keys as Supabase has them
// (a legacy HS256 secret, one ES256 P-256 key, one RS256 2048-bit key, the
// public ones as a JWKS with the members Supabase publishes) and one
// signed-in user's access token per algorithm, signed with `node:crypto`,
// plus one forged token per algorithm the harness must refuse. Prints the
// body of the harness's `POST /setup` as one line of JSON.
//
// Usage: node bench/jwt-wasm/tokens.mjs <issuer>

import crypto from "node:crypto";

const ISSUER = process.argv[2] ?? "http://127.0.0.1:54321/auth/v1";
const SUB = crypto.randomUUID();
const b64url = (value) => Buffer.from(value).toString("base64url");

function makeKeys() {
  const es = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const rs = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
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
    jwks: { keys: [jwk(es.publicKey, esKid, "ES256"), jwk(rs.publicKey, rsKid, "RS256")] },
  };
}

/** A signed-in user's claims as Supabase Auth issues them (about 1 KiB as a token). */
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

const now = Math.floor(Date.now() / 1000);
const keys = makeKeys();
const payload = claims(now);
const others = makeKeys();
const algs = ["HS256", "ES256", "RS256"];
// Forged: signed with other keys under the published kids.
const forgedKeys = {
  secret: `${keys.secret}x`,
  es: { ...others.es, kid: keys.es.kid },
  rs: { ...others.rs, kid: keys.rs.kid },
};
console.log(
  JSON.stringify({
    secret: keys.secret,
    jwks: keys.jwks,
    issuer: ISSUER,
    sub: SUB,
    now,
    tokens: Object.fromEntries(algs.map((alg) => [alg, sign(alg, keys, payload)])),
    forged: Object.fromEntries(algs.map((alg) => [alg, sign(alg, forgedKeys, payload)])),
  }),
);

// Reference implementations we did not write, driven by the end-to-end tests
// so the Worker's verifiers are checked against them: `jose` (keys, JWKs and
// JWS signing) and `standardwebhooks` (Supabase Auth hook signatures).
//
// Reads one JSON request on stdin and writes one JSON answer on stdout:
//   {"op": "generate_key", "alg": "ES256" | "RS256", "kid": "..."}
//     -> {"private_jwk": {...}, "public_jwk": {..., "kid", "alg", "use": "sig"}}
//   {"op": "sign_jwt", "alg": "ES256" | "RS256", "private_jwk": {...},
//    "header": {...}, "claims": {...}}
//     -> {"token": "..."}
//   {"op": "sign_webhook", "secret": "v1,whsec_...", "id": "...",
//    "timestamp": <unix seconds>, "payload": "<raw body>"}
//     -> {"signature": "v1,..."}
import { exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";
import { Webhook } from "standardwebhooks";

async function generateKey({ alg, kid }) {
  const { publicKey, privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === "RS256" ? { modulusLength: 2048 } : {}),
  });
  const public_jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  const private_jwk = { ...(await exportJWK(privateKey)), kid, alg };
  return { private_jwk, public_jwk };
}

async function signJwt({ alg, private_jwk, header, claims }) {
  const key = await importJWK(private_jwk, alg);
  const token = await new SignJWT(claims)
    .setProtectedHeader({ ...header, alg })
    .sign(key);
  return { token };
}

function signWebhook({ secret, id, timestamp, payload }) {
  // As Supabase's own examples do: drop the `v1,whsec_` framing and hand the
  // library the base64 key.
  const webhook = new Webhook(secret.replace("v1,whsec_", ""));
  return { signature: webhook.sign(id, new Date(timestamp * 1000), payload) };
}

const ops = {
  generate_key: generateKey,
  sign_jwt: signJwt,
  sign_webhook: signWebhook,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
const op = ops[request.op];
if (!op) {
  console.error(`unknown op ${request.op}`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(await op(request)));

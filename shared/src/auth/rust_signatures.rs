//! ES256 and RS256 signatures checked with RustCrypto (`p256`, `rsa`): the
//! signature step of [`Verifier::verify`](super::Verifier::verify) in tests,
//! fuzzing and native tools. Not compiled for wasm: the Worker asks
//! WebCrypto (`functions/src/webcrypto.rs`), so its module carries no
//! elliptic-curve or big-number code.

use super::jwks::PublicKey;
use super::jwt::{SignatureAlg, SignatureCheck};
use p256::ecdsa::signature::Verifier as _;

/// Whether `check.signature` is valid; a key that cannot be built (a point
/// off the curve, an exponent `rsa` refuses) verifies nothing.
pub fn verify(check: &SignatureCheck<'_>) -> bool {
    match (check.alg, check.key) {
        (SignatureAlg::Es256, PublicKey::Es256 { x, y }) => {
            let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
            let Ok(key) = p256::ecdsa::VerifyingKey::from_encoded_point(&point) else {
                return false;
            };
            let Ok(signature) = p256::ecdsa::Signature::from_slice(check.signature) else {
                return false;
            };
            key.verify(check.message, &signature).is_ok()
        }
        (SignatureAlg::Rs256, PublicKey::Rs256 { n, e }) => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            );
            let Ok(key) = key else {
                return false;
            };
            let Ok(signature) = rsa::pkcs1v15::Signature::try_from(check.signature) else {
                return false;
            };
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
                .verify(check.message, &signature)
                .is_ok()
        }
        // `Verifier::start` pairs an algorithm only with a key of its type.
        _ => false,
    }
}

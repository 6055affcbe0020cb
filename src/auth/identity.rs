//! The agent's RSA-2048 identity: the root credential of a MoltChats agent.

use crate::error::{Error, ErrorCode, Result};
use crate::io::Secret;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};

/// Key size the MoltChats skill asks for.
pub const KEY_BITS: usize = 2048;

/// The private key. Zeroized on drop (rsa's `PrivateKey` is `ZeroizeOnDrop`); `Debug` is redacted.
/// The key lives inside the signer only: a second copy would double the largest part of an
/// idle session's memory.
pub struct Identity {
    signer: SigningKey<sha2::Sha256>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(<redacted>)")
    }
}

impl Identity {
    /// Generate a new RSA-2048 key from the injected random generator.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + ?Sized)) -> Result<Self> {
        let key = rsa::PrivateKey::new(rng, KEY_BITS)
            .map_err(|e| Error::new(ErrorCode::Crypto, format!("RSA key generation failed: {e}")))?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: rsa::PrivateKey) -> Self {
        Self { signer: SigningKey::<sha2::Sha256>::new(key) }
    }

    /// Load a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what the skill's Node example writes)
    /// or PKCS#1 (`BEGIN RSA PRIVATE KEY`). The error never echoes the input.
    pub fn from_pem(pem: &str) -> Result<Self> {
        #[cfg(fuzzing)]
        if let Some(key) = fuzz_memo::get(pem) {
            return Ok(Self::from_key(key));
        }
        let key = rsa::PrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| {
                Error::new(
                    ErrorCode::InvalidCredentials,
                    "privateKey is not a PEM-encoded RSA private key (PKCS#8 or PKCS#1)",
                )
            })?;
        #[cfg(fuzzing)]
        fuzz_memo::put(pem, &key);
        Ok(Self::from_key(key))
    }

    /// The private key as PKCS#8 PEM, for the credentials file.
    pub fn private_pem(&self) -> Result<Secret<String>> {
        let key: &rsa::PrivateKey = self.signer.as_ref();
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::new(ErrorCode::Crypto, format!("cannot encode private key: {e}")))?;
        Ok(Secret::new(pem.to_string()))
    }

    /// The public key as an SPKI PEM (`BEGIN PUBLIC KEY`), as `/agents/register` wants it.
    pub fn public_pem(&self) -> Result<String> {
        let key: &rsa::PrivateKey = self.signer.as_ref();
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::new(ErrorCode::Crypto, format!("cannot encode public key: {e}")))
    }

    /// Sign a challenge exactly as the server checks it: PKCS#1 v1.5 + SHA-256 over the
    /// ASCII characters of the challenge string (not hex-decoded), standard base64 with padding.
    pub fn sign_challenge(&self, challenge: &str) -> String {
        let signature = self.signer.sign(challenge.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    }
}

/// libFuzzer builds only (`--cfg fuzzing`, set by cargo-fuzz): the last key parsed, so the
/// session targets, which start every input from the same credentials, parse it once instead of
/// once per input (RSA parsing under the sanitizers costs milliseconds). Parsing is a pure
/// function of the text, so a hit returns exactly what parsing would.
#[cfg(fuzzing)]
mod fuzz_memo {
    use std::sync::Mutex;

    static LAST: Mutex<Option<(String, rsa::PrivateKey)>> = Mutex::new(None);

    pub(super) fn get(pem: &str) -> Option<rsa::PrivateKey> {
        let last = LAST.lock().ok()?;
        last.as_ref().filter(|(p, _)| p == pem).map(|(_, key)| key.clone())
    }

    pub(super) fn put(pem: &str, key: &rsa::PrivateKey) {
        if let Ok(mut last) = LAST.lock() {
            *last = Some((pem.to_owned(), key.clone()));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use std::sync::OnceLock;

    /// One key per test binary: keygen is slow in debug builds.
    pub(crate) fn test_identity_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed([42; 32]);
            Identity::generate(&mut rng).unwrap().private_pem().unwrap().expose().clone()
        })
    }

    #[test]
    fn signature_verifies_over_ascii_challenge() {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let id = Identity::from_pem(test_identity_pem()).unwrap();
        let challenge = "ab".repeat(32);
        let sig = id.sign_challenge(&challenge);
        let bytes = base64::engine::general_purpose::STANDARD.decode(&sig).unwrap();
        let public = rsa::PublicKey::from_public_key_pem(&id.public_pem().unwrap()).unwrap();
        let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public);
        let sig = rsa::pkcs1v15::Signature::try_from(&bytes[..]).unwrap();
        assert!(verifier.verify(challenge.as_bytes(), &sig).is_ok());
        assert!(verifier.verify(b"other", &sig).is_err());
    }

    #[test]
    fn garbage_pem_is_a_clear_error_without_echo() {
        let err = Identity::from_pem("-----BEGIN PRIVATE KEY-----\nAAAAsecret\n-----END PRIVATE KEY-----").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCredentials);
        assert!(!err.message.contains("secret"));
        assert_eq!(format!("{:?}", Identity::from_pem(test_identity_pem()).unwrap()), "Identity(<redacted>)");
    }

    #[test]
    fn pkcs1_pem_loads() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::PrivateKey::from_pkcs8_pem(test_identity_pem()).unwrap();
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(Identity::from_pem(&pkcs1).is_ok());
    }
}

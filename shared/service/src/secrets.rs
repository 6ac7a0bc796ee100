//! API key secrets at rest, and the server's own MACs (list cursors).
//!
//! The HMAC secret of a key must be recoverable (the server recomputes signatures), so it cannot
//! be hashed like a password. It is stored encrypted with AES-256-GCM under a 32-byte master key
//! that is not in the table: in production an SSM SecureString (KMS-encrypted) named by
//! `API_KEY_MASTER_KEY_PARAM`, read once per cold start. A dump of the keys table alone holds only
//! ciphertexts, each bound to its key id (the id is the AEAD's associated data, so a ciphertext
//! copied onto another key id does not decrypt).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("master key must be base64 of exactly 32 bytes")]
    BadMasterKey,
    #[error("stored secret does not decrypt with this master key")]
    Undecryptable,
}

impl MasterKey {
    /// From the base64 text stored in SSM (32 random bytes).
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretError> {
        let raw = STANDARD.decode(text.trim()).map_err(|_| SecretError::BadMasterKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| SecretError::BadMasterKey)?;
        Ok(MasterKey { bytes })
    }

    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).expect("the OS random source works");
        MasterKey { bytes }
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.bytes).expect("32-byte key")
    }

    /// `base64(nonce || ciphertext)` of `secret`, bound to `key_id`.
    pub fn encrypt_secret(&self, key_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).expect("the OS random source works");
        let ct = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: key_id.as_bytes() })
            .expect("AES-GCM encryption cannot fail for short inputs");
        let mut out = nonce.to_vec();
        out.extend(ct);
        STANDARD.encode(out)
    }

    pub fn decrypt_secret(&self, key_id: &str, stored: &str) -> Result<String, SecretError> {
        let raw = STANDARD.decode(stored).map_err(|_| SecretError::Undecryptable)?;
        if raw.len() < 12 + 16 {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: key_id.as_bytes() })
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }

    /// An HMAC under a key derived from the master key for `purpose`, URL-safe base64.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> String {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes).expect("any key length");
        derive.update(purpose.as_bytes());
        let sub = derive.finalize().into_bytes();
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&sub).expect("any key length");
        m.update(data);
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }
}

/// A fresh API key id and secret: `pk_` + 16 hex, and 40 random URL-safe characters.
pub fn new_key_pair() -> (crate::ids::KeyId, String) {
    let mut secret = [0u8; 30];
    getrandom::getrandom(&mut secret).expect("the OS random source works");
    (crate::ids::KeyId::random(), URL_SAFE_NO_PAD.encode(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_are_bound_to_their_key_id() {
        let m = MasterKey::generate();
        let stored = m.encrypt_secret("pk_a", "s3cret");
        assert_ne!(stored, m.encrypt_secret("pk_a", "s3cret"), "fresh nonce each time");
        assert_eq!(m.decrypt_secret("pk_a", &stored).unwrap(), "s3cret");
        assert_eq!(m.decrypt_secret("pk_b", &stored), Err(SecretError::Undecryptable));
        assert_eq!(MasterKey::generate().decrypt_secret("pk_a", &stored), Err(SecretError::Undecryptable));
        assert!(!stored.contains("s3cret"));
    }

    #[test]
    fn master_key_parses_only_32_bytes() {
        let m = MasterKey::generate();
        assert!(MasterKey::from_base64(&m.to_base64()).is_ok());
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").unwrap_err(), SecretError::BadMasterKey);
    }

    #[test]
    fn key_pairs_look_right() {
        let (id, secret) = new_key_pair();
        assert!(id.as_str().starts_with("pk_") && id.as_str().len() == 19);
        assert_eq!(secret.len(), 40);
    }
}

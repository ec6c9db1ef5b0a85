//! Personal data (ID numbers, phones): a keyed hash for lookup and an AES-256-GCM encrypted
//! copy only the funding bank may read. Raw values never reach logs or plain columns.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use std::path::Path;

pub struct PiiKeys {
    hash_key: [u8; 32],
    cipher: Aes256Gcm,
}

impl fmt::Debug for PiiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiKeys(***)")
    }
}

const NONCE_LEN: usize = 12;

fn parse_key(hex_key: &str, name: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_key.trim()).map_err(|_| anyhow::anyhow!("pii.{name} must be 64 hex characters"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("pii.{name} must be 64 hex characters (32 bytes)"))
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    k
}

impl PiiKeys {
    pub fn new(hash_key: [u8; 32], encryption_key: [u8; 32]) -> PiiKeys {
        PiiKeys { hash_key, cipher: Aes256Gcm::new(&encryption_key.into()) }
    }

    /// Keys from configuration; where empty, generated once and kept in `<data_dir>/pii-keys.toml` (0600).
    pub fn load(settings: &crate::config::PiiSettings, data_dir: &Path) -> anyhow::Result<PiiKeys> {
        if !settings.hash_key.is_empty() && !settings.encryption_key.is_empty() {
            return Ok(PiiKeys::new(
                parse_key(settings.hash_key.expose(), "hash_key")?,
                parse_key(settings.encryption_key.expose(), "encryption_key")?,
            ));
        }
        let file = data_dir.join("pii-keys.toml");
        if !file.exists() {
            std::fs::create_dir_all(data_dir)?;
            let text = format!("hash_key = \"{}\"\nencryption_key = \"{}\"\n", hex::encode(random_key()), hex::encode(random_key()));
            write_private(&file, &text)?;
            tracing::warn!(file = %file.display(), "generated PII keys for this data directory; configure pii.* in production and keep them safe");
        }
        let text = std::fs::read_to_string(&file)?;
        let table: toml_like::Keys = toml_like::parse(&text).ok_or_else(|| anyhow::anyhow!("{} is damaged", file.display()))?;
        let hash = if settings.hash_key.is_empty() { table.hash_key } else { settings.hash_key.expose().to_string() };
        let enc = if settings.encryption_key.is_empty() { table.encryption_key } else { settings.encryption_key.expose().to_string() };
        Ok(PiiKeys::new(parse_key(&hash, "hash_key")?, parse_key(&enc, "encryption_key")?))
    }

    /// The lookup hash (HMAC-SHA256 under the hash key), hex.
    pub fn lookup_hash(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// nonce ‖ ciphertext+tag.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self.cipher.encrypt(Nonce::from_slice(&nonce), plaintext).expect("AES-GCM encryption of a small buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher.decrypt(Nonce::from_slice(nonce), body).ok()
    }
}

pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The two-line key file; not worth a TOML dependency of its own.
mod toml_like {
    pub struct Keys {
        pub hash_key: String,
        pub encryption_key: String,
    }

    pub fn parse(text: &str) -> Option<Keys> {
        let get = |name: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        };
        Some(Keys { hash_key: get("hash_key")?, encryption_key: get("encryption_key")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_keyed_and_encryption_round_trips() {
        let a = PiiKeys::new([1; 32], [2; 32]);
        let b = PiiKeys::new([3; 32], [2; 32]);
        assert_eq!(a.lookup_hash("110101199003071234"), a.lookup_hash("110101199003071234"));
        assert_ne!(a.lookup_hash("110101199003071234"), b.lookup_hash("110101199003071234"));
        let sealed = a.encrypt(b"13812345678");
        assert!(!sealed.windows(11).any(|w| w == b"13812345678"));
        assert_eq!(a.decrypt(&sealed).unwrap(), b"13812345678");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(a.decrypt(&tampered).is_none());
    }

    #[test]
    fn generated_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::PiiSettings { hash_key: Default::default(), encryption_key: Default::default() };
        let a = PiiKeys::load(&settings, dir.path()).unwrap();
        let b = PiiKeys::load(&settings, dir.path()).unwrap();
        assert_eq!(a.lookup_hash("x"), b.lookup_hash("x"));
        let sealed = a.encrypt(b"y");
        assert_eq!(b.decrypt(&sealed).unwrap(), b"y");
    }
}

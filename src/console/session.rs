//! The console's session: a cookie signed with the console key (HMAC-SHA256), holding who signed
//! in (the admin key's id, or the bootstrap key), when, until when, and a random nonce from which
//! the session's CSRF token is derived. Nothing is stored server-side: a session ends when the
//! cookie expires (8 hours), is removed by sign-out, or its key is revoked (checked on every request).

use crate::auth::secrets_equal;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The cookie's name.
pub const COOKIE: &str = "cp_session";

/// How long a session lasts from sign-in.
pub const LIFETIME_HOURS: i64 = 8;

/// The key signing session cookies (and deriving CSRF tokens).
pub struct ConsoleKey([u8; 32]);

impl std::fmt::Debug for ConsoleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleKey(***)")
    }
}

impl ConsoleKey {
    pub fn new(bytes: [u8; 32]) -> ConsoleKey {
        ConsoleKey(bytes)
    }

    /// From configuration; when empty, generated once into `<data_dir>/console-key.toml` (0600),
    /// as the PII keys are, so sessions outlive a restart.
    pub fn load(settings: &crate::config::ConsoleSettings, data_dir: &Path) -> anyhow::Result<ConsoleKey> {
        let text = if settings.session_key.is_empty() {
            let file = data_dir.join("console-key.toml");
            if !file.exists() {
                std::fs::create_dir_all(data_dir)?;
                let mut k = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                crate::pii::write_private(&file, &format!("session_key = \"{}\"\n", hex::encode(k)))?;
                tracing::warn!(file = %file.display(), "generated the console's session key for this data directory; configure console.session_key in production");
            }
            let stored = std::fs::read_to_string(&file)?;
            stored.split('"').nth(1).map(str::to_string).ok_or_else(|| anyhow::anyhow!("{} is damaged", file.display()))?
        } else {
            settings.session_key.expose().to_string()
        };
        let bytes = hex::decode(text.trim()).map_err(|_| anyhow::anyhow!("console.session_key must be 64 hex characters"))?;
        Ok(ConsoleKey(bytes.try_into().map_err(|_| anyhow::anyhow!("console.session_key must be 64 hex characters (32 bytes)"))?))
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
            mac.update(b"\x00");
        }
        mac
    }
}

/// Who signed in: an admin key by its id, or the bootstrap key of the configuration, known by a
/// prefix of its hash (so that changing that key ends its sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Key(String),
    Bootstrap(String),
}

impl Signer {
    /// The bootstrap key as a session names it.
    pub fn bootstrap(admin_key: &str) -> Signer {
        Signer::Bootstrap(hex::encode(&Sha256::digest(admin_key.as_bytes())[..8]))
    }

    /// The actor of the audit log: `admin:<key id>`, or `admin:bootstrap`.
    pub fn actor(&self) -> String {
        match self {
            Signer::Key(id) => format!("admin:{id}"),
            Signer::Bootstrap(_) => "admin:bootstrap".to_string(),
        }
    }
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub signer: Signer,
    pub expires_at: DateTime<Utc>,
    nonce: String,
}

impl Session {
    /// A new session for `signer` at `now`.
    pub fn start(signer: Signer, now: DateTime<Utc>) -> Session {
        let mut n = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut n);
        Session { signer, expires_at: now + Duration::hours(LIFETIME_HOURS), nonce: hex::encode(n) }
    }

    fn payload(&self) -> String {
        let (kind, id) = match &self.signer {
            Signer::Key(id) => ("k", id.as_str()),
            Signer::Bootstrap(h) => ("b", h.as_str()),
        };
        format!("v1|{kind}|{id}|{}|{}", self.expires_at.timestamp(), self.nonce)
    }

    /// The cookie's value: the payload in base64url, a dot, its signature in hex.
    pub fn seal(&self, key: &ConsoleKey) -> String {
        let payload = self.payload();
        let sig = key.mac(&[b"session", payload.as_bytes()]).finalize().into_bytes();
        format!("{}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload), hex::encode(sig))
    }

    /// The session a cookie holds, when its signature is the console key's and it has not expired
    /// at `now`; anything else (tampered, foreign, expired, malformed) is no session.
    pub fn open(value: &str, key: &ConsoleKey, now: DateTime<Utc>) -> Option<Session> {
        let (payload_b64, sig_hex) = value.split_once('.')?;
        let payload = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload_b64).ok()?).ok()?;
        let sig = hex::decode(sig_hex).ok()?;
        key.mac(&[b"session", payload.as_bytes()]).verify_slice(&sig).ok()?;
        let mut parts = payload.split('|');
        let (version, kind, id, expires, nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "v1" || parts.next().is_some() {
            return None;
        }
        let signer = match kind {
            "k" => Signer::Key(id.to_string()),
            "b" => Signer::Bootstrap(id.to_string()),
            _ => return None,
        };
        let expires_at = DateTime::from_timestamp(expires.parse().ok()?, 0)?;
        (now < expires_at).then(|| Session { signer, expires_at, nonce: nonce.to_string() })
    }

    /// The CSRF token of this session: every state-changing form carries it.
    pub fn csrf(&self, key: &ConsoleKey) -> String {
        hex::encode(key.mac(&[b"csrf", self.nonce.as_bytes()]).finalize().into_bytes())
    }

    pub fn csrf_ok(&self, key: &ConsoleKey, token: &str) -> bool {
        secrets_equal(self.csrf(key).as_bytes(), token.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let key = ConsoleKey::new([7; 32]);
        let now = at("2027-01-31T04:00:00Z");
        let s = Session::start(Signer::Key("key_abc".into()), now);
        let sealed = s.seal(&key);
        assert_eq!(Session::open(&sealed, &key, now), Some(s.clone()));
        assert_eq!(Session::open(&sealed, &key, now + Duration::hours(8) - Duration::seconds(1)), Some(s.clone()));
        assert_eq!(Session::open(&sealed, &key, now + Duration::hours(8)), None, "8 hours");
        assert_eq!(Session::open(&sealed, &ConsoleKey::new([8; 32]), now), None, "another key");
    }

    #[test]
    fn a_tampered_cookie_is_no_session() {
        let key = ConsoleKey::new([7; 32]);
        let now = at("2027-01-31T04:00:00Z");
        let sealed = Session::start(Signer::bootstrap("admin"), now).seal(&key);
        let (payload, sig) = sealed.split_once('.').unwrap();
        let text = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let longer = text.replace(&format!("|{}|", (now + Duration::hours(8)).timestamp()), "|4102444800|");
        let forged = format!("{}.{sig}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(longer));
        assert_eq!(Session::open(&forged, &key, now), None);
        for garbage in ["", ".", "x.y", &sealed[..sealed.len() - 2]] {
            assert_eq!(Session::open(garbage, &key, now), None, "{garbage}");
        }
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let key = ConsoleKey::new([7; 32]);
        let now = at("2027-01-31T04:00:00Z");
        let (a, b) = (Session::start(Signer::Key("k1".into()), now), Session::start(Signer::Key("k1".into()), now));
        assert!(a.csrf_ok(&key, &a.csrf(&key)));
        assert!(!a.csrf_ok(&key, &b.csrf(&key)));
        assert!(!a.csrf_ok(&key, ""));
        assert_eq!(Signer::Key("key_1".into()).actor(), "admin:key_1");
    }
}

//! Who is calling: API keys, principals and the 401 / 403 / 404 rules of API.md section 1.

use crate::error::{ApiError, ApiResult};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    Admin,
    Store,
    Partner,
    Bank,
    Provider,
}

impl PrincipalKind {
    pub const ALL: [PrincipalKind; 5] =
        [PrincipalKind::Admin, PrincipalKind::Store, PrincipalKind::Partner, PrincipalKind::Bank, PrincipalKind::Provider];

    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Admin => "admin",
            PrincipalKind::Store => "store",
            PrincipalKind::Partner => "partner",
            PrincipalKind::Bank => "bank",
            PrincipalKind::Provider => "provider",
        }
    }

    pub fn parse(s: &str) -> Option<PrincipalKind> {
        PrincipalKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A caller: the admin, or a store / partner / bank / provider with its id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    kind: PrincipalKind,
    id: Option<String>,
}

impl Principal {
    pub fn admin() -> Principal {
        Principal { kind: PrincipalKind::Admin, id: None }
    }

    /// A principal of a non-admin kind needs an id; the admin has none.
    pub fn new(kind: PrincipalKind, id: Option<String>) -> Option<Principal> {
        match (kind, id) {
            (PrincipalKind::Admin, None) => Some(Principal::admin()),
            (PrincipalKind::Admin, Some(_)) | (_, None) => None,
            (kind, Some(id)) => Some(Principal { kind, id: Some(id) }),
        }
    }

    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn is_admin(&self) -> bool {
        self.kind == PrincipalKind::Admin
    }

    /// `true` for this kind with this id.
    pub fn is(&self, kind: PrincipalKind, id: &str) -> bool {
        self.kind == kind && self.id.as_deref() == Some(id)
    }

    /// The id when the caller is of `kind`.
    pub fn id_if(&self, kind: PrincipalKind) -> Option<&str> {
        if self.kind == kind { self.id.as_deref() } else { None }
    }

    /// The idempotency and rate scope: `admin`, `store:st-1`, ...
    pub fn scope(&self) -> String {
        match &self.id {
            Some(id) => format!("{}:{id}", self.kind.as_str()),
            None => self.kind.as_str().to_string(),
        }
    }

    /// 403 unless the caller is one of `kinds`.
    pub fn require(&self, kinds: &[PrincipalKind]) -> ApiResult<()> {
        if kinds.contains(&self.kind) { Ok(()) } else { Err(ApiError::forbidden()) }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"kind": self.kind.as_str(), "id": self.id})
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scope())
    }
}

/// The authenticated caller of a request, put in the request's extensions by the auth middleware.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// `None` for the bootstrap admin key.
    pub key_id: Option<String>,
    /// The key's own rate, when set at creation.
    pub rate_limit_per_minute: Option<u32>,
}

/// A new API key: 256 random bits, shown once. Only its SHA-256 is stored.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("cpk_{}", hex::encode(bytes))
}

/// The stored form of a key. Keys carry 256 bits of entropy, so an unsalted hash is enough.
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Constant-time equality for secrets.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An engine object id with its prefix and 80 random bits in lowercase base32 (`ord_…`).
pub fn new_object_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let mut out = String::with_capacity(prefix.len() + 17);
    out.push_str(prefix);
    out.push('_');
    for i in (0..16).rev() {
        out.push(ALPHABET[((bits >> (i * 5)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals() {
        assert!(Principal::new(PrincipalKind::Admin, Some("x".into())).is_none());
        assert!(Principal::new(PrincipalKind::Bank, None).is_none());
        let bank = Principal::new(PrincipalKind::Bank, Some("b1".into())).unwrap();
        assert_eq!(bank.scope(), "bank:b1");
        assert!(bank.require(&[PrincipalKind::Bank]).is_ok());
        assert!(bank.require(&[PrincipalKind::Admin]).is_err());
    }

    #[test]
    fn keys_and_ids() {
        let k = generate_api_key();
        assert_eq!(k.len(), 4 + 64);
        assert_ne!(k, generate_api_key());
        assert_eq!(hash_api_key(&k), hash_api_key(&k));
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        let id = new_object_id("ord");
        assert!(id.starts_with("ord_") && id.len() == 20);
    }
}

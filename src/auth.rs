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

/// The alphabet of object ids: lowercase base32 without `i`, `l`, `o`, `u` (Crockford's).
const ID_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// An engine object id (`ord_…`): its prefix, then the creation time in milliseconds (10
/// characters) and 80 random bits (16 characters), in lowercase base32, as a ULID is.
///
/// Why the time first (docs/SCALING.md, the path past one primary): ids created in a later millisecond sort later,
/// so lists can merge across shards by id instead of a per-node sequence, and index inserts land at
/// the right edge of the B-tree instead of a random page. The 80 random bits keep ids unguessable
/// as before. It reads the system clock rather than the service's injectable one: an id's time is
/// when it was made, whatever business date a test pretends it is.
pub fn new_object_id(prefix: &str) -> String {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    object_id(prefix, now_ms, bytes)
}

fn object_id(prefix: &str, time_ms: u128, random: [u8; 10]) -> String {
    // 48 bits of milliseconds last until the year 10889; 10 characters hold 50 bits.
    let time_ms = time_ms & ((1 << 48) - 1);
    let random = random.iter().fold(0u128, |bits, b| (bits << 8) | u128::from(*b));
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    let digits = (0..10).rev().map(|i| (time_ms >> (i * 5)) & 31).chain((0..16).rev().map(|i| (random >> (i * 5)) & 31));
    out.extend(digits.map(|d| ID_ALPHABET[d as usize] as char));
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
        assert!(id.starts_with("ord_") && id.len() == 30, "{id}");
        assert!(id[4..].bytes().all(|b| ID_ALPHABET.contains(&b)));
    }

    #[test]
    fn object_ids_sort_by_time_then_random_bits() {
        let id = |ms: u128, r: u8| object_id("ord", ms, [r; 10]);
        assert_eq!(id(0, 0), "ord_00000000000000000000000000");
        assert_eq!(id((1 << 48) - 1, 255), "ord_7zzzzzzzzzzzzzzzzzzzzzzzzz");
        // A later millisecond sorts after every id of an earlier one, whatever its random bits.
        let (earlier, later) = (id(1_796_000_000_000, 255), id(1_796_000_000_001, 0));
        assert!(earlier < later, "{earlier} < {later}");
        assert!(id(5, 1) < id(5, 2));
        // Made now, ids sort in the order they were made (a millisecond apart).
        let first = new_object_id("ord");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(first < new_object_id("ord"));
    }
}

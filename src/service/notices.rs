//! Notices for the admin (API.md section 7): the delivery list, redelivery, and the webhook
//! signature every delivery carries (Stripe's scheme, so receivers can verify it the same way).

use super::Deps;
use crate::db::notices::{self as db, AdminNotice, seq_of_id};
use crate::domain::status::NoticeState;
use crate::error::{ApiError, ApiResult};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Delivery states a notice can be in, as `?state=` names them.
pub const STATES: &[&str] = NoticeState::NAMES;

/// `CreditPhone-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// The `v1` value: lowercase hex of HMAC-SHA256 keyed with the UTF-8 bytes of the secret.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `bank:<id>` or `provider:<id>` (any principal kind that receives notices).
pub fn parse_recipient(s: &str) -> Option<(&str, &str)> {
    let (kind, id) = s.split_once(':')?;
    matches!(kind, "bank" | "provider" | "store" | "partner").then_some(())?;
    (!id.is_empty() && id.len() <= 64).then_some((kind, id))
}

#[tracing::instrument(skip_all)]
pub async fn list(
    state: &Deps,
    delivery_state: Option<&str>,
    recipient: Option<(&str, &str)>,
    after_seq: i64,
    limit: i64,
) -> ApiResult<Vec<AdminNotice>> {
    // The caller checked the state against `STATES`, the same names: this cannot fail.
    let delivery_state = delivery_state
        .map(str::parse::<NoticeState>)
        .transpose()
        .map_err(|e| ApiError::internal_because("Failed to list notices by delivery state", e))?;
    let client = state.pool.get().await?;
    Ok(db::list_admin(&**client, delivery_state, recipient, after_seq, limit).await?)
}

/// One notice with its delivery state (admin); `404` for an id that names none.
pub async fn get(state: &Deps, id: &str) -> ApiResult<AdminNotice> {
    let seq = seq_of_id(id).ok_or_else(ApiError::not_found)?;
    let client = state.pool.get().await?;
    db::get_admin(&**client, seq).await?.ok_or_else(ApiError::not_found)
}

/// Where a feed page starts: a position from its cursor, or the notice given as `after` (its
/// `seq`), or the start.
pub enum FeedStart {
    Cursor(i64),
    AfterNotice(i64),
    Start,
}

/// A page of the notice feed (API.md §7): `recipient`'s notices (`None`: all, for the admin) in
/// position order after `start`, at most `limit`. The notices committed since the last call are
/// positioned first, so a page never skips one that committed late.
#[tracing::instrument(skip_all)]
pub async fn feed(state: &Deps, recipient: Option<(&str, &str)>, start: FeedStart, limit: i64) -> ApiResult<Vec<db::Notice>> {
    let mut client = state.pool.get().await?;
    db::position_new(&mut client).await?;
    let after_pos = match start {
        FeedStart::Cursor(pos) => pos,
        FeedStart::AfterNotice(seq) => db::position_after(&**client, seq).await?,
        FeedStart::Start => 0,
    };
    Ok(db::feed(&**client, recipient, after_pos, limit).await?)
}

/// Makes a notice due again from attempt one. Only where the recipient has a webhook URL now
/// (a `pull_only` notice too, once its recipient has one); otherwise `409 invalid_state`.
#[tracing::instrument(skip_all, fields(notice_id = %id))]
pub async fn redeliver(state: &Deps, id: &str) -> ApiResult<AdminNotice> {
    let seq = seq_of_id(id).ok_or_else(ApiError::not_found)?;
    let mut client = state.pool.get().await?;
    let tx = crate::db::Tx::begin(&mut client).await?;
    let (notice, url) = db::lock_with_url(&tx, seq).await?.ok_or_else(ApiError::not_found)?;
    if url.is_none() {
        let recipient = &notice.notice.recipient;
        return Err(ApiError::invalid_state(format!(
            "the recipient {}:{} has no webhook_url to deliver to; it reads its notices from GET /v1/notices",
            recipient["kind"].as_str().unwrap_or_default(),
            recipient["id"].as_str().unwrap_or_default()
        ))
        .details(serde_json::json!({ "state": notice.state })));
    }
    let notice = db::reset_for_redelivery(&tx, seq).await?;
    tx.commit().await?;
    tracing::info!(notice_id = %notice.notice.id, previous_state = %notice.state, "notice queued for redelivery");
    Ok(notice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Computed with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_test'
        let sig = signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(sig, "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
        assert_eq!(signature_header("whsec_test", 1_700_000_000, br#"{"a":1}"#), format!("t=1700000000,v1={sig}"));
        assert_ne!(sig, signature("whsec_other", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(sig, signature("whsec_test", 1_700_000_001, br#"{"a":1}"#));
    }

    #[test]
    fn recipients_parse() {
        assert_eq!(parse_recipient("bank:bk-1"), Some(("bank", "bk-1")));
        assert_eq!(parse_recipient("provider:wld"), Some(("provider", "wld")));
        assert_eq!(parse_recipient("admin:x"), None);
        assert_eq!(parse_recipient("bank:"), None);
        assert_eq!(parse_recipient("bank"), None);
    }
}

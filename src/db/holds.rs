//! A hold's confirmation by its provider (API.md §12): the pending holds, the provider's order
//! numbers (unique per provider for ever), acknowledgement, confirmation and decline. The hold's
//! balances are not written here: a pending hold is placed like any other, and its void goes
//! through `service::lifecycle::Effects`.

use super::orders::{HOLD_COLUMNS, Hold, hold};
use super::{Db, Tx};
use crate::domain::status::DeclineReason;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// The confirmation timeout of every provider that requires confirming holds: few rows (one per
/// provider), read in placement's first round trip so the placement takes no other.
pub async fn confirming_providers(c: &impl Db) -> Result<HashMap<String, i32>, tokio_postgres::Error> {
    let rows = c.query("SELECT id, hold_confirmation_timeout_minutes FROM providers WHERE hold_confirmation = 'required'", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The pending holds whose deadline is before `cutoff`, oldest deadline first, at most `limit`:
/// what a sweep times out. Read without locks; each is locked and checked again.
pub async fn pending_past(c: &impl Db, cutoff: DateTime<Utc>, limit: i64) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT id FROM holds WHERE status = 'pending' AND confirm_deadline < $1 ORDER BY confirm_deadline, id LIMIT $2",
            &[&cutoff, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The hold that first used `provider_order_no` at this provider, if any.
pub async fn provider_order_no_owner(c: &impl Db, provider_id: &str, no: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let row = c
        .query_opt("SELECT hold_id FROM provider_order_nos WHERE provider_id = $1 AND provider_order_no = $2", &[&provider_id, &no])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Records `provider_order_no` as used by `hold_id`; `false` when another hold took it first
/// (a concurrent request: the caller answers `already_exists`).
pub async fn claim_provider_order_no(tx: &Tx<'_>, provider_id: &str, no: &str, hold_id: &str) -> Result<bool, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "WITH ins AS (
                 INSERT INTO provider_order_nos (provider_id, provider_order_no, hold_id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING RETURNING hold_id)
             SELECT coalesce((SELECT hold_id FROM ins),
                             (SELECT hold_id FROM provider_order_nos WHERE provider_id = $1 AND provider_order_no = $2))",
            &[&provider_id, &no, &hold_id],
        )
        .await?;
    Ok(row.get::<_, Option<String>>(0).as_deref() == Some(hold_id))
}

/// The provider showed the customer where to sign (and maybe its order number): still pending.
pub async fn acknowledge(tx: &Tx<'_>, id: &str, sign_url: &str, provider_order_no: Option<&str>) -> Result<Hold, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE holds SET sign_url = $2, provider_order_no = coalesce($3, provider_order_no), updated_at = now()
                 WHERE id = $1 AND status = 'pending' RETURNING {HOLD_COLUMNS}"
            ),
            &[&id, &sign_url, &provider_order_no],
        )
        .await?;
    Ok(hold(&row))
}

/// The provider froze the line: the hold becomes `active`. Nothing moves (it was counted in the
/// line's held since placement).
///
/// The confirmation is booked on `booked_on` and takes its place in booking order from the
/// journal's sequence (sql/V27: the settlement's `hold_confirmed` row, which moves nothing).
pub async fn confirm(
    tx: &Tx<'_>,
    id: &str,
    provider_order_no: &str,
    at: DateTime<Utc>,
    booked_on: NaiveDate,
) -> Result<Hold, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE holds SET status = 'active', confirmed_at = $3, provider_order_no = $2, confirmed_booked_on = $4,
                     confirmed_entry_seq = nextval('journal_entry_seq'), updated_at = now()
                 WHERE id = $1 AND status = 'pending' RETURNING {HOLD_COLUMNS}"
            ),
            &[&id, &provider_order_no, &at, &booked_on],
        )
        .await?;
    Ok(hold(&row))
}

/// Keeps why the provider declined a hold (voided by the same transaction).
pub async fn set_decline_reason(tx: &Tx<'_>, id: &str, reason: DeclineReason) -> Result<Hold, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE holds SET decline_reason = $2, updated_at = now() WHERE id = $1 AND status = 'voided' RETURNING {HOLD_COLUMNS}"
            ),
            &[&id, &reason],
        )
        .await?;
    Ok(hold(&row))
}

/// The part of each line's held that awaits confirmation (API.md §12: `held_pending`).
pub async fn held_pending(c: &impl Db, line_id: &str) -> Result<i64, tokio_postgres::Error> {
    let row = c
        .query_one("SELECT coalesce(sum(remaining_fen), 0)::int8 FROM holds WHERE credit_line_id = $1 AND status = 'pending'", &[&line_id])
        .await?;
    Ok(row.get(0))
}

/// Takes the confirmation sweep's lock for this transaction, if no other sweep holds it.
pub async fn try_sweep_lock(tx: &Tx<'_>) -> Result<bool, tokio_postgres::Error> {
    Ok(tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&super::lock_keys::CONFIRMATION_SWEEP]).await?.get(0))
}

/// A hold with what its order says of it, for the ledger check of confirmations and voids.
pub struct HoldOrderRow {
    pub hold_id: String,
    pub hold_status: String,
    pub void_reason: Option<String>,
    /// released, converted and voided are all zero, and remaining is the amount.
    pub untouched: bool,
    pub has_confirm_deadline: bool,
    pub order_status: String,
    pub order_reason: Option<String>,
    pub order_has_funding_deadline: bool,
}

/// Every pending or voided hold, and every hold of an order awaiting confirmation, with its order
/// (the caller holds the verify snapshot).
pub async fn verify_rows(c: &impl Db) -> Result<Vec<HoldOrderRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT h.id, h.status, h.void_reason,
                    h.released_fen = 0 AND h.converted_fen = 0 AND h.voided_fen = 0 AND h.remaining_fen = h.amount_fen,
                    h.confirm_deadline IS NOT NULL, o.status, o.reason, o.funding_deadline IS NOT NULL
             FROM holds h JOIN orders o ON o.id = h.order_id
             WHERE h.status IN ('pending', 'voided') OR o.status = 'awaiting_hold_confirmation'
             ORDER BY h.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| HoldOrderRow {
            hold_id: r.get(0),
            hold_status: r.get(1),
            void_reason: r.get(2),
            untouched: r.get(3),
            has_confirm_deadline: r.get(4),
            order_status: r.get(5),
            order_reason: r.get(6),
            order_has_funding_deadline: r.get(7),
        })
        .collect())
}

//! Device returns (API.md §13): one row per return, its amounts fixed when requested; the plan's
//! freeze is kept on the plan's row (`db::plans::set_return`), read under the plan's lock.

use super::{Db, Tx};
use crate::domain::money::Amount;
use crate::domain::returns::ReturnAmounts;
use crate::domain::status::ReturnStatus;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::Row;

/// A return as stored.
#[derive(Debug, Clone)]
pub struct Return {
    pub id: String,
    pub seq: i64,
    pub order_id: String,
    pub plan_id: String,
    pub status: ReturnStatus,
    pub reason: String,
    pub returned_on: NaiveDate,
    pub reference: String,
    pub note: Option<String>,
    pub amounts: ReturnAmounts,
    pub completed_on: Option<NaiveDate>,
    pub booked_on: Option<NaiveDate>,
    pub rejection_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, seq, order_id, plan_id, status, reason, returned_on, reference, note, principal_to_bank_fen,
    repayments_to_refund_fen, interest_waived_fen, fee_waived_fen, penalty_waived_fen, down_payment_to_refund_fen, hold_to_void_fen,
    completed_on, booked_on, rejection_reason, created_at, updated_at";

fn row(r: &Row) -> Return {
    let fen = |c: &str| Amount::from_fen(r.get::<_, i64>(c));
    Return {
        id: r.get("id"),
        seq: r.get("seq"),
        order_id: r.get("order_id"),
        plan_id: r.get("plan_id"),
        status: r.get("status"),
        reason: r.get("reason"),
        returned_on: r.get("returned_on"),
        reference: r.get("reference"),
        note: r.get("note"),
        amounts: ReturnAmounts {
            principal_to_bank: fen("principal_to_bank_fen"),
            repayments_to_refund: fen("repayments_to_refund_fen"),
            interest_waived: fen("interest_waived_fen"),
            fee_waived: fen("fee_waived_fen"),
            penalty_waived: fen("penalty_waived_fen"),
            down_payment_to_refund: fen("down_payment_to_refund_fen"),
            hold_to_void: fen("hold_to_void_fen"),
        },
        completed_on: r.get("completed_on"),
        booked_on: r.get("booked_on"),
        rejection_reason: r.get("rejection_reason"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub struct NewReturn<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub plan_id: &'a str,
    pub reason: &'a str,
    pub returned_on: NaiveDate,
    pub reference: &'a str,
    pub note: Option<&'a str>,
    pub amounts: &'a ReturnAmounts,
}

/// Inserts a `requested` return; `None` when the order already used this reference.
pub async fn insert(tx: &Tx<'_>, n: &NewReturn<'_>) -> Result<Option<Return>, tokio_postgres::Error> {
    let a = n.amounts;
    let row_ = tx
        .query_opt(
            &format!(
                "INSERT INTO returns (id, order_id, plan_id, status, reason, returned_on, reference, note, principal_to_bank_fen,
                     repayments_to_refund_fen, interest_waived_fen, fee_waived_fen, penalty_waived_fen, down_payment_to_refund_fen,
                     hold_to_void_fen)
                 VALUES ($1, $2, $3, 'requested', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT ON CONSTRAINT returns_reference_unique DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                &n.id,
                &n.order_id,
                &n.plan_id,
                &n.reason,
                &n.returned_on,
                &n.reference,
                &n.note,
                &a.principal_to_bank.fen(),
                &a.repayments_to_refund.fen(),
                &a.interest_waived.fen(),
                &a.fee_waived.fen(),
                &a.penalty_waived.fen(),
                &a.down_payment_to_refund.fen(),
                &a.hold_to_void.fen(),
            ],
        )
        .await?;
    Ok(row_.as_ref().map(row))
}

pub async fn reference_taken(c: &impl Db, order_id: &str, reference: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT 1 FROM returns WHERE order_id = $1 AND reference = $2", &[&order_id, &reference]).await?.is_some())
}

pub async fn get(c: &impl Db, id: &str) -> Result<Option<Return>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("SELECT {COLUMNS} FROM returns WHERE id = $1"), &[&id]).await?.as_ref().map(row))
}

pub async fn lock(tx: &Tx<'_>, id: &str) -> Result<Option<Return>, tokio_postgres::Error> {
    Ok(tx.query_opt(&format!("SELECT {COLUMNS} FROM returns WHERE id = $1 FOR UPDATE"), &[&id]).await?.as_ref().map(row))
}

/// An order's returns, newest first, those before the cursor's `seq` (0: from the newest).
pub async fn of_order(c: &impl Db, order_id: &str, before_seq: i64, limit: i64) -> Result<Vec<Return>, tokio_postgres::Error> {
    let rows = c
        .query(
            &format!("SELECT {COLUMNS} FROM returns WHERE order_id = $1 AND ($2::int8 = 0 OR seq < $2::int8) ORDER BY seq DESC LIMIT $3"),
            &[&order_id, &before_seq, &limit],
        )
        .await?;
    Ok(rows.iter().map(row).collect())
}

/// Completes a requested return (the caller holds its lock and its plan's).
pub async fn complete(tx: &Tx<'_>, id: &str, completed_on: NaiveDate, booked_on: NaiveDate) -> Result<Return, tokio_postgres::Error> {
    let r = tx
        .query_one(
            &format!(
                "UPDATE returns SET status = 'completed', completed_on = $2, booked_on = $3, decided_on = $2, updated_at = now()
                 WHERE id = $1 AND status = 'requested' RETURNING {COLUMNS}"
            ),
            &[&id, &completed_on, &booked_on],
        )
        .await?;
    Ok(row(&r))
}

/// Rejects a requested return on `decided_on` (the caller holds its lock and its plan's).
pub async fn reject(tx: &Tx<'_>, id: &str, reason: &str, decided_on: NaiveDate) -> Result<Return, tokio_postgres::Error> {
    let r = tx
        .query_one(
            &format!(
                "UPDATE returns SET status = 'rejected', rejection_reason = $2, decided_on = $3, updated_at = now()
                 WHERE id = $1 AND status = 'requested' RETURNING {COLUMNS}"
            ),
            &[&id, &reason, &decided_on],
        )
        .await?;
    Ok(row(&r))
}

//! Repayments a bank reports on a plan, each with its allocation over the installments.

use super::{Db, Tx};
use crate::domain::installment::Split;
use crate::domain::money::Amount;
use chrono::NaiveDate;

/// Has this plan used this reference already? Repayments share one namespace with the plan's
/// write-off and recoveries (API.md §14).
pub async fn reference_taken(tx: &Tx<'_>, plan_id: &str, reference: &str) -> Result<bool, tokio_postgres::Error> {
    super::write_offs::reference_taken(tx, plan_id, reference).await
}

/// A repayment as recorded: what was paid, how it was split, what the hold released.
pub struct NewRepayment<'a> {
    pub id: &'a str,
    pub plan_id: &'a str,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub reference: &'a str,
    pub split: &'a Split,
    pub allocations: &'a serde_json::Value,
    pub hold_released: Amount,
}

/// Inserts; `false` when the plan has a repayment with this reference already.
pub async fn insert(tx: &Tx<'_>, r: &NewRepayment<'_>) -> Result<bool, tokio_postgres::Error> {
    let s = r.split;
    let n = tx
        .execute(
            "INSERT INTO repayments (id, plan_id, amount_fen, paid_on, booked_on, reference, principal_fen, interest_fen, fee_fen, penalty_fen,
                 allocations, hold_released_fen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT ON CONSTRAINT repayments_reference_unique DO NOTHING",
            &[&r.id, &r.plan_id, &r.amount.fen(), &r.paid_on, &r.booked_on, &r.reference, &s.principal.fen(), &s.interest.fen(),
              &s.fee.fen(), &s.penalty.fen(), r.allocations, &r.hold_released.fen()],
        )
        .await?;
    Ok(n == 1)
}

/// A recorded repayment, as the console lists a plan's.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub id: String,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub reference: String,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
    pub hold_released: Amount,
}

/// A plan's repayments in the order they were recorded, at most `limit` (found by the plan's
/// unique index on references, then sorted: `OFFSET 0` rules out a walk of every repayment by `seq`).
pub async fn of_plan(c: &impl super::Db, plan_id: &str, limit: i64) -> Result<Vec<Recorded>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT id, amount_fen, paid_on, booked_on, reference, principal_fen, interest_fen, fee_fen, penalty_fen, hold_released_fen
             FROM (SELECT * FROM repayments WHERE plan_id = $1 OFFSET 0) r ORDER BY seq LIMIT $2",
            &[&plan_id, &limit],
        )
        .await?;
    let fen = |r: &tokio_postgres::Row, i: usize| Amount::from_fen(r.get(i));
    Ok(rows
        .iter()
        .map(|r| Recorded {
            id: r.get(0),
            amount: fen(r, 1),
            paid_on: r.get(2),
            booked_on: r.get(3),
            reference: r.get(4),
            principal: fen(r, 5),
            interest: fen(r, 6),
            fee: fen(r, 7),
            penalty: fen(r, 8),
            hold_released: fen(r, 9),
        })
        .collect())
}

/// The sum of a plan's repayments (what a return refunds).
pub async fn total_of_plan(c: &impl Db, plan_id: &str) -> Result<Amount, tokio_postgres::Error> {
    let r = c.query_one("SELECT coalesce(sum(amount_fen), 0)::int8 FROM repayments WHERE plan_id = $1", &[&plan_id]).await?;
    Ok(Amount::from_fen(r.get(0)))
}

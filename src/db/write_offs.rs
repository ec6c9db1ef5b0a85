//! Write-offs and recoveries (API.md §14): the write-off kept on its plan's row, recoveries in
//! their own table, and the one namespace of references a plan's repayments, write-off and
//! recoveries share.

use super::{Db, Tx};
use crate::domain::installment::Split;
use crate::domain::money::Amount;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::Row;

/// A plan's write-off as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenOff {
    pub on: NaiveDate,
    pub reason: String,
    pub reference: String,
    pub split: Split,
    pub booked_on: NaiveDate,
}

/// The write-off columns of a plan row (`db::plans::PLAN_COLUMNS` reads them), `None` when never written off.
pub(super) fn written_off(r: &Row) -> Option<WrittenOff> {
    let on: Option<NaiveDate> = r.get("written_off_on");
    let fen = |c: &str| Amount::from_fen(r.get::<_, Option<i64>>(c).unwrap_or(0));
    Some(WrittenOff {
        on: on?,
        reason: r.get::<_, Option<String>>("written_off_reason").unwrap_or_default(),
        reference: r.get::<_, Option<String>>("written_off_reference").unwrap_or_default(),
        split: Split {
            principal: fen("written_off_principal_fen"),
            interest: fen("written_off_interest_fen"),
            fee: fen("written_off_fee_fen"),
            penalty: fen("written_off_penalty_fen"),
        },
        booked_on: r.get::<_, Option<NaiveDate>>("written_off_booked_on").unwrap_or(on?),
    })
}

/// One write-off to record on its plan.
#[derive(Debug, Clone)]
pub struct NewWriteOff {
    pub plan_id: String,
    pub written_off: WrittenOff,
}

/// Records write-offs on their plans, in one statement; each plan is written off once.
pub async fn record_all(tx: &Tx<'_>, rows: &[NewWriteOff]) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.plan_id.as_str()).collect();
    let on: Vec<NaiveDate> = rows.iter().map(|r| r.written_off.on).collect();
    let reason: Vec<&str> = rows.iter().map(|r| r.written_off.reason.as_str()).collect();
    let reference: Vec<&str> = rows.iter().map(|r| r.written_off.reference.as_str()).collect();
    let col = |f: fn(&Split) -> Amount| rows.iter().map(|r| f(&r.written_off.split).fen()).collect::<Vec<i64>>();
    let (p, i, f, pen) = (col(|s| s.principal), col(|s| s.interest), col(|s| s.fee), col(|s| s.penalty));
    let booked: Vec<NaiveDate> = rows.iter().map(|r| r.written_off.booked_on).collect();
    let n = tx
        .execute(
            "UPDATE plans x SET written_off_on = t.o, written_off_reason = t.r, written_off_reference = t.rf, written_off_principal_fen = t.p,
                 written_off_interest_fen = t.i, written_off_fee_fen = t.f, written_off_penalty_fen = t.pen, written_off_booked_on = t.b,
                 updated_at = now()
             FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::date[])
                  AS t(id, o, r, rf, p, i, f, pen, b)
             WHERE x.id = t.id AND x.written_off_on IS NULL",
            &[&ids, &on, &reason, &reference, &p, &i, &f, &pen, &booked],
        )
        .await?;
    assert_eq!(n as usize, rows.len(), "every plan written off was written off once");
    Ok(())
}

/// Has this plan used `reference` already, on a repayment, its write-off or a recovery (API.md §14)?
pub async fn reference_taken(c: &impl Db, plan_id: &str, reference: &str) -> Result<bool, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT 1 FROM repayments WHERE plan_id = $1 AND reference = $2
             UNION ALL SELECT 1 FROM recoveries WHERE plan_id = $1 AND reference = $2
             UNION ALL SELECT 1 FROM plans WHERE id = $1 AND written_off_reference = $2
             LIMIT 1",
            &[&plan_id, &reference],
        )
        .await?;
    Ok(row.is_some())
}

/// A recovery as stored.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub id: String,
    pub plan_id: String,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub reference: String,
    pub seq: i64,
    /// The plan's `recovered` once this recovery was recorded.
    pub recovered_after: Amount,
    pub created_at: DateTime<Utc>,
}

fn recovery(r: &Row) -> Recovery {
    Recovery {
        id: r.get("id"),
        plan_id: r.get("plan_id"),
        amount: Amount::from_fen(r.get("amount_fen")),
        paid_on: r.get("paid_on"),
        booked_on: r.get("booked_on"),
        reference: r.get("reference"),
        seq: r.get("seq"),
        recovered_after: Amount::from_fen(r.get("recovered_after_fen")),
        created_at: r.get("created_at"),
    }
}

/// Inserts a recovery and adds it to its plan's `recovered` (the plan row is locked by the
/// caller); `None` when the reference is taken. Its `recovered_after` is the plan's `recovered` now.
pub async fn insert_recovery(
    tx: &Tx<'_>,
    id: &str,
    plan_id: &str,
    amount: Amount,
    paid_on: NaiveDate,
    booked_on: NaiveDate,
    reference: &str,
) -> Result<Option<Recovery>, tokio_postgres::Error> {
    let Some(row) = tx
        .query_opt(
            "INSERT INTO recoveries (id, plan_id, amount_fen, paid_on, booked_on, reference) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT ON CONSTRAINT recoveries_reference_unique DO NOTHING RETURNING *, 0::int8 AS recovered_after_fen",
            &[&id, &plan_id, &amount.fen(), &paid_on, &booked_on, &reference],
        )
        .await?
    else {
        return Ok(None);
    };
    let recovered: i64 = tx
        .query_one(
            "UPDATE plans SET recovered_fen = recovered_fen + $2, updated_at = now() WHERE id = $1 RETURNING recovered_fen",
            &[&plan_id, &amount.fen()],
        )
        .await?
        .get(0);
    let mut r = recovery(&row);
    r.recovered_after = Amount::from_fen(recovered);
    Ok(Some(r))
}

/// A plan's recoveries, oldest first, after the cursor's `seq`.
pub async fn list(c: &impl Db, plan_id: &str, after: i64, limit: i64) -> Result<Vec<Recovery>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT * FROM (SELECT r.*, (sum(amount_fen) OVER (ORDER BY seq))::int8 AS recovered_after_fen FROM recoveries r WHERE plan_id = $1) x
             WHERE seq > $2 ORDER BY seq LIMIT $3",
            &[&plan_id, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(recovery).collect())
}

/// The latest `paid_on` of a plan's repayments.
pub async fn last_paid_on(c: &impl Db, plan_id: &str) -> Result<Option<NaiveDate>, tokio_postgres::Error> {
    Ok(c.query_one("SELECT max(paid_on) FROM repayments WHERE plan_id = $1", &[&plan_id]).await?.get(0))
}

/// Defaulted plans aged past their product's `write_off_after_days` as of `date` (API.md §14):
/// the oldest unpaid installment's `due_on` + that many days is before `date`. In order of the
/// plans' creation, the order their write-offs are booked in.
pub async fn aged_plan_ids(c: &impl Db, date: NaiveDate) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT p.id FROM plans p JOIN orders o ON o.id = p.order_id JOIN products pr ON pr.id = o.product_id
             WHERE p.status = 'defaulted' AND pr.write_off_after_days IS NOT NULL
               AND (SELECT min(i.due_on) FROM installments i WHERE i.plan_id = p.id AND i.status IN ('pending', 'overdue'))
                   + pr.write_off_after_days < $1
             ORDER BY p.seq",
            &[&date],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

//! Installment plans and their installments.

use super::Db;
use super::Tx;
use crate::domain::installment::InstallmentState;
use crate::domain::money::Amount;
use crate::domain::schedule::ScheduledInstallment;
use crate::domain::status::{InstallmentStatus, PlanStatus};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Row;

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub order_id: String,
    pub bank_id: String,
    pub loan_no: String,
    pub principal: Amount,
    pub pricing: String,
    pub rate: Decimal,
    pub apr_irr: String,
    pub term_months: i32,
    pub funded_on: NaiveDate,
    pub status: PlanStatus,
    pub accelerated_as_of: Option<NaiveDate>,
    pub accelerated_reason: Option<String>,
    /// API.md §14: the write-off, when there was one, and what was recovered since.
    pub written_off: Option<super::write_offs::WrittenOff>,
    pub recovered: Amount,
    /// API.md §13: the plan's latest return (kept after a rejection), and whether one is
    /// `requested`, freezing the plan.
    pub return_id: Option<String>,
    pub return_requested: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PLAN_COLUMNS: &str = "id, order_id, bank_id, loan_no, principal_fen, pricing, rate, apr_irr, term_months, funded_on, status,
    accelerated_as_of, accelerated_reason, created_at, updated_at, written_off_on, written_off_reason, written_off_reference,
    written_off_principal_fen, written_off_interest_fen, written_off_fee_fen, written_off_penalty_fen, written_off_booked_on, recovered_fen,
    return_id, return_requested";

fn plan(r: &Row) -> Plan {
    Plan {
        id: r.get("id"),
        order_id: r.get("order_id"),
        bank_id: r.get("bank_id"),
        loan_no: r.get("loan_no"),
        principal: Amount::from_fen(r.get("principal_fen")),
        pricing: r.get("pricing"),
        rate: r.get("rate"),
        apr_irr: r.get("apr_irr"),
        term_months: r.get("term_months"),
        funded_on: r.get("funded_on"),
        status: r.get("status"),
        accelerated_as_of: r.get("accelerated_as_of"),
        accelerated_reason: r.get("accelerated_reason"),
        written_off: super::write_offs::written_off(r),
        recovered: Amount::from_fen(r.get("recovered_fen")),
        return_id: r.get("return_id"),
        return_requested: r.get("return_requested"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub struct NewPlan<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub bank_id: &'a str,
    pub loan_no: &'a str,
    pub principal: Amount,
    pub pricing: &'a str,
    pub rate: Decimal,
    pub apr_irr: &'a str,
    pub term_months: i32,
    pub funded_on: NaiveDate,
}

/// Inserts the plan and its schedule; `None` when the bank already used this `loan_no`.
pub async fn insert(tx: &Tx<'_>, p: &NewPlan<'_>, schedule: &[ScheduledInstallment]) -> Result<Option<Plan>, tokio_postgres::Error> {
    let Some(row) = tx
        .query_opt(
            &format!(
                "INSERT INTO plans (id, order_id, bank_id, loan_no, principal_fen, pricing, rate, apr_irr, term_months, funded_on, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active')
                 ON CONFLICT ON CONSTRAINT plans_loan_no_unique DO NOTHING RETURNING {PLAN_COLUMNS}"
            ),
            &[
                &p.id,
                &p.order_id,
                &p.bank_id,
                &p.loan_no,
                &p.principal.fen(),
                &p.pricing,
                &p.rate,
                &p.apr_irr,
                &p.term_months,
                &p.funded_on,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let seqs: Vec<i32> = schedule.iter().map(|i| i.seq as i32).collect();
    let due: Vec<NaiveDate> = schedule.iter().map(|i| i.due_on).collect();
    let principal: Vec<i64> = schedule.iter().map(|i| i.principal.fen()).collect();
    let interest: Vec<i64> = schedule.iter().map(|i| i.interest.fen()).collect();
    let fee: Vec<i64> = schedule.iter().map(|i| i.fee.fen()).collect();
    assert_eq!(principal.iter().sum::<i64>(), p.principal.fen(), "installments' principal adds up to the plan's");
    tx.execute(
        "INSERT INTO installments (plan_id, seq, due_on, principal_fen, interest_fen, fee_fen, status)
         SELECT $1, s, d, p, i, f, 'pending' FROM unnest($2::int4[], $3::date[], $4::int8[], $5::int8[], $6::int8[]) AS t(s, d, p, i, f)",
        &[&p.id, &seqs, &due, &principal, &interest, &fee],
    )
    .await?;
    Ok(Some(plan(&row)))
}

pub async fn loan_no_taken(c: &impl Db, bank_id: &str, loan_no: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT 1 FROM plans WHERE bank_id = $1 AND loan_no = $2", &[&bank_id, &loan_no]).await?.is_some())
}

pub async fn get(c: &impl Db, id: &str) -> Result<Option<Plan>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"), &[&id]).await?.as_ref().map(plan))
}

pub async fn get_by_order(c: &impl Db, order_id: &str) -> Result<Option<Plan>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE order_id = $1"), &[&order_id]).await?.as_ref().map(plan))
}

pub async fn lock(tx: &Tx<'_>, id: &str) -> Result<Option<Plan>, tokio_postgres::Error> {
    Ok(tx.query_opt(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1 FOR UPDATE"), &[&id]).await?.as_ref().map(plan))
}

pub async fn set_status(tx: &Tx<'_>, id: &str, status: PlanStatus) -> Result<(), tokio_postgres::Error> {
    tx.execute("UPDATE plans SET status = $2, updated_at = now() WHERE id = $1", &[&id, &status]).await?;
    Ok(())
}

/// Sets several plans' statuses in one statement (`statuses[i]` is `ids[i]`'s).
pub async fn set_statuses(tx: &Tx<'_>, ids: &[&str], statuses: &[PlanStatus]) -> Result<(), tokio_postgres::Error> {
    super::set_statuses(tx, "plans", ids, statuses).await
}

pub async fn set_accelerated(tx: &Tx<'_>, id: &str, as_of: NaiveDate, reason: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE plans SET accelerated_as_of = $2, accelerated_reason = $3, updated_at = now() WHERE id = $1",
        &[&id, &as_of, &reason],
    )
    .await?;
    Ok(())
}

/// Records the plan's latest return and whether it freezes the plan (API.md §13).
pub async fn set_return(tx: &Tx<'_>, id: &str, return_id: &str, requested: bool) -> Result<(), tokio_postgres::Error> {
    tx.execute("UPDATE plans SET return_id = $2, return_requested = $3, updated_at = now() WHERE id = $1", &[&id, &return_id, &requested])
        .await?;
    Ok(())
}

/// An installment as stored, with its stored status.
#[derive(Debug, Clone)]
pub struct InstallmentRow {
    pub state: InstallmentState,
    pub status: InstallmentStatus,
}

fn installment(r: &Row) -> InstallmentRow {
    let fen = |c: &str| Amount::from_fen(r.get::<_, i64>(c));
    let state = InstallmentState {
        seq: r.get::<_, i32>("seq") as u32,
        due_on: r.get("due_on"),
        principal: fen("principal_fen"),
        interest: fen("interest_fen"),
        fee: fen("fee_fen"),
        penalty: fen("penalty_fen"),
        penalty_through: r.get("penalty_through"),
        paid_principal: fen("paid_principal_fen"),
        paid_interest: fen("paid_interest_fen"),
        paid_fee: fen("paid_fee_fen"),
        paid_penalty: fen("paid_penalty_fen"),
        compensated: fen("compensated_fen"),
        waived_interest_and_fee: fen("waived_fen"),
        waived_penalty: fen("waived_penalty_fen"),
        written_off: fen("written_off_fen"),
        waived_principal: fen("waived_principal_fen"),
    };
    InstallmentRow { state, status: r.get("status") }
}

pub async fn installments(c: &impl Db, plan_id: &str) -> Result<Vec<InstallmentRow>, tokio_postgres::Error> {
    let rows = c.query("SELECT * FROM installments WHERE plan_id = $1 ORDER BY seq", &[&plan_id]).await?;
    Ok(rows.iter().map(installment).collect())
}

/// Writes back changed installments (of any plans) with their statuses, in one statement.
pub async fn save_installments(tx: &Tx<'_>, rows: &[(&str, &InstallmentState, InstallmentStatus)]) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&InstallmentState) -> Amount| rows.iter().map(|(_, s, _)| f(s).fen()).collect::<Vec<i64>>();
    let plan_ids: Vec<&str> = rows.iter().map(|(p, _, _)| *p).collect();
    let seqs: Vec<i32> = rows.iter().map(|(_, s, _)| s.seq as i32).collect();
    let penalty = col(&|s| s.penalty);
    let through: Vec<Option<NaiveDate>> = rows.iter().map(|(_, s, _)| s.penalty_through).collect();
    let pp = col(&|s| s.paid_principal);
    let pi = col(&|s| s.paid_interest);
    let pf = col(&|s| s.paid_fee);
    let ppen = col(&|s| s.paid_penalty);
    let comp = col(&|s| s.compensated);
    let waived = col(&|s| s.waived_interest_and_fee);
    let waived_penalty = col(&|s| s.waived_penalty);
    let status: Vec<InstallmentStatus> = rows.iter().map(|(_, _, st)| *st).collect();
    let written_off = col(&|s| s.written_off);
    let waived_principal = col(&|s| s.waived_principal);
    let n = tx
        .execute(
            "UPDATE installments i SET penalty_fen = t.pen, penalty_through = t.thr, paid_principal_fen = t.pp, paid_interest_fen = t.pi,
                 paid_fee_fen = t.pf, paid_penalty_fen = t.ppen, compensated_fen = t.comp, waived_fen = t.w, waived_penalty_fen = t.wpen,
                 status = t.st, written_off_fen = t.wo, waived_principal_fen = t.wpr
             FROM unnest($1::text[], $2::int4[], $3::int8[], $4::date[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[],
                         $10::int8[], $11::int8[], $12::text[], $13::int8[], $14::int8[])
                  AS t(plan_id, seq, pen, thr, pp, pi, pf, ppen, comp, w, wpen, st, wo, wpr)
             WHERE i.plan_id = t.plan_id AND i.seq = t.seq",
            &[
                &plan_ids,
                &seqs,
                &penalty,
                &through,
                &pp,
                &pi,
                &pf,
                &ppen,
                &comp,
                &waived,
                &waived_penalty,
                &status,
                &written_off,
                &waived_principal,
            ],
        )
        .await?;
    assert_eq!(n as usize, rows.len(), "every changed installment was written");
    Ok(())
}

/// Plans, locked in id order, with their installments.
pub async fn lock_many(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<Plan>, tokio_postgres::Error> {
    let rows = tx.query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = ANY($1) ORDER BY id FOR UPDATE"), &[&ids]).await?;
    Ok(rows.iter().map(plan).collect())
}

pub async fn installments_of(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(String, InstallmentRow)>, tokio_postgres::Error> {
    let rows = tx.query("SELECT * FROM installments WHERE plan_id = ANY($1) ORDER BY plan_id, seq", &[&ids]).await?;
    Ok(rows.iter().map(|r| (r.get("plan_id"), installment(r))).collect())
}

/// The plans with an unpaid installment due before `date`, or on it when their product has no
/// grace: range scans of the partial index of open installments, so the cost follows what is
/// due, not the book (in no particular order: see [`in_creation_order`]). Only `active` plans:
/// end of day has nothing to do on the others (a defaulted plan stays overdue until written off,
/// and would otherwise be locked and loaded by every run for nothing).
pub async fn due_plan_ids(c: &impl Db, date: NaiveDate) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT i.plan_id FROM installments i JOIN plans p ON p.id = i.plan_id
             WHERE i.status IN ('pending', 'overdue') AND i.due_on < $1 AND p.status = 'active'
             UNION
             SELECT i.plan_id FROM installments i JOIN plans p ON p.id = i.plan_id JOIN orders o ON o.id = p.order_id
             WHERE i.status IN ('pending', 'overdue') AND i.due_on = $1 AND o.grace_days = 0 AND p.status = 'active'",
            &[&date],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// `ids` in the order of the plans' creation, by key lookups: asked apart from the due scan so
/// that a day with nothing due never makes the planner walk every plan to order none.
pub async fn in_creation_order(c: &impl Db, ids: &[String]) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c.query("SELECT id FROM plans WHERE id = ANY($1) ORDER BY seq", &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

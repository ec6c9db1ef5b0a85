//! The provider's settlement file (API.md §15): every hold and line movement of its credit lines
//! booked on a date, its held and drawn before and after, and what it owes each bank for the
//! day's conversions; JSON, or CSV (RFC 4180, CRLF, no byte-order mark).

use super::Deps;
use crate::auth::{Principal, PrincipalKind};
use crate::db::settlement::{self as db, SettlementRow};
use crate::db::{Tx, business_days, setup as setup_db};
use crate::domain::money::Amount;
use crate::domain::settlement::{Balances, DayTotals, KINDS, Moved, amount, broken_identities, day_totals};
use crate::error::{ApiError, ApiResult, ErrorCode};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

/// The CSV header, exactly.
pub const CSV_HEADER: &str = "kind,booked_on,value_date,provider_id,credit_line_id,hold_id,order_id,plan_id,bank_id,installment_seq,reason,\
amount,principal,interest,fee,penalty,count";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettlementMovement {
    pub kind: String,
    pub booked_on: NaiveDate,
    pub value_date: NaiveDate,
    pub credit_line_id: String,
    pub hold_id: Option<String>,
    pub order_id: Option<String>,
    pub plan_id: Option<String>,
    pub bank_id: Option<String>,
    pub installment_seq: Option<i32>,
    /// A void's `void_reason`.
    pub reason: Option<String>,
    pub amount: Amount,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
}

#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct HeldDrawn {
    pub held: Amount,
    pub drawn: Amount,
}

#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct SettlementTotal {
    pub count: i64,
    pub amount: Amount,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payable {
    pub bank_id: String,
    pub amount: Amount,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Settlement {
    pub business_date: NaiveDate,
    pub provider_id: String,
    /// End of day has closed the date: the file no longer changes.
    pub closed: bool,
    pub opening: HeldDrawn,
    pub closing: HeldDrawn,
    pub movements: Vec<SettlementMovement>,
    /// One total per kind, keyed by kind, in the order of [`KINDS`].
    #[schema(value_type = Object)]
    pub totals: serde_json::Map<String, serde_json::Value>,
    pub payables: Vec<Payable>,
    #[serde(skip)]
    pub by_kind: Vec<(&'static str, SettlementTotal)>,
}

fn movement(r: SettlementRow) -> SettlementMovement {
    SettlementMovement {
        kind: r.kind,
        booked_on: r.booked_on,
        value_date: r.value_date,
        credit_line_id: r.credit_line_id,
        hold_id: r.hold_id,
        order_id: r.order_id,
        plan_id: r.plan_id,
        bank_id: r.bank_id,
        installment_seq: r.installment_seq,
        reason: r.reason,
        amount: amount(r.amount_fen),
        principal: amount(r.principal_fen),
        interest: amount(r.interest_fen),
        fee: amount(r.fee_fen),
        penalty: amount(r.penalty_fen),
    }
}

fn held_drawn(b: Balances) -> HeldDrawn {
    HeldDrawn { held: amount(b.held_fen), drawn: amount(b.drawn_fen) }
}

/// The file, from the rows and balances read in one snapshot.
pub fn render(
    date: NaiveDate,
    provider_id: &str,
    closed: bool,
    rows: Vec<SettlementRow>,
    opening: Balances,
    closing: Balances,
) -> Settlement {
    let t = day_totals(rows.iter().map(|r| Moved {
        kind: &r.kind,
        bank_id: r.bank_id.as_deref(),
        amount_fen: r.amount_fen,
        split_fen: [r.principal_fen, r.interest_fen, r.fee_fen, r.penalty_fen],
    }));
    let broken = broken_identities(opening, closing, &t);
    if !broken.is_empty() {
        // The ledger check reports it by rule; the file shows the books as they are.
        tracing::error!(provider_id, business_date = %date, ?broken, "a settlement file's roll-forward identity does not hold");
    }
    let by_kind: Vec<(&'static str, SettlementTotal)> = KINDS
        .iter()
        .map(|k| {
            let s = DayTotals::of(k, &t);
            let [p, i, f, pen] = s.split_fen;
            (
                *k,
                SettlementTotal {
                    count: s.count,
                    amount: amount(s.amount_fen),
                    principal: amount(p),
                    interest: amount(i),
                    fee: amount(f),
                    penalty: amount(pen),
                },
            )
        })
        .collect();
    let totals = by_kind.iter().map(|(k, t)| (k.to_string(), serde_json::to_value(t).expect("a total serializes"))).collect();
    let payables = t.payables.iter().map(|(b, (a, n))| Payable { bank_id: b.clone(), amount: amount(*a), count: *n }).collect();
    Settlement {
        business_date: date,
        provider_id: provider_id.to_string(),
        closed,
        opening: held_drawn(opening),
        closing: held_drawn(closing),
        movements: rows.into_iter().map(movement).collect(),
        totals,
        payables,
        by_kind,
    }
}

/// `GET /v1/providers/{id}/settlement/{business_date}`: that provider or the admin; another
/// provider's id answers 404 like a missing one; then a date after today is refused (§1's order).
pub async fn authorize(state: &Deps, c: &impl crate::db::Db, caller: &Principal, provider_id: &str, date: NaiveDate) -> ApiResult<()> {
    match caller.kind() {
        PrincipalKind::Admin => {}
        PrincipalKind::Provider if caller.id() == Some(provider_id) => {}
        PrincipalKind::Provider => return Err(ApiError::not_found()),
        _ => return Err(ApiError::forbidden()),
    }
    setup_db::get_provider(c, provider_id).await?.ok_or_else(ApiError::not_found)?;
    if date > state.clock.today() && !state.settings.clock.allow_future_dates {
        return Err(ApiError::new(ErrorCode::InvalidDate, "business_date is after today").field("business_date"));
    }
    Ok(())
}

/// The file for `date` as the books say now, read in the caller's snapshot.
pub async fn read(tx: &Tx<'_>, provider_id: &str, date: NaiveDate) -> ApiResult<Settlement> {
    let closed = business_days::last_closed(tx).await?.is_some_and(|c| c >= date);
    let rows = db::movements(tx, provider_id, date).await?;
    let [(held, drawn), closing] = db::balances_around(tx, provider_id, date).await?;
    // Nothing was booked before the calendar's first date.
    let opening =
        if date.pred_opt().is_some() { Balances { held_fen: held, drawn_fen: drawn } } else { Balances { held_fen: 0, drawn_fen: 0 } };
    Ok(render(date, provider_id, closed, rows, opening, Balances { held_fen: closing.0, drawn_fen: closing.1 }))
}

/// The file as CSV: the header, a row per movement, a `total_<kind>` row per kind, a `payable`
/// row per bank, then `opening_held`, `opening_drawn`, `closing_held`, `closing_drawn`.
pub fn to_csv(s: &Settlement) -> String {
    let mut out = String::with_capacity(512 + s.movements.len() * 160);
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    let (date, provider, zero) = (s.business_date.to_string(), s.provider_id.as_str(), Amount::ZERO.to_string());
    for m in &s.movements {
        let seq = m.installment_seq.map(|n| n.to_string()).unwrap_or_default();
        let money = [m.amount, m.principal, m.interest, m.fee, m.penalty].map(|a| a.to_string());
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let (b, v) = (m.booked_on.to_string(), m.value_date.to_string());
        let ids = [opt(&m.hold_id), opt(&m.order_id), opt(&m.plan_id), opt(&m.bank_id), seq, opt(&m.reason)];
        let mut row: Vec<&str> = vec![&m.kind, &b, &v, provider, &m.credit_line_id];
        row.extend(ids.iter().map(String::as_str));
        row.extend(money.iter().map(String::as_str));
        row.push("");
        super::reports::csv_row(&mut out, &row);
    }
    for (kind, t) in &s.by_kind {
        let money = [t.amount, t.principal, t.interest, t.fee, t.penalty].map(|a| a.to_string());
        let (name, count) = (format!("total_{kind}"), t.count.to_string());
        let mut row: Vec<&str> = vec![&name, &date, "", provider, "", "", "", "", "", "", ""];
        row.extend(money.iter().map(String::as_str));
        row.push(&count);
        super::reports::csv_row(&mut out, &row);
    }
    for p in &s.payables {
        let (a, n) = (p.amount.to_string(), p.count.to_string());
        super::reports::csv_row(
            &mut out,
            &["payable", &date, "", provider, "", "", "", "", &p.bank_id, "", "", &a, &zero, &zero, &zero, &zero, &n],
        );
    }
    for (name, a) in [
        ("opening_held", s.opening.held),
        ("opening_drawn", s.opening.drawn),
        ("closing_held", s.closing.held),
        ("closing_drawn", s.closing.drawn),
    ] {
        let a = a.to_string();
        super::reports::csv_row(&mut out, &[name, &date, "", provider, "", "", "", "", "", "", "", &a, &zero, &zero, &zero, &zero, ""]);
    }
    out
}

//! Reports (API.md section 8): a bank's daily reconciliation and a partner's monthly statement.

use super::Deps;
use crate::auth::{Principal, PrincipalKind};
use crate::db::reports::{self as db, AgentRow, MovementRow};
use crate::db::setup as setup_db;
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult, ErrorCode};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

/// The movement kinds, in the order of the totals: the six of v1, then v2's `return` (§13),
/// `write_off` and `recovery` (§14), as API.md §15 orders them.
pub const KINDS: [&str; 9] =
    ["funding", "repayment", "compensation", "expiry", "cancellation", "rejection", "return", "write_off", "recovery"];

/// The CSV header, exactly (v2, §15: `refund` and `waived` last; consumers match columns by name).
pub const CSV_HEADER: &str = "kind,booked_on,value_date,bank_id,order_id,plan_id,loan_no,installment_seq,reference,amount,principal,interest,\
fee,penalty,count,refund,waived";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Movement {
    pub kind: String,
    pub booked_on: NaiveDate,
    /// The bank's date for fundings and repayments, the end-of-day date for compensations and
    /// expiries, the decision's date for cancellations and rejections.
    pub value_date: NaiveDate,
    pub bank_id: String,
    pub order_id: String,
    pub plan_id: Option<String>,
    pub loan_no: Option<String>,
    pub installment_seq: Option<i32>,
    pub repayment_id: Option<String>,
    pub reference: Option<String>,
    pub amount: Amount,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
    /// v2, §15: a return's `repayments_to_refund`; `0.00` on every other kind.
    pub refund: Amount,
    /// v2, §15: a return's interest, fee and penalty waived together; `0.00` on every other kind.
    pub waived: Amount,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Total {
    pub count: i64,
    pub amount: Amount,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
    pub refund: Amount,
    pub waived: Amount,
}

impl Total {
    fn add(&mut self, m: &Movement) {
        self.count += 1;
        self.amount += m.amount;
        self.principal += m.principal;
        self.interest += m.interest;
        self.fee += m.fee;
        self.penalty += m.penalty;
        self.refund += m.refund;
        self.waived += m.waived;
    }
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Totals {
    pub funding: Total,
    pub repayment: Total,
    pub compensation: Total,
    pub expiry: Total,
    pub cancellation: Total,
    pub rejection: Total,
    #[serde(rename = "return")]
    pub return_: Total,
    pub write_off: Total,
    pub recovery: Total,
}

impl Totals {
    pub fn get(&self, kind: &str) -> Option<&Total> {
        Some(match kind {
            "funding" => &self.funding,
            "repayment" => &self.repayment,
            "compensation" => &self.compensation,
            "expiry" => &self.expiry,
            "cancellation" => &self.cancellation,
            "rejection" => &self.rejection,
            "return" => &self.return_,
            "write_off" => &self.write_off,
            "recovery" => &self.recovery,
            _ => return None,
        })
    }

    fn get_mut(&mut self, kind: &str) -> Option<&mut Total> {
        Some(match kind {
            "funding" => &mut self.funding,
            "repayment" => &mut self.repayment,
            "compensation" => &mut self.compensation,
            "expiry" => &mut self.expiry,
            "cancellation" => &mut self.cancellation,
            "rejection" => &mut self.rejection,
            "return" => &mut self.return_,
            "write_off" => &mut self.write_off,
            "recovery" => &mut self.recovery,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reconciliation {
    pub business_date: NaiveDate,
    /// The bank reported on; `null` for the admin's report of all banks.
    pub bank_id: Option<String>,
    /// End of day has closed the date: the report no longer changes.
    pub closed: bool,
    pub movements: Vec<Movement>,
    pub totals: Totals,
}

fn movement(r: MovementRow) -> Movement {
    Movement {
        kind: r.kind,
        booked_on: r.booked_on,
        value_date: r.value_date,
        bank_id: r.bank_id,
        order_id: r.order_id,
        plan_id: r.plan_id,
        loan_no: r.loan_no,
        installment_seq: r.installment_seq,
        repayment_id: r.repayment_id,
        reference: r.reference,
        amount: Amount::from_fen(r.amount_fen),
        principal: Amount::from_fen(r.principal_fen),
        interest: Amount::from_fen(r.interest_fen),
        fee: Amount::from_fen(r.fee_fen),
        penalty: Amount::from_fen(r.penalty_fen),
        refund: Amount::from_fen(r.refund_fen),
        waived: Amount::from_fen(r.waived_fen),
    }
}

/// A bank sees its own report (`?bank_id=` another bank: 404); the admin one bank's or all.
/// Answers the bank reported on (`None`: all banks) once the caller may see it and the date is allowed.
pub async fn authorize(
    state: &Deps,
    client: &impl crate::db::Db,
    caller: &Principal,
    date: NaiveDate,
    bank_param: Option<&str>,
) -> ApiResult<Option<String>> {
    let bank_id = match caller.kind() {
        PrincipalKind::Bank => {
            let own = caller.id().unwrap_or_default();
            if bank_param.is_some_and(|b| b != own) {
                return Err(ApiError::not_found());
            }
            Some(own.to_string())
        }
        PrincipalKind::Admin => match bank_param {
            None => None,
            Some(b) => Some(setup_db::get_bank(client, b).await?.ok_or_else(ApiError::not_found)?.id),
        },
        _ => return Err(ApiError::forbidden()),
    };
    // A check against the clock, so after the objects (API.md §1's order): without future dates
    // nothing can be booked after today, and an empty report would read as a real one.
    if date > state.clock.today() && !state.settings.clock.allow_future_dates {
        return Err(ApiError::new(ErrorCode::InvalidDate, "business_date is after today").field("business_date"));
    }
    Ok(bank_id)
}

/// The reconciliation of `date` for `bank_id` (`None`: all banks) as the books say now.
pub async fn read(client: &impl crate::db::Db, date: NaiveDate, bank_id: Option<String>) -> ApiResult<Reconciliation> {
    let last_closed = crate::db::business_days::last_closed(client).await?;
    let rows = db::movements(client, date, bank_id.as_deref()).await?;
    let movements: Vec<Movement> = rows.into_iter().map(movement).collect();
    Ok(assemble(date, bank_id, last_closed.is_some_and(|c| c >= date), movements))
}

fn assemble(date: NaiveDate, bank_id: Option<String>, closed: bool, movements: Vec<Movement>) -> Reconciliation {
    let mut totals = Totals::default();
    for m in &movements {
        if let Some(t) = totals.get_mut(&m.kind) {
            t.add(m);
        }
    }
    Reconciliation { business_date: date, bank_id, closed, movements, totals }
}

/// One bank's reconciliation cut from the all-banks one of the same snapshot: the same rows as
/// [`read`] for that bank (each movement is its bank's, in the same order), without reading the
/// day again; end of day renders every bank's this way.
pub fn for_bank(all: &Reconciliation, bank_id: &str) -> Reconciliation {
    let movements: Vec<Movement> = all.movements.iter().filter(|m| m.bank_id == bank_id).cloned().collect();
    assemble(all.business_date, Some(bank_id.to_string()), all.closed, movements)
}

/// RFC 4180: a field with a comma, a quote or a line break is quoted, quotes doubled.
fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

pub(super) fn csv_row(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// The report as CSV: the header, a row per movement in booking order, a `total_<kind>` row per kind.
pub fn to_csv(r: &Reconciliation) -> String {
    let mut out = String::with_capacity(256 + r.movements.len() * 160);
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for m in &r.movements {
        let seq = m.installment_seq.map(|s| s.to_string()).unwrap_or_default();
        csv_row(
            &mut out,
            &[
                &m.kind,
                &m.booked_on.to_string(),
                &m.value_date.to_string(),
                &m.bank_id,
                &m.order_id,
                m.plan_id.as_deref().unwrap_or(""),
                m.loan_no.as_deref().unwrap_or(""),
                &seq,
                m.reference.as_deref().unwrap_or(""),
                &m.amount.to_string(),
                &m.principal.to_string(),
                &m.interest.to_string(),
                &m.fee.to_string(),
                &m.penalty.to_string(),
                "",
                &m.refund.to_string(),
                &m.waived.to_string(),
            ],
        );
    }
    let date = r.business_date.to_string();
    for kind in KINDS {
        let t = r.totals.get(kind).cloned().unwrap_or_default();
        csv_row(
            &mut out,
            &[
                &format!("total_{kind}"),
                &date,
                "",
                r.bank_id.as_deref().unwrap_or(""),
                "",
                "",
                "",
                "",
                "",
                &t.amount.to_string(),
                &t.principal.to_string(),
                &t.interest.to_string(),
                &t.fee.to_string(),
                &t.penalty.to_string(),
                &t.count.to_string(),
                &t.refund.to_string(),
                &t.waived.to_string(),
            ],
        );
    }
    out
}

// ---------- partner statement ----------

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AgentLine {
    pub agent_id: String,
    pub placed: i64,
    pub funded: i64,
    pub cancelled: i64,
    pub rejected: i64,
    pub expired: i64,
    /// API.md §13: devices returned, in the month of the return's `completed_on`.
    pub returned: i64,
    pub funded_principal: Amount,
    pub referral_fees: Amount,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StatementTotal {
    pub placed: i64,
    pub funded: i64,
    pub cancelled: i64,
    pub rejected: i64,
    pub expired: i64,
    /// API.md §13: devices returned, in the month of the return's `completed_on`.
    pub returned: i64,
    pub funded_principal: Amount,
    pub referral_fees: Amount,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Statement {
    pub partner_id: String,
    pub month: String,
    pub agents: Vec<AgentLine>,
    pub total: StatementTotal,
}

/// `YYYY-MM` → the month's first and last dates.
pub fn parse_month(s: &str) -> Option<(NaiveDate, NaiveDate)> {
    let b = s.as_bytes();
    if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[0..4].parse().ok().filter(|y| *y >= 1)?;
    let month: u32 = s[5..7].parse().ok()?;
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = first.checked_add_months(chrono::Months::new(1))?.pred_opt()?;
    Some((first, last))
}

/// The partner itself or the admin; another partner's id answers 404 like a missing one.
#[tracing::instrument(skip_all, fields(partner_id = %partner_id, month = %month))]
pub async fn statement(
    state: &Deps,
    caller: &Principal,
    partner_id: &str,
    month: &str,
    (first, last): (NaiveDate, NaiveDate),
) -> ApiResult<Statement> {
    match caller.kind() {
        PrincipalKind::Admin => {}
        PrincipalKind::Partner if caller.id() == Some(partner_id) => {}
        PrincipalKind::Partner => return Err(ApiError::not_found()),
        _ => return Err(ApiError::forbidden()),
    }
    let client = state.pool.get().await?;
    setup_db::get_partner(&**client, partner_id).await?.ok_or_else(ApiError::not_found)?;
    let rows = db::partner_month(&**client, partner_id, first, last).await?;
    let mut total = StatementTotal::default();
    let agents: Vec<AgentLine> = rows
        .into_iter()
        .map(|r: AgentRow| {
            let line = AgentLine {
                agent_id: r.agent_id,
                placed: r.placed,
                funded: r.funded,
                cancelled: r.cancelled,
                rejected: r.rejected,
                expired: r.expired,
                returned: r.returned,
                funded_principal: Amount::from_fen(r.funded_principal_fen),
                referral_fees: Amount::from_fen(r.referral_fees_fen),
            };
            total.placed += line.placed;
            total.funded += line.funded;
            total.cancelled += line.cancelled;
            total.rejected += line.rejected;
            total.expired += line.expired;
            total.returned += line.returned;
            total.funded_principal += line.funded_principal;
            total.referral_fees += line.referral_fees;
            line
        })
        .collect();
    Ok(Statement { partner_id: partner_id.to_string(), month: month.to_string(), agents, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(parse_month("2027-02"), Some((d("2027-02-01"), d("2027-02-28"))));
        assert_eq!(parse_month("2028-02"), Some((d("2028-02-01"), d("2028-02-29"))));
        assert_eq!(parse_month("2027-12"), Some((d("2027-12-01"), d("2027-12-31"))));
        for bad in ["2027-13", "2027-00", "2027-1", "27-01", "2027/01", "0000-01", "2027-01-01", "+027-01", ""] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let mut s = String::new();
        csv_row(&mut s, &["a", "b,c", "say \"hi\"", "line\nbreak", ""]);
        assert_eq!(s, "a,\"b,c\",\"say \"\"hi\"\"\",\"line\nbreak\",\r\n");
    }
}

#[cfg(test)]
mod v2_tests {
    use super::*;

    fn a(s: &str) -> Amount {
        s.parse().unwrap()
    }

    /// A `return` row (API.md §13, §15), rendered by the pure renderer: `amount` = `principal` =
    /// `principal_to_bank`, `refund` and `waived` in the two last columns, summed by `total_return`.
    #[test]
    fn a_return_row_carries_refund_and_waived_and_its_total_sums_them() {
        let d: NaiveDate = "2027-03-01".parse().unwrap();
        let m = Movement {
            kind: "return".into(),
            booked_on: d,
            value_date: d,
            bank_id: "bk".into(),
            order_id: "ord_1".into(),
            plan_id: Some("plan_1".into()),
            loan_no: Some("L1".into()),
            installment_seq: None,
            repayment_id: None,
            reference: Some("RET-1".into()),
            amount: a("3000.00"),
            principal: a("3000.00"),
            interest: Amount::ZERO,
            fee: Amount::ZERO,
            penalty: Amount::ZERO,
            refund: a("275.04"),
            waived: a("255.46"),
        };
        let mut totals = Totals::default();
        totals.get_mut("return").unwrap().add(&m);
        let r = Reconciliation { business_date: d, bank_id: Some("bk".into()), closed: true, movements: vec![m], totals };
        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert!(CSV_HEADER.ends_with(",penalty,count,refund,waived"));
        assert_eq!(lines[1], "return,2027-03-01,2027-03-01,bk,ord_1,plan_1,L1,,RET-1,3000.00,3000.00,0.00,0.00,0.00,,275.04,255.46");
        assert_eq!(lines.len(), 1 + 1 + KINDS.len() + 1, "header, the row, nine totals, the last CRLF");
        let total_return = lines.iter().find(|l| l.starts_with("total_return,")).unwrap();
        assert_eq!(*total_return, "total_return,2027-03-01,,bk,,,,,,3000.00,3000.00,0.00,0.00,0.00,1,275.04,255.46");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["totals"]["return"]["waived"], "255.46");
        assert_eq!(json["movements"][0]["refund"], "275.04");
        assert_eq!(KINDS[6..], ["return", "write_off", "recovery"]);
    }
}

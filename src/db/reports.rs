//! Reports read from the books (API.md section 8): a bank's movements booked on one business date,
//! and a partner's monthly statement.

use crate::db::Db;
use chrono::NaiveDate;

/// One movement of a bank's money booked on a date, amounts in fen.
#[derive(Debug, Clone)]
pub struct MovementRow {
    pub kind: String,
    /// The journal entry that booked it: the booking order.
    pub entry_id: Option<i64>,
    pub booked_on: NaiveDate,
    pub value_date: NaiveDate,
    pub bank_id: String,
    pub order_id: String,
    pub plan_id: Option<String>,
    pub loan_no: Option<String>,
    pub installment_seq: Option<i32>,
    pub repayment_id: Option<String>,
    pub reference: Option<String>,
    pub amount_fen: i64,
    pub principal_fen: i64,
    pub interest_fen: i64,
    pub fee_fen: i64,
    pub penalty_fen: i64,
    /// v2, §15: a return's repayments to refund, and its interest, fee and penalty waived.
    pub refund_fen: i64,
    pub waived_fen: i64,
}

/// Every movement booked on `date` (for one bank, or all), in booking order.
///
/// Each is found through the journal entry that booked it, so the report and the journal agree
/// for any date: `plan.opened` (funding), `repayment.recorded` (repayment, by its id),
/// `default.compensated` (compensation; paired with the compensation rows of the same plan and
/// date in order, one entry per row), `exposure.released` (the order's cancellation, rejection or
/// expiry, by the order's final status). Run without JIT ([`crate::db::query_without_jit`]).
pub async fn movements(c: &impl Db, date: NaiveDate, bank_id: Option<&str>) -> Result<Vec<MovementRow>, tokio_postgres::Error> {
    let rows = crate::db::query_without_jit(
        c,
        "WITH comp AS (
                 SELECT c.*, row_number() OVER (PARTITION BY c.plan_id ORDER BY c.id) AS rn
                 FROM compensations c WHERE c.booked_on = $1),
             comp_entries AS (
                 SELECT e.id, e.plan_id, row_number() OVER (PARTITION BY e.plan_id ORDER BY e.id) AS rn
                 FROM journal_entries e WHERE e.kind = 'default.compensated' AND e.booked_on = $1)
             SELECT * FROM (
                 SELECT 'funding'::text AS kind, e.id AS entry_id, e.booked_on, p.funded_on AS value_date, p.bank_id, p.order_id,
                        p.id AS plan_id, p.loan_no, NULL::int4 AS installment_seq, NULL::text AS repayment_id, NULL::text AS reference,
                        p.principal_fen AS amount_fen, p.principal_fen, 0::int8 AS interest_fen, 0::int8 AS fee_fen, 0::int8 AS penalty_fen,
                        0::int8 AS refund_fen, 0::int8 AS waived_fen
                 FROM journal_entries e JOIN plans p ON p.id = e.plan_id
                 WHERE e.kind = 'plan.opened' AND e.booked_on = $1 AND ($2::text IS NULL OR p.bank_id = $2)
                 UNION ALL
                 SELECT 'repayment', e.id, r.booked_on, r.paid_on, p.bank_id, p.order_id, p.id, p.loan_no, NULL, r.id, r.reference,
                        r.amount_fen, r.principal_fen, r.interest_fen, r.fee_fen, r.penalty_fen, 0, 0
                 FROM repayments r JOIN plans p ON p.id = r.plan_id
                 LEFT JOIN journal_entries e ON e.kind = 'repayment.recorded' AND e.booked_on = r.booked_on AND e.reference = r.id
                 WHERE r.booked_on = $1 AND ($2::text IS NULL OR p.bank_id = $2)
                 UNION ALL
                 SELECT 'compensation', ce.id, c.booked_on, c.value_date, p.bank_id, p.order_id, p.id, p.loan_no, c.installment_seq, NULL, NULL,
                        c.amount_fen, c.principal_fen, c.interest_fen, c.fee_fen, c.penalty_fen, 0, 0
                 -- Each plan by key (OFFSET 0 keeps it a lookup per compensation: as a join, all of
                 -- plans was hashed for a day of many conversions).
                 FROM comp c CROSS JOIN LATERAL (SELECT p.id, p.bank_id, p.order_id, p.loan_no FROM plans p WHERE p.id = c.plan_id OFFSET 0) p
                 LEFT JOIN comp_entries ce ON ce.plan_id = c.plan_id AND ce.rn = c.rn
                 WHERE ($2::text IS NULL OR p.bank_id = $2)
                 UNION ALL
                 SELECT CASE o.status WHEN 'expired' THEN 'expiry' WHEN 'cancelled' THEN 'cancellation' WHEN 'rejected' THEN 'rejection'
                             ELSE 'released_' || o.status END,
                        e.id, e.booked_on, o.decided_on, o.bank_id, o.id, NULL, NULL, NULL, NULL, NULL,
                        o.principal_fen, o.principal_fen, 0, 0, 0, 0, 0
                 FROM journal_entries e JOIN orders o ON o.id = e.order_id
                 WHERE e.kind = 'exposure.released' AND e.booked_on = $1 AND ($2::text IS NULL OR o.bank_id = $2)
                 UNION ALL
                 -- v2, §13: completed returns (amount = principal = principal_to_bank).
                 SELECT 'return', e.id, r.booked_on, r.completed_on, p.bank_id, p.order_id, p.id, p.loan_no, NULL, NULL, r.reference,
                        r.principal_to_bank_fen, r.principal_to_bank_fen, 0, 0, 0, r.repayments_to_refund_fen,
                        r.interest_waived_fen + r.fee_waived_fen + r.penalty_waived_fen
                 FROM returns r JOIN plans p ON p.id = r.plan_id
                 LEFT JOIN journal_entries e ON e.kind = 'return.completed' AND e.booked_on = r.booked_on AND e.reference = r.id
                 WHERE r.booked_on = $1 AND r.status = 'completed' AND ($2::text IS NULL OR p.bank_id = $2)
                 UNION ALL
                 -- v2, §14: write-offs and recoveries.
                 SELECT 'write_off', e.id, p.written_off_booked_on, p.written_off_on, p.bank_id, p.order_id, p.id, p.loan_no, NULL, NULL,
                        p.written_off_reference,
                        p.written_off_principal_fen + p.written_off_interest_fen + p.written_off_fee_fen + p.written_off_penalty_fen,
                        p.written_off_principal_fen, p.written_off_interest_fen, p.written_off_fee_fen, p.written_off_penalty_fen, 0, 0
                 FROM plans p LEFT JOIN journal_entries e ON e.kind = 'plan.written_off' AND e.booked_on = $1 AND e.plan_id = p.id
                 WHERE p.written_off_booked_on = $1 AND ($2::text IS NULL OR p.bank_id = $2)
                 UNION ALL
                 SELECT 'recovery', e.id, r.booked_on, r.paid_on, p.bank_id, p.order_id, p.id, p.loan_no, NULL, NULL, r.reference,
                        r.amount_fen, 0, 0, 0, 0, 0, 0
                 FROM recoveries r JOIN plans p ON p.id = r.plan_id
                 LEFT JOIN journal_entries e ON e.kind = 'recovery.recorded' AND e.booked_on = r.booked_on AND e.reference = r.id
                 WHERE r.booked_on = $1 AND ($2::text IS NULL OR p.bank_id = $2)
             ) m
             ORDER BY entry_id NULLS LAST, kind, order_id, installment_seq, repayment_id",
        &[&date, &bank_id],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| MovementRow {
            kind: r.get("kind"),
            entry_id: r.get("entry_id"),
            booked_on: r.get("booked_on"),
            value_date: r.get::<_, Option<NaiveDate>>("value_date").unwrap_or_else(|| r.get("booked_on")),
            bank_id: r.get("bank_id"),
            order_id: r.get("order_id"),
            plan_id: r.get("plan_id"),
            loan_no: r.get("loan_no"),
            installment_seq: r.get("installment_seq"),
            repayment_id: r.get("repayment_id"),
            reference: r.get("reference"),
            amount_fen: r.get("amount_fen"),
            principal_fen: r.get("principal_fen"),
            interest_fen: r.get("interest_fen"),
            fee_fen: r.get("fee_fen"),
            penalty_fen: r.get("penalty_fen"),
            refund_fen: r.get("refund_fen"),
            waived_fen: r.get("waived_fen"),
        })
        .collect())
}

/// One agent's month: counts of events dated in the month, and what its funded orders carried.
#[derive(Debug, Clone, Default)]
pub struct AgentRow {
    pub agent_id: String,
    pub placed: i64,
    pub funded: i64,
    pub cancelled: i64,
    pub rejected: i64,
    pub expired: i64,
    /// API.md §13: devices returned, in the month of `completed_on`.
    pub returned: i64,
    pub funded_principal_fen: i64,
    pub referral_fees_fen: i64,
}

/// A partner's orders with an event in `[first, last]`, grouped by agent (agent id order).
pub async fn partner_month(
    c: &impl Db,
    partner_id: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<AgentRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT coalesce(o.agent_id, '') AS agent_id,
                    count(*) FILTER (WHERE o.created_on BETWEEN $2 AND $3) AS placed,
                    count(*) FILTER (WHERE p.funded_on BETWEEN $2 AND $3) AS funded,
                    count(*) FILTER (WHERE o.status = 'cancelled' AND o.decided_on BETWEEN $2 AND $3) AS cancelled,
                    count(*) FILTER (WHERE o.status = 'rejected' AND o.decided_on BETWEEN $2 AND $3) AS rejected,
                    count(*) FILTER (WHERE o.status = 'expired' AND o.decided_on BETWEEN $2 AND $3) AS expired,
                    count(*) FILTER (WHERE r.completed_on BETWEEN $2 AND $3) AS returned,
                    coalesce(sum(o.principal_fen) FILTER (WHERE p.funded_on BETWEEN $2 AND $3), 0)::int8 AS funded_principal,
                    coalesce(sum(o.partner_referral_fee_fen) FILTER (WHERE p.funded_on BETWEEN $2 AND $3), 0)::int8 AS referral_fees
             FROM orders o LEFT JOIN plans p ON p.order_id = o.id
                  -- At most one completed return per order: its plan is returned once.
                  LEFT JOIN returns r ON r.order_id = o.id AND r.status = 'completed'
             WHERE o.owner_scope = 'partner:' || $1 AND o.partner_id = $1
               AND (o.created_on BETWEEN $2 AND $3 OR p.funded_on BETWEEN $2 AND $3 OR o.decided_on BETWEEN $2 AND $3
                    OR r.completed_on BETWEEN $2 AND $3)
             GROUP BY 1 ORDER BY 1",
            &[&partner_id, &first, &last],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AgentRow {
            agent_id: r.get("agent_id"),
            placed: r.get("placed"),
            funded: r.get("funded"),
            cancelled: r.get("cancelled"),
            rejected: r.get("rejected"),
            expired: r.get("expired"),
            returned: r.get("returned"),
            funded_principal_fen: r.get("funded_principal"),
            referral_fees_fen: r.get("referral_fees"),
        })
        .collect())
}

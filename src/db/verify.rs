//! What ledger verification reads: every balance, every hold, every plan's installments in sum,
//! every bank's stripes and the journal's balances, all in one repeatable-read snapshot. The rules
//! themselves are checked by `service::verify` on these rows, without the database.

use super::Db;
use std::collections::HashMap;

pub struct LineRow {
    pub id: String,
    pub limit_fen: i64,
    pub held_fen: i64,
    pub drawn_fen: i64,
}

pub struct HoldRow {
    pub id: String,
    pub amount_fen: i64,
    pub released_fen: i64,
    pub converted_fen: i64,
    pub voided_fen: i64,
    pub remaining_fen: i64,
}

pub struct PlanRow {
    pub id: String,
    pub principal_fen: i64,
    pub installments: i64,
    pub installments_principal_fen: i64,
    pub paid_principal_fen: i64,
    /// No installment paid (or forgiven) beyond what it owed; `None` for a plan without installments.
    pub parts_within_owed: Option<bool>,
    /// API.md §14: the principal and total written off (0 when never), what was recovered, and
    /// whether anything is still owed on it.
    pub written_off_principal_fen: i64,
    pub written_off_total_fen: Option<i64>,
    pub recovered_fen: i64,
    pub written_off_owes: bool,
    /// API.md §13: the principal a return forgave, and whether a returned plan still owes anything.
    pub waived_principal_fen: i64,
    pub returned_owes: bool,
    /// The unpaid principal of its open installments, as kept for it (`plan_open_principal`,
    /// V35's triggers) and as its installments sum it.
    pub open_unpaid_principal_fen: i64,
    pub installments_open_unpaid_principal_fen: i64,
    /// The bank kept with that figure is the plan's (V36).
    pub kept_bank_is_the_plans: bool,
    /// The plan is not open (neither `active` nor `defaulted`) yet has an open installment: the
    /// aging, which finds late plans by their open installments, relies on this never being so.
    pub closed_with_open_installment: bool,
}

/// A return with what its plan says of it (API.md §13).
pub struct ReturnRow {
    pub id: String,
    pub plan_id: String,
    pub status: String,
    pub plan_status: String,
    /// The plan is frozen, by this return as its latest.
    pub plan_frozen_by_it: bool,
    pub plan_frozen: bool,
    /// This return is its plan's latest (a rejected one may precede a completed one).
    pub is_latest: bool,
}

pub struct StripeRow {
    pub bank_id: String,
    pub stripe: i16,
    pub used_fen: i64,
    /// The principal of the stripe's orders awaiting funding and the unpaid principal of its
    /// active and defaulted plans.
    pub book_fen: i64,
}

pub struct BankRow {
    pub id: String,
    pub limit_fen: i64,
    pub stripe_limits_fen: i64,
    pub exposure_at_cut_fen: Option<i64>,
}

/// A reference the schema does not enforce (sql/V7__lean_order_writes.sql) that points nowhere.
pub struct MissingReference {
    pub rule: String,
    pub object_id: String,
    pub missing: String,
}

/// Everything verification checks, read in the caller's snapshot.
pub struct Books {
    pub journal_entries: i64,
    /// `(entry id, sum of its lines)` of every entry that does not balance.
    pub unbalanced_entries: Vec<(i64, i64)>,
    pub account_balances: HashMap<String, i64>,
    pub lines: Vec<LineRow>,
    pub held_by_holds: HashMap<String, i64>,
    pub holds: Vec<HoldRow>,
    pub missing_references: Vec<MissingReference>,
    pub plans: Vec<PlanRow>,
    pub stripes: Vec<StripeRow>,
    pub banks: Vec<BankRow>,
    /// v2 (API.md §12): pending and voided holds with their orders.
    pub confirmations: Vec<super::holds::HoldOrderRow>,
    /// API.md §15: the closed dates' stored reports (`kind, date, subject, format, body, sha256`).
    pub stored_reports: Vec<(String, chrono::NaiveDate, String, String, Vec<u8>, String)>,
    /// API.md §13: every return, and the plans that are returned or frozen without the return
    /// that would explain it (`(plan id, status, frozen)`).
    pub returns: Vec<ReturnRow>,
    pub unexplained_returns: Vec<(String, String, bool)>,
}

/// Reads the books (the caller holds a read-only repeatable-read transaction).
pub async fn load(c: &impl Db) -> Result<Books, tokio_postgres::Error> {
    let journal_entries: i64 = c.query_one("SELECT count(*) FROM journal_entries", &[]).await?.get(0);
    let unbalanced =
        c.query("SELECT entry_id, sum(amount_fen)::int8 FROM journal_lines GROUP BY entry_id HAVING sum(amount_fen) <> 0", &[]).await?;
    let balances = c.query("SELECT account, sum(amount_fen)::int8 FROM journal_lines GROUP BY account", &[]).await?;
    let held = c.query("SELECT credit_line_id, sum(remaining_fen)::int8 FROM holds GROUP BY credit_line_id", &[]).await?;
    Ok(Books {
        journal_entries,
        unbalanced_entries: unbalanced.iter().map(|r| (r.get(0), r.get(1))).collect(),
        account_balances: balances.iter().map(|r| (r.get(0), r.get(1))).collect(),
        held_by_holds: held.iter().map(|r| (r.get(0), r.get(1))).collect(),
        lines: lines(c).await?,
        holds: holds(c).await?,
        missing_references: missing_references(c).await?,
        plans: plans(c).await?,
        stripes: stripes(c).await?,
        banks: banks(c).await?,
        confirmations: super::holds::verify_rows(c).await?,
        stored_reports: super::report_store::all(c).await?,
        returns: returns(c).await?,
        unexplained_returns: unexplained_returns(c).await?,
    })
}

async fn lines(c: &impl Db) -> Result<Vec<LineRow>, tokio_postgres::Error> {
    let rows = c.query("SELECT id, limit_fen, held_fen, drawn_fen FROM credit_lines", &[]).await?;
    Ok(rows.iter().map(|r| LineRow { id: r.get(0), limit_fen: r.get(1), held_fen: r.get(2), drawn_fen: r.get(3) }).collect())
}

async fn holds(c: &impl Db) -> Result<Vec<HoldRow>, tokio_postgres::Error> {
    let rows = c.query("SELECT id, amount_fen, released_fen, converted_fen, voided_fen, remaining_fen FROM holds", &[]).await?;
    Ok(rows
        .iter()
        .map(|r| HoldRow {
            id: r.get(0),
            amount_fen: r.get(1),
            released_fen: r.get(2),
            converted_fen: r.get(3),
            voided_fen: r.get(4),
            remaining_fen: r.get(5),
        })
        .collect())
}

async fn missing_references(c: &impl Db) -> Result<Vec<MissingReference>, tokio_postgres::Error> {
    let rows = c.query(REFERENCES_MISSING, &[]).await?;
    Ok(rows.iter().map(|r| MissingReference { rule: r.get(0), object_id: r.get(1), missing: r.get(2) }).collect())
}

async fn plans(c: &impl Db) -> Result<Vec<PlanRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT p.id, p.principal_fen, count(i.seq), coalesce(sum(i.principal_fen), 0)::int8, coalesce(sum(i.paid_principal_fen), 0)::int8,
                    bool_and(i.paid_principal_fen <= i.principal_fen AND i.paid_interest_fen + i.waived_fen <= i.interest_fen + i.fee_fen + i.waived_fen
                             AND i.paid_fee_fen <= i.fee_fen AND i.paid_penalty_fen + i.waived_penalty_fen <= i.penalty_fen AND i.compensated_fen
                             <= i.paid_principal_fen + i.paid_interest_fen + i.paid_fee_fen + i.paid_penalty_fen),
                    coalesce(p.written_off_principal_fen, 0),
                    p.written_off_principal_fen + p.written_off_interest_fen + p.written_off_fee_fen + p.written_off_penalty_fen,
                    p.recovered_fen,
                    p.status = 'written_off' AND bool_or(i.written_off_fen = 0 AND i.status IN ('pending', 'overdue')),
                    coalesce(sum(i.waived_principal_fen), 0)::int8,
                    p.status = 'returned' AND bool_or(i.status IN ('pending', 'overdue')
                        OR i.principal_fen - i.paid_principal_fen - i.waived_principal_fen > 0),
                    coalesce(o.open_unpaid_principal_fen, 0),
                    coalesce(sum(i.principal_fen - i.paid_principal_fen) FILTER (WHERE i.status IN ('pending', 'overdue')), 0)::int8,
                    o.bank_id IS NULL OR o.bank_id = p.bank_id,
                    p.status NOT IN ('active', 'defaulted') AND coalesce(bool_or(i.status IN ('pending', 'overdue')), false)
             FROM plans p LEFT JOIN installments i ON i.plan_id = p.id LEFT JOIN plan_open_principal o ON o.plan_id = p.id
             GROUP BY p.id, p.principal_fen, o.open_unpaid_principal_fen, o.bank_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PlanRow {
            id: r.get(0),
            principal_fen: r.get(1),
            installments: r.get(2),
            installments_principal_fen: r.get(3),
            paid_principal_fen: r.get(4),
            parts_within_owed: r.get(5),
            written_off_principal_fen: r.get(6),
            written_off_total_fen: r.get(7),
            recovered_fen: r.get(8),
            written_off_owes: r.get::<_, Option<bool>>(9).unwrap_or(false),
            waived_principal_fen: r.get(10),
            returned_owes: r.get::<_, Option<bool>>(11).unwrap_or(false),
            open_unpaid_principal_fen: r.get(12),
            installments_open_unpaid_principal_fen: r.get(13),
            kept_bank_is_the_plans: r.get(14),
            closed_with_open_installment: r.get(15),
        })
        .collect())
}

async fn returns(c: &impl Db) -> Result<Vec<ReturnRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT r.id, r.plan_id, r.status, p.status, p.return_requested AND p.return_id = r.id, p.return_requested,
                    r.id = (SELECT y.id FROM returns y WHERE y.plan_id = p.id ORDER BY y.seq DESC LIMIT 1)
             FROM returns r JOIN plans p ON p.id = r.plan_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ReturnRow {
            id: r.get(0),
            plan_id: r.get(1),
            status: r.get(2),
            plan_status: r.get(3),
            plan_frozen_by_it: r.get(4),
            plan_frozen: r.get(5),
            is_latest: r.get(6),
        })
        .collect())
}

/// Plans returned without a completed return, or frozen without a requested one.
async fn unexplained_returns(c: &impl Db) -> Result<Vec<(String, String, bool)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT p.id, p.status, p.return_requested FROM plans p
             WHERE (p.status = 'returned' AND NOT EXISTS (SELECT 1 FROM returns r WHERE r.plan_id = p.id AND r.status = 'completed'))
                OR (p.return_requested AND NOT EXISTS (SELECT 1 FROM returns r WHERE r.plan_id = p.id AND r.status = 'requested'))
             LIMIT 1000",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

async fn stripes(c: &impl Db) -> Result<Vec<StripeRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT s.bank_id, s.stripe, s.used_fen,
                    coalesce((SELECT sum(principal_fen) FROM orders o
                              WHERE o.bank_id = s.bank_id AND o.exposure_stripe = s.stripe AND o.status IN ('awaiting_funding', 'awaiting_hold_confirmation')), 0)::int8
                  + coalesce((SELECT sum(i.principal_fen - i.paid_principal_fen) FROM orders o JOIN plans p ON p.order_id = o.id
                              JOIN installments i ON i.plan_id = p.id
                              WHERE o.bank_id = s.bank_id AND o.exposure_stripe = s.stripe AND p.status IN ('active', 'defaulted')), 0)::int8
             FROM bank_exposure_stripes s ORDER BY s.bank_id, s.stripe",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| StripeRow { bank_id: r.get(0), stripe: r.get(1), used_fen: r.get(2), book_fen: r.get(3) }).collect())
}

async fn banks(c: &impl Db) -> Result<Vec<BankRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT b.id, b.exposure_limit_fen, (SELECT coalesce(sum(limit_fen), 0)::int8 FROM bank_exposure_stripes s WHERE s.bank_id = b.id),
                    b.exposure_at_cut_fen FROM banks b",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| BankRow { id: r.get(0), limit_fen: r.get(1), stripe_limits_fen: r.get(2), exposure_at_cut_fen: r.get(3) })
        .collect())
}

/// `(rule, object id, what is missing)` for every order or hold whose reference points nowhere.
const REFERENCES_MISSING: &str = "
    SELECT 'order_references_exist', o.id, 'store ' || o.store_id FROM orders o
     WHERE o.store_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stores s WHERE s.id = o.store_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'partner ' || o.partner_id FROM orders o
     WHERE o.partner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM partners p WHERE p.id = o.partner_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'product ' || o.product_id FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = o.product_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'credit line ' || o.credit_line_id FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM credit_lines l WHERE l.id = o.credit_line_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'bank ' || o.bank_id FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM banks b WHERE b.id = o.bank_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'hold ' || coalesce(o.hold_id, '(none)') FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = o.hold_id AND h.order_id = o.id)
    UNION ALL SELECT 'hold_references_exist', h.id, 'order ' || h.order_id FROM holds h
     WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = h.order_id)
    UNION ALL SELECT 'hold_references_exist', h.id, 'credit line ' || h.credit_line_id FROM holds h
     WHERE NOT EXISTS (SELECT 1 FROM credit_lines l WHERE l.id = h.credit_line_id AND l.provider_id = h.provider_id)
    LIMIT 1000";

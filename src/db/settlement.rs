//! What a provider's settlement file reads (API.md §15): the hold and line movements of its
//! credit lines booked on one date, each found through the journal entry that booked it (so the
//! file and the journal agree), and the provider's held and drawn balances either side of it.

use super::Db;
use chrono::NaiveDate;

/// One movement of a provider's lines, amounts in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRow {
    /// `hold_placed`, `hold_confirmed`, `hold_released`, `hold_converted`, `hold_voided`, `debt_repayment`.
    pub kind: String,
    pub entry_id: i64,
    pub booked_on: NaiveDate,
    pub value_date: NaiveDate,
    pub credit_line_id: String,
    pub hold_id: Option<String>,
    pub order_id: Option<String>,
    pub plan_id: Option<String>,
    pub bank_id: Option<String>,
    pub installment_seq: Option<i32>,
    pub reason: Option<String>,
    pub amount_fen: i64,
    pub principal_fen: i64,
    pub interest_fen: i64,
    pub fee_fen: i64,
    pub penalty_fen: i64,
}

/// The entries of the provider's lines booked on `$2` (found by date, each line by its key: the
/// cost follows the day's entries, not the provider's lines), each with the journal's change of its
/// line's held and drawn, and the entry of the same plan just before it that day (the cause of a
/// release: a repayment, a conversion, a write-off). Compensation rows pair with their entries in
/// order, one entry per row, as the bank's reconciliation pairs them (`db::reports`). What else a
/// row shows is read by key for the entries that show it (an order, a hold, a plan), so no table
/// of the book is read whole: as joins, the planner hashed all of orders, plans and holds (1M rows
/// each on the bench's book) for the few entries that need them.
const MOVEMENTS: &str = "
WITH e AS (
    -- Each line by key; OFFSET 0 keeps it a lookup per entry (as a join, every line of the book
    -- was hashed), and the filter on its output is estimated from the lines' statistics.
    -- `conversions`: the plan's conversions that day up to this entry, so a conversion's own place
    -- among them, and on a release just after one, that conversion's.
    SELECT e.*, lag(e.kind) OVER w AS prev_kind, lag(e.reference) OVER w AS prev_ref,
           count(*) FILTER (WHERE e.kind = 'default.compensated') OVER w AS conversions
    FROM journal_entries e
    CROSS JOIN LATERAL (SELECT c.provider_id FROM credit_lines c WHERE c.id = e.credit_line_id OFFSET 0) line
    WHERE e.booked_on = $2 AND line.provider_id = $1
    WINDOW w AS (PARTITION BY e.plan_id ORDER BY e.id)),
comp AS MATERIALIZED (
    -- Every compensation of the date (the join below keeps this provider's), so that the planner
    -- sizes it from the table's statistics: restricted to e's plans, it was estimated at a few rows.
    -- Materialized so that it is sorted once even when statistics taken before the date was
    -- booked lead the planner to loop over it for each entry.
    SELECT c.*, row_number() OVER (PARTITION BY c.plan_id ORDER BY c.id) AS rn
    FROM compensations c WHERE c.booked_on = $2)
SELECT * FROM (
SELECT CASE e.kind WHEN 'hold.placed' THEN 'hold_placed' WHEN 'hold.released' THEN 'hold_released'
                   WHEN 'default.compensated' THEN 'hold_converted' WHEN 'hold.voided' THEN 'hold_voided'
                   ELSE 'debt_repayment' END AS kind,
       e.id AS entry_id, e.booked_on,
       CASE e.kind
           WHEN 'hold.placed' THEN o.created_on
           WHEN 'hold.voided' THEN
               CASE WHEN h.void_reason = 'returned' THEN (SELECT r.completed_on FROM returns r WHERE r.id = e.reference) ELSE o.decided_on END
           WHEN 'default.compensated' THEN c.value_date
           WHEN 'line.debt_repaid' THEN (SELECT (d.created_at AT TIME ZONE 'Asia/Shanghai')::date FROM debt_repayments d WHERE d.id = e.reference)
           ELSE CASE e.prev_kind
               WHEN 'repayment.recorded' THEN (SELECT r.paid_on FROM repayments r WHERE r.id = e.prev_ref)
               WHEN 'default.compensated' THEN c.value_date
               WHEN 'plan.written_off' THEN (SELECT p.written_off_on FROM plans p WHERE p.id = e.plan_id)
           END
       END AS value_date,
       e.credit_line_id, e.hold_id, e.order_id,
       -- The ids as they were at the event: an unfunded order's void has no plan, a return's has.
       CASE WHEN e.kind = 'hold.placed' THEN NULL ELSE e.plan_id END AS plan_id,
       coalesce(e.bank_id, o.bank_id) AS bank_id,
       -- On a release, c is its cause's compensation: only a conversion shows its own.
       CASE WHEN e.kind = 'default.compensated' THEN c.installment_seq END AS installment_seq,
       -- The hold's own void_reason (sql/V19), not the order's status: a decline leaves the order
       -- `rejected`, a confirmation timeout `expired`, a return `returned`.
       CASE WHEN e.kind = 'hold.voided' THEN h.void_reason END AS reason,
       CASE WHEN e.kind IN ('default.compensated') THEN m.drawn WHEN e.kind = 'line.debt_repaid' THEN -m.drawn
            WHEN e.kind = 'hold.placed' THEN m.held ELSE -m.held END AS amount_fen,
       coalesce(CASE WHEN e.kind = 'default.compensated' THEN c.principal_fen END, 0)::int8 AS principal_fen,
       coalesce(CASE WHEN e.kind = 'default.compensated' THEN c.interest_fen END, 0)::int8 AS interest_fen,
       coalesce(CASE WHEN e.kind = 'default.compensated' THEN c.fee_fen END, 0)::int8 AS fee_fen,
       coalesce(CASE WHEN e.kind = 'default.compensated' THEN c.penalty_fen END, 0)::int8 AS penalty_fen
FROM e
-- The entry's lines by key (an entry without lines has no row).
CROSS JOIN LATERAL (
    SELECT coalesce(sum(l.amount_fen) FILTER (WHERE l.account = 'line:' || e.credit_line_id || ':held'), 0)::int8 AS held,
           coalesce(sum(l.amount_fen) FILTER (WHERE l.account = 'line:' || e.credit_line_id || ':drawn'), 0)::int8 AS drawn
    FROM journal_lines l WHERE l.entry_id = e.id HAVING count(*) > 0) m
-- The order and the hold by key, looked up only for the entries that read them (OFFSET 0 keeps
-- each a lookup; the condition on e skips it for the others).
LEFT JOIN LATERAL (SELECT o.created_on, o.decided_on, o.bank_id FROM orders o
                   WHERE o.id = e.order_id AND (e.kind IN ('hold.placed', 'hold.voided') OR e.bank_id IS NULL) OFFSET 0) o ON true
LEFT JOIN LATERAL (SELECT h.void_reason FROM holds h WHERE h.id = e.hold_id AND e.kind = 'hold.voided' OFFSET 0) h ON true
-- A conversion's compensation, and a release's value date, its conversion's: one join for both,
-- not a subquery per row, which would scan the day's compensations for each (minutes on a day
-- of 30,000 conversions).
LEFT JOIN comp c ON c.plan_id = e.plan_id AND c.rn = e.conversions
                 AND (e.kind = 'default.compensated' OR e.kind = 'hold.released' AND e.prev_kind = 'default.compensated')
WHERE e.kind IN ('hold.placed', 'hold.released', 'default.compensated', 'hold.voided', 'line.debt_repaid')
UNION ALL
-- Confirmations move nothing and have no entry: the hold's amount, booked as sql/V27 keeps it.
SELECT 'hold_confirmed', h.confirmed_entry_seq, h.confirmed_booked_on, (h.confirmed_at AT TIME ZONE 'Asia/Shanghai')::date,
       h.credit_line_id, h.id, h.order_id, NULL, o.bank_id, NULL, NULL, h.amount_fen, 0, 0, 0, 0
FROM holds h JOIN orders o ON o.id = h.order_id
WHERE h.provider_id = $1 AND h.confirmed_booked_on = $2
) m
ORDER BY entry_id";

/// Every movement of `provider_id`'s lines booked on `date`, in booking order.
pub async fn movements(c: &impl Db, provider_id: &str, date: NaiveDate) -> Result<Vec<SettlementRow>, tokio_postgres::Error> {
    let rows = super::query_without_jit(c, MOVEMENTS, &[&provider_id, &date]).await?;
    Ok(rows
        .iter()
        .map(|r| SettlementRow {
            kind: r.get("kind"),
            entry_id: r.get("entry_id"),
            booked_on: r.get("booked_on"),
            value_date: r.get::<_, Option<NaiveDate>>("value_date").unwrap_or_else(|| r.get("booked_on")),
            credit_line_id: r.get("credit_line_id"),
            hold_id: r.get("hold_id"),
            order_id: r.get("order_id"),
            plan_id: r.get("plan_id"),
            bank_id: r.get("bank_id"),
            installment_seq: r.get("installment_seq"),
            reason: r.get("reason"),
            amount_fen: r.get("amount_fen"),
            principal_fen: r.get("principal_fen"),
            interest_fen: r.get("interest_fen"),
            fee_fen: r.get("fee_fen"),
            penalty_fen: r.get("penalty_fen"),
        })
        .collect())
}

/// The provider's held and drawn at the end of the day before `date` and at the end of `date`
/// (fen): its lines' balances now, less what the journal booked on them after each date. One pass
/// over the provider's lines for both; the entries are found by date, so a recent date costs what
/// was booked since. One statement: one snapshot for every read.
pub async fn balances_around(c: &impl Db, provider_id: &str, date: NaiveDate) -> Result<[(i64, i64); 2], tokio_postgres::Error> {
    let row = c
        .query_one(
            "WITH now AS (SELECT coalesce(sum(held_fen), 0)::int8 AS held, coalesce(sum(drawn_fen), 0)::int8 AS drawn
                          FROM credit_lines WHERE provider_id = $1),
             later AS (
                 SELECT e.booked_on > $2 AS after_date,
                        coalesce(sum(l.amount_fen) FILTER (WHERE l.account = 'line:' || e.credit_line_id || ':held'), 0)::int8 AS held,
                        coalesce(sum(l.amount_fen) FILTER (WHERE l.account = 'line:' || e.credit_line_id || ':drawn'), 0)::int8 AS drawn
                 FROM journal_entries e JOIN credit_lines c ON c.id = e.credit_line_id JOIN journal_lines l ON l.entry_id = e.id
                 WHERE e.booked_on >= $2 AND c.provider_id = $1
                 GROUP BY 1)
             SELECT (now.held - coalesce((SELECT sum(held) FROM later), 0))::int8,
                    (now.drawn - coalesce((SELECT sum(drawn) FROM later), 0))::int8,
                    (now.held - coalesce((SELECT held FROM later WHERE after_date), 0))::int8,
                    (now.drawn - coalesce((SELECT drawn FROM later WHERE after_date), 0))::int8
             FROM now",
            &[&provider_id, &date],
        )
        .await?;
    Ok([(row.get(0), row.get(1)), (row.get(2), row.get(3))])
}

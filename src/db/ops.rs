//! The operations API's reads and writes (API.md §16): the portfolio's sums, the aging of the
//! book, its snapshots, the end-of-day run history, search and bulk redelivery.
//!
//! Statuses that other v2 features add (`written_off` plans §14, `pending` holds §12, the
//! `awaiting_hold_confirmation` orders §12, returns' `ret_` ids §13) are counted here by their
//! text, so each reads zero (or absent) until its feature lands and is counted from then on with
//! no change here.

use super::{Db, Tx};
use crate::domain::aging::{AgingRow, THRESHOLDS};
use crate::domain::eod_run::EodTrigger;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// Each bank's orders not yet funded and what they reserve (`bank_id`, `principal`): those
/// awaiting funding through their partial index (V2), those awaiting the provider's confirmation
/// through their pending holds' (V20), never a pass over every order of a bank.
macro_rules! unfunded_by_bank {
    () => {
        "SELECT bank_id, sum(principal_fen) AS principal FROM (
             SELECT o.bank_id, o.principal_fen FROM orders o WHERE o.status = 'awaiting_funding'
             UNION ALL
             SELECT o.bank_id, o.principal_fen FROM holds h JOIN orders o ON o.id = h.order_id
             WHERE h.status = 'pending' AND o.status = 'awaiting_hold_confirmation') u
         GROUP BY bank_id"
    };
}

/// One bank's part of the portfolio, in fen.
#[derive(Debug, Clone)]
pub struct BankBook {
    pub bank_id: String,
    pub exposure_limit_fen: i64,
    pub exposure_used_fen: i64,
    pub plans_active: i64,
    pub plans_defaulted: i64,
    pub plans_written_off: i64,
    pub outstanding_principal_fen: i64,
}

/// Every bank in creation order. A bank's exposure is, by the invariant `verify` checks
/// (`bank_exposure_matches_book`), the principal of its orders not yet funded plus the unpaid
/// principal of its active and defaulted plans: so the plans' outstanding principal is the
/// exposure less those orders, found through the partial index of orders awaiting funding rather
/// than by summing every open installment of the book. Orders awaiting the provider's
/// confirmation (§12) reserve exposure too (found through their pending holds).
pub async fn bank_books(c: &impl Db) -> Result<Vec<BankBook>, tokio_postgres::Error> {
    let rows = c
        .query(
            concat!(
                "WITH unfunded AS (",
                unfunded_by_bank!(),
                ")
             SELECT b.id, b.exposure_limit_fen,
                    coalesce((SELECT sum(used_fen) FROM bank_exposure_stripes s WHERE s.bank_id = b.id), 0)::int8 AS used,
                    coalesce((SELECT principal FROM unfunded u WHERE u.bank_id = b.id), 0)::int8 AS unfunded,
                    coalesce(p.active, 0) AS active, coalesce(p.defaulted, 0) AS defaulted, coalesce(p.written_off, 0) AS written_off
             FROM banks b
             LEFT JOIN (SELECT bank_id, count(*) FILTER (WHERE status = 'active') AS active,
                               count(*) FILTER (WHERE status = 'defaulted') AS defaulted,
                               count(*) FILTER (WHERE status = 'written_off') AS written_off
                        FROM plans GROUP BY bank_id) p ON p.bank_id = b.id
             ORDER BY b.seq"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let used: i64 = r.get("used");
            BankBook {
                bank_id: r.get("id"),
                exposure_limit_fen: r.get("exposure_limit_fen"),
                exposure_used_fen: used,
                plans_active: r.get("active"),
                plans_defaulted: r.get("defaulted"),
                plans_written_off: r.get("written_off"),
                outstanding_principal_fen: (used - r.get::<_, i64>("unfunded")).max(0),
            }
        })
        .collect())
}

/// One provider's part of the portfolio, in fen.
#[derive(Debug, Clone)]
pub struct ProviderBook {
    pub provider_id: String,
    pub lines: i64,
    pub holds_active: i64,
    pub held_fen: i64,
    pub held_pending_fen: i64,
    pub drawn_fen: i64,
}

/// Every provider in creation order: its lines' balances, and its holds by status (a pending
/// hold, §12, counts in its line's `held` and apart in `held_pending`, never in `holds_active`).
pub async fn provider_books(c: &impl Db) -> Result<Vec<ProviderBook>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT p.id, coalesce(l.lines, 0) AS lines, coalesce(l.held, 0)::int8 AS held, coalesce(l.drawn, 0)::int8 AS drawn,
                    coalesce(h.active, 0) AS holds_active, coalesce(h.pending, 0)::int8 AS held_pending
             FROM providers p
             LEFT JOIN (SELECT provider_id, count(*) AS lines, sum(held_fen) AS held, sum(drawn_fen) AS drawn
                        FROM credit_lines GROUP BY provider_id) l ON l.provider_id = p.id
             LEFT JOIN (SELECT provider_id, count(*) FILTER (WHERE status = 'active') AS active,
                               sum(remaining_fen) FILTER (WHERE status = 'pending') AS pending
                        FROM holds WHERE status IN ('active', 'pending') GROUP BY provider_id) h ON h.provider_id = p.id
             ORDER BY p.seq",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ProviderBook {
            provider_id: r.get("id"),
            lines: r.get("lines"),
            holds_active: r.get("holds_active"),
            held_fen: r.get("held"),
            held_pending_fen: r.get("held_pending"),
            drawn_fen: r.get("drawn"),
        })
        .collect())
}

/// The aging of the book as of `as_of`, per bank and bucket, from the installments as they stand:
/// each `active` or `defaulted` plan (one frozen by a return is `active`) in the bucket of the days
/// past due of its oldest installment with anything unpaid due before `as_of`.
///
/// Only the late plans (an open installment due before `as_of`, found by a range scan of the
/// partial index of open installments, V2, which carries their unpaid amounts, V35) are summed:
/// their past-due installments from those rows, their bank and unpaid principal as kept for each
/// plan (`plan_open_principal`, by V35's triggers on installments, the bank since V36). A plan
/// that is not open has no open installment (`verify`: `closed_plan_has_no_open_installment`), so
/// every late plan is open. Every other open plan is `current` with nothing unpaid due, so that
/// bucket is the bank's open plans (counted in one pass) and their unpaid principal less the late
/// plans'. That principal is, by the invariant `verify` checks (`bank_exposure_matches_book`), the
/// bank's exposure in use less its orders not yet funded, as the portfolio reads it
/// ([`bank_books`]). So the cost follows the late plans and the banks' open plans, not every
/// installment of the book: end of day takes this snapshot at every close.
/// [`aging_summed`] is the same answer summed over every open installment.
pub async fn aging(c: &impl Db, as_of: NaiveDate, bank_id: Option<&str>) -> Result<Vec<AgingRow>, tokio_postgres::Error> {
    let thresholds: Vec<i32> = THRESHOLDS.to_vec();
    // For this statement only ([`super::query_with_settings`]): JIT off, since the planner costs
    // the late plans' lookups high enough to compile it, which took longer (about 1.5 s) than
    // running it; room for the late plans' grouping (100,000 late plans took 7 MB), which at the
    // default 4 MB spills to disk;
    // and no parallel workers: end of day takes this snapshot while autovacuum works through
    // what the day changed, and on 2 cores a parallel plan waited for its workers (the bench's
    // nothing-due day 0.39-0.53 s with them, 0.31 s without; the aging over HTTP 578-606 ms
    // with them, 550 ms without).
    let settings = [("jit", "off"), ("work_mem", AGING_WORK_MEM), ("max_parallel_workers_per_gather", "0")];
    let rows = super::query_with_settings(c, &settings, AGING_FROM_LATE_PLANS, &[&as_of, &bank_id, &thresholds]).await?;
    Ok(rows.iter().map(aging_row).collect())
}

/// The aging statement's `work_mem`: enough for the late plans' grouping over the bench's book.
const AGING_WORK_MEM: &str = "64MB";

const AGING_FROM_LATE_PLANS: &str = concat!(
    "
WITH late AS MATERIALIZED (
    -- The late plans with, of their installments due before $1, the unpaid amount and the oldest
    -- with anything unpaid: one range of the partial index of open installments by due date,
    -- which carries their unpaid amounts (V35), index-only.
    SELECT plan_id, sum(unpaid_fen) AS unpaid_due, min(due_on) FILTER (WHERE unpaid_fen > 0) AS oldest
    FROM installments WHERE status IN ('pending', 'overdue') AND due_on < $1
    GROUP BY plan_id
), late_ids AS MATERIALIZED (
    SELECT array_agg(plan_id) AS ids FROM late
), late_kept AS MATERIALIZED (
    -- Each late plan's bank and unpaid principal over every open installment (not yet due ones
    -- included), kept by V35's triggers: all late plans by key in one index scan (a hash join
    -- would read every plan's kept row), then joined (as a join's inner side, the key array would be
    -- searched once per late plan).
    SELECT o.plan_id, o.bank_id, o.open_unpaid_principal_fen FROM plan_open_principal o
    WHERE o.plan_id = ANY((SELECT ids FROM late_ids)::text[]) AND ($2::text IS NULL OR o.bank_id = $2)
), late_rows AS MATERIALIZED (
    -- Materialized: read once here and twice per bank below.
    SELECT k.bank_id, width_bucket(coalesce($1 - l.oldest, 0), $3::int4[]) AS bucket, count(*) AS plans,
           sum(k.open_unpaid_principal_fen) AS principal, sum(l.unpaid_due) AS unpaid_due
    FROM late l JOIN late_kept k ON k.plan_id = l.plan_id GROUP BY 1, 2
), open_plans AS MATERIALIZED (
    -- Each bank's open plans in one pass (the index of open plans by bank when plans' pages are
    -- all-visible, else the table, once for every bank rather than once per bank).
    SELECT bank_id, count(*) AS plans FROM plans
    WHERE status IN ('active', 'defaulted') AND ($2::text IS NULL OR bank_id = $2) GROUP BY bank_id
), unfunded AS (",
    unfunded_by_bank!(),
    "), current_rest AS (
    SELECT b.bank_id, 0 AS bucket,
           b.plans - coalesce((SELECT sum(plans) FROM late_rows l WHERE l.bank_id = b.bank_id), 0) AS plans,
           coalesce((SELECT sum(used_fen) FROM bank_exposure_stripes s WHERE s.bank_id = b.bank_id), 0)
             - coalesce((SELECT principal FROM unfunded u WHERE u.bank_id = b.bank_id), 0)
             - coalesce((SELECT sum(principal) FROM late_rows l WHERE l.bank_id = b.bank_id), 0) AS principal,
           0 AS unpaid_due
    FROM open_plans b
)
SELECT bank_id, bucket, sum(plans)::int8 AS plans, sum(principal)::int8 AS principal, sum(unpaid_due)::int8 AS unpaid_due
FROM (SELECT * FROM late_rows UNION ALL SELECT * FROM current_rest WHERE plans > 0) r
GROUP BY 1, 2 ORDER BY 1, 2"
);

/// The aging as [`aging`] answers it, by its definition: summed over every open installment of
/// the book. A scan of the whole book; tests hold [`aging`] to it.
pub async fn aging_summed(c: &impl Db, as_of: NaiveDate, bank_id: Option<&str>) -> Result<Vec<AgingRow>, tokio_postgres::Error> {
    let thresholds: Vec<i32> = THRESHOLDS.to_vec();
    let rows = c
        .query(
            "WITH open AS (
                 SELECT p.bank_id, i.plan_id, i.due_on, i.principal_fen - i.paid_principal_fen AS principal,
                        i.principal_fen + i.interest_fen + i.fee_fen + i.penalty_fen
                          - i.paid_principal_fen - i.paid_interest_fen - i.paid_fee_fen - i.paid_penalty_fen
                          - i.waived_fen - i.waived_penalty_fen AS unpaid
                 FROM installments i JOIN plans p ON p.id = i.plan_id
                 WHERE i.status IN ('pending', 'overdue') AND p.status IN ('active', 'defaulted')
                   AND ($2::text IS NULL OR p.bank_id = $2)
             ), per_plan AS (
                 SELECT bank_id, plan_id, sum(principal) AS principal,
                        coalesce(sum(unpaid) FILTER (WHERE due_on < $1), 0) AS unpaid_due,
                        coalesce($1 - min(due_on) FILTER (WHERE due_on < $1 AND unpaid > 0), 0) AS days
                 FROM open GROUP BY bank_id, plan_id
             )
             SELECT bank_id, width_bucket(days, $3::int4[]) AS bucket, count(*) AS plans,
                    sum(principal)::int8 AS principal, sum(unpaid_due)::int8 AS unpaid_due
             FROM per_plan GROUP BY 1, 2 ORDER BY 1, 2",
            &[&as_of, &bank_id, &thresholds],
        )
        .await?;
    Ok(rows.iter().map(aging_row).collect())
}

fn aging_row(r: &tokio_postgres::Row) -> AgingRow {
    AgingRow {
        bank_id: r.get("bank_id"),
        bucket: r.get("bucket"),
        plans: r.get("plans"),
        outstanding_principal_fen: r.get("principal"),
        unpaid_due_fen: r.get("unpaid_due"),
    }
}

/// Stores the aging of a date being closed (in its closing transaction).
pub async fn store_aging_snapshot(tx: &Tx<'_>, date: NaiveDate, rows: &[AgingRow]) -> Result<(), tokio_postgres::Error> {
    let buckets = serde_json::to_value(rows).expect("aging rows are plain data");
    tx.execute("INSERT INTO aging_snapshots (business_date, buckets) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&date, &buckets]).await?;
    Ok(())
}

/// The snapshot of a closed date, when one was taken. A stored row this version cannot read is
/// a bug in what wrote it: the error names the date.
pub async fn aging_snapshot(c: &impl Db, date: NaiveDate) -> Result<Option<Result<Vec<AgingRow>, String>>, tokio_postgres::Error> {
    let row = c.query_opt("SELECT buckets FROM aging_snapshots WHERE business_date = $1", &[&date]).await?;
    Ok(row
        .map(|r| serde_json::from_value::<Vec<AgingRow>>(r.get(0)).map_err(|e| format!("the aging snapshot of {date} does not read: {e}"))))
}

/// One end-of-day run as recorded.
#[derive(Debug, Clone)]
pub struct EodRun {
    pub seq: i64,
    pub business_date: NaiveDate,
    /// The stored text; see [`EodTrigger`].
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub summary: Value,
}

/// What a finished run records.
pub struct NewEodRun<'a> {
    pub business_date: NaiveDate,
    pub trigger: EodTrigger,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub summary: &'a Value,
}

pub async fn record_eod_run(c: &impl Db, run: &NewEodRun<'_>) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO eod_runs (business_date, trigger, started_at, finished_at, duration_ms, summary) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&run.business_date, &run.trigger.as_str(), &run.started_at, &run.finished_at, &run.duration_ms, run.summary],
    )
    .await?;
    Ok(())
}

/// Runs newest first, before `before_seq` (0: from the newest).
pub async fn eod_runs(c: &impl Db, before_seq: i64, limit: i64) -> Result<Vec<EodRun>, tokio_postgres::Error> {
    let before = if before_seq <= 0 { i64::MAX } else { before_seq };
    let rows = c
        .query(
            "SELECT seq, business_date, trigger, started_at, finished_at, duration_ms, summary FROM eod_runs
             WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            &[&before, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| EodRun {
            seq: r.get(0),
            business_date: r.get(1),
            trigger: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            duration_ms: r.get(5),
            summary: r.get(6),
        })
        .collect())
}

/// The ids of the orders `q` names, newest first, at most `limit`: by `out_order_no` (any owner),
/// a plan's `loan_no` (any bank), or an engine id of the order, its plan, its hold, its line or
/// one of its returns. Each branch is a lookup by a unique or indexed key.
pub async fn search_order_ids(c: &impl Db, q: &str, limit: i64) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT o.id FROM orders o WHERE o.id IN (
                 SELECT id FROM orders WHERE out_order_no = $1 OR id = $1
                 UNION SELECT order_id FROM plans WHERE loan_no = $1 OR id = $1
                 UNION SELECT order_id FROM holds WHERE id = $1 OR credit_line_id = $1
                 UNION SELECT order_id FROM returns WHERE id = $1)
             ORDER BY o.seq DESC LIMIT $2",
            &[&q, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every dead notice matching the filters becomes pending from attempt one, due now, as the
/// single redelivery does; like it, only where the recipient has a webhook URL now (the others
/// stay dead: there is nowhere to deliver them). Answers how many.
pub async fn redeliver_dead(
    tx: &Tx<'_>,
    recipient: Option<(&str, &str)>,
    created_after: Option<DateTime<Utc>>,
) -> Result<u64, tokio_postgres::Error> {
    let (kind, id) = recipient.unzip();
    tx.execute(
        "UPDATE notices n SET state = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
         WHERE n.state = 'dead'
           AND ($1::text IS NULL OR (n.recipient_kind = $1 AND n.recipient_id = $2))
           AND ($3::timestamptz IS NULL OR n.created_at > $3)
           AND CASE n.recipient_kind
                 WHEN 'bank' THEN EXISTS (SELECT 1 FROM banks b WHERE b.id = n.recipient_id AND b.webhook_url IS NOT NULL)
                 WHEN 'provider' THEN EXISTS (SELECT 1 FROM providers p WHERE p.id = n.recipient_id AND p.webhook_url IS NOT NULL)
                 ELSE false END",
        &[&kind, &id, &created_after],
    )
    .await
}

/// Does a bank of this id exist?
pub async fn bank_exists(c: &impl Db, id: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT 1 FROM banks WHERE id = $1", &[&id]).await?.is_some())
}

//! End of day for a business date D (API.md section 6): expire unfunded orders, mark overdue,
//! accrue penalty, convert holds past grace, report shortfalls. Set-based over what is due only,
//! in bounded chunks each in its own transaction, one run at a time across instances.

use super::lifecycle::{Book, Effects, load_books};
use super::order_notices::OrderRefs;
use crate::clock::Clock;
use crate::db::notices::record;
use crate::db::orders::{self as orders_db, Hold, Order};
use crate::db::{Tx, business_days};
use crate::domain::notice::{InstallmentOverdue, Notice, OrderExpired, Recipient};
use crate::domain::status::{InstallmentStatus, OrderStatus, PlanStatus, VoidReason};
use crate::error::{ApiError, ApiResult, ErrorCode};
use chrono::NaiveDate;
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Instant;

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Counted {
    pub count: i64,
    pub amount: crate::domain::money::Amount,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EodSummary {
    pub business_date: NaiveDate,
    pub overdue_marked: i64,
    pub penalties: Counted,
    pub compensations: Counted,
    pub uncovered: Counted,
    pub holds_expired: i64,
    /// v2 (API.md §12): pending holds timed out by this run.
    pub confirmations_timed_out: i64,
    /// API.md §14: defaulted plans written off as aged, and their totals.
    pub write_offs: Counted,
}

/// A run that booked this much refreshes the statistics its reports are planned on
/// ([`crate::db::report_store::analyze_booked_tables`]); a smaller day does not move them.
const ANALYZE_AFTER_BOOKINGS: i64 = 10_000;

#[derive(Default)]
struct Totals {
    overdue_marked: i64,
    penalties: (i64, i64),
    compensations: (i64, i64),
    uncovered: (i64, i64),
    holds_expired: i64,
    confirmations_timed_out: i64,
    write_offs: (i64, i64),
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        let sum = |a: (i64, i64), b: (i64, i64)| (a.0 + b.0, a.1 + b.1);
        self.overdue_marked += o.overdue_marked;
        self.penalties = sum(self.penalties, o.penalties);
        self.compensations = sum(self.compensations, o.compensations);
        self.uncovered = sum(self.uncovered, o.uncovered);
        self.holds_expired += o.holds_expired;
        self.confirmations_timed_out += o.confirmations_timed_out;
        self.write_offs = sum(self.write_offs, o.write_offs);
    }

    /// Rows of plans and orders this run booked something on.
    fn bookings(&self) -> i64 {
        self.overdue_marked
            + self.compensations.0
            + self.uncovered.0
            + self.holds_expired
            + self.confirmations_timed_out
            + self.write_offs.0
    }

    fn summary(&self, date: NaiveDate) -> EodSummary {
        let c = |(count, fen): (i64, i64)| Counted { count, amount: crate::domain::money::Amount::from_fen(fen) };
        EodSummary {
            business_date: date,
            overdue_marked: self.overdue_marked,
            penalties: c(self.penalties),
            compensations: c(self.compensations),
            uncovered: c(self.uncovered),
            holds_expired: self.holds_expired,
            confirmations_timed_out: self.confirmations_timed_out,
            write_offs: c(self.write_offs),
        }
    }
}

/// Runs end of day for `date`, waiting for any other run to finish first.
#[tracing::instrument(skip_all, fields(business_date = %date))]
pub async fn run(
    pool: &Pool,
    clock: &dyn Clock,
    date: NaiveDate,
    allow_future_dates: bool,
    chunk_size: u32,
    trigger: crate::domain::eod_run::EodTrigger,
) -> ApiResult<EodSummary> {
    let client = pool.get().await?;
    business_days::lock_end_of_day(&**client).await?;
    let after_today = || date > clock.today() && !allow_future_dates;
    // ---- operations (API.md §16): every run that was not refused is recorded, under the lock ----
    let (started_at, started) = (clock.now(), Instant::now());
    let result = match run_locked(pool, &client, clock, date, after_today, chunk_size.clamp(1, 100_000) as i64).await {
        Ok(summary) => {
            super::ops::record_run(&**client, clock, trigger, &summary, started_at, started).await;
            Ok(summary)
        }
        Err(e) => Err(e),
    };
    // ---- end of operations ----
    if let Err(e) = business_days::unlock_end_of_day(&**client).await {
        tracing::error!(error = %e, "releasing the end-of-day lock failed; dropping the connection");
        let _ = deadpool_postgres::Object::take(client);
    }
    result
}

/// Refusals in API.md §1's order: the regression (a state, 409) before a date after today (a check
/// against the clock, 422), which also holds for running the last date again.
async fn run_locked(
    pool: &Pool,
    client: &deadpool_postgres::Object,
    clock: &dyn Clock,
    date: NaiveDate,
    after_today: impl Fn() -> bool,
    chunk: i64,
) -> ApiResult<EodSummary> {
    let last = business_days::last_closed(&***client).await?;
    if let Some(last) = last
        && date < last
    {
        return Err(ApiError::new(
            ErrorCode::BusinessDateRegression,
            format!("{last} is already closed; end of day cannot go back to {date}"),
        )
        .field("business_date")
        .details(json!({ "last_closed": last })));
    }
    if after_today() {
        return Err(ApiError::new(ErrorCode::InvalidDate, "business_date is after today").field("business_date"));
    }
    if last == Some(date) {
        return Ok(Totals::default().summary(date));
    }
    if crate::domain::dates::next_date(date).is_none() {
        // Whatever arrives after a closed date is booked on the next one, and there is none.
        return Err(ApiError::new(
            ErrorCode::InvalidDate,
            format!("{date} is the calendar's last date and cannot be closed: nothing could be booked after it"),
        )
        .field("business_date"));
    }
    let started = Instant::now();
    tracing::info!(business_date = %date, "end of day started");
    // Booked first (API.md §8: confirmation timeouts, then funding expiries, then conversions).
    let confirmations_timed_out = super::holds::time_out_for_end_of_day(pool, clock.now(), date, chunk).await?;
    let mut totals = Totals { confirmations_timed_out, ..Totals::default() };
    expire_orders(pool, date, chunk, &mut totals).await?;
    process_plans(pool, date, chunk, &mut totals).await?;
    // After the conversions, so that a plan this run defaulted is written off too once aged.
    let written_off = super::write_offs::write_off_aged(pool, date, chunk).await?;
    totals.write_offs = (written_off.count, written_off.amount_fen);
    let summary = totals.summary(date);
    let summary_json = serde_json::to_value(&summary).unwrap_or(Value::Null);
    let mut closing = pool.get().await?;
    let tx = crate::db::Tx::begin(&mut closing).await?;
    crate::db::business_days::close(&tx, date, &summary_json).await?;
    super::ops::snapshot_aging(&tx, last, date).await?; // operations (API.md §16): the aging of each date closed
    tx.commit().await?;
    // API.md §15: the dates just closed are frozen, their reports stored and announced.
    let freezing = Instant::now();
    if totals.bookings() >= ANALYZE_AFTER_BOOKINGS {
        crate::db::report_store::analyze_booked_tables(&**pool.get().await?).await?;
    }
    super::report_store::freeze_closed(pool, last, date).await?;
    tracing::info!(business_date = %date, elapsed_ms = freezing.elapsed().as_millis() as u64, "end of day: closed dates' reports stored");
    tracing::info!(business_date = %date, elapsed_ms = started.elapsed().as_millis() as u64, summary = %summary_json, "end of day closed");
    Ok(summary)
}

/// Orders still awaiting funding whose deadline's date is before D: the hold is voided. They are
/// booked in order of the orders' creation (API.md §8), whatever their deadlines. The orders are
/// found once, then expired a chunk per transaction, so the loop ends with the work found; an
/// order placed meanwhile expires in a later end of day, as one placed after the run would.
async fn expire_orders(pool: &Pool, date: NaiveDate, chunk: i64, totals: &mut Totals) -> ApiResult<()> {
    let started = Instant::now();
    let found = orders_db::expirable(&**pool.get().await?, date).await?;
    let chunk = usize::try_from(chunk).expect("the chunk size is clamped to 1..=100000");
    let max_chunks = found.len().div_ceil(chunk);
    let (mut chunks, mut expired) = (0, 0);
    for ids in found.chunks(chunk) {
        let mut client = pool.get().await?;
        let tx = Tx::begin(&mut client).await?;
        // Those cancelled, rejected or funded since they were found are left out.
        let orders = orders_db::lock_expirable(&tx, ids, date).await?;
        let notices = expire_chunk(&tx, &orders, date).await?;
        record(&tx, &notices).await?;
        tx.commit().await?;
        chunks += 1;
        expired += orders.len();
        totals.holds_expired += orders.len() as i64;
        tracing::info!(business_date = %date, chunks, orders = totals.holds_expired, elapsed_ms = started.elapsed().as_millis() as u64, "end of day: expiring unfunded orders");
    }
    assert!(
        chunks == max_chunks && expired <= found.len(),
        "expiry ran one chunk per {chunk} orders found, and expired no more than were found"
    );
    Ok(())
}

/// Voids the holds of a chunk of locked orders in one apply, then marks them expired: the notices
/// about each, in the orders' order.
async fn expire_chunk(tx: &Tx<'_>, orders: &[Order], date: NaiveDate) -> ApiResult<Vec<Notice>> {
    let hold_ids: Vec<String> = orders.iter().map(|o| o.hold_id.clone()).collect();
    let holds: std::collections::BTreeMap<String, Hold> =
        orders_db::lock_holds(tx, &hold_ids).await?.into_iter().map(|h| (h.id.clone(), h)).collect();
    let mut fx = Effects::default();
    for order in orders {
        assert_eq!(order.status, OrderStatus::AwaitingFunding, "only orders awaiting funding expire");
        // holds.order_id lost its foreign key (V7): a missing hold is stored data gone wrong.
        let hold = holds.get(&order.hold_id).ok_or_else(|| {
            ApiError::internal_because("Failed to expire an order", format!("order {} has no hold {}", order.id, order.hold_id))
        })?;
        fx.void(order, hold, VoidReason::Expired, "exposure.released", date);
    }
    let mut applied = fx.apply(tx).await?;
    let mut notices = Vec::with_capacity(orders.len() * 3);
    for order in orders {
        let hold = applied.holds.remove(&order.hold_id).expect("apply wrote every hold it voided");
        let order = orders_db::set_status(tx, &order.id, OrderStatus::Expired, Some("funding timeout"), Some(date)).await?;
        let refs = OrderRefs::of_order(&order);
        let expired = OrderExpired { amount: order.principal, principal: order.principal };
        notices.push(Notice::OrderExpired(refs.about(Recipient::Bank(order.bank_id.clone()), expired)));
        notices.push(super::orders::hold_voided(&refs, &hold));
        notices.push(super::orders::order_updated(&refs, &order));
    }
    Ok(notices)
}

/// Active plans with an unpaid installment due before D (or on D with no grace), a chunk of plans
/// per transaction. Two chunks are in flight: the next one is locked, loaded and decided (on its
/// own connection) while the current one's writes are applied and committed, and each applies only
/// once the one before committed, so bookings keep the plans' creation order (API.md §8) while the
/// reads of one chunk overlap the writes of the other. The chunks' plans are disjoint, and loading
/// locks only a chunk's own plans and holds, so the two never wait on each other; what they share
/// (credit lines, exposure stripes) is locked and moved by deltas in the apply, after the commit
/// before it.
async fn process_plans(pool: &Pool, date: NaiveDate, chunk: i64, totals: &mut Totals) -> ApiResult<()> {
    use futures_util::StreamExt;
    type ChunkRun<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<(Totals, usize)>> + Send + 'a>>;
    let started = Instant::now();
    let candidates = due_plans(pool, date).await?;
    tracing::info!(business_date = %date, plans = candidates.len(), elapsed_ms = started.elapsed().as_millis() as u64, "end of day: plans with something due");
    let chunk = usize::try_from(chunk).expect("the chunk size is clamped to 1..=100000");
    let max_chunks = candidates.len().div_ceil(chunk);
    let mut parts = candidates.chunks(chunk);
    let mut previous: Option<tokio::sync::oneshot::Receiver<()>> = None;
    let mut start_next = || -> Option<ChunkRun<'_>> {
        let ids = parts.next()?;
        let (committed, next_may_apply) = tokio::sync::oneshot::channel();
        Some(Box::pin(close_chunk(pool, ids, date, previous.replace(next_may_apply), committed)))
    };
    // At most two in flight, answered in order.
    let mut running = futures_util::stream::FuturesOrdered::new();
    running.extend(start_next());
    running.extend(start_next());
    let (mut chunks, mut plans_done) = (0, 0);
    while let Some(done) = running.next().await {
        let (chunk_totals, plans) = done?;
        running.extend(start_next());
        totals.add(&chunk_totals);
        chunks += 1;
        plans_done += plans;
        tracing::info!(business_date = %date, chunks, plans = plans_done, elapsed_ms = started.elapsed().as_millis() as u64, "end of day: due installments");
    }
    assert!(chunks == max_chunks && plans_done == candidates.len(), "one chunk per {chunk} plans found, each plan found in one");
    Ok(())
}

/// One chunk of [`process_plans`]: locks and loads its plans and decides their day, then waits
/// for the chunk before it to commit (`after`; dropped unsent when that one failed, and then this
/// one rolls back too), applies, commits and lets the next one apply. Answers its totals.
async fn close_chunk(
    pool: &Pool,
    ids: &[String],
    date: NaiveDate,
    after: Option<tokio::sync::oneshot::Receiver<()>>,
    committed: tokio::sync::oneshot::Sender<()>,
) -> ApiResult<(Totals, usize)> {
    let mut client = pool.get().await?;
    let tx = Tx::begin(&mut client).await?;
    let mut books = load_books(&tx, ids).await?;
    // Locked in id order, the one lock order of every multi-plan transaction; booked in the
    // plans' creation order (API.md §8), the order `due_plans` answers.
    let position: std::collections::HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    books.sort_by_key(|b| position.get(b.plan.id.as_str()).copied());
    let mut fx = Effects::default();
    let mut totals = Totals::default();
    // A plan frozen by a requested return is left alone (API.md §13); once the return is
    // rejected, a later run catches it up (penalty counts from the due dates).
    for book in books.iter_mut().filter(|b| b.plan.status == PlanStatus::Active && !b.plan.return_requested) {
        close_day(book, date, &mut fx, &mut totals);
    }
    totals.compensations = (fx.compensated.count, fx.compensated.amount_fen);
    totals.uncovered = (fx.uncovered.count, fx.uncovered.amount_fen);
    if let Some(after) = after {
        after.await.map_err(|_| ApiError::internal_because("End of day stopped", "the chunk before this one failed"))?;
    }
    fx.apply(&tx).await?;
    tx.commit().await?;
    // The next chunk may have failed already and dropped its end: nothing waits then.
    let _ = committed.send(());
    Ok((totals, ids.len()))
}

/// The plans with an unpaid installment due before D, or on D when their product has no grace:
/// range scans of the partial index of open installments, so the cost follows what is due, not
/// the book. Plans that are not active any more are skipped when locked. In order of the plans'
/// creation, the order their conversions are booked in (API.md §8).
async fn due_plans(pool: &Pool, date: NaiveDate) -> ApiResult<Vec<String>> {
    let client = pool.get().await?;
    let due = crate::db::plans::due_plan_ids(&**client, date).await?;
    if due.is_empty() {
        return Ok(due);
    }
    Ok(crate::db::plans::in_creation_order(&**client, &due).await?)
}

/// One plan's end of day: mark overdue, accrue penalty, then convert past grace oldest first,
/// stopping at the first shortfall.
fn close_day(book: &mut Book, date: NaiveDate, fx: &mut Effects, totals: &mut Totals) {
    let rate = book.penalty_daily_rate;
    for i in 0..book.insts.len() {
        let inst = &mut book.insts[i];
        if inst.is_settled() || inst.due_on >= date {
            continue;
        }
        let added = inst.bring_up_to(date, rate);
        if added.is_positive() {
            totals.penalties.0 += 1;
            totals.penalties.1 += added.fen();
        }
        if book.statuses[i] == InstallmentStatus::Pending {
            totals.overdue_marked += 1;
            let (seq, due_on, unpaid) = (inst.seq, inst.due_on, inst.unpaid_total());
            let overdue = InstallmentOverdue { installment_seq: seq, due_on, amount: unpaid };
            fx.notices.push(Notice::InstallmentOverdue(book.bank_notice(overdue)));
        }
        book.touch(i);
    }
    for i in 0..book.insts.len() {
        let inst = &book.insts[i];
        if inst.is_settled() || date < inst.due_on + chrono::Duration::days(book.grace_days) {
            continue;
        }
        let shortfall = book.compensate_installment(fx, i, date, date);
        if shortfall.is_positive() {
            book.default_uncovered(fx, i, shortfall);
            break;
        }
    }
    if book.plan.status == PlanStatus::Active {
        book.release_to_target(fx, date);
        book.settle_if_paid_off(fx, date);
    }
    book.collect_installments(fx, Some(date));
}

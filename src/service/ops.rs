//! The operations API (API.md §16): the portfolio now, the aging of the book (a closed date's
//! from its snapshot), the end-of-day run history, search, and bulk redelivery of dead notices.
//! The console (`crate::console`) calls these same functions.

use super::Deps;
use super::eod::EodSummary;
use super::orders::{OrderView, load_view};
use crate::clock::Clock;
use crate::db::ops::{self as db, NewEodRun};
use crate::db::{Db, Tx, business_days};
use crate::domain::aging::{AgingRow, BucketView, summarize};
use crate::domain::eod_run::EodTrigger;
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult, ErrorCode};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Instant;

/// Plans by status (API.md §16).
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanCounts {
    pub active: i64,
    pub defaulted: i64,
    pub written_off: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BankPortfolio {
    pub bank_id: String,
    pub exposure_limit: Amount,
    pub exposure_used: Amount,
    pub plans: PlanCounts,
    pub outstanding_principal: Amount,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderPortfolio {
    pub provider_id: String,
    pub lines: i64,
    pub holds_active: i64,
    pub held: Amount,
    pub held_pending: Amount,
    pub drawn: Amount,
}

/// The sums of every bank's and provider's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortfolioTotals {
    pub exposure_limit: Amount,
    pub exposure_used: Amount,
    pub plans: PlanCounts,
    pub outstanding_principal: Amount,
    pub lines: i64,
    pub holds_active: i64,
    pub held: Amount,
    pub held_pending: Amount,
    pub drawn: Amount,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Portfolio {
    pub banks: Vec<BankPortfolio>,
    pub providers: Vec<ProviderPortfolio>,
    pub totals: PortfolioTotals,
}

/// `GET /v1/admin/portfolio`: every bank and provider now, read on one snapshot so that the
/// totals agree with the rows.
#[tracing::instrument(skip_all)]
pub async fn portfolio(deps: &Deps) -> ApiResult<Portfolio> {
    let mut client = deps.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let banks = db::bank_books(&tx).await?;
    let providers = db::provider_books(&tx).await?;
    tx.commit().await?;
    let fen = Amount::from_fen;
    let sum = |f: fn(&db::BankBook) -> i64| banks.iter().map(f).sum::<i64>();
    let psum = |f: fn(&db::ProviderBook) -> i64| providers.iter().map(f).sum::<i64>();
    let totals = PortfolioTotals {
        exposure_limit: fen(sum(|b| b.exposure_limit_fen)),
        exposure_used: fen(sum(|b| b.exposure_used_fen)),
        plans: PlanCounts {
            active: sum(|b| b.plans_active),
            defaulted: sum(|b| b.plans_defaulted),
            written_off: sum(|b| b.plans_written_off),
        },
        outstanding_principal: fen(sum(|b| b.outstanding_principal_fen)),
        lines: psum(|p| p.lines),
        holds_active: psum(|p| p.holds_active),
        held: fen(psum(|p| p.held_fen)),
        held_pending: fen(psum(|p| p.held_pending_fen)),
        drawn: fen(psum(|p| p.drawn_fen)),
    };
    let banks = banks
        .into_iter()
        .map(|b| BankPortfolio {
            plans: PlanCounts { active: b.plans_active, defaulted: b.plans_defaulted, written_off: b.plans_written_off },
            exposure_limit: fen(b.exposure_limit_fen),
            exposure_used: fen(b.exposure_used_fen),
            outstanding_principal: fen(b.outstanding_principal_fen),
            bank_id: b.bank_id,
        })
        .collect();
    let providers = providers
        .into_iter()
        .map(|p| ProviderPortfolio {
            held: fen(p.held_fen),
            held_pending: fen(p.held_pending_fen),
            drawn: fen(p.drawn_fen),
            lines: p.lines,
            holds_active: p.holds_active,
            provider_id: p.provider_id,
        })
        .collect();
    Ok(Portfolio { banks, providers, totals })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Aging {
    pub as_of: NaiveDate,
    pub buckets: Vec<BucketView>,
}

/// `GET /v1/admin/aging?as_of=&bank_id=`: a closed date from its snapshot (so it never changes);
/// an open date, a closed one without a snapshot (closed before V25), or today when `as_of` is
/// absent, computed now as of that date.
#[tracing::instrument(skip_all, fields(as_of = ?as_of, bank_id = ?bank_id))]
pub async fn aging(deps: &Deps, as_of: Option<NaiveDate>, bank_id: Option<&str>) -> ApiResult<Aging> {
    let as_of = as_of.unwrap_or_else(|| deps.clock.today());
    let mut client = deps.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    if let Some(bank) = bank_id
        && !db::bank_exists(&tx, bank).await?
    {
        return Err(ApiError::new(ErrorCode::UnknownReference, format!("no bank {bank}")).field("bank_id"));
    }
    let closed = business_days::last_closed(&tx).await?.is_some_and(|last| as_of <= last);
    let stored = if closed { db::aging_snapshot(&tx, as_of).await? } else { None };
    let rows = match stored {
        Some(rows) => rows.map_err(|e| ApiError::internal_because("Failed to read an aging snapshot", e))?,
        None => db::aging(&tx, as_of, bank_id).await?,
    };
    tx.commit().await?;
    Ok(Aging { as_of, buckets: summarize(&rows, bank_id) })
}

/// The dates a run closes (after `last`, through `date`) get their aging snapshot, in the
/// closing transaction so that nothing booked on them is missed or counted twice. The first run
/// ever closes every earlier date too, but only `date` is snapshotted: the earlier ones had no
/// book this service kept. One aging query per date: a run closes one date but after a pause.
pub async fn snapshot_aging(tx: &Tx<'_>, last: Option<NaiveDate>, date: NaiveDate) -> ApiResult<()> {
    let first = last.and_then(crate::domain::dates::next_date).unwrap_or(date);
    let days = (date - first).num_days().max(0);
    for offset in 0..=days {
        let day = first + chrono::Duration::days(offset);
        let rows: Vec<AgingRow> = db::aging(tx, day, None).await?;
        db::store_aging_snapshot(tx, day, &rows).await?;
    }
    Ok(())
}

/// Records a run that was not refused (reruns of the last date, with zero counts, included).
/// The day is closed whatever happens here: a failure to record it is logged with its cause,
/// not answered as the run's failure.
pub async fn record_run(
    c: &impl Db,
    clock: &dyn Clock,
    trigger: EodTrigger,
    summary: &EodSummary,
    started_at: DateTime<Utc>,
    started: Instant,
) {
    let summary_json = serde_json::to_value(summary).unwrap_or(Value::Null);
    // The duration is measured, not read off the clock: a test's clock may stand still.
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let run = NewEodRun {
        business_date: summary.business_date,
        trigger,
        started_at,
        finished_at: clock.now().max(started_at),
        duration_ms,
        summary: &summary_json,
    };
    if let Err(e) = db::record_eod_run(c, &run).await {
        tracing::error!(business_date = %summary.business_date, trigger = trigger.as_str(), error = %e, "recording the end-of-day run failed");
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EodRunView {
    #[serde(skip)]
    pub seq: i64,
    pub business_date: NaiveDate,
    /// `schedule`, `api` or `cli`.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// The run's answer (API.md §6).
    #[schema(value_type = Object)]
    pub summary: Value,
}

/// `GET /v1/admin/eod-runs`: newest first, `limit + 1` rows before `before_seq` (0: the newest).
pub async fn eod_runs(deps: &Deps, before_seq: i64, limit: i64) -> ApiResult<Vec<EodRunView>> {
    let client = deps.pool.get().await?;
    let runs = db::eod_runs(&**client, before_seq, limit).await?;
    Ok(runs
        .into_iter()
        .map(|r| EodRunView {
            seq: r.seq,
            business_date: r.business_date,
            trigger: r.trigger,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            summary: r.summary,
        })
        .collect())
}

/// The most orders a search answers.
pub const SEARCH_MAX: i64 = 200;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    pub data: Vec<OrderView>,
}

/// `GET /v1/admin/search?q=`: the orders `q` names, newest first, each as `GET /v1/orders/{id}`
/// answers it, all read on one snapshot.
#[tracing::instrument(skip_all)]
pub async fn search(deps: &Deps, q: &str) -> ApiResult<SearchResult> {
    let mut client = deps.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let ids = db::search_order_ids(&tx, q, SEARCH_MAX).await?;
    let mut views = Vec::with_capacity(ids.len());
    for id in &ids {
        let order = crate::db::orders::get(&tx, id)
            .await?
            .ok_or_else(|| ApiError::internal_because("Failed to load a found order", format!("order {id} vanished in one snapshot")))?;
        views.push(load_view(&tx, order).await?);
    }
    tx.commit().await?;
    Ok(SearchResult { data: views })
}

/// What bulk redelivery acts on: dead notices, of one recipient and created after an instant
/// when given.
pub struct RedeliverFilter {
    pub recipient: Option<(String, String)>,
    pub created_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redelivered {
    pub count: u64,
}

/// `POST /v1/admin/notices/redeliver`: every matching dead notice pending again from attempt
/// one, as the single redelivery (§7); repeating it finds nothing more to do.
#[tracing::instrument(skip_all)]
pub async fn redeliver_dead(deps: &Deps, filter: &RedeliverFilter) -> ApiResult<Redelivered> {
    let mut client = deps.pool.get().await?;
    let tx = Tx::begin(&mut client).await?;
    let recipient = filter.recipient.as_ref().map(|(k, i)| (k.as_str(), i.as_str()));
    let count = db::redeliver_dead(&tx, recipient, filter.created_after).await?;
    tx.commit().await?;
    tracing::info!(count, "dead notices queued for redelivery");
    Ok(Redelivered { count })
}

/// The reference data the console shows read-only: banks and providers in creation order, at
/// most `limit` of each after the `seq` cursors (0: from the first), as the API's lists page them.
pub async fn reference(
    deps: &Deps,
    banks_after: i64,
    providers_after: i64,
    limit: i64,
) -> ApiResult<(Vec<crate::db::setup::Bank>, Vec<crate::db::setup::Provider>)> {
    let client = deps.pool.get().await?;
    let banks = crate::db::setup::list_banks(&**client, banks_after, limit).await?;
    let providers = crate::db::setup::list_providers(&**client, providers_after, limit).await?;
    Ok((banks, providers))
}

/// Writes a console action to the audit log: who (the admin key's id), what, on which object.
pub async fn audit(deps: &Deps, actor: &str, action: &str, object_id: &str, request_id: &str) -> ApiResult<()> {
    let client = deps.pool.get().await?;
    crate::db::audit::record(&**client, actor, action, object_id, request_id).await?;
    Ok(())
}

/// An admin key as the console's sign-in knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKey {
    /// `auth.admin_key` of the configuration.
    Bootstrap,
    /// A created key, by its id.
    Key(String),
}

/// The admin key `key` is, if it is one: the configured bootstrap key, or an unrevoked created
/// key of the admin. Any other key (another principal's, revoked, unknown) is `None`.
pub async fn admin_key(deps: &Deps, key: &str) -> ApiResult<Option<AdminKey>> {
    let bootstrap = deps.settings.auth.admin_key.expose();
    if !bootstrap.is_empty() && crate::auth::secrets_equal(bootstrap.as_bytes(), key.as_bytes()) {
        return Ok(Some(AdminKey::Bootstrap));
    }
    let client = deps.pool.get().await?;
    let found = crate::db::api_keys::find_active_by_hash(&*client, &crate::auth::hash_api_key(key)).await?;
    Ok(found.filter(|c| c.principal.is_admin()).and_then(|c| c.key_id).map(AdminKey::Key))
}

/// Is the created admin key `id` still unrevoked? (A console session ends with its key.)
pub async fn admin_key_active(deps: &Deps, id: &str) -> ApiResult<bool> {
    let client = deps.pool.get().await?;
    let record = crate::db::api_keys::get(&**client, id).await?;
    Ok(record.is_some_and(|r| r.revoked_at.is_none() && r.principal.is_admin()))
}

/// The most rows of each kind the order lookup shows (notices, journal entries, repayments,
/// recoveries, returns), and attempts per notice (the latest).
pub const DETAIL_MAX: i64 = 200;
pub const ATTEMPTS_MAX: i64 = 50;

/// A notice with its latest delivery attempts.
pub struct NoticeHistory {
    pub notice: crate::db::notices::AdminNotice,
    pub attempts: Vec<crate::db::notices::Attempt>,
}

/// Everything the console's order lookup shows of one order, read on one snapshot. Identity is
/// not in it: the order view carries the masked IMEI only.
pub struct OrderDetail {
    pub order: OrderView,
    pub repayments: Vec<crate::db::repayments::Recorded>,
    pub recoveries: Vec<crate::db::write_offs::Recovery>,
    /// The order's device returns (API.md §13), newest first, as `GET /v1/returns/{id}` shows each.
    pub returns: Vec<super::returns::ReturnView>,
    pub notices: Vec<NoticeHistory>,
    pub journal: Vec<crate::db::journal::Posted>,
}

/// The order `id` with its repayments, recoveries, returns, the notices it caused with their
/// attempts, and its journal entries; `None` when there is no such order.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn order_detail(deps: &Deps, id: &str) -> ApiResult<Option<OrderDetail>> {
    let mut client = deps.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let Some(order) = crate::db::orders::get(&tx, id).await? else { return Ok(None) };
    let order = load_view(&tx, order).await?;
    let (repayments, recoveries) = match &order.plan {
        Some(plan) => (
            crate::db::repayments::of_plan(&tx, &plan.id, DETAIL_MAX).await?,
            crate::db::write_offs::list(&tx, &plan.id, 0, DETAIL_MAX).await?,
        ),
        None => (vec![], vec![]),
    };
    let returns = crate::db::returns::of_order(&tx, id, 0, DETAIL_MAX).await?;
    let notices = crate::db::notices::of_order(&tx, id, DETAIL_MAX).await?;
    let seqs: Vec<i64> = notices.iter().map(|n| n.notice.seq).collect();
    let mut attempts = crate::db::notices::attempts(&tx, &seqs, ATTEMPTS_MAX).await?;
    let journal = crate::db::journal::of_order(&tx, id, DETAIL_MAX).await?;
    tx.commit().await?;
    let notices = notices
        .into_iter()
        .map(|notice| {
            let mine = attempts.iter().take_while(|a| a.notice_seq == notice.notice.seq).count();
            NoticeHistory { attempts: attempts.drain(..mine).collect(), notice }
        })
        .collect();
    let returns = returns.into_iter().map(super::returns::return_view).collect();
    Ok(Some(OrderDetail { order, repayments, recoveries, returns, notices, journal }))
}

/// One notice with its latest delivery attempts (the console's notice detail); `None` when
/// there is no such notice.
#[tracing::instrument(skip_all, fields(notice_id = %id))]
pub async fn notice_history(deps: &Deps, id: &str) -> ApiResult<Option<NoticeHistory>> {
    let Some(seq) = crate::db::notices::seq_of_id(id) else { return Ok(None) };
    let mut client = deps.pool.get().await?;
    let tx = Tx::snapshot(&mut client).await?;
    let Some(notice) = crate::db::notices::get_admin(&tx, seq).await? else { return Ok(None) };
    let attempts = crate::db::notices::attempts(&tx, &[seq], ATTEMPTS_MAX).await?;
    tx.commit().await?;
    Ok(Some(NoticeHistory { notice, attempts }))
}

//! Webhook delivery of the notice outbox (API.md section 7), safe with any number of instances.
//!
//! Each instance runs one dispatcher and two sets of lane workers: `notices.workers` for quick
//! recipients and `notices.slow_workers` for slow ones. A *lane* is one recipient (a bank or a
//! provider). The dispatcher gives committed notices their positions (the feed's order, see
//! sql/V5__notice_positions.sql), leases free lanes that have a due notice (`FOR UPDATE SKIP
//! LOCKED` on `notice_lanes`, the longest unserved first, each kind only for its own free workers)
//! and hands each to a worker, which delivers that recipient's due notices in runs of up to
//! `notices.batch_size`, in position order, `notices.per_recipient` at a time: a run's attempts are
//! counted and leased (and the lane's lease renewed) in one statement before the first is sent, and
//! their outcomes recorded in one statement after the last; an attempt is sent only while its
//! timeout fits in the lease and none of the run failed, the rest are given back. Runs are
//! pipelined: while one is sent, the one before is recorded and the one after is read and counted
//! (it is sent only if every attempt of this one was delivered, else given back). So:
//! - first attempts to one recipient go in creation (commit) order, one lane holder across all
//!   instances; a notice committed late is never overtaken by one positioned after it;
//! - a failed notice waits for its backoff without holding the lane: later ones go on;
//! - a slow or dead receiver holds one worker of one instance, never another recipient's lane;
//! - slow receivers, however many, never hold a quick worker for longer than `slow_after_ms`: an
//!   attempt still unanswered then moves its lane to a free slow worker (and runs to its timeout
//!   there), or, when every slow worker is busy, is cut short and given back, due now; the lane is
//!   then marked slow (sql/V14__notice_lanes_slow.sql) and waits for a slow worker. A run whose
//!   attempts are all answered sooner marks it quick again. Quick failures (a refused connection,
//!   a 500) cost a worker nothing and leave the recipient quick;
//! - every attempt is counted and leased in the database before the request is sent, so a crash
//!   loses nothing: the notice comes due again once the lease runs out (at least once).

use crate::db::notices::{self as db, Due, Lane};
use crate::domain::status::NoticeState;
use crate::service::Deps;
use crate::service::notices::signature_header;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// How long a worker serves one lane before giving it back (others may be waiting for a worker).
const LANE_SLICE: Duration = Duration::from_secs(10);
/// A lease lasts an attempt's timeout plus this margin.
const LEASE_MARGIN_MS: i64 = 10_000;
/// How often the state gauges are counted.
const GAUGES_EVERY: Duration = Duration::from_secs(10);
/// An attempt starts only if its timeout ends this long before the lease does.
const LEASE_SAFETY: Duration = Duration::from_secs(1);
/// Notices positioned per statement by the dispatcher: a backlog (end of day, a burst of orders)
/// is delivered from its first chunk on instead of after all of it is positioned.
const POSITION_CHUNK: u64 = 10_000;
/// How much of a receiver's answer is read: enough for an error message, and to reuse the connection.
const ANSWER_READ_LIMIT: usize = 16 * 1024;

struct Ctx {
    state: Arc<Deps>,
    http: reqwest::Client,
    owner: String,
    timeout: Duration,
    lease_ms: i64,
    /// An attempt unanswered this long makes its recipient slow.
    slow_after: Duration,
    quick_workers: Arc<Semaphore>,
    slow_workers: Arc<Semaphore>,
    /// Wakes the dispatcher when a worker frees up.
    wake: Notify,
    stop: watch::Receiver<bool>,
}

impl Ctx {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The HTTP client of deliveries: no redirects followed, every attempt bounded by the timeout.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("creditphone-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The dispatcher: runs until `stopped`, then lets the lanes in hand finish their attempt.
pub async fn run(state: Arc<Deps>, mut stopped: watch::Receiver<bool>) {
    let settings = state.settings.notices.clone();
    let timeout = Duration::from_secs(settings.timeout_secs);
    let http = match http_client(timeout) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery cannot start: no HTTP client");
            return;
        }
    };
    let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let (quick, slow) = (settings.workers.max(1), settings.slow_workers.max(1));
    let ctx = Arc::new(Ctx {
        state: state.clone(),
        http,
        owner: owner.clone(),
        timeout,
        lease_ms: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2) + LEASE_MARGIN_MS,
        slow_after: settings.slow_after(),
        quick_workers: Arc::new(Semaphore::new(quick)),
        slow_workers: Arc::new(Semaphore::new(slow)),
        wake: Notify::new(),
        stop: stopped.clone(),
    });
    let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
    let mut gauges_at: Option<Instant> = None;
    tracing::info!(owner = %owner, workers = quick, slow_workers = slow, slow_after_ms = ctx.slow_after.as_millis() as u64,
        per_recipient = settings.per_recipient, timeout_secs = settings.timeout_secs, "webhook delivery started");
    loop {
        if *stopped.borrow() {
            break;
        }
        if gauges_at.is_none_or(|t| t.elapsed() >= GAUGES_EVERY) {
            refresh_gauges(&state).await;
            gauges_at = Some(Instant::now());
        }
        let positioned = position(&ctx).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook delivery: positioning new notices failed; trying again");
            0
        });
        dispatch(&ctx, quick, slow).await;
        if positioned >= POSITION_CHUNK {
            // More may wait for a position: the next chunk at once, while the lanes just
            // dispatched deliver the first.
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = ctx.wake.notified() => {}
            changed = stopped.changed() => if changed.is_err() { break },
        }
    }
    // Lanes finish the attempt in hand (bounded by the timeout) and give their lease back.
    let every_worker = async { tokio::join!(ctx.quick_workers.acquire_many(quick as u32), ctx.slow_workers.acquire_many(slow as u32)) };
    let _ = tokio::time::timeout(timeout + Duration::from_secs(2), every_worker).await;
    tracing::info!(owner = %owner, "webhook delivery stopped");
}

/// Claims lanes for the free workers of each kind and starts serving them.
async fn dispatch(ctx: &Arc<Ctx>, quick: usize, slow: usize) {
    let (free_quick, free_slow) = (ctx.quick_workers.available_permits(), ctx.slow_workers.available_permits());
    let busy = &ctx.state.metrics.notice_workers_busy;
    busy.with_label_values(&["quick"]).set(quick.saturating_sub(free_quick) as i64);
    busy.with_label_values(&["slow"]).set(slow.saturating_sub(free_slow) as i64);
    if free_quick + free_slow == 0 {
        return;
    }
    match claim(ctx, free_quick, free_slow).await {
        Ok(lanes) => {
            for lane in lanes {
                // A slow worker may have been taken meanwhile by a quick lane's attempt gone slow.
                let workers = if lane.slow { &ctx.slow_workers } else { &ctx.quick_workers };
                let taken = workers.clone().try_acquire_owned().map(|permit| Worker { slow: lane.slow, _permit: permit });
                match taken {
                    Ok(worker) => {
                        tokio::spawn(serve_lane(ctx.clone(), lane, worker));
                    }
                    Err(_) => release(ctx, &lane, None).await,
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "webhook delivery: claiming recipients failed; trying again"),
    }
}

/// The worker a lane is served by: a quick one until an attempt stays unanswered past
/// `slow_after`, then a slow one. Dropping it frees the worker.
struct Worker {
    slow: bool,
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("database: {}", crate::error::db_cause(.0))]
    Db(tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl From<tokio_postgres::Error> for Error {
    /// Delivery alone (no requests coming in) must notice a failover too.
    fn from(e: tokio_postgres::Error) -> Self {
        crate::error::retire_if_lost(&e);
        Error::Db(e)
    }
}

/// Committed notices get their read order (also while every worker is busy), at most
/// `POSITION_CHUNK` at a time; answers how many.
async fn position(ctx: &Ctx) -> Result<u64, Error> {
    let mut client = ctx.state.pool.get().await?;
    Ok(db::position_next(&mut client, POSITION_CHUNK as i64).await?)
}

async fn claim(ctx: &Ctx, quick: usize, slow: usize) -> Result<Vec<Lane>, Error> {
    let client = ctx.state.pool.get().await?;
    db::refresh_lanes(&*client).await?;
    Ok(db::claim_lanes(&*client, &ctx.owner, ctx.lease_ms, quick as i64, slow as i64).await?)
}

/// Gives a lane back, marked slow or quick as its last run showed (`None`: as it was).
async fn release(ctx: &Ctx, lane: &Lane, slow: Option<bool>) {
    let result = match ctx.state.pool.get().await {
        Ok(client) => db::release_lane(&*client, &ctx.owner, &lane.kind, &lane.id, slow).await.map_err(Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        tracing::warn!(recipient = %format!("{}:{}", lane.kind, lane.id), error = %e, "webhook delivery: giving a recipient back failed; its lease will run out");
    }
}

async fn refresh_gauges(state: &Deps) {
    let counts = match state.pool.get().await {
        Ok(client) => async { Ok::<_, Error>((db::backlog_counts(&*client).await?, db::count_slow_lanes(&*client).await?)) }.await,
        Err(e) => Err(e.into()),
    };
    match counts {
        Ok((counts, slow)) => {
            state.metrics.notice_slow_recipients.set(slow);
            for (s, n) in [(NoticeState::Pending, counts.pending), (NoticeState::Dead, counts.dead)] {
                state.metrics.notices.with_label_values(&[s.as_str()]).set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "counting notices by state failed"),
    }
}

#[derive(Default)]
struct LaneStats {
    delivered: u64,
    failed: u64,
    dead: u64,
    cut_short: u64,
    /// What the last run that sent anything showed (`None`: no such run).
    slow: Option<bool>,
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    Failed,
    Dead,
    /// Not recorded: the notice changed meanwhile.
    Skipped,
}

async fn serve_lane(ctx: Arc<Ctx>, lane: Lane, worker: Worker) {
    let started = Instant::now();
    let mut stats = LaneStats::default();
    let recipient = format!("{}:{}", lane.kind, lane.id);
    let worker = Mutex::new(worker);
    if let Err(e) = serve_lane_until_done(&ctx, &lane, &worker, started, &mut stats).await {
        tracing::warn!(recipient = %recipient, error = %e, "webhook delivery: a recipient's lane stopped early; its lease will run out");
    }
    release(&ctx, &lane, stats.slow).await;
    drop(worker);
    let attempts = stats.delivered + stats.failed + stats.dead + stats.cut_short;
    if attempts > 0 {
        tracing::info!(
            recipient = %recipient,
            delivered = stats.delivered,
            failed = stats.failed,
            dead = stats.dead,
            cut_short = stats.cut_short,
            slow = stats.slow.unwrap_or(lane.slow),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook delivery: served a recipient"
        );
        ctx.wake.notify_one();
    }
}

/// Serves a lane in runs of up to `batch_size` due notices, pipelined: while one run's attempts are
/// sent (one at a time when `per_recipient` is 1), the run before it is recorded and the run after
/// it is read and counted, so the database's round trips and statements are not between one
/// attempt and the next. The run after is read only once this one is counted (so it holds later
/// notices), and it is sent only when every attempt of this one was delivered: after a failure, an
/// attempt left unsent or cut short, it is given back uncounted with this run's unsent ones, and the
/// lane is read again, so first attempts still go in read order and a failure's backoff is recorded
/// before anything after it is sent.
async fn serve_lane_until_done(
    ctx: &Ctx,
    lane: &Lane,
    worker: &Mutex<Worker>,
    started: Instant,
    stats: &mut LaneStats,
) -> Result<(), Error> {
    let mut next = count_next_run(ctx, lane).await?;
    // Sent and not yet recorded: recorded while the next run is sent.
    let mut unrecorded: Vec<(Due, i32, Attempt)> = Vec::new();
    loop {
        let run = match next {
            NextRun::Counted(run) => run,
            NextRun::Empty => break,
            NextRun::LaneLost => {
                tracing::warn!(recipient = %format!("{}:{}", lane.kind, lane.id), "webhook delivery: lost a recipient's lease; another worker has it");
                break;
            }
        };
        if ctx.stopping() || started.elapsed() >= LANE_SLICE {
            unrecorded.extend(run.unsent());
            break;
        }
        let previous = std::mem::take(&mut unrecorded);
        let (sent, (recorded, after)) = tokio::join!(send_run(ctx, worker, &run.webhook, run.runs, run.started), async {
            (record_and_observe(ctx, lane, previous, stats).await, count_next_run(ctx, lane).await)
        });
        recorded?;
        let all_delivered = sent.iter().all(|(_, _, a)| matches!(a, Attempt::Answered(s, _) if s.delivered));
        let other_worker = slowness(ctx, &sent).is_some_and(|slow| {
            stats.slow = Some(slow);
            // Held by the other kind of worker than it now needs (a cut-short attempt waits for a
            // slow one; a recovered recipient belongs with the quick ones): given back, the
            // dispatcher hands it to its own kind.
            slow != worker.lock().unwrap_or_else(PoisonError::into_inner).slow
        });
        unrecorded = sent;
        let after = match after {
            Ok(after) => after,
            Err(e) => {
                record_and_observe(ctx, lane, unrecorded, stats).await?;
                return Err(e);
            }
        };
        if all_delivered && !other_worker {
            next = after;
            continue;
        }
        if let NextRun::Counted(after) = after {
            unrecorded.extend(after.unsent());
        }
        record_and_observe(ctx, lane, std::mem::take(&mut unrecorded), stats).await?;
        if other_worker {
            return Ok(());
        }
        next = count_next_run(ctx, lane).await?;
    }
    record_and_observe(ctx, lane, unrecorded, stats).await
}

/// A recipient's current `(webhook_url, webhook_secret)`, when it has a URL.
type Webhook = Option<(String, Option<String>)>;

/// What became of one attempt counted by `start_attempts`.
enum Attempt {
    /// Not sent: the lease had no room for its timeout, an earlier one failed, or the instance stops.
    Unsent,
    /// Unanswered after `slow_after` in a quick worker while every slow worker was busy: abandoned.
    CutShort,
    Answered(Sent, Duration),
}

/// A run of a lane's due notices, counted and leased by `start_attempts`, not sent yet.
struct Counted {
    /// Each notice with its attempt number, in read order.
    runs: Vec<(Due, i32)>,
    webhook: Webhook,
    /// When the statement that counted them (and renewed the lane's lease) was sent.
    started: Instant,
}

impl Counted {
    /// Its attempts as not sent, to be given back.
    fn unsent(self) -> impl Iterator<Item = (Due, i32, Attempt)> {
        self.runs.into_iter().map(|(due, n)| (due, n, Attempt::Unsent))
    }
}

/// What a lane has next.
enum NextRun {
    Counted(Counted),
    /// Nothing due.
    Empty,
    /// The lane's lease was lost: another worker has it.
    LaneLost,
}

/// Reads a lane's next due notices (at most `batch_size`, in read order) and its webhook, then
/// counts and leases them and renews the lane's lease (one statement). Notices that changed
/// meanwhile (delivered elsewhere, redelivered) are left out.
async fn count_next_run(ctx: &Ctx, lane: &Lane) -> Result<NextRun, Error> {
    let batch_size = i64::from(ctx.state.settings.notices.batch_size);
    let client = ctx.state.pool.get().await?;
    let batch = db::due_in_lane(&*client, &lane.kind, &lane.id, batch_size).await?;
    if batch.is_empty() {
        return Ok(NextRun::Empty);
    }
    let webhook = db::recipient_webhook(&*client, &lane.kind, &lane.id).await?;
    let due: Vec<(i64, i32)> = batch.iter().map(|d| (d.notice.seq, d.attempts)).collect();
    let started = Instant::now();
    let counted = match db::start_attempts(&*client, &ctx.owner, &lane.kind, &lane.id, &due, ctx.lease_ms).await? {
        db::Started::LaneLost => return Ok(NextRun::LaneLost),
        db::Started::Attempts(counted) => counted,
    };
    let mut by_seq: std::collections::HashMap<i64, Due> = batch.into_iter().map(|d| (d.notice.seq, d)).collect();
    let runs = counted.iter().filter_map(|(seq, n)| by_seq.remove(seq).map(|d| (d, *n))).collect();
    Ok(NextRun::Counted(Counted { runs, webhook, started }))
}

/// Whether a run's attempts showed its recipient slow: one cut short or answered after
/// `slow_after` (`None`: nothing was sent).
fn slowness(ctx: &Ctx, sent: &[(Due, i32, Attempt)]) -> Option<bool> {
    sent.iter().fold(None, |slow, (_, _, attempt)| match attempt {
        Attempt::Unsent => slow,
        Attempt::CutShort => Some(true),
        Attempt::Answered(_, elapsed) => Some(slow.unwrap_or(false) || *elapsed >= ctx.slow_after),
    })
}

/// Records a run's outcomes (`record_run`), then counts them in `stats`, with their metrics and logs.
async fn record_and_observe(ctx: &Ctx, lane: &Lane, sent: Vec<(Due, i32, Attempt)>, stats: &mut LaneStats) -> Result<(), Error> {
    if sent.is_empty() {
        return Ok(());
    }
    let recorded = record_run(ctx, &sent).await?;
    for (due, n, attempt) in sent {
        match attempt {
            Attempt::Unsent => {}
            Attempt::CutShort => {
                stats.cut_short += 1;
                ctx.state.metrics.notice_attempts.with_label_values(&["cut_short"]).inc();
                tracing::info!(notice_id = due.notice.id.as_str(), recipient = %format!("{}:{}", lane.kind, lane.id), attempt = n,
                    "webhook attempt cut short: the recipient is slow and every slow worker is busy; it goes again when one is free");
            }
            Attempt::Answered(answer, elapsed) => {
                let recorded = recorded.get(&due.notice.seq).copied();
                match observe(ctx, &lane.kind, &lane.id, &due, n, &answer, elapsed, recorded) {
                    Outcome::Delivered => stats.delivered += 1,
                    Outcome::Failed => stats.failed += 1,
                    Outcome::Dead => stats.dead += 1,
                    Outcome::Skipped => {}
                }
            }
        }
    }
    Ok(())
}

/// Sends a run's attempts in order, `per_recipient` at a time, while the lease has room for
/// another whole timeout (no other worker can be sending the same notice meanwhile) and none failed
/// (a failure ends the run, so that its outcome and backoff are recorded at once) or was cut short.
async fn send_run(
    ctx: &Ctx,
    worker: &Mutex<Worker>,
    webhook: &Webhook,
    runs: Vec<(Due, i32)>,
    run_started: Instant,
) -> Vec<(Due, i32, Attempt)> {
    let lease = Duration::from_millis(u64::try_from(ctx.lease_ms).unwrap_or(0));
    let halted = &AtomicBool::new(false);
    let go_on = &|| run_started.elapsed() + ctx.timeout + LEASE_SAFETY < lease && !ctx.stopping() && !halted.load(Ordering::Relaxed);
    futures_util::stream::iter(runs)
        .map(|(due, n)| async move {
            if !go_on() {
                return (due, n, Attempt::Unsent);
            }
            let t0 = Instant::now();
            let attempt = tokio::select! {
                sent = deliver(ctx, webhook, &due, n) => Attempt::Answered(sent, t0.elapsed()),
                () = cut_short_when_slow(ctx, worker, t0) => Attempt::CutShort,
            };
            if !matches!(&attempt, Attempt::Answered(sent, _) if sent.delivered) {
                halted.store(true, Ordering::Relaxed);
            }
            (due, n, attempt)
        })
        .buffered(ctx.state.settings.notices.per_recipient.max(1))
        .collect()
        .await
}

/// Resolves only to cut an attempt short: when, held by a quick worker, it is still unanswered
/// `slow_after` after it started and no slow worker is free. With one free, the lane moves to it
/// (freeing its quick worker for others) and the attempt runs on to its timeout.
async fn cut_short_when_slow(ctx: &Ctx, worker: &Mutex<Worker>, started: Instant) {
    tokio::time::sleep_until((started + ctx.slow_after).into()).await;
    let moved = {
        let mut worker = worker.lock().unwrap_or_else(PoisonError::into_inner);
        if worker.slow {
            true
        } else if let Ok(permit) = ctx.slow_workers.clone().try_acquire_owned() {
            // The quick worker's permit is dropped here: another recipient can have it at once.
            *worker = Worker { slow: true, _permit: permit };
            ctx.wake.notify_one();
            true
        } else {
            false
        }
    };
    if moved {
        std::future::pending::<()>().await;
    }
}

async fn deliver(ctx: &Ctx, webhook: &Webhook, due: &Due, attempt: i32) -> Sent {
    match webhook {
        Some((url, Some(secret))) => send(ctx, url, secret, due, attempt).await,
        Some((_, None)) => Sent::failed(None, "the recipient has a webhook_url but no webhook_secret; rotate it".into()),
        None => Sent::failed(None, "the recipient has no webhook_url now".into()),
    }
}

/// Records a run's answers (one statement) and gives back what was not answered (one statement);
/// answers each recorded notice's new state.
async fn record_run(ctx: &Ctx, sent: &[(Due, i32, Attempt)]) -> Result<std::collections::HashMap<i64, NoticeState>, Error> {
    let settings = &ctx.state.settings.notices;
    let cut_short = format!(
        "no answer within {} ms while every slow recipient's worker was busy; sent again when one is free",
        ctx.slow_after.as_millis()
    );
    let mut answered = Vec::with_capacity(sent.len());
    let mut given_back = Vec::new();
    for (due, n, attempt) in sent {
        match attempt {
            Attempt::Unsent => given_back.push((due.notice.seq, *n, None)),
            Attempt::CutShort => given_back.push((due.notice.seq, *n, Some(cut_short.as_str()))),
            Attempt::Answered(sent, _) => answered.push(db::Answered {
                seq: due.notice.seq,
                attempt: *n,
                delivered: sent.delivered,
                status: sent.status,
                error: sent.error.clone(),
                retry_in_ms: i64::try_from(settings.backoff((*n).max(1) as u32).as_millis()).unwrap_or(i64::MAX / 2),
            }),
        }
    }
    let max_attempts = i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
    let client = ctx.state.pool.get().await?;
    let recorded = if answered.is_empty() { Default::default() } else { db::finish_attempts(&*client, &answered, max_attempts).await? };
    db::give_back_attempts(&*client, &given_back).await?;
    Ok(recorded)
}

/// Metrics and logs of one recorded attempt (`recorded`: the notice's new state, `None` when it
/// changed during the attempt and its new state stands).
#[allow(clippy::too_many_arguments)]
fn observe(ctx: &Ctx, kind: &str, id: &str, due: &Due, n: i32, sent: &Sent, elapsed: Duration, recorded: Option<NoticeState>) -> Outcome {
    let settings = &ctx.state.settings.notices;
    let notice_id = due.notice.id.as_str();
    let recipient = format!("{kind}:{id}");
    let outcome = match recorded {
        Some(NoticeState::Delivered) => Outcome::Delivered,
        Some(NoticeState::Dead) => Outcome::Dead,
        Some(_) => Outcome::Failed,
        None => {
            tracing::info!(notice_id, recipient = %recipient, attempt = n, "webhook delivery: the notice changed during the attempt; its new state stands");
            return Outcome::Skipped;
        }
    };
    let m = &ctx.state.metrics;
    let label = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Dead => "dead",
        _ => "failed",
    };
    m.notice_attempts.with_label_values(&[label]).inc();
    m.notice_attempt_duration.with_label_values(&[label]).observe(elapsed.as_secs_f64());
    let elapsed_ms = elapsed.as_millis() as u64;
    match outcome {
        Outcome::Delivered => {
            let lag = (chrono::Utc::now() - due.notice.created_at).to_std().unwrap_or_default();
            m.notice_delivery_latency.with_label_values(&[kind]).observe(lag.as_secs_f64());
            tracing::debug!(notice_id, recipient = %recipient, attempt = n, status = sent.status, elapsed_ms, lag_ms = lag.as_millis() as u64, "webhook delivered");
        }
        Outcome::Dead => tracing::error!(
            notice_id, recipient = %recipient, attempt = n, status = sent.status, error = sent.error.as_deref().unwrap_or(""), elapsed_ms,
            "webhook delivery gave up: the notice is dead (redeliver with POST /v1/admin/notices/{{id}}/redeliver)"
        ),
        _ => tracing::warn!(
            notice_id, recipient = %recipient, attempt = n, status = sent.status, error = sent.error.as_deref().unwrap_or(""), elapsed_ms,
            retry_in_ms = settings.backoff(n.max(1) as u32).as_millis() as u64, "webhook attempt failed; will retry"
        ),
    }
    outcome
}

/// What a receiver answered.
struct Sent {
    delivered: bool,
    status: Option<i32>,
    error: Option<String>,
}

impl Sent {
    fn failed(status: Option<i32>, error: String) -> Sent {
        Sent { delivered: false, status, error: Some(error) }
    }
}

/// POSTs the feed item, signed, and reads a bounded piece of the answer.
async fn send(ctx: &Ctx, url: &str, secret: &str, due: &Due, attempt: i32) -> Sent {
    let body = match serde_json::to_vec(&due.notice) {
        Ok(b) => b,
        Err(e) => return Sent::failed(None, format!("the notice could not be encoded: {e}")),
    };
    let t = chrono::Utc::now().timestamp();
    let request = ctx
        .http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("CreditPhone-Event-Id", due.notice.id.as_str())
        .header("CreditPhone-Event-Type", due.notice.kind.as_str())
        .header("CreditPhone-Signature", signature_header(secret, t, &body))
        .header("CreditPhone-Delivery-Attempt", attempt.to_string())
        .body(body);
    let mut response = match tokio::time::timeout(ctx.timeout, request.send()).await {
        Err(_) => return Sent::failed(None, format!("no answer within {} s", ctx.timeout.as_secs())),
        Ok(Err(e)) if e.is_timeout() => return Sent::failed(None, format!("no answer within {} s", ctx.timeout.as_secs())),
        Ok(Err(e)) => return Sent::failed(None, format!("request failed: {}", error_chain(&e.without_url()))),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let mut answer = Vec::new();
    while answer.len() < ANSWER_READ_LIMIT {
        match tokio::time::timeout(ctx.timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => answer.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let code = Some(i32::from(status.as_u16()));
    if status.is_success() {
        return Sent { delivered: true, status: code, error: None };
    }
    let mut error = format!("HTTP {}", status.as_u16());
    if status.is_redirection() {
        let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        error.push_str(&format!(" redirect to {location:?} not followed"));
    }
    let text = String::from_utf8_lossy(&answer);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if !text.is_empty() {
        error.push_str(": ");
        error.push_str(&text);
    }
    Sent::failed(code, error)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

//! Batched placement (issue 20): concurrent `POST /v1/orders` gathered for a short window and
//! placed in one transaction.
//!
//! The batch reads every input set-wise (idempotency keys, out_order_nos, lines, products, sellers,
//! every bank's stripes unlocked), locks the stripes its orders reserve on, then decides each order in arrival order with the pure
//! placement decision against the balances the earlier orders left, in memory: two orders on one
//! line are decided as two sequential requests would be. One set of writes and one commit apply
//! the whole batch; each refusal is stored for its own key in that commit. Nobody is answered
//! before the commit, so a crash before it loses the batch with no 2xx given.
//!
//! Locks are taken in the single path's order: idempotency keys (never waited for), every line of
//! every customer in id order in one statement, then the stripes the batch reserves on in
//! (bank, stripe) order in one statement, holding no stripe before. Which stripes: the batch is
//! first decided on the stripes as read, unlocked (each bank's orders of one batch piling on one
//! stripe while it has room, so concurrent batches rarely meet); decided again under the locks,
//! an order that would need a stripe not locked (another transaction changed the bank meanwhile)
//! runs the whole batch again.

use super::{Customer, Deps, Loaded, OrderRequest, Placing, Read, Seller, checked, decide_placement, no_funding_bank, order_region};
use crate::auth::Principal;
use crate::auth::new_object_id;
use crate::db::credit_lines::{CreditLine, LineDelta};
use crate::db::idempotency::{Claim, NewAnswer};
use crate::db::orders::{Hold, Order};
use crate::db::setup::Product;
use crate::db::{self, Tx, banks, credit_lines};
use crate::domain::dates::SHANGHAI;
use crate::domain::identity::RegionCode;
use crate::domain::irr::format_apr;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Batches in flight at once. While they run, new orders gather in the queue and form the next
/// batch: under load batches grow instead of transactions multiplying.
const BATCHES_IN_FLIGHT: usize = 4;
/// The batcher's own database connections: one per batch in flight (a batch, and the orders of a
/// failed one placed alone after it, use one connection at a time).
pub const CONNECTIONS: usize = BATCHES_IN_FLIGHT;
/// Orders waiting for a batch at most, per order of `batch_max`: past that, `503 unavailable`.
const QUEUE_PER_BATCH: usize = 64;
/// Attempts of one batch on transient conflicts (deadlock, serialization, a key or out_order_no
/// committed by another transaction meanwhile) before each of its orders runs alone.
const ATTEMPTS: u32 = 3;
/// The gauge of orders queued and not yet in a batch (`creditphone_state{kind=...}`).
pub const WAITING_GAUGE: &str = "order_batch_waiting";
/// The counter of orders placed by a batch of more than one (`creditphone_state{kind=...}`).
pub const BATCHED_GAUGE: &str = "orders_placed_in_batches";

/// The queue of orders waiting for a batch; empty when batching is off.
#[derive(Default)]
pub struct Batcher {
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl Batcher {
    pub(super) fn queue(&self) -> Option<&mpsc::Sender<Job>> {
        self.queue.get()
    }

    /// Starts gathering orders (when `orders.batch_max` > 1), placing them on `pool`'s
    /// connections ([`CONNECTIONS`] of them), which only the batcher uses. The collector holds
    /// the dependencies weakly: it ends with them.
    pub fn start(deps: &Arc<Deps>, pool: deadpool_postgres::Pool) {
        let max = deps.settings.orders.batch_max;
        if max <= 1 {
            return;
        }
        let (queue, waiting) = mpsc::channel(max * QUEUE_PER_BATCH);
        if deps.order_batcher.queue.set(queue).is_err() {
            return;
        }
        // A thread of its own: a batch's future is not `Send` (rustc cannot prove it for the
        // idempotency closures of the single path it falls back to), so batches run as local tasks.
        // Its pool's connections are opened from this thread, so their I/O tasks run here too: a
        // connection of the shared pool is driven by whichever runtime opened it (an HTTP worker,
        // or the main thread busy delivering notices), and each round trip of a batch then waited
        // for that other thread twice (0.7 ms for a bare BEGIN in the open loop at 887/s).
        let deps = Arc::downgrade(deps);
        let started = std::thread::Builder::new().name("order-batcher".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(rt) => tokio::task::LocalSet::new().block_on(&rt, collect(deps, pool, waiting)),
                Err(e) => tracing::error!(error = %e, "the order batcher cannot start a runtime; every order is placed alone"),
            }
        });
        if let Err(e) = started {
            tracing::error!(error = %e, "the order batcher thread did not start");
        }
    }
}

pub(super) struct Job {
    caller: Principal,
    request: IdempotentRequest,
    order: OrderRequest,
    customer: Customer,
    reply: oneshot::Sender<ApiResult<Answer>>,
    /// When it was queued: its wait for a batch is measured from here.
    queued_at: std::time::Instant,
}

/// Queues the order and waits for its batch's answer. A full queue answers `503 unavailable`
/// at once (the caller retries with the same key); a stopped collector places the order alone.
pub(super) async fn submit(
    state: &Deps,
    queue: &mpsc::Sender<Job>,
    caller: &Principal,
    request: &IdempotentRequest,
    order: OrderRequest,
    customer: Customer,
) -> ApiResult<Answer> {
    let (reply, answer) = oneshot::channel();
    let job = Job { caller: caller.clone(), request: request.clone(), order, customer, reply, queued_at: std::time::Instant::now() };
    let waiting = state.metrics.gauges.with_label_values(&[WAITING_GAUGE]);
    waiting.inc();
    match queue.try_send(job) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            waiting.dec();
            tracing::warn!("the order batch queue is full");
            return Err(ApiError::unavailable());
        }
        Err(mpsc::error::TrySendError::Closed(job)) => {
            waiting.dec();
            return super::place_alone(state, &state.pool, &job.caller, &job.request, &job.order, &job.customer).await;
        }
    }
    answer.await.unwrap_or_else(|_| Err(ApiError::internal_because("Failed to place an order", "its batch ended without an answer")))
}

/// Gathers orders into batches. With no batch running, the first order starts at once with
/// whatever else already waits: at low load an order pays no window, and a batch of one takes the
/// single path. With batches running, it waits at most the window (or until the batch is full)
/// and then for one of the `BATCHES_IN_FLIGHT` slots: under load, batches grow while the running
/// ones commit, instead of transactions multiplying.
async fn collect(deps: Weak<Deps>, pool: deadpool_postgres::Pool, mut waiting: mpsc::Receiver<Job>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let Some(d) = deps.upgrade() else { return };
        let o = &d.settings.orders;
        let (window, max, wait_when_idle) = (std::time::Duration::from_micros(o.batch_window_us), o.batch_max, o.batch_wait_when_idle);
        drop(d);
        let mut jobs = vec![first];
        if wait_when_idle || in_flight.available_permits() < BATCHES_IN_FLIGHT {
            let until = tokio::time::Instant::now() + window;
            while jobs.len() < max {
                // A timeout polls the receiver before its deadline: what already waits is taken.
                match tokio::time::timeout_at(until, waiting.recv()).await {
                    Ok(Some(job)) => jobs.push(job),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let Ok(slot) = in_flight.clone().acquire_owned().await else { return };
        while jobs.len() < max {
            match waiting.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        assert!(!jobs.is_empty() && jobs.len() <= max, "a batch holds 1..=batch_max orders");
        let Some(deps) = deps.upgrade() else { return };
        observe_start(&deps, &jobs);
        let pool = pool.clone();
        tokio::task::spawn_local(async move {
            let started = std::time::Instant::now();
            let orders = jobs.len();
            run(&deps, &pool, jobs).await;
            let placed = deps.metrics.order_batch_stage.with_label_values(&["placed"]);
            for _ in 0..orders {
                placed.observe(started.elapsed().as_secs_f64());
            }
            drop(slot);
        });
    }
}

/// The batch leaves the queue: the waiting gauge, its size, and each order's wait.
fn observe_start(deps: &Deps, jobs: &[Job]) {
    deps.metrics.gauges.with_label_values(&[WAITING_GAUGE]).sub(jobs.len() as i64);
    deps.metrics.order_batch_orders.observe(jobs.len() as f64);
    let queued = deps.metrics.order_batch_stage.with_label_values(&["queued"]);
    for job in jobs {
        queued.observe(job.queued_at.elapsed().as_secs_f64());
    }
}

/// Places the batch and answers each order. A key given twice in the batch is in flight for its
/// later requests (409, as for two concurrent requests); a batch of one takes the single path.
async fn run(deps: &Deps, pool: &deadpool_postgres::Pool, jobs: Vec<Job>) {
    let mut seen = HashSet::new();
    let mut batch = Vec::with_capacity(jobs.len());
    for job in jobs {
        if seen.insert((job.request.scope.clone(), job.request.key.clone())) {
            batch.push(job);
        } else {
            let _ = job.reply.send(Err(idempotency::in_use()));
        }
    }
    if batch.len() > 1 {
        match together(deps, pool, &batch).await {
            Ok(answers) => {
                deps.metrics.gauges.with_label_values(&[BATCHED_GAUGE]).add(batch.len() as i64);
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, orders = batch.len(), "a batch of orders failed; each runs alone"),
        }
    }
    for job in batch {
        let answer = super::place_alone(deps, pool, &job.caller, &job.request, &job.order, &job.customer).await;
        let _ = job.reply.send(answer);
    }
}

enum Failure {
    Retry(String),
    Fatal(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        let conflict = matches!(db::unique_violation(&e), Some("idempotency_keys_pkey" | "orders_out_order_no_unique"));
        if db::is_retryable(&e) || conflict { Failure::Retry(e.to_string()) } else { Failure::Fatal(e.to_string()) }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Failure::Fatal(e.to_string())
    }
}

/// The batch in one transaction, run again on transient conflicts; `Err` when it cannot commit.
async fn together(deps: &Deps, pool: &deadpool_postgres::Pool, jobs: &[Job]) -> Result<Vec<ApiResult<Answer>>, String> {
    for attempt in 1..=ATTEMPTS {
        match once(deps, pool, jobs).await {
            Ok(answers) => return Ok(answers),
            Err(Failure::Retry(e)) => tracing::info!(attempt, error = %e, "transient conflict, running the batch again"),
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
    Err(format!("still conflicting after {ATTEMPTS} attempts"))
}

async fn once(deps: &Deps, pool: &deadpool_postgres::Pool, jobs: &[Job]) -> Result<Vec<ApiResult<Answer>>, Failure> {
    let mut laps = Laps::start(deps);
    let mut client = pool.get().await?;
    laps.lap("connection");
    let tx = Tx::begin(&mut client).await?;
    laps.lap("begin");
    match in_transaction(deps, &tx, jobs, &mut laps).await {
        Ok(answers) => {
            tx.commit().await?;
            laps.lap("commit");
            Ok(answers)
        }
        Err(e) => {
            // Awaited, as in `idempotency::execute`: the keys' advisory locks go with it.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a batch failed; the connection is dropped");
                drop(deadpool_postgres::Object::take(client));
            }
            Err(e)
        }
    }
}

/// What one order of the batch came to before the writes.
enum Outcome {
    /// A stored answer given again (or a key refusal): nothing written.
    Answered(ApiResult<Answer>),
    /// A business refusal: its answer is stored for its key.
    Refused(ApiError),
    Placed(Box<Decided>),
}

async fn in_transaction(deps: &Deps, tx: &Tx<'_>, jobs: &[Job], laps: &mut Laps<'_>) -> Result<Vec<ApiResult<Answer>>, Failure> {
    let now = deps.clock.now();
    let created_on = now.with_timezone(&SHANGHAI).date_naive();
    let (mut world, claims) = read(tx, jobs, created_on).await?;
    laps.lap("read");
    let free: Vec<bool> = claims.iter().map(|c| matches!(c, Claim::Free)).collect();
    world.lock_needed_stripes(tx, deps, jobs, &free, now, created_on).await?;
    laps.lap("lock");
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (job, claim) in jobs.iter().zip(claims) {
        outcomes.push(world.decide(deps, job, claim, now, created_on));
    }
    if outcomes.iter().any(|o| matches!(o, Outcome::Answered(Err(e)) if e.retryable)) {
        return Err(Failure::Retry("a bank changed between the batch's read and its locks".into()));
    }
    let stored = write(tx, jobs, &outcomes, &world).await?;
    laps.lap("write");
    Ok(answers(outcomes, stored))
}

/// A batch's steps timed into `order_batch_stage_seconds{stage}`, once per batch: where a batch's
/// time goes (a wait for a connection, each round trip, the commit) shows on `/metrics`.
pub(super) struct Laps<'a> {
    deps: &'a Deps,
    last: std::time::Instant,
}

impl<'a> Laps<'a> {
    pub(super) fn start(deps: &'a Deps) -> Laps<'a> {
        Laps { deps, last: std::time::Instant::now() }
    }

    /// The time since the last lap (or the start) counted to `stage`.
    pub(super) fn lap(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        self.deps.metrics.order_batch_stage.with_label_values(&[stage]).observe(now.duration_since(self.last).as_secs_f64());
        self.last = now;
    }
}

/// Everything the batch's orders are decided from, changed in memory as each is placed.
#[derive(Clone)]
struct World {
    taken: HashSet<(String, String)>,
    products: HashMap<String, Option<Product>>,
    sellers: HashMap<String, Option<Seller>>,
    routing: Vec<banks::BankCandidate>,
    booked_on: NaiveDate,
    /// Every customer's lines, by ID-number hash, in id order.
    lines: HashMap<String, Vec<CreditLine>>,
    confirming: HashMap<String, i32>,
    /// Every bank's stripes: as read (unlocked) until [`World::lock_needed_stripes`], then as read
    /// again once the needed ones are locked.
    stripes: BTreeMap<String, banks::BankStripes>,
    /// The stripes locked (`None` while deciding on the stripes as read: all may be taken).
    locked: Option<BTreeSet<(String, i16)>>,
    /// The stripes the placed orders reserved on (every stripe of a rebalanced bank): locked
    /// first, written last.
    needed: BTreeSet<(String, i16)>,
    /// Where the batch's search for a stripe with room starts on every bank.
    start: i16,
    /// What the placed orders add to each line's held.
    held: BTreeMap<String, LineDelta>,
    /// The transaction's `now()`: the new rows' `created_at`, shown in their answers.
    now: DateTime<Utc>,
}

/// Every input of the batch in one pipelined round trip, the lines locked; and each key's claim.
async fn read(tx: &Tx<'_>, jobs: &[Job], created_on: NaiveDate) -> Result<(World, Vec<Claim>), Failure> {
    let keys: Vec<(&str, &str)> = jobs.iter().map(|j| (j.request.scope.as_str(), j.request.key.as_str())).collect();
    let scopes: Vec<String> = jobs.iter().map(|j| j.caller.scope()).collect();
    let nos: Vec<(&str, &str)> = jobs.iter().zip(&scopes).map(|(j, s)| (s.as_str(), j.order.out_order_no.as_str())).collect();
    let mut hashes: Vec<&str> = jobs.iter().map(|j| j.customer.id_hash.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut product_ids: Vec<&str> = jobs.iter().map(|j| j.order.product_id.as_str()).collect();
    product_ids.sort_unstable();
    product_ids.dedup();
    let mut callers: Vec<(&String, &Principal)> = scopes.iter().zip(jobs.iter().map(|j| &j.caller)).collect();
    callers.sort_by_key(|c| c.0);
    callers.dedup_by_key(|c| c.0);
    let products = futures_util::future::try_join_all(product_ids.iter().map(|id| db::setup::get_product(tx, id)));
    let sellers = futures_util::future::try_join_all(callers.iter().map(|c| super::read_seller(tx, c.1)));
    // Sent in this order on the connection: the setting first, so that every statement after it
    // in the pipeline runs on its cached generic plan (sent after the claims, it left 4 in 9 of
    // them planned again on every call).
    let ((), claims, taken, products, sellers, routing, booked_on, lines, confirming, stripes, now) = futures_util::try_join!(
        tx.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan"),
        db::idempotency::claim_many(tx, &keys),
        db::orders::out_order_nos_taken(tx, &nos),
        products,
        sellers,
        banks::routing_order(tx),
        db::business_days::booking_date(tx, created_on),
        credit_lines::lock_lines_of_customers(tx, &hashes),
        db::holds::confirming_providers(tx),
        banks::read_stripes(tx),
        db::transaction_time(tx),
    )?;
    let mut by_customer: HashMap<String, Vec<CreditLine>> = HashMap::new();
    for (hash, line) in lines {
        by_customer.entry(hash).or_default().push(line);
    }
    let world = World {
        taken: taken.into_iter().collect(),
        products: product_ids.iter().map(|id| id.to_string()).zip(products).collect(),
        sellers: callers.iter().map(|c| c.0.clone()).zip(sellers).collect(),
        routing,
        booked_on,
        lines: by_customer,
        confirming,
        stripes: stripes.into_iter().map(|b| (b.bank_id.clone(), b)).collect(),
        locked: None,
        needed: BTreeSet::new(),
        start: rand::random::<u16>() as i16 & i16::MAX,
        held: BTreeMap::new(),
        now,
    };
    Ok((world, claims))
}

impl World {
    /// The order's inputs as it would read them alone, after the earlier orders of the batch.
    fn read_for(&self, job: &Job) -> Read {
        let scope = job.caller.scope();
        Read {
            taken: self.taken.contains(&(scope.clone(), job.order.out_order_no.clone())),
            product: self.products.get(&job.order.product_id).cloned().flatten(),
            seller: self.sellers.get(&scope).cloned().flatten(),
            routing: self.routing.clone(),
            booked_on: self.booked_on,
            lines: self.lines.get(&job.customer.id_hash).cloned().unwrap_or_default(),
            confirming: self.confirming.clone(),
        }
    }

    /// Decides the batch on the stripes as read to learn which it reserves on, locks those, and
    /// reads every bank's stripes again under the locks.
    async fn lock_needed_stripes(
        &mut self,
        tx: &Tx<'_>,
        deps: &Deps,
        jobs: &[Job],
        free: &[bool],
        now: DateTime<Utc>,
        created_on: NaiveDate,
    ) -> Result<(), Failure> {
        let mut trial = self.clone();
        for (job, _) in jobs.iter().zip(free).filter(|(_, free)| **free) {
            let _ = trial.place(deps, job, now, created_on);
        }
        let keys: Vec<(&str, i16)> = trial.needed.iter().map(|(b, s)| (b.as_str(), *s)).collect();
        if !keys.is_empty() {
            // Only the banks locked on are read again: an order that, on their fresh balances,
            // turns to another bank needs a stripe not locked and runs the batch again.
            let mut locked_banks: Vec<&str> = keys.iter().map(|k| k.0).collect();
            locked_banks.dedup();
            for fresh in banks::lock_and_read_stripes(tx, &keys, &locked_banks).await? {
                self.stripes.insert(fresh.bank_id.clone(), fresh);
            }
        }
        self.locked = Some(trial.needed);
        Ok(())
    }

    /// One order of the batch, as it would be decided alone after the earlier ones.
    fn decide(&mut self, deps: &Deps, job: &Job, claim: Claim, now: DateTime<Utc>, created_on: NaiveDate) -> Outcome {
        match claim {
            Claim::InUse => return Outcome::Answered(Err(idempotency::in_use())),
            Claim::Stored(stored) => return Outcome::Answered(idempotency::replay(stored, &job.request)),
            Claim::Free => {}
        }
        match self.place(deps, job, now, created_on) {
            Ok(d) => Outcome::Placed(Box::new(d)),
            Err(e) if idempotency::is_stored_refusal(&e) => Outcome::Refused(e),
            Err(e) => Outcome::Answered(Err(e)),
        }
    }

    fn place(&mut self, deps: &Deps, job: &Job, now: DateTime<Utc>, created_on: NaiveDate) -> ApiResult<Decided> {
        let loaded = checked(self.read_for(job), &job.order, created_on)?;
        let (region, decision, funding_deadline) = decided(deps, &loaded, job, now)?;
        let (bank_id, exposure_stripe) = self.reserve(&loaded, &decision.banks)?;
        let line = loaded.lines[decision.line].clone();
        let hold_amount = loaded.priced.hold_amount;
        self.held.entry(line.id.clone()).or_default().held_fen += hold_amount.fen();
        let customer_lines = self.lines.get_mut(&job.customer.id_hash).expect("the order's line is its customer's");
        let kept = customer_lines.iter_mut().find(|l| l.id == line.id).expect("the matched line is kept");
        kept.held = kept.held.checked_add(hold_amount).expect("a hold within the line's available");
        self.taken.insert((job.caller.scope(), job.order.out_order_no.clone()));
        let confirm_deadline = super::super::holds::confirm_deadline(loaded.confirming.get(&line.provider_id).copied(), now);
        Ok(Decided {
            owner_scope: job.caller.scope(),
            apr_text: format_apr(loaded.priced.apr),
            loaded,
            region,
            line,
            bank_id,
            exposure_stripe,
            funding_deadline,
            confirm_deadline,
            created_on,
            imei_masked: job.order.imei.masked(),
            imei_hash: deps.pii.lookup_hash(job.order.imei.as_str()),
            order_id: new_object_id("ord"),
            hold_id: new_object_id("hold"),
        })
    }

    /// The principal reserved on the first candidate bank with room, as `banks::try_reserve`
    /// would: the bank's id and the stripe. A retryable error when that needs a stripe not locked.
    fn reserve(&mut self, loaded: &Loaded, candidates: &[usize]) -> ApiResult<(String, i16)> {
        let p = loaded.principal.fen();
        for &i in candidates {
            let bank_id = &loaded.routing[i].id;
            let Some(b) = self.stripes.get_mut(bank_id) else { continue };
            let is_locked = |s: i16| self.locked.as_ref().is_none_or(|l| l.contains(&(bank_id.clone(), s)));
            let taken: Vec<i16> = match room(b, p, self.start % banks::STRIPES) {
                Room::None => continue,
                Room::Stripe(k) => vec![b.stripes[k]],
                Room::Rebalance => b.stripes.clone(),
            };
            if !taken.iter().all(|s| is_locked(*s)) {
                return Err(ApiError::retry("a bank changed between the batch's read and its locks"));
            }
            let stripe = take(b, p, room(b, p, self.start % banks::STRIPES));
            self.needed.extend(taken.into_iter().map(|s| (bank_id.clone(), s)));
            return Ok((bank_id.clone(), stripe));
        }
        Err(no_funding_bank())
    }
}

/// The region, the pure decision and the funding deadline it counted with.
fn decided(
    deps: &Deps,
    loaded: &Loaded,
    job: &Job,
    now: DateTime<Utc>,
) -> ApiResult<(RegionCode, crate::domain::placement::Decision, DateTime<Utc>)> {
    let region = order_region(&loaded.seller, &job.order)?;
    let funding_deadline = now + chrono::Duration::hours(i64::from(loaded.product.funding_timeout_hours));
    let decision = decide_placement(deps, loaded, &job.order, &region, &job.customer.phone_hash, funding_deadline)?;
    Ok((region, decision, funding_deadline))
}

/// Where a bank has room for a principal, as `banks::try_reserve` decides it.
enum Room {
    None,
    /// This stripe (an index) has room, and no stripe is over its limit.
    Stripe(usize),
    /// The room is split across stripes: all are rebalanced and stripe 0 takes the principal.
    Rebalance,
}

/// A stripe with room from `start` on while no stripe is over its limit; else, when the bank as a
/// whole has room, a rebalance; else none.
fn room(b: &banks::BankStripes, principal_fen: i64, start: i16) -> Room {
    if b.stripes.is_empty() {
        return Room::None;
    }
    let none_over = b.used_fen.iter().zip(&b.limit_fens).all(|(u, l)| u <= l);
    let rotation = |s: i16| (i32::from(s) + i32::from(banks::STRIPES) - i32::from(start)).rem_euclid(i32::from(banks::STRIPES));
    let n = b.stripes.len();
    let free = (0..n).filter(|&i| b.used_fen[i] + principal_fen <= b.limit_fens[i]).min_by_key(|&i| (rotation(b.stripes[i]), b.stripes[i]));
    match (none_over, free) {
        (true, Some(i)) => Room::Stripe(i),
        _ if b.limit_fen - b.used_fen.iter().sum::<i64>() >= principal_fen => Room::Rebalance,
        _ => Room::None,
    }
}

/// Takes the principal where [`room`] found it: the stripe reserved on.
fn take(b: &mut banks::BankStripes, principal_fen: i64, room: Room) -> i16 {
    match room {
        Room::None => unreachable!("take() follows a room found"),
        Room::Stripe(i) => {
            b.used_fen[i] += principal_fen;
            b.stripes[i]
        }
        Room::Rebalance => {
            let mut limits = banks::stripe_limits(b.limit_fen - principal_fen, &b.used_fen);
            limits[0] += principal_fen;
            b.used_fen[0] += principal_fen;
            b.limit_fens = limits;
            b.stripes[0]
        }
    }
}

/// Every write of the placed orders and every new answer stored for its key, pipelined in one
/// round trip: the orders and holds, the lines' held, the stripes, the journal, the notices and
/// the answers. An answer is built before its rows are written, from the rows as the inserts will
/// write them ([`db::orders::NewOrder::as_inserted`]), and checked against what the inserts
/// return before the commit. Answers each new answer (status and body) by its job's index.
async fn write(tx: &Tx<'_>, jobs: &[Job], outcomes: &[Outcome], world: &World) -> Result<Vec<(usize, StatusCode, Value)>, Failure> {
    let placings: Vec<Placing<'_>> = jobs
        .iter()
        .zip(outcomes)
        .filter_map(|(job, o)| match o {
            Outcome::Placed(d) => Some(d.placing(&job.order, &job.customer)),
            _ => None,
        })
        .collect();
    let orders: Vec<_> = placings.iter().map(super::new_order).collect();
    let holds: Vec<_> = placings.iter().map(super::new_hold).collect();
    let mut expected = Vec::with_capacity(orders.len());
    for (o, h) in orders.iter().zip(&holds) {
        expected.push(body(o.as_inserted(world.now), h.as_inserted())?);
    }
    let stored = new_answers(jobs, outcomes, &expected);
    let rows: Vec<NewAnswer<'_>> = stored.iter().map(|(i, status, body)| new_answer(&jobs[*i].request, *status, body)).collect();
    let entries: Vec<_> = placings.iter().flat_map(super::placement_entries).collect();
    let notices: Vec<_> = placings.iter().flat_map(super::placement_notices).collect();
    let touched: Vec<(&str, i16, i64, i64)> = world
        .needed
        .iter()
        .filter_map(|(bank, stripe)| {
            let b = world.stripes.get(bank)?;
            let i = b.stripes.iter().position(|s| s == stripe)?;
            Some((bank.as_str(), *stripe, b.used_fen[i], b.limit_fens[i]))
        })
        .collect();
    let (inserted, holds, _, (), (), (), ()) = futures_util::try_join!(
        futures_util::future::try_join_all(orders.iter().map(|o| db::orders::insert(tx, o))),
        futures_util::future::try_join_all(holds.iter().map(|h| db::orders::insert_hold(tx, h))),
        credit_lines::move_balances(tx, &world.held),
        banks::write_stripes(tx, &touched),
        db::journal::post_all(tx, &entries),
        db::notices::record(tx, &notices),
        db::idempotency::insert_many(tx, &rows),
    )?;
    for ((order, hold), expected) in inserted.into_iter().zip(holds).zip(&expected) {
        // Checked before, under no lock: another transaction committed it meanwhile.
        let order = order.ok_or_else(|| Failure::Retry("an out_order_no of the batch was taken meanwhile".into()))?;
        if body(order, hold)? != *expected {
            return Err(Failure::Fatal("an order's answer, built before its insert, differs from the row inserted".into()));
        }
    }
    Ok(stored)
}

/// An order's answer body: its view, as `GET /v1/orders/{id}` shows it then.
fn body(order: Order, hold: Hold) -> Result<Value, Failure> {
    serde_json::to_value(super::order_view(order, hold, None)).map_err(|e| Failure::Fatal(format!("Failed to serialize an order: {e}")))
}

/// The answers to store: each refusal's and each placed order's (`placed`, in batch order), by
/// its job's index.
fn new_answers(jobs: &[Job], outcomes: &[Outcome], placed: &[Value]) -> Vec<(usize, StatusCode, Value)> {
    let mut placed = placed.iter();
    let mut stored = Vec::new();
    for (i, (job, outcome)) in jobs.iter().zip(outcomes).enumerate() {
        match outcome {
            Outcome::Answered(_) => {}
            Outcome::Refused(e) => stored.push((i, e.status(), e.body(&job.request.request_id))),
            Outcome::Placed(_) => stored.push((i, StatusCode::CREATED, placed.next().expect("a body per placed order").clone())),
        }
    }
    stored
}

fn new_answer<'a>(r: &'a IdempotentRequest, status: StatusCode, body: &'a Value) -> NewAnswer<'a> {
    NewAnswer {
        scope: &r.scope,
        key: &r.key,
        method: &r.method,
        path: &r.path,
        fingerprint: &r.fingerprint,
        status: status.as_u16(),
        body,
        request_id: &r.request_id,
    }
}

/// Each order's answer: the stored ones as written, the others as decided.
fn answers(outcomes: Vec<Outcome>, stored: Vec<(usize, StatusCode, Value)>) -> Vec<ApiResult<Answer>> {
    let mut stored = stored.into_iter();
    let mut answers = Vec::with_capacity(outcomes.len());
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Answered(a) => answers.push(a),
            Outcome::Refused(_) | Outcome::Placed(_) => {
                let (j, status, body) = stored.next().expect("an answer stored per refusal and placed order");
                assert_eq!(i, j, "stored answers are in batch order");
                answers.push(Ok(Answer { status, body, replayed_request_id: None }));
            }
        }
    }
    answers
}

/// A placement decided and reserved in memory, owned until the batch's writes.
struct Decided {
    owner_scope: String,
    loaded: Loaded,
    region: RegionCode,
    line: CreditLine,
    bank_id: String,
    exposure_stripe: i16,
    funding_deadline: DateTime<Utc>,
    confirm_deadline: Option<DateTime<Utc>>,
    created_on: NaiveDate,
    apr_text: String,
    imei_masked: String,
    /// API.md §13: what a return's `imei` is compared with.
    imei_hash: String,
    order_id: String,
    hold_id: String,
}

impl Decided {
    fn placing<'a>(&'a self, r: &'a OrderRequest, customer: &'a Customer) -> Placing<'a> {
        Placing {
            r,
            owner_scope: &self.owner_scope,
            sealed: &customer.sealed,
            loaded: &self.loaded,
            region: &self.region,
            line: &self.line,
            bank_id: &self.bank_id,
            exposure_stripe: self.exposure_stripe,
            funding_deadline: self.funding_deadline,
            confirm_deadline: self.confirm_deadline,
            created_on: self.created_on,
            apr_text: self.apr_text.clone(),
            imei_masked: self.imei_masked.clone(),
            imei_hash: self.imei_hash.clone(),
            order_id: self.order_id.clone(),
            hold_id: self.hold_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank(limit_fen: i64, used_fen: &[i64], limit_fens: &[i64]) -> banks::BankStripes {
        banks::BankStripes {
            bank_id: "b".into(),
            limit_fen,
            stripes: (0..used_fen.len() as i16).collect(),
            used_fen: used_fen.to_vec(),
            limit_fens: limit_fens.to_vec(),
        }
    }

    #[test]
    fn room_is_found_as_try_reserve_finds_it() {
        // A stripe with room, from the start on.
        let b = bank(400, &[100, 0, 0, 0], &[100, 100, 100, 100]);
        assert!(matches!(room(&b, 50, 2), Room::Stripe(2)));
        assert!(matches!(room(&b, 50, 0), Room::Stripe(1)), "stripe 0 is full");
        // The room split across stripes: a rebalance, stripe 0 taking the principal.
        let mut b = bank(400, &[60, 60, 60, 60], &[100, 100, 100, 100]);
        assert!(matches!(room(&b, 150, 0), Room::Rebalance));
        assert_eq!(take(&mut b, 150, Room::Rebalance), 0);
        assert_eq!((b.used_fen.iter().sum::<i64>(), b.limit_fens.iter().sum::<i64>()), (390, 400));
        assert!(b.used_fen.iter().zip(&b.limit_fens).all(|(u, l)| u <= l));
        // Not enough in the whole bank.
        assert!(matches!(room(&b, 11, 0), Room::None));
        // A stripe over its limit (after a cut): no stripe is used while the bank is over.
        let b = bank(100, &[150, 0], &[50, 50]);
        assert!(matches!(room(&b, 10, 1), Room::None));
    }
}

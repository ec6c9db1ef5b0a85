//! Traffic through several service instances (issue 19) and its reconciliation: a webhook receiver
//! that never fails, the set-up of one world, a closed-loop driver of orders, fundings and
//! repayments (each with an Idempotency-Key, retried with the same key on a 503, a lost answer or
//! `409 idempotency_key_in_use`, on the next instance), and the check that every acknowledged
//! request is in the database exactly once. Shared by tests/multi_instance.rs, tests/ha.rs,
//! tests/failover.rs and tests/faults.rs (one instance, with rejections in the mix; it adds its
//! own replay and ledger checks on top of `reconcile`).
#![allow(dead_code)]

use crate::common::{id_number, imei, phone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub const CUSTOMERS: u64 = 8;
/// A request unanswered this long is given up (and retried with its key).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

pub fn shanghai_today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------------------------

/// A minimal HTTP/1.1 server answering 200 to every POST, keeping each `CreditPhone-Event-Id`
/// with the body it came with; or, while told to fail, 500 to every POST (not kept).
pub struct Receiver {
    port: u16,
    got: Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(HashMap::new()));
        let (failing, refused) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let state = Reception { log: got.clone(), failing: failing.clone(), refused: refused.clone() };
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(socket, state).await;
                });
            }
        });
        Receiver { port, got, failing, refused, task }
    }

    /// From now on, answer 500 (`true`) or 200 (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Deliveries answered 500.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn url(&self, who: &str) -> String {
        format!("http://127.0.0.1:{}/{who}", self.port)
    }

    /// How many times each notice id arrived.
    pub fn deliveries(&self) -> HashMap<String, usize> {
        self.got.lock().expect("receiver log").iter().map(|(id, bodies)| (id.clone(), bodies.len())).collect()
    }

    /// Each notice id with the body of every delivery of it, in arrival order.
    pub fn bodies(&self) -> HashMap<String, Vec<Vec<u8>>> {
        self.got.lock().expect("receiver log").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Reception {
    log: Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

async fn serve_connection(socket: tokio::net::TcpStream, state: Reception) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let (mut length, mut id) = (0usize, String::new());
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "creditphone-event-id" => id = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        if state.failing.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            write.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n").await?;
            continue;
        }
        state.log.lock().expect("receiver log").entry(id).or_default().push(body);
        write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await?;
    }
}

// ---------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------

/// The instances and the callers' keys.
#[derive(Clone)]
pub struct World {
    pub bases: Vec<String>,
    pub http: reqwest::Client,
    pub admin: String,
    pub store: String,
    pub bank: String,
}

impl World {
    /// Through the first instance: a provider and a bank with webhooks to the receiver, a store, a
    /// product, keys and the customers' credit lines.
    pub async fn setup(bases: Vec<String>, admin: String, hook: &Receiver) -> World {
        // Idle connections go before the server's keep-alive (actix's 5 s) closes them: a request sent
        // on a connection the server is closing fails with `IncompleteMessage` (see tests/common).
        let http = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).pool_idle_timeout(Duration::from_secs(2)).build().expect("client");
        let w = World { bases, http, admin: admin.clone(), store: String::new(), bank: String::new() };
        w.setup_post("/v1/admin/providers", &admin, json!({"id": "wld", "name": "微粒贷", "webhook_url": hook.url("provider")}), None)
            .await;
        let bank = json!({"id": "bk", "name": "Bank", "priority": 1, "apr_min": "0", "apr_max": "0.24",
                          "exposure_limit": "999999999999", "webhook_url": hook.url("bank")});
        w.setup_post("/v1/admin/banks", &admin, bank, None).await;
        w.setup_post("/v1/admin/stores", &admin, json!({"id": "st", "name": "营业厅", "region_code": "440305"}), None).await;
        let product = json!({"id": "p12", "name": "12期", "pricing": "interest", "terms": [{"months": 12, "rate": "0.18"}],
                             "providers": ["wld"], "regions": ["44"], "min_principal": "500", "max_principal": "20000"});
        w.setup_post("/v1/admin/products", &admin, product, None).await;
        let store = w.key("store", "st").await;
        let bank = w.key("bank", "bk").await;
        let provider = w.key("provider", "wld").await;
        for c in 0..CUSTOMERS {
            let line = json!({"customer": {"id_number": id_number(c), "phone": phone(c)}, "limit": "99999999", "expires_on": "2045-12-31"});
            w.setup_post("/v1/credit-lines", &provider, line, Some(&format!("line-{c}"))).await;
        }
        World { store, bank, ..w }
    }

    async fn key(&self, kind: &str, id: &str) -> String {
        let v = self.setup_post("/v1/admin/api-keys", &self.admin, json!({"principal": {"kind": kind, "id": id}}), None).await;
        v["key"].as_str().expect("key").to_string()
    }

    async fn setup_post(&self, path: &str, auth: &str, body: Value, idem: Option<&str>) -> Value {
        let mut req = self.http.post(format!("{}{path}", self.bases[0])).bearer_auth(auth).json(&body);
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.expect("setup request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json");
        assert!((200..300).contains(&status), "setup {path}: {status} {body}");
        body
    }

    /// `GET /v1/admin/ledger/verify` on the first instance that answers 200.
    pub async fn verify(&self) -> Value {
        for _ in 0..50 {
            for base in &self.bases {
                let r = self.http.get(format!("{base}/v1/admin/ledger/verify")).bearer_auth(&self.admin).send().await;
                if let Ok(r) = r
                    && r.status().as_u16() == 200
                {
                    return r.json().await.expect("verify json");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no instance answered the ledger check");
    }
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Order,
    Funding,
    Repayment,
}

#[derive(Clone, Debug)]
pub struct Req {
    pub kind: Kind,
    pub key: String,
    pub auth: String,
    pub path: String,
    pub body: Value,
}

/// A stored answer the driver got: 2xx (acknowledged) or a business refusal it allows.
#[derive(Clone, Debug)]
pub struct Ack {
    pub req: Req,
    pub status: u16,
    pub body: Value,
    /// The answer's `X-Request-Id` (a replay carries the first answer's).
    pub request_id: String,
    pub replayed: bool,
    pub tries: u32,
}

impl Ack {
    pub fn is_2xx(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One attempt: when it was sent and answered, through which instance, and how.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub instance: usize,
    pub sent: Instant,
    pub answered: Instant,
    /// None: no HTTP answer (connection error or client timeout).
    pub status: Option<u16>,
    pub code: Option<String>,
    /// A `503` whose body is API.md's error object with `code: unavailable`.
    pub unavailable_body_ok: bool,
    /// Why no answer came, when none did.
    pub error: Option<String>,
}

impl Attempt {
    pub fn is_2xx(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
    pub fn took(&self) -> Duration {
        self.answered - self.sent
    }
}

/// What the driver sends: how many closed-loop tasks, their seed, whether one funding decision in
/// ten is a rejection, and how long a task waits before retrying a failed request.
#[derive(Clone, Debug)]
pub struct Mix {
    pub tasks: usize,
    pub seed: u64,
    pub rejections: bool,
    pub retry_pause_ms: std::ops::Range<u64>,
}

impl Mix {
    /// Approvals only; a retry 20-80 ms later (on the next instance).
    pub fn new(tasks: usize, seed: u64) -> Mix {
        Mix { tasks, seed, rejections: false, retry_pause_ms: 20..80 }
    }
}

struct Shared {
    world: World,
    mix: Mix,
    run: String,
    stop: AtomicBool,
    /// Once stopped, how long a task may go on retrying its pending request.
    settle_ms: AtomicU64,
    counter: AtomicU64,
    acks: Mutex<Vec<Ack>>,
    attempts: Mutex<Vec<Attempt>>,
    unexpected: Mutex<Vec<String>>,
    awaiting: Mutex<Vec<String>>,
    plans: Mutex<Vec<String>>,
}

pub struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the driver saw, once stopped.
pub struct Driven {
    pub acks: Vec<Ack>,
    pub attempts: Vec<Attempt>,
    pub unexpected: Vec<String>,
    pub seed: u64,
}

impl Driven {
    pub fn acknowledged(&self) -> impl Iterator<Item = &Ack> {
        self.acks.iter().filter(|a| a.is_2xx())
    }
    pub fn count(&self, kind: Kind) -> usize {
        self.acknowledged().filter(|a| a.req.kind == kind).count()
    }
    /// Attempts answered with a 5xx other than 503.
    pub fn server_errors(&self) -> Vec<&Attempt> {
        self.attempts.iter().filter(|a| a.status.is_some_and(|s| s >= 500 && s != 503)).collect()
    }
    pub fn summary(&self) -> Value {
        json!({
            "driver_seed": self.seed,
            "requests_sent": self.attempts.len(),
            "acknowledged": self.acknowledged().count(),
            "acknowledged_orders": self.count(Kind::Order),
            "acknowledged_fundings": self.count(Kind::Funding),
            "acknowledged_repayments": self.count(Kind::Repayment),
            "business_refusals": self.acks.len() - self.acknowledged().count(),
            "failed_attempts": self.attempts.iter().filter(|a| !a.is_2xx()).count(),
            "answered_503": self.attempts.iter().filter(|a| a.status == Some(503)).count(),
            "connection_errors": self.attempts.iter().filter(|a| a.status.is_none()).count(),
            "acknowledged_after_retry": self.acknowledged().filter(|a| a.tries > 1).count(),
            "replayed": self.acknowledged().filter(|a| a.replayed).count(),
        })
    }
}

impl Load {
    /// `tasks` closed-loop clients; task `t` sends new requests to instance `t % instances` and
    /// retries a failed one on the next instance.
    pub fn start(world: World, tasks: usize, seed: u64) -> Load {
        Load::start_with(world, Mix::new(tasks, seed))
    }

    pub fn start_with(world: World, mix: Mix) -> Load {
        let (tasks, seed) = (mix.tasks, mix.seed);
        let shared = Arc::new(Shared {
            world,
            mix,
            run: format!("r{}", uuid::Uuid::new_v4().simple()),
            stop: AtomicBool::new(false),
            settle_ms: AtomicU64::new(30_000),
            counter: AtomicU64::new(1),
            acks: Mutex::default(),
            attempts: Mutex::default(),
            unexpected: Mutex::default(),
            awaiting: Mutex::default(),
            plans: Mutex::default(),
        });
        let tasks = (0..tasks).map(|t| tokio::spawn(drive(shared.clone(), t, seed.wrapping_add(t as u64)))).collect();
        Load { shared, tasks }
    }

    pub fn acknowledged(&self) -> usize {
        self.shared.acks.lock().expect("acks").iter().filter(|a| a.is_2xx()).count()
    }

    /// When `instance` answered again after an outage that began at `since`: the answer to its
    /// first 2xx sent after its first failed attempt sent at or after `since` (or after `since`,
    /// if none failed). Requests sent just after `since` may still succeed (a killed postmaster's
    /// backends commit for a few milliseconds more): those are not the recovery.
    pub fn recovered_at(&self, instance: usize, since: Instant) -> Option<Instant> {
        let attempts = self.shared.attempts.lock().expect("attempts");
        let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.instance == instance && a.sent >= since).collect();
        let failed = |a: &&&Attempt| a.status.is_none_or(|s| s >= 500 || s == 409);
        let first_failure = mine.iter().filter(failed).map(|a| a.sent).min().unwrap_or(since);
        mine.iter().filter(|a| a.sent >= first_failure && a.is_2xx()).map(|a| a.answered).min()
    }

    /// Waits until `n` more requests are acknowledged, or `max` passes.
    pub async fn run_for(&self, n: usize, max: Duration) {
        let started = Instant::now();
        let target = self.acknowledged() + n;
        while self.acknowledged() < target && started.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the driver; each task finishes the request in hand and settles its pending retry
    /// (for up to `settle`).
    pub async fn stop(self, settle: Duration) -> Driven {
        self.shared.settle_ms.store(settle.as_millis() as u64, Ordering::SeqCst);
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("a driver task panicked");
        }
        let s = &self.shared;
        Driven {
            acks: std::mem::take(&mut *s.acks.lock().expect("acks")),
            attempts: std::mem::take(&mut *s.attempts.lock().expect("attempts")),
            unexpected: std::mem::take(&mut *s.unexpected.lock().expect("unexpected")),
            seed: s.mix.seed,
        }
    }
}

impl Shared {
    fn next_request(&self, task: usize, rng: &mut StdRng) -> Req {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let key = format!("{}-{task}-{n}", self.run);
        let today = shanghai_today().to_string();
        let w = &self.world;
        let roll = rng.gen_range(0..10);
        if roll < 3 {
            let order = {
                let mut awaiting = self.awaiting.lock().expect("awaiting");
                if awaiting.is_empty() {
                    None
                } else {
                    let i = rng.gen_range(0..awaiting.len());
                    Some(awaiting.swap_remove(i))
                }
            };
            if let Some(order) = order {
                let body = if self.mix.rejections && rng.gen_range(0..10) == 0 {
                    json!({"decision": "rejected", "reason": "risk"})
                } else {
                    json!({"decision": "approved", "loan_no": format!("L-{order}"), "funded_on": today})
                };
                return Req { kind: Kind::Funding, key, auth: w.bank.clone(), path: format!("/v1/orders/{order}/funding"), body };
            }
        } else if roll < 6 {
            let plan = {
                let plans = self.plans.lock().expect("plans");
                // The newer half: older plans would be paid off (and refuse) sooner.
                if plans.is_empty() { None } else { Some(plans[rng.gen_range(plans.len() / 2..plans.len())].clone()) }
            };
            if let Some(plan) = plan {
                let body = json!({"amount": "10.00", "paid_on": today, "reference": format!("R-{n}")});
                return Req { kind: Kind::Repayment, key, auth: w.bank.clone(), path: format!("/v1/plans/{plan}/repayments"), body };
            }
        }
        let c = rng.gen_range(0..CUSTOMERS);
        let body = json!({"out_order_no": format!("F-{}-{n}", self.run), "product_id": "p12", "term_months": 12,
            "customer": {"id_number": id_number(c), "phone": phone(c)},
            "device": {"sku": "phone-x", "imei": imei(n), "price": "3999"}, "down_payment": "999"});
        Req { kind: Kind::Order, key, auth: w.store.clone(), path: "/v1/orders".to_string(), body }
    }

    fn acknowledge(&self, ack: Ack) {
        match ack.req.kind {
            Kind::Order => {
                if let Some(id) = ack.body["id"].as_str() {
                    self.awaiting.lock().expect("awaiting").push(id.to_string());
                }
            }
            Kind::Funding => {
                if let Some(plan) = ack.body["plan"]["id"].as_str() {
                    self.plans.lock().expect("plans").push(plan.to_string());
                }
            }
            Kind::Repayment => {}
        }
        self.acks.lock().expect("acks").push(ack);
    }

    fn attempt(&self, instance: usize, sent: Instant, outcome: &Sent) {
        let (status, code, unavailable_body_ok, error) = match outcome {
            Sent::Answer { status, body, .. } => {
                (Some(*status), body["error"]["code"].as_str().map(str::to_string), unavailable_body_ok(body), None)
            }
            Sent::Failed(e) => (None, None, false, Some(e.clone())),
        };
        let answered = Instant::now();
        self.attempts.lock().expect("attempts").push(Attempt { instance, sent, answered, status, code, unavailable_body_ok, error });
    }
}

/// Is this API.md's `503 unavailable` body (code, message, request id, a `field` member)?
fn unavailable_body_ok(body: &Value) -> bool {
    let e = &body["error"];
    e["code"] == "unavailable"
        && e["message"].as_str().is_some_and(|m| !m.is_empty())
        && e["request_id"].as_str().is_some_and(|r| r.starts_with("req_"))
        && e.as_object().is_some_and(|o| o.contains_key("field"))
}

pub enum Sent {
    Answer {
        status: u16,
        body: Value,
        request_id: String,
        replayed: bool,
    },
    /// No answer (connection error, client timeout, a body cut short): why.
    Failed(String),
}

/// `req` through the instance at `base`, with its Idempotency-Key.
pub async fn send(world: &World, base: &str, req: &Req) -> Sent {
    let r = world
        .http
        .post(format!("{base}{}", req.path))
        .bearer_auth(&req.auth)
        .header("Idempotency-Key", &req.key)
        .json(&req.body)
        .send()
        .await;
    let r = match r {
        Ok(r) => r,
        Err(e) => return Sent::Failed(format!("{e:?}")),
    };
    let status = r.status().as_u16();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (request_id, replayed) = (header("x-request-id"), header("idempotent-replayed") == "true");
    match r.text().await {
        Ok(text) => Sent::Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), request_id, replayed },
        Err(e) => Sent::Failed(format!("reading the body: {e:?}")),
    }
}

/// Business refusals the workload can meet legitimately (a repayment on a plan paid off by others).
fn allowed_refusal(kind: Kind, status: u16, code: &str) -> bool {
    kind == Kind::Repayment && matches!((status, code), (422, "overpayment") | (409, "invalid_state"))
}

async fn drive(shared: Arc<Shared>, task: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let instances = shared.world.bases.len();
    // A task's new requests go to its home instance, so every instance keeps getting traffic; a
    // retry goes to the next one (left to chance, all tasks could end up on one instance).
    let home = task % instances;
    let mut instance = home;
    let mut pending: Option<(Req, u32)> = None;
    let mut settle_until: Option<Instant> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            let settle = Duration::from_millis(shared.settle_ms.load(Ordering::SeqCst));
            let until = *settle_until.get_or_insert_with(|| Instant::now() + settle);
            if pending.is_none() || Instant::now() > until {
                return;
            }
        }
        let (req, tries) = match pending.take() {
            Some((req, tries)) => (req, tries + 1),
            None => {
                instance = home;
                (shared.next_request(task, &mut rng), 1)
            }
        };
        let sent = Instant::now();
        let outcome = send(&shared.world, &shared.world.bases[instance], &req).await;
        shared.attempt(instance, sent, &outcome);
        let retry = match outcome {
            Sent::Answer { status, body, request_id, replayed } => {
                let code = body["error"]["code"].as_str().unwrap_or_default().to_string();
                if (200..300).contains(&status) {
                    shared.acknowledge(Ack { req, status, body, request_id, replayed, tries });
                    None
                } else if status == 503 || (status == 409 && code == "idempotency_key_in_use") {
                    Some(req)
                } else if allowed_refusal(req.kind, status, &code) {
                    shared.acks.lock().expect("acks").push(Ack { req, status, body, request_id, replayed, tries });
                    None
                } else {
                    shared.unexpected.lock().expect("unexpected").push(format!("POST {} → {status} {body}", req.path));
                    None
                }
            }
            Sent::Failed(_) => Some(req),
        };
        if let Some(req) = retry {
            pending = Some((req, tries));
            instance = (instance + 1) % instances;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(shared.mix.retry_pause_ms.clone()))).await;
        }
    }
}

/// Waits until every notice to a webhook recipient is delivered and at the receiver; answers the
/// notice ids.
pub async fn await_deliveries(db: &tokio_postgres::Client, hook: &Receiver, within: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let rows =
            db.query("SELECT id, state::text FROM notices WHERE state::text <> 'pull_only' ORDER BY seq", &[]).await.expect("notices");
        let got = hook.deliveries();
        let waiting: Vec<String> = rows
            .iter()
            .filter(|r| r.get::<_, String>(1) != "delivered" || !got.contains_key(&r.get::<_, String>(0)))
            .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        if waiting.is_empty() {
            return rows.iter().map(|r| r.get(0)).collect();
        }
        assert!(
            started.elapsed() < within,
            "{} of {} notices undelivered after {within:?}, e.g. {:?}",
            waiting.len(),
            rows.len(),
            &waiting[..3.min(waiting.len())]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------------------------

/// Acknowledged requests missing from the database (lost) and objects applied twice (duplicated).
#[derive(Default, Debug)]
pub struct Verdict {
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    /// How many orders, plans and repayments the database holds.
    pub orders: usize,
    pub plans: usize,
    pub repayments: usize,
}

impl Verdict {
    #[track_caller]
    pub fn assert_clean(&self) {
        let first = |v: &Vec<String>| v.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ");
        assert!(self.lost.is_empty(), "{} acknowledged requests lost:\n  {}", self.lost.len(), first(&self.lost));
        assert!(self.duplicated.is_empty(), "{} duplicated:\n  {}", self.duplicated.len(), first(&self.duplicated));
    }
}

/// Every acknowledged request is in the database as answered (a rejected funding: its order
/// rejected); every order, plan and repayment is named by exactly one stored answer (none applied
/// twice) and acknowledged to at most one key.
pub async fn reconcile(db: &tokio_postgres::Client, driven: &Driven) -> Verdict {
    let mut v = Verdict::default();
    let rows = |sql: &'static str| async move { db.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")) };
    let orders: HashMap<String, (String, String)> =
        rows("SELECT id, out_order_no, status::text FROM orders").await.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    let plans: HashMap<String, (String, String)> =
        rows("SELECT id, order_id, loan_no FROM plans").await.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    let repayments: HashMap<String, (String, String, i64)> = rows("SELECT id, plan_id, reference, amount_fen FROM repayments")
        .await
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    (v.orders, v.plans, v.repayments) = (orders.len(), plans.len(), repayments.len());
    let mut named: HashMap<(Kind, String), usize> = HashMap::new();
    for row in rows("SELECT path, status, body FROM idempotency_keys WHERE status BETWEEN 200 AND 299").await {
        let (path, body): (String, Value) = (row.get(0), row.get(2));
        let object = if path == "/v1/orders" {
            body["id"].as_str().map(|id| (Kind::Order, id.to_string()))
        } else if path.ends_with("/funding") {
            body["plan"]["id"].as_str().map(|id| (Kind::Funding, id.to_string()))
        } else if path.ends_with("/repayments") {
            body["id"].as_str().map(|id| (Kind::Repayment, id.to_string()))
        } else {
            None
        };
        if let Some(object) = object {
            *named.entry(object).or_default() += 1;
        }
    }
    let mut check_named = |kind: Kind, id: &str| match named.get(&(kind, id.to_string())).copied().unwrap_or(0) {
        1 => {}
        n => v.duplicated.push(format!("{kind:?} {id} is named by {n} stored answers (exactly 1 expected)")),
    };
    orders.keys().for_each(|id| check_named(Kind::Order, id));
    plans.keys().for_each(|id| check_named(Kind::Funding, id));
    repayments.keys().for_each(|id| check_named(Kind::Repayment, id));

    let mut acked: HashSet<(Kind, String)> = HashSet::new();
    for ack in driven.acknowledged() {
        let (b, key) = (&ack.body, &ack.req.key);
        let object = match ack.req.kind {
            Kind::Order => {
                let id = b["id"].as_str().unwrap_or("");
                match orders.get(id) {
                    Some((no, _)) if Some(no.as_str()) == ack.req.body["out_order_no"].as_str() => {}
                    other => v.lost.push(format!("order {id} (key {key}) acknowledged, in the database: {other:?}")),
                }
                id.to_string()
            }
            Kind::Funding if b["status"] == "rejected" => {
                let order_id = b["id"].as_str().unwrap_or("");
                match orders.get(order_id) {
                    Some((_, status)) if status == "rejected" => {}
                    other => v.lost.push(format!("rejection of {order_id} (key {key}) acknowledged, order: {other:?}")),
                }
                format!("rejected:{order_id}")
            }
            Kind::Funding => {
                let (order_id, plan_id) = (b["id"].as_str().unwrap_or(""), b["plan"]["id"].as_str().unwrap_or(""));
                match plans.get(plan_id) {
                    Some((o, loan)) if o == order_id && Some(loan.as_str()) == ack.req.body["loan_no"].as_str() => {}
                    other => v.lost.push(format!("funding of {order_id} (key {key}) acknowledged, plan {plan_id}: {other:?}")),
                }
                plan_id.to_string()
            }
            Kind::Repayment => {
                let id = b["id"].as_str().unwrap_or("");
                match repayments.get(id) {
                    Some((plan, reference, 1000))
                        if Some(plan.as_str()) == b["plan_id"].as_str()
                            && Some(reference.as_str()) == ack.req.body["reference"].as_str() => {}
                    other => v.lost.push(format!("repayment {id} (key {key}) acknowledged, in the database: {other:?}")),
                }
                id.to_string()
            }
        };
        if !acked.insert((ack.req.kind, object.clone())) {
            v.duplicated.push(format!("{:?} {object} acknowledged to two keys", ack.req.kind));
        }
    }
    v
}

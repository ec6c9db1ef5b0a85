//! Fault injection against the real binary (issue 7, "Prove it holds"): PRODUCT.md's "nothing that
//! answered 2xx is lost, and nothing is applied twice" under a crashing service, a crashing
//! PostgreSQL and a database outage, with API.md's `503 unavailable` (fast, never hanging) and
//! `/readyz` behaviour.
//!
//! Each test starts a PostgreSQL cluster of its own (an `EmbeddedCluster` in a temp dir, not the
//! shared per-binary one: it gets killed), the real `creditphone serve` against it (webhook delivery
//! on, to a tiny HTTP receiver inside the test) and a driver of concurrent tasks placing orders,
//! fundings and repayments, each with an Idempotency-Key, recording every 2xx (key, request, answer).
//! A request that fails (connection error, `503`, `409 idempotency_key_in_use`) is retried later
//! with the same key. Afterwards: every acknowledged request exists exactly once in the database,
//! every stored answer names exactly one object and every object exactly one stored answer, every
//! acknowledged key replays its first answer (status, body, X-Request-Id), the ledger verifies, and
//! every webhook notice (those created after the last restart included) reaches the receiver.
//!
//! The cluster runs with `fsync=off` (an OS crash is not simulated, only process crashes, which the
//! page cache survives) but `synchronous_commit=on`, as in production: a commit acknowledged to the
//! service is in the WAL.
//!
//! CI (default, about 1 minute on 2 cores: 3 service kills, 3 PostgreSQL kills, a 10 s outage):
//!     cargo test --test faults
//! Long run (about 2-3 minutes: 10 service kills, 6 PostgreSQL kills, a 10 s outage, longer load):
//!     FAULTS_LONG=1 cargo test --test faults -- --nocapture
//! Knobs: `FAULTS_KILLS` (service kills; CI 3, long 10), `FAULTS_PG_KILLS` (CI 3, long 6; they
//! rotate: SIGKILL of every process, one backend OOM-killed, `pg_ctl stop -m immediate`),
//! `FAULTS_OUTAGE_SECS` (10 in both), `FAULTS_SEED` (the driver's random seed). Each test prints one
//! line `FAULTS {json}` on stderr (shown with `-- --nocapture`, or on failure).
//! A fourth test freezes PostgreSQL (SIGSTOP): requests are cut by `server.request_timeout_ms`.
//! The three tests run one after another (a lock in this file), never alongside each other.

mod common;

use common::binary::{RunningServe, ServeBinary, log_tail};
use common::world;
use common::{id_number, imei, phone};
use creditphone::pg::embedded::{ClusterOptions, EmbeddedCluster};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// `database.timeout_ms` of the service under test: a failing request must answer within this + 1 s.
const DB_TIMEOUT_MS: u64 = 1000;
const DB_NAME: &str = "creditphone";
/// `server.request_timeout_ms` of the service under test: what bounds a request when the database
/// holds its connections open but never answers (frozen).
const REQUEST_TIMEOUT_MS: u64 = 2000;
/// A request that takes this long is a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
const TASKS: usize = 8;
const CUSTOMERS: u64 = 8;
/// A service or database that recovered must answer again within this long.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

static SERIAL: Mutex<()> = Mutex::new(());

fn long_run() -> bool {
    std::env::var("FAULTS_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn knob(name: &str, ci: u64, long: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(if long_run() { long } else { ci })
}

fn seed() -> u64 {
    std::env::var("FAULTS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| rand::thread_rng().r#gen())
}

/// Runs one test on a runtime of its own, one test at a time.
fn run(test: impl Future<Output = ()>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(test);
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn shanghai_today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive().to_string()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL of our own
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Crash {
    /// SIGKILL to the postmaster and every backend: the machine's view of a crashed server.
    Kill,
    /// SIGQUIT to the postmaster: `pg_ctl stop -m immediate`.
    Immediate,
    /// SIGKILL to one client backend, as the OOM killer does: the postmaster resets every other
    /// session (`57P02 crash_shutdown`), recovers and restarts by itself.
    Backend,
}

/// A cluster in a temp dir of its own; stopped (or killed) and started again at will. Dropping it
/// stops the server (and its postmaster dies with this process anyway, by the death signal).
struct Pg {
    cluster: Option<EmbeddedCluster>,
    opts: ClusterOptions,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    user: String,
    // Last: removed after the server is gone.
    dir: tempfile::TempDir,
}

impl Pg {
    async fn start() -> Pg {
        let dir = tempfile::Builder::new().prefix("cp-faults-").tempdir_in("/tmp").expect("tempdir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let opts = ClusterOptions {
            dir: dir.path().join("pg"),
            db_name: DB_NAME.to_string(),
            extra_settings: [("fsync", "off"), ("full_page_writes", "off"), ("synchronous_commit", "on"), ("max_connections", "100")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            die_with_parent: true,
        };
        let cluster = EmbeddedCluster::start(opts.clone()).await.expect("start a PostgreSQL cluster");
        Pg {
            pgdata: cluster.data_dir().to_path_buf(),
            socket_dir: cluster.socket_dir().to_path_buf(),
            port: cluster.port(),
            user: cluster.user().to_string(),
            cluster: Some(cluster),
            opts,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("postgresql://{}@/{DB_NAME}?host={}&port={}", self.user, self.socket_dir.display(), self.port)
    }

    fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.socket_dir).port(self.port).user(&self.user).dbname(DB_NAME);
        c
    }

    async fn client(&self) -> tokio_postgres::Client {
        creditphone::db::connect(&self.config()).await.expect("connect to the test cluster")
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_tail(&self) -> String {
        log_tail(&self.opts.dir.join("postgres.log"), 30)
    }

    /// Every live process of this cluster: `postgres` processes whose working directory is its data dir.
    fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return pids };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !matches!(comm.trim(), "postgres" | "postmaster") {
                continue;
            }
            if std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == self.pgdata) {
                pids.push(pid);
            }
        }
        pids
    }

    /// SIGKILLs one client backend (a `[local]` session); answers whether there was one.
    fn kill_one_backend(&self) -> bool {
        for pid in self.processes() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("[local]") {
                return kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok();
            }
        }
        false
    }

    /// Crashes the server (see [`Crash`]) and waits until none of its processes is left.
    async fn crash(&mut self, how: Crash) {
        let mut cluster = self.cluster.take().expect("a running cluster");
        let postmaster = cluster.pid().expect("a running postmaster") as i32;
        match how {
            Crash::Kill => {
                let backends = self.processes();
                let _ = kill(Pid::from_raw(postmaster), Signal::SIGKILL);
                for pid in backends {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            Crash::Immediate => {
                let _ = kill(Pid::from_raw(postmaster), Signal::SIGQUIT);
            }
            Crash::Backend => unreachable!("see kill_one_backend"),
        }
        let started = Instant::now();
        loop {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            if matches!(how, Crash::Kill) || started.elapsed() > Duration::from_secs(10) {
                for pid in left {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Reaps the postmaster and gives the directory lock back.
        cluster.stop().await.expect("release the crashed cluster");
    }

    /// A clean fast shutdown (SIGINT): what an operator's `pg_ctl stop` does.
    async fn stop(&mut self) {
        let mut cluster = self.cluster.take().expect("a running cluster");
        cluster.stop().await.expect("stop PostgreSQL");
    }

    /// Starts the server again on the same data (crash recovery if it crashed); answers once it
    /// accepts connections.
    async fn restart(&mut self) {
        assert!(self.cluster.is_none());
        match EmbeddedCluster::start(self.opts.clone()).await {
            Ok(c) => self.cluster = Some(c),
            Err(e) => panic!("PostgreSQL does not start again: {e:#}\n{}", self.log_tail()),
        }
    }

    /// The notice id sequence's position: every notice drawn after this was written later.
    /// Retried while the server is still recovering.
    async fn notice_mark(&self) -> i64 {
        let started = Instant::now();
        loop {
            if let Ok(client) = creditphone::db::connect(&self.config()).await
                && let Ok(row) = client.query_one("SELECT last_value FROM notice_seq", &[]).await
            {
                return row.get(0);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "PostgreSQL does not come back:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The service under test
// ---------------------------------------------------------------------------------------------

/// `creditphone serve` as a child process on a fixed port, started again (same port, settings and
/// directory, a new log file) after each kill; SIGKILLed when dropped (and by the death signal if
/// this process dies).
struct Service {
    binary: ServeBinary,
    running: Option<RunningServe>,
    starts: u32,
}

impl Service {
    fn new(pg: &Pg, admin_key: &str) -> Service {
        let mut binary = ServeBinary::new(pg.dir())
            .database_url(&pg.url())
            .workers(2)
            .admin_key(admin_key)
            .pii_keys(&"11".repeat(32), &"22".repeat(32))
            .eod_enabled(false)
            .notices_enabled(true)
            .log_format("text")
            .log_level("warn");
        for (key, value) in [
            ("CREDITPHONE__DATABASE__TIMEOUT_MS", DB_TIMEOUT_MS.to_string()),
            ("CREDITPHONE__SERVER__REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS.to_string()),
            // Below the request timeout, as the configuration requires.
            ("CREDITPHONE__SERVER__BODY_READ_TIMEOUT_MS", (REQUEST_TIMEOUT_MS / 2).to_string()),
            ("CREDITPHONE__AUTH__DEFAULT_RATE_LIMIT_PER_MINUTE", "100000000".to_string()),
            ("CREDITPHONE__CLOCK__ALLOW_FUTURE_DATES", "true".to_string()),
            ("CREDITPHONE__NOTICES__TIMEOUT_SECS", "2".to_string()),
            ("CREDITPHONE__NOTICES__RETRY_INITIAL_SECS", "1".to_string()),
            ("CREDITPHONE__NOTICES__RETRY_MAX_SECS", "2".to_string()),
            ("CREDITPHONE__NOTICES__POLL_INTERVAL_MS", "200".to_string()),
            ("CREDITPHONE__NOTICES__MAX_ATTEMPTS", "1000".to_string()),
            // Batched placement (issue 20) with a wide window: the driver's concurrent orders meet
            // in batches, so a kill lands on orders gathered or placed together.
            ("CREDITPHONE__ORDERS__BATCH_WINDOW_US", "20000".to_string()),
        ] {
            binary = binary.env(key, value);
        }
        Service { binary, running: None, starts: 0 }
    }

    fn base(&self) -> String {
        self.binary.base_url()
    }

    /// The log of the latest start, still there after a kill.
    fn log_tail(&self) -> String {
        log_tail(&self.binary.dir().join(format!("serve-{}.log", self.starts)), 40)
    }

    fn spawn(&mut self) {
        assert!(self.running.is_none());
        self.starts += 1;
        self.running = Some(self.binary.clone().log_file(format!("serve-{}.log", self.starts)).spawn());
    }

    /// SIGKILL, then reaped.
    fn kill(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.kill();
        }
    }

    /// Waits for `/readyz` 200; answers how long it took.
    async fn wait_ready(&mut self) -> Duration {
        self.running.as_mut().expect("a started service").wait_ready(Duration::from_secs(90)).await
    }
}

impl Drop for Service {
    /// A crash rather than RunningServe's graceful stop: the test is over, the database may be down.
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------------------------

struct Received {
    id: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 server answering 200 to every POST, recording `CreditPhone-Event-Id` and the body.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(socket, log).await;
                });
            }
        });
        Receiver { port, got, task }
    }

    fn url(&self, who: &str) -> String {
        format!("http://127.0.0.1:{}/{who}", self.port)
    }

    fn ids(&self) -> HashMap<String, Vec<Vec<u8>>> {
        let mut out: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for r in self.got.lock().expect("receiver log").iter() {
            out.entry(r.id.clone()).or_default().push(r.body.clone());
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(socket: tokio::net::TcpStream, log: Arc<Mutex<Vec<Received>>>) -> std::io::Result<()> {
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
        log.lock().expect("receiver log").push(Received { id, body });
        write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await?;
    }
}

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

/// The callers' keys and where the service is.
#[derive(Clone)]
struct World {
    base: String,
    http: reqwest::Client,
    admin: String,
    store: String,
    bank: String,
}

impl World {
    /// A provider and a bank with webhooks to the receiver, a store, a product, keys and customer lines.
    async fn setup(base: String, admin: String, hook: &Receiver) -> World {
        let http = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).pool_idle_timeout(Duration::from_secs(5)).build().expect("client");
        let mut spec = world::World::standard()
            .no_lines()
            .provider_extra("wld", json!({"webhook_url": hook.url("provider")}))
            .bank_extra("bk", json!({"exposure_limit": "999999999999", "webhook_url": hook.url("bank")}));
        for c in 0..CUSTOMERS {
            spec = spec.line_until("wld", c, "99999999", "2045-12-31");
        }
        let w = spec.build_at(&http, &base, &admin).await;
        let (store, bank) = (w.store().key.clone(), w.bank().key.clone());
        World { base, http, admin, store, bank }
    }
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Order,
    Funding,
    Repayment,
}

#[derive(Clone, Debug)]
struct Req {
    kind: Kind,
    key: String,
    auth: String,
    path: String,
    body: Value,
}

/// A stored answer the driver got: 2xx (acknowledged) or a business refusal.
#[derive(Clone, Debug)]
struct Ack {
    req: Req,
    status: u16,
    body: Value,
    request_id: String,
    replayed: bool,
    tries: u32,
}

#[derive(Clone, Debug)]
struct Attempt {
    sent: Instant,
    took: Duration,
    /// None: no HTTP answer (connection error or client timeout).
    status: Option<u16>,
    code: Option<String>,
    /// A `503` whose body is API.md's error object with `code: unavailable`.
    unavailable_body_ok: bool,
    error: Option<String>,
}

impl Attempt {
    fn answered(&self) -> Instant {
        self.sent + self.took
    }
    fn is_2xx(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

struct Shared {
    world: World,
    run: String,
    stop: AtomicBool,
    counter: AtomicU64,
    acks: Mutex<Vec<Ack>>,
    attempts: Mutex<Vec<Attempt>>,
    unexpected: Mutex<Vec<String>>,
    awaiting: Mutex<Vec<String>>,
    plans: Mutex<Vec<String>>,
}

struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    seed: u64,
}

/// What the driver saw, once stopped.
struct Driven {
    acks: Vec<Ack>,
    attempts: Vec<Attempt>,
    unexpected: Vec<String>,
    seed: u64,
}

impl Driven {
    fn acknowledged(&self) -> impl Iterator<Item = &Ack> {
        self.acks.iter().filter(|a| (200..300).contains(&a.status))
    }
    fn count(&self, kind: Kind) -> usize {
        self.acknowledged().filter(|a| a.req.kind == kind).count()
    }
    fn summary(&self) -> Value {
        let failed = self.attempts.iter().filter(|a| !a.is_2xx()).count();
        json!({
            "driver_seed": self.seed,
            "requests_sent": self.attempts.len(),
            "acknowledged": self.acknowledged().count(),
            "acknowledged_orders": self.count(Kind::Order),
            "acknowledged_fundings": self.count(Kind::Funding),
            "acknowledged_repayments": self.count(Kind::Repayment),
            "business_refusals": self.acks.len() - self.acknowledged().count(),
            "failed_attempts": failed,
            "connection_errors": self.attempts.iter().filter(|a| a.status.is_none()).count(),
            "answered_503": self.attempts.iter().filter(|a| a.status == Some(503)).count(),
            "acknowledged_after_retry": self.acknowledged().filter(|a| a.tries > 1).count(),
            "replayed_after_lost_answer": self.acknowledged().filter(|a| a.replayed).count(),
        })
    }
}

impl Load {
    fn start(world: World, seed: u64) -> Load {
        let shared = Arc::new(Shared {
            world,
            run: format!("r{}", uuid::Uuid::new_v4().simple()),
            stop: AtomicBool::new(false),
            counter: AtomicU64::new(1),
            acks: Mutex::default(),
            attempts: Mutex::default(),
            unexpected: Mutex::default(),
            awaiting: Mutex::default(),
            plans: Mutex::default(),
        });
        let tasks = (0..TASKS).map(|task| tokio::spawn(drive(shared.clone(), task, seed.wrapping_add(task as u64)))).collect();
        Load { shared, tasks, seed }
    }

    /// Acknowledged requests so far.
    fn acknowledged(&self) -> usize {
        self.shared.acks.lock().expect("acks").iter().filter(|a| (200..300).contains(&a.status)).count()
    }

    /// Stops the driver; each task finishes the request in hand and settles its pending retry.
    async fn stop(self) -> Driven {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("a driver task panicked");
        }
        let s = &self.shared;
        Driven {
            acks: std::mem::take(&mut *s.acks.lock().expect("acks")),
            attempts: std::mem::take(&mut *s.attempts.lock().expect("attempts")),
            unexpected: std::mem::take(&mut *s.unexpected.lock().expect("unexpected")),
            seed: self.seed,
        }
    }
}

impl Shared {
    fn next_request(&self, task: usize, rng: &mut StdRng) -> Req {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let key = format!("{}-{task}-{n}", self.run);
        let today = shanghai_today();
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
                let body = if rng.gen_range(0..10) == 0 {
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
}

enum Sent {
    Answer { status: u16, body: Value, request_id: String, replayed: bool },
    Failed(String),
}

async fn send(world: &World, req: &Req) -> Sent {
    let r = world
        .http
        .post(format!("{}{}", world.base, req.path))
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
    let request_id = header("x-request-id");
    let replayed = header("idempotent-replayed") == "true";
    match r.text().await {
        Ok(text) => Sent::Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), request_id, replayed },
        Err(e) => Sent::Failed(format!("reading the body: {e:?}")),
    }
}

fn unavailable_body_ok(body: &Value) -> bool {
    let e = &body["error"];
    e["code"] == "unavailable"
        && e["message"].as_str().is_some_and(|m| !m.is_empty())
        && e["request_id"].as_str().is_some_and(|r| r.starts_with("req_"))
        && e.as_object().is_some_and(|o| o.contains_key("field"))
}

/// Business refusals the workload can meet legitimately (a repayment on a plan paid off by others).
fn allowed_refusal(kind: Kind, status: u16, code: &str) -> bool {
    kind == Kind::Repayment && matches!((status, code), (422, "overpayment") | (409, "invalid_state"))
}

async fn drive(shared: Arc<Shared>, task: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pending: Option<(Req, u32)> = None;
    let mut settle_until: Option<Instant> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            let until = *settle_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
            if pending.is_none() || Instant::now() > until {
                return;
            }
        }
        let (req, tries) = match pending.take() {
            Some((req, tries)) => (req, tries + 1),
            None => (shared.next_request(task, &mut rng), 1),
        };
        let sent = Instant::now();
        let outcome = send(&shared.world, &req).await;
        let took = sent.elapsed();
        let retry = match outcome {
            Sent::Answer { status, body, request_id, replayed } => {
                let code = body["error"]["code"].as_str().map(str::to_string);
                shared.attempts.lock().expect("attempts").push(Attempt {
                    sent,
                    took,
                    status: Some(status),
                    code: code.clone(),
                    unavailable_body_ok: unavailable_body_ok(&body),
                    error: None,
                });
                let code = code.unwrap_or_default();
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
            Sent::Failed(error) => {
                shared.attempts.lock().expect("attempts").push(Attempt {
                    sent,
                    took,
                    status: None,
                    code: None,
                    unavailable_body_ok: false,
                    error: Some(error),
                });
                Some(req)
            }
        };
        if let Some(req) = retry {
            pending = Some((req, tries));
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..150))).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Verdict {
    lost: Vec<String>,
    duplicated: Vec<String>,
    replay_mismatches: Vec<String>,
    ledger: Value,
    orders: usize,
    plans: usize,
    repayments: usize,
}

impl Verdict {
    fn ledger_ok(&self) -> bool {
        self.ledger["ok"] == json!(true)
    }
    fn figures(&self) -> Value {
        json!({
            "lost": self.lost.len(),
            "duplicated": self.duplicated.len(),
            "replay_mismatches": self.replay_mismatches.len(),
            "ledger_ok": self.ledger_ok(),
            "orders_in_db": self.orders,
            "plans_in_db": self.plans,
            "repayments_in_db": self.repayments,
        })
    }
    #[track_caller]
    fn assert_clean(&self) {
        let first = |v: &Vec<String>| v.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ");
        assert!(self.lost.is_empty(), "{} acknowledged requests lost:\n  {}", self.lost.len(), first(&self.lost));
        assert!(self.duplicated.is_empty(), "{} duplicated:\n  {}", self.duplicated.len(), first(&self.duplicated));
        assert!(
            self.replay_mismatches.is_empty(),
            "{} replays differ from the first answer:\n  {}",
            self.replay_mismatches.len(),
            first(&self.replay_mismatches)
        );
        assert!(self.ledger_ok(), "ledger verify: {}", self.ledger);
    }
}

/// Every acknowledged request exists exactly once; every object is named by exactly one stored
/// answer; every stored answer the driver got replays unchanged; the ledger verifies.
async fn verify_everything(world: &World, db: &tokio_postgres::Client, driven: &Driven) -> Verdict {
    let mut v = Verdict::default();
    let orders: HashMap<String, (String, String)> = db
        .query("SELECT id, out_order_no, status FROM orders", &[])
        .await
        .expect("orders")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let plans: HashMap<String, (String, String)> = db
        .query("SELECT id, order_id, loan_no FROM plans", &[])
        .await
        .expect("plans")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let repayments: HashMap<String, (String, String, i64)> = db
        .query("SELECT id, plan_id, reference, amount_fen FROM repayments", &[])
        .await
        .expect("repayments")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    v.orders = orders.len();
    v.plans = plans.len();
    v.repayments = repayments.len();

    // Which objects the stored answers name.
    let mut named: HashMap<(Kind, String), usize> = HashMap::new();
    for row in db.query("SELECT path, status, body FROM idempotency_keys WHERE status BETWEEN 200 AND 299", &[]).await.expect("keys") {
        let (path, status, body): (String, i16, Value) = (row.get(0), row.get(1), row.get(2));
        let object = if path == "/v1/orders" && status == 201 {
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

    // Every acknowledged request, exactly once, as answered.
    let mut objects_acked: HashSet<(Kind, String)> = HashSet::new();
    for ack in driven.acknowledged() {
        let b = &ack.body;
        let key = &ack.req.key;
        let object = match ack.req.kind {
            Kind::Order => {
                let id = b["id"].as_str().unwrap_or("");
                match orders.get(id) {
                    Some((no, _)) if Some(no.as_str()) == ack.req.body["out_order_no"].as_str() => {}
                    other => v.lost.push(format!("order {id} (key {key}) acknowledged, in the database: {other:?}")),
                }
                id.to_string()
            }
            Kind::Funding => {
                let order_id = b["id"].as_str().unwrap_or("");
                if b["status"] == "rejected" {
                    match orders.get(order_id) {
                        Some((_, status)) if status == "rejected" => {}
                        other => v.lost.push(format!("rejection of {order_id} (key {key}) acknowledged, order: {other:?}")),
                    }
                    format!("rejected:{order_id}")
                } else {
                    let plan_id = b["plan"]["id"].as_str().unwrap_or("");
                    match plans.get(plan_id) {
                        Some((o, loan)) if o == order_id && Some(loan.as_str()) == ack.req.body["loan_no"].as_str() => {}
                        other => v.lost.push(format!("funding of {order_id} (key {key}) acknowledged, plan {plan_id}: {other:?}")),
                    }
                    match orders.get(order_id) {
                        Some((_, status)) if matches!(status.as_str(), "active" | "settled") => {}
                        other => v.lost.push(format!("funded order {order_id} (key {key}) is {other:?}")),
                    }
                    plan_id.to_string()
                }
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
        if !objects_acked.insert((ack.req.kind, object.clone())) {
            v.duplicated.push(format!("{:?} {object} acknowledged to two keys", ack.req.kind));
        }
    }

    // Every stored answer the driver got (2xx and business refusals) replays unchanged.
    let world = world.clone();
    let mismatches: Vec<String> = futures_util::stream::iter(driven.acks.iter().cloned())
        .map(|ack| {
            let world = world.clone();
            async move {
                let mut last = String::new();
                for _ in 0..5 {
                    match send(&world, &ack.req).await {
                        Sent::Answer { status, body, request_id, replayed } => {
                            if status == ack.status && body == ack.body && request_id == ack.request_id && replayed {
                                return None;
                            }
                            last = format!(
                                "{} key {}: first {} {} ({}), replay {status} {body} ({request_id}, replayed: {replayed})",
                                ack.req.path, ack.req.key, ack.status, ack.body, ack.request_id
                            );
                            if status != 503 {
                                break;
                            }
                        }
                        Sent::Failed(e) => last = format!("{} key {}: replay failed: {e}", ack.req.path, ack.req.key),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(last)
            }
        })
        .buffer_unordered(8)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    v.replay_mismatches = mismatches;

    let r = world.http.get(format!("{}/v1/admin/ledger/verify", world.base)).bearer_auth(&world.admin).send().await.expect("verify");
    v.ledger = r.json().await.expect("verify json");
    v
}

/// Waits until every notice for a recipient with a webhook has reached the receiver; checks that
/// some were created after `mark` (the last restart), that duplicates carry the same body, and that
/// nothing unknown arrived.
async fn await_notices(db: &tokio_postgres::Client, hook: &Receiver, mark: i64, within: Duration) -> Value {
    let started = Instant::now();
    let mut wanted: Vec<(i64, String)>;
    loop {
        wanted = db
            .query("SELECT seq, id FROM notices WHERE state <> 'pull_only' ORDER BY seq", &[])
            .await
            .expect("notices")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let got = hook.ids();
        let missing: Vec<&String> = wanted.iter().map(|(_, id)| id).filter(|id| !got.contains_key(*id)).collect();
        if missing.is_empty() {
            break;
        }
        if started.elapsed() > within {
            let sample: Vec<String> = missing.iter().take(5).map(|s| s.to_string()).collect();
            let states = db
                .query("SELECT id, state, attempts, last_error FROM notices WHERE id = ANY($1)", &[&sample])
                .await
                .expect("states")
                .iter()
                .map(|r| {
                    format!(
                        "{} {} attempts={} {:?}",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, i32>(2),
                        r.get::<_, Option<String>>(3)
                    )
                })
                .collect::<Vec<_>>();
            panic!("{} of {} webhook notices never reached the receiver within {within:?}; e.g. {states:?}", missing.len(), wanted.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = started.elapsed();
    let got = hook.ids();
    let known: HashSet<&String> = wanted.iter().map(|(_, id)| id).collect();
    let unknown: Vec<&String> = got.keys().filter(|id| !known.contains(id)).collect();
    assert!(unknown.is_empty(), "the receiver got notices that are not in the database: {unknown:?}");
    let mut redelivered = 0;
    for (id, bodies) in &got {
        redelivered += bodies.len() - 1;
        assert!(bodies.iter().all(|b| b == &bodies[0]), "notice {id} was delivered twice with different bodies");
        let v: Value = serde_json::from_slice(&bodies[0]).expect("a notice is JSON");
        assert_eq!(v["id"].as_str(), Some(id.as_str()), "the body's id is the event id header");
    }
    let after = wanted.iter().filter(|(seq, _)| *seq > mark).count();
    assert!(after > 0, "no webhook notice was created after the last restart (mark {mark}): nothing shows delivery resumed");
    json!({"notices_delivered": wanted.len(), "notices_after_last_restart": after, "notice_redeliveries": redelivered,
           "notices_catch_up_ms": ms(waited)})
}

fn report(figures: &Value) {
    eprintln!("FAULTS {figures}");
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Attempts answered 5xx other than 503, or never answered within the client timeout.
/// What every fault test reads once its load stopped: the verdict on the ledger and the driven
/// answers, the notices delivered since `mark`, and the answers that are failures of the service.
async fn settle(world: &World, pg: &Pg, hook: &Receiver, mark: i64, driven: &Driven) -> (Verdict, Value, Vec<String>) {
    let db = pg.client().await;
    let verdict = verify_everything(world, &db, driven).await;
    let notices = await_notices(&db, hook, mark, Duration::from_secs(120)).await;
    (verdict, notices, bad_failures(&driven.attempts))
}

/// Every fault test's claim on the answers: each one expected, no 5xx but 503 and no hang, and
/// every 503 with API.md's body (`log` is the service's, for the failure message).
#[track_caller]
fn assert_answers_clean(driven: &Driven, bad: &[String], log: &str) {
    assert!(driven.unexpected.is_empty(), "unexpected answers: {:?}\n{log}", &driven.unexpected[..driven.unexpected.len().min(10)]);
    assert!(bad.is_empty(), "5xx other than 503, or hangs: {bad:?}\n{log}");
    assert_eq!(bad_503_bodies(&driven.attempts), 0, "503 answers without API.md's unavailable body");
}

fn bad_failures(attempts: &[Attempt]) -> Vec<String> {
    attempts
        .iter()
        .filter(|a| a.status.is_some_and(|s| s >= 500 && s != 503) || a.took >= CLIENT_TIMEOUT - Duration::from_secs(1))
        .map(|a| format!("{:?} after {} ms: {:?} {:?}", a.status, ms(a.took), a.code, a.error))
        .collect()
}

/// Answers with a 503 whose body is not API.md's `unavailable` error.
fn bad_503_bodies(attempts: &[Attempt]) -> usize {
    attempts.iter().filter(|a| a.status == Some(503) && !a.unavailable_body_ok).count()
}

async fn setup_all(pg: &Pg) -> (Receiver, Service, World) {
    let hook = Receiver::start().await;
    let admin = format!("adm-{}", uuid::Uuid::new_v4().simple());
    let mut svc = Service::new(pg, &admin);
    svc.spawn();
    svc.wait_ready().await;
    let world = World::setup(svc.base(), admin, &hook).await;
    (hook, svc, world)
}

/// Lets the driver run until it has had `n` more acknowledgements (or `max` passes).
async fn run_load(load: &Load, n: usize, max: Duration) {
    let started = Instant::now();
    let target = load.acknowledged() + n;
    while load.acknowledged() < target && started.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The service SIGKILLed under load
// ---------------------------------------------------------------------------------------------

#[test]
fn service_killed_under_load_loses_nothing_and_applies_nothing_twice() {
    run(async {
        let started = Instant::now();
        let kills = knob("FAULTS_KILLS", 3, 10);
        let seed = seed();
        let mut pg = Pg::start().await;
        let (hook, mut svc, world) = setup_all(&pg).await;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let load = Load::start(world.clone(), seed);
        run_load(&load, 50, Duration::from_secs(20)).await;

        let mut mark = 0;
        let mut restart_ms = Vec::new();
        for _ in 0..kills {
            let (lo, hi) = if long_run() { (1500, 6000) } else { (700, 2500) };
            tokio::time::sleep(Duration::from_millis(rng.gen_range(lo..hi))).await;
            svc.kill();
            let killed = Instant::now();
            // Whatever is drawn after this was written by the next instance.
            mark = pg.notice_mark().await;
            svc.spawn();
            svc.wait_ready().await;
            restart_ms.push(ms(killed.elapsed()));
        }
        // Enough work after the last restart to show notices resume.
        run_load(&load, 100, Duration::from_secs(30)).await;
        let driven = load.stop().await;
        let batched = orders_placed_in_batches(&world).await;

        let (verdict, notices, bad) = settle(&world, &pg, &hook, mark, &driven).await;
        let figures = merge(
            merge(
                merge(
                    json!({"test": "service_sigkill", "service_kills": kills, "orders_batched_last_instance": batched}),
                    driven.summary(),
                ),
                verdict.figures(),
            ),
            merge(
                notices,
                json!({"restart_to_ready_ms_max": restart_ms.iter().max(), "unexpected_answers": driven.unexpected.len(),
                       "bad_5xx_or_hangs": bad.len(), "elapsed_s": started.elapsed().as_secs()}),
            ),
        );
        report(&figures);
        assert_answers_clean(&driven, &bad, &svc.log_tail());
        verdict.assert_clean();
        assert!(driven.count(Kind::Order) > 0 && driven.count(Kind::Funding) > 0 && driven.count(Kind::Repayment) > 0);
        assert!(batched > 0, "the last instance placed orders in batches of more than one");
        drop(svc);
        pg.stop().await;
    });
}

/// The running instance's count of orders placed by batches of more than one (`/metrics`).
async fn orders_placed_in_batches(world: &World) -> i64 {
    let text = world.http.get(format!("{}/metrics", world.base)).send().await.expect("metrics").text().await.expect("metrics text");
    let wanted = format!("kind=\"{}\"", creditphone::service::orders::BATCHED_GAUGE);
    text.lines().find(|l| l.contains(&wanted)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// 2. PostgreSQL killed under load; the service recovers by itself
// ---------------------------------------------------------------------------------------------

#[test]
fn postgres_killed_under_load_the_service_recovers_by_itself() {
    run(async {
        let started = Instant::now();
        let kills = knob("FAULTS_PG_KILLS", 3, 6);
        let seed = seed();
        let mut pg = Pg::start().await;
        let (hook, svc, world) = setup_all(&pg).await;
        let http = reqwest::Client::new();
        let mut rng = StdRng::seed_from_u64(seed ^ 0xdb);
        let load = Load::start(world.clone(), seed);
        run_load(&load, 50, Duration::from_secs(20)).await;

        let mut mark = 0;
        let mut recovery_ms = Vec::new();
        for i in 0..kills {
            let (lo, hi) = if long_run() { (2000, 6000) } else { (1000, 3000) };
            tokio::time::sleep(Duration::from_millis(rng.gen_range(lo..hi))).await;
            let how = [Crash::Kill, Crash::Backend, Crash::Immediate][i as usize % 3];
            let up = if let Crash::Backend = how {
                assert!(pg.kill_one_backend(), "no client backend to kill");
                Instant::now()
            } else {
                pg.crash(how).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
                pg.restart().await;
                Instant::now()
            };
            mark = pg.notice_mark().await;
            // The same service, not restarted, is ready again by itself.
            let recovered = loop {
                if let Ok(r) = http.get(format!("{}/readyz", svc.base())).timeout(Duration::from_secs(5)).send().await
                    && r.status().as_u16() == 200
                {
                    break up.elapsed();
                }
                assert!(up.elapsed() < Duration::from_secs(60), "the service does not recover after {how:?}:\n{}", svc.log_tail());
                tokio::time::sleep(Duration::from_millis(25)).await;
            };
            recovery_ms.push(ms(recovered));
        }
        run_load(&load, 100, Duration::from_secs(30)).await;
        let driven = load.stop().await;

        let (verdict, notices, bad) = settle(&world, &pg, &hook, mark, &driven).await;
        let figures = merge(
            merge(merge(json!({"test": "postgres_kill", "postgres_kills": kills}), driven.summary()), verdict.figures()),
            merge(
                notices,
                json!({"readyz_recovery_ms": recovery_ms, "unexpected_answers": driven.unexpected.len(),
                       "bad_5xx_or_hangs": bad.len(), "elapsed_s": started.elapsed().as_secs()}),
            ),
        );
        report(&figures);
        assert_answers_clean(&driven, &bad, &svc.log_tail());
        assert!(
            recovery_ms.iter().all(|r| *r <= ms(RECOVERY_BOUND)),
            "readyz took longer than {RECOVERY_BOUND:?} to recover: {recovery_ms:?}"
        );
        verdict.assert_clean();
        drop(svc);
        pg.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// 3. A database outage: 503 fast, /readyz 503, recovery without a restart
// ---------------------------------------------------------------------------------------------

#[test]
fn database_outage_answers_503_fast_and_recovers_within_5_s() {
    run(async {
        let started = Instant::now();
        let outage = Duration::from_secs(knob("FAULTS_OUTAGE_SECS", 10, 10));
        let seed = seed();
        let mut pg = Pg::start().await;
        let (hook, svc, world) = setup_all(&pg).await;
        let load = Load::start(world.clone(), seed);
        run_load(&load, 100, Duration::from_secs(30)).await;

        pg.stop().await;
        let down = Instant::now();
        // /readyz, polled through the outage.
        let readyz: Vec<(Instant, Duration, Option<u16>)> = {
            let mut polls = Vec::new();
            let http = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build().expect("client");
            while down.elapsed() < outage {
                let sent = Instant::now();
                let status = http.get(format!("{}/readyz", svc.base())).send().await.ok().map(|r| r.status().as_u16());
                polls.push((sent, sent.elapsed(), status));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            polls
        };
        let restart_begins = Instant::now();
        pg.restart().await;
        let up = Instant::now();
        let http = reqwest::Client::new();
        let readyz_recovered = loop {
            if let Ok(r) = http.get(format!("{}/readyz", svc.base())).timeout(Duration::from_secs(5)).send().await
                && r.status().as_u16() == 200
            {
                break up.elapsed();
            }
            assert!(up.elapsed() < Duration::from_secs(60), "readyz never recovers:\n{}", svc.log_tail());
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let mark = pg.notice_mark().await;
        run_load(&load, 100, Duration::from_secs(30)).await;
        let driven = load.stop().await;

        // Requests sent and answered while the database was down.
        let during: Vec<&Attempt> = driven.attempts.iter().filter(|a| a.sent >= down && a.answered() <= restart_begins).collect();
        let max_failing = during.iter().map(|a| a.took).max().unwrap_or_default();
        let not_503: Vec<String> = during
            .iter()
            .filter(|a| a.status != Some(503) || a.code.as_deref() != Some("unavailable") || !a.unavailable_body_ok)
            .map(|a| format!("{:?} {:?} {:?} after {} ms", a.status, a.code, a.error, ms(a.took)))
            .collect();
        let readyz_during: Vec<&(Instant, Duration, Option<u16>)> =
            readyz.iter().filter(|(sent, took, _)| *sent >= down && *sent + *took <= restart_begins).collect();
        let readyz_max = readyz_during.iter().map(|(_, took, _)| *took).max().unwrap_or_default();
        let first_2xx_after = driven.attempts.iter().filter(|a| a.sent >= up && a.is_2xx()).map(|a| a.answered()).min();
        let answers_again = first_2xx_after.map(|t| t.saturating_duration_since(up));

        let (verdict, notices, bad) = settle(&world, &pg, &hook, mark, &driven).await;
        let bound = Duration::from_millis(DB_TIMEOUT_MS) + Duration::from_secs(1);
        let figures = merge(
            merge(merge(json!({"test": "database_outage", "outage_s": outage.as_secs()}), driven.summary()), verdict.figures()),
            merge(
                notices,
                json!({
                    "requests_during_outage": during.len(),
                    "requests_during_outage_not_503_unavailable": not_503.len(),
                    "max_failing_request_ms": ms(max_failing),
                    "failing_request_bound_ms": ms(bound),
                    "readyz_polls_during_outage": readyz_during.len(),
                    "readyz_max_ms_during_outage": ms(readyz_max),
                    "readyz_recovery_ms": ms(readyz_recovered),
                    "first_2xx_after_restart_ms": answers_again.map(ms),
                    "unexpected_answers": driven.unexpected.len(),
                    "bad_5xx_or_hangs": bad.len(),
                    "elapsed_s": started.elapsed().as_secs(),
                }),
            ),
        );
        report(&figures);
        assert!(during.len() >= 20, "the driver kept sending during the outage: only {} requests", during.len());
        assert!(not_503.is_empty(), "during the outage every request answers 503 unavailable: {:?}", &not_503[..not_503.len().min(10)]);
        assert!(max_failing <= bound, "a failing request took {max_failing:?} (bound {bound:?})");
        assert!(
            !readyz_during.is_empty() && readyz_during.iter().all(|(_, _, s)| *s == Some(503)),
            "readyz during the outage: {readyz_during:?}"
        );
        assert!(readyz_max <= bound, "readyz took {readyz_max:?} during the outage");
        assert!(readyz_recovered <= RECOVERY_BOUND, "readyz 200 only {readyz_recovered:?} after the database came back");
        assert!(answers_again.is_some_and(|d| d <= RECOVERY_BOUND), "2xx again only after {answers_again:?}");
        assert_answers_clean(&driven, &bad, &svc.log_tail());
        verdict.assert_clean();
        drop(svc);
        pg.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// 4. A frozen database (SIGSTOP): reachable but never answering.
// ---------------------------------------------------------------------------------------------

/// Every PostgreSQL process stopped (SIGSTOP) for `FAULTS_FREEZE_SECS` (5) under load, as a paused
/// VM or a stuck storage layer would: connections stay open, nothing answers, and the server-side
/// `statement_timeout` cannot fire. `/readyz` answers 503 within the bound (db::ready); a request
/// that holds a pooled connection (or gets one: `RecyclingMethod::Fast` does not ask the server)
/// is cut by `server.request_timeout_ms` with `503 unavailable`, its transaction rolled back.
/// Before that deadline existed, such requests waited for the whole freeze.
#[test]
fn frozen_database_answers_503_within_the_timeout() {
    run(async {
        let freeze = Duration::from_secs(knob("FAULTS_FREEZE_SECS", 5, 10));
        let pg = Pg::start().await;
        let (_hook, svc, world) = setup_all(&pg).await;
        let load = Load::start(world.clone(), seed());
        run_load(&load, 100, Duration::from_secs(30)).await;
        let frozen = pg.processes();
        for pid in &frozen {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGSTOP);
        }
        let down = Instant::now();
        let http = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build().expect("client");
        let mut readyz = Vec::new();
        while down.elapsed() < freeze {
            let sent = Instant::now();
            let status = http.get(format!("{}/readyz", svc.base())).send().await.ok().map(|r| r.status().as_u16());
            readyz.push((sent.elapsed(), status));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for pid in &frozen {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
        }
        let thawed = Instant::now();
        run_load(&load, 50, Duration::from_secs(30)).await;
        let driven = load.stop().await;
        let bound = Duration::from_millis(REQUEST_TIMEOUT_MS.max(DB_TIMEOUT_MS)) + Duration::from_secs(1);
        let overlapping: Vec<&Attempt> = driven.attempts.iter().filter(|a| a.answered() >= down && a.sent <= thawed).collect();
        let max_took = overlapping.iter().map(|a| a.took).max().unwrap_or_default();
        let readyz_max = readyz.iter().map(|(took, _)| *took).max().unwrap_or_default();
        report(&json!({"test": "database_frozen", "freeze_s": freeze.as_secs(), "requests_overlapping": overlapping.len(),
                       "max_request_ms": ms(max_took), "readyz_polls": readyz.len(), "readyz_max_ms": ms(readyz_max),
                       "bound_ms": ms(bound)}));
        assert!(readyz.iter().all(|(took, s)| *s == Some(503) && *took <= bound), "readyz during the freeze: {readyz:?}");
        assert!(max_took <= bound, "a request overlapping the freeze took {max_took:?} (bound {bound:?})");
        let db = pg.client().await;
        verify_everything(&world, &db, &driven).await.assert_clean();
    });
}

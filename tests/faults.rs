//! Fault injection against the real binary (issue 7, "Prove it holds"): PRODUCT.md's "nothing that
//! answered 2xx is lost, and nothing is applied twice" under a crashing service, a crashing
//! PostgreSQL and a database outage, with API.md's `503 unavailable` (fast, never hanging) and
//! `/readyz` behaviour.
//!
//! Each test starts a PostgreSQL cluster of its own (an `EmbeddedCluster` in a temp dir, not the
//! shared per-binary one: it gets killed), the real `creditphone serve` against it (webhook delivery
//! on, to a tiny HTTP receiver inside the test) and a driver of concurrent tasks placing orders,
//! fundings (one in ten rejected) and repayments, each with an Idempotency-Key, recording every
//! 2xx (key, request, answer). The receiver, the world and the driver are tests/traffic's, shared
//! with the several-instance and failover tests; the replay and ledger checks are this file's.
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
mod traffic;

use common::binary::{RunningServe, ServeBinary, log_tail};
use creditphone::pg::embedded::{ClusterOptions, EmbeddedCluster};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use traffic::{Attempt, Driven, Kind, Load, Mix, Receiver, Sent, World, send};

/// `database.timeout_ms` of the service under test: a failing request must answer within this + 1 s.
const DB_TIMEOUT_MS: u64 = 1000;
const DB_NAME: &str = "creditphone";
/// `server.request_timeout_ms` of the service under test: what bounds a request when the database
/// holds its connections open but never answers (frozen).
const REQUEST_TIMEOUT_MS: u64 = 2000;
/// A request that takes this long is a hang (the driver's client gives up then).
const CLIENT_TIMEOUT: Duration = traffic::CLIENT_TIMEOUT;
const TASKS: usize = 8;
/// How long a stopped driver's tasks may go on retrying their pending request.
const SETTLE: Duration = Duration::from_secs(30);
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
// The checks
// ---------------------------------------------------------------------------------------------

/// `traffic::reconcile`'s verdict on the objects, and what only this file checks: every stored
/// answer the driver got replays unchanged, and the ledger verifies.
struct Verdict {
    objects: traffic::Verdict,
    replay_mismatches: Vec<String>,
    ledger: Value,
}

impl Verdict {
    fn ledger_ok(&self) -> bool {
        self.ledger["ok"] == json!(true)
    }
    fn figures(&self) -> Value {
        json!({
            "lost": self.objects.lost.len(),
            "duplicated": self.objects.duplicated.len(),
            "replay_mismatches": self.replay_mismatches.len(),
            "ledger_ok": self.ledger_ok(),
            "orders_in_db": self.objects.orders,
            "plans_in_db": self.objects.plans,
            "repayments_in_db": self.objects.repayments,
        })
    }
    #[track_caller]
    fn assert_clean(&self) {
        self.objects.assert_clean();
        let first = |v: &Vec<String>| v.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ");
        assert!(
            self.replay_mismatches.is_empty(),
            "{} replays differ from the first answer:\n  {}",
            self.replay_mismatches.len(),
            first(&self.replay_mismatches)
        );
        assert!(self.ledger_ok(), "ledger verify: {}", self.ledger);
    }
}

/// A funded order whose plan was acknowledged is `active` or `settled` (nothing here defaults it).
async fn funded_orders_open(db: &tokio_postgres::Client, driven: &Driven) -> Vec<String> {
    let funded: Vec<String> = driven
        .acknowledged()
        .filter(|a| a.req.kind == Kind::Funding && a.body["status"] != "rejected")
        .filter_map(|a| a.body["id"].as_str().map(str::to_string))
        .collect();
    let open: HashSet<String> = db
        .query("SELECT id FROM orders WHERE id = ANY($1) AND status IN ('active', 'settled')", &[&funded])
        .await
        .expect("funded orders")
        .iter()
        .map(|r| r.get(0))
        .collect();
    funded.into_iter().filter(|id| !open.contains(id)).map(|id| format!("funded order {id} is neither active nor settled")).collect()
}

/// Every stored answer the driver got (2xx and business refusals) replays unchanged: status,
/// body and `X-Request-Id`, marked replayed. A `503` on the way is tried again.
async fn replay_mismatches(world: &World, driven: &Driven) -> Vec<String> {
    futures_util::stream::iter(driven.acks.iter().cloned())
        .map(|ack| {
            let world = world.clone();
            async move {
                let mut last = String::new();
                for _ in 0..5 {
                    match send(&world, &world.bases[0], &ack.req).await {
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
        .await
}

/// Every acknowledged request exists exactly once (`traffic::reconcile`), funded orders are open;
/// every stored answer the driver got replays unchanged; the ledger verifies.
async fn verify_everything(world: &World, db: &tokio_postgres::Client, driven: &Driven) -> Verdict {
    let mut objects = traffic::reconcile(db, driven).await;
    objects.lost.extend(funded_orders_open(db, driven).await);
    let replay_mismatches = replay_mismatches(world, driven).await;
    Verdict { objects, replay_mismatches, ledger: world.verify().await }
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
        let got = hook.bodies();
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
    let got = hook.bodies();
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
        .filter(|a| a.status.is_some_and(|s| s >= 500 && s != 503) || a.took() >= CLIENT_TIMEOUT - Duration::from_secs(1))
        .map(|a| format!("{:?} after {} ms: {:?} {:?}", a.status, ms(a.took()), a.code, a.error))
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
    let world = World::setup(vec![svc.base()], admin, &hook).await;
    (hook, svc, world)
}

/// The driver's mix here: one funding decision in ten a rejection, retries 50-150 ms apart.
fn mix(seed: u64) -> Mix {
    Mix { rejections: true, retry_pause_ms: 50..150, ..Mix::new(TASKS, seed) }
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
        let load = Load::start_with(world.clone(), mix(seed));
        load.run_for(50, Duration::from_secs(20)).await;

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
        load.run_for(100, Duration::from_secs(30)).await;
        let driven = load.stop(SETTLE).await;
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
    let text = world.http.get(format!("{}/metrics", world.bases[0])).send().await.expect("metrics").text().await.expect("metrics text");
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
        let load = Load::start_with(world.clone(), mix(seed));
        load.run_for(50, Duration::from_secs(20)).await;

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
        load.run_for(100, Duration::from_secs(30)).await;
        let driven = load.stop(SETTLE).await;

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
        let load = Load::start_with(world.clone(), mix(seed));
        load.run_for(100, Duration::from_secs(30)).await;

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
        load.run_for(100, Duration::from_secs(30)).await;
        let driven = load.stop(SETTLE).await;

        // Requests sent and answered while the database was down.
        let during: Vec<&Attempt> = driven.attempts.iter().filter(|a| a.sent >= down && a.answered <= restart_begins).collect();
        let max_failing = during.iter().map(|a| a.took()).max().unwrap_or_default();
        let not_503: Vec<String> = during
            .iter()
            .filter(|a| a.status != Some(503) || a.code.as_deref() != Some("unavailable") || !a.unavailable_body_ok)
            .map(|a| format!("{:?} {:?} {:?} after {} ms", a.status, a.code, a.error, ms(a.took())))
            .collect();
        let readyz_during: Vec<&(Instant, Duration, Option<u16>)> =
            readyz.iter().filter(|(sent, took, _)| *sent >= down && *sent + *took <= restart_begins).collect();
        let readyz_max = readyz_during.iter().map(|(_, took, _)| *took).max().unwrap_or_default();
        let first_2xx_after = driven.attempts.iter().filter(|a| a.sent >= up && a.is_2xx()).map(|a| a.answered).min();
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
        let load = Load::start_with(world.clone(), mix(seed()));
        load.run_for(100, Duration::from_secs(30)).await;
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
        load.run_for(50, Duration::from_secs(30)).await;
        let driven = load.stop(SETTLE).await;
        let bound = Duration::from_millis(REQUEST_TIMEOUT_MS.max(DB_TIMEOUT_MS)) + Duration::from_secs(1);
        let overlapping: Vec<&Attempt> = driven.attempts.iter().filter(|a| a.answered >= down && a.sent <= thawed).collect();
        let max_took = overlapping.iter().map(|a| a.took()).max().unwrap_or_default();
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

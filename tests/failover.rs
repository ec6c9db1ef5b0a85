//! The service's side of a PostgreSQL failover (issue 19): a connection that no longer reaches a
//! writable primary — its session terminated (`57P01`), or its server read-only (`25006`, what a
//! demoted primary answers) — answers `503 unavailable`, never 500, is never handed out again, and
//! the service recovers by itself, `/readyz` included, without a restart.
//!
//! Each test runs the real `creditphone serve` on a fresh database of this binary's PostgreSQL
//! cluster and writes through it (providers: an admin write that needs no other set-up).

mod common;
mod traffic;

use common::binary::{RunningServe, ServeBinary};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ADMIN: &str = "failover-admin";
/// `database.timeout_ms` of the service under test.
const DB_TIMEOUT_MS: u64 = 1000;
/// The service must write again this soon after the database does.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// The tests change database-wide settings of their own database only, but each terminates
/// backends: one at a time keeps their timings apart.
static SERIAL: Mutex<()> = Mutex::new(());
static PROVIDER: AtomicU64 = AtomicU64::new(0);

struct Service {
    serve: RunningServe,
    http: reqwest::Client,
    db: tokio_postgres::Client,
    db_name: String,
    pg: tokio_postgres::Config,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start() -> Service {
        Service::start_with(false).await
    }

    /// With webhook delivery on (or off), retried every second.
    async fn start_with(notices: bool) -> Service {
        let pg = common::fresh_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut serve = ServeBinary::on_test_database(dir.path(), &pg, ADMIN)
            .env("CREDITPHONE__DATABASE__TIMEOUT_MS", DB_TIMEOUT_MS.to_string())
            .env("CREDITPHONE__NOTICES__POLL_INTERVAL_MS", "100")
            .env("CREDITPHONE__NOTICES__RETRY_INITIAL_SECS", "1")
            .env("CREDITPHONE__NOTICES__RETRY_MAX_SECS", "1")
            .notices_enabled(notices)
            .spawn();
        serve.wait_ready(Duration::from_secs(30)).await;
        let db = creditphone::db::connect(&pg).await.expect("connect");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
        Service { serve, http, db, db_name: pg.get_dbname().expect("dbname").to_string(), pg, _dir: dir }
    }

    /// Creates a provider: the status and body.
    async fn write(&self) -> (u16, Value) {
        let n = PROVIDER.fetch_add(1, Ordering::SeqCst);
        let body = json!({"id": format!("prov-{n}"), "name": "failover"});
        let res = self
            .http
            .post(format!("{}/v1/admin/providers", self.serve.base_url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the service answers ({e}):\n{}", self.serve.log_tail(30)));
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn ready(&self) -> bool {
        let res = self.http.get(format!("{}/readyz", self.serve.base_url)).send().await.expect("readyz answers");
        res.status().as_u16() == 200
    }

    /// Terminates every session the service has open on its database; answers how many.
    async fn terminate_backends(&self) -> i64 {
        let row = self
            .db
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'creditphone'",
                &[&self.db_name],
            )
            .await
            .expect("terminate");
        row.get(0)
    }

    async fn set_read_only(&self, on: bool) {
        let sql = if on {
            format!("ALTER DATABASE {} SET default_transaction_read_only = on", self.db_name)
        } else {
            format!("ALTER DATABASE {} RESET default_transaction_read_only", self.db_name)
        };
        self.db.batch_execute(&sql).await.expect("alter database");
    }

    /// Writes until one succeeds; panics on a 500 or anything but 201 and 503 `unavailable`, or
    /// after `limit`. Answers how long it took and how many 503s it saw.
    async fn write_until_ok(&self, limit: Duration) -> (Duration, usize) {
        let started = Instant::now();
        let mut unavailable = 0;
        loop {
            let (status, body) = self.write().await;
            match status {
                201 => return (started.elapsed(), unavailable),
                503 => {
                    assert_eq!(body["error"]["code"], "unavailable", "{body}");
                    unavailable += 1;
                }
                _ => panic!("a write answered {status} {body}:\n{}", self.serve.log_tail(30)),
            }
            assert!(started.elapsed() < limit, "no write succeeded within {limit:?}:\n{}", self.serve.log_tail(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn run(test: impl std::future::Future<Output = ()>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime").block_on(test);
}

/// A write in flight when its session is terminated answers 503 (it waits on a lock the test
/// holds, so that it is surely in flight); so do none of the writes after it: they succeed at once,
/// on new connections, and `/readyz` stays ready.
#[test]
fn terminated_sessions_answer_503_and_the_service_writes_again_by_itself() {
    run(async {
        let service = Service::start().await;
        for _ in 0..5 {
            assert_eq!(service.write().await.0, 201);
        }
        let mut locker = creditphone::db::connect(&service.pg).await.expect("connect");
        let tx = locker.transaction().await.expect("begin");
        tx.batch_execute("LOCK TABLE providers IN ACCESS EXCLUSIVE MODE").await.expect("lock");
        let in_flight = {
            let http = service.http.clone();
            let url = format!("{}/v1/admin/providers", service.serve.base_url);
            tokio::spawn(async move {
                let res = http.post(url).bearer_auth(ADMIN).json(&json!({"id": "prov-blocked", "name": "x"})).send().await.expect("answer");
                (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
            })
        };
        wait_for_lock_waiter(&service).await;
        assert!(service.terminate_backends().await >= 1);
        let (status, body) = in_flight.await.expect("task");
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
        tx.rollback().await.expect("rollback");

        // Under steady writes, three more rounds of termination: 503s at most, then writes again.
        for _ in 0..3 {
            service.terminate_backends().await;
            let (took, _) = service.write_until_ok(RECOVERY_BOUND).await;
            assert!(took < RECOVERY_BOUND, "{took:?}");
        }
        assert!(service.ready().await, "/readyz ready again");
        assert_no_500(&service);
    });
}

/// The demoted primary: every session the service opens is read-only, so writes fail with
/// `25006` — answered 503. When the database takes writes again, so does the service, by itself:
/// it does not keep handing out the read-only sessions it opened meanwhile (they would stay
/// read-only for ever: a database's default applies when a session starts).
#[test]
fn a_read_only_database_answers_503_and_writes_resume_once_it_takes_writes() {
    run(async {
        let service = Service::start().await;
        assert_eq!(service.write().await.0, 201);
        service.set_read_only(true).await;
        service.terminate_backends().await;
        let mut refused = 0;
        for _ in 0..10 {
            let (status, body) = service.write().await;
            assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
            refused += 1;
        }
        let read_only_sessions = service_sessions(&service).await;
        assert!(read_only_sessions >= 1, "the service holds read-only sessions now");
        assert!(service.ready().await, "reads still work: /readyz stays ready");

        service.set_read_only(false).await;
        let (took, unavailable) = service.write_until_ok(RECOVERY_BOUND).await;
        assert!(unavailable <= 1, "at most the first write after the change meets an old session: {unavailable}");
        for _ in 0..20 {
            assert_eq!(service.write().await.0, 201, "every write after recovery succeeds");
        }
        eprintln!("FAILOVER {}", json!({"refused": refused, "recovered_ms": took.as_millis() as u64, "unavailable_after": unavailable}));
        assert_no_500(&service);
    });
}

/// Webhook delivery alone — no request coming in to notice anything — heals after a read-only
/// spell: its own errors retire the read-only sessions, so once the database takes writes again the
/// notices pending meanwhile reach the receiver.
#[test]
fn webhook_delivery_alone_recovers_from_a_read_only_database() {
    run(async {
        let service = Service::start_with(true).await;
        let hook = traffic::Receiver::start().await;
        hook.set_failing(true);
        let world = traffic::World::setup(vec![service.serve.base_url.clone()], ADMIN.to_string(), &hook).await;
        let order = json!({"out_order_no": "ro-1", "product_id": "p12", "term_months": 12,
            "customer": {"id_number": common::id_number(1), "phone": common::phone(1)},
            "device": {"sku": "phone-x", "imei": common::imei(1), "price": "3999"}, "down_payment": "999"});
        let placed = world.http.post(format!("{}/v1/orders", service.serve.base_url)).bearer_auth(&world.store);
        let placed = placed.header("Idempotency-Key", "ro-1").json(&order).send().await.expect("order");
        assert_eq!(placed.status().as_u16(), 201);
        wait(Duration::from_secs(10), "a delivery refused", || async { hook.refused() > 0 }).await;

        service.set_read_only(true).await;
        service.terminate_backends().await;
        let refused = hook.refused();
        // Delivery meets the read-only sessions (retries come due every second) and fails.
        wait(Duration::from_secs(10), "delivery failing on the read-only database", || async {
            service.serve.log().contains("read-only transaction")
        })
        .await;
        hook.set_failing(false);
        service.set_read_only(false).await;

        let sql = "SELECT count(*) FROM notices WHERE state::text <> 'pull_only'";
        let wanted: i64 = service.db.query_one(sql, &[]).await.expect("count").get(0);
        assert!(wanted >= 2, "the order's notices to the bank and the provider: {wanted}");
        wait(Duration::from_secs(15), "every notice delivered with no request coming in", || async {
            hook.deliveries().len() as i64 == wanted
        })
        .await;
        assert!(hook.refused() >= refused);
        assert_no_500(&service);
    });
}

/// Polls `check` every 100 ms; panics naming `what` after `within`.
async fn wait<F, Fut>(within: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn service_sessions(service: &Service) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'creditphone'";
    service.db.query_one(sql, &[&service.db_name]).await.expect("count").get(0)
}

/// Waits until one of the service's sessions waits on a lock.
async fn wait_for_lock_waiter(service: &Service) {
    let started = Instant::now();
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'creditphone' AND wait_event_type = 'Lock'";
    loop {
        let n: i64 = service.db.query_one(sql, &[&service.db_name]).await.expect("count").get(0);
        if n > 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the write never waited on the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The service's log holds no answer with status 500 (each request's `request done` line carries
/// its status) and no database error taken for a bug.
fn assert_no_500(service: &Service) {
    let log = service.serve.log();
    let answered_500 = |l: &&str| l.contains("request done") && l.contains("\"status\":500");
    let bad: Vec<&str> = log.lines().filter(|l| answered_500(l) || l.contains("unexpected database error")).collect();
    assert!(bad.is_empty(), "no 500: {bad:#?}");
    assert!(log.contains("\"status\":201"), "the log shows request lines: {}", service.serve.log_tail(10));
}

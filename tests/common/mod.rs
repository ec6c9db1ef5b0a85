//! Test support: one throwaway PostgreSQL cluster per test binary, a fresh database per test
//! (cloned from a migrated template), and the real service on a loopback port.
#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod raw;
pub mod readme;
pub mod world;

#[allow(unused_imports)] // each test binary uses its own part of the helpers
pub use world::{Client, World};

use creditphone::clock::{ManualClock, ShiftedClock};
use creditphone::config::{Secret, Settings};
use creditphone::http::AppState;
use creditphone::pg::embedded::{ClusterOptions, EmbeddedCluster, PgBinaries};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

const TEMPLATE_DB: &str = "cp_template";

/// The cluster's connection settings; the cluster itself lives on a thread that never ends, so
/// that the postmaster (tied to that thread by PR_SET_PDEATHSIG) dies with the test process.
pub struct Cluster {
    pub base: tokio_postgres::Config,
    pub socket_dir: std::path::PathBuf,
    pub port: u16,
    pub user: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let started = rt.block_on(async {
                    PgBinaries::ensure()?;
                    remove_stale_clusters();
                    let dir = tempfile::Builder::new().prefix("cp-test-").tempdir_in("/tmp")?.keep();
                    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                    let cluster = EmbeddedCluster::start(ClusterOptions {
                        dir,
                        db_name: "postgres".to_string(),
                        extra_settings: vec![
                            ("fsync".into(), "off".into()),
                            ("synchronous_commit".into(), "off".into()),
                            ("full_page_writes".into(), "off".into()),
                            ("max_connections".into(), "400".into()),
                            ("shared_buffers".into(), "128MB".into()),
                            ("log_lock_waits".into(), "on".into()),
                        ],
                        die_with_parent: true,
                    })
                    .await?;
                    let admin = creditphone::db::connect(&cluster.pg_config("postgres")).await?;
                    admin.batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}")).await?;
                    let mut client = creditphone::db::connect(&cluster.pg_config(TEMPLATE_DB)).await?;
                    creditphone::db::migrate(&mut client).await?;
                    drop(client);
                    // Databases are cloned from the template only while nobody is connected to it.
                    for _ in 0..500 {
                        let n: i64 =
                            admin.query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&TEMPLATE_DB]).await?.get(0);
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    admin.batch_execute(&format!("ALTER DATABASE {TEMPLATE_DB} WITH ALLOW_CONNECTIONS false")).await?;
                    anyhow::Ok(cluster)
                });
                match started {
                    Ok(cluster) => {
                        let info = Cluster {
                            base: cluster.pg_config("postgres"),
                            socket_dir: cluster.socket_dir().to_path_buf(),
                            port: cluster.port(),
                            user: cluster.user().to_string(),
                        };
                        tx.send(Ok(info)).expect("test waits");
                        let _keep = cluster;
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            })
            .expect("spawn the cluster thread");
        match rx.recv().expect("cluster thread answers") {
            Ok(c) => c,
            Err(e) => panic!("cannot start the test PostgreSQL cluster: {e}"),
        }
    })
}

/// Test clusters of earlier runs whose process is gone (their lock file is free) are removed.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("cp-test-") {
            continue;
        }
        let Ok(lock) = std::fs::File::open(path.join("creditphone.lock")) else { continue };
        #[allow(deprecated)]
        let free = nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok();
        if free {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A fresh, migrated database of its own.
pub async fn fresh_database() -> tokio_postgres::Config {
    let c = cluster();
    let name = format!("t_{}_{}", std::process::id(), DB_COUNTER.fetch_add(1, Ordering::SeqCst));
    let admin = creditphone::db::connect(&c.base).await.expect("connect to the test cluster");
    admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")).await.expect("create a test database");
    let mut cfg = c.base.clone();
    cfg.dbname(&name);
    cfg
}

pub fn test_settings() -> Settings {
    let mut s = Settings::defaults();
    s.auth.admin_key = Secret::new(format!("admin-{}", uuid::Uuid::new_v4().simple()));
    s.pii.hash_key = Secret::new("11".repeat(32));
    s.pii.encryption_key = Secret::new("22".repeat(32));
    s.console.session_key = Secret::new("33".repeat(32));
    s.clock.allow_future_dates = true;
    s.server.workers = 2;
    s.database.pool_size = 24;
    s.eod.enabled = false;
    s.notices.enabled = false;
    // Orders are batched as the product's defaults say; CREDITPHONE_TEST_ORDER_BATCH_MAX=1 runs a
    // test binary (the concurrency tests, the simulation) with every order placed alone.
    if let Ok(max) = std::env::var("CREDITPHONE_TEST_ORDER_BATCH_MAX") {
        s.orders.batch_max = max.parse().expect("CREDITPHONE_TEST_ORDER_BATCH_MAX is a number");
    }
    s
}

pub struct TestApp {
    pub url: String,
    pub admin_key: String,
    pub state: actix_web::web::Data<AppState>,
    /// The service's clock: the system clock until a test sets it (see `ShiftedClock`); unused
    /// when the app was started with a [`ManualClock`] (see `start_with_manual_clock`).
    pub clock: Arc<ShiftedClock>,
    /// The clock that stands still, when the app was started with one.
    pub manual: Option<Arc<ManualClock>>,
    pub pg: tokio_postgres::Config,
    pub http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Resp {
    pub fn code(&self) -> Option<&str> {
        self.body.get("error")?.get("code")?.as_str()
    }
    pub fn field(&self) -> Option<&str> {
        self.body.get("error")?.get("field")?.as_str()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }
    #[track_caller]
    pub fn expect_err(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, Some(code)), "unexpected answer: {}", self.body);
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let pg = fresh_database().await;
        Self::start_on(pg, adjust).await
    }

    /// Another instance of the service on the same database.
    pub async fn start_on(pg: tokio_postgres::Config, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        Self::start_clocked(pg, adjust, None).await
    }

    /// The service on a clock that stands at `at` until the test sets it: every request of a step
    /// sees the same instant, so that what depends on the time of day is decided, not raced
    /// (the simulation's deadlines).
    pub async fn start_with_manual_clock(at: chrono::DateTime<chrono::Utc>, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let pg = fresh_database().await;
        Self::start_clocked(pg, adjust, Some(ManualClock::new(at))).await
    }

    async fn start_clocked(pg: tokio_postgres::Config, adjust: impl FnOnce(&mut Settings), manual: Option<Arc<ManualClock>>) -> TestApp {
        let mut settings = test_settings();
        adjust(&mut settings);
        let admin_key = settings.auth.admin_key.expose().to_string();
        let settings = Arc::new(settings);
        let clock = ShiftedClock::new();
        let service_clock: creditphone::clock::SharedClock = match &manual {
            Some(m) => m.clone(),
            None => clock.clone(),
        };
        let state = creditphone::app::prepare_with_clock(settings.clone(), &pg, service_clock).await.expect("prepare the service");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("address").port();
        let server = creditphone::app::server(state.clone(), listener, settings.server.workers).expect("server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        TestApp {
            url: format!("http://127.0.0.1:{port}"),
            admin_key,
            state,
            clock,
            manual,
            pg,
            // No connection is reused: a request sent on a connection the server is closing at its
            // keep-alive (actix's 5 s) fails with `IncompleteMessage`. An idle timeout on this side
            // does not prevent it: the server's idle time runs from when it wrote an answer, the
            // client's from when it read it, and a test thread busy for seconds in between (the
            // simulation's model checks on a loaded machine) lets the server's run out first.
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client"),
            handle,
        }
    }

    /// The service's today becomes `date` (its clock at noon in Asia/Shanghai, running on from
    /// there) until [`TestApp::clock`]'s `reset`.
    pub fn set_today(&self, date: &str) {
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("a YYYY-MM-DD date");
        self.clock.set(shanghai_time(day, 12));
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        creditphone::db::connect(&self.pg).await.expect("connect")
    }

    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>, idem: Option<&str>) -> Resp {
        let raw = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.call_raw(method, path, key, raw, idem, &[]).await
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        idem: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        world::send(&self.http, &self.url, world::Request { method, path, key, body, idem, headers }).await
    }

    /// A client holding `key`.
    pub fn client(&self, key: &str) -> Client {
        Client::new(self, key)
    }

    /// The admin's client.
    pub fn admin(&self) -> Client {
        Client::new(self, &self.admin_key)
    }

    /// A GET without a key (public endpoints, and the 401 of the others).
    pub async fn get_without_key(&self, path: &str) -> Resp {
        self.call("GET", path, None, None, None).await
    }

    pub async fn get(&self, key: &str, path: &str) -> Resp {
        self.call("GET", path, Some(key), None, None).await
    }

    /// A POST with a fresh idempotency key.
    pub async fn post(&self, key: &str, path: &str, body: Value) -> Resp {
        let idem = format!("k-{}", uuid::Uuid::new_v4().simple());
        self.call("POST", path, Some(key), Some(&body), Some(&idem)).await
    }

    pub async fn post_idem(&self, key: &str, path: &str, body: Value, idem: &str) -> Resp {
        self.call("POST", path, Some(key), Some(&body), Some(idem)).await
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(&self.admin_key.clone()), Some(&body), None).await
    }

    pub async fn admin_get(&self, path: &str) -> Resp {
        self.get(&self.admin_key.clone(), path).await
    }

    /// Creates an API key for a principal and answers the secret.
    pub async fn key_for(&self, kind: &str, id: Option<&str>) -> String {
        let principal = match id {
            Some(id) => json!({"kind": kind, "id": id}),
            None => json!({"kind": kind}),
        };
        self.admin().new_key(principal, None).await.1
    }
}

/// `hour`:00 of `day` in Asia/Shanghai, the time zone of the API's dates.
pub fn shanghai_time(day: chrono::NaiveDate, hour: u32) -> chrono::DateTime<chrono::Utc> {
    let at = day.and_hms_opt(hour, 0, 0).expect("an hour of the day");
    at.and_local_timezone(creditphone::domain::SHANGHAI).single().expect("a fixed offset").with_timezone(&chrono::Utc)
}

/// The identity generators live once, in the library, shared with the bench.
pub use creditphone::testkit::{id_number, imei, phone};

//! High availability with Patroni (issue 19, item 2): a three-member PostgreSQL cluster in
//! synchronous mode (`synchronous_mode_strict`: an acknowledged commit is on two members), two
//! `creditphone serve` instances whose `database.url` names all three members with
//! `target_session_attrs=read-write`, a steady load of orders, fundings and repayments through
//! both, and the primary's postmaster SIGKILLed twice, Patroni failing over each time. Afterwards
//! every request the load saw acknowledged (2xx) is reconciled against the database: none lost,
//! none applied twice (retries replay under their idempotency key), the ledger verifies. Prints
//! one line `HA {json}` with `acknowledged, lost, duplicated, failovers, unavailable_s_max,
//! first_2xx_after_s_max` (and per failover figures); docs/RELIABILITY.md keeps them.
//!
//! `reliability/ha` runs it (`cargo test --test ha -- --nocapture`); so does plain `cargo test`
//! (40-80 s on 2 shared cores). Either installs Debian's `patroni` and `etcd-server` first when
//! missing (`reliability/ha install`: apt-get, through sudo unless root).

mod common;
#[path = "ha/patroni.rs"]
mod patroni;
mod traffic;

use common::binary::{RunningServe, ServeBinary};
use patroni::Cluster;
use serde_json::json;
use std::time::{Duration, Instant};
use traffic::{Load, Receiver, World};

const ADMIN: &str = "ha-admin";
const INSTANCES: usize = 2;
const FAILOVERS: usize = 2;
const TASKS: usize = 6;
/// Targets of issue 19: each failover unavailable at most this long...
const UNAVAILABLE_TARGET: Duration = Duration::from_secs(30);
/// ...and the first success after the new primary runs at most this long after it.
const FIRST_2XX_TARGET: Duration = Duration::from_secs(5);

/// One failover as the load saw it.
struct Failover {
    old: String,
    new: String,
    killed_at: Instant,
    primary_at: Instant,
    /// Per instance, when it answered 2xx again (see `Load::recovered_at`).
    first_2xx: Vec<Instant>,
    /// When every instance's `/readyz` answered 200 again (no restart).
    ready_at: Instant,
}

impl Failover {
    fn unavailable(&self) -> Duration {
        self.first_2xx.iter().map(|t| t.duration_since(self.killed_at)).max().expect("instances")
    }
    fn first_2xx_after_primary(&self) -> Duration {
        self.first_2xx.iter().map(|t| t.saturating_duration_since(self.primary_at)).max().expect("instances")
    }
    fn figures(&self) -> serde_json::Value {
        json!({"killed": self.old, "new_primary": self.new,
               "new_primary_after_s": secs(self.primary_at.duration_since(self.killed_at)),
               "unavailable_s": secs(self.unavailable()), "first_2xx_after_s": secs(self.first_2xx_after_primary()),
               "ready_after_s": secs(self.ready_at.duration_since(self.killed_at))})
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

async fn start_services(cluster: &Cluster, dirs: &[tempfile::TempDir]) -> Vec<RunningServe> {
    let pg: tokio_postgres::Config = cluster.url("postgres").parse().expect("url");
    let admin = creditphone::db::connect(&pg).await.expect("connect to the primary");
    admin.batch_execute("CREATE DATABASE creditphone").await.expect("create the database");
    let mut serves: Vec<RunningServe> = dirs
        .iter()
        .map(|dir| {
            ServeBinary::new(dir.path())
                .database_url(&cluster.url("creditphone"))
                .data_dir(dir.path().join("var"))
                .workers(2)
                .admin_key(ADMIN)
                .pii_keys(&"55".repeat(32), &"66".repeat(32))
                .eod_enabled(false)
                .env("CREDITPHONE__DATABASE__TIMEOUT_MS", "2000")
                .spawn()
        })
        .collect();
    for s in serves.iter_mut() {
        s.wait_ready(Duration::from_secs(60)).await;
    }
    serves
}

/// Kills the primary under load and waits until each instance has answered 2xx again and its
/// `/readyz` is 200.
async fn fail_over(cluster: &Cluster, load: &Load, world: &World, serves: &[RunningServe]) -> Failover {
    let old = cluster.wait_healthy(None, Duration::from_secs(120)).await;
    load.run_for(60, Duration::from_secs(30)).await;
    let killed_at = Instant::now();
    cluster.kill_postmaster(&old);
    let (new, primary_at) = cluster.wait_new_leader(&old, Duration::from_secs(60)).await;
    let first_2xx = loop {
        let first: Vec<Instant> = (0..INSTANCES).filter_map(|i| load.recovered_at(i, killed_at)).collect();
        if first.len() == INSTANCES {
            break first;
        }
        if killed_at.elapsed() > Duration::from_secs(120) {
            panic!(
                "an instance never answered 2xx within 120 s of killing {old} (new primary {new}): {:?}, logs kept in {}\n{}\n{}",
                cluster.states().await,
                cluster.keep_logs().display(),
                cluster.log_tails(),
                serves.iter().map(|s| s.log_tail(30)).collect::<String>()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for base in &world.bases {
        let ready = || async { world.http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().as_u16() == 200) };
        patroni::wait_until(Duration::from_secs(10), &format!("{base}/readyz ready again"), ready).await;
    }
    Failover { old, new, killed_at, primary_at, first_2xx, ready_at: Instant::now() }
}

#[test]
fn patroni_failovers_lose_nothing_acknowledged() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let started = Instant::now();
        let cluster = Cluster::start().await;
        let dirs: Vec<tempfile::TempDir> = (0..INSTANCES).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let mut serves = start_services(&cluster, &dirs).await;
        let hook = Receiver::start().await;
        let world = World::setup(serves.iter().map(|s| s.base_url.clone()).collect(), ADMIN.to_string(), &hook).await;
        let load = Load::start(world.clone(), TASKS, rand::random());
        let mut failovers = Vec::new();
        for _ in 0..FAILOVERS {
            failovers.push(fail_over(&cluster, &load, &world, &serves).await);
        }
        load.run_for(60, Duration::from_secs(30)).await;
        let driven = load.stop(Duration::from_secs(60)).await;

        let db = creditphone::db::connect(&cluster.url("creditphone").parse().expect("url")).await.expect("connect to the primary");
        let verdict = traffic::reconcile(&db, &driven).await;
        // Notices committed before a failover are on the new primary too, and are delivered from it
        // (at least once: a delivery in flight at the kill may come again).
        let notices = traffic::await_deliveries(&db, &hook, Duration::from_secs(60)).await;
        let ledger = world.verify().await;
        let unavailable_max = failovers.iter().map(Failover::unavailable).max().expect("failovers");
        let first_2xx_max = failovers.iter().map(Failover::first_2xx_after_primary).max().expect("failovers");
        let figures = json!({
            "acknowledged": driven.acknowledged().count(),
            "lost": verdict.lost.len(),
            "duplicated": verdict.duplicated.len(),
            "failovers": failovers.len(),
            "unavailable_s_max": secs(unavailable_max),
            "first_2xx_after_s_max": secs(first_2xx_max),
            "ledger_ok": ledger["ok"],
            "notices_delivered": notices.len(),
            "server_errors": driven.server_errors().len(),
            "per_failover": failovers.iter().map(Failover::figures).collect::<Vec<_>>(),
            "driver": driven.summary(),
            "run_s": secs(started.elapsed()),
        });
        println!("HA {figures}");
        verdict.assert_clean();
        assert_eq!(ledger["ok"], true, "{ledger}");
        assert!(driven.unexpected.is_empty(), "unexpected answers: {:#?}", driven.unexpected);
        assert!(driven.server_errors().is_empty(), "5xx other than 503: {:?}", driven.server_errors());
        assert!(unavailable_max <= UNAVAILABLE_TARGET, "unavailable {unavailable_max:?}");
        assert!(
            first_2xx_max <= FIRST_2XX_TARGET,
            "first 2xx {first_2xx_max:?} after the new primary; logs kept in {}\n{}\n{}",
            cluster.keep_logs().display(),
            cluster.log_tails(),
            serves.iter().map(|s| s.log_tail(60)).collect::<String>()
        );
        for s in serves.iter_mut() {
            assert!(s.stop(Duration::from_secs(20)).await.success(), "{}", s.log_tail(20));
        }
    });
}

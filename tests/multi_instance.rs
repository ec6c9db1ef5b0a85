//! Several stateless instances on one database (issue 19, item 1): three `creditphone serve`
//! processes start at once on an empty database (each runs the migrations: exactly one applies
//! them), take orders, fundings and repayments spread over all three, are all asked to close the
//! same dates at the same moment, and deliver the notices to a webhook receiver that never fails.
//! Afterwards: nothing acknowledged is lost or applied twice, the ledger verifies, every notice
//! reached the receiver exactly once, and each date was closed by exactly one run.

mod common;
mod traffic;

use common::binary::{RunningServe, ServeBinary};
use serde_json::{Value, json};
use std::time::Duration;
use traffic::{Driven, Load, Receiver, World};

const INSTANCES: usize = 3;
const TASKS: usize = 6;

/// An empty database of this binary's cluster (not the migrated template: the instances migrate it).
async fn empty_database() -> tokio_postgres::Config {
    let c = common::cluster();
    let name = format!("multi_{}", std::process::id());
    let admin = creditphone::db::connect(&c.base).await.expect("connect to the test cluster");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a database");
    let mut cfg = c.base.clone();
    cfg.dbname(&name);
    cfg
}

fn spawn_all(dirs: &[tempfile::TempDir], pg: &tokio_postgres::Config, admin: &str) -> Vec<RunningServe> {
    dirs.iter()
        .map(|dir| {
            ServeBinary::on_test_database(dir.path(), pg, admin)
                .env("CREDITPHONE__CLOCK__ALLOW_FUTURE_DATES", "true")
                .env("CREDITPHONE__NOTICES__POLL_INTERVAL_MS", "100")
                .notices_enabled(true)
                .spawn()
        })
        .collect()
}

/// `POST /v1/admin/eod` for `date` on every instance at the same moment: the answers, in order.
async fn eod_everywhere(world: &World, date: chrono::NaiveDate) -> Vec<(u16, Value)> {
    let calls = world.bases.iter().map(|base| {
        let req = world.http.post(format!("{base}/v1/admin/eod")).bearer_auth(&world.admin).json(&json!({"business_date": date}));
        async move {
            let r = req.timeout(Duration::from_secs(120)).send().await.expect("eod answers");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    });
    futures_util::future::join_all(calls).await
}

/// End of day for `date` on every instance at once: all answer 200, at most one reports work (the
/// others found the date closed), and what it reports is what the closed date stores. Answers 1
/// if a run reported work.
async fn eod_checked(world: &World, db: &tokio_postgres::Client, date: chrono::NaiveDate) -> usize {
    let answers = eod_everywhere(world, date).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let working: Vec<&Value> = answers.iter().map(|(_, b)| b).filter(|b| work(b) > 0).collect();
    assert!(working.len() <= 1, "one run did the work, the others found the date closed: {answers:?}");
    let stored: Value =
        db.query_one("SELECT summary FROM business_days WHERE business_date = $1", &[&date]).await.expect("the date is closed").get(0);
    assert_eq!(work(&stored), working.first().map_or(0, |b| work(b)), "the stored summary is the working run's");
    working.len()
}

/// The work an end-of-day answer reports.
fn work(summary: &Value) -> i64 {
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    n(&summary["overdue_marked"])
        + n(&summary["holds_expired"])
        + n(&summary["penalties"]["count"])
        + n(&summary["compensations"]["count"])
        + n(&summary["uncovered"]["count"])
}

#[test]
fn three_instances_share_one_database_safely() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let pg = empty_database().await;
        let admin = format!("adm-{}", uuid::Uuid::new_v4().simple());
        let dirs: Vec<tempfile::TempDir> = (0..INSTANCES).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let mut serves = spawn_all(&dirs, &pg, &admin);
        for s in serves.iter_mut() {
            s.wait_ready(Duration::from_secs(60)).await;
        }
        let db = creditphone::db::connect(&pg).await.expect("connect");
        let applied = assert_migrated_once(&db, &serves).await;

        let hook = Receiver::start().await;
        let world = World::setup(serves.iter().map(|s| s.base_url.clone()).collect(), admin.clone(), &hook).await;
        // Today closes while the load runs; a date past the first due dates and the funding
        // deadlines (work to do: overdue installments, compensations, expired orders) after it.
        let today = traffic::shanghai_today();
        let later = today + chrono::Duration::days(45);
        let load = Load::start(world.clone(), TASKS, 19);
        load.run_for(100, Duration::from_secs(30)).await;
        let mut closed_with_work = eod_checked(&world, &db, today).await;
        load.run_for(100, Duration::from_secs(30)).await;
        let driven: Driven = load.stop(Duration::from_secs(10)).await;
        assert!(driven.unexpected.is_empty(), "unexpected answers: {:#?}", driven.unexpected);
        assert!(driven.server_errors().is_empty(), "5xx: {:?}", driven.server_errors());
        assert!(driven.count(traffic::Kind::Repayment) > 0 && driven.count(traffic::Kind::Funding) > 0, "{}", driven.summary());
        for i in 0..INSTANCES {
            assert!(driven.attempts.iter().any(|a| a.instance == i && a.is_2xx()), "instance {i} served requests");
        }
        closed_with_work += eod_checked(&world, &db, later).await;
        assert_eq!(closed_with_work, 1, "the later date had work (overdue installments, expired orders)");
        let closed: i64 = db.query_one("SELECT count(*) FROM business_days", &[]).await.expect("days").get(0);
        assert_eq!(closed, 2);
        let logs: Vec<String> = serves.iter().map(|s| s.log()).collect();
        for date in [today, later] {
            let started = logs
                .iter()
                .flat_map(|l| l.lines())
                .filter(|l| l.contains("end of day started") && l.contains(&format!("\"business_date\":\"{date}\"")))
                .count();
            let lines: Vec<&str> = logs
                .iter()
                .flat_map(|l| l.lines())
                .filter(|l| l.contains("end of day") && l.contains(&format!("\"business_date\":\"{date}\"")))
                .collect();
            assert_eq!(started, 1, "{date} closed by one run across the instances: {lines:#?}");
        }

        let ids = traffic::await_deliveries(&db, &hook, Duration::from_secs(60)).await;
        let got = hook.deliveries();
        let twice: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "every notice delivered exactly once: {twice:?}");
        assert_eq!(got.len(), ids.len(), "the receiver got exactly the notices in the database");
        assert!(ids.len() > 50, "notices enough to share lanes: {}", ids.len());

        let verdict = traffic::reconcile(&db, &driven).await;
        verdict.assert_clean();
        let ledger = world.verify().await;
        assert_eq!(ledger["ok"], true, "{ledger}");
        eprintln!("MULTI {}", json!({"instances": INSTANCES, "driver": driven.summary(), "notices": ids.len(), "migrations": applied}));
        for s in serves.iter_mut() {
            assert!(s.stop(Duration::from_secs(20)).await.success(), "{}", s.log_tail(20));
        }
    });
}

/// Every migration is in the history once, and the instances' logs say that one of them applied
/// them all while the others found them applied (they wait on the migration lock). Answers each
/// instance's count.
async fn assert_migrated_once(db: &tokio_postgres::Client, serves: &[RunningServe]) -> Vec<i64> {
    let row = db.query_one("SELECT count(*), count(DISTINCT version) FROM refinery_schema_history", &[]).await.expect("history");
    let (migrations, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((migrations, distinct), (creditphone_migrations(), creditphone_migrations()), "each migration applied once");
    let logs: Vec<String> = serves.iter().map(|s| s.log()).collect();
    let applied: Vec<i64> = logs.iter().flat_map(|l| l.lines()).filter(|l| l.contains("migrations done")).map(applied_count).collect();
    assert_eq!(applied.len(), serves.len(), "every instance migrated");
    assert_eq!(applied.iter().sum::<i64>(), migrations, "one instance applied them all: {applied:?}");
    assert!(applied.contains(&migrations), "one instance applied them all: {applied:?}");
    applied
}

fn creditphone_migrations() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"))
        .expect("sql/")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql")))
        .count() as i64
}

/// `applied` of a "migrations done" log line.
fn applied_count(line: &str) -> i64 {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("a JSON log line ({e}): {line}"));
    v["fields"]["applied"].as_i64().or(v["applied"].as_i64()).unwrap_or_else(|| panic!("applied in {line}"))
}

//! Nothing is acknowledged before a synchronous standby holds it (issue 19, docs/RELIABILITY.md).
//!
//! Under `synchronous_mode_strict` a commit waits for a standby. If that wait were cancelled,
//! PostgreSQL would keep the commit on the primary alone and report success, and a failover could
//! lose it. Two things could cancel it: the statement timeout, and a cancel request. PostgreSQL
//! disables the statement timeout before it commits (`finish_xact_command` in postgres.c), and the
//! service never sends a cancel request: a request cut by `server.request_timeout_ms` answers 503
//! and leaves its commit waiting. These tests make every commit of their own PostgreSQL cluster
//! wait for a standby that does not exist (`synchronous_standby_names`), with a one-second
//! statement timeout, and check both halves:
//! - end of day (exempt from the request deadline) is still waiting long after the statement
//!   timeout, its date not closed, and closes it once the wait is released;
//! - an order whose commit waits answers 503, never 2xx; released, its retry with the same
//!   `Idempotency-Key` replays the one order.

mod common;

use common::TestApp;
use common::world::{World, order_body};
use std::time::Duration;

/// The service's statement timeout and request deadline: short, so a cancelled wait would show.
const TIMEOUT_MS: u64 = 1000;

/// The standby setting is the whole cluster's: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn set_standby_names(value: &str) {
    let admin = creditphone::db::connect(&common::cluster().base).await.expect("connect to the test cluster");
    admin.batch_execute(&format!("ALTER SYSTEM SET synchronous_standby_names = '{value}'")).await.expect("alter system");
    admin.batch_execute("SELECT pg_reload_conf()").await.expect("reload");
    // The reload reaches every backend at its next command: give the postmaster a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The service on a database whose commits wait for the synchronous standby (the test cluster
/// runs with `synchronous_commit = off` for speed), with its world and one funded order.
async fn start() -> (TestApp, World) {
    // A test that panicked while commits waited would leave them waiting for the next one.
    set_standby_names("").await;
    let pg = common::fresh_database().await;
    let admin = creditphone::db::connect(&common::cluster().base).await.expect("connect to the test cluster");
    let name = pg.get_dbname().expect("a database name").to_string();
    admin.batch_execute(&format!("ALTER DATABASE {name} SET synchronous_commit = on")).await.expect("alter database");
    let app = TestApp::start_on(pg, |s| {
        s.database.statement_timeout_ms = TIMEOUT_MS;
        s.server.request_timeout_ms = TIMEOUT_MS;
        s.server.body_read_timeout_ms = TIMEOUT_MS / 2;
    })
    .await;
    let w = World::standard().build(&app).await;
    app.set_today("2027-01-31");
    let order = w.store().place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    w.bank().fund(order["id"].as_str().unwrap(), "L1", "2027-01-31").await.expect(200);
    (app, w)
}

async fn closed(app: &TestApp, date: &str) -> bool {
    let db = app.db().await;
    db.query_opt("SELECT 1 FROM business_days WHERE business_date = $1::text::date", &[&date]).await.expect("read business_days").is_some()
}

/// How long the longest commit now waiting for a standby (`SyncRep`) has waited.
async fn longest_standby_wait_ms(app: &TestApp) -> i64 {
    let db = app.db().await;
    let sql = "SELECT COALESCE(max((extract(epoch FROM clock_timestamp() - query_start) * 1000)::bigint), 0)
               FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    db.query_one(sql, &[]).await.expect("read pg_stat_activity").get(0)
}

#[actix_web::test]
async fn end_of_day_waits_for_the_standby_past_the_statement_timeout() {
    let _serial = SERIAL.lock().await;
    let (app, w) = start().await;
    app.clock.reset();
    set_standby_names("no_such_standby").await;
    let admin = w.admin.clone();
    let run = tokio::spawn(async move { admin.eod("2027-01-31").await });
    tokio::time::sleep(Duration::from_millis(6 * TIMEOUT_MS)).await;
    let finished_early = run.is_finished();
    let longest_wait_ms = longest_standby_wait_ms(&app).await;
    let closed_early = closed(&app, "2027-01-31").await;
    set_standby_names("").await;
    let answer = tokio::time::timeout(Duration::from_secs(60), run).await.expect("end of day ends once released").expect("join");
    assert!(!finished_early, "end of day answered while no standby held its commits: {}", answer.status);
    // A commit whose wait the statement timeout cancelled would have waited at most that long.
    assert!(longest_wait_ms > 3 * TIMEOUT_MS as i64, "no commit waited past the statement timeout (longest {longest_wait_ms} ms)");
    assert!(!closed_early, "the date was visible as closed while no standby held it");
    answer.expect(200);
    assert!(closed(&app, "2027-01-31").await, "released, end of day closes the date");
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn an_order_whose_commit_waits_answers_503_and_its_retry_replays_it() {
    let _serial = SERIAL.lock().await;
    let (app, w) = start().await;
    set_standby_names("no_such_standby").await;
    let body = order_body("POS-2", "p12", 7, 2);
    let first = w.store().post_idem("/v1/orders", body.clone(), "wait-1").await;
    let waited_ms = longest_standby_wait_ms(&app).await;
    set_standby_names("").await;
    assert_eq!(first.status, 503, "a commit no standby holds is not acknowledged: {:?}", first.body);
    assert!(waited_ms > 0, "the order's commit was waiting for the standby when the request was cut");
    // Released, the commit completes; the retry finds it and answers as the first would have.
    let mut retry = w.store().post_idem("/v1/orders", body.clone(), "wait-1").await;
    for _ in 0..50 {
        if retry.status != 409 && retry.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        retry = w.store().post_idem("/v1/orders", body.clone(), "wait-1").await;
    }
    let order = retry.expect(201);
    assert_eq!(order["out_order_no"], "POS-2");
    let db = app.db().await;
    let count: i64 = db.query_one("SELECT count(*) FROM orders WHERE out_order_no = 'POS-2'", &[]).await.expect("count").get(0);
    assert_eq!(count, 1, "the order exists once");
    w.admin.verify_ok().await;
}

//! Origination (issue 3) through HTTP and the real PostgreSQL: credit lines, quotes, orders,
//! funding, every refusal and what it leaves untouched, tenant isolation, lists and the notice
//! feed, concurrency on one line and on banks' exposure, the golden schedules end to end, the
//! borrower's identity, ledger verification and idempotent replays.

mod common;

use chrono::{NaiveDate, Utc};
use common::binary::{ServeBinary, cluster_url};
use common::world::{FAR, WorldSpec, by_partner, line_body, merged, named_order_body, partner_body};
use common::*;
use creditphone::domain::{add_months_clamped, shanghai_date};
use serde_json::{Value, json};
use std::time::Duration;

// ---------- helpers ----------

/// principal 3000.00 over 12 months at 0.18: the hold of the default order.
const HOLD: &str = "3300.46";

fn today() -> NaiveDate {
    shanghai_date(Utc::now())
}

fn days_from_today(n: i64) -> String {
    (today() + chrono::Duration::days(n)).to_string()
}

/// The Asia/Shanghai date of the default product's funding deadline for an order placed now.
fn deadline_date_now() -> NaiveDate {
    shanghai_date(Utc::now() + chrono::Duration::hours(72))
}

#[track_caller]
fn err(r: &Resp, status: u16, code: &str, field: Option<&str>) {
    assert_eq!((r.status, r.code(), r.field()), (status, Some(code), field), "unexpected answer: {}", r.body);
}

#[track_caller]
fn st(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// `body` with the dotted `path` set to `value`, or removed when `value` is None.
fn with(body: &Value, path: &str, value: Option<Value>) -> Value {
    let mut b = body.clone();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path");
    let mut cur = &mut b;
    for p in parts {
        cur = &mut cur[p];
    }
    match value {
        Some(v) => cur[last] = v,
        None => {
            cur.as_object_mut().expect("object").remove(last);
        }
    }
    b
}

fn bank(id: &str, priority: i32, apr_max: &str, limit: &str, regions: Option<&[&str]>) -> Value {
    let mut b = json!({"id": id, "name": format!("Bank {id}"), "priority": priority, "apr_min": "0", "apr_max": apr_max,
                       "exposure_limit": limit});
    if let Some(r) = regions {
        b["regions"] = json!(r);
    }
    b
}

fn std_banks() -> Vec<Value> {
    vec![bank("bk-a", 1, "0.24", "10000000", None), bank("bk-b", 2, "0.24", "10000000", None)]
}

fn product(id: &str, rate: &str, providers: &[&str], regions: &[&str]) -> Value {
    json!({"id": id, "name": "Phone plan", "pricing": "interest", "terms": [{"months": 12, "rate": rate}, {"months": 24, "rate": "0.12"}],
           "providers": providers, "regions": regions, "min_principal": "500", "max_principal": "20000"})
}

fn partner(id: &str, deposit: &str, providers: &[&str], regions: &[&str]) -> Value {
    merged(partner_body(id, providers, regions), json!({"deposit_paid": deposit}))
}

/// One database with providers wld, huabei, jd; the given banks; stores st-a and st-b (440305),
/// st-bj (110105), st-sh (310101), st-zj (330106); partner pt-a (wld, 4403); product p12
/// (12 months 0.18, 24 months 0.12; providers wld then huabei; regions 44, 110000, 31).
struct W {
    app: TestApp,
    /// Every principal's client (the banks' too), by id.
    world: World,
    wld: String,
    huabei: String,
    store: String,
    store_b: String,
    partner: String,
}

impl W {
    /// The key of principal `id`.
    fn key(&self, id: &str) -> String {
        self.world.key(id).key.clone()
    }
}

async fn world(banks: &[Value]) -> W {
    world_with(banks, |spec| spec).await
}

/// [`world`] with more parts (`more` adds them to the spec).
async fn world_with(banks: &[Value], more: impl FnOnce(WorldSpec) -> WorldSpec) -> W {
    let app = TestApp::start().await;
    let mut spec = World::empty()
        .provider("wld", json!({"name": "微粒贷"}))
        .provider("huabei", json!({"name": "花呗"}))
        .provider("jd", json!({"name": "白条"}));
    for b in banks {
        spec = spec.bank(b["id"].as_str().expect("a bank id"), b.clone());
    }
    for (id, region) in [("st-a", "440305"), ("st-b", "440305"), ("st-bj", "110105"), ("st-sh", "310101"), ("st-zj", "330106")] {
        spec = spec.store(id, region);
    }
    let spec = spec.partner(partner("pt-a", "3000000.00", &["wld"], &["4403"])).product(product(
        "p12",
        "0.18",
        &["wld", "huabei"],
        &["44", "110000", "31"],
    ));
    let world = more(spec).build(&app).await;
    let key = |id: &str| world.key(id).key.clone();
    let (wld, huabei, store, store_b, partner) = (key("wld"), key("huabei"), key("st-a"), key("st-b"), key("pt-a"));
    W { app, world, wld, huabei, store, store_b, partner }
}

/// Registers a new line (201) for customer `seed`.
async fn line(w: &W, provider_key: &str, seed: u64, limit: &str) -> Value {
    w.app.post(provider_key, "/v1/credit-lines", line_body(seed, limit, FAR)).await.expect(201)
}

/// A store order of principal 3000.00 over 12 months on p12 for customer `seed`.
fn order(no: &str, seed: u64) -> Value {
    named_order_body(no, seed)
}

fn partner_order(no: &str, seed: u64, region: &str) -> Value {
    by_partner(order(no, seed), region, "a-17")
}

async fn place(w: &W, key: &str, body: Value) -> Value {
    w.app.post(key, "/v1/orders", body).await.expect(201)
}

async fn po(app: &TestApp, key: &str, body: Value) -> Resp {
    app.post(key, "/v1/orders", body).await
}

async fn post_to(app: &TestApp, key: &str, path: String, body: Value) -> Resp {
    app.post(key, &path, body).await
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Resp {
    app.admin().patch(path, body).await
}

async fn admin_line(app: &TestApp, id: &str) -> Value {
    app.admin_get(&format!("/v1/credit-lines/{id}")).await.expect(200)
}

async fn admin_bank(app: &TestApp, id: &str) -> Value {
    app.admin_get(&format!("/v1/admin/banks/{id}")).await.expect(200)
}

/// Balances and counts that a refused order must leave untouched.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let db = app.db().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT coalesce(string_agg(id || ' ' || limit_fen || ' ' || held_fen || ' ' || drawn_fen || ' ' || status, '; ' ORDER BY id), '') FROM credit_lines",
        "SELECT coalesce(string_agg(bank_id || '#' || stripe || ' ' || used_fen || '/' || limit_fen, '; ' ORDER BY bank_id, stripe), '') FROM bank_exposure_stripes",
        "SELECT 'holds ' || count(*) FROM holds",
        "SELECT 'orders ' || count(*) FROM orders",
        "SELECT 'plans ' || count(*) FROM plans",
        "SELECT 'journal_entries ' || count(*) FROM journal_entries",
        "SELECT 'journal_lines ' || count(*) FROM journal_lines",
        "SELECT 'notices ' || count(*) FROM notices",
    ] {
        out.push(db.query_one(sql, &[]).await.expect("snapshot").get(0));
    }
    out
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db().await.query_one(sql, &[]).await.expect("count").get(0)
}

async fn verify_ok(app: &TestApp) -> Value {
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(v["ok"], json!(true), "the ledger verifies: {v}");
    assert_eq!(v["violations"], json!([]), "{v}");
    v
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().expect("data").iter().map(|o| st(&o["id"])).collect()
}

fn fen(text: &str) -> i64 {
    let (y, f) = text.split_once('.').unwrap_or((text, "0"));
    let f = format!("{f:0<2}");
    y.parse::<i64>().expect("yuan") * 100 + f.parse::<i64>().expect("fen")
}

// ---------- 1. credit lines ----------

#[actix_web::test]
async fn credit_line_registration_refuses_malformed_customers_amounts_and_dates() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let post = |body: Value| app.post(&w.wld, "/v1/credit-lines", body);

    // invalid_id_number: a wrong check character, 17 characters, a letter inside.
    let good = id_number(1);
    let last = good.chars().last().expect("18 chars");
    let wrong = "0123456789X".chars().find(|c| *c != last).expect("another check char");
    let bad_check = format!("{}{wrong}", &good[..17]);
    for bad in [bad_check.as_str(), &good[..17], "44030519A001011234", ""] {
        let r = post(with(&line_body(1, "10000", FAR), "customer.id_number", Some(json!(bad)))).await;
        err(&r, 422, "invalid_id_number", Some("customer.id_number"));
    }
    // invalid_phone.
    for bad in ["1380000000", "23800000000", "138000000001", "1380000000a"] {
        let r = post(with(&line_body(1, "10000", FAR), "customer.phone", Some(json!(bad)))).await;
        err(&r, 422, "invalid_phone", Some("customer.phone"));
    }
    // invalid_amount, invalid_date, invalid_request.
    for bad in [json!(10000), json!("-1"), json!("1.234"), json!("1e4")] {
        err(&post(with(&line_body(1, "10000", FAR), "limit", Some(bad))).await, 422, "invalid_amount", Some("limit"));
    }
    for bad in ["2031-02-30", "2031-13-01", "31-12-2031"] {
        err(&post(line_body(1, "10000", bad)).await, 422, "invalid_date", Some("expires_on"));
    }
    err(&post(with(&line_body(1, "10000", FAR), "foo", Some(json!(1)))).await, 422, "invalid_request", Some("foo"));
    err(
        &post(with(&line_body(1, "10000", FAR), "customer.email", Some(json!("a@b")))).await,
        422,
        "invalid_request",
        Some("customer.email"),
    );
    err(&post(with(&line_body(1, "10000", FAR), "status", Some(json!("paused")))).await, 422, "invalid_request", Some("status"));
    err(&post(with(&line_body(1, "10000", FAR), "customer", None)).await, 422, "invalid_request", Some("customer"));
    assert_eq!(count(app, "SELECT count(*) FROM credit_lines").await, 0, "no refused registration left a line");
    err(&app.post(&w.store, "/v1/credit-lines", line_body(3, "1", FAR)).await, 403, "forbidden", None);
}

/// The customer whose ID number ends in the check character X.
fn seed_with_x() -> u64 {
    (1..).find(|s| id_number(*s).ends_with('X')).expect("a check character X")
}

#[actix_web::test]
async fn a_lowercase_x_is_the_same_customer_and_each_provider_has_its_own_line() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let post = |body: Value| app.post(&w.wld, "/v1/credit-lines", body);
    // A trailing lowercase x is read as X: the same customer either way.
    let seed_x = seed_with_x();
    let upper = id_number(seed_x);
    let lower = format!("{}x", &upper[..17]);
    let l = post(with(&line_body(seed_x, "10000", FAR), "customer.id_number", Some(json!(lower)))).await.expect(201);
    assert_eq!(l["customer"]["id_number_masked"], json!(format!("{}********{}", &upper[..6], &upper[14..])));
    assert_eq!(l["customer"]["phone_masked"], json!(format!("{}****{}", &phone(seed_x)[..3], &phone(seed_x)[7..])));
    assert_eq!(
        (st(&l["limit"]), st(&l["available"]), st(&l["held"]), st(&l["drawn"])),
        ("10000.00".into(), "10000.00".into(), "0.00".into(), "0.00".into())
    );
    assert_eq!((st(&l["status"]), st(&l["provider_id"]), st(&l["expires_on"])), ("active".into(), "wld".into(), FAR.into()));
    assert!(st(&l["id"]).starts_with("line_"));
    let again = post(line_body(seed_x, "12000", FAR)).await.expect(200);
    assert_eq!((&again["id"], st(&again["limit"])), (&l["id"], "12000.00".to_string()), "the uppercase X is the same customer");
    // Another provider has a line of its own for the same customer.
    let other = app.post(&w.huabei, "/v1/credit-lines", line_body(seed_x, "500", FAR)).await.expect(201);
    assert_ne!(other["id"], l["id"]);
}

#[actix_web::test]
async fn a_frozen_line_stays_frozen_when_status_is_absent_and_a_closed_one_is_final() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let post = |body: Value| app.post(&w.wld, "/v1/credit-lines", body);
    let seed_x = seed_with_x();
    let line_id = st(&post(line_body(seed_x, "12000", FAR)).await.expect(201)["id"]);
    let r = post(with(&line_body(seed_x, "12000", FAR), "status", Some(json!("frozen")))).await.expect(200);
    assert_eq!(r["status"], json!("frozen"));
    let r = post(line_body(seed_x, "11000", "2034-01-31")).await.expect(200);
    assert_eq!((st(&r["status"]), st(&r["limit"]), st(&r["expires_on"])), ("frozen".into(), "11000.00".into(), "2034-01-31".into()));
    let r = post(with(&line_body(seed_x, "11000", FAR), "status", Some(json!("closed")))).await.expect(200);
    assert_eq!(r["status"], json!("closed"));
    for status in ["active", "frozen"] {
        err(&post(with(&line_body(seed_x, "11000", FAR), "status", Some(json!(status)))).await, 409, "invalid_state", None);
    }
    // API.md §3 (v2): re-registering a closed line is refused however it is asked, status absent included.
    err(&post(line_body(seed_x, "9000", FAR)).await, 409, "invalid_state", None);
    let closed = admin_line(app, &line_id).await;
    assert_eq!((st(&closed["status"]), st(&closed["limit"])), ("closed".into(), "11000.00".into()), "a closed line stays as it was");
    // A new line may be registered frozen; one past its expiry reads expired.
    let r = post(line_body(4, "1000", &days_from_today(-1))).await.expect(201);
    assert_eq!(r["status"], json!("expired"));
    let r = post(with(&line_body(5, "1000", FAR), "status", Some(json!("frozen")))).await.expect(201);
    assert_eq!(r["status"], json!("frozen"));
}

/// Customer 2's line (limit 10,000) at wld and a store order on it holding [`HOLD`]: answers the
/// line's id and the order.
async fn line_with_an_order(w: &W) -> (String, Value) {
    let line = line(w, &w.wld, 2, "10000").await;
    let o = place(w, &w.store, order("LBE-1", 2)).await;
    assert_eq!(o["hold"]["amount"], json!(HOLD));
    (st(&line["id"]), o)
}

#[actix_web::test]
async fn a_limit_below_held_plus_drawn_is_refused_and_re_registration_updates_the_phone() {
    let w = world(&std_banks()).await;
    let post = |body: Value| w.app.post(&w.wld, "/v1/credit-lines", body);
    line_with_an_order(&w).await;
    let r = post(line_body(2, "3300.45", FAR)).await;
    err(&r, 409, "limit_below_exposure", Some("limit"));
    assert_eq!(r.body["error"]["details"]["held"], json!(HOLD));
    let r = post(line_body(2, HOLD, FAR)).await.expect(200);
    assert_eq!((st(&r["available"]), st(&r["held"])), ("0.00".into(), HOLD.into()), "the limit may equal held + drawn");
    let r = post(with(&line_body(2, HOLD, FAR), "customer.phone", Some(json!("13912345678")))).await.expect(200);
    assert_eq!(r["customer"]["phone_masked"], json!("139****5678"));
    verify_ok(&w.app).await;
}

#[actix_web::test]
async fn lines_and_holds_of_another_provider_are_404_like_missing_ones() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let (l2_id, o) = line_with_an_order(&w).await;
    let path = format!("/v1/credit-lines/{l2_id}/debt-repayments");
    let missing = app.get(&w.wld, "/v1/credit-lines/line_missing").await;
    err(&missing, 404, "not_found", None);
    for r in [
        app.get(&w.huabei, &format!("/v1/credit-lines/{l2_id}")).await,
        app.post(&w.huabei, &path, json!({"amount": "0.01"})).await,
        app.post(&w.huabei, "/v1/credit-lines/line_missing/debt-repayments", json!({"amount": "0.01"})).await,
        app.get(&w.huabei, &format!("/v1/holds/{}", st(&o["hold"]["id"]))).await,
    ] {
        err(&r, 404, "not_found", None);
        assert_eq!(r.body["error"]["message"], missing.body["error"]["message"], "same answer as a missing object");
    }
    assert_eq!(app.get(&w.wld, &format!("/v1/credit-lines/{l2_id}")).await.expect(200)["id"], json!(l2_id));
    assert_eq!(app.get(&w.wld, &format!("/v1/holds/{}", st(&o["hold"]["id"]))).await.expect(200)["amount"], json!(HOLD));
    admin_line(app, &l2_id).await;
    err(&app.get(&w.store, &format!("/v1/credit-lines/{l2_id}")).await, 403, "forbidden", None);
}

#[actix_web::test]
async fn debt_repayments_pay_back_the_drawn_balance_and_no_more() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let (l2_id, o) = line_with_an_order(&w).await;
    // The limit equals held + drawn: what is available is exactly what was repaid.
    app.post(&w.wld, "/v1/credit-lines", line_body(2, HOLD, FAR)).await.expect(200);
    // Above drawn is an overpayment; zero and malformed amounts are invalid.
    let path = format!("/v1/credit-lines/{l2_id}/debt-repayments");
    let r = app.post(&w.wld, &path, json!({"amount": "0.01"})).await;
    err(&r, 422, "overpayment", Some("amount"));
    assert_eq!(r.body["error"]["details"]["drawn"], json!("0.00"));
    err(&app.post(&w.wld, &path, json!({"amount": "0"})).await, 422, "invalid_amount", Some("amount"));
    err(&app.post(&w.wld, &path, json!({"amount": 1})).await, 422, "invalid_amount", Some("amount"));
    err(&app.post(&w.wld, &path, json!({"amount": "1", "x": 1})).await, 422, "invalid_request", Some("x"));

    // Once the hold converted, `drawn` can be repaid, and no more than it.
    app.client(&w.key("bk-a")).fund(&st(&o["id"]), "LBE-L", &today().to_string()).await.expect(200);
    let eod_date = add_months_clamped(today(), 1) + chrono::Duration::days(3);
    app.admin().eod(&eod_date.to_string()).await.expect(200);
    let converted = app.get(&w.wld, &format!("/v1/credit-lines/{l2_id}")).await.expect(200);
    let drawn = fen(&st(&converted["drawn"]));
    assert!(drawn > 27_504, "the first installment converted: {converted}");
    assert_eq!(fen(&st(&converted["held"])) + drawn, fen(HOLD), "{converted}");
    let over = format!("{}.{:02}", (drawn + 1) / 100, (drawn + 1) % 100);
    let r = app.post(&w.wld, &path, json!({"amount": over})).await;
    err(&r, 422, "overpayment", Some("amount"));
    assert_eq!(r.body["error"]["details"]["drawn"], converted["drawn"]);
    let part = app.post(&w.wld, &path, json!({"amount": "100"})).await.expect(200);
    assert_eq!((fen(&st(&part["drawn"])), fen(&st(&part["available"]))), (drawn - 10_000, 10_000));
    let rest = format!("{}.{:02}", (drawn - 10_000) / 100, (drawn - 10_000) % 100);
    let done = app.post(&w.wld, &path, json!({"amount": rest})).await.expect(200);
    assert_eq!((st(&done["drawn"]), fen(&st(&done["available"]))), ("0.00".to_string(), drawn));
    err(&app.post(&w.wld, &path, json!({"amount": "0.01"})).await, 422, "overpayment", Some("amount"));
    verify_ok(app).await;
}

/// API.md §3 (issue 15): re-registering a `closed` line is `409 invalid_state` whatever the
/// body says (status `closed` or absent included), and that check comes before
/// `limit_below_exposure`; nothing about the line changes.
#[actix_web::test]
async fn re_registering_a_closed_line_is_invalid_state_before_limit_below_exposure() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let post = |body: Value| app.post(&w.wld, "/v1/credit-lines", body);
    let l = line(&w, &w.wld, 3, "10000").await;
    place(&w, &w.store, order("CLOSED-1", 3)).await;
    let closed = post(with(&line_body(3, "10000", FAR), "status", Some(json!("closed")))).await.expect(200);
    assert_eq!((st(&closed["status"]), st(&closed["held"])), ("closed".into(), HOLD.into()), "an open line may be closed");
    let before = snapshot(app).await;
    for (limit, status) in [("10000", Some("closed")), ("10000", None), ("12000", Some("active")), ("100", Some("closed")), ("100", None)] {
        let body = with(&line_body(3, limit, "2036-06-30"), "status", status.map(|s| json!(s)));
        let r = post(body).await;
        assert_eq!((r.status, r.code()), (409, Some("invalid_state")), "limit {limit}, status {status:?}: {}", r.body);
    }
    assert_eq!(snapshot(app).await, before, "refusals leave the line as it was");
    let after = admin_line(app, &st(&l["id"])).await;
    assert_eq!((st(&after["status"]), st(&after["expires_on"])), ("closed".into(), FAR.into()));
}

/// API.md §3 (issue 15): a line whose `expires_on` is before today reads `expired`, a `frozen`
/// one too; a `closed` line reads `closed` whatever its expiry.
#[actix_web::test]
async fn frozen_lines_past_expiry_read_expired_and_closed_ones_closed() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    app.set_today("2030-06-10");
    let mut ids = Vec::new();
    for (seed, status) in [(11, "active"), (12, "frozen"), (13, "closed")] {
        let body = with(&line_body(seed, "10000", "2030-06-15"), "status", Some(json!(status)));
        let l = app.post(&w.wld, "/v1/credit-lines", body).await.expect(201);
        assert_eq!(l["status"], json!(status), "before expiry each reads its own status");
        ids.push(st(&l["id"]));
    }
    let statuses = async || {
        let mut out = Vec::new();
        for id in &ids {
            out.push(st(&app.get(&w.wld, &format!("/v1/credit-lines/{id}")).await.expect(200)["status"]));
        }
        out
    };
    app.set_today("2030-06-15");
    assert_eq!(statuses().await, ["active", "frozen", "closed"], "on its expiry date a line has not expired");
    app.set_today("2030-06-16");
    assert_eq!(statuses().await, ["expired", "expired", "closed"]);
    let frozen = with(&line_body(12, "10000", "2030-06-15"), "status", Some(json!("frozen")));
    assert_eq!(app.post(&w.wld, "/v1/credit-lines", frozen).await.expect(200)["status"], json!("expired"), "the update answers it too");
    app.clock.reset();
}

// ---------- 1. quotes and orders ----------

#[actix_web::test]
async fn quote_and_order_refusals_in_the_contract_order() {
    let w = world_with(&std_banks(), |spec| {
        spec.partner(partner("pt-poor", "2999999.99", &["wld"], &["44"]))
            .partner(partner("pt-jd", "3000000.00", &["jd"], &["44"]))
            .product(product("p-old", "0.18", &["wld"], &["44"]))
    })
    .await;
    let app = &w.app;
    let poor = w.key("pt-poor");
    let jd = w.key("pt-jd");
    let zj = w.key("st-zj");
    let bank = w.key("bk-a");
    let before = snapshot(app).await;

    // Quotes.
    let q = |key: &str, body: Value| {
        let key = key.to_string();
        async move { app.client(&key).quote(body).await }
    };
    let quote = json!({"product_id": "p12", "term_months": 12, "device_price": "3999", "down_payment": "999"});
    let ok = q(&w.store, quote.clone()).await.expect(200);
    assert_eq!(
        (st(&ok["principal"]), st(&ok["apr_irr"]), st(&ok["hold_amount"]), st(&ok["total_repayable"])),
        ("3000.00".into(), "0.1800".into(), HOLD.into(), HOLD.into())
    );
    assert_eq!(ok["installments"][0]["due_on"], json!(add_months_clamped(today(), 1).to_string()), "due dates from today");
    assert_eq!(q(&w.partner, quote.clone()).await.expect(200), ok);
    err(&q(&bank, quote.clone()).await, 403, "forbidden", None);
    err(&q(&w.store, with(&quote, "product_id", Some(json!("nope")))).await, 422, "unknown_reference", Some("product_id"));
    err(&q(&w.store, with(&quote, "term_months", Some(json!(6)))).await, 422, "unsupported_term", Some("term_months"));
    err(&q(&w.store, with(&quote, "device_price", Some(json!("abc")))).await, 422, "invalid_amount", Some("device_price"));
    err(&q(&w.store, with(&quote, "device_price", Some(json!("0")))).await, 422, "invalid_amount", Some("device_price"));
    err(&q(&w.store, with(&quote, "down_payment", Some(json!(999)))).await, 422, "invalid_amount", Some("down_payment"));
    err(&q(&w.store, with(&quote, "extra", Some(json!(1)))).await, 422, "invalid_request", Some("extra"));
    for (price, down) in [("499.99", "0"), ("1499.99", "1000"), ("20000.01", "0"), ("3999", "3999"), ("3999", "4000")] {
        let body = with(&with(&quote, "device_price", Some(json!(price))), "down_payment", Some(json!(down)));
        let r = q(&w.store, body).await;
        err(&r, 422, "principal_out_of_range", Some("down_payment"));
    }
    for (price, down) in [("500", "0"), ("20999", "999")] {
        let body = with(&with(&quote, "device_price", Some(json!(price))), "down_payment", Some(json!(down)));
        q(&w.store, body).await.expect(200);
    }

    // Orders: body validation (422 invalid_*), then the business rules.
    let base = order("ERR-1", 10);
    let mut bad_imei = imei(10);
    let d = bad_imei.pop().expect("digit").to_digit(10).expect("digit");
    bad_imei.push(char::from_digit((d + 1) % 10, 10).expect("digit"));
    for (path, value, code) in [
        ("device.imei", json!(bad_imei), "invalid_imei"),
        ("device.imei", json!(&imei(10)[..14]), "invalid_imei"),
        ("device.imei", json!(format!("{}a", &imei(10)[..14])), "invalid_imei"),
        ("device.price", json!("0"), "invalid_amount"),
        ("device.price", json!(3999), "invalid_amount"),
        ("down_payment", json!("-1"), "invalid_amount"),
        ("customer.id_number", json!(&id_number(10)[..17]), "invalid_id_number"),
        ("customer.phone", json!("2380000000"), "invalid_phone"),
        ("unknown", json!("x"), "invalid_request"),
        ("region_code", json!("440305"), "invalid_request"),
        ("agent_id", json!("a-1"), "invalid_request"),
        ("consent", json!({"method": "email", "reference": "r-1"}), "invalid_request"),
        ("out_order_no", json!("has space"), "invalid_request"),
        ("term_months", json!("12"), "invalid_request"),
    ] {
        let r = po(app, &w.store, with(&base, path, Some(value))).await;
        let field = if path == "consent" { "consent.method" } else { path };
        err(&r, 422, code, Some(field));
    }
    let pbase = partner_order("ERR-2", 10, "440305");
    err(&po(app, &w.partner, with(&pbase, "region_code", None)).await, 422, "invalid_request", Some("region_code"));
    err(&po(app, &w.partner, with(&pbase, "agent_id", None)).await, 422, "invalid_request", Some("agent_id"));
    err(&po(app, &w.partner, with(&pbase, "region_code", Some(json!("44")))).await, 422, "invalid_request", Some("region_code"));
    err(&po(app, &bank, base.clone()).await, 403, "forbidden", None);

    // unknown_reference, unsupported_term, principal_out_of_range.
    err(&po(app, &w.store, with(&base, "product_id", Some(json!("nope")))).await, 422, "unknown_reference", Some("product_id"));
    patch(app, "/v1/admin/products/p-old", json!({"active": false})).await.expect(200);
    err(&po(app, &w.store, with(&base, "product_id", Some(json!("p-old")))).await, 422, "unknown_reference", Some("product_id"));
    err(&q(&w.store, with(&quote, "product_id", Some(json!("p-old")))).await, 422, "unknown_reference", Some("product_id"));
    err(&po(app, &w.store, with(&base, "term_months", Some(json!(36)))).await, 422, "unsupported_term", Some("term_months"));
    for (price, down) in [("499.99", "0"), ("20000.01", "0"), ("3999", "3999"), ("3999", "4000")] {
        let body = with(&with(&base, "device.price", Some(json!(price))), "down_payment", Some(json!(down)));
        err(&po(app, &w.store, body).await, 422, "principal_out_of_range", Some("down_payment"));
    }

    // region_not_open: a store outside the product's regions; a partner outside its own or the product's.
    err(&po(app, &zj, base.clone()).await, 422, "region_not_open", Some("region_code"));
    err(&po(app, &w.partner, with(&pbase, "region_code", Some(json!("440105")))).await, 422, "region_not_open", Some("region_code"));
    err(&po(app, &w.partner, with(&pbase, "region_code", Some(json!("330106")))).await, 422, "region_not_open", Some("region_code"));

    // partner_not_eligible, with the reasons (checked before any line is looked for).
    let r = po(app, &poor, partner_order("ERR-3", 10, "440305")).await;
    err(&r, 422, "partner_not_eligible", None);
    assert_eq!(r.body["error"]["details"]["reasons"], json!(["deposit_below_minimum"]));
    let r = po(app, &jd, partner_order("ERR-4", 10, "440305")).await;
    err(&r, 422, "partner_not_eligible", None);
    assert_eq!(r.body["error"]["details"]["reasons"], json!(["not_authorized_for_product"]));
    // Without a line the eligible partner gets as far as the line.
    err(&po(app, &w.partner, pbase.clone()).await, 422, "no_matching_credit_line", None);
    assert_eq!(snapshot(app).await, before, "refusals change nothing");

    // already_exists per caller, before every business rule.
    line(&w, &w.wld, 10, "20000").await;
    let first = place(&w, &w.store, order("DUP-1", 10)).await;
    assert_eq!(
        (st(&first["status"]), st(&first["channel"]), st(&first["store_id"])),
        ("awaiting_funding".into(), "store".into(), "st-a".into())
    );
    assert_eq!(first["region_code"], json!("440305"));
    let r = po(app, &w.store, order("DUP-1", 10)).await;
    err(&r, 409, "already_exists", Some("out_order_no"));
    let r = po(app, &w.store, with(&order("DUP-1", 10), "product_id", Some(json!("nope")))).await;
    err(&r, 409, "already_exists", Some("out_order_no"));
    let second = place(&w, &w.store_b, order("DUP-1", 10)).await;
    assert_ne!(first["id"], second["id"], "the same out_order_no from another store is another order");
    let p = place(
        &w,
        &w.partner,
        with(&partner_order("DUP-1", 10, "440306"), "consent", Some(json!({"method": "sms_otp", "reference": "otp-1"}))),
    )
    .await;
    assert_eq!(
        (st(&p["channel"]), st(&p["partner_id"]), st(&p["agent_id"]), st(&p["region_code"])),
        ("partner".into(), "pt-a".into(), "a-17".into(), "440306".into())
    );
    assert_eq!(p["consent"], json!({"method": "sms_otp", "reference": "otp-1"}));
    assert!(p.get("store_id").is_none());
    verify_ok(app).await;
}

// ---------- 1 and 4. the line, the bank, and refusals that change nothing ----------

#[actix_web::test]
async fn line_matching_and_bank_routing_refusals_change_no_balance() {
    let banks = [bank("bk-gd", 1, "0.20", "1000000", Some(&["44"])), bank("bk-bj", 2, "0.24", "1000", Some(&["11"]))];
    let w = world_with(&banks, |spec| spec.product(product("p-high", "0.22", &["wld"], &["44"]))).await;
    let app = &w.app;
    let bj = w.key("st-bj");
    let sh = w.key("st-sh");
    let zj = w.key("st-zj");
    let must_run_until = add_months_clamped(deadline_date_now(), 12);

    // 302 frozen; 303 expires a day too early; 304 one fen short; 305 only a huabei line; 306 fine.
    app.post(&w.wld, "/v1/credit-lines", with(&line_body(302, "10000", FAR), "status", Some(json!("frozen")))).await.expect(201);
    let early = (must_run_until - chrono::Duration::days(1)).to_string();
    app.post(&w.wld, "/v1/credit-lines", line_body(303, "10000", &early)).await.expect(201);
    line(&w, &w.wld, 304, "3300.45").await;
    line(&w, &w.huabei, 305, "10000").await;
    let l306 = line(&w, &w.wld, 306, "10000").await;
    let before = snapshot(app).await;

    for (key, body) in [
        (&w.store, order("NM-1", 301)),
        (&w.store, order("NM-2", 302)),
        (&w.store, order("NM-3", 303)),
        (&w.store, order("NM-4", 304)),
        (&w.partner, partner_order("NM-5", 305, "440305")),
    ] {
        let r = po(app, key, body).await;
        err(&r, 422, "no_matching_credit_line", None);
        assert_eq!(r.body["error"]["details"]["hold_amount"], json!(HOLD));
    }
    // The hold would have been placed on 306's line: every bank refusal rolls it back.
    err(&po(app, &w.store, with(&order("NB-1", 306), "product_id", Some(json!("p-high")))).await, 422, "no_funding_bank", None);
    err(&po(app, &sh, order("NB-2", 306)).await, 422, "no_funding_bank", None);
    err(&po(app, &bj, order("NB-3", 306)).await, 422, "no_funding_bank", None);
    err(&po(app, &zj, order("RN-1", 306)).await, 422, "region_not_open", Some("region_code"));
    err(
        &po(app, &w.store, with(&order("PR-1", 306), "down_payment", Some(json!("3600")))).await,
        422,
        "principal_out_of_range",
        Some("down_payment"),
    );
    assert_eq!(snapshot(app).await, before, "no refusal moved a balance or left a row");
    assert_eq!(st(&admin_line(app, &st(&l306["id"])).await["held"]), "0.00");
    verify_ok(app).await;

    // The same orders pass once the one missing condition is met, at its exact boundary.
    app.post(&w.wld, "/v1/credit-lines", line_body(303, "10000", &must_run_until.to_string())).await.expect(200);
    place(&w, &w.store, order("OK-3", 303)).await;
    app.post(&w.wld, "/v1/credit-lines", line_body(304, HOLD, FAR)).await.expect(200);
    let o = place(&w, &w.store, order("OK-4", 304)).await;
    assert_eq!(st(&admin_line(app, &st(&o["hold"]["credit_line_id"])).await["available"]), "0.00");
    app.post(&w.wld, "/v1/credit-lines", with(&line_body(302, "10000", FAR), "status", Some(json!("active")))).await.expect(200);
    place(&w, &w.store, order("OK-2", 302)).await;
    // A store may use the huabei line the partner may not.
    let o = place(&w, &w.store, order("OK-5", 305)).await;
    assert_eq!(o["hold"]["provider_id"], json!("huabei"));
    // Preference: the product's first provider with enough, else the next.
    line(&w, &w.wld, 307, "3300.45").await;
    line(&w, &w.huabei, 307, "10000").await;
    assert_eq!(place(&w, &w.store, order("PF-1", 307)).await["hold"]["provider_id"], json!("huabei"));
    line(&w, &w.wld, 308, "10000").await;
    line(&w, &w.huabei, 308, "10000").await;
    assert_eq!(place(&w, &w.store, order("PF-2", 308)).await["hold"]["provider_id"], json!("wld"));
    // APR ranges are inclusive: 0.2000 is within bk-gd's 0-0.20.
    app.admin_post("/v1/admin/products", product("p-20", "0.20", &["wld"], &["44"])).await.expect(201);
    let o = place(&w, &w.store, with(&order("APR-20", 308), "product_id", Some(json!("p-20")))).await;
    assert_eq!((st(&o["apr_irr"]), st(&o["bank_id"])), ("0.2000".into(), "bk-gd".into()));
    // Exposure: once bk-bj has room for exactly one principal it takes it, then is full.
    patch(app, "/v1/admin/banks/bk-bj", json!({"exposure_limit": "3000"})).await.expect(200);
    let o = place(&w, &bj, order("NB-4", 306)).await;
    assert_eq!(o["bank_id"], json!("bk-bj"));
    assert_eq!(st(&admin_bank(app, "bk-bj").await["exposure_used"]), "3000.00");
    let before = snapshot(app).await;
    err(&po(app, &bj, order("NB-5", 306)).await, 422, "no_funding_bank", None);
    assert_eq!(snapshot(app).await, before);
    verify_ok(app).await;
}

// ---------- 1. funding, cancellation, rejection ----------

/// A world of [`world`] with customer 20's line (limit 100,000) and `n` store orders on it, all
/// routed to bk-a: the world, the line's id and the orders' ids.
async fn awaiting_orders(n: usize) -> (W, String, Vec<String>) {
    let w = world(&std_banks()).await;
    let l = line(&w, &w.wld, 20, "100000").await;
    let mut orders = Vec::new();
    for i in 0..n {
        let o = place(&w, &w.store, order(&format!("F-{i}"), 20)).await;
        assert_eq!(o["bank_id"], json!("bk-a"));
        orders.push(st(&o["id"]));
    }
    (w, st(&l["id"]), orders)
}

/// A funding decision approving with `loan`, funded on `on`.
fn approve(loan: &str, on: String) -> Value {
    json!({"decision": "approved", "loan_no": loan, "funded_on": on})
}

/// bk-a's funding decision on an order.
async fn fund_as_bank_a(w: &W, id: &str, body: Value) -> Resp {
    post_to(&w.app, &w.key("bk-a"), format!("/v1/orders/{id}/funding"), body).await
}

#[actix_web::test]
async fn a_funding_decision_is_checked_for_its_body_and_its_caller() {
    let (w, _, orders) = awaiting_orders(1).await;
    let app = &w.app;
    let bank_b = w.key("bk-b");
    let created_on = today();
    let fund = async |id: &str, body: Value| fund_as_bank_a(&w, id, body).await;
    // Body checks.
    err(&fund(&orders[0], approve("L-0", "2027-02-30".into())).await, 422, "invalid_date", Some("funded_on"));
    err(&fund(&orders[0], json!({"decision": "maybe"})).await, 422, "invalid_request", Some("decision"));
    err(
        &fund(&orders[0], json!({"decision": "approved", "funded_on": created_on.to_string()})).await,
        422,
        "invalid_request",
        Some("loan_no"),
    );
    err(
        &fund(&orders[0], with(&approve("L-0", created_on.to_string()), "reason", Some(json!("x")))).await,
        422,
        "invalid_request",
        Some("reason"),
    );
    err(&fund(&orders[0], json!({"decision": "rejected", "reason": "x", "loan_no": "L"})).await, 422, "invalid_request", Some("loan_no"));
    err(&fund(&orders[0], json!({"decision": "rejected"})).await, 422, "invalid_request", Some("reason"));
    // Who: another bank 404 like a missing order; a store, a provider and the admin 403.
    let missing = fund("ord_missing", approve("L-0", created_on.to_string())).await;
    err(&missing, 404, "not_found", None);
    let r = app.post(&bank_b, &format!("/v1/orders/{}/funding", orders[0]), approve("L-0", created_on.to_string())).await;
    err(&r, 404, "not_found", None);
    assert_eq!(r.body["error"]["message"], missing.body["error"]["message"]);
    for key in [&w.store, &w.wld, &app.admin_key.clone()] {
        err(
            &app.post(key, &format!("/v1/orders/{}/funding", orders[0]), approve("L-0", created_on.to_string())).await,
            403,
            "forbidden",
            None,
        );
    }
    assert_eq!(app.get(&w.store, &format!("/v1/orders/{}", orders[0])).await.expect(200)["status"], json!("awaiting_funding"));
}

#[actix_web::test]
async fn funded_on_lies_between_creation_and_deadline_and_a_loan_no_is_a_banks_once() {
    let (w, _, orders) = awaiting_orders(3).await;
    let app = &w.app;
    let (bank, bank_b) = (w.key("bk-a"), w.key("bk-b"));
    let o0 = app.get(&w.store, &format!("/v1/orders/{}", orders[0])).await.expect(200);
    let created_on = today();
    let deadline = chrono::DateTime::parse_from_rfc3339(&st(&o0["funding_deadline"])).expect("rfc3339").with_timezone(&Utc);
    let created = chrono::DateTime::parse_from_rfc3339(&st(&o0["created_at"])).expect("rfc3339").with_timezone(&Utc);
    let off = (deadline - created - chrono::Duration::hours(72)).num_seconds().abs();
    assert!(off <= 5, "the deadline is creation + funding_timeout_hours: {deadline} {created}");
    let deadline_date = shanghai_date(deadline);
    let fund = async |id: &str, body: Value| fund_as_bank_a(&w, id, body).await;

    // funded_on within [creation date, deadline date], both ends included.
    let r = fund(&orders[0], approve("L-0", (created_on - chrono::Duration::days(1)).to_string())).await;
    err(&r, 422, "invalid_date", Some("funded_on"));
    let r = fund(&orders[0], approve("L-0", (deadline_date + chrono::Duration::days(1)).to_string())).await;
    err(&r, 422, "invalid_date", Some("funded_on"));
    let a = fund(&orders[0], approve("L-0", deadline_date.to_string())).await.expect(200);
    assert_eq!(
        (st(&a["status"]), st(&a["plan"]["funded_on"]), st(&a["plan"]["loan_no"])),
        ("active".into(), deadline_date.to_string(), "L-0".into())
    );
    assert_eq!(a["plan"]["installments"][0]["due_on"], json!(add_months_clamped(deadline_date, 1).to_string()));
    assert_eq!((st(&a["hold"]["status"]), st(&a["hold"]["remaining"])), ("active".into(), HOLD.into()));
    let a1 = fund(&orders[1], approve("L-1", created_on.to_string())).await.expect(200);
    assert_eq!(a1["plan"]["funded_on"], json!(created_on.to_string()));
    // A bank's loan_no is unique for ever: 409 before the state.
    err(&fund(&orders[2], approve("L-0", created_on.to_string())).await, 409, "already_exists", Some("loan_no"));
    err(&fund(&orders[0], approve("L-1", created_on.to_string())).await, 409, "already_exists", Some("loan_no"));
    assert_eq!(app.get(&bank, &format!("/v1/orders/{}", orders[2])).await.expect(200)["status"], json!("awaiting_funding"));
    // Another bank may use the same loan_no: take an order routed to bk-b.
    assert_eq!(st(&admin_bank(app, "bk-a").await["exposure_used"]), "9000.00");
    patch(app, "/v1/admin/banks/bk-a", json!({"exposure_limit": "9000"})).await.expect(200);
    let ob = place(&w, &w.store, order("F-B", 20)).await;
    assert_eq!(ob["bank_id"], json!("bk-b"));
    app.post(&bank_b, &format!("/v1/orders/{}/funding", st(&ob["id"])), approve("L-0", created_on.to_string())).await.expect(200);
    // Funded twice: invalid_state.
    err(&fund(&orders[0], approve("L-9", created_on.to_string())).await, 409, "invalid_state", None);
    err(&fund(&orders[0], json!({"decision": "rejected", "reason": "x"})).await, 409, "invalid_state", None);
    err(&app.post(&w.store, &format!("/v1/orders/{}/cancel", orders[0]), json!({})).await, 409, "invalid_state", None);
    verify_ok(app).await;
}

#[actix_web::test]
async fn cancellation_voids_the_hold_and_frees_exposure_once() {
    let (w, line_id, orders) = awaiting_orders(4).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    let created_on = today();
    let fund = async |id: &str, body: Value| fund_as_bank_a(&w, id, body).await;
    // A funded order is not cancelled.
    fund(&orders[0], approve("L-0", created_on.to_string())).await.expect(200);
    err(&app.post(&w.store, &format!("/v1/orders/{}/cancel", orders[0]), json!({})).await, 409, "invalid_state", None);

    // Cancel: voids the hold and frees exposure; twice is invalid_state; funding it too.
    let held_before = fen(&st(&admin_line(app, &line_id).await["held"]));
    let used_before = fen(&st(&admin_bank(app, "bk-a").await["exposure_used"]));
    let c = app.post(&w.store, &format!("/v1/orders/{}/cancel", orders[2]), json!({"reason": "customer changed mind"})).await.expect(200);
    assert_eq!((st(&c["status"]), st(&c["reason"])), ("cancelled".into(), "customer changed mind".into()));
    assert_eq!(
        (st(&c["hold"]["status"]), st(&c["hold"]["voided"]), st(&c["hold"]["remaining"])),
        ("voided".into(), HOLD.into(), "0.00".into())
    );
    assert_eq!(fen(&st(&admin_line(app, &line_id).await["held"])), held_before - fen(HOLD));
    assert_eq!(fen(&st(&admin_bank(app, "bk-a").await["exposure_used"])), used_before - 300_000);
    err(&app.post(&w.store, &format!("/v1/orders/{}/cancel", orders[2]), json!({})).await, 409, "invalid_state", None);
    err(&fund(&orders[2], approve("L-2", created_on.to_string())).await, 409, "invalid_state", None);
    err(&fund(&orders[2], json!({"decision": "rejected", "reason": "x"})).await, 409, "invalid_state", None);
    // Cancel: other store 404, a bank 403, the admin may; an empty body is fine.
    err(&app.post(&w.store_b, &format!("/v1/orders/{}/cancel", orders[3]), json!({})).await, 404, "not_found", None);
    err(&app.post(&bank, &format!("/v1/orders/{}/cancel", orders[3]), json!({})).await, 403, "forbidden", None);
    err(
        &app.post(&w.store, &format!("/v1/orders/{}/cancel", orders[3]), json!({"reason": 5})).await,
        422,
        "invalid_request",
        Some("reason"),
    );
    let r = app
        .call_raw("POST", &format!("/v1/orders/{}/cancel", orders[3]), Some(app.admin_key.as_str()), None, Some("empty-cancel"), &[])
        .await;
    assert_eq!((r.status, r.body["status"].clone()), (200, json!("cancelled")), "{}", r.body);
    let bk = admin_bank(app, "bk-a").await;
    assert_eq!(st(&bk["exposure_used"]), "6000.00", "one plan and one order still awaiting funding: {bk}");
    verify_ok(app).await;
}

#[actix_web::test]
async fn rejection_voids_the_hold_and_comes_once() {
    let (w, _, orders) = awaiting_orders(5).await;
    let fund = async |id: &str, body: Value| fund_as_bank_a(&w, id, body).await;
    // Rejection voids the hold too.
    let r = fund(&orders[4], json!({"decision": "rejected", "reason": "kyc failed"})).await.expect(200);
    assert_eq!((st(&r["status"]), st(&r["reason"]), st(&r["hold"]["status"])), ("rejected".into(), "kyc failed".into(), "voided".into()));
    assert!(r["plan"].is_null());
    err(&fund(&orders[4], json!({"decision": "rejected", "reason": "again"})).await, 409, "invalid_state", None);
    let bk = admin_bank(&w.app, "bk-a").await;
    assert_eq!(st(&bk["exposure_used"]), "12000.00", "the rejected order's exposure is freed: {bk}");
    verify_ok(&w.app).await;
}

#[actix_web::test]
async fn past_the_deadline_a_bank_can_neither_approve_nor_reject() {
    let (w, _, orders) = awaiting_orders(6).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    let created_on = today();
    let fund = async |id: &str, body: Value| fund_as_bank_a(&w, id, body).await;
    // Past the deadline (the service's clock a minute after it): 409 invalid_state for approvals
    // and rejections alike.
    let o5 = app.get(&bank, &format!("/v1/orders/{}", orders[5])).await.expect(200);
    let deadline = chrono::DateTime::parse_from_rfc3339(&st(&o5["funding_deadline"])).expect("rfc3339").with_timezone(&Utc);
    app.clock.set(deadline + chrono::Duration::minutes(1));
    err(&fund(&orders[5], approve("L-5", created_on.to_string())).await, 409, "invalid_state", None);
    let r = fund(&orders[5], approve("L-5", (created_on - chrono::Duration::days(1)).to_string())).await;
    err(&r, 409, "invalid_state", None);
    err(&fund(&orders[5], json!({"decision": "rejected", "reason": "late"})).await, 409, "invalid_state", None);
    assert_eq!(app.get(&bank, &format!("/v1/orders/{}", orders[5])).await.expect(200)["status"], json!("awaiting_funding"));
    app.clock.reset();
    verify_ok(app).await;
}

// ---------- 2. tenants, lists, notices ----------

/// Five orders of three sellers over two banks (bk-a fits two principals): store st-a's a1, a2
/// and a3, store st-b's b1 (on a huabei line) and partner pt-a's p1.
struct Tenants {
    w: W,
    a1: Value,
    a2: Value,
    a3: Value,
    b1: Value,
    p1: Value,
}

async fn tenants() -> Tenants {
    let w = world(&[bank("bk-a", 1, "0.24", "6000", None), bank("bk-b", 2, "0.24", "10000000", None)]).await;
    for seed in [31, 32, 33, 35] {
        line(&w, &w.wld, seed, "10000").await;
    }
    line(&w, &w.huabei, 34, "10000").await;
    let a1 = place(&w, &w.store, order("A-1", 31)).await;
    let a2 = place(&w, &w.store, order("A-2", 32)).await;
    let a3 = place(&w, &w.store, order("A-3", 33)).await;
    let b1 = place(&w, &w.store_b, order("B-1", 34)).await;
    let p1 = place(&w, &w.partner, partner_order("P-1", 35, "440305")).await;
    let banks: Vec<Value> = [&a1, &a2, &a3, &b1, &p1].iter().map(|o| o["bank_id"].clone()).collect();
    assert_eq!(banks, [json!("bk-a"), json!("bk-a"), json!("bk-b"), json!("bk-b"), json!("bk-b")], "bk-a fits two principals");
    assert_eq!(b1["hold"]["provider_id"], json!("huabei"));
    Tenants { w, a1, a2, a3, b1, p1 }
}

/// st-a cancels a2 and bk-a funds a1: answers a1's plan id.
async fn cancel_a2_fund_a1(t: &Tenants) -> String {
    let app = &t.w.app;
    app.post(&t.w.store, &format!("/v1/orders/{}/cancel", st(&t.a2["id"])), json!({})).await.expect(200);
    let funding = json!({"decision": "approved", "loan_no": "LA-1", "funded_on": today().to_string()});
    let funded = app.post(&t.w.key("bk-a"), &format!("/v1/orders/{}/funding", st(&t.a1["id"])), funding).await.expect(200);
    st(&funded["plan"]["id"])
}

#[actix_web::test]
async fn someone_elses_orders_holds_lines_and_plans_answer_like_missing_ones() {
    let t = tenants().await;
    let (w, a1) = (&t.w, &t.a1);
    let app = &w.app;
    let (bank_a, bank_b) = (w.key("bk-a"), w.key("bk-b"));
    let a1_id = st(&a1["id"]);
    // Reads and writes of someone else's objects answer exactly like missing ones.
    let missing = app.get(&w.store_b, "/v1/orders/ord_missing").await;
    err(&missing, 404, "not_found", None);
    let hold_a1 = st(&a1["hold"]["id"]);
    let line_a1 = st(&a1["hold"]["credit_line_id"]);
    for (key, method, path) in [
        (&w.store_b, "GET", format!("/v1/orders/{a1_id}")),
        (&w.partner, "GET", format!("/v1/orders/{a1_id}")),
        (&bank_b, "GET", format!("/v1/orders/{a1_id}")),
        (&bank_b, "GET", format!("/v1/orders/{a1_id}/borrower")),
        (&w.store_b, "POST", format!("/v1/orders/{a1_id}/cancel")),
        (&w.partner, "POST", format!("/v1/orders/{a1_id}/cancel")),
        (&bank_b, "POST", format!("/v1/orders/{a1_id}/funding")),
        (&w.store_b, "GET", format!("/v1/holds/{hold_a1}")),
        (&bank_b, "GET", format!("/v1/holds/{hold_a1}")),
        (&w.huabei, "GET", format!("/v1/holds/{hold_a1}")),
        (&w.huabei, "GET", format!("/v1/credit-lines/{line_a1}")),
        (&w.huabei, "POST", format!("/v1/credit-lines/{line_a1}/debt-repayments")),
    ] {
        let body = match path.rsplit('/').next() {
            Some("funding") => Some(json!({"decision": "approved", "loan_no": "X-1", "funded_on": today().to_string()})),
            Some("debt-repayments") => Some(json!({"amount": "1"})),
            _ if method == "POST" => Some(json!({})),
            _ => None,
        };
        let r = app.call(method, &path, Some(key.as_str()), body.as_ref(), Some(&format!("iso-{}", uuid::Uuid::new_v4().simple()))).await;
        err(&r, 404, "not_found", None);
        assert_eq!(r.body["error"]["message"], missing.body["error"]["message"], "{method} {path}");
    }
    assert_eq!(
        app.get(&w.store, &format!("/v1/orders/{a1_id}")).await.expect(200)["status"],
        json!("awaiting_funding"),
        "nothing was cancelled"
    );
    err(&app.get(&w.wld, &format!("/v1/orders/{a1_id}")).await, 403, "forbidden", None);
    err(&app.get(&w.wld, "/v1/orders").await, 403, "forbidden", None);
    for key in [&w.store, &bank_a, &app.admin_key.clone()] {
        let o = app.get(key, &format!("/v1/orders/{a1_id}")).await.expect(200);
        assert_eq!((o["id"].clone(), o["hold"]["id"].clone()), (json!(a1_id), json!(hold_a1)));
        app.get(key, &format!("/v1/holds/{hold_a1}")).await.expect(200);
    }
    app.get(&w.wld, &format!("/v1/holds/{hold_a1}")).await.expect(200);
    app.get(&w.wld, &format!("/v1/credit-lines/{line_a1}")).await.expect(200);

    // Once a1 is funded, its plan is as private.
    let plan_id = cancel_a2_fund_a1(&t).await;
    for key in [&w.store, &bank_a, &app.admin_key.clone()] {
        assert_eq!(app.get(key, &format!("/v1/plans/{plan_id}")).await.expect(200)["id"], json!(plan_id));
    }
    for key in [&w.store_b, &bank_b, &w.partner] {
        err(&app.get(key, &format!("/v1/plans/{plan_id}")).await, 404, "not_found", None);
    }
}

#[actix_web::test]
async fn lists_show_the_callers_own_orders_newest_first_with_a_status_filter_and_cursors() {
    let t = tenants().await;
    cancel_a2_fund_a1(&t).await;
    let Tenants { w, a1, a2, a3, b1, p1 } = t;
    let app = &w.app;
    let (bank_a, bank_b) = (w.key("bk-a"), w.key("bk-b"));
    let id = |o: &Value| st(&o["id"]);
    let (a1_id, a2_id) = (id(&a1), id(&a2));
    // Lists: the caller's own, newest first, with a status filter and cursors.
    let all = [&p1, &b1, &a3, &a2, &a1].map(id).to_vec();
    assert_eq!(ids(&app.get(&w.store, "/v1/orders").await.expect(200)), [id(&a3), a2_id.clone(), a1_id.clone()]);
    assert_eq!(ids(&app.get(&w.store_b, "/v1/orders").await.expect(200)), [id(&b1)]);
    assert_eq!(ids(&app.get(&w.partner, "/v1/orders").await.expect(200)), [id(&p1)]);
    assert_eq!(ids(&app.get(&bank_a, "/v1/orders").await.expect(200)), [a2_id.clone(), a1_id.clone()]);
    assert_eq!(ids(&app.get(&bank_b, "/v1/orders").await.expect(200)), [id(&p1), id(&b1), id(&a3)]);
    assert_eq!(ids(&app.admin_get("/v1/orders").await.expect(200)), all);
    assert_eq!(ids(&app.get(&w.store, "/v1/orders?status=cancelled").await.expect(200)), std::slice::from_ref(&a2_id));
    assert_eq!(ids(&app.get(&w.store, "/v1/orders?status=awaiting_funding").await.expect(200)), [id(&a3)]);
    assert_eq!(ids(&app.get(&bank_a, "/v1/orders?status=active").await.expect(200)), std::slice::from_ref(&a1_id));
    assert_eq!(ids(&app.get(&bank_b, "/v1/orders?status=active").await.expect(200)), Vec::<String>::new());
    let mut paged = Vec::new();
    let mut path = "/v1/orders?limit=2".to_string();
    for _ in 0..5 {
        let page = app.admin_get(&path).await.expect(200);
        assert!(page["data"].as_array().expect("data").len() <= 2);
        paged.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages join up to the whole list");
    let page = app.get(&w.store, "/v1/orders?limit=2&status=awaiting_funding").await.expect(200);
    assert_eq!((ids(&page), page["next_cursor"].clone()), (vec![id(&a3)], Value::Null));
    for bad in ["status=open", "limit=0", "limit=201", "cursor=zzz"] {
        err(&app.get(&w.store, &format!("/v1/orders?{bad}")).await, 422, "invalid_request", bad.split('=').next());
    }
}

#[actix_web::test]
async fn notice_feeds_show_the_callers_own_notices_in_order_with_their_ids_and_amounts() {
    let t = tenants().await;
    let plan_id = cancel_a2_fund_a1(&t).await;
    let Tenants { w, a1, a2, a3, b1, p1 } = t;
    let app = &w.app;
    let (bank_a, bank_b) = (w.key("bk-a"), w.key("bk-b"));
    let id = |o: &Value| st(&o["id"]);
    let (a1_id, a2_id) = (id(&a1), id(&a2));
    // Notices: only the caller's, in order, with the ids and amounts.
    let feed = |key: String, q: String| async move { app.get(&key, &format!("/v1/notices{q}")).await.expect(200) };
    let types = |f: &Value| -> Vec<(String, String)> {
        f["data"].as_array().expect("data").iter().map(|n| (st(&n["type"]), st(&n["data"]["order_id"]))).collect()
    };
    let t = |kind: &str, o: &str| (kind.to_string(), o.to_string());
    let bank_feed = feed(bank_a.clone(), String::new()).await;
    assert_eq!(
        types(&bank_feed),
        [t("funding.requested", &a1_id), t("funding.requested", &a2_id), t("order.cancelled", &a2_id), t("plan.opened", &a1_id)]
    );
    let fb = feed(bank_b.clone(), String::new()).await;
    assert_eq!(types(&fb), [t("funding.requested", &id(&a3)), t("funding.requested", &id(&b1)), t("funding.requested", &id(&p1))]);
    let fw = feed(w.wld.clone(), String::new()).await;
    assert_eq!(
        types(&fw),
        [
            t("hold.placed", &a1_id),
            t("hold.placed", &a2_id),
            t("hold.placed", &id(&a3)),
            t("hold.placed", &id(&p1)),
            t("hold.voided", &a2_id)
        ]
    );
    let fh = feed(w.huabei.clone(), String::new()).await;
    assert_eq!(types(&fh), [t("hold.placed", &id(&b1))]);
    let fs = feed(w.store.clone(), String::new()).await;
    assert_eq!(
        types(&fs),
        [
            t("order.updated", &a1_id),
            t("order.updated", &a2_id),
            t("order.updated", &id(&a3)),
            t("order.updated", &a2_id),
            t("order.updated", &a1_id)
        ]
    );
    let statuses: Vec<Value> = fs["data"].as_array().expect("data").iter().map(|n| n["data"]["status"].clone()).collect();
    assert_eq!(
        statuses,
        [json!("awaiting_funding"), json!("awaiting_funding"), json!("awaiting_funding"), json!("cancelled"), json!("active")]
    );
    assert_eq!(types(&feed(w.store_b.clone(), String::new()).await), [t("order.updated", &id(&b1))]);
    assert_eq!(types(&feed(w.partner.clone(), String::new()).await), [t("order.updated", &id(&p1))]);
    let everything = feed(app.admin_key.clone(), "?limit=200".into()).await;
    assert_eq!(everything["data"].as_array().expect("data").len(), 4 + 3 + 5 + 1 + 5 + 1 + 1);
    for (f, kind, who) in
        [(&bank_feed, "bank", "bk-a"), (&fb, "bank", "bk-b"), (&fw, "provider", "wld"), (&fh, "provider", "huabei"), (&fs, "store", "st-a")]
    {
        let mut last = String::new();
        for n in f["data"].as_array().expect("data") {
            assert_eq!(n["recipient"], json!({"kind": kind, "id": who}));
            let nid = st(&n["id"]);
            assert!(nid.starts_with("ntc_") && nid > last, "notice ids sort in creation order");
            last = nid;
            let d = &n["data"];
            let ord = [&a1, &a2, &a3, &b1, &p1].into_iter().find(|o| o["id"] == d["order_id"]).expect("the notice's order");
            assert_eq!(d["hold_id"], ord["hold"]["id"], "{n}");
            assert_eq!(d["credit_line_id"], ord["hold"]["credit_line_id"], "{n}");
            match st(&n["type"]).as_str() {
                "funding.requested" | "order.cancelled" | "plan.opened" => assert_eq!(d["amount"], json!("3000.00"), "{n}"),
                "hold.placed" => assert_eq!((d["amount"].clone(), d["remaining"].clone()), (json!(HOLD), json!(HOLD)), "{n}"),
                "hold.voided" => assert_eq!((d["amount"].clone(), d["remaining"].clone()), (json!(HOLD), json!("0.00")), "{n}"),
                _ => {}
            }
        }
    }
    assert_eq!(bank_feed["data"][3]["data"]["plan_id"], json!(plan_id));
    // after= a notice id, and cursors.
    let bids: Vec<String> = bank_feed["data"].as_array().expect("data").iter().map(|n| st(&n["id"])).collect();
    let rest = feed(bank_a.clone(), format!("?after={}", bids[0])).await;
    assert_eq!(rest["data"].as_array().expect("data").iter().map(|n| st(&n["id"])).collect::<Vec<_>>(), bids[1..]);
    assert_eq!(feed(bank_a.clone(), format!("?after={}", bids[3])).await["data"], json!([]));
    let first = feed(bank_a.clone(), "?limit=3".into()).await;
    let cursor = st(&first["next_cursor"]);
    let next = feed(bank_a.clone(), format!("?limit=3&cursor={cursor}")).await;
    assert_eq!((next["data"][0]["id"].clone(), next["next_cursor"].clone()), (json!(bids[3]), Value::Null));
    err(&app.get(&bank_a, "/v1/notices?after=ntc_x").await, 422, "invalid_request", Some("after"));
    verify_ok(app).await;
    verify_ok(app).await;
}

// ---------- 3. concurrency ----------

#[actix_web::test]
async fn concurrent_orders_on_one_line_never_overdraw_it() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let quote = app
        .client(&w.store)
        .quote(json!({"product_id": "p12", "term_months": 12, "device_price": "3999", "down_payment": "999"}))
        .await
        .expect(200);
    let hold = fen(&st(&quote["hold_amount"]));
    let limit = 11 * hold;
    let l = line(&w, &w.wld, 40, &format!("{}.{:02}", limit / 100, limit % 100)).await;
    let line_id = st(&l["id"]);
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all((0..40).map(|i| app.post(&w.store, "/v1/orders", order(&format!("C-{i}"), 40)))),
    )
    .await
    .expect("every request answers: no deadlock");
    let created = answers.iter().filter(|r| r.status == 201).count();
    for r in answers.iter().filter(|r| r.status != 201) {
        err(r, 422, "no_matching_credit_line", None);
    }
    assert_eq!((created, answers.len() - created), (11, 29));
    let l = admin_line(app, &line_id).await;
    assert_eq!((fen(&st(&l["held"])), st(&l["available"])), (11 * hold, "0.00".to_string()));
    assert_eq!(count(app, "SELECT count(*) FROM holds").await, 11);
    assert_eq!(count(app, "SELECT count(*) FROM orders").await, 11);
    assert_eq!(count(app, "SELECT count(*) FROM credit_lines WHERE held_fen + drawn_fen > limit_fen").await, 0);
    assert_eq!(fen(&st(&admin_bank(app, "bk-a").await["exposure_used"])), 11 * 300_000);
    verify_ok(app).await;
}

#[actix_web::test]
async fn concurrent_orders_fill_each_bank_exactly_to_its_limit() {
    let w = world(&[bank("bk-1", 1, "0.24", "15000", None), bank("bk-2", 2, "0.24", "15000", None)]).await;
    let app = &w.app;
    for seed in 100..120 {
        line(&w, &w.wld, seed, "10000").await;
    }
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all((100..120).map(|seed| app.post(&w.store, "/v1/orders", order(&format!("E-{seed}"), seed)))),
    )
    .await
    .expect("every request answers: no deadlock");
    let created: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
    for r in answers.iter().filter(|r| r.status != 201) {
        err(r, 422, "no_funding_bank", None);
    }
    assert_eq!(created.len(), 10);
    for b in ["bk-1", "bk-2"] {
        let bk = admin_bank(app, b).await;
        assert_eq!((st(&bk["exposure_used"]), st(&bk["exposure_limit"])), ("15000.00".into(), "15000.00".into()), "{bk}");
        assert_eq!(created.iter().filter(|r| r.body["bank_id"] == json!(b)).count(), 5);
    }
    assert_eq!(count(app, "SELECT count(*) FROM holds").await, 10);
    assert_eq!(count(app, "SELECT count(*) FROM credit_lines WHERE held_fen > 0").await, 10, "refused orders' holds rolled back");
    verify_ok(app).await;
}

#[actix_web::test]
async fn a_hundred_orders_racing_for_one_banks_striped_exposure_never_over_reserve_it() {
    // 37 principals of 3000.00 fit; the room is spread over the bank's stripes, so the last
    // reservations need a rebalance under locks on every stripe.
    let w = world(&[bank("bk-1", 1, "0.24", "111000", None)]).await;
    let app = &w.app;
    for seed in 200..300 {
        line(&w, &w.wld, seed, "10000").await;
    }
    let store = w.store.as_str();
    let race = |tag: &'static str| {
        futures_util::future::join_all((200..300u64).map(move |seed| app.post(store, "/v1/orders", order(&format!("{tag}-{seed}"), seed))))
    };
    let answers = tokio::time::timeout(Duration::from_secs(90), race("H")).await.expect("every request answers: no deadlock");
    let created = answers.iter().filter(|r| r.status == 201).count();
    for r in answers.iter().filter(|r| r.status != 201) {
        err(r, 422, "no_funding_bank", None);
    }
    assert_eq!(created, 37, "exactly as many as the limit holds");
    let bk = admin_bank(app, "bk-1").await;
    assert_eq!(st(&bk["exposure_used"]), "111000.00", "{bk}");
    let over: i64 = count(app, "SELECT count(*) FROM bank_exposure_stripes WHERE used_fen > limit_fen").await;
    assert_eq!(over, 0, "no stripe over its limit");
    // Raising the limit by two principals makes room for exactly two more.
    patch(app, "/v1/admin/banks/bk-1", json!({"exposure_limit": "117000"})).await.expect(200);
    let more = race("M").await;
    assert_eq!(more.iter().filter(|r| r.status == 201).count(), 2);
    // Lowering it below what is in use refuses every new order and keeps the book.
    patch(app, "/v1/admin/banks/bk-1", json!({"exposure_limit": "50000"})).await.expect(200);
    err(&po(app, &w.store, order("LOW-1", 201)).await, 422, "no_funding_bank", None);
    assert_eq!(st(&admin_bank(app, "bk-1").await["exposure_used"]), "117000.00");
    verify_ok(app).await;
}

/// A store order of principal `yuan` (0.18 over 12 months on p12) for customer `seed`.
fn order_of(no: &str, seed: u64, yuan: i64) -> Value {
    with(&order(no, seed), "device.price", Some(json!(format!("{}", yuan + 999))))
}

async fn exposure_used(app: &TestApp, bank: &str) -> i64 {
    fen(&st(&admin_bank(app, bank).await["exposure_used"]))
}

async fn cancel(app: &TestApp, key: &str, order_id: &str) -> Resp {
    app.post(key, &format!("/v1/orders/{order_id}/cancel"), json!({})).await
}

#[actix_web::test]
async fn a_bank_over_a_lowered_limit_takes_no_order_until_it_is_back_within_it() {
    // Issue 14.1: after a cut below the exposure in use, a release on one stripe gave that stripe
    // room while the bank as a whole was still over, and a new order was routed there.
    let w = world(&[bank("bk-1", 1, "0.24", "100000", None)]).await;
    let app = &w.app;
    let bank_key = w.key("bk-1");
    let mut orders = Vec::new();
    for seed in 400..408 {
        line(&w, &w.wld, seed, "15000").await;
        orders.push(st(&place(&w, &w.store, order_of(&format!("CUT-{seed}"), seed, 10_000)).await["id"]));
    }
    for seed in 420..430 {
        line(&w, &w.wld, seed, "15000").await;
    }
    assert_eq!(exposure_used(app, "bk-1").await, 8_000_000);
    patch(app, "/v1/admin/banks/bk-1", json!({"exposure_limit": "50000"})).await.expect(200);
    verify_ok(app).await;
    err(&po(app, &w.store, order_of("NEW-0", 420, 6_000)).await, 422, "no_funding_bank", None);

    // A cancellation frees 10000 on one stripe: the bank is still 20000 over.
    cancel(app, &w.store, &orders[0]).await.expect(200);
    err(&po(app, &w.store, order_of("NEW-1", 421, 6_000)).await, 422, "no_funding_bank", None);
    assert_eq!(exposure_used(app, "bk-1").await, 7_000_000);
    // Repaid principal frees exposure too: the bank is still 10000 over.
    let funded = app
        .post(
            &bank_key,
            &format!("/v1/orders/{}/funding", orders[1]),
            json!({"decision": "approved", "loan_no": "L-CUT-1", "funded_on": today().to_string()}),
        )
        .await
        .expect(200);
    let plan = st(&funded["plan"]["id"]);
    let payoff = app.get(&bank_key, &format!("/v1/plans/{plan}/payoff")).await.expect(200);
    app.post(
        &bank_key,
        &format!("/v1/plans/{plan}/repayments"),
        json!({"amount": payoff["amount"], "paid_on": today().to_string(), "reference": "R-CUT"}),
    )
    .await
    .expect(201);
    err(&po(app, &w.store, order_of("NEW-2", 422, 6_000)).await, 422, "no_funding_bank", None);
    assert_eq!(exposure_used(app, "bk-1").await, 6_000_000);
    for _ in 0..3 {
        err(&po(app, &w.store, order_of("NEW-3", 423, 500)).await, 422, "no_funding_bank", None);
    }

    // Back within the limit (40000 in use): exactly the room is taken again, 6000 then 4000.
    cancel(app, &w.store, &orders[2]).await.expect(200);
    cancel(app, &w.store, &orders[3]).await.expect(200);
    place(&w, &w.store, order_of("NEW-4", 424, 6_000)).await;
    err(&po(app, &w.store, order_of("NEW-5", 425, 6_000)).await, 422, "no_funding_bank", None);
    place(&w, &w.store, order_of("NEW-6", 426, 4_000)).await;
    assert_eq!(exposure_used(app, "bk-1").await, 5_000_000);
    err(&po(app, &w.store, order_of("NEW-7", 427, 500)).await, 422, "no_funding_bank", None);
    verify_ok(app).await;

    // Verification knows the rule: over the limit beyond what was held at the cut is reported.
    let db = app.db().await;
    db.execute("UPDATE bank_exposure_stripes SET limit_fen = limit_fen - 1000000 WHERE bank_id = 'bk-1' AND stripe = 0", &[])
        .await
        .unwrap();
    db.execute("UPDATE banks SET exposure_limit_fen = exposure_limit_fen - 1000000, exposure_at_cut_fen = NULL WHERE id = 'bk-1'", &[])
        .await
        .unwrap();
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "bank_exposure_within_limit", "bk-1"), "{v}");
}

#[actix_web::test]
async fn limit_cuts_and_releases_racing_orders_never_take_a_bank_past_its_limit() {
    // Each round: 80000 of 100000 in use; then four orders are cancelled while sixteen new ones of
    // 3000 race for the bank, and the limit is cut to 50000 — before the race in even rounds (then
    // no order may take the bank above 50000, whatever the cancellations have freed so far), during
    // it in odd rounds (then the bank ends within 50000 or no higher than it held at the cut).
    let w = world(&[bank("bk-1", 1, "0.24", "100000", None)]).await;
    let app = &w.app;
    let store = w.store.as_str();
    for round in 0..8u64 {
        let base = 1000 + round * 100;
        let mut held = Vec::new();
        for seed in base..base + 8 {
            line(&w, &w.wld, seed, "15000").await;
            held.push(st(&place(&w, store, order_of(&format!("R{round}-{seed}"), seed, 10_000)).await["id"]));
        }
        for seed in base + 10..base + 26 {
            line(&w, &w.wld, seed, "15000").await;
        }
        assert_eq!(exposure_used(app, "bk-1").await, 8_000_000);
        let cut_first = round % 2 == 0;
        if cut_first {
            patch(app, "/v1/admin/banks/bk-1", json!({"exposure_limit": "50000"})).await.expect(200);
        }
        let cut = async {
            if !cut_first {
                patch(app, "/v1/admin/banks/bk-1", json!({"exposure_limit": "50000"})).await.expect(200);
            }
        };
        let cancels = futures_util::future::join_all(held[..4].iter().map(|id| cancel(app, store, id)));
        let orders = futures_util::future::join_all(
            (base + 10..base + 26).map(|seed| app.post(store, "/v1/orders", order(&format!("X{round}-{seed}"), seed))),
        );
        let ((), cancels, orders) =
            tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(cut, cancels, orders) }).await.expect("no deadlock");
        cancels.into_iter().for_each(|r| assert_eq!(r.status, 200, "{}", r.body));
        for r in orders.iter().filter(|r| r.status != 201) {
            err(r, 422, "no_funding_bank", None);
        }
        let used = exposure_used(app, "bk-1").await;
        let db = app.db().await;
        let at_cut: Option<i64> = db.query_one("SELECT exposure_at_cut_fen FROM banks WHERE id = 'bk-1'", &[]).await.unwrap().get(0);
        let allowed = if cut_first { 5_000_000 } else { 5_000_000.max(at_cut.unwrap_or(0)) };
        assert!(used <= allowed, "round {round}: {used} in use, limit 50000.00, {at_cut:?} at the cut");
        verify_ok(app).await;
        // Reset for the next round: every order awaiting funding cancelled, the limit restored.
        let open = app.get(store, "/v1/orders?status=awaiting_funding&limit=200").await.expect(200);
        for id in ids(&open) {
            cancel(app, store, &id).await.expect(200);
        }
        assert_eq!(exposure_used(app, "bk-1").await, 0);
        patch(app, "/v1/admin/banks/bk-1", json!({"exposure_limit": "100000"})).await.expect(200);
    }
}

#[actix_web::test]
async fn concurrent_requests_with_one_idempotency_key_place_one_order() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let l = line(&w, &w.wld, 50, "100000").await;
    let body = order("K-1", 50);
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all((0..20).map(|_| app.post_idem(&w.store, "/v1/orders", body.clone(), "same-key"))),
    )
    .await
    .expect("every request answers");
    let mut originals = 0;
    let mut first: Option<&Value> = None;
    for r in &answers {
        match r.status {
            201 => {
                if r.header("idempotent-replayed").is_none() {
                    originals += 1;
                }
                match first {
                    Some(f) => assert_eq!(&r.body, f, "every 201 is the same order"),
                    None => first = Some(&r.body),
                }
            }
            409 => err(r, 409, "idempotency_key_in_use", None),
            _ => panic!("unexpected answer {} {}", r.status, r.body),
        }
    }
    assert_eq!(originals, 1);
    assert_eq!(count(app, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(count(app, "SELECT count(*) FROM holds").await, 1);
    assert_eq!(st(&admin_line(app, &st(&l["id"])).await["held"]), HOLD);
    let r = app.post_idem(&w.store, "/v1/orders", body, "same-key").await;
    assert_eq!((r.status, r.header("idempotent-replayed")), (201, Some("true")));
    verify_ok(app).await;
}

// ---------- 5. golden vectors end to end ----------

#[actix_web::test]
async fn golden_vectors_through_quote_order_funding_and_plan() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/schedules.json")).expect("vectors");
    let vectors: Vec<Value> = serde_json::from_str(&text).expect("vectors json");
    assert!(vectors.len() >= 7);
    line(&w, &w.wld, 60, "1000000").await;
    for (i, v) in vectors.iter().enumerate() {
        let months = v["term_months"].as_u64().expect("months");
        let pid = format!("gv-{i}");
        app.admin_post(
            "/v1/admin/products",
            json!({"id": pid, "name": "golden", "pricing": v["pricing"], "terms": [{"months": months, "rate": v["rate"]}],
                   "providers": ["wld"], "regions": ["44"], "min_principal": "1", "max_principal": "20000", "hold_ratio": v["hold_ratio"]}),
        )
        .await
        .expect(201);
        let ctx = format!("vector {i} ({} {} {} months)", v["pricing"], v["rate"], months);
        // The quote, due dates from today.
        let q = app
            .client(&w.store)
            .quote(json!({"product_id": pid, "term_months": months, "device_price": v["principal"], "down_payment": "0"}))
            .await
            .expect(200);
        for k in ["principal", "apr_irr", "hold_amount", "total_repayable", "pricing", "product_id", "term_months"] {
            assert_eq!(q[k], if k == "product_id" { json!(pid) } else { v[k].clone() }, "{ctx}: quote {k}");
        }
        let rate = |x: &Value| st(x).parse::<rust_decimal::Decimal>().expect("a decimal rate");
        assert_eq!(rate(&q["rate"]), rate(&v["rate"]), "{ctx}: quote rate");
        let (qi, vi) = (q["installments"].as_array().expect("installments"), v["installments"].as_array().expect("installments"));
        assert_eq!(qi.len(), vi.len(), "{ctx}");
        for (a, b) in qi.iter().zip(vi) {
            for k in ["seq", "principal", "interest", "fee", "total"] {
                assert_eq!(a[k], b[k], "{ctx}: quote installment {} {k}", b["seq"]);
            }
            let seq = b["seq"].as_u64().expect("seq") as u32;
            assert_eq!(a["due_on"], json!(add_months_clamped(today(), seq).to_string()), "{ctx}");
        }
        // The order and its hold.
        let body = json!({"out_order_no": format!("GV-{i}"), "product_id": pid, "term_months": months,
                          "customer": {"id_number": id_number(60), "phone": phone(60)},
                          "device": {"sku": "gv", "imei": imei(60 + i as u64), "price": v["principal"]}, "down_payment": "0"});
        // Placed and funded on the vector's date: the service's today is that date.
        let funded_on: NaiveDate = st(&v["funded_on"]).parse().expect("date");
        app.set_today(&funded_on.to_string());
        let o = place(&w, &w.store, body).await;
        assert_eq!((&o["principal"], &o["apr_irr"], &o["hold"]["amount"]), (&v["principal"], &v["apr_irr"], &v["hold_amount"]), "{ctx}");
        let order_id = st(&o["id"]);
        let f = app
            .post(
                &bank,
                &format!("/v1/orders/{order_id}/funding"),
                json!({"decision": "approved", "loan_no": format!("GV-L{i}"), "funded_on": funded_on.to_string()}),
            )
            .await
            .expect(200);
        app.clock.reset();
        let plan_id = st(&f["plan"]["id"]);
        let plan = app.get(&bank, &format!("/v1/plans/{plan_id}")).await.expect(200);
        for (k, want) in [
            ("principal", &v["principal"]),
            ("apr_irr", &v["apr_irr"]),
            ("funded_on", &v["funded_on"]),
            ("pricing", &v["pricing"]),
            ("term_months", &v["term_months"]),
            ("status", &json!("active")),
            ("outstanding_principal", &v["principal"]),
        ] {
            assert_eq!(&plan[k], want, "{ctx}: plan {k}");
        }
        let pi = plan["installments"].as_array().expect("installments");
        assert_eq!(pi.len(), vi.len(), "{ctx}");
        for (a, b) in pi.iter().zip(vi) {
            for k in ["seq", "due_on", "principal", "interest", "fee"] {
                assert_eq!(a[k], b[k], "{ctx}: plan installment {} {k}", b["seq"]);
            }
            let total = fen(&st(&a["principal"])) + fen(&st(&a["interest"])) + fen(&st(&a["fee"]));
            assert_eq!(total, fen(&st(&b["total"])), "{ctx}: installment {} total", b["seq"]);
            assert_eq!((st(&a["status"]), st(&a["penalty"]), st(&a["paid_principal"])), ("pending".into(), "0.00".into(), "0.00".into()));
        }
        assert_eq!(f["plan"], plan, "{ctx}: the order shows the same plan");
    }
    verify_ok(app).await;
}

// ---------- 6. the borrower and personal data ----------

#[actix_web::test]
async fn borrower_in_clear_for_the_bank_only_audited_and_nowhere_else() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    let bank_b = w.key("bk-b");
    let seed = 42_424_242;
    let (idn, ph, im, name) = (id_number(seed), phone(seed), imei(seed), "欧阳测试名");
    let mut answers: Vec<String> = Vec::new();
    let mut keep = |r: &Resp| answers.push(r.body.to_string());

    let r = app
        .post(
            &w.wld,
            "/v1/credit-lines",
            json!({"customer": {"id_number": idn, "phone": ph, "name": name}, "limit": "20000", "expires_on": FAR}),
        )
        .await;
    keep(&r);
    let l = r.expect(201);
    assert_eq!(
        l["customer"],
        json!({"id_number_masked": format!("{}********{}", &idn[..6], &idn[14..]), "phone_masked": format!("{}****{}", &ph[..3], &ph[7..])})
    );
    let mut body = order("PII-1", seed);
    body["customer"]["name"] = json!(name);
    let r = app.post(&w.store, "/v1/orders", body.clone()).await;
    keep(&r);
    let o = r.expect(201);
    assert_eq!(o["device"]["imei_masked"], json!(format!("{}*****{}", &im[..6], &im[11..])));
    let oid = st(&o["id"]);
    // A refusal carrying the same customer.
    let r =
        app.post(&w.store, "/v1/orders", with(&with(&body, "out_order_no", Some(json!("PII-2"))), "product_id", Some(json!("nope")))).await;
    err(&r, 422, "unknown_reference", Some("product_id"));
    keep(&r);
    let r = app
        .post(&w.store, "/v1/orders", with(&with(&body, "out_order_no", Some(json!("PII-3"))), "device.price", Some(json!("400"))))
        .await;
    err(&r, 422, "principal_out_of_range", Some("down_payment"));
    keep(&r);

    // Only the order's bank reads the borrower; every read is audited.
    let path = format!("/v1/orders/{oid}/borrower");
    for _ in 0..2 {
        let r = app.get(&bank, &path).await;
        assert_eq!(r.clone().expect(200), json!({"id_number": idn, "phone": ph, "name": name}));
    }
    let read = app.get(&bank, &path).await;
    let read_request = read.header("x-request-id").expect("request id").to_string();
    err(&app.get(&bank_b, &path).await, 404, "not_found", None);
    err(&app.get(&bank, "/v1/orders/ord_missing/borrower").await, 404, "not_found", None);
    for key in [&w.store, &w.store_b, &w.wld, &w.partner, &app.admin_key.clone()] {
        err(&app.get(key, &path).await, 403, "forbidden", None);
    }
    let log = app.admin_get("/v1/admin/audit-log").await.expect(200);
    let rows = log["data"].as_array().expect("data");
    assert_eq!(rows.len(), 3, "one row per successful read: {log}");
    for r in rows {
        assert_eq!((st(&r["actor"]), st(&r["action"]), st(&r["object_id"])), ("bank:bk-a".into(), "borrower.read".into(), oid.clone()));
    }
    assert_eq!(rows[2]["request_id"], json!(read_request));
    err(&app.get(&bank, "/v1/admin/audit-log").await, 403, "forbidden", None);

    // Funded, cancelled elsewhere, read back through every endpoint: masked forms only.
    let f = app
        .post(
            &bank,
            &format!("/v1/orders/{oid}/funding"),
            json!({"decision": "approved", "loan_no": "PII-L", "funded_on": today().to_string()}),
        )
        .await;
    keep(&f);
    let plan_id = st(&f.body["plan"]["id"]);
    for (key, p) in [
        (&w.store, format!("/v1/orders/{oid}")),
        (&bank, format!("/v1/orders/{oid}")),
        (&w.store, "/v1/orders".to_string()),
        (&bank, "/v1/orders".to_string()),
        (&w.wld, format!("/v1/credit-lines/{}", st(&l["id"]))),
        (&w.wld, format!("/v1/holds/{}", st(&o["hold"]["id"]))),
        (&bank, format!("/v1/plans/{plan_id}")),
        (&bank, "/v1/notices".to_string()),
        (&w.wld, "/v1/notices".to_string()),
        (&w.store, "/v1/notices".to_string()),
        (&app.admin_key.clone(), "/v1/notices".to_string()),
        (&app.admin_key.clone(), "/v1/admin/audit-log".to_string()),
    ] {
        let r = app.get(key, &p).await;
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        keep(&r);
    }
    let r = app.post_idem(&w.store, "/v1/orders", body.clone(), "pii-replay").await;
    keep(&r);
    let r = app.post_idem(&w.store, "/v1/orders", body.clone(), "pii-replay").await;
    keep(&r);
    let bodies = answers.join("\n");
    for raw in [&idn, &ph, &im, &name.to_string()] {
        assert!(!bodies.contains(raw.as_str()), "{raw} appears in an answer");
    }
    assert!(bodies.contains(&format!("{}********{}", &idn[..6], &idn[14..])), "the masked form is shown");

    // No column of any table holds them unencrypted.
    let db = app.db().await;
    let columns = db
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'bytea')",
            &[],
        )
        .await
        .expect("columns");
    assert!(columns.len() > 30, "every text column is searched");
    let mut found_masked = 0;
    for c in &columns {
        let (t, col, ty): (String, String, String) = (c.get(0), c.get(1), c.get(2));
        let expr = if ty == "bytea" {
            format!("position(convert_to($1, 'UTF8') in \"{col}\") > 0")
        } else {
            format!("strpos(\"{col}\"::text, $1) > 0")
        };
        for raw in [idn.as_str(), ph.as_str(), im.as_str(), name, &idn[6..14]] {
            let n: i64 = db.query_one(&format!("SELECT count(*) FROM \"{t}\" WHERE {expr}"), &[&raw]).await.expect("scan").get(0);
            assert_eq!(n, 0, "{raw} found unencrypted in {t}.{col}");
        }
        let masked = format!("{}********{}", &idn[..6], &idn[14..]);
        if ty != "bytea" {
            let n: i64 = db
                .query_one(&format!("SELECT count(*) FROM \"{t}\" WHERE strpos(\"{col}\"::text, $1) > 0"), &[&masked])
                .await
                .expect("scan")
                .get(0);
            found_masked += n;
        }
    }
    assert!(found_masked >= 1, "the scan finds what is there (the masked form)");
    verify_ok(app).await;
}

// ---------- 7. ledger verification ----------

/// `creditphone verify` on the test's database: its exit code and its output (stdout, then stderr).
async fn cli_verify(app: &TestApp) -> (i32, String) {
    // Run where cargo runs tests, as before; verify writes nothing there.
    let verify = ServeBinary::new(env!("CARGO_MANIFEST_DIR")).database_url(&cluster_url(&app.pg)).log_level("warn");
    let out =
        tokio::task::spawn_blocking(move || verify.command(&["verify"]).output()).await.expect("join").expect("run creditphone verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

fn has_violation(report: &Value, rule: &str, object_id: &str) -> bool {
    report["violations"].as_array().expect("violations").iter().any(|v| v["rule"] == json!(rule) && v["object_id"] == json!(object_id))
}

#[actix_web::test]
async fn ledger_verify_reports_corruption_by_rule_and_object() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    let l = line(&w, &w.wld, 70, "50000").await;
    let line_id = st(&l["id"]);
    let o1 = place(&w, &w.store, order("V-1", 70)).await;
    let o2 = place(&w, &w.store, order("V-2", 70)).await;
    let o3 = place(&w, &w.store, order("V-3", 70)).await;
    place(&w, &w.store, order("V-4", 70)).await;
    app.post(
        &bank,
        &format!("/v1/orders/{}/funding", st(&o1["id"])),
        json!({"decision": "approved", "loan_no": "V-L1", "funded_on": today().to_string()}),
    )
    .await
    .expect(200);
    app.post(&w.store, &format!("/v1/orders/{}/cancel", st(&o2["id"])), json!({})).await.expect(200);
    app.post(&bank, &format!("/v1/orders/{}/funding", st(&o3["id"])), json!({"decision": "rejected", "reason": "no"})).await.expect(200);
    err(&app.post(&w.store, "/v1/orders", order("V-5", 71)).await, 422, "no_matching_credit_line", None);

    let v = verify_ok(app).await;
    assert_eq!(v["checked"]["credit_lines"], json!(1));
    assert_eq!(v["checked"]["holds"], json!(4));
    assert_eq!(v["checked"]["plans"], json!(1));
    assert_eq!(v["checked"]["installments"], json!(12));
    assert!(v["checked"]["journal_entries"].as_i64().expect("count") >= 1 + 4 * 2 + 1 + 2 * 2);
    let (code, out) = cli_verify(app).await;
    assert_eq!(code, 0, "creditphone verify on a clean ledger: {out}");
    err(&app.get(&w.store, "/v1/admin/ledger/verify").await, 403, "forbidden", None);

    let db = app.db().await;
    db.execute("UPDATE credit_lines SET held_fen = held_fen + 1 WHERE id = $1", &[&line_id]).await.expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(v["ok"], json!(false), "{v}");
    assert!(has_violation(&v, "credit_line_held_journal", &line_id), "{v}");
    assert!(has_violation(&v, "credit_line_held_equals_holds", &line_id), "{v}");
    let (code, out) = cli_verify(app).await;
    assert_eq!(code, 1, "creditphone verify on a corrupted ledger: {out}");
    assert!(out.contains("credit_line_held_journal") && out.contains(&line_id), "{out}");
    db.execute("UPDATE credit_lines SET held_fen = held_fen - 1 WHERE id = $1", &[&line_id]).await.expect("repair");
    verify_ok(app).await;

    let hold_id = st(&o1["hold"]["id"]);
    db.execute("UPDATE holds SET remaining_fen = remaining_fen - 1, released_fen = released_fen + 1 WHERE id = $1", &[&hold_id])
        .await
        .expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(v["ok"], json!(false));
    assert!(has_violation(&v, "hold_remaining_journal", &hold_id), "{v}");
    assert!(has_violation(&v, "hold_released_journal", &hold_id), "{v}");
    db.execute("UPDATE holds SET remaining_fen = remaining_fen + 1, released_fen = released_fen - 1 WHERE id = $1", &[&hold_id])
        .await
        .expect("repair");

    db.execute("UPDATE bank_exposure_stripes SET used_fen = used_fen + 1 WHERE bank_id = 'bk-a' AND stripe = 0", &[])
        .await
        .expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "bank_exposure_matches_book", "bk-a#0") && has_violation(&v, "bank_exposure_journal", "bk-a"), "{v}");
    db.execute("UPDATE bank_exposure_stripes SET used_fen = used_fen - 1 WHERE bank_id = 'bk-a' AND stripe = 0", &[])
        .await
        .expect("repair");
    db.execute("UPDATE bank_exposure_stripes SET limit_fen = limit_fen + 1 WHERE bank_id = 'bk-a' AND stripe = 1", &[])
        .await
        .expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "bank_stripes_add_up", "bk-a"), "{v}");
    db.execute("UPDATE bank_exposure_stripes SET limit_fen = limit_fen - 1 WHERE bank_id = 'bk-a' AND stripe = 1", &[])
        .await
        .expect("repair");

    let entry: i64 = db.query_one("SELECT min(id) FROM journal_entries", &[]).await.expect("entry").get(0);
    db.execute("INSERT INTO journal_lines (entry_id, account, amount_fen) VALUES ($1, 'test:x', 5)", &[&entry]).await.expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "journal_entry_balanced", &entry.to_string()), "{v}");
    db.execute("DELETE FROM journal_lines WHERE account = 'test:x'", &[]).await.expect("repair");

    // References kept by the service and checked here (sql/V7__lean_order_writes.sql).
    let order_id = st(&o1["id"]);
    db.execute("UPDATE orders SET bank_id = 'no-such-bank' WHERE id = $1", &[&order_id]).await.expect("corrupt");
    db.execute("UPDATE holds SET provider_id = 'no-such-provider' WHERE id = $1", &[&hold_id]).await.expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "order_references_exist", &order_id), "{v}");
    assert!(has_violation(&v, "hold_references_exist", &hold_id), "{v}");
    db.execute("UPDATE orders SET bank_id = $2 WHERE id = $1", &[&order_id, &st(&o1["bank_id"])]).await.expect("repair");
    db.execute("UPDATE holds SET provider_id = $2 WHERE id = $1", &[&hold_id, &st(&o1["hold"]["provider_id"])]).await.expect("repair");
    verify_ok(app).await;

    let plan_id = db.query_one("SELECT id FROM plans", &[]).await.expect("plan").get::<_, String>(0);
    db.execute("UPDATE installments SET principal_fen = principal_fen + 1 WHERE plan_id = $1 AND seq = 1", &[&plan_id])
        .await
        .expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "plan_principal_adds_up", &plan_id), "{v}");
    db.execute("UPDATE installments SET principal_fen = principal_fen - 1 WHERE plan_id = $1 AND seq = 1", &[&plan_id])
        .await
        .expect("repair");
    verify_ok(app).await;

    // What the aging relies on (sql/V36): the bank kept with each plan's open principal is the
    // plan's, and a plan that is not open has no open installment.
    db.execute("UPDATE plan_open_principal SET bank_id = 'no-such-bank' WHERE plan_id = $1", &[&plan_id]).await.expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "plan_open_principal_kept", &plan_id), "{v}");
    db.execute("UPDATE plan_open_principal o SET bank_id = p.bank_id FROM plans p WHERE p.id = o.plan_id", &[]).await.expect("repair");
    db.execute("UPDATE plans SET status = 'settled' WHERE id = $1", &[&plan_id]).await.expect("corrupt");
    let v = app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert!(has_violation(&v, "closed_plan_has_no_open_installment", &plan_id), "{v}");
    db.execute("UPDATE plans SET status = 'active' WHERE id = $1", &[&plan_id]).await.expect("repair");
    verify_ok(app).await;
    let (code, out) = cli_verify(app).await;
    assert_eq!(code, 0, "{out}");
}

// ---------- 8. idempotent replays ----------

#[actix_web::test]
async fn placement_cancel_and_funding_replay_their_stored_answers() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    line(&w, &w.wld, 80, "100000").await;

    #[track_caller]
    fn replayed(first: &Resp, again: &Resp) {
        assert_eq!((again.status, again.header("idempotent-replayed")), (first.status, Some("true")), "{}", again.body);
        assert_eq!(again.body, first.body, "the stored answer");
        assert_eq!(again.header("x-request-id"), first.header("x-request-id"), "the original request id");
        assert!(first.header("idempotent-replayed").is_none());
    }

    // Placement.
    let first = app.post_idem(&w.store, "/v1/orders", order("R-1", 80), "place-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    replayed(&first, &app.post_idem(&w.store, "/v1/orders", order("R-1", 80), "place-1").await);
    err(&app.post_idem(&w.store, "/v1/orders", order("R-1b", 80), "place-1").await, 422, "idempotency_key_reused", Some("Idempotency-Key"));
    // The same key from another store is another request.
    assert_eq!(app.post_idem(&w.store_b, "/v1/orders", order("R-1", 80), "place-1").await.status, 201);
    assert_eq!(count(app, "SELECT count(*) FROM orders").await, 2);

    // A business refusal is replayed even once the cause is gone.
    let refused = app.post_idem(&w.store, "/v1/orders", order("R-2", 81), "place-2").await;
    err(&refused, 422, "no_matching_credit_line", None);
    line(&w, &w.wld, 81, "100000").await;
    replayed(&refused, &app.post_idem(&w.store, "/v1/orders", order("R-2", 81), "place-2").await);
    assert_eq!(app.post_idem(&w.store, "/v1/orders", order("R-2", 81), "place-2b").await.status, 201);
    // Invalid requests are not stored: the key is still free.
    err(
        &app.post_idem(&w.store, "/v1/orders", with(&order("R-3", 81), "down_payment", Some(json!(1))), "place-3").await,
        422,
        "invalid_amount",
        Some("down_payment"),
    );
    let ok = app.post_idem(&w.store, "/v1/orders", order("R-3", 81), "place-3").await;
    assert_eq!(ok.status, 201);
    // An already_exists refusal is stored too.
    let dup = app.post_idem(&w.store, "/v1/orders", order("R-3", 81), "place-4").await;
    err(&dup, 409, "already_exists", Some("out_order_no"));
    replayed(&dup, &app.post_idem(&w.store, "/v1/orders", order("R-3", 81), "place-4").await);

    // Cancel.
    let oid = st(&first.body["id"]);
    let cancel = format!("/v1/orders/{oid}/cancel");
    let c = app.post_idem(&w.store, &cancel, json!({"reason": "r"}), "cancel-1").await;
    assert_eq!((c.status, c.body["status"].clone()), (200, json!("cancelled")));
    replayed(&c, &app.post_idem(&w.store, &cancel, json!({"reason": "r"}), "cancel-1").await);
    err(&app.post_idem(&w.store, &cancel, json!({"reason": "r"}), "cancel-2").await, 409, "invalid_state", None);
    let again = app.post_idem(&w.store, &cancel, json!({"reason": "r"}), "cancel-2").await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (409, Some("true")));
    assert_eq!(count(app, &format!("SELECT count(*) FROM journal_entries WHERE order_id = '{oid}' AND kind = 'hold.voided'")).await, 1);

    // Funding.
    let oid = st(&ok.body["id"]);
    let funding = format!("/v1/orders/{oid}/funding");
    let body = json!({"decision": "approved", "loan_no": "R-L1", "funded_on": today().to_string()});
    let early = json!({"decision": "approved", "loan_no": "R-L1", "funded_on": days_from_today(-1)});
    let refused = app.post_idem(&bank, &funding, early.clone(), "fund-0").await;
    err(&refused, 422, "invalid_date", Some("funded_on"));
    replayed(&refused, &app.post_idem(&bank, &funding, early, "fund-0").await);
    let f = app.post_idem(&bank, &funding, body.clone(), "fund-1").await;
    assert_eq!((f.status, f.body["status"].clone()), (200, json!("active")));
    replayed(&f, &app.post_idem(&bank, &funding, body.clone(), "fund-1").await);
    err(
        &app.post_idem(&bank, &funding, with(&body, "loan_no", Some(json!("R-L2"))), "fund-1").await,
        422,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    );
    err(&app.post_idem(&bank, &funding, body.clone(), "fund-2").await, 409, "already_exists", Some("loan_no"));
    assert_eq!(count(app, "SELECT count(*) FROM plans").await, 1);
    verify_ok(app).await;
}

/// API.md §1: `null` counts as absent, so a retry that writes `"consent": null` (or any optional
/// field as null) is the same request as one that leaves it out, and replays its answer.
#[actix_web::test]
async fn null_and_absent_optional_fields_are_the_same_request_for_idempotency() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    line(&w, &w.wld, 90, "100000").await;
    let absent = with(&order("NULL-1", 90), "customer.name", None);
    let nulls = with(&with(&absent, "consent", Some(Value::Null)), "customer.name", Some(Value::Null));
    for (first, retry, key) in [(&absent, &nulls, "null-a"), (&nulls, &absent, "null-b")] {
        let first_body = with(first, "out_order_no", Some(json!(key)));
        let retry_body = with(retry, "out_order_no", Some(json!(key)));
        let placed = app.post_idem(&w.store, "/v1/orders", first_body, key).await;
        assert_eq!(placed.status, 201, "{}", placed.body);
        let again = app.post_idem(&w.store, "/v1/orders", retry_body, key).await;
        assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")), "{}", again.body);
        assert_eq!(again.body, placed.body, "the stored answer");
        // Cancel: `{}` and `{"reason": null}` are one request too.
        let cancel = format!("/v1/orders/{}/cancel", st(&placed.body["id"]));
        let c = app.post_idem(&w.store, &cancel, json!({}), &format!("{key}-c")).await.expect(200);
        let again = app.post_idem(&w.store, &cancel, json!({"reason": null}), &format!("{key}-c")).await;
        assert_eq!((again.status, again.header("idempotent-replayed"), &again.body), (200, Some("true"), &c));
    }
    // A value that is not null is still another request.
    let other =
        with(&with(&absent, "out_order_no", Some(json!("null-a"))), "consent", Some(json!({"method": "sms_otp", "reference": "r"})));
    err(&app.post_idem(&w.store, "/v1/orders", other, "null-a").await, 422, "idempotency_key_reused", Some("Idempotency-Key"));
    assert_eq!(count(app, "SELECT count(*) FROM orders").await, 2);
}

/// The error object of a refusal without its request id, to compare refusals with each other.
fn refusal(r: &Resp) -> Value {
    let mut e = r.body["error"].clone();
    e.as_object_mut().expect("an error object").remove("request_id");
    e
}

/// API.md §4: a line matches only the phone its provider last registered, and a refusal says
/// nothing of the line: the ID number alone freezes no one's credit, and no refusal tells a
/// missing line from a wrong phone, a frozen or short line or one that expires too early.
#[actix_web::test]
async fn a_line_matches_only_its_registered_phone_and_every_refusal_looks_the_same() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let phone_of = |body: Value, seed: u64| with(&body, "customer.phone", Some(json!(phone(seed))));
    let must_run_until = add_months_clamped(deadline_date_now(), 12);
    // 501 fine (phone 501); 502 frozen; 503 expires a day too early; 504 one fen short; 500 no line.
    let l501 = line(&w, &w.wld, 501, "10000").await;
    app.post(&w.wld, "/v1/credit-lines", with(&line_body(502, "10000", FAR), "status", Some(json!("frozen")))).await.expect(201);
    app.post(&w.wld, "/v1/credit-lines", line_body(503, "10000", &(must_run_until - chrono::Duration::days(1)).to_string()))
        .await
        .expect(201);
    line(&w, &w.wld, 504, "3300.45").await;
    let before = snapshot(app).await;

    let refusals = [
        po(app, &w.store, order("PH-0", 500)).await,
        po(app, &w.store, phone_of(order("PH-1", 501), 9501)).await,
        po(app, &w.partner, phone_of(partner_order("PH-2", 501, "440305"), 9501)).await,
        po(app, &w.store, order("PH-3", 502)).await,
        po(app, &w.store, order("PH-4", 503)).await,
        po(app, &w.store, order("PH-5", 504)).await,
    ];
    for r in &refusals {
        err(r, 422, "no_matching_credit_line", None);
        assert_eq!(refusal(r), refusal(&refusals[0]), "every refusal is the same answer");
    }
    assert_eq!(snapshot(app).await, before, "a wrong phone holds nothing on the customer's line");
    assert_eq!(st(&admin_line(app, &st(&l501["id"])).await["held"]), "0.00");

    // A line registered with another phone is passed over for the next provider's.
    line(&w, &w.huabei, 505, "10000").await;
    app.post(&w.wld, "/v1/credit-lines", with(&line_body(505, "10000", FAR), "customer.phone", Some(json!(phone(9505))))).await.expect(201);
    assert_eq!(place(&w, &w.store, order("PH-6", 505)).await["hold"]["provider_id"], json!("huabei"));
    assert_eq!(place(&w, &w.store, phone_of(order("PH-7", 505), 9505)).await["hold"]["provider_id"], json!("wld"));
    // The phone the provider last registered counts: after a re-registration, the old one no longer does.
    app.post(&w.wld, "/v1/credit-lines", phone_of(line_body(501, "10000", FAR), 9501)).await.expect(200);
    err(&po(app, &w.store, order("PH-8", 501)).await, 422, "no_matching_credit_line", None);
    let o = place(&w, &w.store, phone_of(order("PH-9", 501), 9501)).await;
    assert_eq!(o["hold"]["credit_line_id"], l501["id"]);
    verify_ok(app).await;
}

/// `creditphone_order_probe_suspected_total` from `/metrics` (0 while absent).
async fn probes_suspected(app: &TestApp) -> u64 {
    let text = app.get_without_key("/metrics").await.body.as_str().expect("metrics text").to_string();
    let line = text.lines().find(|l| l.starts_with("creditphone_order_probe_suspected_total "));
    line.map_or(0, |l| l.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a counter value"))
}

/// Placing then cancelling at bisected prices reads a line's available credit: one seller's third
/// cancellation against one customer within 24 hours is counted (and logged), and each after it.
#[actix_web::test]
async fn a_seller_placing_and_cancelling_repeatedly_against_one_customer_is_counted_as_probing() {
    let w = world(&std_banks()).await;
    let app = &w.app;
    let bank = w.key("bk-a");
    line(&w, &w.wld, 600, "100000").await;
    line(&w, &w.huabei, 600, "100000").await;
    line(&w, &w.wld, 601, "100000").await;
    let cancel = async |key: &str, no: &str, seed: u64| {
        let o = place(&w, key, order(no, seed)).await;
        app.post(key, &format!("/v1/orders/{}/cancel", st(&o["id"])), json!({})).await.expect(200);
        st(&o["hold"]["provider_id"])
    };
    assert_eq!(probes_suspected(app).await, 0);
    cancel(&w.store, "PB-1", 600).await;
    cancel(&w.store, "PB-2", 600).await;
    // Not by this seller, not this customer, not a cancellation by the seller: none of these count.
    cancel(&w.store_b, "PB-3", 600).await;
    cancel(&w.store, "PB-4", 601).await;
    cancel(&w.store, "PB-5", 601).await;
    let o = place(&w, &w.store, order("PB-6", 600)).await;
    app.post(&app.admin_key, &format!("/v1/orders/{}/cancel", st(&o["id"])), json!({})).await.expect(200);
    let o = place(&w, &w.store, order("PB-7", 600)).await;
    app.post(&bank, &format!("/v1/orders/{}/funding", st(&o["id"])), json!({"decision": "rejected", "reason": "r"})).await.expect(200);
    assert_eq!(probes_suspected(app).await, 0, "two cancellations per seller and customer are not a probe");
    // The third, on whichever of the customer's lines, and each after it.
    app.post(&w.wld, "/v1/credit-lines", with(&line_body(600, "100000", FAR), "status", Some(json!("frozen")))).await.expect(200);
    assert_eq!(cancel(&w.store, "PB-8", 600).await, "huabei");
    assert_eq!(probes_suspected(app).await, 1);
    cancel(&w.store, "PB-9", 600).await;
    assert_eq!(probes_suspected(app).await, 2);
    // Cancellations older than the window are forgotten.
    let db = app.db().await;
    db.execute("UPDATE orders SET updated_at = now() - interval '25 hours' WHERE status = 'cancelled'", &[]).await.expect("age them");
    cancel(&w.store, "PB-10", 600).await;
    cancel(&w.store, "PB-11", 600).await;
    assert_eq!(probes_suspected(app).await, 2);
    verify_ok(app).await;
}

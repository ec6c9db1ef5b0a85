//! The operations API (API.md §16) against a world built through the API: the portfolio's
//! numbers, the aging and its snapshots, the end-of-day run history, search and bulk
//! redelivery, each with its bad input and the 403 of non-admins.

mod common;

use common::world::{World, order_body, return_body};
use common::{Client, Resp, TestApp};
use creditphone::domain::eod_run::EodTrigger;
use serde_json::{Value, json};

/// The standard world with 30 grace days (an overdue installment stays unconverted for a month,
/// so that the aging has something past due), its callers by name.
struct Ops {
    app: TestApp,
    world: World,
}

impl Ops {
    async fn new(spec: common::world::WorldSpec) -> Ops {
        let app = TestApp::start().await;
        let world = spec.build(&app).await;
        Ops { app, world }
    }

    async fn standard() -> Ops {
        Ops::new(World::standard().product_extra(json!({"grace_days": 30}))).await
    }

    fn admin(&self) -> &Client {
        &self.world.admin
    }

    /// An order of principal 3000.00 placed on `date`.
    async fn order_on(&self, n: u64, date: &str) -> Value {
        self.app.set_today(date);
        let order = self.world.store().place_order(order_body(&format!("POS-{n}"), "p12", 7, n)).await.expect(201);
        self.app.clock.reset();
        order
    }

    /// An order placed and funded on `date` (loan `L<n>`): answers the funded order.
    async fn funded_on(&self, n: u64, date: &str) -> Value {
        let order = self.order_on(n, date).await;
        self.app.set_today(date);
        let funded = self.world.bank().fund(order["id"].as_str().unwrap(), &format!("L{n}"), date).await.expect(200);
        self.app.clock.reset();
        funded
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("a string: {v}"))
}

/// Every non-admin key of the world is refused.
async fn refused_to_others(o: &Ops, method: &str, path: &str, body: Option<Value>) {
    for who in ["st", "bk", "wld"] {
        let r = o.world.key(who).call(method, path, body.as_ref(), None).await;
        r.expect_err(403, "forbidden");
    }
}

// ---------- portfolio ----------

#[actix_web::test]
async fn the_portfolio_sums_each_bank_and_provider_from_the_book() {
    let o = Ops::new(
        World::standard()
            .product_extra(json!({"grace_days": 30}))
            .bank("bk2", json!({"priority": 2, "exposure_limit": "500000"}))
            .provider("hb", json!({"name": "花呗"})),
    )
    .await;
    o.funded_on(1, "2027-01-31").await;
    o.funded_on(2, "2027-01-31").await;
    o.order_on(3, "2027-01-31").await;
    // A repayment of installment 1 of plan 1 lowers its outstanding principal by 230.04 (§13's worked example).
    let plan1 = o.world.bank().order(s(&o.world.bank().get("/v1/orders?limit=200").await.expect(200)["data"][2]["id"])).await.expect(200);
    o.world.bank().repay(s(&plan1["plan"]["id"]), "275.04", "2027-02-28", "R1").await.expect(201);

    let p = o.admin().get("/v1/admin/portfolio").await.expect(200);
    let line = o.world.provider().line(o.world.line()).await.expect(200);
    let bank = &p["banks"][0];
    assert_eq!(p["banks"].as_array().unwrap().len(), 2, "{p}");
    assert_eq!(
        (s(&bank["bank_id"]), s(&bank["exposure_limit"]), s(&bank["exposure_used"]), s(&bank["outstanding_principal"])),
        ("bk", "10000000.00", "8769.96", "5769.96"),
        "three orders of 3000.00, one not funded, 230.04 repaid: {p}"
    );
    assert_eq!(bank["plans"], json!({"active": 2, "defaulted": 0, "written_off": 0}));
    assert_eq!(p["banks"][1]["exposure_used"], "0.00");
    let wld = &p["providers"][0];
    assert_eq!(
        (s(&wld["provider_id"]), wld["lines"].as_i64(), wld["holds_active"].as_i64(), s(&wld["held"]), s(&wld["drawn"])),
        ("wld", Some(1), Some(3), s(&line["held"]), s(&line["drawn"])),
        "{p}"
    );
    assert_eq!(wld["held_pending"], "0.00", "no pending holds before §12 lands");
    assert_eq!(
        p["providers"][1],
        json!({"provider_id": "hb", "lines": 0, "holds_active": 0, "held": "0.00", "held_pending": "0.00", "drawn": "0.00"})
    );
    let t = &p["totals"];
    assert_eq!(
        (s(&t["exposure_limit"]), s(&t["exposure_used"]), s(&t["outstanding_principal"]), t["lines"].as_i64(), t["holds_active"].as_i64()),
        ("10500000.00", "8769.96", "5769.96", Some(1), Some(3))
    );
    assert_eq!((s(&t["held"]), s(&t["held_pending"]), s(&t["drawn"])), (s(&line["held"]), "0.00", "0.00"));
    assert_eq!(t["plans"], json!({"active": 2, "defaulted": 0, "written_off": 0}));
    refused_to_others(&o, "GET", "/v1/admin/portfolio", None).await;
}

// ---------- aging ----------

/// Bucket `name` of an aging answer.
fn bucket<'a>(aging: &'a Value, name: &str) -> &'a Value {
    aging["buckets"].as_array().unwrap().iter().find(|b| b["bucket"] == name).unwrap_or_else(|| panic!("no bucket {name}: {aging}"))
}

#[actix_web::test]
async fn aging_buckets_plans_by_their_oldest_unpaid_installment() {
    let o = Ops::standard().await;
    let late = o.funded_on(1, "2027-01-31").await;
    o.funded_on(2, "2027-02-25").await;
    // Installment 1 of the first plan is due 2027-02-28; on 2027-03-20 it is 20 days past due.
    o.admin().eod("2027-03-20").await.expect(200);
    let aging = o.admin().get("/v1/admin/aging?as_of=2027-03-20").await.expect(200);
    let names: Vec<&str> = aging["buckets"].as_array().unwrap().iter().map(|b| s(&b["bucket"])).collect();
    assert_eq!(names, ["current", "1-30", "31-60", "61-90", "91-180", "181+"]);
    assert_eq!(aging["as_of"], "2027-03-20");
    let plan = o.world.bank().plan(s(&late["plan"]["id"])).await.expect(200);
    let first = &plan["installments"][0];
    let unpaid: f64 = ["principal", "interest", "fee", "penalty"].iter().map(|k| s(&first[*k]).parse::<f64>().unwrap()).sum();
    assert!(s(&first["penalty"]) != "0.00", "end of day accrued penalty: {first}");
    let past_due = bucket(&aging, "1-30");
    assert_eq!((past_due["plans"].as_i64(), s(&past_due["outstanding_principal"])), (Some(1), "3000.00"), "{aging}");
    assert_eq!(s(&past_due["unpaid_due"]), format!("{unpaid:.2}"), "installment 1 with its penalty: {aging}");
    // The second plan's first installment is due 2027-03-25: not past due.
    let current = bucket(&aging, "current");
    assert_eq!((current["plans"].as_i64(), s(&current["outstanding_principal"]), s(&current["unpaid_due"])), (Some(1), "3000.00", "0.00"));

    // An open date later on is computed now as of it (36 and 11 days past due); a bank filter; today when as_of is absent.
    let later = o.admin().get("/v1/admin/aging?as_of=2027-04-05").await.expect(200);
    assert_eq!((bucket(&later, "31-60")["plans"].as_i64(), bucket(&later, "1-30")["plans"].as_i64()), (Some(1), Some(1)), "{later}");
    let by_bank = o.admin().get("/v1/admin/aging?as_of=2027-04-05&bank_id=bk").await.expect(200);
    assert_eq!(by_bank["buckets"], later["buckets"]);
    let now = o.admin().get("/v1/admin/aging").await.expect(200);
    assert_eq!(now["as_of"], creditphone::domain::shanghai_date(chrono::Utc::now()).to_string());

    // Bad input, in the contract's codes; non-admins are refused.
    o.admin().get("/v1/admin/aging?bank_id=nobank").await.expect_err(422, "unknown_reference");
    o.admin().get("/v1/admin/aging?as_of=2027-02-30").await.expect_err(422, "invalid_date");
    o.admin().get("/v1/admin/aging?as_of=yesterday").await.expect_err(422, "invalid_date");
    o.admin().get("/v1/admin/aging?bank_id=NO!").await.expect_err(422, "invalid_request");
    refused_to_others(&o, "GET", "/v1/admin/aging", None).await;
}

#[actix_web::test]
async fn a_closed_dates_aging_never_changes() {
    let o = Ops::standard().await;
    let funded = o.funded_on(1, "2027-01-31").await;
    let plan = s(&funded["plan"]["id"]).to_string();
    o.admin().eod("2027-03-20").await.expect(200);
    let closed = o.admin().get("/v1/admin/aging?as_of=2027-03-20").await.expect(200);
    assert_eq!(bucket(&closed, "1-30")["plans"], 1, "{closed}");

    // The customer pays everything due, valued on the closed date: booked on the next open date.
    // Computed now, 2027-03-20 would read current; its snapshot keeps what end of day saw.
    let payoff = o.world.bank().payoff(&plan, "2027-03-20").await.expect(200);
    let first = &o.world.bank().plan(&plan).await.expect(200)["installments"][0];
    let due: f64 = ["principal", "interest", "fee", "penalty"].iter().map(|k| s(&first[*k]).parse::<f64>().unwrap()).sum();
    assert!(s(&payoff["amount"]).parse::<f64>().unwrap() > due);
    o.world.bank().repay(&plan, &format!("{due:.2}"), "2027-03-20", "R-late").await.expect(201);
    let open = o.admin().get("/v1/admin/aging?as_of=2027-03-21").await.expect(200);
    assert_eq!((bucket(&open, "current")["plans"].as_i64(), bucket(&open, "1-30")["plans"].as_i64()), (Some(1), Some(0)), "{open}");
    assert_eq!(o.admin().get("/v1/admin/aging?as_of=2027-03-20").await.expect(200), closed, "the snapshot answers");

    // The next run snapshots each date it closes, skipped ones included.
    o.admin().eod("2027-03-23").await.expect(200);
    let db = o.app.db().await;
    let dates: Vec<String> =
        db.query("SELECT business_date::text FROM aging_snapshots ORDER BY 1", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(dates, ["2027-03-20", "2027-03-21", "2027-03-22", "2027-03-23"]);
}

// ---------- end-of-day runs ----------

#[actix_web::test]
async fn every_end_of_day_run_is_listed_newest_first_with_its_trigger() {
    let o = Ops::standard().await;
    o.funded_on(1, "2027-01-31").await;
    let first = o.admin().eod("2027-03-20").await.expect(200);
    let rerun = o.admin().eod("2027-03-20").await.expect(200);
    o.admin().eod("2027-03-01").await.expect_err(409, "business_date_regression");
    let deps = &o.app.state.deps;
    let date = chrono::NaiveDate::from_ymd_opt(2027, 3, 21).unwrap();
    let by_cli = creditphone::service::eod::run(&deps.pool, &*deps.clock, date, true, 100, EodTrigger::Cli).await.unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2027, 3, 22).unwrap();
    creditphone::service::eod::run(&deps.pool, &*deps.clock, date, true, 100, EodTrigger::Schedule).await.unwrap();

    let runs = o.admin().all_pages("/v1/admin/eod-runs?limit=1").await;
    let seen: Vec<(&str, &str)> = runs.iter().map(|r| (s(&r["business_date"]), s(&r["trigger"]))).collect();
    assert_eq!(
        seen,
        [("2027-03-22", "schedule"), ("2027-03-21", "cli"), ("2027-03-20", "api"), ("2027-03-20", "api")],
        "refusals are not runs"
    );
    assert_eq!(runs[3]["summary"], first);
    assert_eq!(runs[2]["summary"], rerun);
    assert_eq!(runs[2]["summary"]["overdue_marked"], 0, "a rerun counts nothing");
    assert_eq!(runs[1]["summary"], serde_json::to_value(&by_cli).unwrap());
    for r in &runs {
        let (started, finished) = (s(&r["started_at"]), s(&r["finished_at"]));
        assert!(started.ends_with('Z') && finished >= started, "{r}");
        assert!(r["duration_ms"].as_i64().is_some_and(|d| d >= 0), "{r}");
    }
    let page = o.admin().get("/v1/admin/eod-runs").await.expect(200);
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    assert!(page["next_cursor"].is_null());

    o.admin().get("/v1/admin/eod-runs?limit=0").await.expect_err(422, "invalid_request");
    o.admin().get("/v1/admin/eod-runs?limit=201").await.expect_err(422, "invalid_request");
    o.admin().get("/v1/admin/eod-runs?cursor=nope").await.expect_err(422, "invalid_request");
    refused_to_others(&o, "GET", "/v1/admin/eod-runs", None).await;
}

// ---------- search ----------

fn found(r: Resp) -> Vec<String> {
    r.expect(200)["data"].as_array().unwrap().iter().map(|o| s(&o["id"]).to_string()).collect()
}

#[actix_web::test]
async fn search_finds_orders_by_business_number_or_any_engine_id() {
    let o = Ops::standard().await;
    let funded = o.funded_on(1, "2027-01-31").await;
    let other = o.order_on(2, "2027-02-01").await;
    let (order, plan, hold) = (s(&funded["id"]), s(&funded["plan"]["id"]), s(&funded["hold"]["id"]));
    let q = async |q: &str| o.admin().get(&format!("/v1/admin/search?q={q}")).await;
    for by in ["POS-1", "L1", order, plan, hold] {
        assert_eq!(found(q(by).await), [order], "{by}");
    }
    assert_eq!(found(q(o.world.line()).await), [s(&other["id"]), order], "a line's orders, newest first");
    assert!(found(q("POS-404").await).is_empty());
    assert!(found(q("ret_0000000000000000").await).is_empty(), "no such return");
    // A return's id finds its order (the second return, after a rejected first, finds it too).
    let first = o.world.store().request_return(order, return_body(1, "2027-02-01", "RET-1")).await.expect(201);
    o.world.bank().reject_return(s(&first["id"]), "the box was opened").await.expect(200);
    let second = o.world.store().request_return(order, return_body(1, "2027-02-02", "RET-2")).await.expect(201);
    for ret in [&first, &second] {
        assert_eq!(found(q(s(&ret["id"])).await), [order], "{ret}");
    }
    let one = q(order).await.expect(200);
    let answer = o.admin().order(order).await.expect(200);
    assert_eq!(one["data"][0], answer, "each order as GET /v1/orders/{{id}} answers it");

    q("").await.expect_err(422, "invalid_request");
    o.admin().get("/v1/admin/search").await.expect_err(422, "invalid_request");
    assert_eq!(q("%20").await.field(), Some("q"));
    refused_to_others(&o, "GET", &format!("/v1/admin/search?q={order}"), None).await;
}

// ---------- bulk redelivery ----------

#[actix_web::test]
async fn bulk_redelivery_brings_back_matching_dead_notices() {
    // The bank has a webhook (the delivery jobs do not run in these tests); the provider has none.
    let o = Ops::new(World::standard().bank_extra("bk", json!({"webhook_url": "http://127.0.0.1:9/hook"}))).await;
    o.order_on(1, "2027-01-31").await;
    o.order_on(2, "2027-01-31").await;
    // Their delivery failed for good: the bank's funding.requested and the provider's hold.placed.
    let db = o.app.db().await;
    let dead = db
        .execute(
            "UPDATE notices SET state = 'dead', attempts = 20, next_attempt_at = NULL WHERE type IN ('funding.requested', 'hold.placed')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dead, 4);
    let redeliver = async |body: Value| o.admin().call("POST", "/v1/admin/notices/redeliver", Some(&body), None).await;

    let none = redeliver(json!({"state": "dead", "created_after": "2999-01-01T00:00:00Z"})).await.expect(202);
    assert_eq!(none, json!({"count": 0}));
    let other = redeliver(json!({"state": "dead", "recipient": {"kind": "bank", "id": "bk2"}})).await.expect(202);
    assert_eq!(other["count"], 0);
    let done = redeliver(json!({"state": "dead", "recipient": {"kind": "bank", "id": "bk"}})).await.expect(202);
    assert_eq!(done["count"], 2);
    let again = redeliver(json!({"state": "dead"})).await.expect(202);
    assert_eq!(again["count"], 0, "repeating finds nothing more; the provider has nowhere to deliver to");
    let states: Vec<(String, String, i32)> = db
        .query("SELECT type, state, attempts FROM notices WHERE type IN ('funding.requested', 'hold.placed') ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (kind, state, attempts) in &states {
        let expected = if kind == "funding.requested" { ("pending", 0) } else { ("dead", 20) };
        assert_eq!((state.as_str(), *attempts), expected, "{kind}");
    }

    for (body, field) in [
        (json!({"state": "pending"}), "state"),
        (json!({}), "state"),
        (json!({"state": "dead", "recipient": {"kind": "admin", "id": "x1"}}), "recipient.kind"),
        (json!({"state": "dead", "created_after": "2027-01-01"}), "created_after"),
        (json!({"state": "dead", "extra": true}), "extra"),
    ] {
        let r = redeliver(body.clone()).await;
        r.expect_err(422, "invalid_request");
        assert_eq!(r.field(), Some(field), "{body}");
    }
    refused_to_others(&o, "POST", "/v1/admin/notices/redeliver", Some(json!({"state": "dead"}))).await;
}

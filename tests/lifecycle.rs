//! The whole life of an order against a real PostgreSQL: repayments releasing the hold step by
//! step, overdue and compensation after grace, exhausted holds, prepayment, acceleration, expiry,
//! and end of day's idempotence, regression and races.

mod common;

use common::world::{World, order_body};
use common::{Client, TestApp};
use serde_json::{Value, json};

/// The standard world (provider wld, bank bk, store st, product p12, customer 7's line) with the
/// product's terms a test names; its callers held by name.
struct Life {
    app: TestApp,
    store: Client,
    bank: Client,
    provider: Client,
    admin: Client,
    line_id: String,
}

/// The customer of every order of these tests.
const SEED: u64 = 7;

fn d(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

impl Life {
    async fn new(product_extra: Value) -> Life {
        Self::with_app(TestApp::start().await, product_extra).await
    }

    /// A service whose end of day takes `chunk_size` plans a transaction, and `plans` plans funded
    /// on 2027-01-31 on the one line, in creation order.
    async fn funded_in_chunks(chunk_size: u32, plans: u32) -> (Life, Vec<String>) {
        let w = Life::with_app(TestApp::start_with(|s| s.eod.chunk_size = chunk_size).await, json!({})).await;
        let mut ids = Vec::new();
        for n in 1..=plans {
            ids.push(w.funded_on(n, "2027-01-31").await.0);
        }
        (w, ids)
    }

    async fn with_app(app: TestApp, product_extra: Value) -> Life {
        let w = World::standard().product_extra(product_extra).build(&app).await;
        let (store, bank, provider) = (w.store().clone(), w.bank().clone(), w.provider().clone());
        Life { line_id: w.line().to_string(), admin: w.admin, app, store, bank, provider }
    }

    /// Places an order for principal 3000.00 (device 3999, down 999) and answers it.
    async fn order(&self, n: u32) -> Value {
        self.store.place_order(order_body(&format!("POS-{n}"), "p12", SEED, n.into())).await.expect(201)
    }

    /// Places an order on `date` (the service's clock set to that day's noon in Asia/Shanghai)
    /// and funds it on that date; answers the plan id.
    async fn funded_on(&self, n: u32, date: &str) -> (String, Value) {
        self.app.set_today(date);
        let order = self.order(n).await;
        let funded = self.bank.fund(order["id"].as_str().unwrap(), &format!("L{n}"), date).await.expect(200);
        self.app.clock.reset();
        (funded["plan"]["id"].as_str().unwrap().to_string(), funded)
    }

    async fn repay(&self, plan: &str, amount: &str, paid_on: &str, reference: &str) -> common::Resp {
        self.bank.repay(plan, amount, paid_on, reference).await
    }

    async fn eod(&self, date: &str) -> common::Resp {
        self.admin.eod(date).await
    }

    async fn line(&self) -> Value {
        self.provider.line(&self.line_id).await.expect(200)
    }

    async fn plan(&self, id: &str) -> Value {
        self.bank.plan(id).await.expect(200)
    }

    async fn hold(&self, plan: &Value) -> Value {
        let order = self.bank.order(plan["order_id"].as_str().unwrap()).await.expect(200);
        order["hold"].clone()
    }

    async fn verify_ok(&self) {
        self.admin.verify_ok().await;
    }
}

fn count_type(notices: &[Value], kind: &str) -> usize {
    notices.iter().filter(|n| n["type"] == kind).count()
}

#[actix_web::test]
async fn on_time_repayments_release_the_hold_step_by_step_to_zero() {
    let w = Life::new(json!({})).await;
    let (plan_id, funded) = w.funded_on(1, "2027-01-31").await;
    assert_eq!(funded["hold"]["amount"], "3300.46");
    let plan = w.plan(&plan_id).await;
    let insts = plan["installments"].as_array().unwrap().clone();
    assert_eq!(insts[0]["due_on"], "2027-02-28");
    let mut held = 330046i64;
    for inst in &insts {
        let total_fen = fen(&inst["principal"]) + fen(&inst["interest"]);
        let due = inst["due_on"].as_str().unwrap();
        let r = w.repay(&plan_id, &money(total_fen), due, &format!("R{}", inst["seq"])).await.expect(201);
        assert_eq!(fen(&r["hold_released"]), total_fen, "the hold falls by exactly the scheduled total: {r}");
        held -= total_fen;
        assert_eq!(fen(&w.line().await["held"]), held);
        assert_eq!(r["allocations"].as_array().unwrap().len(), 1);
    }
    assert_eq!(held, 0);
    let plan = w.plan(&plan_id).await;
    assert_eq!(plan["status"], "settled");
    assert_eq!(plan["outstanding_principal"], "0.00");
    assert!(plan["installments"].as_array().unwrap().iter().all(|i| i["status"] == "paid"));
    let hold = w.hold(&plan).await;
    assert_eq!(
        (hold["status"].as_str(), hold["released"].as_str(), hold["remaining"].as_str()),
        (Some("closed"), Some("3300.46"), Some("0.00"))
    );
    let order = w.store.get(&format!("/v1/orders/{}", plan["order_id"].as_str().unwrap())).await.expect(200);
    assert_eq!(order["status"], "settled");
    // A settled plan takes no more repayments and has no payoff.
    w.repay(&plan_id, "1.00", "2028-02-01", "late").await.expect_err(409, "invalid_state");
    w.bank.get(&format!("/v1/plans/{plan_id}/payoff")).await.expect_err(409, "invalid_state");
    let bank = w.bank.notices().await;
    assert_eq!(count_type(&bank, "repayment.recorded"), 12);
    assert_eq!(count_type(&bank, "plan.settled"), 1);
    assert_eq!(count_type(&w.provider.notices().await, "hold.released"), 12);
    let exposure = w.admin.get("/v1/admin/banks/bk").await.expect(200);
    assert_eq!(exposure["exposure_used"], "0.00");
    w.verify_ok().await;
}

fn fen(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("money string: {v}"));
    let (y, f) = s.split_once('.').unwrap();
    y.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap()
}

fn money(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

#[actix_web::test]
async fn overdue_then_compensated_after_grace_with_its_penalty() {
    let w = Life::new(json!({})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    let first = w.eod("2027-03-01").await.expect(200);
    assert_eq!(first["overdue_marked"], 1);
    assert_eq!(first["penalties"], json!({"count": 1, "amount": "0.12"}));
    assert_eq!(first["compensations"]["count"], 0);
    let plan = w.plan(&plan_id).await;
    assert_eq!(plan["installments"][0]["status"], "overdue");
    assert_eq!(plan["installments"][0]["penalty"], "0.12");
    let payoff = w.bank.payoff(&plan_id, "2027-03-01").await.expect(200);
    assert_eq!(payoff["penalty"], "0.12");
    let second = w.eod("2027-03-03").await.expect(200);
    assert_eq!(second["overdue_marked"], 0, "already marked");
    assert_eq!(second["penalties"], json!({"count": 1, "amount": "0.23"}));
    assert_eq!(second["compensations"], json!({"count": 1, "amount": "275.39"}));
    assert_eq!(second["uncovered"]["count"], 0);
    let plan = w.plan(&plan_id).await;
    let i1 = &plan["installments"][0];
    assert_eq!((i1["status"].as_str(), i1["penalty"].as_str(), i1["compensated"].as_str()), (Some("paid"), Some("0.35"), Some("275.39")));
    assert_eq!(plan["compensated"], "275.39");
    assert_eq!(plan["status"], "active");
    let line = w.line().await;
    assert_eq!((line["drawn"].as_str(), line["held"].as_str()), (Some("275.39"), Some("3025.07")));
    let hold = w.hold(&plan).await;
    assert_eq!((hold["converted"].as_str(), hold["remaining"].as_str()), (Some("275.39"), Some("3025.07")));
    let bank = w.bank.notices().await;
    assert_eq!(count_type(&bank, "installment.overdue"), 1);
    let comp: Vec<_> = bank.iter().filter(|n| n["type"] == "default.compensated").collect();
    assert_eq!(comp.len(), 1);
    assert_eq!(comp[0]["data"]["amount"], "275.39");
    assert_eq!(comp[0]["data"]["penalty"], "0.35");
    assert_eq!(comp[0]["data"]["installment_seq"], 1);
    assert_eq!(count_type(&w.provider.notices().await, "hold.converted"), 1);
    // The customer repays the provider part of what was converted.
    let after = w.provider.post(&format!("/v1/credit-lines/{}/debt-repayments", w.line_id), json!({"amount": "100.00"})).await.expect(200);
    assert_eq!(after["drawn"], "175.39");
    w.verify_ok().await;
}

#[actix_web::test]
async fn a_small_ratio_hold_is_exhausted_into_default_uncovered() {
    let w = Life::new(json!({"hold_ratio": "0.10"})).await;
    let (plan_id, funded) = w.funded_on(1, "2027-01-31").await;
    assert_eq!(funded["hold"]["amount"], "330.05");
    let first = w.eod("2027-03-03").await.expect(200);
    assert_eq!(first["compensations"], json!({"count": 1, "amount": "275.39"}));
    let second = w.eod("2027-04-03").await.expect(200);
    assert_eq!(second["compensations"], json!({"count": 1, "amount": "54.66"}));
    assert_eq!(second["uncovered"]["count"], 1);
    let plan = w.plan(&plan_id).await;
    assert_eq!(plan["status"], "defaulted");
    let hold = w.hold(&plan).await;
    assert_eq!(
        (hold["status"].as_str(), hold["remaining"].as_str(), hold["converted"].as_str()),
        (Some("closed"), Some("0.00"), Some("330.05"))
    );
    let unc: Vec<_> = w.bank.notices().await.into_iter().filter(|n| n["type"] == "default.uncovered").collect();
    assert_eq!(unc.len(), 1);
    let i2 = &plan["installments"][1];
    let owed2 = fen(&i2["principal"]) + fen(&i2["interest"]) + fen(&i2["penalty"]);
    assert_eq!(fen(&unc[0]["data"]["shortfall"]), owed2 - 5466, "{}", unc[0]);
    // Defaulted plans are left alone by end of day; recoveries still settle them.
    let third = w.eod("2027-05-10").await.expect(200);
    assert_eq!((third["overdue_marked"].as_i64(), third["penalties"]["count"].as_i64()), (Some(0), Some(0)));
    let payoff = w.bank.payoff(&plan_id, "2027-05-10").await.expect(200);
    w.repay(&plan_id, payoff["amount"].as_str().unwrap(), "2027-05-10", "recovery").await.expect(201);
    assert_eq!(w.plan(&plan_id).await["status"], "settled");
    w.verify_ok().await;
}

#[actix_web::test]
async fn prepayment_with_the_exact_payoff_settles_and_waives() {
    let w = Life::new(json!({})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    let payoff = w.bank.payoff(&plan_id, "2027-02-10").await.expect(200);
    assert_eq!(
        payoff,
        json!({"as_of": "2027-02-10", "amount": "3045.00", "principal": "3000.00", "interest": "45.00", "fee": "0.00", "penalty": "0.00"})
    );
    w.repay(&plan_id, "3045.01", "2027-02-10", "too-much").await.expect_err(422, "overpayment");
    w.bank.payoff(&plan_id, "2027-01-30").await.expect_err(422, "invalid_date");
    w.repay(&plan_id, "10.00", "2027-01-30", "early").await.expect_err(422, "invalid_date");
    let r = w.repay(&plan_id, "3045.00", "2027-02-10", "payoff").await.expect(201);
    assert_eq!(r["plan_status"], "settled");
    assert_eq!(r["hold_released"], "3300.46");
    w.repay(&plan_id, "1.00", "2027-02-10", "payoff").await.expect_err(409, "already_exists");
    let plan = w.plan(&plan_id).await;
    let insts = plan["installments"].as_array().unwrap();
    assert_eq!(insts[0]["status"], "paid");
    assert!(insts[1..].iter().all(|i| i["status"] == "waived"), "{plan}");
    assert_eq!(w.line().await["held"], "0.00");
    w.verify_ok().await;
}

#[actix_web::test]
async fn partial_prepayment_pays_whole_future_installments_oldest_first() {
    let w = Life::new(json!({})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    let r = w.repay(&plan_id, "600.00", "2027-02-01", "R1").await.expect(201);
    let alloc = r["allocations"].as_array().unwrap();
    assert_eq!(alloc.len(), 3);
    assert_eq!(alloc[0], json!({"seq": 1, "penalty": "0.00", "fee": "0.00", "interest": "45.00", "principal": "230.04"}));
    assert_eq!(alloc[2]["interest"], "38.05");
    assert_eq!(fen(&alloc[2]["principal"]), 60000 - 2 * 27504 - 3805);
    assert_eq!(r["hold_released"], "600.00");
    w.verify_ok().await;
}

#[actix_web::test]
async fn acceleration_converts_what_the_hold_covers_and_releases_the_rest() {
    let w = Life::new(json!({})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    w.repay(&plan_id, "275.04", "2027-02-28", "R1").await.expect(201);
    let payoff = w.bank.payoff(&plan_id, "2027-03-05").await.expect(200);
    let plan = w.bank.accelerate(&plan_id, "2027-03-05", "fraud").await.expect(200);
    assert_eq!(plan["status"], "settled");
    assert_eq!(plan["accelerated"], json!({"as_of": "2027-03-05", "reason": "fraud"}));
    assert_eq!(plan["compensated"], payoff["amount"]);
    let hold = w.hold(&plan).await;
    assert_eq!(hold["converted"], payoff["amount"]);
    assert_eq!(fen(&hold["released"]), 330046 - fen(&payoff["amount"]), "what was not converted was released");
    assert_eq!(hold["remaining"], "0.00");
    let bank = w.bank.notices().await;
    assert_eq!(count_type(&bank, "default.compensated"), 11, "one per installment paid from the hold");
    assert_eq!(count_type(&bank, "plan.accelerated"), 1);
    w.bank.accelerate(&plan_id, "2027-03-05", "again").await.expect_err(409, "invalid_state");
    assert_eq!(w.line().await["drawn"], payoff["amount"]);
    w.verify_ok().await;
}

/// API.md §5 (v2, issue 15): after an acceleration the hold cannot cover, the plan is
/// `defaulted` and every installment left owing reads `overdue` — those due after `as_of`
/// included — in the answer, on later reads, and after a partial recovery.
#[actix_web::test]
async fn an_under_covered_acceleration_leaves_every_installment_owing_overdue() {
    let w = Life::new(json!({"hold_ratio": "0.10"})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    let accelerate = json!({"as_of": "2027-02-10", "reason": "fraud"});
    let plan = w.bank.post(&format!("/v1/plans/{plan_id}/accelerate"), accelerate).await.expect(200);
    assert_eq!((plan["status"].as_str(), plan["compensated"].as_str()), (Some("defaulted"), Some("330.05")), "{plan}");
    let statuses = |plan: &Value| -> Vec<String> {
        plan["installments"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap().to_string()).collect()
    };
    let expected: Vec<String> = std::iter::once("paid").chain(std::iter::repeat_n("overdue", 11)).map(String::from).collect();
    assert_eq!(statuses(&plan), expected, "the answer: installment 1 paid from the hold, the rest fallen due");
    assert_eq!(statuses(&w.plan(&plan_id).await), expected, "a later read");
    w.repay(&plan_id, "100.00", "2027-02-12", "recovery-1").await.expect(201);
    assert_eq!(statuses(&w.plan(&plan_id).await), expected, "a partial recovery pays installment 2 in part, still overdue");
    w.verify_ok().await;
}

#[actix_web::test]
async fn unfunded_orders_expire_at_end_of_day_after_their_deadline() {
    let w = Life::new(json!({"funding_timeout_hours": 1})).await;
    let order = w.order(1).await;
    let deadline = chrono::DateTime::parse_from_rfc3339(order["funding_deadline"].as_str().unwrap()).unwrap();
    let deadline_date = deadline.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let same_day = w.eod(&deadline_date.to_string()).await.expect(200);
    assert_eq!(same_day["holds_expired"], 0, "not before a date after the deadline's");
    let next = (deadline_date + chrono::Duration::days(1)).to_string();
    let r = w.eod(&next).await.expect(200);
    assert_eq!(r["holds_expired"], 1);
    let o = w.store.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap())).await.expect(200);
    assert_eq!(o["status"], "expired");
    assert_eq!((o["hold"]["status"].as_str(), o["hold"]["voided"].as_str()), (Some("voided"), Some("3300.46")));
    assert_eq!(w.line().await["held"], "0.00");
    assert_eq!(w.admin.get("/v1/admin/banks/bk").await.expect(200)["exposure_used"], "0.00");
    assert_eq!(count_type(&w.bank.notices().await, "order.expired"), 1);
    assert_eq!(count_type(&w.provider.notices().await, "hold.voided"), 1);
    w.verify_ok().await;
}

#[actix_web::test]
async fn end_of_day_is_idempotent_refuses_regression_and_future_dates_by_default() {
    let w = Life::new(json!({})).await;
    w.funded_on(1, "2027-01-31").await;
    let first = w.eod("2027-03-03").await.expect(200);
    assert_eq!(first["compensations"]["count"], 1);
    let again = w.eod("2027-03-03").await.expect(200);
    assert_eq!(
        again,
        json!({"business_date": "2027-03-03", "overdue_marked": 0, "penalties": {"count": 0, "amount": "0.00"},
        "compensations": {"count": 0, "amount": "0.00"}, "uncovered": {"count": 0, "amount": "0.00"}, "holds_expired": 0,
        "confirmations_timed_out": 0, "write_offs": {"count": 0, "amount": "0.00"}})
    );
    w.eod("2027-03-02").await.expect_err(409, "business_date_regression");
    w.eod("2027-02-30").await.expect_err(422, "invalid_date");
    // A repayment valued on a closed date is booked on the next open one.
    let plan_id = w.plan_ids().await.pop().unwrap();
    let r = w.repay(&plan_id, "10.00", "2027-03-02", "late-report").await.expect(201);
    assert_eq!((r["paid_on"].as_str(), r["booked_on"].as_str()), (Some("2027-03-02"), Some("2027-03-04")));
    w.verify_ok().await;

    let strict = TestApp::start_with(|s| s.clock.allow_future_dates = false).await;
    strict.admin().eod("2099-01-01").await.expect_err(422, "invalid_date");
}

/// API.md §1's order of checks (issue 15): `409 business_date_regression` is a state refusal and
/// comes before `422 invalid_date` for a date after today (a check against the clock). Seen when
/// the service's today is behind the last closed date (a clock set back, or an instance whose
/// clock lags the one that closed it).
#[actix_web::test]
async fn end_of_day_refuses_a_regression_before_a_date_after_today() {
    let strict = TestApp::start_with(|s| s.clock.allow_future_dates = false).await;
    let admin = strict.admin();
    let eod = async |date: &str| admin.eod(date).await;
    strict.set_today("2027-03-10");
    eod("2027-03-10").await.expect(200);
    strict.set_today("2027-03-01");
    eod("2027-03-05").await.expect_err(409, "business_date_regression");
    eod("2027-03-10").await.expect_err(422, "invalid_date");
    eod("2027-03-11").await.expect_err(422, "invalid_date");
    eod("2027-02-28").await.expect_err(409, "business_date_regression");
    strict.clock.reset();
}

/// Dates are `YYYY-MM-DD`, so 9999-12-31 is the calendar's last: end of day never closes it
/// (nothing could be booked after it), and no answer or booking ever carries a later date.
#[actix_web::test]
async fn the_calendars_last_date_is_never_closed_and_nothing_is_booked_past_it() {
    let w = Life::new(json!({})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    w.eod("9999-12-31").await.expect_err(422, "invalid_date");
    let db = w.app.db().await;
    let closed: Option<chrono::NaiveDate> = db.query_one("SELECT max(business_date) FROM business_days", &[]).await.unwrap().get(0);
    assert_eq!(closed, None, "the refusal closed nothing");
    // The day before closes; what arrives afterwards is booked on the last date itself.
    w.eod("9999-12-30").await.expect(200);
    let r = w.repay(&plan_id, "1.00", "9999-12-30", "last-1").await.expect(201);
    assert_eq!((r["paid_on"].as_str(), r["booked_on"].as_str()), (Some("9999-12-30"), Some("9999-12-31")));
    let r = w.repay(&plan_id, "1.00", "9999-12-31", "last-2").await.expect(201);
    assert_eq!(r["booked_on"].as_str(), Some("9999-12-31"));
    w.eod("9999-12-31").await.expect_err(422, "invalid_date");
    let latest: chrono::NaiveDate = db.query_one("SELECT max(booked_on) FROM journal_entries", &[]).await.unwrap().get(0);
    assert_eq!(latest, d("9999-12-31"));
    w.verify_ok().await;
}

impl Life {
    async fn plan_ids(&self) -> Vec<String> {
        let db = self.app.db().await;
        db.query("SELECT id FROM plans ORDER BY seq", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    }
}

#[actix_web::test]
async fn two_end_of_day_runs_racing_do_the_work_once() {
    let w = Life::new(json!({})).await;
    for n in 1..=5 {
        w.funded_on(n, "2027-01-31").await;
    }
    let (a, b) = futures_util::join!(w.eod("2027-03-03"), w.eod("2027-03-03"));
    let (a, b) = (a.expect(200), b.expect(200));
    let total = a["compensations"]["count"].as_i64().unwrap() + b["compensations"]["count"].as_i64().unwrap();
    assert_eq!(total, 5, "each installment compensated once: {a} {b}");
    assert_eq!(fen(&w.line().await["drawn"]), 5 * 27539);
    // Another instance on the same database sees the date closed.
    let other = TestApp::start_on(w.app.pg.clone(), |_| {}).await;
    let r = other.admin().eod("2027-03-03").await;
    assert_eq!(r.expect(200)["compensations"]["count"], 0);
    w.verify_ok().await;
}

#[actix_web::test]
async fn a_repayment_racing_end_of_day_on_the_same_plan_is_never_applied_twice() {
    for round in 0..4u32 {
        let w = Life::new(json!({})).await;
        let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
        w.eod("2027-03-02").await.expect(200);
        // The installment now owes 275.04 + 0.23 penalty as of 03-02, 0.35 as of 03-03.
        let reference = format!("race-{round}");
        let (eod, rep) = futures_util::join!(w.eod("2027-03-03"), w.repay(&plan_id, "275.27", "2027-03-02", &reference));
        let eod = eod.expect(200);
        let rep = rep.expect(201);
        let plan = w.plan(&plan_id).await;
        let paid: i64 = plan["installments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| fen(&i["paid_principal"]) + fen(&i["paid_interest"]) + fen(&i["paid_fee"]) + fen(&i["paid_penalty"]))
            .sum();
        let compensated = fen(&eod["compensations"]["amount"]);
        assert_eq!(paid, 27527 + compensated, "paid = repayment + compensation, nothing twice: {eod} {rep}");
        assert!(compensated == 0 || compensated == 27539, "either the repayment came first or the hold paid it: {eod}");
        w.verify_ok().await;
    }
}

#[actix_web::test]
async fn a_crash_mid_batch_leaves_whole_chunks_and_a_rerun_finishes_the_job() {
    let (w, plans) = Life::funded_in_chunks(1, 5).await;
    // Fail the transaction of the third plan in processing order (chunks of one plan): end of day
    // converts plans in the order of their creation (API.md §8), the order they were funded here.
    let db = w.app.db().await;
    crash_on_updates_of(&db, &plans[2]).await;
    let crashed = w.eod("2027-03-03").await;
    assert!(crashed.status >= 500, "the injected failure stops the run: {:?}", crashed.body);
    let compensated: i64 = db.query_one("SELECT count(*) FROM compensations", &[]).await.unwrap().get(0);
    assert_eq!(compensated, 2, "the two chunks before the failure are applied whole, nothing of the failed one");
    let closed: i64 = db.query_one("SELECT count(*) FROM business_days", &[]).await.unwrap().get(0);
    assert_eq!(closed, 0, "a failed run does not close the date");
    w.verify_ok().await;
    db.batch_execute("DROP TRIGGER crash ON installments").await.unwrap();
    let rerun = w.eod("2027-03-03").await.expect(200);
    assert_eq!(rerun["compensations"]["count"], 3, "the rerun finishes the job: {rerun}");
    let per_installment: Vec<i64> = db
        .query("SELECT count(*) FROM compensations GROUP BY plan_id, installment_seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(per_installment, vec![1; 5], "each installment compensated exactly once");
    w.verify_ok().await;
}

/// The chunks of a run overlap (the next one is loaded while the one before applies): a failed
/// chunk stops the run with the ones before it applied whole, and the rerun finds those plans
/// again (still overdue within grace) and changes nothing on them: no second penalty, overdue
/// notice or conversion, exactly what one clean run books.
#[actix_web::test]
async fn a_rerun_after_a_crash_changes_nothing_on_the_chunks_already_applied() {
    let (w, plans) = Life::funded_in_chunks(2, 7).await;
    // The third chunk (plans 5 and 6) fails; the fourth is loaded meanwhile and must not apply.
    let db = w.app.db().await;
    crash_on_updates_of(&db, &plans[5]).await;
    // Within grace: overdue with a penalty (0.23 as of 03-02), nothing converted.
    let crashed = w.eod("2027-03-02").await;
    assert!(crashed.status >= 500, "the injected failure stops the run: {:?}", crashed.body);
    let state = |row: tokio_postgres::Row| (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2));
    let q = "SELECT (SELECT count(*) FROM installments WHERE status = 'overdue'),
                    (SELECT coalesce(sum(penalty_fen), 0)::int8 FROM installments),
                    (SELECT count(*) FROM notices WHERE type = 'installment.overdue')";
    assert_eq!(state(db.query_one(q, &[]).await.unwrap()), (4, 4 * 23, 4), "the two chunks before the failure, whole");
    w.verify_ok().await;
    db.batch_execute("DROP TRIGGER crash ON installments").await.unwrap();
    let rerun = w.eod("2027-03-02").await.expect(200);
    assert_eq!((rerun["overdue_marked"].as_i64(), rerun["penalties"]["count"].as_i64()), (Some(3), Some(3)), "{rerun}");
    assert_eq!(state(db.query_one(q, &[]).await.unwrap()), (7, 7 * 23, 7), "each plan's day booked once");
    let converted = w.eod("2027-03-03").await.expect(200);
    assert_eq!(converted["compensations"]["count"], 7, "{converted}");
    assert_eq!(fen(&w.line().await["drawn"]), 7 * 27539, "each installment compensated once, with one day's more penalty");
    w.verify_ok().await;
}

/// The chunks of a run overlap (the next one is locked, loaded and decided while the one before
/// applies): with the first chunk held up (its plan locked by another transaction for half a
/// second), the next one, on the same credit line, is decided first yet waits, and the day's
/// conversions are booked and told in the plans' creation order (API.md §8).
#[actix_web::test]
async fn a_slow_chunk_keeps_the_journal_and_the_notices_in_creation_order() {
    let (w, plans) = Life::funded_in_chunks(1, 6).await;
    let mut locker = w.app.db().await;
    let holding = locker.transaction().await.unwrap();
    holding.execute("SELECT 1 FROM plans WHERE id = $1 FOR UPDATE", &[&plans[0]]).await.unwrap();
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        holding.commit().await.unwrap();
    };
    let (converted, ()) = tokio::join!(w.eod("2027-03-03"), release);
    let converted = converted.expect(200);
    assert_eq!(converted["compensations"]["count"], 6, "{converted}");
    let db = w.app.db().await;
    let column = |q: &'static str| {
        let db = &db;
        async move { db.query(q, &[]).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect::<Vec<String>>() }
    };
    let booked = column("SELECT plan_id FROM journal_entries WHERE kind = 'default.compensated' ORDER BY id").await;
    assert_eq!(booked, plans, "conversions booked in the plans' creation order");
    let told = column("SELECT data->>'plan_id' FROM notices WHERE type = 'default.compensated' ORDER BY seq").await;
    assert_eq!(told, plans, "the banks told in the same order, by notice id");
    w.verify_ok().await;
}

#[actix_web::test]
async fn fee_priced_plans_allocate_fee_before_principal_and_replay_repayments() {
    let w = Life::new(json!({"pricing": "fee", "terms": [{"months": 12, "rate": "0.06"}]})).await;
    let (plan_id, funded) = w.funded_on(1, "2027-01-31").await;
    // total fee = 180.00, 15.00 a month; principal 250.00 a month.
    assert_eq!(funded["hold"]["amount"], "3180.00");
    let plan = w.plan(&plan_id).await;
    assert_eq!((plan["installments"][0]["fee"].as_str(), plan["installments"][0]["principal"].as_str()), (Some("15.00"), Some("250.00")));
    let body = json!({"amount": "20.00", "paid_on": "2027-02-01", "reference": "F1"});
    let first = w.bank.post_idem(&format!("/v1/plans/{plan_id}/repayments"), body.clone(), "rep-key").await;
    let replay = w.bank.post_idem(&format!("/v1/plans/{plan_id}/repayments"), body, "rep-key").await;
    assert_eq!(first.status, 201);
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body, replay.body);
    assert_eq!(first.body["allocations"][0], json!({"seq": 1, "penalty": "0.00", "fee": "15.00", "interest": "0.00", "principal": "5.00"}));
    let n: i64 = w.app.db().await.query_one("SELECT count(*) FROM repayments", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "applied once");
    w.verify_ok().await;
}

#[actix_web::test]
async fn with_no_grace_days_the_hold_converts_at_the_end_of_the_due_date() {
    let w = Life::new(json!({"grace_days": 0})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    let before = w.eod("2027-02-27").await.expect(200);
    assert_eq!(before["compensations"]["count"], 0);
    let on_due = w.eod("2027-02-28").await.expect(200);
    assert_eq!(on_due["compensations"], json!({"count": 1, "amount": "275.04"}), "no penalty on the due date itself");
    assert_eq!(on_due["overdue_marked"], 0, "not overdue on its due date");
    assert_eq!(w.plan(&plan_id).await["installments"][0]["status"], "paid");
    w.verify_ok().await;
}

/// API.md §9 (issue 15): the payoff as of d counts penalty only of installments due on or before
/// d. End of day for installment 1's due date + 1 accrues its penalty; as of the day before its
/// due date that penalty is not part of the payoff, an exact-payoff repayment valued that day
/// settles the plan and waives it, and acceleration as of that day converts none of it.
#[actix_web::test]
async fn a_backdated_payoff_leaves_out_penalty_of_installments_not_yet_due() {
    let w = Life::new(json!({})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    let (accelerated_id, _) = w.funded_on(2, "2027-01-31").await;
    // Installment 1 is due 2027-02-28; end of day for 03-01 accrues 230.04 × 0.0005 = 0.12.
    w.eod("2027-03-01").await.expect(200);
    assert_eq!(w.plan(&plan_id).await["installments"][0]["penalty"], "0.12");
    let payoff = w.bank.payoff(&plan_id, "2027-02-27").await.expect(200);
    assert_eq!(
        payoff,
        json!({"as_of": "2027-02-27", "amount": "3045.00", "principal": "3000.00", "interest": "45.00", "fee": "0.00", "penalty": "0.00"})
    );
    let r = w.repay(&plan_id, "3045.00", "2027-02-27", "payoff").await.expect(201);
    assert_eq!(r["plan_status"], "settled", "{r}");
    assert_eq!(r["allocations"][0], json!({"seq": 1, "penalty": "0.00", "fee": "0.00", "interest": "45.00", "principal": "230.04"}));
    let plan = w.plan(&plan_id).await;
    let first = &plan["installments"][0];
    assert_eq!(
        (first["penalty"].as_str(), first["paid_penalty"].as_str(), first["waived"].as_str(), first["status"].as_str()),
        (Some("0.12"), Some("0.00"), Some("0.12"), Some("waived")),
        "the penalty is forgiven: {first}"
    );
    assert_eq!(plan["installments"][1]["waived"], "41.55", "later installments' interest is waived as before");
    w.verify_ok().await;

    let plan = w.bank.accelerate(&accelerated_id, "2027-02-27", "fraud").await.expect(200);
    assert_eq!(plan["status"], "settled");
    assert_eq!(plan["compensated"], "3045.00", "the payoff as of 02-27 is converted, its penalty is not: {plan}");
    let first = &plan["installments"][0];
    assert_eq!((first["waived"].as_str(), first["paid_penalty"].as_str()), (Some("0.12"), Some("0.00")), "{first}");
    let hold = w.hold(&plan).await;
    assert_eq!((hold["converted"].as_str(), hold["released"].as_str()), (Some("3045.00"), Some("255.46")));
    let accelerated = w.bank.notices().await.into_iter().find(|n| n["type"] == "plan.accelerated").unwrap();
    assert_eq!(accelerated["data"]["amount"], "3045.00");
    w.verify_ok().await;
}

/// Every notice type of API.md §7 (v1) — each one is about an order. A notice whose type is not
/// listed here fails the test below, so a new type cannot slip past the check of its ids.
const ORDER_NOTICE_TYPES: [&str; 15] = [
    "funding.requested",
    "plan.opened",
    "repayment.recorded",
    "installment.overdue",
    "default.compensated",
    "default.uncovered",
    "plan.settled",
    "plan.accelerated",
    "order.cancelled",
    "order.expired",
    "hold.placed",
    "hold.released",
    "hold.converted",
    "hold.voided",
    "order.updated",
];

/// API.md §7 (issue 15): every notice about an order carries, of `order_id`, `plan_id`,
/// `hold_id`, `credit_line_id` and the plan's `loan_no`, each that exists when it is sent (the
/// plan's once the order is funded). One order lives its whole life (placement, funding, a
/// repayment, overdue, compensation, acceleration into default, a recovery that settles it);
/// others are cancelled, rejected and expired; every notice of every type is then checked.
#[actix_web::test]
async fn every_notice_about_an_order_carries_the_ids_of_the_objects_involved() {
    let w = Life::new(json!({"hold_ratio": "0.10"})).await;
    let (plan_id, _) = w.funded_on(1, "2027-01-31").await;
    w.repay(&plan_id, "275.04", "2027-02-28", "R1").await.expect(201);
    let cancelled = w.order(2).await;
    w.store.post(&format!("/v1/orders/{}/cancel", cancelled["id"].as_str().unwrap()), json!({})).await.expect(200);
    let rejected = w.order(3).await;
    let reject = json!({"decision": "rejected", "reason": "kyc"});
    w.bank.post(&format!("/v1/orders/{}/funding", rejected["id"].as_str().unwrap()), reject).await.expect(200);
    w.order(4).await; // expires at the next end of day
    // Installment 2 (due 2027-03-31) goes overdue and, past grace, the hold pays it.
    let eod = w.eod("2027-04-03").await.expect(200);
    assert_eq!((eod["overdue_marked"].as_i64(), eod["holds_expired"].as_i64()), (Some(1), Some(1)), "{eod}");
    let accelerate = json!({"as_of": "2027-04-03", "reason": "fraud"});
    let plan = w.bank.post(&format!("/v1/plans/{plan_id}/accelerate"), accelerate).await.expect(200);
    assert_eq!(plan["status"], "defaulted", "the small hold cannot cover the payoff: {plan}");
    let payoff = w.bank.payoff(&plan_id, "2027-04-10").await.expect(200);
    let recovery = w.repay(&plan_id, payoff["amount"].as_str().unwrap(), "2027-04-10", "recovery").await.expect(201);
    assert_eq!(recovery["plan_status"], "settled");

    let notices = w.admin.notices().await;
    let mut orders: std::collections::BTreeMap<String, Value> = Default::default();
    let mut seen = std::collections::BTreeSet::new();
    // type → (carried, expected) of its first notice that is wrong
    let mut wrong: std::collections::BTreeMap<String, String> = Default::default();
    for n in &notices {
        let kind = n["type"].as_str().unwrap();
        // A closed date's reports (API.md §15) are about no order.
        if matches!(kind, "reconciliation.ready" | "settlement.ready") {
            continue;
        }
        assert!(ORDER_NOTICE_TYPES.contains(&kind), "a notice type this test does not know: {n}");
        seen.insert(kind.to_string());
        let order_id = n["data"]["order_id"].as_str().unwrap_or_else(|| panic!("no order_id: {n}")).to_string();
        if !orders.contains_key(&order_id) {
            orders.insert(order_id.clone(), w.admin.get(&format!("/v1/orders/{order_id}")).await.expect(200));
        }
        let order = &orders[&order_id];
        // The plan exists from its plan.opened notice on (notice ids sort in creation order).
        let opened = notices.iter().find(|m| m["type"] == "plan.opened" && m["data"]["order_id"] == order["id"]);
        let funded = opened.is_some_and(|m| m["id"].as_str().unwrap() <= n["id"].as_str().unwrap());
        let (plan_ref, loan_no) =
            if funded { (order["plan"]["id"].clone(), order["plan"]["loan_no"].clone()) } else { (Value::Null, Value::Null) };
        let carried = ["order_id", "plan_id", "hold_id", "credit_line_id", "loan_no"].map(|k| n["data"][k].clone());
        let expected = [order["id"].clone(), plan_ref, order["hold"]["id"].clone(), order["hold"]["credit_line_id"].clone(), loan_no];
        if carried != expected {
            wrong.entry(kind.to_string()).or_insert_with(|| format!("carries {carried:?}, not {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "notices without the ids of order, plan, hold, credit line and loan number: {wrong:#?}");
    let missing: Vec<_> = ORDER_NOTICE_TYPES.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "the life above sends every type; not seen: {missing:?}");
    w.verify_ok().await;
}

/// Makes every update of `plan_id`'s installments fail (trigger `crash` on installments; the test
/// drops it to let a rerun through): a crash in the middle of end of day.
async fn crash_on_updates_of(db: &tokio_postgres::Client, plan_id: &str) {
    db.batch_execute(&format!(
        "CREATE FUNCTION fail_once() RETURNS trigger AS $$ BEGIN
             IF NEW.plan_id = '{plan_id}' THEN RAISE EXCEPTION 'injected crash'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER crash BEFORE UPDATE ON installments FOR EACH ROW EXECUTE FUNCTION fail_once();"
    ))
    .await
    .unwrap();
}

//! Write-off and recoveries (API.md §14) against a real PostgreSQL: by the bank and by end of day,
//! the amounts, the statuses, the freed exposure, the shared reference namespace, the refusals,
//! and races.

mod common;

use common::world::{World, order_body};
use common::{Client, TestApp};
use serde_json::{Value, json};

/// The standard world with a hold of half the plan, so that an acceleration defaults the plan.
struct Books {
    app: TestApp,
    store: Client,
    bank: Client,
    admin: Client,
}

impl Books {
    async fn new(product_extra: Value) -> Books {
        let app = TestApp::start().await;
        let extra = common::world::merged(json!({"hold_ratio": "0.50"}), product_extra);
        let w = World::standard().product_extra(extra).build(&app).await;
        Books { store: w.store().clone(), bank: w.bank().clone(), admin: w.admin, app }
    }

    /// Order `n` for principal 3000.00, funded 2027-01-31 and accelerated as of 2027-03-01: the
    /// hold (1650.23) cannot cover the payoff, so the plan is `defaulted`. Answers the plan.
    async fn defaulted(&self, n: u32) -> Value {
        self.app.set_today("2027-01-31");
        let order = self.store.place_order(order_body(&format!("POS-{n}"), "p12", 7, n.into())).await.expect(201);
        let funded = self.bank.fund(order["id"].as_str().unwrap(), &format!("L{n}"), "2027-01-31").await.expect(200);
        self.app.clock.reset();
        let plan_id = funded["plan"]["id"].as_str().unwrap();
        let plan = self.bank.accelerate(plan_id, "2027-03-01", "fraud").await.expect(200);
        assert_eq!(plan["status"], "defaulted", "{plan}");
        plan
    }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

fn fen(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("money string: {v}"));
    let (y, f) = s.split_once('.').unwrap();
    y.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap()
}

fn count_type(notices: &[Value], kind: &str) -> usize {
    notices.iter().filter(|n| n["type"] == kind).count()
}

#[actix_web::test]
async fn a_write_off_takes_what_is_unpaid_and_frees_the_exposure() {
    let b = Books::new(json!({})).await;
    let before = b.defaulted(1).await;
    let plan = b.bank.write_off(id(&before), "2027-03-05", "uncollectible", "W-1").await.expect(200);
    assert_eq!(plan["status"], "written_off");
    let w = &plan["written_off"];
    assert_eq!((w["on"].as_str(), w["reason"].as_str(), w["reference"].as_str()), (Some("2027-03-05"), Some("uncollectible"), Some("W-1")));
    assert_eq!(fen(&w["principal"]), fen(&before["outstanding_principal"]), "all unpaid principal: {plan}");
    assert_eq!(fen(&w["total"]), fen(&w["principal"]) + fen(&w["interest"]) + fen(&w["fee"]) + fen(&w["penalty"]));
    let insts = plan["installments"].as_array().unwrap();
    assert_eq!(insts.iter().map(|i| fen(&i["written_off"])).sum::<i64>(), fen(&w["total"]));
    // Interest of installments due after 2027-03-05 is waived, never written off.
    assert_eq!(w["interest"], "0.00");
    for i in insts.iter().filter(|i| i["due_on"].as_str().unwrap() > "2027-03-05") {
        assert_eq!(fen(&i["interest"]), fen(&i["paid_interest"]) + fen(&i["waived"]), "{i}");
    }
    for i in insts {
        let expected = if fen(&i["written_off"]) > 0 {
            "written_off"
        } else if fen(&i["waived"]) > 0 {
            "waived"
        } else {
            "paid"
        };
        assert_eq!(i["status"], expected, "{i}");
    }
    assert_eq!((plan["recovered"].as_str(), plan["recoverable"].as_str()), (Some("0.00"), w["total"].as_str()));
    assert_eq!(plan["outstanding_principal"], "0.00");
    let order = b.store.order(plan["order_id"].as_str().unwrap()).await.expect(200);
    assert_eq!(order["status"], "written_off");
    assert_eq!(b.admin.get("/v1/admin/banks/bk").await.expect(200)["exposure_used"], "0.00");
    assert_eq!(count_type(&b.bank.notices().await, "plan.written_off"), 1);
    let owner = b.store.notices().await;
    assert!(owner.iter().any(|n| n["type"] == "order.updated" && n["data"]["status"] == "written_off"));
    b.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_written_off_plan_takes_only_recoveries_up_to_what_is_recoverable() {
    let b = Books::new(json!({})).await;
    let plan = b.defaulted(1).await;
    let p = id(&plan);
    let total = b.bank.write_off(p, "2027-03-05", "fraud", "W-1").await.expect(200)["written_off"]["total"].as_str().unwrap().to_string();
    b.bank.repay(p, "1.00", "2027-03-06", "R-1").await.expect_err(409, "invalid_state");
    b.bank.accelerate(p, "2027-03-06", "again").await.expect_err(409, "invalid_state");
    b.bank.payoff(p, "2027-03-06").await.expect_err(409, "invalid_state");
    b.bank.write_off(p, "2027-03-06", "fraud", "W-2").await.expect_err(409, "invalid_state");
    let r = b.bank.recover(p, "100.00", "2027-03-10", "C-1").await.expect(201);
    assert!(r["id"].as_str().unwrap().starts_with("rcv_"));
    assert_eq!(
        (r["amount"].as_str(), r["paid_on"].as_str(), r["booked_on"].as_str()),
        (Some("100.00"), Some("2027-03-10"), Some("2027-03-10"))
    );
    assert_eq!(fen(&r["recovered"]), 10000);
    assert_eq!(fen(&r["recoverable"]), fen(&json!(total)) - 10000);
    // One namespace of references: the write-off's, a repayment's or a recovery's.
    b.bank.recover(p, "1.00", "2027-03-10", "W-1").await.expect_err(409, "already_exists");
    b.bank.recover(p, "1.00", "2027-03-10", "C-1").await.expect_err(409, "already_exists");
    let one_fen_more = fen(&r["recoverable"]) + 1;
    let over = b.bank.recover(p, &format!("{}.{:02}", one_fen_more / 100, one_fen_more % 100), "2027-03-10", "C-2").await;
    over.expect_err(422, "overpayment");
    assert_eq!(over.body["error"]["details"]["recoverable"], r["recoverable"]);
    b.bank.recover(p, "1.00", "2027-03-04", "C-3").await.expect_err(422, "invalid_date");
    b.bank.recover(p, "1.00", "2027-03-10", "eod-x").await.expect_err(422, "invalid_request");
    b.bank.recover(p, r["recoverable"].as_str().unwrap(), "2027-03-11", "C-4").await.expect(201);
    let listed = b.store.all_pages(&format!("/v1/plans/{p}/recoveries?limit=1")).await;
    assert_eq!(listed.iter().map(|r| r["reference"].as_str().unwrap()).collect::<Vec<_>>(), ["C-1", "C-4"]);
    assert_eq!((listed[1]["recovered"].as_str(), listed[1]["recoverable"].as_str()), (Some(total.as_str()), Some("0.00")));
    let after = b.bank.plan(p).await.expect(200);
    assert_eq!((after["recovered"].as_str(), after["recoverable"].as_str()), (Some(total.as_str()), Some("0.00")));
    assert_eq!(count_type(&b.bank.notices().await, "recovery.recorded"), 2);
    b.admin.verify_ok().await;
}

#[actix_web::test]
async fn write_off_refusals_follow_the_order_of_checks() {
    let b = Books::new(json!({})).await;
    let plan = b.defaulted(1).await;
    let p = id(&plan);
    b.bank.repay(p, "10.00", "2027-03-03", "R-1").await.expect(201);
    b.bank.write_off(p, "2027-03-05", "fraud", "R-1").await.expect_err(409, "already_exists");
    b.bank.write_off(p, "2027-01-30", "fraud", "W-1").await.expect_err(422, "invalid_date");
    b.bank.write_off(p, "2027-03-02", "fraud", "W-1").await.expect_err(422, "invalid_date");
    b.bank.write_off(p, "2027-03-05", "aged", "W-1").await.expect_err(422, "invalid_request");
    b.bank.write_off(p, "2027-03-05", "fraud", "eod-2027-03-05").await.expect_err(422, "invalid_request");
    b.store.write_off(p, "2027-03-05", "fraud", "W-1").await.expect_err(403, "forbidden");
    b.admin.post("/v1/admin/banks", common::world::bank_body("bk2")).await.expect(201);
    let (_, key) = b.admin.new_key(json!({"kind": "bank", "id": "bk2"}), None).await;
    b.app.client(&key).write_off(p, "2027-03-05", "fraud", "W-1").await.expect_err(404, "not_found");
    b.app.client(&key).recover(p, "1.00", "2027-03-05", "C-1").await.expect_err(404, "not_found");
    b.bank.recover(p, "1.00", "2027-03-05", "C-1").await.expect_err(409, "invalid_state");
    // An active plan cannot be written off.
    b.app.set_today("2027-01-31");
    let order = b.store.place_order(order_body("POS-2", "p12", 7, 2)).await.expect(201);
    let funded = b.bank.fund(id(&order), "L2", "2027-01-31").await.expect(200);
    b.app.clock.reset();
    b.bank.write_off(funded["plan"]["id"].as_str().unwrap(), "2027-03-05", "fraud", "W-1").await.expect_err(409, "invalid_state");
    b.admin.write_off(p, "2027-03-05", "deceased", "W-1").await.expect(200);
    b.admin.verify_ok().await;
}

#[actix_web::test]
async fn two_write_offs_racing_on_one_plan_one_wins() {
    let b = Books::new(json!({})).await;
    let plan = b.defaulted(1).await;
    let p = id(&plan);
    let (x, y) = tokio::join!(b.bank.write_off(p, "2027-03-05", "fraud", "W-1"), b.bank.write_off(p, "2027-03-05", "fraud", "W-2"));
    let mut statuses = [x.status, y.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    b.admin.verify_ok().await;
}

#[actix_web::test]
async fn end_of_day_writes_off_aged_defaulted_plans() {
    let b = Books::new(json!({"write_off_after_days": 30})).await;
    let plan = b.defaulted(1).await;
    let oldest =
        plan["installments"].as_array().unwrap().iter().find(|i| i["status"] == "overdue").unwrap()["due_on"].as_str().unwrap().to_string();
    let oldest = chrono::NaiveDate::parse_from_str(&oldest, "%Y-%m-%d").unwrap();
    let not_yet = (oldest + chrono::Duration::days(30)).to_string();
    let aged = (oldest + chrono::Duration::days(31)).to_string();
    let s = b.admin.eod(&not_yet).await.expect(200);
    assert_eq!(s["write_offs"], json!({"count": 0, "amount": "0.00"}));
    let s = b.admin.eod(&aged).await.expect(200);
    assert_eq!(s["write_offs"]["count"], 1, "{s}");
    let after = b.bank.plan(id(&plan)).await.expect(200);
    assert_eq!(after["status"], "written_off");
    let w = &after["written_off"];
    assert_eq!((w["on"].as_str(), w["reason"].as_str()), (Some(aged.as_str()), Some("aged")));
    assert_eq!(w["reference"], format!("eod-{aged}"));
    assert_eq!(s["write_offs"]["amount"], w["total"]);
    // Running the date again writes off nothing more.
    assert_eq!(b.admin.eod(&aged).await.expect(200)["write_offs"]["count"], 0);
    b.admin.verify_ok().await;
}

#[actix_web::test]
async fn the_reconciliation_books_write_offs_and_recoveries_with_the_v2_columns() {
    let b = Books::new(json!({})).await;
    let plan = b.defaulted(1).await;
    let p = id(&plan);
    let written = b.bank.write_off(p, "2027-03-05", "fraud", "W-1").await.expect(200);
    b.admin.eod("2027-03-05").await.expect(200);
    // Valued on the closed date, the recovery is booked on the next open one.
    let r = b.bank.recover(p, "12.34", "2027-03-05", "C-1").await.expect(201);
    assert_eq!(r["booked_on"], "2027-03-06");
    let day = b.bank.get("/v1/reconciliation/2027-03-05").await.expect(200);
    let m = day["movements"].as_array().unwrap().iter().find(|m| m["kind"] == "write_off").expect("a write_off row").clone();
    let w = &written["written_off"];
    assert_eq!((m["plan_id"].as_str(), m["loan_no"].as_str(), m["reference"].as_str()), (Some(p), Some("L1"), Some("W-1")));
    assert_eq!((m["value_date"].as_str(), m["booked_on"].as_str()), (Some("2027-03-05"), Some("2027-03-05")));
    for k in ["principal", "interest", "fee", "penalty"] {
        assert_eq!(m[k], w[k], "{k}");
    }
    assert_eq!(m["amount"], w["total"]);
    assert_eq!((m["refund"].as_str(), m["waived"].as_str()), (Some("0.00"), Some("0.00")));
    assert_eq!(day["totals"]["write_off"]["count"], 1);
    assert_eq!(day["totals"]["recovery"]["count"], 0);
    let next = b.bank.get("/v1/reconciliation/2027-03-06").await.expect(200);
    let rec = next["movements"].as_array().unwrap().iter().find(|m| m["kind"] == "recovery").expect("a recovery row").clone();
    assert_eq!(
        (rec["amount"].as_str(), rec["principal"].as_str(), rec["value_date"].as_str()),
        (Some("12.34"), Some("0.00"), Some("2027-03-05"))
    );
    assert_eq!(rec["reference"], "C-1");
    assert_eq!(next["totals"]["recovery"]["amount"], "12.34");
    let csv = b.bank.get_with("/v1/reconciliation/2027-03-06", &[("accept", "text/csv")]).await;
    let text = csv.body.as_str().expect("CSV text").to_string();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].ends_with(",count,refund,waived"), "{}", lines[0]);
    let totals: Vec<&str> = lines.iter().filter(|l| l.starts_with("total_")).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(
        totals,
        [
            "total_funding",
            "total_repayment",
            "total_compensation",
            "total_expiry",
            "total_cancellation",
            "total_rejection",
            "total_return",
            "total_write_off",
            "total_recovery"
        ]
    );
    assert!(
        lines.iter().any(|l| l.starts_with("recovery,2027-03-06,2027-03-05,bk,") && l.ends_with(",12.34,0.00,0.00,0.00,0.00,,0.00,0.00")),
        "{text}"
    );
    b.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_recovery_racing_the_close_of_its_date_is_booked_on_exactly_one_date() {
    let b = Books::new(json!({})).await;
    let plan = b.defaulted(1).await;
    let p = id(&plan);
    b.bank.write_off(p, "2027-03-05", "fraud", "W-1").await.expect(200);
    let (r, eod) = tokio::join!(b.bank.recover(p, "10.00", "2027-03-06", "C-1"), b.admin.eod("2027-03-06"));
    let (r, _) = (r.expect(201), eod.expect(200));
    let booked = r["booked_on"].as_str().unwrap();
    assert!(booked == "2027-03-06" || booked == "2027-03-07", "{r}");
    let count = |day: serde_json::Value| day["totals"]["recovery"]["count"].as_i64().unwrap();
    let closed = count(b.bank.get("/v1/reconciliation/2027-03-06").await.expect(200));
    let next = count(b.bank.get("/v1/reconciliation/2027-03-07").await.expect(200));
    assert_eq!((closed, next), if booked == "2027-03-06" { (1, 0) } else { (0, 1) });
    // Once closed, a recovery valued on the date lands on the next open one.
    let late = b.bank.recover(p, "1.00", "2027-03-06", "C-2").await.expect(201);
    assert_eq!(late["booked_on"], "2027-03-07");
    b.admin.verify_ok().await;
}

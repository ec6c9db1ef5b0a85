//! Device returns (API.md §13) against a real PostgreSQL and real HTTP: the worked example to the
//! fen, the freeze of a requested return's plan, end of day leaving it alone and catching it up
//! after a rejection, every refusal of the new endpoints with the balances unchanged, and a
//! return racing a repayment and end of day on its plan.

mod common;

use common::world::{World, order_body, return_body};
use common::{Client, TestApp};
use serde_json::{Value, json};

/// The standard world (store `st`, bank `bk`, provider `wld`, product `p12`, customer 7's line)
/// with a second store and bank to play the other tenant.
struct Shop {
    app: TestApp,
    w: World,
}

impl Shop {
    async fn new(product_extra: Value) -> Shop {
        Self::with(TestApp::start().await, product_extra).await
    }

    async fn with(app: TestApp, product_extra: Value) -> Shop {
        let w = World::standard().product_extra(product_extra).store("st2", "440305").bank("bk2", json!({"priority": 9})).build(&app).await;
        Shop { app, w }
    }

    fn store(&self) -> &Client {
        self.w.key("st")
    }

    fn bank(&self) -> &Client {
        self.w.key("bk")
    }

    /// Order `n` (device `n`, principal 3000.00 at 0.18 over 12 months) placed and funded on
    /// 2027-01-31, the plan of API.md §9; the clock then runs on from now. Answers the funded order.
    async fn funded(&self, n: u64) -> Value {
        self.app.set_today("2027-01-31");
        let order = self.store().place_order(order_body(&format!("POS-{n}"), "p12", 7, n)).await.expect(201);
        let funded = self.bank().fund(id(&order), &format!("L{n}"), "2027-01-31").await.expect(200);
        self.app.clock.reset();
        funded
    }

    /// What a refusal must leave as it was: the line, the bank's exposure, the order and its plan
    /// (with its installments and hold), and the order's returns.
    async fn snapshot(&self, order: &str) -> Value {
        let mut line = self.w.provider().line(self.w.line()).await.expect(200);
        line.as_object_mut().unwrap().remove("updated_at");
        let bank = self.w.admin.get("/v1/admin/banks/bk").await.expect(200)["exposure_used"].clone();
        let o = self.w.admin.order(order).await.expect(200);
        json!({"line": line, "exposure_used": bank, "order": o, "returns": self.w.admin.returns_of_order(order).await})
    }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("an id in {v}"))
}

fn plan_id(order: &Value) -> &str {
    order["plan"]["id"].as_str().unwrap_or_else(|| panic!("a plan in {order}"))
}

fn of_type<'a>(notices: &'a [Value], kind: &str) -> Vec<&'a Value> {
    notices.iter().filter(|n| n["type"] == kind).collect()
}

#[actix_web::test]
async fn the_worked_example_to_the_fen_through_the_api() {
    let s = Shop::new(json!({"return_window_days": 30})).await;
    let order = s.funded(1).await;
    let (o, p) = (id(&order), plan_id(&order));
    assert_eq!(order["hold"]["amount"], "3300.46");
    let repaid = s.bank().repay(p, "275.04", "2027-02-28", "R-1").await.expect(201);
    assert_eq!(repaid["hold_released"], "275.04");
    let ret = s.store().request_return(o, return_body(1, "2027-03-01", "RET-1")).await.expect(201);
    let r = id(&ret);
    assert!(r.starts_with("ret_"), "{ret}");
    assert_eq!((ret["status"].as_str(), ret["order_id"].as_str(), ret["plan_id"].as_str()), (Some("requested"), Some(o), Some(p)));
    let amounts = |v: &Value| {
        [
            "principal_to_bank",
            "repayments_to_refund",
            "interest_waived",
            "fee_waived",
            "penalty_waived",
            "down_payment_to_refund",
            "hold_to_void",
        ]
        .map(|k| v[k].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(amounts(&ret), ["3000.00", "275.04", "255.46", "0.00", "0.00", "999.00", "3025.42"]);
    assert_eq!((ret["completed_on"].clone(), ret["rejection_reason"].clone()), (Value::Null, Value::Null));
    assert_eq!(s.bank().plan(p).await.expect(200)["return_id"], r);
    let done = s.bank().complete_return(r, "2027-03-02").await.expect(200);
    assert_eq!((done["status"].as_str(), done["completed_on"].as_str()), (Some("completed"), Some("2027-03-02")));
    assert_eq!(amounts(&done), amounts(&ret), "the amounts are fixed at the request");
    let after = s.store().order(o).await.expect(200);
    assert_eq!((after["status"].as_str(), after["plan"]["status"].as_str()), (Some("returned"), Some("returned")));
    let h = &after["hold"];
    assert_eq!(
        [&h["amount"], &h["released"], &h["converted"], &h["voided"], &h["remaining"], &h["status"], &h["void_reason"]],
        ["3300.46", "275.04", "0.00", "3025.42", "0.00", "voided", "returned"]
    );
    let plan = &after["plan"];
    assert_eq!((plan["outstanding_principal"].as_str(), plan["return_id"].as_str()), (Some("0.00"), Some(r)));
    let insts = plan["installments"].as_array().unwrap();
    assert_eq!(insts[0]["status"], "paid");
    assert!(insts[1..].iter().all(|i| i["status"] == "waived"), "{plan}");
    assert_eq!(insts[1]["waived"], "275.04", "its principal and interest forgiven: {}", insts[1]);
    let line = s.w.provider().line(s.w.line()).await.expect(200);
    assert_eq!((line["held"].as_str(), line["drawn"].as_str()), (Some("0.00"), Some("0.00")));
    assert_eq!(s.w.admin.get("/v1/admin/banks/bk").await.expect(200)["exposure_used"], "0.00");
    // Notices: the bank's request and completion, the provider's void, the owner's update.
    let bank = s.bank().notices().await;
    let (requested, completed) = (of_type(&bank, "return.requested"), of_type(&bank, "return.completed"));
    assert_eq!((requested.len(), completed.len()), (1, 1));
    for n in [requested[0], completed[0]] {
        let d = &n["data"];
        assert_eq!((d["return_id"].as_str(), d["order_id"].as_str(), d["plan_id"].as_str()), (Some(r), Some(o), Some(p)), "{n}");
        assert_eq!(
            (d["hold_id"].as_str(), d["credit_line_id"].as_str(), d["loan_no"].as_str()),
            (h["id"].as_str(), Some(s.w.line()), Some("L1"))
        );
        assert_eq!(d["hold_to_void"], "3025.42");
    }
    let voided = s.w.provider().notices().await.into_iter().filter(|n| n["type"] == "hold.voided").collect::<Vec<_>>();
    assert_eq!(voided.len(), 1);
    assert_eq!((voided[0]["data"]["reason"].as_str(), voided[0]["data"]["amount"].as_str()), (Some("returned"), Some("3025.42")));
    assert_eq!(voided[0]["data"]["plan_id"], p);
    assert!(s.store().notices().await.iter().any(|n| n["type"] == "order.updated" && n["data"]["status"] == "returned"));
    // Reads: the owner, the bank and the admin; newest first.
    for c in [s.store(), s.bank(), &s.w.admin] {
        assert_eq!(c.return_of(r).await.expect(200)["status"], "completed");
        assert_eq!(c.returns_of_order(o).await.len(), 1);
    }
    // A returned plan takes nothing more.
    s.bank().repay(p, "1.00", "2027-03-03", "R-2").await.expect_err(409, "invalid_state");
    s.bank().payoff(p, "2027-03-03").await.expect_err(409, "invalid_state");
    s.store().request_return(o, return_body(1, "2027-03-01", "RET-2")).await.expect_err(409, "invalid_state");
    s.w.admin.eod("2027-04-30").await.expect(200);
    assert_eq!(s.store().order(o).await.expect(200)["plan"], after["plan"], "end of day leaves a returned plan alone");
    s.w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_requested_return_freezes_its_plan_and_end_of_day_catches_it_up_after_a_rejection() {
    let s = Shop::new(json!({})).await;
    let order = s.funded(1).await;
    let (o, p) = (id(&order), plan_id(&order));
    let ret = s.store().request_return(o, return_body(1, "2027-02-05", "RET-1")).await.expect(201);
    let r = id(&ret);
    for refused in [
        s.bank().repay(p, "275.04", "2027-02-28", "R-1").await,
        s.bank().accelerate(p, "2027-02-10", "fraud").await,
        s.bank().payoff(p, "2027-02-10").await,
        s.w.admin.payoff(p, "2027-02-10").await,
    ] {
        refused.expect_err(409, "invalid_state");
        assert_eq!(refused.body["error"]["details"]["return_id"], r, "{}", refused.body);
    }
    let again = s.store().request_return(o, return_body(1, "2027-02-05", "RET-2")).await;
    again.expect_err(409, "invalid_state");
    assert_eq!(again.body["error"]["details"], json!({"reason": "return_in_progress", "return_id": r}));
    // Past the first due date and its grace: end of day leaves the frozen plan alone.
    let before = s.bank().plan(p).await.expect(200);
    let day = s.w.admin.eod("2027-03-05").await.expect(200);
    assert_eq!((day["overdue_marked"].as_i64(), day["compensations"]["count"].as_i64()), (Some(0), Some(0)), "{day}");
    assert_eq!(day["penalties"]["count"], 0);
    assert_eq!(s.bank().plan(p).await.expect(200), before);
    let rejected = s.bank().reject_return(r, "the device is damaged").await.expect(200);
    assert_eq!((rejected["status"].as_str(), rejected["rejection_reason"].as_str()), (Some("rejected"), Some("the device is damaged")));
    assert_eq!(of_type(&s.bank().notices().await, "return.rejected").len(), 1);
    // The next run brings it up to date, penalty counted from the due date (6 days, API.md §9):
    // round(230.04 × 0.0005 × 6) = 0.69, then converts installment 1 with it.
    let day = s.w.admin.eod("2027-03-06").await.expect(200);
    assert_eq!(day["overdue_marked"], 1, "{day}");
    assert_eq!(day["penalties"], json!({"count": 1, "amount": "0.69"}));
    assert_eq!(day["compensations"], json!({"count": 1, "amount": "275.73"}));
    let plan = s.bank().plan(p).await.expect(200);
    assert_eq!((plan["return_id"].as_str(), plan["status"].as_str()), (Some(r), Some("active")), "the latest return is kept");
    // Once anything was compensated, no return.
    let late = s.store().request_return(o, return_body(1, "2027-02-06", "RET-3")).await;
    late.expect_err(409, "invalid_state");
    assert_eq!(late.body["error"]["details"]["reason"], "compensated");
    s.bank().repay(p, "10.00", "2027-03-06", "R-1").await.expect(201);
    s.w.admin.verify_ok().await;
}

/// A plan's first return rejected, a second one completed: `verify` judges each return by whether
/// it is the plan's latest, not the plan's own `return_id` (found by the simulation, seed 10).
#[actix_web::test]
async fn a_rejected_return_then_a_completed_one_verify() {
    let s = Shop::new(json!({})).await;
    let order = s.funded(1).await;
    let (o, p) = (id(&order), plan_id(&order));
    let first = s.store().request_return(o, return_body(1, "2027-02-05", "RET-1")).await.expect(201);
    s.bank().reject_return(id(&first), "the box is missing").await.expect(200);
    let second = s.store().request_return(o, return_body(1, "2027-02-06", "RET-2")).await.expect(201);
    s.bank().complete_return(id(&second), "2027-02-06").await.expect(200);
    let plan = s.bank().plan(p).await.expect(200);
    assert_eq!((plan["status"].as_str(), plan["return_id"].as_str()), (Some("returned"), Some(id(&second))));
    s.w.admin.verify_ok().await;
}

#[actix_web::test]
async fn every_refusal_follows_the_order_of_checks_and_changes_nothing() {
    let app = TestApp::start_with(|s| s.clock.allow_future_dates = false).await;
    let s = Shop::with(app, json!({})).await;
    let order = s.funded(1).await;
    let o = id(&order).to_string();
    s.app.set_today("2027-02-03");
    let path = format!("/v1/orders/{o}/returns");
    let before = s.snapshot(&o).await;
    let good = return_body(1, "2027-02-02", "RET-1");
    // 400, 403, 404 and body errors, in §1's order.
    s.store().call("POST", &path, Some(&good), None).await.expect_err(400, "idempotency_key_required");
    s.bank().request_return(&o, good.clone()).await.expect_err(403, "forbidden");
    s.w.provider().request_return(&o, good.clone()).await.expect_err(403, "forbidden");
    s.bank().call("POST", &path, Some(&good), None).await.expect_err(403, "forbidden");
    let bad_bodies = [
        (json!({"reason": "no_reason", "returned_on": "2027-02-02", "imei": "490154203237519", "reference": "R"}), 422, "invalid_imei"),
        (json!({"reason": "no_reason", "returned_on": "2027-02-30", "imei": common::imei(1), "reference": "R"}), 422, "invalid_date"),
        (json!({"reason": "bored", "returned_on": "2027-02-02", "imei": common::imei(1), "reference": "R"}), 422, "invalid_request"),
        (json!({"reason": "no_reason", "returned_on": "2027-02-02", "imei": common::imei(1)}), 422, "invalid_request"),
        (common::world::merged(good.clone(), json!({"extra": 1})), 422, "invalid_request"),
        (common::world::merged(good.clone(), json!({"imei": 490154203237518_u64})), 422, "invalid_request"),
    ];
    for (body, status, code) in bad_bodies {
        s.store().request_return(&o, body.clone()).await.expect_err(status, code);
    }
    s.w.key("st2").request_return(&o, good.clone()).await.expect_err(404, "not_found");
    s.store().request_return("ord_missing", good.clone()).await.expect_err(404, "not_found");
    // Business rules: the IMEI, then today, then the window.
    s.store().request_return(&o, return_body(2, "2027-02-02", "RET-1")).await.expect_err(422, "imei_mismatch");
    s.store().request_return(&o, return_body(2, "2027-02-04", "RET-1")).await.expect_err(422, "imei_mismatch");
    s.store().request_return(&o, return_body(1, "2027-02-04", "RET-1")).await.expect_err(422, "invalid_date");
    s.store().request_return(&o, return_body(1, "2027-01-30", "RET-1")).await.expect_err(422, "return_window_closed");
    s.app.set_today("2027-02-08");
    let closed = s.store().request_return(&o, return_body(1, "2027-02-08", "RET-1")).await;
    closed.expect_err(422, "return_window_closed");
    assert_eq!(closed.body["error"]["details"]["return_window_days"], 7);
    assert_eq!(s.snapshot(&o).await, before, "no refusal changed anything");
    // Replays and reused keys; then the reference is taken for ever.
    let ret = s.store().post_idem(&path, good.clone(), "key-1").await.expect(201);
    let replay = s.store().post_idem(&path, good.clone(), "key-1").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.clone().expect(201), ret);
    s.store().post_idem(&path, return_body(1, "2027-02-02", "RET-X"), "key-1").await.expect_err(422, "idempotency_key_reused");
    let r = id(&ret).to_string();
    let decision = format!("/v1/returns/{r}/decision");
    let frozen = s.snapshot(&o).await;
    // The decision: 403 for the owner, the admin and the provider; 404 for another bank.
    for c in [s.store(), &s.w.admin, s.w.provider()] {
        c.complete_return(&r, "2027-02-03").await.expect_err(403, "forbidden");
    }
    s.w.key("bk2").complete_return(&r, "2027-02-03").await.expect_err(404, "not_found");
    s.bank().complete_return("ret_missing", "2027-02-03").await.expect_err(404, "not_found");
    s.bank()
        .call("POST", &decision, Some(&json!({"decision": "completed", "completed_on": "2027-02-03"})), None)
        .await
        .expect_err(400, "idempotency_key_required");
    for body in [
        json!({"decision": "approved"}),
        json!({"decision": "completed"}),
        json!({"decision": "rejected", "completed_on": "2027-02-03", "reason": "x"}),
        json!({"decision": "completed", "completed_on": "2027-02-03", "reason": "x"}),
    ] {
        s.bank().post(&decision, body).await.expect_err(422, "invalid_request");
    }
    s.bank().post(&decision, json!({"decision": "completed", "completed_on": "03/02/2027"})).await.expect_err(422, "invalid_date");
    s.bank().complete_return(&r, "2027-02-01").await.expect_err(422, "invalid_date");
    s.bank().complete_return(&r, "2027-02-09").await.expect_err(422, "invalid_date");
    // Reads: providers 403, other tenants 404 as if missing.
    s.w.provider().return_of(&r).await.expect_err(403, "forbidden");
    s.w.provider().get(&format!("/v1/orders/{o}/returns")).await.expect_err(403, "forbidden");
    for c in [s.w.key("st2"), s.w.key("bk2")] {
        c.return_of(&r).await.expect_err(404, "not_found");
        c.get(&format!("/v1/orders/{o}/returns")).await.expect_err(404, "not_found");
    }
    s.store().get(&format!("/v1/orders/{o}/returns?limit=0")).await.expect_err(422, "invalid_request");
    assert_eq!(s.snapshot(&o).await, frozen, "no refusal of the decision changed anything");
    // Decided once: a second decision is a state refusal; the rejected return's reference stays taken.
    let key = "decide-1";
    let rejected = s.bank().post_idem(&decision, json!({"decision": "rejected", "reason": "scratched"}), key).await.expect(200);
    let replayed = s.bank().post_idem(&decision, json!({"decision": "rejected", "reason": "scratched"}), key).await;
    assert_eq!((replayed.header("idempotent-replayed"), replayed.body.clone()), (Some("true"), rejected));
    s.bank().complete_return(&r, "2027-02-03").await.expect_err(409, "invalid_state");
    s.store().request_return(&o, return_body(2, "2027-02-02", "RET-1")).await.expect_err(409, "already_exists");
    let second = s.store().request_return(&o, return_body(1, "2027-02-02", "RET-2")).await.expect(201);
    let listed: Vec<String> = s.store().returns_of_order(&o).await.iter().map(|r| id(r).to_string()).collect();
    assert_eq!(listed, [id(&second).to_string(), r.clone()], "newest first");
    s.app.clock.reset();
    s.w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_window_of_zero_refuses_every_return_and_an_unfunded_order_has_none() {
    let s = Shop::new(json!({"return_window_days": 0})).await;
    let product = s.w.admin.get("/v1/admin/products/p12").await.expect(200);
    assert_eq!(product["return_window_days"], 0);
    let order = s.funded(1).await;
    s.store().request_return(id(&order), return_body(1, "2027-01-31", "R")).await.expect_err(422, "return_window_closed");
    // The window is the order's, taken at placement: a later change of the product does not move it.
    let patched = s.w.admin.patch("/v1/admin/products/p12", json!({"return_window_days": 30})).await.expect(200);
    assert_eq!(patched["return_window_days"], 30);
    s.store().request_return(id(&order), return_body(1, "2027-01-31", "R")).await.expect_err(422, "return_window_closed");
    s.w.admin.patch("/v1/admin/products/p12", json!({"return_window_days": 31})).await.expect_err(422, "invalid_request");
    let reset = s.w.admin.patch("/v1/admin/products/p12", json!({"return_window_days": null})).await.expect(200);
    assert_eq!(reset["return_window_days"], 7);
    let unfunded = s.store().place_order(order_body("POS-U", "p12", 7, 9)).await.expect(201);
    let refused = s.store().request_return(id(&unfunded), return_body(9, "2027-01-31", "R")).await;
    refused.expect_err(409, "invalid_state");
    assert_eq!(refused.body["error"]["details"]["reason"], "status");
    s.w.admin.verify_ok().await;
}

/// A return request, a repayment and end of day race on one plan, round after round: whichever
/// wins, the outcome is one of the consistent ones and the ledger verifies.
#[actix_web::test]
async fn a_return_racing_a_repayment_and_end_of_day_has_one_consistent_outcome() {
    let s = Shop::new(json!({"return_window_days": 30})).await;
    let rounds = 8;
    let (mut returned, mut compensated_first) = (0, 0);
    for n in 1..=rounds {
        let order = s.funded(n).await;
        let (o, p) = (id(&order), plan_id(&order));
        // Each round closes a later date past installment 1's due date and grace.
        let eod_date = format!("2027-03-{:02}", 3 + n);
        let (ret_ref, rep_ref) = (format!("RET-{n}"), format!("R-{n}"));
        let (ret, rep, day) = tokio::join!(
            s.store().request_return(o, return_body(n, "2027-02-20", &ret_ref)),
            s.bank().repay(p, "275.04", "2027-02-28", &rep_ref),
            s.w.admin.eod(&eod_date),
        );
        day.expect(200);
        let plan = s.bank().plan(p).await.expect(200);
        let compensated = plan["compensated"] != "0.00";
        match ret.status {
            201 => {
                returned += 1;
                let r = id(&ret.body);
                assert!(!compensated, "a return is never taken on a compensated plan: {plan}");
                assert_eq!(plan["return_id"], r);
                match rep.status {
                    201 => assert_eq!(ret.body["repayments_to_refund"], "275.04", "the repayment came first"),
                    409 => {
                        assert_eq!(rep.body["error"]["details"]["return_id"], r, "{}", rep.body);
                        assert_eq!(ret.body["repayments_to_refund"], "0.00");
                    }
                    other => panic!("repayment answered {other}: {}", rep.body),
                }
                // Decide every other round each way; both leave the books right.
                if n % 2 == 0 {
                    s.bank().complete_return(r, "2027-02-21").await.expect(200);
                } else {
                    s.bank().reject_return(r, "no").await.expect(200);
                }
            }
            409 => {
                compensated_first += 1;
                assert_eq!(ret.body["error"]["details"]["reason"], "compensated", "{}", ret.body);
                assert!(compensated, "{plan}");
                assert_eq!(rep.status, 201, "{}", rep.body);
            }
            other => panic!("the return answered {other}: {}", ret.body),
        }
    }
    assert_eq!(returned + compensated_first, rounds);
    s.w.admin.verify_ok().await;
}

/// A provider's settlement movements of a date, and the roll-forward of its held (API.md §15):
/// `hold_confirmed` moves nothing and counts in neither identity.
async fn settlement(provider: &Client, date: &str) -> Value {
    let file = provider.get(&format!("/v1/providers/wld/settlement/{date}")).await.expect(200);
    let t = |k: &str| fen(&file["totals"][k]["amount"]);
    let (o, c) = (&file["opening"], &file["closing"]);
    assert_eq!(
        fen(&c["held"]),
        fen(&o["held"]) + t("hold_placed") - t("hold_released") - t("hold_converted") - t("hold_voided"),
        "held rolls forward: {file}"
    );
    file
}

fn fen(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("money string: {v}"));
    let (y, f) = s.split_once('.').unwrap();
    y.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap()
}

fn kinds(file: &Value) -> Vec<&str> {
    file["movements"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect()
}

#[actix_web::test]
async fn the_reports_book_a_completed_return() {
    let app = TestApp::start().await;
    let partner = common::world::partner_body("pa", &["wld"], &["44"]);
    let w = World::standard().product_extra(json!({"return_window_days": 30})).partner(partner).build(&app).await;
    app.set_today("2027-01-31");
    let body = common::world::by_partner(order_body("PA-1", "p12", 7, 1), "440305", "a-1");
    let order = w.partner().place_order(body).await.expect(201);
    let funded = w.bank().fund(id(&order), "L1", "2027-01-31").await.expect(200);
    app.clock.reset();
    let (o, p) = (id(&order), plan_id(&funded));
    w.bank().repay(p, "275.04", "2027-02-28", "R-1").await.expect(201);
    let ret = w.partner().request_return(o, return_body(1, "2027-03-01", "RET-1")).await.expect(201);
    w.bank().complete_return(id(&ret), "2027-03-02").await.expect(200);
    // The bank's reconciliation: a `return` row, amount = principal = principal_to_bank.
    let day = w.bank().get("/v1/reconciliation/2027-03-02").await.expect(200);
    let rows: Vec<&Value> = day["movements"].as_array().unwrap().iter().filter(|m| m["kind"] == "return").collect();
    assert_eq!(rows.len(), 1, "{day}");
    let m = rows[0];
    assert_eq!((m["order_id"].as_str(), m["plan_id"].as_str(), m["loan_no"].as_str()), (Some(o), Some(p), Some("L1")));
    assert_eq!(
        (m["reference"].as_str(), m["value_date"].as_str(), m["booked_on"].as_str()),
        (Some("RET-1"), Some("2027-03-02"), Some("2027-03-02"))
    );
    let money =
        ["amount", "principal", "interest", "fee", "penalty", "refund", "waived"].map(|k| m[k].as_str().unwrap_or_default().to_string());
    assert_eq!(money, ["3000.00", "3000.00", "0.00", "0.00", "0.00", "275.04", "255.46"]);
    assert_eq!((day["totals"]["return"]["count"].as_i64(), day["totals"]["return"]["refund"].as_str()), (Some(1), Some("275.04")));
    let csv = w.bank().get_with("/v1/reconciliation/2027-03-02", &[("accept", "text/csv")]).await.body;
    let csv = csv.as_str().unwrap();
    assert!(
        csv.contains(&format!("return,2027-03-02,2027-03-02,bk,{o},{p},L1,,RET-1,3000.00,3000.00,0.00,0.00,0.00,,275.04,255.46\r\n")),
        "{csv}"
    );
    // The partner's statement counts it in the month of completed_on.
    let march = w.partner().get("/v1/partners/pa/statement?month=2027-03").await.expect(200);
    assert_eq!((march["agents"][0]["agent_id"].as_str(), march["agents"][0]["returned"].as_i64()), (Some("a-1"), Some(1)), "{march}");
    assert_eq!(march["total"]["returned"], 1);
    assert_eq!(w.partner().get("/v1/partners/pa/statement?month=2027-01").await.expect(200)["total"]["returned"], 0);
    // The provider's settlement: the void, with its reason, plan and the return's completion date.
    let file = settlement(w.provider(), "2027-03-02").await;
    assert_eq!(kinds(&file), ["hold_voided"]);
    let v = &file["movements"][0];
    assert_eq!((v["reason"].as_str(), v["plan_id"].as_str(), v["value_date"].as_str()), (Some("returned"), Some(p), Some("2027-03-02")));
    assert_eq!(v["amount"], "3025.42");
    // Closed, the day answers the same.
    w.admin.eod("2027-03-02").await.expect(200);
    assert_eq!(w.bank().get("/v1/reconciliation/2027-03-02").await.expect(200)["movements"], day["movements"]);
    assert_eq!(settlement(w.provider(), "2027-03-02").await["movements"], file["movements"]);
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn the_settlement_lists_confirmations_and_says_each_voids_own_reason() {
    let app = TestApp::start().await;
    let w = World::standard().provider_extra("wld", json!({"hold_confirmation": "required"})).build(&app).await;
    app.set_today("2027-01-31");
    let first = w.store().place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    let hold = first["hold"]["id"].as_str().unwrap();
    w.provider().confirm_hold(hold, "3300.46", "WLD-1").await.expect(200);
    let second = w.store().place_order(order_body("POS-2", "p12", 7, 2)).await.expect(201);
    w.provider().decline_hold(second["hold"]["id"].as_str().unwrap(), "customer_declined").await.expect(200);
    app.clock.reset();
    let file = settlement(w.provider(), "2027-01-31").await;
    assert_eq!(kinds(&file), ["hold_placed", "hold_confirmed", "hold_placed", "hold_voided"], "{file}");
    let c = &file["movements"][1];
    assert_eq!((c["hold_id"].as_str(), c["order_id"].as_str(), c["bank_id"].as_str()), (Some(hold), Some(id(&first)), Some("bk")));
    assert_eq!(
        (c["amount"].as_str(), c["value_date"].as_str(), c["booked_on"].as_str()),
        (Some("3300.46"), Some("2027-01-31"), Some("2027-01-31"))
    );
    assert!(c["plan_id"].is_null() && c["reason"].is_null(), "{c}");
    assert_eq!(file["totals"]["hold_confirmed"]["count"], 1);
    // A decline leaves the order `rejected`, but the hold was voided because it was declined.
    assert_eq!(file["movements"][3]["reason"], "declined");
    let csv = w.provider().get_with("/v1/providers/wld/settlement/2027-01-31", &[("accept", "text/csv")]).await.body;
    assert!(csv.as_str().unwrap().contains(&format!("hold_confirmed,2027-01-31,2027-01-31,wld,{},{hold},", w.line())), "{csv}");
    w.admin.eod("2027-01-31").await.expect(200);
    assert_eq!(settlement(w.provider(), "2027-01-31").await["movements"], file["movements"], "frozen as it was");
    w.admin.verify_ok().await;
}

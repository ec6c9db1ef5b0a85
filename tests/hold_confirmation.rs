//! API.md §12: why every voided hold was voided (`void_reason` on the hold and `data.reason` on
//! its `hold.voided` notice).

mod common;

use common::TestApp;
use common::world::{World, order_body};
use serde_json::{Value, json};

/// The `hold.voided` notices the provider received, by hold id: their `data`.
async fn voided_notices(provider: &common::Client) -> Vec<Value> {
    provider.notices().await.into_iter().filter(|n| n["type"] == "hold.voided").map(|n| n["data"].clone()).collect()
}

#[actix_web::test]
async fn every_void_carries_its_reason_on_the_hold_and_in_its_notice() {
    let app = TestApp::start().await;
    let w = World::standard().product_extra(json!({"funding_timeout_hours": 1})).build(&app).await;
    let place = async |n: u64| w.store().place_order(order_body(&format!("POS-{n}"), "p12", 7, n)).await.expect(201);
    let (cancelled, rejected, expired) = (place(1).await, place(2).await, place(3).await);
    let id = |o: &Value| o["id"].as_str().unwrap().to_string();
    w.store().cancel(&id(&cancelled), "changed mind").await.expect(200);
    w.bank().reject(&id(&rejected), "kyc").await.expect(200);
    let deadline = chrono::DateTime::parse_from_rfc3339(expired["funding_deadline"].as_str().unwrap()).unwrap();
    let next = deadline.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive() + chrono::Duration::days(1);
    assert_eq!(w.admin.eod(&next.to_string()).await.expect(200)["holds_expired"], 1);

    let notices = voided_notices(w.provider()).await;
    for (order, reason) in [(&cancelled, "cancelled"), (&rejected, "rejected"), (&expired, "expired")] {
        let read = w.store().order(&id(order)).await.expect(200);
        assert_eq!((read["hold"]["status"].as_str(), read["hold"]["void_reason"].as_str()), (Some("voided"), Some(reason)), "{read}");
        let hold_id = read["hold"]["id"].as_str().unwrap();
        let notice = notices.iter().find(|d| d["hold_id"] == hold_id).unwrap_or_else(|| panic!("hold.voided for {hold_id}"));
        assert_eq!((notice["reason"].as_str(), notice["amount"].as_str()), (Some(reason), Some("3300.46")), "{notice}");
    }
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_hold_not_voided_has_no_void_reason() {
    let app = TestApp::start().await;
    let w = World::standard().build(&app).await;
    let order = w.store().place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    assert_eq!(order["hold"]["void_reason"], Value::Null);
    assert_eq!(order["hold"]["status"], "active");
}

#[actix_web::test]
async fn the_database_keeps_void_reason_and_voided_status_together() {
    let app = TestApp::start().await;
    let w = World::standard().build(&app).await;
    let order = w.store().place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    let db = app.db().await;
    let hold_id = order["hold"]["id"].as_str().unwrap();
    let err = db.execute("UPDATE holds SET void_reason = 'cancelled' WHERE id = $1", &[&hold_id]).await.unwrap_err();
    assert!(err.to_string().contains("holds_voided_with_reason") || format!("{err:?}").contains("holds_voided_with_reason"), "{err:?}");
    let err = db.execute("UPDATE holds SET void_reason = 'lost' WHERE id = $1", &[&hold_id]).await.unwrap_err();
    assert!(format!("{err:?}").contains("check"), "{err:?}");
}

// ---------- the provider's confirmation (API.md §12) ----------

const HOLD: &str = "3300.46";

/// The standard world with provider wld requiring confirmation (timeout 15 minutes unless
/// `extra` says otherwise).
async fn confirming(app: &TestApp, extra: Value) -> World {
    let provider = common::world::merged(json!({"hold_confirmation": "required"}), extra);
    World::standard().provider_extra("wld", provider).build(app).await
}

/// Places order `n` (principal 3000.00) and answers it.
async fn order(w: &World, n: u64) -> Value {
    w.store().place_order(order_body(&format!("POS-{n}"), "p12", 7, n)).await.expect(201)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("a string: {v}"))
}

fn types(notices: &[Value]) -> Vec<String> {
    notices.iter().map(|n| s(&n["type"]).to_string()).collect()
}

#[actix_web::test]
async fn providers_take_the_confirmation_settings_on_create_patch_and_reads() {
    let app = TestApp::start().await;
    let w = World::standard().build(&app).await;
    let read = w.admin.get("/v1/admin/providers/wld").await.expect(200);
    assert_eq!((read["hold_confirmation"].as_str(), read["hold_confirmation_timeout_minutes"].as_i64()), (Some("none"), Some(15)));
    let body = json!({"id": "ant", "name": "花呗", "hold_confirmation": "required", "hold_confirmation_timeout_minutes": 30});
    let created = w.admin.post("/v1/admin/providers", body).await.expect(201);
    assert_eq!(
        (created["hold_confirmation"].as_str(), created["hold_confirmation_timeout_minutes"].as_i64()),
        (Some("required"), Some(30))
    );
    let patched = w.admin.patch("/v1/admin/providers/ant", json!({"hold_confirmation_timeout_minutes": null})).await.expect(200);
    assert_eq!(
        (patched["hold_confirmation"].as_str(), patched["hold_confirmation_timeout_minutes"].as_i64()),
        (Some("required"), Some(15))
    );
    for (bad, field) in [
        (json!({"hold_confirmation": "sometimes"}), "hold_confirmation"),
        (json!({"hold_confirmation_timeout_minutes": 0}), "hold_confirmation_timeout_minutes"),
        (json!({"hold_confirmation_timeout_minutes": 1441}), "hold_confirmation_timeout_minutes"),
        (json!({"hold_confirmation_timeout_minutes": "15"}), "hold_confirmation_timeout_minutes"),
    ] {
        let r = w.admin.patch("/v1/admin/providers/ant", bad).await;
        r.expect_err(422, "invalid_request");
        assert_eq!(r.field(), Some(field));
    }
    assert_eq!(
        w.admin.get("/v1/admin/providers/ant").await.expect(200)["hold_confirmation_timeout_minutes"],
        15,
        "refusals change nothing"
    );
}

#[actix_web::test]
async fn a_pending_hold_is_held_but_the_bank_sees_nothing_until_confirmation() {
    let app = TestApp::start().await;
    let w = confirming(&app, json!({})).await;
    let body = merged_consent(order_body("POS-1", "p12", 7, 1));
    let o = w.store().place_order(body).await.expect(201);
    assert_eq!((s(&o["status"]), &o["funding_deadline"]), ("awaiting_hold_confirmation", &Value::Null));
    let hold = &o["hold"];
    assert_eq!((s(&hold["status"]), s(&hold["remaining"]), &hold["confirmed_at"]), ("pending", HOLD, &Value::Null));
    let deadline = chrono::DateTime::parse_from_rfc3339(s(&hold["confirm_deadline"])).unwrap();
    let created = chrono::DateTime::parse_from_rfc3339(s(&o["created_at"])).unwrap();
    assert_eq!((deadline - created).num_minutes(), 15);
    let line = w.provider().line(w.line()).await.expect(200);
    assert_eq!((s(&line["held"]), s(&line["held_pending"]), s(&line["available"])), (HOLD, HOLD, "96699.54"));
    assert_eq!(w.admin.get("/v1/admin/banks/bk").await.expect(200)["exposure_used"], "3000.00", "the bank's exposure is reserved");

    let provider = w.provider().notices().await;
    assert_eq!(types(&provider), ["hold.requested"]);
    let data = &provider[0]["data"];
    assert_eq!((s(&data["hold_id"]), s(&data["order_id"]), s(&data["amount"])), (s(&hold["id"]), s(&o["id"]), HOLD));
    assert_eq!((&data["credit_line_id"], &data["confirm_deadline"]), (&json!(w.line()), &hold["confirm_deadline"]));
    assert_eq!(data["consent"], json!({"method": "provider_app", "reference": "c-1"}));
    assert!(w.bank().notices().await.is_empty(), "the bank is told nothing yet");

    let (oid, hid) = (s(&o["id"]), s(&hold["id"]));
    w.bank().order(oid).await.expect_err(404, "not_found");
    w.bank().get(&format!("/v1/holds/{hid}")).await.expect_err(404, "not_found");
    w.bank().get(&format!("/v1/orders/{oid}/borrower")).await.expect_err(404, "not_found");
    w.bank().fund(oid, "L1", &today(&app)).await.expect_err(404, "not_found");
    assert_eq!(w.bank().get("/v1/orders").await.expect(200)["data"], json!([]));
    assert_eq!(w.store().get(&format!("/v1/holds/{hid}")).await.expect(200)["status"], "pending");
    w.admin.verify_ok().await;
}

fn merged_consent(body: Value) -> Value {
    common::world::merged(body, json!({"consent": {"method": "provider_app", "reference": "c-1"}}))
}

fn today(app: &TestApp) -> String {
    app.state.deps.clock.today().to_string()
}

#[actix_web::test]
async fn confirmation_opens_the_order_to_its_bank() {
    let app = TestApp::start().await;
    let w = confirming(&app, json!({})).await;
    let o = order(&w, 1).await;
    let (oid, hid) = (s(&o["id"]).to_string(), s(&o["hold"]["id"]).to_string());
    let acked = w.provider().acknowledge_hold(&hid, "https://wld.example/sign?o=1", Some("W-1")).await.expect(200);
    assert_eq!(
        (s(&acked["status"]), s(&acked["sign_url"]), s(&acked["provider_order_no"])),
        ("pending", "https://wld.example/sign?o=1", "W-1")
    );
    assert_eq!(w.store().order(&oid).await.expect(200)["hold"]["sign_url"], "https://wld.example/sign?o=1", "the owner sees where to sign");

    let wrong = w.provider().confirm_hold(&hid, "3300.45", "W-1").await;
    wrong.expect_err(422, "hold_amount_mismatch");
    assert_eq!(w.store().order(&oid).await.expect(200)["status"], "awaiting_hold_confirmation", "a refusal changes nothing");

    let confirmed =
        w.provider().post_idem(&format!("/v1/holds/{hid}/confirm"), json!({"amount": HOLD, "provider_order_no": "W-1"}), "c1").await;
    let confirmed = confirmed.expect(200);
    assert_eq!((s(&confirmed["status"]), s(&confirmed["provider_order_no"])), ("active", "W-1"));
    let at = chrono::DateTime::parse_from_rfc3339(s(&confirmed["confirmed_at"])).unwrap();
    let replay =
        w.provider().post_idem(&format!("/v1/holds/{hid}/confirm"), json!({"amount": HOLD, "provider_order_no": "W-1"}), "c1").await;
    assert_eq!((replay.status, replay.header("Idempotent-Replayed")), (200, Some("true")));
    assert_eq!(replay.body, confirmed);
    let reused =
        w.provider().post_idem(&format!("/v1/holds/{hid}/confirm"), json!({"amount": HOLD, "provider_order_no": "W-2"}), "c1").await;
    reused.expect_err(422, "idempotency_key_reused");
    let again = w.provider().confirm_hold(&hid, HOLD, "W-1").await;
    again.expect_err(409, "invalid_state");
    assert_eq!(again.body["error"]["details"], json!({"status": "active", "void_reason": null}));

    let read = w.bank().order(&oid).await.expect(200);
    let deadline = chrono::DateTime::parse_from_rfc3339(s(&read["funding_deadline"])).unwrap();
    assert_eq!((s(&read["status"]), (deadline - at).num_hours()), ("awaiting_funding", 72));
    assert_eq!(types(&w.bank().notices().await), ["funding.requested"]);
    assert_eq!(types(&w.provider().notices().await), ["hold.requested"], "nothing more to the provider");
    assert_eq!(w.provider().line(w.line()).await.expect(200)["held_pending"], "0.00");
    let funded = w.bank().fund(&oid, "L1", &today(&app)).await.expect(200);
    assert_eq!(funded["status"], "active");
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn provider_order_numbers_are_unique_per_provider_for_ever() {
    let app = TestApp::start().await;
    let w = confirming(&app, json!({})).await;
    let (a, b) = (order(&w, 1).await, order(&w, 2).await);
    let (ha, hb) = (s(&a["hold"]["id"]).to_string(), s(&b["hold"]["id"]).to_string());
    w.provider().acknowledge_hold(&ha, "https://wld.example/a", Some("W-1")).await.expect(200);
    w.provider().confirm_hold(&hb, HOLD, "W-1").await.expect_err(409, "already_exists");
    w.provider().acknowledge_hold(&hb, "https://wld.example/b", Some("W-1")).await.expect_err(409, "already_exists");
    // A confirm may replace the number its hold was acknowledged with; the replaced one stays used.
    w.provider().confirm_hold(&ha, HOLD, "W-2").await.expect(200);
    w.provider().confirm_hold(&hb, HOLD, "W-1").await.expect_err(409, "already_exists");
    w.provider().confirm_hold(&hb, HOLD, "W-3").await.expect(200);
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_decline_voids_the_hold_and_rejects_the_order() {
    let app = TestApp::start().await;
    let w = confirming(&app, json!({})).await;
    let o = order(&w, 1).await;
    let (oid, hid) = (s(&o["id"]).to_string(), s(&o["hold"]["id"]).to_string());
    let hold = w.provider().decline_hold(&hid, "insufficient_limit").await.expect(200);
    assert_eq!(
        (s(&hold["status"]), s(&hold["void_reason"]), s(&hold["decline_reason"]), s(&hold["voided"])),
        ("voided", "declined", "insufficient_limit", HOLD)
    );
    let read = w.store().order(&oid).await.expect(200);
    assert_eq!((s(&read["status"]), s(&read["reason"])), ("rejected", "hold_declined"));
    let line = w.provider().line(w.line()).await.expect(200);
    assert_eq!((s(&line["held"]), s(&line["held_pending"])), ("0.00", "0.00"));
    assert_eq!(w.admin.get("/v1/admin/banks/bk").await.expect(200)["exposure_used"], "0.00");
    let voided = voided_notices(w.provider()).await;
    assert_eq!((voided.len(), s(&voided[0]["reason"])), (1, "declined"));
    assert!(w.bank().notices().await.is_empty(), "a declined order is never told to its bank");
    let late = w.provider().confirm_hold(&hid, HOLD, "W-1").await;
    late.expect_err(409, "invalid_state");
    assert_eq!(late.body["error"]["details"], json!({"status": "voided", "void_reason": "declined"}));
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_pending_order_may_be_cancelled_without_its_bank_hearing_of_it() {
    let app = TestApp::start().await;
    let w = confirming(&app, json!({})).await;
    let o = order(&w, 1).await;
    let cancelled = w.store().cancel(s(&o["id"]), "changed mind").await.expect(200);
    assert_eq!((s(&cancelled["status"]), s(&cancelled["hold"]["void_reason"])), ("cancelled", "cancelled"));
    assert!(w.bank().notices().await.is_empty());
    assert_eq!(s(&voided_notices(w.provider()).await[0]["reason"]), "cancelled");
    let date = today(&app);
    assert_eq!(
        w.bank().get(&format!("/v1/reconciliation/{date}")).await.expect(200)["movements"],
        json!([]),
        "nothing in the bank's books"
    );
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn past_its_deadline_a_hold_is_timed_out_by_the_request_that_finds_it() {
    let app = TestApp::start().await;
    let w = confirming(&app, json!({"hold_confirmation_timeout_minutes": 1})).await;
    let (a, b) = (order(&w, 1).await, order(&w, 2).await);
    let deadline = chrono::DateTime::parse_from_rfc3339(s(&a["hold"]["confirm_deadline"])).unwrap().with_timezone(&chrono::Utc);
    app.clock.set(deadline + chrono::Duration::seconds(61));
    let late = w.provider().confirm_hold(s(&a["hold"]["id"]), HOLD, "W-1").await;
    late.expect_err(409, "invalid_state");
    assert_eq!(late.body["error"]["details"], json!({"status": "voided", "void_reason": "confirmation_timeout"}));
    let read = w.store().order(s(&a["id"])).await.expect(200);
    assert_eq!(
        (s(&read["status"]), s(&read["reason"]), s(&read["hold"]["void_reason"])),
        ("expired", "confirmation_timeout", "confirmation_timeout")
    );
    w.store().cancel(s(&b["id"]), "too late").await.expect_err(409, "invalid_state");
    assert_eq!(w.store().order(s(&b["id"])).await.expect(200)["status"], "expired", "the cancel timed it out first");
    let reasons: Vec<String> = voided_notices(w.provider()).await.iter().map(|d| s(&d["reason"]).to_string()).collect();
    assert_eq!(reasons, ["confirmation_timeout", "confirmation_timeout"]);
    assert!(w.bank().notices().await.is_empty());
    assert_eq!(w.provider().line(w.line()).await.expect(200)["held"], "0.00");
    app.clock.reset();
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn only_the_holds_provider_acts_on_it_and_bad_bodies_are_refused() {
    let app = TestApp::start().await;
    let spec = World::standard().provider_extra("wld", json!({"hold_confirmation": "required"})).provider("ant", json!({}));
    let w = spec.build(&app).await;
    let o = order(&w, 1).await;
    let hid = s(&o["hold"]["id"]).to_string();
    let before = (w.provider().line(w.line()).await.expect(200), w.admin.get("/v1/admin/banks/bk").await.expect(200));
    let path = format!("/v1/holds/{hid}/confirm");
    let body = json!({"amount": HOLD, "provider_order_no": "W-1"});
    w.key("ant").post(&path, body.clone()).await.expect_err(404, "not_found");
    w.admin.post(&path, body.clone()).await.expect_err(403, "forbidden");
    w.store().post(&path, body.clone()).await.expect_err(403, "forbidden");
    w.bank().post(&path, body.clone()).await.expect_err(403, "forbidden");
    w.provider().post("/v1/holds/hold_missing/confirm", body.clone()).await.expect_err(404, "not_found");
    w.provider().call("POST", &path, Some(&body), None).await.expect_err(400, "idempotency_key_required");
    w.provider().post(&path, json!({"amount": 3300.46, "provider_order_no": "W-1"})).await.expect_err(422, "invalid_amount");
    w.provider().post(&path, json!({"amount": HOLD})).await.expect_err(422, "invalid_request");
    w.provider().acknowledge_hold(&hid, "http://wld.example/s", None).await.expect_err(422, "invalid_request");
    w.provider().decline_hold(&hid, "bored").await.expect_err(422, "invalid_request");
    w.provider().post(&format!("/v1/holds/{hid}/decline"), json!({"reason": "other", "x": 1})).await.expect_err(422, "invalid_request");
    let read = w.store().order(s(&o["id"])).await.expect(200);
    assert_eq!((s(&read["status"]), s(&read["hold"]["status"])), ("awaiting_hold_confirmation", "pending"), "refusals change nothing");
    let after = (w.provider().line(w.line()).await.expect(200), w.admin.get("/v1/admin/banks/bk").await.expect(200));
    assert_eq!(after, before, "the line's and the bank's balances are untouched");
    assert_eq!(types(&w.provider().notices().await), ["hold.requested"]);
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_hold_on_a_provider_without_confirmation_is_placed_as_before() {
    let app = TestApp::start().await;
    let w = World::standard().build(&app).await;
    let o = order(&w, 1).await;
    assert_eq!((s(&o["status"]), s(&o["hold"]["status"]), &o["hold"]["confirm_deadline"]), ("awaiting_funding", "active", &Value::Null));
    w.provider().confirm_hold(s(&o["hold"]["id"]), HOLD, "W-1").await.expect_err(409, "invalid_state");
    assert_eq!(types(&w.provider().notices().await), ["hold.placed"]);
}

// ---------- the confirmation timeout (API.md §12) ----------

#[actix_web::test]
async fn the_running_service_sweeps_pending_holds_past_their_deadline() {
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 1).await;
    let _jobs = creditphone::jobs::spawn_all(app.state.deps.clone());
    let w = confirming(&app, json!({"hold_confirmation_timeout_minutes": 1})).await;
    let o = order(&w, 1).await;
    let deadline = chrono::DateTime::parse_from_rfc3339(s(&o["hold"]["confirm_deadline"])).unwrap().with_timezone(&chrono::Utc);
    app.clock.set(deadline + chrono::Duration::seconds(1));
    let mut read = Value::Null;
    for _ in 0..100 {
        read = w.store().order(s(&o["id"])).await.expect(200);
        if read["status"] == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((s(&read["status"]), s(&read["hold"]["void_reason"])), ("expired", "confirmation_timeout"), "{read}");
    let voided = voided_notices(w.provider()).await;
    assert_eq!((voided.len(), s(&voided[0]["reason"])), (1, "confirmation_timeout"));
    app.clock.reset();
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn end_of_day_times_out_what_the_sweep_has_not_and_counts_it() {
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 0).await;
    let w = confirming(&app, json!({})).await;
    let (a, b) = (order(&w, 1).await, order(&w, 2).await);
    w.provider().confirm_hold(s(&b["hold"]["id"]), HOLD, "W-2").await.expect(200);
    let deadline = chrono::DateTime::parse_from_rfc3339(s(&a["hold"]["confirm_deadline"])).unwrap();
    let deadline_on = deadline.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let next = (deadline_on + chrono::Duration::days(1)).to_string();
    let summary = w.admin.eod(&next).await.expect(200);
    assert_eq!((summary["confirmations_timed_out"].as_i64(), summary["holds_expired"].as_i64()), (Some(1), Some(0)), "{summary}");
    let read = w.store().order(s(&a["id"])).await.expect(200);
    assert_eq!((s(&read["status"]), s(&read["reason"])), ("expired", "confirmation_timeout"));
    assert_eq!(w.store().order(s(&b["id"])).await.expect(200)["status"], "awaiting_funding", "a confirmed hold is not timed out");
    assert_eq!(w.admin.eod(&next).await.expect(200)["confirmations_timed_out"], 0, "a rerun changes nothing");
    let recon = w.admin.get(&format!("/v1/reconciliation/{next}")).await.expect(200);
    assert_eq!(recon["movements"], json!([]), "nothing of a timed-out hold reaches a bank: {recon}");
    w.admin.verify_ok().await;
}

/// Places `n` pending orders on lines of customers 100.. (each its own line, so they do not share
/// a line's lock) and answers (order id, hold id, confirm deadline) of each.
async fn pending_orders(app: &TestApp, n: u64) -> (World, Vec<(String, String, chrono::DateTime<chrono::Utc>)>) {
    let mut spec = World::standard().provider_extra("wld", json!({"hold_confirmation": "required"})).no_lines();
    for i in 0..n {
        spec = spec.line("wld", 100 + i, "100000");
    }
    let w = spec.build(app).await;
    let mut out = Vec::new();
    for i in 0..n {
        let o = w.store().place_order(order_body(&format!("POS-{i}"), "p12", 100 + i, i + 1)).await.expect(201);
        let deadline = chrono::DateTime::parse_from_rfc3339(s(&o["hold"]["confirm_deadline"])).unwrap().with_timezone(&chrono::Utc);
        out.push((s(&o["id"]).to_string(), s(&o["hold"]["id"]).to_string(), deadline));
    }
    (w, out)
}

#[actix_web::test]
async fn a_confirm_racing_the_sweep_has_exactly_one_winner() {
    const N: u64 = 40;
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 0).await;
    let (w, orders) = pending_orders(&app, N).await;
    let deps = app.state.deps.clone();
    let mut confirmed = 0;
    for (i, (oid, hid, deadline)) in orders.iter().enumerate() {
        // The confirm arrives a second before the deadline, the sweep looks a microsecond after it
        // (before the deadlines of the orders placed later, which it must leave alone).
        app.clock.set(*deadline - chrono::Duration::seconds(1));
        let sweep_at = *deadline + chrono::Duration::microseconds(1);
        let no = format!("W-{i}");
        let (answer, swept) =
            tokio::join!(w.provider().confirm_hold(hid, HOLD, &no), creditphone::service::holds::sweep_at(&deps, sweep_at, 1));
        let swept = swept.expect("the sweep runs");
        let read = w.store().order(oid).await.expect(200);
        match answer.status {
            200 => {
                confirmed += 1;
                assert_eq!((swept, s(&read["status"])), (0, "awaiting_funding"), "{read}");
            }
            409 => {
                assert_eq!(answer.body["error"]["details"], json!({"status": "voided", "void_reason": "confirmation_timeout"}));
                assert_eq!((swept, s(&read["status"])), (1, "expired"), "{read}");
            }
            other => panic!("unexpected answer {other}: {}", answer.body),
        }
    }
    app.clock.reset();
    eprintln!("confirm won {confirmed} of {N} races");
    let voided = voided_notices(w.provider()).await;
    assert_eq!(voided.len() as u64, N - confirmed, "one hold.voided per timed-out hold");
    assert_eq!(types(&w.bank().notices().await).len() as u64, confirmed, "one funding.requested per confirmed hold");
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_confirm_racing_a_cancel_has_exactly_one_winner() {
    const N: u64 = 30;
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 0).await;
    let (w, orders) = pending_orders(&app, N).await;
    let mut confirmed = 0;
    for (i, (oid, hid, _)) in orders.iter().enumerate() {
        let no = format!("W-{i}");
        let (confirm, cancel) = tokio::join!(w.provider().confirm_hold(hid, HOLD, &no), w.store().cancel(oid, "changed mind"));
        let read = w.store().order(oid).await.expect(200);
        // A cancel after the confirm still finds an order awaiting funding: both may succeed, in
        // that order; a confirm after the cancel finds the hold voided.
        match (confirm.status, cancel.status) {
            (200, 200) => assert_eq!((s(&read["status"]), s(&read["hold"]["void_reason"])), ("cancelled", "cancelled")),
            (200, _) => panic!("a cancel after a confirm is allowed: {}", cancel.body),
            (409, 200) => {
                assert_eq!(confirm.body["error"]["details"], json!({"status": "voided", "void_reason": "cancelled"}));
                assert_eq!(s(&read["status"]), "cancelled");
            }
            other => panic!("unexpected answers {other:?}: {} {}", confirm.body, cancel.body),
        }
        if confirm.status == 200 {
            confirmed += 1;
        }
    }
    eprintln!("confirm first in {confirmed} of {N} races");
    let line_held: Vec<String> = {
        let mut v = Vec::new();
        for l in &w.lines {
            v.push(s(&w.provider().line(l).await.expect(200)["held"]).to_string());
        }
        v
    };
    assert!(line_held.iter().all(|h| h == "0.00"), "every hold voided exactly once: {line_held:?}");
    w.admin.verify_ok().await;
}

#[actix_web::test]
async fn many_pending_orders_on_one_line_never_over_hold_it() {
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 0).await;
    // Room for three holds of 3300.46, not four.
    let w = World::standard()
        .provider_extra("wld", json!({"hold_confirmation": "required"}))
        .no_lines()
        .line("wld", 7, "10000")
        .build(&app)
        .await;
    let bodies: Vec<Value> = (1..=8).map(|n| order_body(&format!("POS-{n}"), "p12", 7, n)).collect();
    let answers = futures_util::future::join_all(bodies.into_iter().map(|b| w.store().place_order(b))).await;
    let placed = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(placed, 3, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(answers.iter().filter(|a| a.status != 201).all(|a| a.code() == Some("no_matching_credit_line")));
    let line = w.provider().line(w.line()).await.expect(200);
    assert_eq!((s(&line["held"]), s(&line["held_pending"]), s(&line["available"])), ("9901.38", "9901.38", "98.62"));
    w.admin.verify_ok().await;
}

// ---------- the ledger check (API.md §12) ----------

#[actix_web::test]
async fn verify_checks_pending_holds_and_voids_by_reason() {
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 0).await;
    let w = confirming(&app, json!({})).await;
    let (a, b) = (order(&w, 1).await, order(&w, 2).await);
    w.provider().decline_hold(s(&a["hold"]["id"]), "risk_refused").await.expect(200);
    w.admin.verify_ok().await;
    let db = app.db().await;
    db.execute("UPDATE orders SET reason = 'bank said no' WHERE id = $1", &[&s(&a["id"])]).await.unwrap();
    db.execute("UPDATE orders SET status = 'awaiting_funding' WHERE id = $1", &[&s(&b["id"])]).await.unwrap();
    let v = w.admin.get("/v1/admin/ledger/verify").await.expect(200);
    let rules: Vec<(&str, &str)> = v["violations"].as_array().unwrap().iter().map(|x| (s(&x["rule"]), s(&x["object_id"]))).collect();
    assert!(rules.contains(&("hold_void_reason_matches_order", s(&a["hold"]["id"]))), "{v}");
    assert!(rules.contains(&("hold_pending_with_its_order", s(&b["hold"]["id"]))), "{v}");
}

#[actix_web::test]
async fn a_decline_and_an_acknowledgement_replay_their_answers() {
    let app = TestApp::start_with(|s| s.holds.confirmation_sweep_secs = 0).await;
    let w = confirming(&app, json!({})).await;
    let (a, b) = (order(&w, 1).await, order(&w, 2).await);
    let ack = format!("/v1/holds/{}/acknowledge", s(&a["hold"]["id"]));
    let body = json!({"sign_url": "https://wld.example/a", "provider_order_no": "W-1"});
    let first = w.provider().post_idem(&ack, body.clone(), "a1").await.expect(200);
    let again = w.provider().post_idem(&ack, body, "a1").await;
    assert_eq!((again.status, again.header("Idempotent-Replayed"), &again.body), (200, Some("true"), &first));
    let decline = format!("/v1/holds/{}/decline", s(&b["hold"]["id"]));
    let first = w.provider().post_idem(&decline, json!({"reason": "customer_declined"}), "d1").await.expect(200);
    let again = w.provider().post_idem(&decline, json!({"reason": "customer_declined"}), "d1").await;
    assert_eq!((again.status, again.header("Idempotent-Replayed"), &again.body), (200, Some("true"), &first));
    w.provider().post_idem(&decline, json!({"reason": "other"}), "d1").await.expect_err(422, "idempotency_key_reused");
    // A second decline with a new key is a state refusal, stored and replayed like any answer.
    let refused = w.provider().post_idem(&decline, json!({"reason": "other"}), "d2").await;
    refused.expect_err(409, "invalid_state");
    let replayed = w.provider().post_idem(&decline, json!({"reason": "other"}), "d2").await;
    assert_eq!((replayed.status, replayed.header("Idempotent-Replayed")), (409, Some("true")));
    assert_eq!(voided_notices(w.provider()).await.len(), 1, "one decline, one hold.voided");
    w.admin.verify_ok().await;
}

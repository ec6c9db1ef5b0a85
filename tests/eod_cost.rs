//! What end of day's bookkeeping reads (issues 17, 18, 20): the aging it stores at every close
//! (and `GET /v1/admin/aging` computes) reads the late plans' installments, not the whole book's,
//! and answers what summing every open installment answers. Rows read are counted by PostgreSQL
//! (`pg_stat_xact_user_tables`), not timed.

mod common;

use chrono::NaiveDate;
use common::TestApp;
use common::world::{World, order_body};
use creditphone::domain::aging::AgingRow;
use serde_json::json;

/// An order of principal 3000.00 placed and funded on `date` (loan `L<n>`).
async fn funded_on(app: &TestApp, world: &World, n: u64, date: &str) {
    app.set_today(date);
    let order = world.store().place_order(order_body(&format!("POS-{n}"), "p12", 7, n)).await.expect(201);
    world.bank().fund(order["id"].as_str().unwrap(), &format!("L{n}"), date).await.expect(200);
    app.clock.reset();
}

/// An order of principal `3999 - down_payment` placed and funded on `date` (loan `L<n>`): its plan id.
async fn plan_funded_on(app: &TestApp, world: &World, n: u64, date: &str, down_payment: &str) -> String {
    app.set_today(date);
    let mut body = order_body(&format!("POS-{n}"), "p12", 7, n);
    body["down_payment"] = json!(down_payment);
    let order = world.store().place_order(body).await.expect(201);
    let funded = world.bank().fund(order["id"].as_str().unwrap(), &format!("L{n}"), date).await.expect(200);
    app.clock.reset();
    funded["plan"]["id"].as_str().unwrap().to_string()
}

/// Repays `amount` of `plan` on `date` (reference `r<n>`).
async fn repaid(app: &TestApp, world: &World, plan: &str, amount: &str, date: &str, n: u64) {
    app.set_today(date);
    world.bank().repay(plan, amount, date, &format!("r{n}")).await.expect(201);
    app.clock.reset();
}

/// Rows of `installments` this transaction has read so far, by sequential and index scans.
async fn installment_rows_read(tx: &tokio_postgres::Transaction<'_>) -> i64 {
    tx.query_one(
        "SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::int8
         FROM pg_stat_xact_user_tables WHERE relname = 'installments'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[actix_web::test]
async fn the_aging_reads_the_late_plans_installments_not_the_books() {
    let app = TestApp::start().await;
    let world = World::standard().product_extra(json!({"grace_days": 30})).build(&app).await;
    // Plan 1's first installment fell due on 2027-02-28 and is unpaid; plans 2-6 owe nothing before 2027-04-15.
    funded_on(&app, &world, 1, "2027-01-31").await;
    for n in 2..=6 {
        funded_on(&app, &world, n, "2027-03-15").await;
    }
    let as_of = NaiveDate::from_ymd_opt(2027, 3, 20).unwrap();
    let mut db = app.db().await;
    let tx = db.transaction().await.unwrap();
    // On a handful of rows the planner scans whole tables (or a whole index, as a bitmap, for the
    // late plans' keys) whatever the statement needs; without that choice what is read is what
    // the statement cannot do without.
    tx.batch_execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off").await.unwrap();
    let before = installment_rows_read(&tx).await;
    let aging = creditphone::db::ops::aging(&tx, as_of, None).await.unwrap();
    let read = installment_rows_read(&tx).await - before;
    let summed = creditphone::db::ops::aging_summed(&tx, as_of, None).await.unwrap();
    assert_eq!(aging, summed, "the aging is what summing every open installment gives");
    let row = |bucket: i32, plans: i64| AgingRow {
        bank_id: "bk".to_string(),
        bucket,
        plans,
        outstanding_principal_fen: plans * 300_000,
        unpaid_due_fen: if bucket == 0 { 0 } else { summed[1].unpaid_due_fen },
    };
    assert_eq!(aging, vec![row(0, 5), row(1, 1)], "five plans current, plan 1 20 days past due");
    assert!(summed[1].unpaid_due_fen > 0, "{summed:?}");
    // Rows just written are not yet all-visible, so index-only scans read them from the heap too.
    assert!(
        read <= 1,
        "the aging read {read} rows of installments: more than the late plan's one past-due installment (the book has 72; \
         a late plan's principal is the plan's, not summed over its installments)"
    );
    // Every bank's aging alone, and a bank with no plans.
    let bank = creditphone::db::ops::aging(&tx, as_of, Some("bk")).await.unwrap();
    assert_eq!(bank, summed);
    assert_eq!(creditphone::db::ops::aging(&tx, as_of, Some("nobank")).await.unwrap(), vec![]);
}

/// Orders awaiting the provider's confirmation (API.md §12) reserve exposure but are no plan's
/// principal: the aging and the portfolio, reading the exposure, leave them out through their
/// pending holds.
#[actix_web::test]
async fn orders_awaiting_confirmation_are_not_outstanding_principal() {
    let app = TestApp::start().await;
    let world = World::standard()
        .product_extra(json!({"grace_days": 30}))
        .provider_extra("wld", json!({"hold_confirmation": "required"}))
        .build(&app)
        .await;
    app.set_today("2027-01-31");
    let first = world.store().place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    let hold = &first["hold"];
    let path = format!("/v1/holds/{}/confirm", hold["id"].as_str().unwrap());
    world.provider().post_idem(&path, json!({"amount": hold["amount"], "provider_order_no": "W-1"}), "c1").await.expect(200);
    world.bank().fund(first["id"].as_str().unwrap(), "L1", "2027-01-31").await.expect(200);
    let second = world.store().place_order(order_body("POS-2", "p12", 7, 2)).await.expect(201);
    assert_eq!(second["status"], "awaiting_hold_confirmation");
    app.clock.reset();

    let as_of = NaiveDate::from_ymd_opt(2027, 2, 10).unwrap();
    let db = app.db().await;
    let aging = creditphone::db::ops::aging(&db, as_of, None).await.unwrap();
    assert_eq!(aging, creditphone::db::ops::aging_summed(&db, as_of, None).await.unwrap());
    assert_eq!(
        aging,
        vec![AgingRow { bank_id: "bk".to_string(), bucket: 0, plans: 1, outstanding_principal_fen: 300_000, unpaid_due_fen: 0 }]
    );
    let portfolio = world.admin.get("/v1/admin/portfolio").await.expect(200);
    assert_eq!(
        (&portfolio["banks"][0]["exposure_used"], &portfolio["banks"][0]["outstanding_principal"]),
        (&json!("6000.00"), &json!("3000.00")),
        "{portfolio}"
    );
}

/// A book with a plan in each of several buckets, a past-due installment partly paid, a penalty,
/// a late plan with a future installment partly paid, a current plan paid ahead, a defaulted plan
/// and a settled one: the aging is, as of every date asked, whole and for its bank, the aging
/// summed over every open installment, and its buckets hold the plans and principal they owe.
#[actix_web::test]
async fn the_aging_is_the_summed_aging_over_a_mixed_book() {
    let app = TestApp::start().await;
    let world = World::standard().product_extra(json!({"grace_days": 30})).build(&app).await;
    // 3000.00, nothing paid: installment 1 due 2026-11-30, 110 days past due on 2027-03-20.
    let a = plan_funded_on(&app, &world, 1, "2026-10-31", "999").await;
    // 2000.00, installment 1 (due 2027-01-31, 48 days) partly paid.
    let b = plan_funded_on(&app, &world, 2, "2026-12-31", "1999").await;
    repaid(&app, &world, &b, "100.00", "2027-03-01", 2).await;
    // 2500.00, installment 1 paid whole (its penalty accrued when paid) and installment 2 (due
    // 2027-02-28, 20 days) in part: its oldest unpaid.
    let c = plan_funded_on(&app, &world, 3, "2026-12-31", "1499").await;
    repaid(&app, &world, &c, "300.00", "2027-03-01", 3).await;
    // 3000.00, current, paid ahead into installment 2.
    let d = plan_funded_on(&app, &world, 4, "2027-01-31", "999").await;
    repaid(&app, &world, &d, "500.00", "2027-02-10", 4).await;
    // 1000.00, current; 3300.00, 48 days past due and defaulted; 1500.00 settled.
    plan_funded_on(&app, &world, 5, "2027-03-15", "2999").await;
    let f = plan_funded_on(&app, &world, 6, "2026-12-31", "699").await;
    let g = plan_funded_on(&app, &world, 7, "2026-12-31", "2499").await;
    let payoff = world.bank().payoff(&g, "2027-03-01").await.expect(200)["amount"].as_str().unwrap().to_string();
    repaid(&app, &world, &g, &payoff, "2027-03-01", 7).await;

    let db = app.db().await;
    // What end of day and later payments would leave, written directly (the exposure kept as
    // verify reads it): a penalty on plan a's oldest installment, 100.00 of its installment 5
    // (due 2027-03-31) paid ahead, and plan f defaulted.
    db.batch_execute(&format!(
        "UPDATE installments SET penalty_fen = 1234 WHERE plan_id = '{a}' AND seq = 1;
         UPDATE installments SET paid_principal_fen = 10000 WHERE plan_id = '{a}' AND seq = 5;
         UPDATE bank_exposure_stripes s SET used_fen = used_fen - 10000 FROM orders o JOIN plans p ON p.order_id = o.id
          WHERE p.id = '{a}' AND s.bank_id = o.bank_id AND s.stripe = o.exposure_stripe;
         UPDATE plans SET status = 'defaulted' WHERE id = '{f}';"
    ))
    .await
    .unwrap();
    for as_of in ["2026-11-01", "2027-01-15", "2027-02-28", "2027-03-01", "2027-03-20", "2027-07-01", "2028-06-01"] {
        let as_of: NaiveDate = as_of.parse().unwrap();
        let summed = creditphone::db::ops::aging_summed(&db, as_of, None).await.unwrap();
        assert_eq!(creditphone::db::ops::aging(&db, as_of, None).await.unwrap(), summed, "as of {as_of}");
        assert_eq!(creditphone::db::ops::aging(&db, as_of, Some("bk")).await.unwrap(), summed, "as of {as_of}, bank bk");
    }
    let as_of = NaiveDate::from_ymd_opt(2027, 3, 20).unwrap();
    let aging = creditphone::db::ops::aging(&db, as_of, None).await.unwrap();
    let shape: Vec<(i32, i64)> = aging.iter().map(|r| (r.bucket, r.plans)).collect();
    assert_eq!(shape, [(0, 2), (1, 1), (2, 2), (4, 1)], "d and e current; c 20 days; b and f 48; a 110: {aging:?}");
    assert_eq!(aging[3].outstanding_principal_fen, 290_000, "a's 3000.00 less the 100.00 paid ahead: {aging:?}");
    assert_eq!(
        aging.iter().map(|r| r.outstanding_principal_fen).sum::<i64>(),
        creditphone::db::ops::bank_books(&db).await.unwrap()[0].outstanding_principal_fen,
        "every open plan's principal is in one bucket"
    );
}

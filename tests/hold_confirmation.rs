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

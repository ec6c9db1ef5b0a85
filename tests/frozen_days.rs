//! Frozen closed days (API.md §15): end of day stores each closed date's reports; reads of a
//! closed date come from the store, byte for byte, whatever is booked later and whatever the
//! renderer becomes; every report answer has an `ETag`, and `If-None-Match` answers 304.

mod common;

use common::world::{World, order_body};
use common::{Client, Resp, TestApp};
use serde_json::json;
use sha2::{Digest, Sha256};

struct Closed {
    app: TestApp,
    bank: Client,
    provider: Client,
    admin: Client,
    plan: String,
}

/// An order placed, funded and repaid once on 2027-01-31, then that date closed.
async fn closed() -> Closed {
    let app = TestApp::start().await;
    let w = World::standard().build(&app).await;
    let (store, bank, provider) = (w.store().clone(), w.bank().clone(), w.provider().clone());
    app.set_today("2027-01-31");
    let order = store.place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    let funded = bank.fund(order["id"].as_str().unwrap(), "L1", "2027-01-31").await.expect(200);
    let plan = funded["plan"]["id"].as_str().unwrap().to_string();
    bank.repay(&plan, "100.00", "2027-01-31", "R-1").await.expect(201);
    app.clock.reset();
    w.admin.eod("2027-01-31").await.expect(200);
    Closed { app, bank, provider, admin: w.admin, plan }
}

const CSV: &[(&str, &str)] = &[("accept", "text/csv")];

fn etag(r: &Resp) -> String {
    r.header("etag").expect("every report answer has an ETag").to_string()
}

fn csv_text(r: &Resp) -> String {
    r.body.as_str().expect("CSV text").to_string()
}

#[actix_web::test]
async fn a_closed_dates_reports_never_change_and_answer_304_to_their_etag() {
    let c = closed().await;
    let recon = "/v1/reconciliation/2027-01-31";
    let settle = "/v1/providers/wld/settlement/2027-01-31";
    let (json_before, csv_before) = (c.bank.get(recon).await, c.bank.get_with(recon, CSV).await);
    let (sjson_before, scsv_before) = (c.provider.get(settle).await, c.provider.get_with(settle, CSV).await);
    assert_eq!(json_before.body["closed"], true);
    assert_eq!(etag(&csv_before), format!("\"{}\"", hex::encode(Sha256::digest(csv_text(&csv_before).as_bytes()))));
    // Booked after the close: a late repayment valued on the closed date, another order.
    c.bank.repay(&c.plan, "50.00", "2027-01-31", "R-2").await.expect(201);
    c.admin.eod("2027-02-01").await.expect(200);
    let (json_after, csv_after) = (c.bank.get(recon).await, c.bank.get_with(recon, CSV).await);
    assert_eq!((json_after.body.clone(), etag(&json_after)), (json_before.body.clone(), etag(&json_before)));
    assert_eq!((csv_text(&csv_after), etag(&csv_after)), (csv_text(&csv_before), etag(&csv_before)));
    let (sjson_after, scsv_after) = (c.provider.get(settle).await, c.provider.get_with(settle, CSV).await);
    assert_eq!((sjson_after.body.clone(), etag(&sjson_after)), (sjson_before.body.clone(), etag(&sjson_before)));
    assert_eq!(csv_text(&scsv_after), csv_text(&scsv_before));
    // The late repayment is on the next date.
    let next = c.bank.get("/v1/reconciliation/2027-02-01").await.expect(200);
    assert_eq!(next["totals"]["repayment"]["count"], 1);
    // If-None-Match with the tag: 304; with another: the report.
    let tag = etag(&json_before);
    let not_modified = c.bank.get_with(recon, &[("if-none-match", &tag)]).await;
    assert_eq!((not_modified.status, not_modified.header("etag")), (304, Some(tag.as_str())));
    assert_eq!(c.bank.get_with(recon, &[("if-none-match", "\"other\"")]).await.status, 200);
    assert_eq!(c.provider.get_with(settle, &[("if-none-match", &etag(&sjson_before))]).await.status, 304);
    // The notices carry the stored files' hashes.
    let ready =
        c.bank.notices().await.into_iter().find(|n| n["type"] == "reconciliation.ready" && n["data"]["business_date"] == "2027-01-31");
    let ready = ready.expect("reconciliation.ready");
    assert_eq!(format!("\"{}\"", ready["data"]["sha256_json"].as_str().unwrap()), etag(&json_before));
    assert_eq!(format!("\"{}\"", ready["data"]["sha256_csv"].as_str().unwrap()), etag(&csv_before));
    assert_eq!(ready["data"]["movements"], json_before.body["movements"].as_array().unwrap().len());
    let ready =
        c.provider.notices().await.into_iter().find(|n| n["type"] == "settlement.ready" && n["data"]["business_date"] == "2027-01-31");
    assert_eq!(format!("\"{}\"", ready.expect("settlement.ready")["data"]["sha256_csv"].as_str().unwrap()), etag(&scsv_before));
    c.admin.verify_ok().await;
}

#[actix_web::test]
async fn a_stored_report_is_served_as_stored_after_the_renderer_changed() {
    let c = closed().await;
    // What an older renderer stored: a fixture row in place of this one's rendering.
    let fixture = br#"{"rendered_by":"an older version","business_date":"2027-01-31"}"#;
    let sha = hex::encode(Sha256::digest(fixture));
    let db = c.app.db().await;
    let n = db
        .execute(
            "UPDATE report_store SET body = $1, sha256 = $2 WHERE kind = 'reconciliation' AND business_date = '2027-01-31' AND subject = 'bk' AND format = 'json'",
            &[&fixture.as_slice(), &sha],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "end of day stored the bank's report");
    let r = c.bank.get("/v1/reconciliation/2027-01-31").await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"rendered_by": "an older version", "business_date": "2027-01-31"})));
    assert_eq!(etag(&r), format!("\"{sha}\""));
    // An open date is rendered now.
    assert_eq!(c.bank.get("/v1/reconciliation/2027-02-01").await.expect(200)["closed"], false);
}

#[actix_web::test]
async fn a_bank_created_after_the_close_gets_the_dates_empty_report_stored_at_first_read() {
    let c = closed().await;
    c.admin.post("/v1/admin/banks", common::world::bank_body("bk2")).await.expect(201);
    let (_, key) = c.admin.new_key(json!({"kind": "bank", "id": "bk2"}), None).await;
    let first = c.app.client(&key).get("/v1/reconciliation/2027-01-31").await;
    assert_eq!((first.body["closed"].clone(), first.body["movements"].clone()), (json!(true), json!([])));
    let db = c.app.db().await;
    let stored: i64 =
        db.query_one("SELECT count(*) FROM report_store WHERE subject = 'bk2' AND business_date = '2027-01-31'", &[]).await.unwrap().get(0);
    assert_eq!(stored, 2, "JSON and CSV stored at the first read");
    assert_eq!(etag(&c.app.client(&key).get("/v1/reconciliation/2027-01-31").await), etag(&first));
}

/// A closed date with conversions: half the plan held, accelerated on 2027-03-01, then closed.
async fn closed_with_conversions() -> Closed {
    let app = TestApp::start().await;
    let w = World::standard().product_extra(json!({"hold_ratio": "0.50"})).build(&app).await;
    let (store, bank, provider) = (w.store().clone(), w.bank().clone(), w.provider().clone());
    app.set_today("2027-01-31");
    let order = store.place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    let funded = bank.fund(order["id"].as_str().unwrap(), "L1", "2027-01-31").await.expect(200);
    let plan = funded["plan"]["id"].as_str().unwrap().to_string();
    app.clock.reset();
    bank.accelerate(&plan, "2027-03-01", "fraud").await.expect(200);
    w.admin.eod("2027-03-01").await.expect(200);
    w.admin.verify_ok().await;
    Closed { app, bank, provider, admin: w.admin, plan }
}

/// Rewrites a stored JSON file's field at `path` to `value`, its hash recomputed (`rehash`) or
/// not; answers the rules the ledger check then reports.
async fn corrupt(c: &Closed, kind: &str, subject: &str, path: &[&str], value: &str, rehash: bool) -> Vec<String> {
    let db = c.app.db().await;
    let path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
    let n = db
        .execute(
            "UPDATE report_store SET body = convert_to(jsonb_set(convert_from(body, 'UTF8')::jsonb, $3, $4::text::jsonb)::text, 'UTF8')
             WHERE kind = $1 AND subject = $2 AND business_date = '2027-03-01' AND format = 'json'",
            &[&kind, &subject, &path, &value],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "one stored file corrupted");
    if rehash {
        db.execute("UPDATE report_store SET sha256 = encode(sha256(body), 'hex') WHERE kind = $1 AND subject = $2", &[&kind, &subject])
            .await
            .unwrap();
    }
    let report = c.admin.get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(report["ok"], false, "{report}");
    report["violations"].as_array().unwrap().iter().map(|v| v["rule"].as_str().unwrap().to_string()).collect()
}

#[actix_web::test]
async fn verify_finds_a_settlement_whose_held_does_not_roll_forward() {
    let c = closed_with_conversions().await;
    assert_eq!(corrupt(&c, "settlement", "wld", &["closing", "held"], "\"1.00\"", true).await, ["settlement_held_rolls_forward"]);
}

#[actix_web::test]
async fn verify_finds_a_settlement_whose_drawn_does_not_roll_forward() {
    let c = closed_with_conversions().await;
    assert_eq!(corrupt(&c, "settlement", "wld", &["opening", "drawn"], "\"1.00\"", true).await, ["settlement_drawn_rolls_forward"]);
}

#[actix_web::test]
async fn verify_finds_payables_that_are_not_the_compensation_total() {
    let c = closed_with_conversions().await;
    assert_eq!(
        corrupt(&c, "reconciliation", "bk", &["totals", "compensation", "amount"], "\"1.00\"", true).await,
        ["settlement_payables_match_compensations"]
    );
}

#[actix_web::test]
async fn verify_finds_a_stored_file_that_is_not_the_bytes_its_hash_names() {
    let c = closed_with_conversions().await;
    assert_eq!(corrupt(&c, "settlement", "wld", &["provider_id"], "\"wld\"", false).await, ["stored_report_hash"]);
}

//! The provider's settlement file (API.md §15) against a real PostgreSQL: placements, voids,
//! conversions, releases and debt repayments of a day, the roll-forward identities, payables
//! against the banks' compensation totals, CSV, and who may read it.

mod common;

use common::world::{World, order_body};
use common::{Client, TestApp};
use serde_json::{Value, json};

struct Day {
    app: TestApp,
    store: Client,
    bank: Client,
    provider: Client,
    admin: Client,
    line: String,
}

fn fen(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("money string: {v}"));
    let (y, f) = s.split_once('.').unwrap();
    y.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap()
}

/// An order funded and another cancelled on 2027-01-31; the first accelerated as of 2027-03-01
/// (half the plan held: conversions, a shortfall); a debt repayment on 2027-03-02.
async fn books() -> Day {
    let app = TestApp::start().await;
    let w = World::standard().product_extra(json!({"hold_ratio": "0.50"})).build(&app).await;
    let d = Day {
        store: w.store().clone(),
        bank: w.bank().clone(),
        provider: w.provider().clone(),
        line: w.line().to_string(),
        admin: w.admin,
        app,
    };
    d.app.set_today("2027-01-31");
    let funded = d.store.place_order(order_body("POS-1", "p12", 7, 1)).await.expect(201);
    let plan = d.bank.fund(funded["id"].as_str().unwrap(), "L1", "2027-01-31").await.expect(200);
    let cancelled = d.store.place_order(order_body("POS-2", "p12", 7, 2)).await.expect(201);
    d.store.cancel(cancelled["id"].as_str().unwrap(), "changed mind").await.expect(200);
    d.app.set_today("2027-03-01");
    d.bank.accelerate(plan["plan"]["id"].as_str().unwrap(), "2027-03-01", "fraud").await.expect(200);
    d.app.set_today("2027-03-02");
    d.provider.post(&format!("/v1/credit-lines/{}/debt-repayments", d.line), json!({"amount": "100.00"})).await.expect(200);
    d.app.clock.reset();
    d
}

fn kinds(file: &Value) -> Vec<String> {
    file["movements"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap().to_string()).collect()
}

fn assert_identities(file: &Value) {
    let t = |k: &str| fen(&file["totals"][k]["amount"]);
    let (o, c) = (&file["opening"], &file["closing"]);
    assert_eq!(
        fen(&c["held"]),
        fen(&o["held"]) + t("hold_placed") - t("hold_released") - t("hold_converted") - t("hold_voided"),
        "held rolls forward: {file}"
    );
    assert_eq!(fen(&c["drawn"]), fen(&o["drawn"]) + t("hold_converted") - t("debt_repayment"), "drawn rolls forward: {file}");
}

#[actix_web::test]
async fn each_day_rolls_forward_from_the_last_and_owes_the_banks_their_compensations() {
    let d = books().await;
    let path = |date: &str| format!("/v1/providers/wld/settlement/{date}");
    let jan = d.provider.get(&path("2027-01-31")).await.expect(200);
    assert_eq!(kinds(&jan), ["hold_placed", "hold_placed", "hold_voided"]);
    assert_eq!((jan["opening"]["held"].as_str(), jan["opening"]["drawn"].as_str()), (Some("0.00"), Some("0.00")));
    let void = &jan["movements"][2];
    assert_eq!(
        (void["reason"].as_str(), void["plan_id"].as_str(), void["value_date"].as_str()),
        (Some("cancelled"), None, Some("2027-01-31"))
    );
    assert!(jan["movements"][0]["plan_id"].is_null(), "a placement row has no plan_id");
    assert_identities(&jan);
    let mar1 = d.provider.get(&path("2027-03-01")).await.expect(200);
    assert_eq!(mar1["opening"], jan["closing"], "nothing moved in between");
    assert!(kinds(&mar1).iter().all(|k| k == "hold_converted" || k == "hold_released"), "{mar1}");
    let conv = mar1["movements"].as_array().unwrap().iter().find(|m| m["kind"] == "hold_converted").unwrap();
    assert_eq!(fen(&conv["amount"]), ["principal", "interest", "fee", "penalty"].iter().map(|k| fen(&conv[k])).sum::<i64>());
    assert_eq!((conv["bank_id"].as_str(), conv["installment_seq"].as_i64()), (Some("bk"), Some(1)));
    assert_identities(&mar1);
    let recon = d.bank.get("/v1/reconciliation/2027-03-01").await.expect(200);
    let payables = mar1["payables"].as_array().unwrap();
    assert_eq!(payables.len(), 1);
    assert_eq!((payables[0]["bank_id"].as_str(), &payables[0]["amount"]), (Some("bk"), &recon["totals"]["compensation"]["amount"]));
    assert_eq!(payables[0]["count"], recon["totals"]["compensation"]["count"]);
    let mar2 = d.admin.get(&path("2027-03-02")).await.expect(200);
    assert_eq!(kinds(&mar2), ["debt_repayment"]);
    assert_eq!(mar2["opening"], mar1["closing"]);
    assert_identities(&mar2);
    let line = d.provider.line(&d.line).await.expect(200);
    assert_eq!((&mar2["closing"]["held"], &mar2["closing"]["drawn"]), (&line["held"], &line["drawn"]));
    assert_eq!(mar2["totals"]["hold_confirmed"]["count"], 0, "every kind has its total");
}

#[actix_web::test]
async fn the_csv_has_the_rows_the_totals_the_payables_and_the_balances() {
    let d = books().await;
    let json = d.provider.get("/v1/providers/wld/settlement/2027-03-01").await.expect(200);
    let csv = d.provider.get_with("/v1/providers/wld/settlement/2027-03-01", &[("accept", "text/csv")]).await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.body.as_str().unwrap();
    assert!(!text.starts_with('\u{feff}') && text.ends_with("\r\n"));
    let lines: Vec<&str> = text.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(
        lines[0],
        "kind,booked_on,value_date,provider_id,credit_line_id,hold_id,order_id,plan_id,bank_id,installment_seq,reason,amount,principal,interest,fee,penalty,count"
    );
    let n = json["movements"].as_array().unwrap().len();
    let firsts: Vec<&str> = lines[1 + n..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(
        firsts,
        [
            "total_hold_placed",
            "total_hold_confirmed",
            "total_hold_released",
            "total_hold_converted",
            "total_hold_voided",
            "total_debt_repayment",
            "payable",
            "opening_held",
            "opening_drawn",
            "closing_held",
            "closing_drawn"
        ]
    );
    let payable = json["payables"][0]["amount"].as_str().unwrap();
    let count = &json["payables"][0]["count"];
    assert_eq!(lines[1 + n + 6], format!("payable,2027-03-01,,wld,,,,,bk,,,{payable},0.00,0.00,0.00,0.00,{count}"));
    let closing = json["closing"]["held"].as_str().unwrap();
    assert_eq!(lines[lines.len() - 2], format!("closing_held,2027-03-01,,wld,,,,,,,,{closing},0.00,0.00,0.00,0.00,"));
}

#[actix_web::test]
async fn only_the_provider_and_the_admin_read_it() {
    let d = books().await;
    d.bank.get("/v1/providers/wld/settlement/2027-03-01").await.expect_err(403, "forbidden");
    d.store.get("/v1/providers/wld/settlement/2027-03-01").await.expect_err(403, "forbidden");
    d.admin.post("/v1/admin/providers", json!({"id": "other", "name": "Other"})).await.expect(201);
    let (_, key) = d.admin.new_key(json!({"kind": "provider", "id": "other"}), None).await;
    let other = d.app.client(&key);
    other.get("/v1/providers/wld/settlement/2027-03-01").await.expect_err(404, "not_found");
    let own = other.get("/v1/providers/other/settlement/2027-03-01").await.expect(200);
    assert_eq!((own["movements"].as_array().unwrap().len(), own["payables"].as_array().unwrap().len()), (0, 0));
    d.admin.get("/v1/providers/nobody/settlement/2027-03-01").await.expect_err(404, "not_found");
    d.admin.get("/v1/providers/wld/settlement/2027-02-30").await.expect_err(422, "invalid_date");
}

#[actix_web::test]
async fn a_future_date_is_refused_unless_future_dates_are_allowed() {
    let app = TestApp::start_with(|s| s.clock.allow_future_dates = false).await;
    let w = World::standard().build(&app).await;
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string();
    w.provider().get(&format!("/v1/providers/wld/settlement/{tomorrow}")).await.expect_err(422, "invalid_date");
}

/// docs/examples/check_settlement.py, the integrators' example, accepts the service's files and
/// rejects a tampered one (skipped where python3 is missing).
#[actix_web::test]
async fn the_documented_checker_accepts_the_files_and_rejects_a_tampered_one() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        return;
    }
    let d = books().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, body: &str, sha: Option<&str>| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/check_settlement.py")).arg(&path);
        if let Some(s) = sha {
            cmd.arg(s);
        }
        cmd.output().unwrap().status.success()
    };
    for date in ["2027-01-31", "2027-03-01", "2027-03-02"] {
        let path = format!("/v1/providers/wld/settlement/{date}");
        let csv = d.provider.get_with(&path, &[("accept", "text/csv")]).await;
        let tag = csv.header("etag").unwrap().to_string();
        assert!(run("s.csv", csv.body.as_str().unwrap(), Some(&tag)), "{date} csv");
        let json = d.provider.get(&path).await;
        assert!(run("s.json", &json.body.to_string(), None), "{date} json");
    }
    let csv = d.provider.get_with("/v1/providers/wld/settlement/2027-03-01", &[("accept", "text/csv")]).await;
    let text = csv.body.as_str().unwrap();
    let closing = text.lines().find(|l| l.starts_with("closing_held,")).unwrap();
    let tampered = text.replace(closing, &closing.replacen(",wld,,,,,,,,", ",wld,,,,,,,,9", 1));
    assert!(!run("t.csv", &tampered, None), "a closing balance changed breaks the held identity");
}

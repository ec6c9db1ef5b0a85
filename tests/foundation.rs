//! The service foundation through HTTP and the real PostgreSQL: auth and the order of checks,
//! idempotency, strict bodies, setup endpoints (eligibility, the APR cap, read-back), operations
//! endpoints, migrations, database outages and the embedded default through the real binary.

mod common;

use chrono::NaiveDate;
use common::binary::{RunningServe, ServeBinary, free_port};
use common::world::{self, merged};
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

// ---------- helpers ----------

/// The X-Request-Id of an answer; on an error body, `error.request_id` must be the same.
#[track_caller]
fn request_id(r: &Resp) -> String {
    let id = r.header("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id on {} {}", r.status, r.body)).to_string();
    assert!(id.starts_with("req_") && id.len() > 10, "request id {id}");
    if let Some(error) = r.body.get("error") {
        assert_eq!(error["request_id"].as_str(), Some(id.as_str()), "error.request_id is the X-Request-Id: {}", r.body);
    }
    id
}

/// An error answer with its code and field (the request id checked too).
#[track_caller]
fn expect_field(r: &Resp, status: u16, code: &str, field: &str) {
    assert_eq!((r.status, r.code(), r.field()), (status, Some(code), Some(field)), "unexpected answer: {}", r.body);
    request_id(r);
}

#[track_caller]
fn expect_error(r: &Resp, status: u16, code: &str) {
    r.expect_err(status, code);
    request_id(r);
}

fn today() -> NaiveDate {
    creditphone::domain::dates::shanghai_date(chrono::Utc::now())
}

fn days_ago(n: i64) -> String {
    (today() - chrono::Duration::days(n)).to_string()
}

/// Creates a provider and answers a key for it.
async fn provider_with_key(app: &TestApp, id: &str) -> String {
    World::empty().provider(id, json!({})).build(app).await.provider().key.clone()
}

async fn store_with_key(app: &TestApp, id: &str) -> String {
    World::empty().store(id, "440305").build(app).await.store().key.clone()
}

fn line_body(seed: u64) -> Value {
    world::line_body(seed, "10000", "2031-12-31")
}

fn bank_body(id: &str) -> Value {
    merged(world::bank_body(id), json!({"exposure_limit": "1000000"}))
}

fn partner_body(id: &str, providers: &[&str]) -> Value {
    world::partner_body(id, providers, &["44"])
}

fn product_body(id: &str, providers: &[&str]) -> Value {
    let terms = json!([{"months": 12, "rate": "0.18"}, {"months": 24, "rate": "0.12"}]);
    merged(world::product_body(id), json!({"name": "Phone 12", "terms": terms, "providers": providers, "regions": ["44", "110000"]}))
}

/// `body` with `key` set to `value` (or removed when `value` is None).
fn with(body: &Value, key: &str, value: Option<Value>) -> Value {
    let mut b = body.clone();
    match value {
        Some(v) => b[key] = v,
        None => {
            b.as_object_mut().expect("object").remove(key);
        }
    }
    b
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db().await.query_one(sql, &[]).await.expect("count").get(0)
}

/// A raw HTTP/1.1 exchange (for bodies reqwest cannot send, e.g. chunked); answers status and text.
async fn raw_http(app: &TestApp, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://")).await.expect("connect");
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    // The service may answer before reading everything; a failed write is then fine.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, text)
}

/// A chunked body of `size` bytes of JSON-ish filler.
fn chunked(size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(1000);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b' ', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

// ---------- 1. auth and the order of checks ----------

#[actix_web::test]
async fn auth_rules_answer_401_403_404_405_with_request_ids() {
    let app = TestApp::start().await;
    let store = store_with_key(&app, "st-auth").await;

    // No key, an unknown key, malformed Authorization headers: 401, also on unknown paths.
    for path in ["/v1/admin/providers", "/v1/no-such-thing", "/"] {
        let r = app.get_without_key(path).await;
        expect_error(&r, 401, "unauthenticated");
        let r = app.call("GET", path, Some("cpk_0000000000000000000000000000000000000000000000000000000000000000"), None, None).await;
        expect_error(&r, 401, "unauthenticated");
        let long_bearer = format!("Bearer {}", "k".repeat(300));
        for header in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", "Token abc", app.admin_key.as_str(), long_bearer.as_str()] {
            let r = app.call_raw("GET", path, None, None, None, &[("Authorization", header)]).await;
            expect_error(&r, 401, "unauthenticated");
        }
        // The bootstrap admin key with something after it is another key.
        let r = app.call("GET", path, Some(&format!("{}x", app.admin_key)), None, None).await;
        expect_error(&r, 401, "unauthenticated");
    }

    // The bootstrap admin key works, and every answer has its own request id.
    let a = app.admin_get("/v1/admin/providers").await;
    let b = app.admin_get("/v1/admin/providers").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_ne!(request_id(&a), request_id(&b));

    // A created admin key works too.
    let admin2 = app.key_for("admin", None).await;
    assert_eq!(app.get(&admin2, "/v1/admin/stores").await.status, 200);

    // A store key on an admin endpoint: 403; on an unknown path: 404; a wrong method: 405.
    expect_error(&app.get(&store, "/v1/admin/providers").await, 403, "forbidden");
    expect_error(&app.call("POST", "/v1/admin/banks", Some(&store), Some(&bank_body("b-x")), None).await, 403, "forbidden");
    expect_error(&app.get(&store, "/v1/nothing-here").await, 404, "not_found");
    expect_error(&app.admin_get("/v1/admin/nothing").await, 404, "not_found");
    expect_error(&app.admin().delete("/v1/admin/providers").await, 405, "method_not_allowed");
    let wrong_method = app.call("PUT", "/v1/admin/banks/b1", Some(&app.admin_key), None, None).await;
    expect_error(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, PATCH"), "RFC 9110: a 405 lists the methods the path takes");
    let trace = app.call("TRACE", "/v1/orders/ord_x/cancel", Some(&app.admin_key), None, None).await;
    expect_error(&trace, 405, "method_not_allowed");
    assert_eq!(trace.header("allow"), Some("POST"));
    // Route (404/405) comes before 403.
    expect_error(&app.call("DELETE", "/v1/admin/providers", Some(&store), None, None).await, 405, "method_not_allowed");
    // 403 comes before the idempotency key (400) and the body (422).
    let r = app.call_raw("POST", "/v1/credit-lines", Some(&store), Some(b"not json".to_vec()), None, &[]).await;
    expect_error(&r, 403, "forbidden");
    // Public paths need no key, and a wrong method there is still 405.
    assert_eq!(app.get_without_key("/healthz").await.status, 200);
    expect_error(&app.call("POST", "/healthz", None, None, None).await, 405, "method_not_allowed");

    // A revoked key answers 401 from then on.
    let created = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "st-auth"}})).await.expect(201);
    let key = created["key"].as_str().expect("key").to_string();
    let key_id = created["id"].as_str().expect("id").to_string();
    assert_eq!(app.get(&key, "/v1/admin/products").await.status, 200);
    let r = app.admin().delete(&format!("/v1/admin/api-keys/{key_id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    request_id(&r);
    expect_error(&app.get(&key, "/v1/admin/products").await, 401, "unauthenticated");
    expect_error(&app.get(&key, "/v1/unknown").await, 401, "unauthenticated");
    let read = app.admin_get(&format!("/v1/admin/api-keys/{key_id}")).await.expect(200);
    assert!(read["revoked_at"].is_string(), "{read}");
    // The store's other key still works.
    assert_eq!(app.get(&store, "/v1/admin/products").await.status, 200);
    expect_error(&app.admin().delete("/v1/admin/api-keys/key_nope").await, 404, "not_found");
}

#[actix_web::test]
async fn oversized_bodies_are_413_before_anything_else() {
    // The default limit (1 MiB): a declared length over it is refused from the headers alone.
    let app = TestApp::start().await;
    let store = store_with_key(&app, "st-big").await;
    let over = (1 << 20) + 1;
    for (path, auth) in [
        ("/v1/admin/providers", String::new()),
        ("/v1/admin/providers", format!("Authorization: Bearer {store}\r\n")),
        ("/v1/nowhere", format!("Authorization: Bearer {store}\r\n")),
        ("/healthz", String::new()),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {over}\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw_http(&app, &head, b"").await;
        assert_eq!(status, 413, "{path} {auth}: {text}");
        assert!(text.contains("payload_too_large") && text.to_ascii_lowercase().contains("x-request-id"), "{text}");
    }
    // A whole body just over the limit, sent by an ordinary client.
    let r = app.call_raw("POST", "/v1/admin/providers", None, Some(vec![b' '; over]), None, &[]).await;
    expect_error(&r, 413, "payload_too_large");
    // Exactly at the limit is read and executed.
    let mut at_limit = b"{\"id\": \"p-limit\", \"name\": \"x\"}".to_vec();
    at_limit.resize(1 << 20, b' ');
    let r = app.call_raw("POST", "/v1/admin/providers", Some(&app.admin_key), Some(at_limit), None, &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Chunked bodies (no Content-Length) over a small limit: still 413 first, with a key or without
    // one (a refused caller's body is only counted, for a second at most, never kept).
    let small = TestApp::start_with(|s| s.server.body_limit_bytes = 2048).await;
    let store = store_with_key(&small, "st-small").await;
    let store_auth = format!("Authorization: Bearer {store}\r\n");
    for (path, auth, status, code) in [
        ("/v1/admin/providers", "", 413, "payload_too_large"),
        ("/v1/admin/providers", store_auth.as_str(), 413, "payload_too_large"),
        ("/v1/nowhere", "", 413, "payload_too_large"),
        ("/v1/nowhere", store_auth.as_str(), 413, "payload_too_large"),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let (got, text) = raw_http(&small, &head, &chunked(3000)).await;
        assert_eq!(got, status, "{path} {auth}: {text}");
        assert!(text.contains(code) && text.to_ascii_lowercase().contains("x-request-id"), "{text}");
    }
    // A small chunked body goes through.
    let head = format!(
        "POST /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        small.admin_key
    );
    let json = br#"{"id": "p-chunked", "name": "Chunked"}"#;
    let mut body = format!("{:x}\r\n", json.len()).into_bytes();
    body.extend_from_slice(json);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let (status, text) = raw_http(&small, &head, &body).await;
    assert_eq!(status, 201, "{text}");
    small.admin_get("/v1/admin/providers/p-chunked").await.expect(200);
}

#[actix_web::test]
async fn rate_limit_per_key_is_429_with_retry_after_before_routing() {
    let app = TestApp::start().await;
    store_with_key(&app, "st-rate").await;
    let created = app
        .admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "st-rate"}, "rate_limit_per_minute": 3}))
        .await
        .expect(201);
    assert_eq!(created["rate_limit_per_minute"], 3);
    let key = created["key"].as_str().expect("key").to_string();
    for _ in 0..3 {
        assert_eq!(app.get(&key, "/v1/admin/products").await.status, 200);
    }
    // The 4th, on an unknown path: 429 comes before 404.
    let r = app.get(&key, "/v1/no-such-path").await;
    expect_error(&r, 429, "rate_limited");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // ... and before 403 and 405.
    expect_error(&app.get(&key, "/v1/admin/providers").await, 429, "rate_limited");
    expect_error(&app.call("DELETE", "/v1/admin/products", Some(&key), None, None).await, 429, "rate_limited");
    // Other keys are not limited by it; a bad key is still 401 (401 before 429).
    assert_eq!(app.admin_get("/v1/admin/products").await.status, 200);
    expect_error(&app.call("GET", "/v1/admin/products", Some("cpk_unknown"), None, None).await, 401, "unauthenticated");
}

// ---------- 2. idempotency ----------

#[actix_web::test]
async fn replays_give_the_original_answer_and_reuse_is_refused() {
    let app = TestApp::start().await;
    let key = provider_with_key(&app, "prov-a").await;
    let body = line_body(1);
    let first = app.post_idem(&key, "/v1/credit-lines", body.clone(), "idem-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.header("idempotent-replayed").is_none());
    let first_id = request_id(&first);
    let line_id = first.body["id"].as_str().expect("line id").to_string();
    assert!(line_id.starts_with("line_"));
    assert_eq!(first.body["limit"], "10000.00");

    let again = app.post_idem(&key, "/v1/credit-lines", body.clone(), "idem-1").await;
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("x-request-id"), Some(first_id.as_str()), "the original X-Request-Id");

    // The same JSON written differently (key order, spaces) is the same request.
    let c = &body["customer"];
    let text = format!(
        r#"{{ "expires_on":"2031-12-31" , "limit" : "10000", "customer": {{"phone": "{}", "id_number": "{}"}} }}"#,
        c["phone"].as_str().unwrap(),
        c["id_number"].as_str().unwrap()
    );
    let r = app.call_raw("POST", "/v1/credit-lines", Some(&key), Some(text.into_bytes()), Some("idem-1"), &[]).await;
    assert_eq!((r.status, &r.body, r.header("idempotent-replayed")), (201, &first.body, Some("true")));

    // The same key with another body, or on another path: 422 idempotency_key_reused (not stored).
    let other = with(&body, "limit", Some(json!("20000")));
    for _ in 0..2 {
        let r = app.post_idem(&key, "/v1/credit-lines", other.clone(), "idem-1").await;
        expect_error(&r, 422, "idempotency_key_reused");
        assert!(r.header("idempotent-replayed").is_none());
    }
    let r = app.post_idem(&key, &format!("/v1/credit-lines/{line_id}/debt-repayments"), json!({"amount": "1"}), "idem-1").await;
    expect_error(&r, 422, "idempotency_key_reused");

    // Nothing was applied twice.
    let db = app.db().await;
    let n: i64 = db.query_one("SELECT count(*) FROM credit_lines", &[]).await.unwrap().get(0);
    let limit: i64 = db.query_one("SELECT limit_fen FROM credit_lines WHERE id = $1", &[&line_id]).await.unwrap().get(0);
    let entries: i64 = db.query_one("SELECT count(*) FROM journal_entries WHERE credit_line_id = $1", &[&line_id]).await.unwrap().get(0);
    assert_eq!((n, limit, entries), (1, 1_000_000, 1));

    // Answers are kept at least 7 days (the retention), then forgotten by housekeeping.
    let second = app.post_idem(&key, "/v1/credit-lines", line_body(2), "idem-2").await.expect(201);
    db.execute("UPDATE idempotency_keys SET created_at = now() - interval '6 days 23 hours' WHERE key = 'idem-2'", &[]).await.unwrap();
    db.execute("UPDATE idempotency_keys SET created_at = now() - interval '7 days 1 hour' WHERE key = 'idem-1'", &[]).await.unwrap();
    let purged = creditphone::db::idempotency::purge_older_than_days(&db, app.state.settings.idempotency.retention_days).await.unwrap();
    assert_eq!(purged, 1);
    let r = app.post_idem(&key, "/v1/credit-lines", line_body(2), "idem-2").await;
    assert_eq!((r.status, &r.body, r.header("idempotent-replayed")), (201, &second, Some("true")));
    // The forgotten key runs again: the line exists, so this time it is an update (200).
    let r = app.post_idem(&key, "/v1/credit-lines", other, "idem-1").await;
    assert_eq!((r.status, r.header("idempotent-replayed")), (200, None), "{}", r.body);
    assert_eq!(r.body["limit"], "20000.00");
}

#[actix_web::test]
async fn idempotency_key_is_required_well_formed_and_checked_before_the_body() {
    let app = TestApp::start().await;
    let key = provider_with_key(&app, "prov-k").await;
    let body = serde_json::to_vec(&line_body(2)).unwrap();
    let long = "k".repeat(256);
    // Missing, empty, too long, with a space.
    for idem in [None, Some(""), Some(long.as_str()), Some("a b")] {
        let r = app.call_raw("POST", "/v1/credit-lines", Some(&key), Some(body.clone()), idem, &[]).await;
        expect_error(&r, 400, "idempotency_key_required");
    }
    // Non-ASCII (raw UTF-8 bytes in the header) and a control character.
    for raw in ["ключ".as_bytes(), b"a\tb".as_slice()] {
        let r = app
            .http
            .post(format!("{}/v1/credit-lines", app.url))
            .bearer_auth(&key)
            .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(raw).unwrap())
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "idempotency_key_required");
    }
    // 400 comes before the body's 422.
    for bad in [b"not json".to_vec(), b"[]".to_vec(), serde_json::to_vec(&json!({"limit": 5})).unwrap()] {
        let r = app.call_raw("POST", "/v1/credit-lines", Some(&key), Some(bad), None, &[]).await;
        expect_error(&r, 400, "idempotency_key_required");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM credit_lines").await, 0);
    // 255 visible ASCII characters are a key.
    let ok = format!("~!{}", "K".repeat(253));
    let r = app.call_raw("POST", "/v1/credit-lines", Some(&key), Some(body), Some(&ok), &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[actix_web::test]
async fn invalid_requests_are_not_stored_business_refusals_are() {
    let app = TestApp::start().await;
    let key = provider_with_key(&app, "prov-s").await;

    // A 422 invalid_* is not stored: fixing the body with the same key executes it.
    let bad = with(&line_body(3), "limit", Some(json!("1.234")));
    expect_field(&app.post_idem(&key, "/v1/credit-lines", bad, "fix-me").await, 422, "invalid_amount", "limit");
    let bad = with(&line_body(3), "expires_on", Some(json!("2031-02-30")));
    expect_field(&app.post_idem(&key, "/v1/credit-lines", bad, "fix-me").await, 422, "invalid_date", "expires_on");
    let fixed = app.post_idem(&key, "/v1/credit-lines", line_body(3), "fix-me").await;
    assert_eq!(fixed.status, 201, "{}", fixed.body);
    assert!(fixed.header("idempotent-replayed").is_none());
    let line_id = fixed.body["id"].as_str().unwrap().to_string();

    // The body (422) is checked before the object (404), the object before the key's reuse.
    let r = app.post_idem(&key, "/v1/credit-lines/line_nope/debt-repayments", json!({"amount": "-1"}), "fix-me").await;
    expect_field(&r, 422, "invalid_amount", "amount");
    let r = app.post_idem(&key, "/v1/credit-lines/line_nope/debt-repayments", json!({"amount": "1"}), "fix-me").await;
    expect_error(&r, 404, "not_found");
    // A 404 (the object) is not stored either.
    let r = app.post_idem(&key, "/v1/credit-lines/line_nope/debt-repayments", json!({"amount": "1"}), "after-404").await;
    expect_error(&r, 404, "not_found");
    let r = app.post_idem(&key, "/v1/credit-lines", line_body(4), "after-404").await;
    assert_eq!(r.status, 201, "{}", r.body);

    // A business refusal is stored and replayed unchanged.
    let path = format!("/v1/credit-lines/{line_id}/debt-repayments");
    let refused = app.post_idem(&key, &path, json!({"amount": "50"}), "repay-1").await;
    expect_field(&refused, 422, "overpayment", "amount");
    let refused_id = request_id(&refused);
    let replay = app.post_idem(&key, &path, json!({"amount": "50"}), "repay-1").await;
    assert_eq!((replay.status, &replay.body), (422, &refused.body));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("x-request-id"), Some(refused_id.as_str()));

    // ... even after the line changed so that the same repayment would now go through.
    app.db().await.execute("UPDATE credit_lines SET drawn_fen = 10000 WHERE id = $1", &[&line_id]).await.unwrap();
    let replay = app.post_idem(&key, &path, json!({"amount": "50"}), "repay-1").await;
    assert_eq!((replay.status, &replay.body, replay.header("idempotent-replayed")), (422, &refused.body, Some("true")));
    let paid = app.post_idem(&key, &path, json!({"amount": "50"}), "repay-2").await.expect(200);
    assert_eq!((paid["drawn"].as_str(), paid["available"].as_str()), (Some("50.00"), Some("9950.00")));
    // A zero amount is invalid_amount (>0), not stored.
    expect_field(&app.post_idem(&key, &path, json!({"amount": "0"}), "repay-3").await, 422, "invalid_amount", "amount");
    assert_eq!(app.post_idem(&key, &path, json!({"amount": "10"}), "repay-3").await.status, 200);
}

#[actix_web::test]
async fn concurrent_requests_with_one_key_execute_once() {
    let app = TestApp::start().await;
    let key = provider_with_key(&app, "prov-c").await;
    let body = line_body(5);
    let answers = futures_util::future::join_all((0..16).map(|_| app.post_idem(&key, "/v1/credit-lines", body.clone(), "race"))).await;
    let mut created: Option<Value> = None;
    let mut originals = 0;
    for r in &answers {
        match r.status {
            201 => {
                if r.header("idempotent-replayed").is_none() {
                    originals += 1;
                }
                match &created {
                    Some(first) => assert_eq!(&r.body, first, "every 201 is the same answer"),
                    None => created = Some(r.body.clone()),
                }
            }
            409 => expect_error(r, 409, "idempotency_key_in_use"),
            _ => panic!("unexpected answer {} {}", r.status, r.body),
        }
    }
    assert_eq!(originals, 1, "exactly one original answer");
    let line_id = created.expect("at least one 201")["id"].as_str().unwrap().to_string();
    let db = app.db().await;
    let lines: i64 = db.query_one("SELECT count(*) FROM credit_lines", &[]).await.unwrap().get(0);
    let entries: i64 = db.query_one("SELECT count(*) FROM journal_entries WHERE credit_line_id = $1", &[&line_id]).await.unwrap().get(0);
    let all_entries: i64 = db.query_one("SELECT count(*) FROM journal_entries", &[]).await.unwrap().get(0);
    let keys: i64 = db.query_one("SELECT count(*) FROM idempotency_keys", &[]).await.unwrap().get(0);
    assert_eq!((lines, entries, all_entries, keys), (1, 1, 1, 1));
    // Afterwards the key replays.
    let r = app.post_idem(&key, "/v1/credit-lines", body, "race").await;
    assert_eq!((r.status, r.header("idempotent-replayed")), (201, Some("true")));
}

/// Concurrent first registrations of one customer, each with its own key: all but one lose the
/// insert and run again. The rerun must not find its own key still locked by the failed attempt
/// (whose rollback once went out without being awaited): never `409 idempotency_key_in_use`.
#[actix_web::test]
async fn concurrent_registrations_of_one_new_customer_with_distinct_keys_never_answer_409() {
    let app = TestApp::start().await;
    let key = provider_with_key(&app, "prov-r").await;
    for round in 0..30u64 {
        let body = line_body(1000 + round);
        let keys: Vec<String> = (0..8).map(|i| format!("reg-{round}-{i}")).collect();
        let answers = futures_util::future::join_all(keys.iter().map(|k| app.post_idem(&key, "/v1/credit-lines", body.clone(), k))).await;
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        let conflicts: Vec<&Value> = answers.iter().filter(|r| r.status != 200 && r.status != 201).map(|r| &r.body).collect();
        assert!(conflicts.is_empty(), "round {round}: {statuses:?} {conflicts:?}");
        assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201], "round {round}: one creation, seven updates");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM credit_lines").await, 30);
}

#[actix_web::test]
async fn idempotency_keys_are_scoped_per_principal() {
    let app = TestApp::start().await;
    let a = provider_with_key(&app, "prov-one").await;
    let b = provider_with_key(&app, "prov-two").await;
    let ra = app.post_idem(&a, "/v1/credit-lines", line_body(6), "shared-key").await;
    let rb = app.post_idem(&b, "/v1/credit-lines", line_body(6), "shared-key").await;
    assert_eq!((ra.status, rb.status), (201, 201), "{} {}", ra.body, rb.body);
    assert!(ra.header("idempotent-replayed").is_none() && rb.header("idempotent-replayed").is_none());
    assert_ne!(ra.body["id"], rb.body["id"]);
    assert_eq!((ra.body["provider_id"].as_str(), rb.body["provider_id"].as_str()), (Some("prov-one"), Some("prov-two")));
    // A second key of the same provider shares its scope.
    let a2 = app.key_for("provider", Some("prov-one")).await;
    let r = app.post_idem(&a2, "/v1/credit-lines", line_body(6), "shared-key").await;
    assert_eq!((r.status, &r.body, r.header("idempotent-replayed")), (201, &ra.body, Some("true")));
    assert_eq!(count(&app, "SELECT count(*) FROM credit_lines").await, 2);
}

// ---------- 3. strict bodies on the setup endpoints ----------

#[actix_web::test]
async fn money_is_a_string_of_yuan() {
    let app = TestApp::start().await;
    let thirteen = "1".repeat(13);
    for bad in [
        json!(5000),
        json!(5000.5),
        json!("1.234"),
        json!("-1"),
        json!("1e3"),
        json!(" 1"),
        json!("1 "),
        json!(""),
        json!(thirteen),
        json!("1."),
        json!(".5"),
        json!("1,000"),
        json!("０"),
        json!(true),
        json!({"yuan": "1"}),
        json!(["1"]),
    ] {
        let r = app.admin_post("/v1/admin/banks", with(&bank_body("b-money"), "exposure_limit", Some(bad.clone()))).await;
        expect_field(&r, 422, "invalid_amount", "exposure_limit");
    }
    // (>0) fields refuse zero.
    for zero in ["0", "0.00", "0.0"] {
        let r = app.admin_post("/v1/admin/banks", with(&bank_body("b-money"), "exposure_limit", Some(json!(zero)))).await;
        expect_field(&r, 422, "invalid_amount", "exposure_limit");
    }
    app.admin_post("/v1/admin/providers", json!({"id": "p-m", "name": "P"})).await.expect(201);
    let r = app.admin_post("/v1/admin/products", with(&product_body("pr-m", &["p-m"]), "min_principal", Some(json!("0")))).await;
    expect_field(&r, 422, "invalid_amount", "min_principal");
    let r = app.admin_post("/v1/admin/partners", with(&partner_body("pa-m", &["p-m"]), "deposit_paid", Some(json!(3000000)))).await;
    expect_field(&r, 422, "invalid_amount", "deposit_paid");
    assert_eq!(count(&app, "SELECT count(*) FROM banks").await, 0, "refusals create nothing");
    expect_error(&app.admin_get("/v1/admin/banks/b-money").await, 404, "not_found");

    // Valid forms, answered with exactly 2 decimals; 12 integer digits are fine.
    let bank = app.admin_post("/v1/admin/banks", with(&bank_body("b-money"), "exposure_limit", Some(json!("2999.5")))).await.expect(201);
    assert_eq!((bank["exposure_limit"].as_str(), bank["exposure_used"].as_str()), (Some("2999.50"), Some("0.00")));
    let bank =
        app.admin_post("/v1/admin/banks", with(&bank_body("b-big"), "exposure_limit", Some(json!("999999999999.99")))).await.expect(201);
    assert_eq!(bank["exposure_limit"], "999999999999.99");
    // A zero deposit is not a (>0) field.
    let partner =
        app.admin_post("/v1/admin/partners", with(&partner_body("pa-m", &["p-m"]), "deposit_paid", Some(json!("0")))).await.expect(201);
    assert_eq!(partner["deposit_paid"], "0.00");
}

/// A service and an admin POST of raw bytes to `/v1/admin/providers`, the body check's first stop.
async fn raw_poster(app: &TestApp) -> impl AsyncFn(&[u8]) -> Resp + '_ {
    let admin = app.admin_key.clone();
    async move |bytes: &[u8]| app.call_raw("POST", "/v1/admin/providers", Some(&admin), Some(bytes.to_vec()), None, &[]).await
}

/// A service with provider `p1`, which the bodies below refer to.
async fn app_with_provider_p1() -> TestApp {
    let app = TestApp::start().await;
    World::empty().provider("p1", json!({"name": "x"})).build(&app).await;
    app
}

#[actix_web::test]
async fn a_body_that_is_not_one_json_object_is_refused() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    let raw = raw_poster(&app).await;

    // Not JSON, not an object, empty, trailing garbage, invalid UTF-8.
    for bad in [
        &b"not json"[..],
        b"[]",
        b"[{\"id\": \"p1\", \"name\": \"x\"}]",
        b"",
        b"   ",
        b"\"p1\"",
        b"42",
        b"null",
        b"{\"id\": \"p1\", \"name\": \"x\"} {}",
        b"{\"id\": \"p1\", \"name\": \"\xff\"}",
        b"{\"id\": \"p1\",",
    ] {
        let r = raw(bad).await;
        expect_error(&r, 422, "invalid_request");
    }
    let r = app.call("POST", "/v1/admin/providers", Some(&admin), None, None).await;
    expect_error(&r, 422, "invalid_request");
    assert_eq!(count(&app, "SELECT count(*) FROM providers").await, 0);
}

#[actix_web::test]
async fn a_duplicate_key_is_refused_and_named_by_its_path() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    let raw = raw_poster(&app).await;
    // A duplicate key, even with the same value.
    let r = raw(br#"{"id": "p1", "name": "x", "id": "p2"}"#).await;
    expect_field(&r, 422, "invalid_request", "id");
    let r = raw(br#"{"id": "p1", "name": "x", "name": "x"}"#).await;
    expect_field(&r, 422, "invalid_request", "name");
    // Nested duplicates are named by their path.
    let r = app
        .call_raw(
            "POST",
            "/v1/admin/api-keys",
            Some(&admin),
            Some(br#"{"principal": {"kind": "store", "id": "s1", "kind": "bank"}}"#.to_vec()),
            None,
            &[],
        )
        .await;
    expect_field(&r, 422, "invalid_request", "principal.kind");
    let r = app
        .call_raw(
            "POST",
            "/v1/admin/products",
            Some(&admin),
            Some(br#"{"id": "pr-d", "terms": [{"months": 1, "rate": "0"}, {"months": 12, "rate": "0.1", "months": 13}]}"#.to_vec()),
            None,
            &[],
        )
        .await;
    expect_field(&r, 422, "invalid_request", "terms[1].months");
    assert_eq!(count(&app, "SELECT count(*) FROM providers").await, 0);
}

#[actix_web::test]
async fn unknown_fields_are_refused_and_named_also_nested() {
    let app = TestApp::start().await;
    // Unknown fields, named, also nested.
    expect_field(
        &app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "x", "colour": "red"})).await,
        422,
        "invalid_request",
        "colour",
    );
    app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "x"})).await.expect(201);
    let mut product = product_body("pr-1", &["p1"]);
    product["terms"][0]["foo"] = json!(1);
    expect_field(&app.admin_post("/v1/admin/products", product).await, 422, "invalid_request", "terms[0].foo");
    let r = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "provider", "id": "p1", "scope": "all"}})).await;
    expect_field(&r, 422, "invalid_request", "principal.scope");
    assert_eq!(count(&app, "SELECT count(*) FROM providers").await, 1);
}

#[actix_web::test]
async fn fields_of_the_wrong_json_type_are_refused_and_named() {
    let app = app_with_provider_p1().await;
    let bank = bank_body("b-1");
    for (field, value) in [
        ("name", json!(5)),
        ("priority", json!("1")),
        ("priority", json!(1.5)),
        ("apr_min", json!(0.1)),
        ("regions", json!("44")),
        ("webhook_url", json!(true)),
    ] {
        expect_field(&app.admin_post("/v1/admin/banks", with(&bank, field, Some(value))).await, 422, "invalid_request", field);
    }
    let partner = partner_body("pa-1", &["p1"]);
    expect_field(
        &app.admin_post("/v1/admin/partners", with(&partner, "major_violation_last_year", Some(json!("no")))).await,
        422,
        "invalid_request",
        "major_violation_last_year",
    );
    expect_field(
        &app.admin_post("/v1/admin/partners", with(&partner, "authorized_providers", Some(json!("p1")))).await,
        422,
        "invalid_request",
        "authorized_providers",
    );
    expect_field(
        &app.admin_post("/v1/admin/partners", with(&partner, "authorized_providers", Some(json!([1])))).await,
        422,
        "invalid_request",
        "authorized_providers[0]",
    );
    expect_field(
        &app.admin_post("/v1/admin/products", with(&product_body("pr-1", &["p1"]), "terms", Some(json!({"months": 12})))).await,
        422,
        "invalid_request",
        "terms",
    );
    expect_field(
        &app.admin_post("/v1/admin/products", with(&product_body("pr-1", &["p1"]), "terms", Some(json!([[12, "0.1"]])))).await,
        422,
        "invalid_request",
        "terms[0]",
    );
    assert_eq!(count(&app, "SELECT count(*) FROM banks").await, 0);
}

/// null is absent: a required field null (or missing) names it; an optional one is fine.
#[actix_web::test]
async fn null_is_absent_a_required_field_null_is_named_an_optional_one_is_fine() {
    let app = app_with_provider_p1().await;
    let bank = bank_body("b-1");
    let partner = partner_body("pa-1", &["p1"]);
    for field in ["name", "priority", "apr_min", "apr_max", "exposure_limit", "id"] {
        expect_field(&app.admin_post("/v1/admin/banks", with(&bank, field, Some(Value::Null))).await, 422, "invalid_request", field);
        expect_field(&app.admin_post("/v1/admin/banks", with(&bank, field, None)).await, 422, "invalid_request", field);
    }
    expect_field(
        &app.admin_post("/v1/admin/partners", with(&partner, "regions", Some(Value::Null))).await,
        422,
        "invalid_request",
        "regions",
    );
    let created = app
        .admin_post("/v1/admin/banks", json!({"id": "b-1", "name": "B", "priority": 2, "apr_min": "0.1", "apr_max": "0.2", "exposure_limit": "100", "regions": null, "webhook_url": null}))
        .await
        .expect(201);
    assert_eq!((&created["regions"], &created["webhook_url"]), (&Value::Null, &Value::Null));
    assert!(created.get("webhook_secret").is_none());
    let product = app
        .admin_post("/v1/admin/products", json!({"id": "pr-null", "name": "N", "pricing": "interest", "terms": [{"months": 6, "rate": "0.1"}], "providers": ["p1"], "regions": ["44"], "min_principal": "1", "max_principal": "2", "hold_ratio": null, "grace_days": null}))
        .await
        .expect(201);
    assert_eq!((product["hold_ratio"].as_str(), product["grace_days"].as_i64()), (Some("1.00"), Some(3)));
    assert_eq!(count(&app, "SELECT count(*) FROM banks").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM providers").await, 1);
}

#[actix_web::test]
async fn ids_rates_and_dates_are_checked() {
    let app = TestApp::start().await;
    // Reference ids.
    let long = "a".repeat(65);
    for bad in ["A", "-x", "x", "", "a b", "ab.c", "Ab", long.as_str(), "abc/d", "ünï"] {
        expect_field(&app.admin_post("/v1/admin/providers", json!({"id": bad, "name": "x"})).await, 422, "invalid_request", "id");
    }
    let max = "a".repeat(64);
    app.admin_post("/v1/admin/providers", json!({"id": max, "name": "x"})).await.expect(201);
    app.admin_post("/v1/admin/providers", json!({"id": "0_p-1", "name": "x"})).await.expect(201);
    expect_field(
        &app.admin_post("/v1/admin/partners", partner_body("pa-1", &["0_p-1", "Bad"])).await,
        422,
        "invalid_request",
        "authorized_providers[1]",
    );
    expect_field(
        &app.admin_post("/v1/admin/partners", partner_body("pa-1", &["0_p-1", "0_p-1"])).await,
        422,
        "invalid_request",
        "authorized_providers[1]",
    );
    expect_field(&app.admin_post("/v1/admin/products", product_body("pr-1", &["-p"])).await, 422, "invalid_request", "providers[0]");
    let r = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "UPPER"}})).await;
    expect_field(&r, 422, "invalid_request", "principal.id");

    // Rates.
    for bad in [json!("1.123456789"), json!("abc"), json!("-0.1"), json!("100"), json!("0.1e1"), json!(""), json!(0.18)] {
        let mut p = product_body("pr-1", &["0_p-1"]);
        p["terms"][1]["rate"] = bad;
        expect_field(&app.admin_post("/v1/admin/products", p).await, 422, "invalid_request", "terms[1].rate");
    }
    for (field, bad) in [("apr_min", "x"), ("apr_max", "1.123456789"), ("apr_max", "-1")] {
        expect_field(
            &app.admin_post("/v1/admin/banks", with(&bank_body("b-1"), field, Some(json!(bad)))).await,
            422,
            "invalid_request",
            field,
        );
    }
    let r = app
        .admin_post(
            "/v1/admin/banks",
            json!({"id": "b-1", "name": "B", "priority": 1, "apr_min": "0.2", "apr_max": "0.19", "exposure_limit": "100"}),
        )
        .await;
    expect_error(&r, 422, "invalid_request");
    assert_eq!(r.field(), Some("apr_min"));
    // Equal bounds are fine (inclusive range).
    app.admin_post(
        "/v1/admin/banks",
        json!({"id": "b-eq", "name": "B", "priority": 1, "apr_min": "0.2", "apr_max": "0.20", "exposure_limit": "100"}),
    )
    .await
    .expect(201);

    // Dates.
    for bad in ["2027-02-30", "2027-2-3", "2027/01/01", "27-01-01", "2027-13-01", "0000-01-01", "2027-01-01T00:00:00Z", ""] {
        let r = app.admin_post("/v1/admin/partners", with(&partner_body("pa-1", &["0_p-1"]), "established_on", Some(json!(bad)))).await;
        expect_field(&r, 422, "invalid_date", "established_on");
    }

    // Other product limits.
    let base = product_body("pr-1", &["0_p-1"]);
    let cases = [
        ("pricing", json!("flat"), "pricing"),
        ("terms", json!([]), "terms"),
        ("terms", json!([{"months": 0, "rate": "0.1"}]), "terms[0].months"),
        ("terms", json!([{"months": 361, "rate": "0.1"}]), "terms[0].months"),
        ("terms", json!([{"months": 12, "rate": "0.1"}, {"months": 12, "rate": "0.2"}]), "terms[1].months"),
        ("providers", json!([]), "providers"),
        ("regions", json!([]), "regions"),
        ("regions", json!(["4"]), "regions[0]"),
        ("regions", json!(["4403051"]), "regions[0]"),
        ("hold_ratio", json!("0"), "hold_ratio"),
        ("hold_ratio", json!("10.01"), "hold_ratio"),
        ("grace_days", json!(31), "grace_days"),
        ("grace_days", json!(-1), "grace_days"),
        ("funding_timeout_hours", json!(0), "funding_timeout_hours"),
        ("funding_timeout_hours", json!(721), "funding_timeout_hours"),
        ("active", json!("yes"), "active"),
    ];
    for (key, value, field) in cases {
        expect_field(&app.admin_post("/v1/admin/products", with(&base, key, Some(value))).await, 422, "invalid_request", field);
    }
    let r = app
        .admin_post("/v1/admin/products", with(&with(&base, "min_principal", Some(json!("20001"))), "max_principal", Some(json!("20000"))))
        .await;
    expect_field(&r, 422, "invalid_request", "min_principal");
    let r = app.admin_post("/v1/admin/stores", json!({"id": "st-1", "name": "S", "region_code": "4403"})).await;
    expect_field(&r, 422, "invalid_request", "region_code");
    let r = app.admin_post("/v1/admin/providers", json!({"id": "p-w", "name": "P", "webhook_url": "ftp://example.com/x"})).await;
    expect_field(&r, 422, "invalid_request", "webhook_url");
    assert_eq!(count(&app, "SELECT count(*) FROM products").await + count(&app, "SELECT count(*) FROM partners").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM stores").await, 0);
}

#[actix_web::test]
async fn existing_ids_and_missing_references_are_refused_without_changes() {
    let app = TestApp::start().await;
    app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "P1"})).await.expect(201);
    app.admin_post("/v1/admin/banks", bank_body("b1")).await.expect(201);
    app.admin_post("/v1/admin/stores", json!({"id": "s1", "name": "S1", "region_code": "440305"})).await.expect(201);
    app.admin_post("/v1/admin/partners", partner_body("pa1", &["p1"])).await.expect(201);
    app.admin_post("/v1/admin/products", product_body("pr1", &["p1"])).await.expect(201);

    let again = [
        ("/v1/admin/providers", json!({"id": "p1", "name": "Other"})),
        ("/v1/admin/banks", with(&bank_body("b1"), "name", Some(json!("Other")))),
        ("/v1/admin/stores", json!({"id": "s1", "name": "Other", "region_code": "110105"})),
        ("/v1/admin/partners", with(&partner_body("pa1", &["p1"]), "name", Some(json!("Other")))),
        ("/v1/admin/products", with(&product_body("pr1", &["p1"]), "name", Some(json!("Other")))),
    ];
    for (path, body) in again {
        expect_field(&app.admin_post(path, body).await, 409, "already_exists", "id");
    }
    for path in ["/v1/admin/providers/p1", "/v1/admin/banks/b1", "/v1/admin/stores/s1", "/v1/admin/partners/pa1", "/v1/admin/products/pr1"]
    {
        let read = app.admin_get(path).await.expect(200);
        assert_ne!(read["name"], "Other", "{path} unchanged");
    }

    // Missing references: 422 unknown_reference naming the element; nothing created.
    let r = app.admin_post("/v1/admin/partners", partner_body("pa2", &["p1", "ghost"])).await;
    expect_field(&r, 422, "unknown_reference", "authorized_providers[1]");
    expect_error(&app.admin_get("/v1/admin/partners/pa2").await, 404, "not_found");
    let r = app.admin_post("/v1/admin/products", product_body("pr2", &["ghost", "p1"])).await;
    expect_field(&r, 422, "unknown_reference", "providers[0]");
    expect_error(&app.admin_get("/v1/admin/products/pr2").await, 404, "not_found");
    for (kind, id) in [("store", "ghost"), ("partner", "ghost"), ("bank", "ghost"), ("provider", "ghost"), ("store", "p1")] {
        let r = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": kind, "id": id}})).await;
        expect_field(&r, 422, "unknown_reference", "principal.id");
    }
    // A PATCH to a missing reference changes nothing.
    let r = app
        .call(
            "PATCH",
            "/v1/admin/partners/pa1",
            Some(&app.admin_key),
            Some(&json!({"authorized_providers": ["p1", "ghost"], "name": "Changed"})),
            None,
        )
        .await;
    expect_field(&r, 422, "unknown_reference", "authorized_providers[1]");
    let read = app.admin_get("/v1/admin/partners/pa1").await.expect(200);
    assert_eq!((read["name"].as_str(), &read["authorized_providers"]), (Some("Agent Co"), &json!(["p1"])));
    assert_eq!(count(&app, "SELECT count(*) FROM api_keys").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM partners").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM products").await, 1);
    // PATCH of a missing object: 404.
    let r = app.admin().patch("/v1/admin/banks/ghost", json!({"name": "x"})).await;
    expect_error(&r, 404, "not_found");
}

// ---------- 4. partner eligibility ----------

#[actix_web::test]
async fn partner_eligibility_boundaries_against_today() {
    let app = TestApp::start().await;
    app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "P1"})).await.expect(201);
    let reasons = |v: &Value| -> (bool, Vec<String>) {
        let list = v["ineligible_reasons"].as_array().expect("reasons").iter().map(|r| r.as_str().unwrap().to_string()).collect();
        (v["eligible"].as_bool().expect("eligible"), list)
    };
    let base = partner_body("pa", &["p1"]);
    let cases: [(&str, Value, Option<&str>); 7] = [
        ("pa-dep-low", with(&base, "deposit_paid", Some(json!("2999999.99"))), Some("deposit_below_minimum")),
        ("pa-dep-ok", with(&base, "deposit_paid", Some(json!("3000000.00"))), None),
        ("pa-364", with(&base, "established_on", Some(json!(days_ago(364)))), Some("established_less_than_one_year")),
        ("pa-365", with(&base, "established_on", Some(json!(days_ago(365)))), None),
        ("pa-noauth", with(&base, "authorized_providers", Some(json!([]))), Some("no_provider_authorization")),
        ("pa-viol", with(&base, "major_violation_last_year", Some(json!(true))), Some("major_violation")),
        ("pa-today", with(&base, "established_on", Some(json!(today().to_string()))), Some("established_less_than_one_year")),
    ];
    for (id, body, reason) in cases {
        let created = app.admin_post("/v1/admin/partners", with(&body, "id", Some(json!(id)))).await.expect(201);
        let expected = (reason.is_none(), reason.map(|r| vec![r.to_string()]).unwrap_or_default());
        assert_eq!(reasons(&created), expected, "{id}: {created}");
        let read = app.admin_get(&format!("/v1/admin/partners/{id}")).await.expect(200);
        assert_eq!(reasons(&read), expected, "{id} read back: {read}");
    }
    // Several reasons at once, in the documented order.
    let all = json!({
        "id": "pa-all", "name": "Bad", "established_on": days_ago(10), "deposit_paid": "100",
        "authorized_providers": [], "major_violation_last_year": true, "regions": ["44"]
    });
    let created = app.admin_post("/v1/admin/partners", all).await.expect(201);
    let expected: Vec<String> = ["deposit_below_minimum", "established_less_than_one_year", "no_provider_authorization", "major_violation"]
        .map(String::from)
        .to_vec();
    assert_eq!(reasons(&created), (false, expected));
    // The list shows eligibility too.
    let list = app.admin_get("/v1/admin/partners?limit=200").await.expect(200);
    let listed = list["data"].as_array().unwrap().iter().find(|p| p["id"] == "pa-dep-low").cloned().expect("listed");
    assert_eq!(reasons(&listed), (false, vec!["deposit_below_minimum".to_string()]));

    // PATCH of the deposit changes `eligible` on the next read.
    let r = app.admin().patch("/v1/admin/partners/pa-dep-low", json!({"deposit_paid": "3000000"})).await.expect(200);
    assert_eq!(reasons(&r), (true, vec![]));
    assert_eq!(reasons(&app.admin_get("/v1/admin/partners/pa-dep-low").await.expect(200)), (true, vec![]));
    app.admin().patch("/v1/admin/partners/pa-dep-low", json!({"deposit_paid": "1"})).await.expect(200);
    let read = app.admin_get("/v1/admin/partners/pa-dep-low").await.expect(200);
    assert_eq!((reasons(&read), read["deposit_paid"].as_str()), ((false, vec!["deposit_below_minimum".to_string()]), Some("1.00")));
    // A partner key reads its own partner only.
    let key = app.key_for("partner", Some("pa-dep-ok")).await;
    assert_eq!(app.get(&key, "/v1/admin/partners/pa-dep-ok").await.status, 200);
    expect_error(&app.get(&key, "/v1/admin/partners/pa-364").await, 404, "not_found");
}

// ---------- 5. the APR cap and product defaults ----------

#[actix_web::test]
async fn apr_cap_on_products_and_product_defaults() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "P1"})).await.expect(201);
    let product = |id: &str, pricing: &str, terms: Value| json!({"id": id, "name": "Phone", "pricing": pricing, "terms": terms, "providers": ["p1"], "regions": ["44"], "min_principal": "500", "max_principal": "20000"});

    // Interest pricing: the rate itself, up to the cap included.
    let created = app
        .admin_post(
            "/v1/admin/products",
            product("pr-int", "interest", json!([{"months": 12, "rate": "0.18"}, {"months": 6, "rate": "0.24"}])),
        )
        .await
        .expect(201);
    assert_eq!(
        created["terms"],
        json!([{"months": 12, "rate": "0.18", "apr_irr": "0.1800"}, {"months": 6, "rate": "0.24", "apr_irr": "0.2400"}])
    );
    // Defaults are answered.
    for (field, value) in [
        ("hold_ratio", json!("1.00")),
        ("grace_days", json!(3)),
        ("penalty_daily_rate", json!("0.0005")),
        ("funding_timeout_hours", json!(72)),
        ("partner_referral_fee", json!("0.00")),
        ("active", json!(true)),
        ("min_principal", json!("500.00")),
        ("pricing", json!("interest")),
    ] {
        assert_eq!(created[field], value, "{field}: {created}");
    }
    assert_eq!(app.admin_get("/v1/admin/products/pr-int").await.expect(200), created);

    let r = app
        .admin_post(
            "/v1/admin/products",
            product("pr-over", "interest", json!([{"months": 12, "rate": "0.18"}, {"months": 24, "rate": "0.2401"}])),
        )
        .await;
    expect_field(&r, 422, "apr_above_cap", "terms[1].rate");
    // Compared after rounding half-up to 4 decimals.
    let edge = app
        .admin_post("/v1/admin/products", product("pr-edge", "interest", json!([{"months": 12, "rate": "0.24004999"}])))
        .await
        .expect(201);
    assert_eq!(edge["terms"][0]["apr_irr"], "0.2400");
    let r = app.admin_post("/v1/admin/products", product("pr-over", "interest", json!([{"months": 12, "rate": "0.24005"}]))).await;
    expect_field(&r, 422, "apr_above_cap", "terms[0].rate");
    // Fee pricing: the IRR of equal payments of principal × (1 + rate) / n.
    let r = app.admin_post("/v1/admin/products", product("pr-fee-over", "fee", json!([{"months": 12, "rate": "0.14"}]))).await;
    expect_field(&r, 422, "apr_above_cap", "terms[0].rate");
    assert_eq!(r.body["error"]["details"]["apr_irr"], "0.2491", "{}", r.body);
    let fee = app
        .admin_post("/v1/admin/products", product("pr-fee", "fee", json!([{"months": 12, "rate": "0.12"}, {"months": 3, "rate": "0"}])))
        .await
        .expect(201);
    assert_eq!(fee["terms"], json!([{"months": 12, "rate": "0.12", "apr_irr": "0.2146"}, {"months": 3, "rate": "0", "apr_irr": "0.0000"}]));
    // The penalty rate × 365 is held to the cap as well.
    let mut penalty = product("pr-pen", "interest", json!([{"months": 12, "rate": "0.1"}]));
    penalty["penalty_daily_rate"] = json!("0.0007");
    expect_field(&app.admin_post("/v1/admin/products", penalty.clone()).await, 422, "apr_above_cap", "penalty_daily_rate");
    penalty["penalty_daily_rate"] = json!("0.0006");
    assert_eq!(app.admin_post("/v1/admin/products", penalty).await.expect(201)["penalty_daily_rate"], "0.0006");
    for id in ["pr-over", "pr-fee-over"] {
        expect_error(&app.admin_get(&format!("/v1/admin/products/{id}")).await, 404, "not_found");
    }

    // PATCH: deactivate; a change that prices above the cap is refused and changes nothing.
    let patched = app.admin().patch("/v1/admin/products/pr-int", json!({"active": false})).await.expect(200);
    assert_eq!((patched["active"].as_bool(), &patched["terms"]), (Some(false), &created["terms"]));
    let r = app.admin().patch("/v1/admin/products/pr-int", json!({"pricing": "fee", "name": "Renamed"})).await;
    expect_field(&r, 422, "apr_above_cap", "terms[0].rate");
    let r = app.admin().patch("/v1/admin/products/pr-int", json!({"terms": [{"months": 3, "rate": "0.25"}]})).await;
    expect_field(&r, 422, "apr_above_cap", "terms[0].rate");
    let read = app.admin_get("/v1/admin/products/pr-int").await.expect(200);
    assert_eq!(
        (read["pricing"].as_str(), read["name"].as_str(), &read["terms"], read["active"].as_bool()),
        (Some("interest"), Some("Phone"), &created["terms"], Some(false))
    );
    let patched = app
        .call(
            "PATCH",
            "/v1/admin/products/pr-int",
            Some(&admin),
            Some(&json!({"terms": [{"months": 36, "rate": "0.2"}], "grace_days": 0, "hold_ratio": "1.5"})),
            None,
        )
        .await
        .expect(200);
    assert_eq!(patched["terms"], json!([{"months": 36, "rate": "0.2", "apr_irr": "0.2000"}]));
    assert_eq!((patched["grace_days"].as_i64(), patched["hold_ratio"].as_str()), (Some(0), Some("1.50")));
    // PATCH cannot change the id (repeating it is fine).
    let r = app.admin().patch("/v1/admin/products/pr-int", json!({"id": "pr-new"})).await;
    expect_field(&r, 422, "invalid_request", "id");
    app.admin().patch("/v1/admin/products/pr-int", json!({"id": "pr-int", "name": "Same id"})).await.expect(200);
    expect_error(&app.admin_get("/v1/admin/products/pr-new").await, 404, "not_found");
    // Stores and partners may read products.
    let store = store_with_key(&app, "st-p").await;
    assert_eq!(app.get(&store, "/v1/admin/products/pr-int").await.expect(200)["name"], "Same id");
}

#[actix_web::test]
async fn patch_rules_on_banks_and_providers() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    let patch = |path: String, body: Value| {
        let admin = admin.clone();
        let app = &app;
        async move { app.call("PATCH", &path, Some(&admin), Some(&body), None).await }
    };
    let bank = with(&bank_body("b1"), "regions", Some(json!(["44", "110000"])));
    let created = app.admin_post("/v1/admin/banks", bank).await.expect(201);
    assert_eq!(created["regions"], json!(["44", "110000"]));
    // Absent keeps, a value changes, null clears an optional field.
    let r = patch("/v1/admin/banks/b1".into(), json!({"priority": 7})).await.expect(200);
    assert_eq!((r["priority"].as_i64(), &r["regions"], r["name"].as_str()), (Some(7), &json!(["44", "110000"]), Some("Bank")));
    let r = patch("/v1/admin/banks/b1".into(), json!({"regions": null})).await.expect(200);
    assert_eq!(r["regions"], Value::Null);
    assert_eq!(app.admin_get("/v1/admin/banks/b1").await.expect(200)["regions"], Value::Null);
    // Required fields cannot be cleared; checks still apply; the id cannot change.
    expect_field(&patch("/v1/admin/banks/b1".into(), json!({"name": null})).await, 422, "invalid_request", "name");
    expect_field(&patch("/v1/admin/banks/b1".into(), json!({"apr_min": "0.3"})).await, 422, "invalid_request", "apr_min");
    expect_field(&patch("/v1/admin/banks/b1".into(), json!({"exposure_limit": "0"})).await, 422, "invalid_amount", "exposure_limit");
    expect_field(&patch("/v1/admin/banks/b1".into(), json!({"id": "b2"})).await, 422, "invalid_request", "id");
    expect_field(&patch("/v1/admin/banks/b1".into(), json!({"exposure_used": "5"})).await, 422, "invalid_request", "exposure_used");
    expect_error(&app.admin_get("/v1/admin/banks/b2").await, 404, "not_found");
    let read = app.admin_get("/v1/admin/banks/b1").await.expect(200);
    assert_eq!(
        (read["name"].as_str(), read["apr_min"].as_str(), read["exposure_limit"].as_str()),
        (Some("Bank"), Some("0"), Some("1000000.00"))
    );

    // Webhooks: a URL set by PATCH gets a secret in that answer; null removes both.
    app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "P1"})).await.expect(201);
    let r = patch("/v1/admin/providers/p1".into(), json!({"webhook_url": "https://example.com/hooks"})).await.expect(200);
    assert!(r["webhook_secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{r}");
    let r = patch("/v1/admin/providers/p1".into(), json!({"name": "Renamed"})).await.expect(200);
    assert!(r.get("webhook_secret").is_none(), "{r}");
    let r = patch("/v1/admin/providers/p1".into(), json!({"webhook_url": null})).await.expect(200);
    assert_eq!(r["webhook_url"], Value::Null);
    let secret: Option<String> =
        app.db().await.query_one("SELECT webhook_secret FROM providers WHERE id = 'p1'", &[]).await.unwrap().get(0);
    assert_eq!(secret, None);
    // Store: region code changes are checked.
    app.admin_post("/v1/admin/stores", json!({"id": "s1", "name": "S", "region_code": "440305"})).await.expect(201);
    expect_field(&patch("/v1/admin/stores/s1".into(), json!({"region_code": "44"})).await, 422, "invalid_request", "region_code");
    assert_eq!(patch("/v1/admin/stores/s1".into(), json!({"region_code": "110105"})).await.expect(200)["region_code"], "110105");
}

#[actix_web::test]
async fn concurrent_patches_of_different_fields_are_all_kept() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    app.admin_post("/v1/admin/banks", bank_body("b1")).await.expect(201);
    app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "P1"})).await.expect(201);
    app.admin_post("/v1/admin/partners", partner_body("pa1", &["p1"])).await.expect(201);
    let regions = ["44", "11", "31", "32", "33"];
    for (round, region) in regions.into_iter().enumerate() {
        let bank = [
            json!({"name": format!("Bank {round}")}),
            json!({"priority": 100 + round}),
            json!({"apr_min": format!("0.0{round}")}),
            json!({"exposure_limit": format!("{}", 1000 + round)}),
            json!({"regions": [region]}),
            json!({"webhook_url": format!("https://h{round}.example.com/")}),
        ];
        let partner = [
            json!({"name": format!("Partner {round}")}),
            json!({"deposit_paid": format!("{}", 3_000_000 + round)}),
            json!({"major_violation_last_year": round % 2 == 1}),
            json!({"regions": [region]}),
            json!({"established_on": days_ago(400 + round as i64)}),
        ];
        let calls = bank
            .iter()
            .map(|b| ("/v1/admin/banks/b1", b))
            .chain(partner.iter().map(|p| ("/v1/admin/partners/pa1", p)))
            .map(|(path, body)| app.call("PATCH", path, Some(&admin), Some(body), None));
        for r in futures_util::future::join_all(calls).await {
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let b = app.admin_get("/v1/admin/banks/b1").await.expect(200);
        let want = json!({
            "name": format!("Bank {round}"), "priority": 100 + round, "apr_min": if round == 0 { "0".to_string() } else { format!("0.0{round}") },
            "exposure_limit": format!("{}.00", 1000 + round), "regions": [region], "webhook_url": format!("https://h{round}.example.com/"),
        });
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&b[k], v, "round {round}: bank field {k} lost: {b}");
        }
        let p = app.admin_get("/v1/admin/partners/pa1").await.expect(200);
        let want = json!({
            "name": format!("Partner {round}"), "deposit_paid": format!("{}.00", 3_000_000 + round),
            "major_violation_last_year": round % 2 == 1, "regions": [region], "established_on": days_ago(400 + round as i64),
        });
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&p[k], v, "round {round}: partner field {k} lost: {p}");
        }
    }
}

// ---------- 6. read-back, pagination, api keys, webhook secrets ----------

#[actix_web::test]
async fn lists_page_in_creation_order() {
    let app = TestApp::start().await;
    let ids = ["st-e", "st-a", "st-c", "st-b", "st-d"];
    for id in ids {
        app.admin_post("/v1/admin/stores", json!({"id": id, "name": format!("Store {id}"), "region_code": "440305"})).await.expect(201);
    }
    let one = app.admin_get("/v1/admin/stores/st-c").await.expect(200);
    assert_eq!((one["id"].as_str(), one["name"].as_str(), one["region_code"].as_str()), (Some("st-c"), Some("Store st-c"), Some("440305")));
    assert!(one["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{one}");

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = "/v1/admin/stores?limit=2".to_string();
    loop {
        let page = app.admin_get(&path).await.expect(200);
        pages += 1;
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|s| s["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/admin/stores?limit=2&cursor={cursor}"),
            None => {
                assert!(page.get("next_cursor").is_some(), "next_cursor is present as null");
                break;
            }
        }
        assert!(pages < 10);
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // A page that ends exactly at the end has no cursor; the default limit takes everything here.
    assert_eq!(app.admin_get("/v1/admin/stores?limit=5").await.expect(200)["next_cursor"], Value::Null);
    let all = app.admin_get("/v1/admin/stores").await.expect(200);
    assert_eq!(all["data"].as_array().unwrap().len(), 5);

    for bad in
        ["limit=0", "limit=201", "limit=x", "limit=", "limit=-1", "limit=1.5", "cursor=zzz", "cursor=", "cursor=cy0x", "limit=2&cursor=%00"]
    {
        let r = app.admin_get(&format!("/v1/admin/stores?{bad}")).await;
        let field = if bad.contains("cursor") { "cursor" } else { "limit" };
        expect_field(&r, 422, "invalid_request", field);
    }
    assert_eq!(app.admin_get("/v1/admin/stores?limit=200").await.status, 200);
    expect_error(&app.admin_get("/v1/admin/stores/st-zz").await, 404, "not_found");
}

#[actix_web::test]
async fn api_keys_show_their_secret_only_once() {
    let app = TestApp::start().await;
    app.admin_post("/v1/admin/stores", json!({"id": "s1", "name": "S", "region_code": "440305"})).await.expect(201);
    let created = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "s1"}})).await.expect(201);
    let key = created["key"].as_str().expect("key shown at creation").to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("key_"), "{created}");
    assert_eq!(created["principal"], json!({"kind": "store", "id": "s1"}));
    assert!(created["created_at"].is_string());
    let admin_key = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "admin"}})).await.expect(201);
    assert_eq!(admin_key["principal"]["kind"], "admin");

    let one = app.admin_get(&format!("/v1/admin/api-keys/{id}")).await.expect(200);
    let list = app.admin_get("/v1/admin/api-keys").await.expect(200);
    for shown in [one.to_string(), list.to_string()] {
        assert!(
            !shown.contains(&key) && !shown.contains(&key[4..]) && !shown.contains("\"key\""),
            "the secret is never read back: {shown}"
        );
    }
    assert_eq!(one["principal"], json!({"kind": "store", "id": "s1"}));
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    // Stored only as a hash.
    let stored: Vec<u8> = app.db().await.query_one("SELECT key_hash FROM api_keys WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_ne!(stored, key.as_bytes());
    assert_eq!(stored.len(), 32);

    assert_eq!(app.get(&key, "/v1/admin/products").await.status, 200);
    let r = app.admin().delete(&format!("/v1/admin/api-keys/{id}")).await;
    assert_eq!(r.status, 204);
    expect_error(&app.get(&key, "/v1/admin/products").await, 401, "unauthenticated");
    let r = app.admin().delete(&format!("/v1/admin/api-keys/{id}")).await;
    assert_eq!(r.status, 204, "revoking twice is fine");

    // Bad principals.
    expect_field(
        &app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "nope"}})).await,
        422,
        "unknown_reference",
        "principal.id",
    );
    expect_field(
        &app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "root"}})).await,
        422,
        "invalid_request",
        "principal.kind",
    );
    expect_field(
        &app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "admin", "id": "x1"}})).await,
        422,
        "invalid_request",
        "principal.id",
    );
    expect_field(
        &app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store"}})).await,
        422,
        "invalid_request",
        "principal.id",
    );
    expect_field(&app.admin_post("/v1/admin/api-keys", json!({})).await, 422, "invalid_request", "principal");
    let r = app.admin_post("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "s1"}, "rate_limit_per_minute": 0})).await;
    expect_field(&r, 422, "invalid_request", "rate_limit_per_minute");
    assert_eq!(count(&app, "SELECT count(*) FROM api_keys").await, 2);
    // Keys are for admins only.
    let store = app.key_for("store", Some("s1")).await;
    expect_error(&app.get(&store, "/v1/admin/api-keys").await, 403, "forbidden");
}

#[actix_web::test]
async fn webhook_secrets_are_shown_at_creation_and_rotation_only() {
    let app = TestApp::start().await;
    let bank = with(&bank_body("b1"), "webhook_url", Some(json!("https://bank.example.com/notices")));
    let created = app.admin_post("/v1/admin/banks", bank).await.expect(201);
    let secret = created["webhook_secret"].as_str().expect("webhook_secret at creation").to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 30, "{secret}");
    let provider =
        app.admin_post("/v1/admin/providers", json!({"id": "p1", "name": "P", "webhook_url": "http://127.0.0.1:9/x"})).await.expect(201);
    let provider_secret = provider["webhook_secret"].as_str().expect("provider secret").to_string();
    assert_ne!(secret, provider_secret);
    let plain = app.admin_post("/v1/admin/providers", json!({"id": "p2", "name": "P"})).await.expect(201);
    assert!(plain.get("webhook_secret").is_none());

    for path in ["/v1/admin/banks/b1", "/v1/admin/banks", "/v1/admin/providers/p1", "/v1/admin/providers"] {
        let read = app.admin_get(path).await.expect(200);
        let text = read.to_string();
        assert!(!text.contains("webhook_secret") && !text.contains(&secret) && !text.contains(&provider_secret), "{path}: {text}");
    }
    assert_eq!(app.admin_get("/v1/admin/banks/b1").await.expect(200)["webhook_url"], "https://bank.example.com/notices");

    let rotated = app.admin_post("/v1/admin/banks/b1/webhook-secret", json!({})).await.expect(200);
    let new_secret = rotated["webhook_secret"].as_str().expect("new secret").to_string();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let rotated = app.call("POST", "/v1/admin/providers/p1/webhook-secret", Some(&app.admin_key), None, None).await.expect(200);
    let new_provider_secret = rotated["webhook_secret"].as_str().unwrap().to_string();
    assert_ne!(new_provider_secret, provider_secret);
    let db = app.db().await;
    let stored: String = db.query_one("SELECT webhook_secret FROM banks WHERE id = 'b1'", &[]).await.unwrap().get(0);
    assert_eq!(stored, new_secret, "the rotated secret is the one kept");
    let stored: String = db.query_one("SELECT webhook_secret FROM providers WHERE id = 'p1'", &[]).await.unwrap().get(0);
    assert_eq!(stored, new_provider_secret);
    expect_error(&app.admin_post("/v1/admin/banks/ghost/webhook-secret", json!({})).await, 404, "not_found");
    expect_error(&app.admin_post("/v1/admin/providers/p2/webhook-secret", json!({})).await, 409, "invalid_state");
    let store = store_with_key(&app, "st-w").await;
    expect_error(&app.call("POST", "/v1/admin/banks/b1/webhook-secret", Some(&store), None, None).await, 403, "forbidden");
}

// ---------- 7. operations ----------

#[actix_web::test]
async fn operations_endpoints() {
    let app = TestApp::start().await;
    let r = app.get_without_key("/healthz").await;
    assert_eq!(r.status, 200);
    request_id(&r);
    assert_eq!(app.get_without_key("/readyz").await.status, 200);
    app.admin_get("/v1/admin/banks").await.expect(200);
    app.admin_get("/v1/admin/banks/b-none").await;
    let metrics = app.get_without_key("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().expect("text").to_string();
    assert!(text.contains(r#"creditphone_http_requests_total{method="GET",route="/v1/admin/banks",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="/v1/admin/banks/{id}",status="404""#), "{text}");
    assert!(text.lines().any(|l| l.starts_with("creditphone_db_pool_connections ")), "{text}");
    assert!(text.contains("creditphone_http_request_duration_seconds_bucket"), "{text}");

    let doc = app.get_without_key("/openapi.json").await.expect(200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    // Every operation of API.md is in the document; the idempotent ones take an Idempotency-Key.
    let mut operations = vec![
        ("get", "/healthz", false),
        ("get", "/readyz", false),
        ("get", "/metrics", false),
        ("post", "/v1/admin/api-keys", false),
        ("get", "/v1/admin/api-keys", false),
        ("get", "/v1/admin/api-keys/{id}", false),
        ("delete", "/v1/admin/api-keys/{id}", false),
        ("post", "/v1/admin/providers/{id}/webhook-secret", false),
        ("post", "/v1/admin/banks/{id}/webhook-secret", false),
        ("post", "/v1/admin/eod", false),
        ("get", "/v1/admin/audit-log", false),
        ("get", "/v1/admin/ledger/verify", false),
        ("get", "/v1/admin/notices", false),
        ("post", "/v1/admin/notices/{id}/redeliver", false),
        ("post", "/v1/credit-lines", true),
        ("get", "/v1/credit-lines/{id}", false),
        ("post", "/v1/credit-lines/{id}/debt-repayments", true),
        ("get", "/v1/holds/{id}", false),
        ("post", "/v1/quotes", false),
        ("post", "/v1/orders", true),
        ("get", "/v1/orders", false),
        ("get", "/v1/orders/{id}", false),
        ("get", "/v1/orders/{id}/borrower", false),
        ("post", "/v1/orders/{id}/cancel", true),
        ("post", "/v1/orders/{id}/funding", true),
        ("get", "/v1/plans/{id}", false),
        ("get", "/v1/plans/{id}/payoff", false),
        ("post", "/v1/plans/{id}/repayments", true),
        ("post", "/v1/plans/{id}/accelerate", true),
        ("get", "/v1/notices", false),
        ("get", "/v1/reconciliation/{business_date}", false),
        ("get", "/v1/partners/{id}/statement", false),
    ];
    for kind in ["providers", "banks", "stores", "partners", "products"] {
        let base: &'static str = format!("/v1/admin/{kind}").leak();
        let one: &'static str = format!("/v1/admin/{kind}/{{id}}").leak();
        operations.extend([("post", base, false), ("get", base, false), ("get", one, false), ("patch", one, false)]);
    }
    for (method, path, idempotent) in operations {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is in the OpenAPI document");
        let takes_key =
            op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
        assert_eq!(takes_key, idempotent, "{method} {path}: Idempotency-Key parameter");
    }
    assert!(doc["components"]["schemas"]["Bank"].is_object());

    // Not ready while the database lacks this binary's newest migration; ready again once it has it.
    let db = app.db().await;
    let latest = creditphone::db::latest_migration_version() as i32;
    let removed = db
        .query_one("DELETE FROM refinery_schema_history WHERE version = $1 RETURNING name, applied_on, checksum", &[&latest])
        .await
        .unwrap();
    let r = app.get_without_key("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let (name, applied_on, checksum): (String, String, String) = (removed.get(0), removed.get(1), removed.get(2));
    db.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)",
        &[&latest, &name, &applied_on, &checksum],
    )
    .await
    .unwrap();
    assert_eq!(app.get_without_key("/readyz").await.status, 200);
}

// ---------- 8. migrations and database outages ----------

#[actix_web::test]
async fn migrations_run_twice_and_concurrently() {
    // A migrated database: running again applies nothing.
    let pg = fresh_database().await;
    let mut client = creditphone::db::connect(&pg).await.expect("connect");
    assert_eq!(creditphone::db::migrate(&mut client).await.expect("again"), 0);
    assert_eq!(creditphone::db::migrate(&mut client).await.expect("and again"), 0);

    // An empty database, migrated by two instances at once.
    let c = cluster();
    let admin = creditphone::db::connect(&c.base).await.expect("connect");
    let name = format!("mig_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).await.expect("create");
    let mut cfg = c.base.clone();
    cfg.dbname(&name);
    let run = |cfg: tokio_postgres::Config| async move {
        let mut client = creditphone::db::connect(&cfg).await.expect("connect");
        creditphone::db::migrate(&mut client).await
    };
    let (a, b) = futures_util::join!(run(cfg.clone()), run(cfg.clone()));
    let (a, b) = (a.expect("first instance"), b.expect("second instance"));
    let client = creditphone::db::connect(&cfg).await.expect("connect");
    let versions: i64 = client.query_one("SELECT count(*) FROM refinery_schema_history", &[]).await.unwrap().get(0);
    let latest: i64 = client.query_one("SELECT max(version)::int8 FROM refinery_schema_history", &[]).await.unwrap().get(0);
    assert!(versions >= 2);
    assert_eq!((a + b) as i64, versions, "each migration applied once ({a} + {b})");
    assert!(a == 0 || b == 0, "one instance applied everything: {a} {b}");
    assert_eq!(latest, creditphone::db::latest_migration_version());
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('providers', 'credit_lines', 'idempotency_keys')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 3);
    let mut client = creditphone::db::connect(&cfg).await.expect("connect");
    assert_eq!(creditphone::db::migrate(&mut client).await.expect("rerun"), 0);
    // The service starts on it and is ready.
    let app = TestApp::start_on(cfg, |_| {}).await;
    assert_eq!(app.get_without_key("/readyz").await.status, 200);
}

async fn wait_for_status(app: &TestApp, path: &str, status: u16, within: Duration) -> Resp {
    let deadline = Instant::now() + within;
    loop {
        let r = app.get_without_key(path).await;
        if r.status == status || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn database_outage_answers_503_and_recovers_by_itself() {
    let app = TestApp::start_with(|s| s.database.timeout_ms = 1500).await;
    let provider = provider_with_key(&app, "prov-o").await;
    assert_eq!(app.get_without_key("/readyz").await.status, 200);
    let dbname = app.pg.get_dbname().expect("dbname").to_string();
    let admin = creditphone::db::connect(&cluster().base).await.expect("connect");
    admin.batch_execute(&format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS false")).await.expect("close the database");
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&dbname])
        .await
        .expect("terminate");

    let started = Instant::now();
    let r = wait_for_status(&app, "/readyz", 503, Duration::from_secs(5)).await;
    assert_eq!(r.status, 503, "readyz during the outage: {}", r.body);
    request_id(&r);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Requests that need the database answer 503 unavailable quickly (never hang, never 500).
    let started = Instant::now();
    expect_error(&app.admin_get("/v1/admin/providers").await, 503, "unavailable");
    expect_error(&app.admin_post("/v1/admin/providers", json!({"id": "p-out", "name": "x"})).await, 503, "unavailable");
    expect_error(&app.post(&provider, "/v1/credit-lines", line_body(9)).await, 503, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(10), "answered in {:?}", started.elapsed());
    // What needs no database still works.
    assert_eq!(app.get_without_key("/healthz").await.status, 200);
    expect_error(&app.get_without_key("/v1/admin/providers").await, 401, "unauthenticated");

    admin.batch_execute(&format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS true")).await.expect("reopen");
    let r = wait_for_status(&app, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(r.status, 200, "readyz after the outage: {}", r.body);
    app.admin_get("/v1/admin/providers").await.expect(200);
    assert_eq!(app.post(&provider, "/v1/credit-lines", line_body(9)).await.status, 201);
    expect_error(&app.admin_get("/v1/admin/providers/p-out").await, 404, "not_found");
}

/// A request waiting on a row lock past the database's timeouts (statement and lock timeout share
/// one value, db::make_pool; the statement's fires first): `503 unavailable` naming the timeout
/// rather than "cannot be reached", and nothing changed; once the lock is gone the same request
/// succeeds.
#[actix_web::test]
async fn a_lock_held_past_the_timeout_answers_503_naming_the_cause() {
    let app = TestApp::start_on(fresh_database().await, |s| {
        s.database.statement_timeout_ms = 300;
        s.server.request_timeout_ms = 10_000;
    })
    .await;
    let w = world::World::standard().build(&app).await;
    app.set_today("2027-01-31");
    let order = w.store().place_order(world::order_body("LOCK-1", "p12", 7, 1)).await.expect(201);
    let id = order["id"].as_str().expect("an order id").to_string();
    let mut holder = app.db().await;
    let held = holder.transaction().await.expect("begin");
    held.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", &[&id]).await.expect("lock the order");

    let r = w.bank().fund(&id, "L-LOCK", "2027-01-31").await;
    expect_error(&r, 503, "unavailable");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("timeout") && !message.contains("cannot be reached"), "{}", r.body);
    held.rollback().await.expect("release the lock");

    let status: String = app.db().await.query_one("SELECT status FROM orders WHERE id = $1", &[&id]).await.expect("read").get(0);
    assert_eq!(status, "awaiting_funding", "the refused funding changed nothing");
    w.bank().fund(&id, "L-LOCK", "2027-01-31").await.expect(200);
}

// ---------- 9. the embedded default through the real binary ----------

/// What both binary tests run with: the embedded cluster under `dir/var`, one worker, no EOD.
fn binary_in(dir: &std::path::Path, admin_key: &str) -> ServeBinary {
    ServeBinary::new(dir).data_dir(dir.join("var")).admin_key(admin_key).workers(1).eod_enabled(false).log_format("text")
}

fn postmaster_pid(dir: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("var/pgdata/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// SIGTERM: the service exits 0 and stops its embedded PostgreSQL cleanly.
async fn terminate(dir: &std::path::Path, mut child: RunningServe) {
    let postmaster = postmaster_pid(dir).expect("a running postmaster has a postmaster.pid");
    assert!(process_alive(postmaster));
    let status = child.stop(Duration::from_secs(40)).await;
    assert!(status.success(), "serve exits 0 after SIGTERM, got {status}:\n{}", child.log());
    assert!(!process_alive(postmaster), "the postmaster {postmaster} is left running");
    assert!(postmaster_pid(dir).is_none(), "postmaster.pid removed by a clean shutdown");
}

#[actix_web::test]
async fn embedded_default_serves_stops_and_restarts() {
    let tmp = tempfile::Builder::new().prefix("cp-serve-").tempdir_in("/tmp").expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let (dir, admin_key) = (tmp.path(), format!("adm-{}", uuid::Uuid::new_v4().simple()));
    let serve = binary_in(dir, &admin_key);
    let http = reqwest::Client::new();
    let base = serve.base_url();

    // First start: creates the cluster under var/, migrates, serves.
    let mut child = serve.clone().log_file("serve-1.log").spawn();
    child.wait_ready(Duration::from_secs(90)).await;
    assert!(dir.join("var/pgdata/PG_VERSION").is_file());
    let r = http
        .post(format!("{base}/v1/admin/providers"))
        .bearer_auth(&admin_key)
        .json(&json!({"id": "kept-provider", "name": "Kept"}))
        .send()
        .await
        .expect("create a provider");
    assert_eq!(r.status().as_u16(), 201);

    // A second serve on the same data directory refuses clearly.
    let mut second = serve.clone().on_port(free_port()).log_file("serve-2.log").spawn();
    let Some(status) = second.wait_exit(Duration::from_secs(30)).await else {
        panic!("the second serve keeps running:\n{}", second.log());
    };
    assert!(!status.success(), "the second serve must fail");
    assert!(second.log().contains("already running"), "{}", second.log());
    // The first one is unharmed.
    assert_eq!(http.get(format!("{base}/readyz")).send().await.expect("readyz").status().as_u16(), 200);

    // SIGTERM: exits 0 and stops its PostgreSQL.
    terminate(dir, child).await;

    // `migrate` with the same settings.
    let mut migrate = serve.clone().log_file("migrate.log").spawn_subcommand(&["migrate"]);
    let status = migrate.wait_exit(Duration::from_secs(60)).await.expect("migrate finishes");
    assert!(status.success(), "migrate: {status}\n{}", migrate.log());
    assert!(migrate.log().contains("migrations applied: 0"), "{}", migrate.log());
    assert!(postmaster_pid(dir).is_none(), "migrate stops its PostgreSQL");

    // Restart on the existing var/: the provider is still there.
    let mut child = serve.clone().log_file("serve-3.log").spawn();
    child.wait_ready(Duration::from_secs(90)).await;
    let r = http.get(format!("{base}/v1/admin/providers/kept-provider")).bearer_auth(&admin_key).send().await.expect("read");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["name"], "Kept");

    // A crash (SIGKILL) takes its PostgreSQL down too, and the next start recovers on the same var/.
    let postmaster = postmaster_pid(dir).expect("postmaster.pid");
    child.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    while process_alive(postmaster) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(postmaster), "the postmaster outlives a killed serve");
    let mut child = serve.clone().log_file("serve-4.log").spawn();
    child.wait_ready(Duration::from_secs(90)).await;
    let r = http.get(format!("{base}/v1/admin/providers/kept-provider")).bearer_auth(&admin_key).send().await.expect("read");
    assert_eq!(r.status().as_u16(), 200);
    terminate(dir, child).await;
}

#[actix_web::test]
async fn configured_database_url_and_settings_from_the_environment() {
    // An empty database on the test cluster, given as CREDITPHONE__DATABASE__URL: no embedded cluster.
    let c = cluster();
    let admin = creditphone::db::connect(&c.base).await.expect("connect");
    let name = format!("url_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).await.expect("create");
    let url = format!("postgresql://{}@/{name}?host={}&port={}", c.user, c.socket_dir.display(), c.port);

    let tmp = tempfile::Builder::new().prefix("cp-url-").tempdir_in("/tmp").expect("tempdir");
    // No default.toml in the config dir (the built-in one is used), a ci.toml layer on top of it,
    // then environment variables; secrets that look like numbers stay as written.
    let config_dir = tmp.path().join("config");
    std::fs::create_dir(&config_dir).expect("config dir");
    std::fs::write(config_dir.join("ci.toml"), "[server]\nbody_limit_bytes = 4096\nport = 1\n").expect("ci.toml");
    let serve = binary_in(tmp.path(), "00123456789")
        .config_dir(config_dir)
        .database_url(&url)
        .env("CREDITPHONE_ENV", "ci")
        .env("CREDITPHONE__CLOCK__ALLOW_FUTURE_DATES", "true");

    // A port that is taken: a clear error and a non-zero exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut refused = serve.clone().on_port(taken.local_addr().unwrap().port()).log_file("taken.log").spawn();
    let status = refused.wait_exit(Duration::from_secs(60)).await.expect("serve on a taken port exits");
    assert!(!status.success() && refused.log().contains("cannot listen"), "{status}: {}", refused.log());
    drop(taken);

    let mut child = serve.spawn();
    child.wait_ready(Duration::from_secs(90)).await;
    assert!(!tmp.path().join("var/pgdata").exists(), "no embedded cluster with a database URL");

    let http = reqwest::Client::new();
    let base = serve.base_url();
    let status = |r: reqwest::Response| r.status().as_u16();
    let r = http.get(format!("{base}/v1/admin/providers")).bearer_auth("00123456789").send().await.expect("send");
    assert_eq!(status(r), 200, "the admin key as written:\n{}", child.log());
    let r = http.get(format!("{base}/v1/admin/providers")).bearer_auth("123456789").send().await.expect("send");
    assert_eq!(status(r), 401, "a key that only parses to the same number is another key");
    // The body limit from the environment.
    let r = http.post(format!("{base}/v1/admin/providers")).bearer_auth("00123456789").body(vec![b' '; 5000]).send().await.expect("send");
    assert_eq!(status(r), 413);
    // Migrated by serve.
    let client = creditphone::db::connect(&url.parse().expect("url")).await.expect("connect");
    let latest: i64 = client.query_one("SELECT max(version)::int8 FROM refinery_schema_history", &[]).await.unwrap().get(0);
    assert_eq!(latest, creditphone::db::latest_migration_version());

    let status = child.stop(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}:\n{}", child.log());
    // `migrate` against the URL.
    let mut migrate = serve.clone().log_file("migrate.log").spawn_subcommand(&["migrate"]);
    let status = migrate.wait_exit(Duration::from_secs(60)).await.expect("migrate finishes");
    assert!(status.success() && migrate.log().contains("migrations applied: 0"), "{}", migrate.log());
}

#[actix_web::test]
async fn hostile_input_never_answers_5xx() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    app.admin_post("/v1/admin/banks", bank_body("b1")).await.expect(201);
    let store = store_with_key(&app, "s1").await;
    // A NUL in a path id names nothing: 404 (PostgreSQL text cannot hold it).
    for (method, path) in [
        ("GET", "/v1/admin/banks/%00"),
        ("GET", "/v1/admin/banks/b1%00"),
        ("PATCH", "/v1/admin/banks/%00"),
        ("POST", "/v1/admin/banks/%00/webhook-secret"),
        ("GET", "/v1/admin/api-keys/%00"),
        ("DELETE", "/v1/admin/api-keys/%00"),
        ("GET", "/v1/admin/partners/%00"),
        ("GET", "/v1/admin/products/%00"),
        ("GET", "/v1/credit-lines/%00"),
        ("GET", "/v1/admin/banks/%FF"),
        ("GET", "/v1/admin/banks/%E4%B8%AD"),
    ] {
        let r = app.call_raw(method, path, Some(&admin), Some(b"{}".to_vec()), Some("k"), &[]).await;
        expect_error(&r, 404, "not_found");
    }
    // Still 401 first, and 404 (not 403) for a store.
    expect_error(&app.get_without_key("/v1/admin/banks/%00").await, 401, "unauthenticated");
    expect_error(&app.get(&store, "/v1/admin/banks/%00").await, 404, "not_found");
    let long = format!("/v1/admin/banks/{}", "x".repeat(4000));
    expect_error(&app.admin_get(&long).await, 404, "not_found");
    // NULs in bodies and in query values.
    for (path, body, field) in [
        ("/v1/admin/providers", json!({"id": "p1", "name": "a\u{0}b"}), "name"),
        ("/v1/admin/providers", json!({"id": "p1", "name": "P", "webhook_url": "https://x.example.com/\u{0}"}), "webhook_url"),
        ("/v1/admin/stores", json!({"id": "s2", "name": "S", "region_code": "44030\u{0}"}), "region_code"),
        ("/v1/admin/api-keys", json!({"principal": {"kind": "store", "id": "s1\u{0}"}}), "principal.id"),
    ] {
        expect_field(&app.admin_post(path, body).await, 422, "invalid_request", field);
    }
    let r = app.admin_get("/v1/admin/notices?recipient=store:%00").await;
    assert!(r.status < 500, "{}", r.body);
    expect_error(&r, 422, "invalid_request");
    expect_field(&app.admin_get("/v1/admin/stores?limit=%00").await, 422, "invalid_request", "limit");
    assert_eq!(count(&app, "SELECT count(*) FROM providers").await, 0);
}

/// A statement given settings of its own (`db::query_with_settings`, what the aging and the day's
/// reports run with) runs with them, and its transaction has its own back afterwards.
#[actix_web::test]
async fn a_statement_with_settings_of_its_own_leaves_its_transaction_as_it_was() {
    let app = TestApp::start().await;
    let mut db = app.db().await;
    let tx = db.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL work_mem = '5MB'").await.unwrap();
    let read = "SELECT current_setting('jit'), current_setting('work_mem'), current_setting('max_parallel_workers_per_gather')";
    let three = |rows: Vec<tokio_postgres::Row>| -> (String, String, String) { (rows[0].get(0), rows[0].get(1), rows[0].get(2)) };
    let before = three(tx.query(read, &[]).await.unwrap());
    assert_eq!((before.0.as_str(), before.1.as_str()), ("on", "5MB"), "the server's JIT, the transaction's work_mem");
    let settings = [("jit", "off"), ("work_mem", "7MB"), ("max_parallel_workers_per_gather", "0")];
    let during = three(creditphone::db::query_with_settings(&tx, &settings, read, &[]).await.unwrap());
    assert_eq!(during, ("off".to_string(), "7MB".to_string(), "0".to_string()), "the statement ran with its own");
    assert_eq!(three(tx.query(read, &[]).await.unwrap()), before, "and the transaction has its own back");
    tx.rollback().await.unwrap();
}

//! Issue 7 "Prove it holds": security. Every endpoint of API.md × every kind of caller (the
//! 401 / 403 / 404 rules of section 1, table-driven, all mismatches reported at once), per-key
//! rate limits (429 with Retry-After), the body limit (413, chunked bodies included), no raw
//! personal data in the database or the debug log of the real binary, and secrets (API keys,
//! webhook secrets) readable only in the answer that created them.

mod common;

use chrono::{NaiveDate, Utc};
use common::binary::ServeBinary;
use common::raw::{self, RawAnswer};
use common::world;
use common::*;
use creditphone::domain::shanghai_date;
use creditphone::pg::embedded::PgBinaries;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

// ---------- helpers ----------

const FAR: &str = "2035-12-31";

fn today() -> NaiveDate {
    shanghai_date(Utc::now())
}

#[track_caller]
fn st(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// Creates an API key and answers `(id, key)`.
async fn new_key(app: &TestApp, principal: Value, rate: Option<u32>) -> (String, String) {
    app.admin().new_key(principal, rate).await
}

fn order_body(no: &str, seed: u64, partner: bool) -> Value {
    let body = world::named_order_body(no, seed);
    if partner { world::by_partner(body, "440305", "a-1") } else { body }
}

fn partner_body(id: &str) -> Value {
    json!({"id": id, "name": "Agent Co", "established_on": (today() - chrono::Duration::days(800)).to_string(),
           "deposit_paid": "3000000.00", "authorized_providers": ["pv-a", "pv-b"], "major_violation_last_year": false,
           "regions": ["4403"]})
}

fn product_body(id: &str) -> Value {
    json!({"id": id, "name": "Phone plan", "pricing": "interest", "terms": [{"months": 12, "rate": "0.18"}],
           "providers": ["pv-a", "pv-b"], "regions": ["44"], "min_principal": "500", "max_principal": "20000"})
}

fn bank_body(id: &str, priority: i32) -> Value {
    json!({"id": id, "name": format!("Bank {id}"), "priority": priority, "apr_min": "0", "apr_max": "0.24",
           "exposure_limit": "10000000"})
}

/// `pg_dump` (of the same PostgreSQL the test cluster runs on) of a test database, as text.
async fn pg_dump(pg: &tokio_postgres::Config) -> String {
    let c = cluster();
    let bin = PgBinaries::find().expect("PostgreSQL binaries").bin_dir.join("pg_dump");
    let db = pg.get_dbname().expect("a database name").to_string();
    let (socket, port, user) = (c.socket_dir.display().to_string(), c.port.to_string(), c.user.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .args(["--no-owner", "--no-privileges", "-h", &socket, "-p", &port, "-U", &user, "-d", &db])
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
    })
    .await
    .expect("join");
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    let dump = String::from_utf8(out.stdout).expect("a UTF-8 dump");
    assert!(dump.contains("CREATE TABLE") && dump.len() > 10_000, "a real dump:\n{dump}");
    dump
}

/// Sends `head` + `body` on a fresh connection (no client library, so the framing is exactly what is
/// written: a chunked body without Content-Length) and reads one answer by its Content-Length,
/// without waiting for the server to close.
async fn raw_request(app: &TestApp, head: String, body: Vec<u8>) -> RawAnswer {
    let mut s = raw::send(&app.url, head.as_bytes()).await;
    // The server may answer 413 and stop reading part-way: a failed write is not the test's failure.
    let _ = s.write_all(&body).await;
    raw::read_answer(&mut s, Duration::from_secs(20)).await
}

/// A POST with `Transfer-Encoding: chunked` and no Content-Length; `terminate` sends the final
/// zero-length chunk (a refused body is sent without it, so the server never has unread bytes).
async fn chunked_post(app: &TestApp, path: &str, key: Option<&str>, idem: Option<&str>, body: &[u8], terminate: bool) -> RawAnswer {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n");
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if let Some(i) = idem {
        head.push_str(&format!("Idempotency-Key: {i}\r\n"));
    }
    head.push_str("\r\n");
    let mut framed = Vec::new();
    for part in body.chunks(300) {
        framed.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
    }
    if terminate {
        framed.extend_from_slice(b"0\r\n\r\n");
    }
    raw_request(app, head, framed).await
}

#[track_caller]
fn assert_error_body(body: &Value, status: u16, code: &str, request_id: Option<&str>) {
    let e = &body["error"];
    assert_eq!(e["code"], json!(code), "{status}: {body}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "a message: {body}");
    assert!(e.get("field").is_some(), "`field` is always there (null or a path): {body}");
    assert!(e["request_id"].as_str().is_some_and(|r| r.starts_with("req_")), "{body}");
    if let Some(id) = request_id {
        assert_eq!(e["request_id"], json!(id), "the error names the X-Request-Id of its answer");
    }
}

// ---------- 1. endpoint × principal ----------

/// Who calls. "Own" is the store, partner, bank or provider the fixture's objects belong to
/// (st-a, pt-a, bk-a, pv-a); "other" is its twin (st-b, pt-b, bk-b, pv-b).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Admin,
    StoreA,
    StoreB,
    PartnerA,
    PartnerB,
    BankA,
    BankB,
    ProviderA,
    ProviderB,
    NoKey,
    UnknownKey,
    RevokedKey,
}

/// The columns of the table, in this order.
const WHO: [Who; 12] = [
    Who::Admin,
    Who::StoreA,
    Who::StoreB,
    Who::PartnerA,
    Who::PartnerB,
    Who::BankA,
    Who::BankB,
    Who::ProviderA,
    Who::ProviderB,
    Who::NoKey,
    Who::UnknownKey,
    Who::RevokedKey,
];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Admin => "admin",
            Who::StoreA => "store st-a (own)",
            Who::StoreB => "store st-b (other)",
            Who::PartnerA => "partner pt-a (own)",
            Who::PartnerB => "partner pt-b (other)",
            Who::BankA => "bank bk-a (own)",
            Who::BankB => "bank bk-b (other)",
            Who::ProviderA => "provider pv-a (own)",
            Who::ProviderB => "provider pv-b (other)",
            Who::NoKey => "no key",
            Who::UnknownKey => "unknown key",
            Who::RevokedKey => "revoked key",
        }
    }
    fn is_partner(self) -> bool {
        matches!(self, Who::PartnerA | Who::PartnerB)
    }
}

/// Not run: the object of this line is changed by another column's successful call (a second
/// cancellation would be 409), so that column is proven on a line of its own.
const ___: u16 = 0;

/// One line of the table: an endpoint with a body, and the status each caller gets, in the
/// order of [`WHO`]. `{name}` in the path is a fixture object.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    body: &'static str,
    expect: [u16; 12],
}

const fn ep(method: &'static str, path: &'static str, body: &'static str, expect: [u16; 12]) -> Endpoint {
    Endpoint { method, path, body, expect }
}

/// API.md section 1: 401 for no, unknown or revoked key; 403 for an endpoint not for the caller's
/// kind; 404 for another's object exactly as for a missing one; routing (404/405) before 403.
/// Where API.md is silent (the `GET` of a partner or product for non-admins, the public
/// operations endpoints) the table follows the code, see the notes at the end of the table.
#[rustfmt::skip]
fn table() -> Vec<Endpoint> {
    vec![
        //  method    path                                              body          adm  stA  stB  ptA  ptB  bkA  bkB  pvA  pvB  none unk  rev
        // ---- operations: no key needed, a bad key is ignored (not in API.md's auth rules: public like /healthz) ----
        ep("GET",    "/healthz",                                        "",           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ep("GET",    "/readyz",                                         "",           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ep("GET",    "/metrics",                                        "",           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ep("GET",    "/openapi.json",                                   "",           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        // ---- setup (admin) ----
        ep("POST",   "/v1/admin/providers",                             "provider",   [201, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/providers",                             "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/providers/pv-a",                        "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("PATCH",  "/v1/admin/providers/pv-b",                        "rename",     [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/providers/pv-a/webhook-secret",         "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/banks",                                 "bank",       [201, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/banks",                                 "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/banks/bk-a",                            "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("PATCH",  "/v1/admin/banks/bk-b",                            "rename",     [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/banks/bk-a/webhook-secret",             "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/stores",                                "store",      [201, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/stores",                                "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/stores/st-a",                           "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("PATCH",  "/v1/admin/stores/st-b",                           "rename",     [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/partners",                              "partner",    [201, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/partners",                              "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        // A partner reads its own record (eligibility); another partner's is 404 (code's addition).
        ep("GET",    "/v1/admin/partners/pt-a",                         "",           [200, 403, 403, 200, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("PATCH",  "/v1/admin/partners/pt-b",                         "rename",     [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/products",                              "product",    [201, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        // Sellers read the product catalogue they quote from (code's addition); products belong to nobody.
        ep("GET",    "/v1/admin/products",                              "",           [200, 200, 200, 200, 200, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/products/p12",                          "",           [200, 200, 200, 200, 200, 403, 403, 403, 403, 401, 401, 401]),
        ep("PATCH",  "/v1/admin/products/p12",                          "rename",     [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/api-keys",                              "api_key",    [201, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/api-keys",                              "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/api-keys/{key_id}",                     "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("DELETE", "/v1/admin/api-keys/{key_del}",                    "",           [204, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        // ---- credit lines and holds (provider) ----
        ep("POST",   "/v1/credit-lines",                                "line",       [403, 403, 403, 403, 403, 403, 403, 201, 201, 401, 401, 401]),
        ep("GET",    "/v1/credit-lines/{line}",                         "",           [200, 403, 403, 403, 403, 403, 403, 200, 404, 401, 401, 401]),
        ep("GET",    "/v1/credit-lines/{line_b}",                       "",           [200, 403, 403, 403, 403, 403, 403, 404, 200, 401, 401, 401]),
        ep("GET",    "/v1/credit-lines/line_0000000000000000",          "",           [404, 403, 403, 403, 403, 403, 403, 404, 404, 401, 401, 401]),
        ep("POST",   "/v1/credit-lines/{line}/debt-repayments",         "debt",       [403, 403, 403, 403, 403, 403, 403, 200, 404, 401, 401, 401]),
        ep("GET",    "/v1/holds/{hold}",                                "",           [200, 200, 404, 404, 404, 200, 404, 200, 404, 401, 401, 401]),
        ep("GET",    "/v1/holds/{phold}",                               "",           [200, 404, 404, 200, 404, 200, 404, 200, 404, 401, 401, 401]),
        ep("GET",    "/v1/holds/hold_0000000000000000",                 "",           [404, 404, 404, 404, 404, 404, 404, 404, 404, 401, 401, 401]),
        // v2 §12: only the hold's provider acts on it (admin 403); these holds need no confirmation: 409.
        ep("POST",   "/v1/holds/{hold}/acknowledge",                    "ack",        [403, 403, 403, 403, 403, 403, 403, 409, 404, 401, 401, 401]),
        ep("POST",   "/v1/holds/{hold}/confirm",                        "confirm",    [403, 403, 403, 403, 403, 403, 403, 409, 404, 401, 401, 401]),
        ep("POST",   "/v1/holds/{hold}/decline",                        "decline",    [403, 403, 403, 403, 403, 403, 403, 409, 404, 401, 401, 401]),
        // ---- quotes and orders (store, partner; the order's bank) ----
        ep("POST",   "/v1/quotes",                                      "quote",      [403, 200, 200, 200, 200, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/orders",                                      "order",      [403, 201, 201, 201, 201, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/orders",                                      "",           [200, 200, 200, 200, 200, 200, 200, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/orders/{order}",                              "",           [200, 200, 404, 404, 404, 200, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/orders/{porder}",                             "",           [200, 404, 404, 200, 404, 200, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/orders/ord_0000000000000000",                 "",           [404, 404, 404, 404, 404, 404, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/orders/{c1}/cancel",                          "",           [200, ___, 404, 404, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/orders/{c2}/cancel",                          "reason",     [___, 200, 404, 404, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/orders/{pc}/cancel",                          "",           [___, 404, 404, 200, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/orders/{fund}/funding",                       "approve",    [403, 403, 403, 403, 403, 200, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/orders/ord_0000000000000000/funding",         "approve",    [403, 403, 403, 403, 403, 404, 404, 403, 403, 401, 401, 401]),
        // Only "the order's bank": the admin too is refused the borrower in clear.
        ep("GET",    "/v1/orders/{order}/borrower",                     "",           [403, 403, 403, 403, 403, 200, 404, 403, 403, 401, 401, 401]),
        // ---- plans (bank; the order's owner reads) ----
        ep("GET",    "/v1/plans/{plan}",                                "",           [200, 200, 404, 404, 404, 200, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/plans/plan_0000000000000000",                 "",           [404, 404, 404, 404, 404, 404, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/plans/{plan}/payoff",                         "",           [200, 403, 403, 403, 403, 200, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/plans/{plan}/repayments",                     "repay",      [201, 403, 403, 403, 403, 201, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/plans/{acc1}/accelerate",                     "accelerate", [200, 403, 403, 403, 403, ___, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/plans/{acc2}/accelerate",                     "accelerate", [___, 403, 403, 403, 403, 200, 404, 403, 403, 401, 401, 401]),
        // v2 §14: the plan is active, so its bank and the admin get as far as the state (409).
        ep("POST",   "/v1/plans/{plan}/write-off",                      "write_off",  [409, 403, 403, 403, 403, 409, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/plans/{plan}/recoveries",                     "recovery",   [409, 403, 403, 403, 403, 409, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/plans/{plan}/recoveries",                     "",           [200, 200, 404, 404, 404, 200, 404, 403, 403, 401, 401, 401]),
        // ---- device returns (v2 §13): the owner or admin asks, the order's bank decides ----
        // c1 is store A's order, never funded (or cancelled by the row above): no return (409).
        ep("POST",   "/v1/orders/{c1}/returns",                         "return",     [409, 409, 404, 404, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/orders/{order}/returns",                      "",           [200, 200, 404, 404, 404, 200, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/returns/ret_0000000000000000",                "",           [404, 404, 404, 404, 404, 404, 404, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/returns/ret_0000000000000000/decision",       "reject_return", [403, 403, 403, 403, 403, 404, 404, 403, 403, 401, 401, 401]),
        // ---- reports ----
        ep("GET",    "/v1/reconciliation/{today}",                      "",           [200, 403, 403, 403, 403, 200, 200, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/reconciliation/{today}?bank_id=bk-a",         "",           [200, 403, 403, 403, 403, 200, 404, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/partners/pt-a/statement?month={month}",       "",           [200, 403, 403, 200, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/partners/pt-none/statement?month={month}",    "",           [404, 403, 403, 404, 404, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/providers/pv-a/settlement/{today}",           "",           [200, 403, 403, 403, 403, 403, 403, 200, 404, 401, 401, 401]),
        ep("GET",    "/v1/providers/pv-none/settlement/{today}",        "",           [404, 403, 403, 403, 403, 403, 403, 404, 404, 401, 401, 401]),
        // ---- notices ----
        ep("GET",    "/v1/notices",                                     "",           [200, 200, 200, 200, 200, 200, 200, 200, 200, 401, 401, 401]),
        ep("GET",    "/v1/admin/notices",                               "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/notices/{notice}",                      "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/notices/{notice}/redeliver",            "",           [202, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        // ---- admin operations ----
        ep("GET",    "/v1/admin/ledger/verify",                         "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/audit-log",                             "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        // ---- operations API (section 16) ----
        ep("GET",    "/v1/admin/portfolio",                             "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/aging",                                 "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/eod-runs",                              "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("GET",    "/v1/admin/search?q={order}",                      "",           [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        ep("POST",   "/v1/admin/notices/redeliver",                     "redeliver",  [202, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
        // ---- routing comes before 403: an unknown path is 404, a wrong method 405, for any valid key ----
        ep("GET",    "/v1/no-such-thing",                               "",           [404, 404, 404, 404, 404, 404, 404, 404, 404, 401, 401, 401]),
        ep("DELETE", "/v1/orders",                                      "",           [405, 405, 405, 405, 405, 405, 405, 405, 405, 401, 401, 401]),
        ep("PUT",    "/v1/admin/banks/bk-a",                            "rename",     [405, 405, 405, 405, 405, 405, 405, 405, 405, 401, 401, 401]),
        // ---- end of day last: it closes yesterday ----
        ep("POST",   "/v1/admin/eod",                                   "eod",        [200, 403, 403, 403, 403, 403, 403, 403, 403, 401, 401, 401]),
    ]
}

/// Endpoints of the table that are deliberately not operations of `/openapi.json`.
const NOT_IN_DOCUMENT: [&str; 4] = ["/openapi.json", "/v1/no-such-thing", "DELETE /v1/orders", "PUT /v1/admin/banks/bk-a"];

/// Two of everything: stores, partners, banks, providers, lines; orders of a store and of a
/// partner; a funded plan; orders and plans to cancel, fund and accelerate; a line with a
/// converted (drawn) balance; a revoked key.
struct Fixture {
    app: TestApp,
    keys: HashMap<Who, String>,
    vars: HashMap<&'static str, String>,
}

async fn fixture() -> Fixture {
    let app = TestApp::start().await;
    let today = today().to_string();
    // One customer with a line at each provider; orders match pv-a's (first in the product).
    let w = World::empty()
        .provider("pv-a", json!({"name": "微粒贷", "webhook_url": "https://pv-a.example.com/hooks"}))
        .provider("pv-b", json!({"name": "花呗"}))
        .bank("bk-a", bank_body("bk-a", 1))
        .bank_extra("bk-a", json!({"webhook_url": "https://bk-a.example.com/hooks"}))
        .bank("bk-b", bank_body("bk-b", 2))
        .store("st-a", "440305")
        .store("st-b", "440305")
        .partner(partner_body("pt-a"))
        .partner(partner_body("pt-b"))
        .product(product_body("p12"))
        .line("pv-a", 1, "200000")
        .line("pv-b", 1, "50000")
        .build(&app)
        .await;
    let mut keys: HashMap<Who, String> = [
        (Who::StoreA, "st-a"),
        (Who::StoreB, "st-b"),
        (Who::PartnerA, "pt-a"),
        (Who::PartnerB, "pt-b"),
        (Who::BankA, "bk-a"),
        (Who::BankB, "bk-b"),
        (Who::ProviderA, "pv-a"),
        (Who::ProviderB, "pv-b"),
    ]
    .into_iter()
    .map(|(who, id)| (who, w.key(id).key.clone()))
    .collect();
    let mut vars: HashMap<&'static str, String> = HashMap::new();
    vars.insert("key_id", w.key_ids["st-a"].clone());
    keys.insert(Who::UnknownKey, format!("cpk_{}", "ab".repeat(32)));
    let (revoked_id, revoked) = new_key(&app, json!({"kind": "store", "id": "st-a"}), None).await;
    assert_eq!(app.admin().delete(&format!("/v1/admin/api-keys/{revoked_id}")).await.status, 204);
    keys.insert(Who::RevokedKey, revoked);
    vars.insert("key_del", new_key(&app, json!({"kind": "bank", "id": "bk-b"}), None).await.0);
    vars.insert("line", w.lines[0].clone());
    vars.insert("line_b", w.lines[1].clone());

    let mut n = 0;
    let mut place = async |key: &str, partner: bool| {
        n += 1;
        let o = app.post(key, "/v1/orders", order_body(&format!("FX-{n}"), 1, partner)).await.expect(201);
        assert_eq!((o["bank_id"].as_str(), o["hold"]["provider_id"].as_str()), (Some("bk-a"), Some("pv-a")), "{o}");
        o
    };
    let store = keys[&Who::StoreA].clone();
    let main = place(&store, false).await;
    let porder = place(&keys[&Who::PartnerA], true).await;
    let c1 = place(&store, false).await;
    let c2 = place(&store, false).await;
    let pc = place(&keys[&Who::PartnerA], true).await;
    let fund = place(&store, false).await;
    let acc1 = place(&store, false).await;
    let acc2 = place(&store, false).await;
    let drawn = place(&store, false).await;
    let bank = keys[&Who::BankA].clone();
    let mut plans = Vec::new();
    for (i, o) in [&main, &acc1, &acc2, &drawn].into_iter().enumerate() {
        let f = app
            .post(
                &bank,
                &format!("/v1/orders/{}/funding", st(&o["id"])),
                json!({"decision": "approved", "loan_no": format!("FX-L{i}"), "funded_on": today}),
            )
            .await
            .expect(200);
        plans.push(st(&f["plan"]["id"]));
    }
    // Accelerated in full from the hold: the line has a drawn balance the provider can be repaid.
    let p = app.post(&bank, &format!("/v1/plans/{}/accelerate", plans[3]), json!({"as_of": today, "reason": "fixture"})).await.expect(200);
    assert_eq!(p["status"], json!("settled"), "{p}");
    let l = app.admin_get(&format!("/v1/credit-lines/{}", vars["line"])).await.expect(200);
    assert_ne!(l["drawn"], json!("0.00"), "{l}");

    for (name, o) in [("order", &main), ("porder", &porder), ("c1", &c1), ("c2", &c2), ("pc", &pc), ("fund", &fund)] {
        vars.insert(name, st(&o["id"]));
    }
    vars.insert("hold", st(&main["hold"]["id"]));
    vars.insert("phold", st(&porder["hold"]["id"]));
    vars.insert("plan", plans[0].clone());
    vars.insert("acc1", plans[1].clone());
    vars.insert("acc2", plans[2].clone());
    let notices = app.admin_get("/v1/notices").await.expect(200);
    vars.insert("notice", st(&notices["data"][0]["id"]));
    vars.insert("today", today.clone());
    vars.insert("month", today[..7].to_string());
    Fixture { app, keys, vars }
}

impl Fixture {
    fn path(&self, template: &str) -> String {
        let mut p = template.to_string();
        for (name, value) in &self.vars {
            p = p.replace(&format!("{{{name}}}"), value);
        }
        assert!(!p.contains('{'), "unknown fixture object in {template}");
        p
    }

    fn body(&self, name: &str, who: Who) -> Option<Value> {
        let today = self.vars["today"].clone();
        Some(match name {
            "" => return None,
            "provider" => json!({"id": "pv-new", "name": "New"}),
            "bank" => bank_body("bk-new", 9),
            "store" => json!({"id": "st-new", "name": "New", "region_code": "110105"}),
            "partner" => partner_body("pt-new"),
            "product" => product_body("p-new"),
            "api_key" => json!({"principal": {"kind": "store", "id": "st-b"}}),
            "rename" => json!({"name": "Renamed"}),
            "reason" => json!({"reason": "customer changed their mind"}),
            "line" => json!({"customer": {"id_number": id_number(2), "phone": phone(2)}, "limit": "9000", "expires_on": FAR}),
            "debt" => json!({"amount": "1"}),
            "quote" => json!({"product_id": "p12", "term_months": 12, "device_price": "3999", "down_payment": "999"}),
            "order" => order_body(&format!("M-{who:?}"), 1, who.is_partner()),
            "approve" => json!({"decision": "approved", "loan_no": format!("L-{who:?}"), "funded_on": today}),
            "repay" => json!({"amount": "10", "paid_on": today, "reference": format!("R-{who:?}")}),
            "accelerate" => json!({"as_of": today, "reason": "fraud"}),
            "write_off" => json!({"written_off_on": today, "reason": "fraud", "reference": format!("W-{who:?}")}),
            "recovery" => json!({"amount": "1", "paid_on": today, "reference": format!("C-{who:?}")}),
            "eod" => json!({"business_date": (self::today() - chrono::Duration::days(1)).to_string()}),
            "ack" => json!({"sign_url": "https://pv.example/sign"}),
            "confirm" => json!({"amount": "1", "provider_order_no": format!("W-{who:?}")}),
            "decline" => json!({"reason": "other"}),
            "redeliver" => json!({"state": "dead"}),
            "return" => json!({"reason": "no_reason", "returned_on": today, "imei": imei(1), "reference": format!("RET-{who:?}")}),
            "reject_return" => json!({"decision": "rejected", "reason": "the box is missing"}),
            other => panic!("no body {other}"),
        })
    }

    async fn call(&self, method: &str, path: &str, who: Who, body: Option<Value>) -> Resp {
        let key = match who {
            Who::Admin => Some(self.app.admin_key.clone()),
            Who::NoKey => None,
            w => Some(self.keys[&w].clone()),
        };
        let idem = format!("sec-{}", uuid::Uuid::new_v4().simple());
        let raw = body.map(|b| serde_json::to_vec(&b).expect("json"));
        self.app.call_raw(method, path, key.as_deref(), raw, Some(&idem), &[]).await
    }
}

fn expected_code(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("unauthenticated"),
        403 => Some("forbidden"),
        404 => Some("not_found"),
        405 => Some("method_not_allowed"),
        _ => None,
    }
}

/// `/v1/orders/{id}` and `/v1/orders/ord_x` are the same route (a `{...}` segment of the document matches any).
fn same_route(document_path: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (a, b): (Vec<&str>, Vec<&str>) = (document_path.split('/').collect(), path.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(d, p)| d == p || d.starts_with('{'))
}

#[actix_web::test]
async fn every_endpoint_answers_every_principal_as_api_md_says() {
    let fx = fixture().await;
    let table = table();
    let mut mismatches = Vec::new();
    let mut rows = 0;
    for e in &table {
        let path = fx.path(e.path);
        for (who, &expected) in WHO.iter().zip(&e.expect) {
            if expected == ___ {
                continue;
            }
            rows += 1;
            let r = fx.call(e.method, &path, *who, fx.body(e.body, *who)).await;
            let row = format!("{:<6} {:<46} as {:<22} expected {expected}", e.method, e.path, who.label());
            let brief = r.body.to_string().chars().take(240).collect::<String>();
            if r.status != expected {
                mismatches.push(format!("{row}, got {}: {brief}", r.status));
            } else if let Some(code) = expected_code(expected)
                && r.code() != Some(code)
            {
                mismatches.push(format!("{row}, got it with code {:?} (not {code}): {brief}", r.code()));
            } else if r.header("x-request-id").is_none() {
                mismatches.push(format!("{row}: no X-Request-Id"));
            }
        }
    }

    // Every operation of the generated document is in the table, and every table line in it.
    let doc = fx.app.get_without_key("/openapi.json").await.expect(200);
    let mut operations = 0;
    for (doc_path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let method = method.to_uppercase();
            if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            if !table.iter().any(|e| e.method == method && same_route(doc_path, e.path)) {
                mismatches.push(format!("{method} {doc_path} of /openapi.json has no line in the table"));
            }
        }
    }
    for e in &table {
        let documented = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .any(|(p, item)| same_route(p, e.path) && item.get(e.method.to_lowercase()).is_some());
        let exempt = NOT_IN_DOCUMENT.iter().any(|x| *x == e.path || *x == format!("{} {}", e.method, e.path));
        if !documented && !exempt {
            mismatches.push(format!("{} {} is not in /openapi.json", e.method, e.path));
        }
    }
    assert!(operations >= 50, "the document lists the API: {operations} operations");

    // Another's object answers exactly as a missing one (status, code, message, field).
    let comparable =
        |r: &Resp| (r.status, r.body["error"]["code"].clone(), r.body["error"]["message"].clone(), r.body["error"]["field"].clone());
    for (who, theirs, missing) in [
        (Who::StoreB, "/v1/orders/{order}", "/v1/orders/ord_0000000000000000"),
        (Who::BankB, "/v1/orders/{order}/borrower", "/v1/orders/ord_0000000000000000/borrower"),
        (Who::ProviderB, "/v1/holds/{hold}", "/v1/holds/hold_0000000000000000"),
        (Who::PartnerB, "/v1/holds/{phold}", "/v1/holds/hold_0000000000000000"),
        (Who::BankB, "/v1/plans/{plan}", "/v1/plans/plan_0000000000000000"),
        (Who::BankB, "/v1/plans/{plan}/payoff", "/v1/plans/plan_0000000000000000/payoff"),
        (Who::ProviderB, "/v1/credit-lines/{line}", "/v1/credit-lines/line_0000000000000000"),
        (Who::PartnerB, "/v1/admin/partners/pt-a", "/v1/admin/partners/pt-none"),
        (Who::PartnerB, "/v1/partners/pt-a/statement?month={month}", "/v1/partners/pt-none/statement?month={month}"),
    ] {
        let a = fx.call("GET", &fx.path(theirs), who, None).await;
        let b = fx.call("GET", &fx.path(missing), who, None).await;
        if comparable(&a) != comparable(&b) || a.status != 404 {
            mismatches.push(format!("GET {theirs} as {}: {} differs from a missing object's {}", who.label(), a.body, b.body));
        }
    }
    for (who, theirs, missing, body) in [
        (Who::StoreB, "/v1/orders/{order}/cancel", "/v1/orders/ord_0000000000000000/cancel", "reason"),
        (Who::BankB, "/v1/plans/{plan}/repayments", "/v1/plans/plan_0000000000000000/repayments", "repay"),
        (Who::ProviderB, "/v1/credit-lines/{line}/debt-repayments", "/v1/credit-lines/line_0000000000000000/debt-repayments", "debt"),
    ] {
        let a = fx.call("POST", &fx.path(theirs), who, fx.body(body, who)).await;
        let b = fx.call("POST", &fx.path(missing), who, fx.body(body, who)).await;
        if comparable(&a) != comparable(&b) || a.status != 404 {
            mismatches.push(format!("POST {theirs} as {}: {} differs from a missing object's {}", who.label(), a.body, b.body));
        }
    }

    // The refused calls changed nothing: the ledger still verifies.
    let v = fx.app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    if v["ok"] != json!(true) {
        mismatches.push(format!("the ledger does not verify after the matrix: {v}"));
    }
    println!("{rows} rows over {} endpoints × {} callers, {operations} documented operations", table.len(), WHO.len());
    assert!(rows > 700, "{rows} rows");
    assert!(mismatches.is_empty(), "{} of {rows} rows answer otherwise than API.md says:\n{}", mismatches.len(), mismatches.join("\n"));
}

// ---------- 2. rate limits and the body limit ----------

/// Calls `GET path` with `key` until the first 429 (at most `max` calls); answers the calls that
/// passed, the 429 and how long it took.
async fn until_limited(app: &TestApp, key: &str, path: &str, max: usize) -> (usize, Option<Resp>, Duration) {
    let started = Instant::now();
    for n in 0..max {
        let r = app.get(key, path).await;
        if r.status == 429 {
            return (n, Some(r), started.elapsed());
        }
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    (max, None, started.elapsed())
}

/// The number of calls a fresh bucket of `limit` a minute lets through in `elapsed`: `limit`, plus
/// what refilled meanwhile.
fn allowed(limit: usize, elapsed: Duration) -> std::ops::RangeInclusive<usize> {
    limit..=limit + (elapsed.as_secs_f64() * limit as f64 / 60.0).ceil() as usize
}

#[track_caller]
fn retry_after(r: &Resp) -> u64 {
    assert_eq!(r.status, 429, "{}", r.body);
    assert_error_body(&r.body, 429, "rate_limited", r.header("x-request-id"));
    r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("Retry-After in seconds: {:?}", r.headers))
}

#[actix_web::test]
async fn rate_limits_are_per_key_configurable_and_answer_retry_after() {
    const DEFAULT: usize = 8;
    let app = TestApp::start_with(|s| s.auth.default_rate_limit_per_minute = DEFAULT as u32).await;
    // The admin's own calls count against the bootstrap key: 5 of its 8 here.
    app.admin_post("/v1/admin/stores", json!({"id": "st-a", "name": "营业厅", "region_code": "440305"})).await.expect(201);
    let (_, limited) = new_key(&app, json!({"kind": "store", "id": "st-a"}), None).await;
    let (_, twin) = new_key(&app, json!({"kind": "store", "id": "st-a"}), None).await;
    let (_, fast) = new_key(&app, json!({"kind": "store", "id": "st-a"}), Some(30)).await;
    let (_, slow) = new_key(&app, json!({"kind": "store", "id": "st-a"}), Some(2)).await;

    // The configured default: 8 a minute, then 429 with Retry-After (a token every 7.5 s).
    let (passed, r, elapsed) = until_limited(&app, &limited, "/v1/orders", 20).await;
    assert!(allowed(DEFAULT, elapsed).contains(&passed), "{passed} calls passed in {elapsed:?}");
    let secs = retry_after(&r.expect("limited"));
    assert!((1..=8).contains(&secs), "Retry-After {secs}");
    // 429 comes after 401 and before routing and 403: the limited key gets 429 everywhere.
    for (method, path) in [("GET", "/v1/orders"), ("GET", "/v1/no-such-thing"), ("GET", "/v1/admin/banks"), ("DELETE", "/v1/orders")] {
        let r = app.call(method, path, Some(&limited), None, None).await;
        retry_after(&r);
    }
    let r = app.get_without_key("/v1/orders").await;
    assert_eq!((r.status, r.code()), (401, Some("unauthenticated")), "401 before 429");
    // Another key of the same store is not affected, nor are public endpoints.
    assert_eq!(app.get(&twin, "/v1/orders").await.status, 200);
    assert_eq!(app.get_without_key("/healthz").await.status, 200);

    // A key's own rate, set at creation, replaces the default, up or down.
    let (passed, r, elapsed) = until_limited(&app, &fast, "/v1/orders", 60).await;
    assert!(allowed(30, elapsed).contains(&passed), "{passed} calls passed in {elapsed:?}");
    assert!((1..=2).contains(&retry_after(&r.expect("limited"))));
    let (passed, r, elapsed) = until_limited(&app, &slow, "/v1/orders", 10).await;
    assert!(allowed(2, elapsed).contains(&passed), "{passed} calls passed in {elapsed:?}");
    let secs = retry_after(&r.expect("limited"));
    assert!((20..=30).contains(&secs), "a token every 30 s: Retry-After {secs}");
    // Still limited a moment later, and the twin still passes.
    retry_after(&app.get(&slow, "/v1/orders").await);
    assert_eq!(app.get(&twin, "/v1/orders").await.status, 200);

    // The bootstrap admin key is limited too, and a limited write changes nothing.
    let admin = app.admin_key.clone();
    let (_, r, _) = until_limited(&app, &admin, "/v1/admin/stores", 10).await;
    retry_after(&r.expect("the admin key is limited"));
    let r = app.admin_post("/v1/admin/stores", json!({"id": "st-z", "name": "x", "region_code": "440305"})).await;
    retry_after(&r);
    let db = app.db().await;
    let stores: i64 = db.query_one("SELECT count(*) FROM stores", &[]).await.expect("count").get(0);
    assert_eq!(stores, 1, "the limited create did not run");
}

#[actix_web::test]
async fn bodies_over_the_limit_are_413_first_and_change_nothing() {
    const LIMIT: usize = 2048;
    let app = TestApp::start_with(|s| s.server.body_limit_bytes = LIMIT).await;
    let admin = app.admin_key.clone();
    let w = World::empty().provider("pv-a", json!({"name": "P"})).build(&app).await;
    let provider = w.provider().key.clone();
    // A JSON object of exactly `len` bytes (padded with whitespace).
    let sized = |v: Value, len: usize| {
        let mut b = serde_json::to_vec(&v).expect("json");
        assert!(b.len() <= len);
        b.resize(len, b' ');
        b
    };

    // With a Content-Length: the limit itself passes, one byte more is 413 with the API.md error body.
    let r = app
        .call_raw("POST", "/v1/admin/providers", Some(&admin), Some(sized(json!({"id": "pv-exact", "name": "E"}), LIMIT)), None, &[])
        .await;
    assert_eq!(r.status, 201, "a body of exactly the limit is taken: {}", r.body);
    for key in [Some(admin.as_str()), None, Some("cpk_unknown"), Some(provider.as_str())] {
        let body = sized(json!({"id": "pv-over", "name": "O"}), LIMIT + 1);
        let r = app.call_raw("POST", "/v1/admin/providers", key, Some(body), None, &[]).await;
        assert_eq!(r.status, 413, "413 before 401 and 403 ({key:?}): {}", r.body);
        assert_error_body(&r.body, 413, "payload_too_large", r.header("x-request-id"));
        assert_eq!(r.body["error"]["field"], Value::Null);
    }
    // On an idempotent endpoint the refusal is not stored: the same key then runs.
    let big =
        json!({"customer": {"id_number": id_number(1), "phone": phone(1), "name": "x".repeat(3000)}, "limit": "100", "expires_on": FAR});
    let r = app.post_idem(&provider, "/v1/credit-lines", big.clone(), "big-1").await;
    assert_eq!((r.status, r.code()), (413, Some("payload_too_large")), "{}", r.body);
    let small = json!({"customer": {"id_number": id_number(1), "phone": phone(1)}, "limit": "100", "expires_on": FAR});
    let r = app.post_idem(&provider, "/v1/credit-lines", small.clone(), "big-1").await;
    assert_eq!((r.status, r.header("idempotent-replayed")), (201, None), "{}", r.body);

    // Chunked, without Content-Length: the same 413, with or without a key (read up to the limit
    // for a valid key; only counted, never kept, for a caller without one).
    let over = sized(json!({"id": "pv-chunked-over", "name": "O"}), LIMIT + 700);
    for (key, status, code) in [(Some(admin.as_str()), 413, "payload_too_large"), (None, 413, "payload_too_large")] {
        let r = chunked_post(&app, "/v1/admin/providers", key, None, &over, false).await;
        assert_eq!(r.status, status, "chunked ({key:?}): {} {}", r.head, r.body);
        let request_id = r.head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("x-request-id:").map(|v| v.trim().to_string()));
        assert_error_body(&r.body, status, code, request_id.as_deref());
        assert!(!r.head.to_ascii_lowercase().contains("\r\ncontent-length: 0"), "{}", r.head);
    }
    let r = chunked_post(&app, "/v1/credit-lines", Some(&provider), Some("big-2"), &serde_json::to_vec(&big).unwrap(), false).await;
    assert_eq!(r.status, 413, "{}", r.body);
    // A chunked body under the limit is read and taken (the chunked path is not simply refused).
    let ok = serde_json::to_vec(&json!({"id": "pv-chunked", "name": "C"})).unwrap();
    let r = chunked_post(&app, "/v1/admin/providers", Some(&admin), None, &ok, true).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let line2 = json!({"customer": {"id_number": id_number(2), "phone": phone(2)}, "limit": "100", "expires_on": FAR});
    let r = chunked_post(&app, "/v1/credit-lines", Some(&provider), Some("big-2"), &serde_json::to_vec(&line2).unwrap(), true).await;
    assert_eq!(r.status, 201, "the idempotency key of a refused chunked body is free: {}", r.body);

    // Nothing else was created.
    let list = app.admin_get("/v1/admin/providers").await.expect(200);
    let ids: Vec<String> = list["data"].as_array().expect("data").iter().map(|p| st(&p["id"])).collect();
    assert_eq!(ids, ["pv-a", "pv-exact", "pv-chunked"]);
    let db = app.db().await;
    let lines: i64 = db.query_one("SELECT count(*) FROM credit_lines", &[]).await.expect("count").get(0);
    assert_eq!(lines, 2);
}

// ---------- 3. no raw personal data in the database or the logs ----------

/// A client of the real binary that keeps every request body it sent.
struct Client {
    base: String,
    http: reqwest::Client,
    sent: Vec<String>,
}

impl Client {
    async fn send(&mut self, method: &str, path: &str, key: Option<&str>, body: Option<String>, idem: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(i) = idem {
            req = req.header("Idempotency-Key", i);
        }
        self.sent.push(format!("{method} {path}"));
        if let Some(b) = body {
            self.sent.push(b.clone());
            req = req.header("Content-Type", "application/json").body(b);
        }
        let res = req.send().await.expect("the service answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A JSON body with a fresh idempotency key; the answer's status must be `status`.
    #[track_caller]
    fn post(&mut self, key: &str, path: &str, body: Value, status: u16) -> impl Future<Output = Value> {
        let caller = std::panic::Location::caller();
        let (key, path) = (key.to_string(), path.to_string());
        async move {
            let idem = format!("pii-{}", uuid::Uuid::new_v4().simple());
            let (got, answer) = self.send("POST", &path, Some(&key), Some(body.to_string()), Some(&idem)).await;
            assert_eq!(got, status, "POST {path} at {caller}: {answer}");
            answer
        }
    }

    async fn raw(&mut self, key: &str, path: &str, body: &str, idem: &str) -> (u16, Value) {
        self.send("POST", path, Some(key), Some(body.to_string()), Some(idem)).await
    }
}

#[actix_web::test]
async fn no_raw_id_number_or_phone_reaches_the_database_or_the_debug_log() {
    // The real binary on a database of its own, logging at debug to a file.
    let pg = fresh_database().await;
    let dir = tempfile::Builder::new().prefix("cp-sec-").tempdir_in("/tmp").expect("tempdir");
    let admin = "security-admin-key";
    let mut serve = ServeBinary::on_test_database(dir.path(), &pg, admin)
        .env("CREDITPHONE__CLOCK__ALLOW_FUTURE_DATES", "true")
        .log_level("debug")
        .log_format("json")
        .spawn();
    serve.wait_ready(Duration::from_secs(60)).await;
    let mut c = Client { base: serve.base_url.clone(), http: reqwest::Client::new(), sent: Vec::new() };

    // Customers: two ID numbers ending in X (one always sent as a lowercase x), one ending in a digit,
    // one without a line; distinctive phones; names.
    let x_seeds: Vec<u64> = (1..1000).filter(|s| id_number(*s).ends_with('X')).take(3).collect();
    let d_seed = (1..1000).find(|s| id_number(*s).ends_with(|ch: char| ch.is_ascii_digit())).expect("a digit check");
    let (id_x, id_lx, id_d, id_none) = (id_number(x_seeds[0]), id_number(x_seeds[1]), id_number(d_seed), id_number(x_seeds[2]));
    let lower = |s: &str| s.to_ascii_lowercase();
    let ph = |i: u64| format!("139{:08}", 27_182_818 + i * 1_414_213);
    let (ph_x, ph_lx, ph_d, ph_d2, ph_none) = (ph(1), ph(2), ph(3), ph(4), ph(5));
    let (name_x, name_d) = ("王小明", "李四娘");
    let bad_check = format!("{}{}", &id_d[..17], if id_d.ends_with('0') { '1' } else { '0' });
    let spaced_id = format!("{} {} {}", &id_d[..6], &id_d[6..14], &id_d[14..]);
    let (dashed_phone, plus_phone) = (format!("{}-{}-{}", &ph_d[..3], &ph_d[3..7], &ph_d[7..]), format!("+86 {ph_d}"));

    // Setup.
    c.post(admin, "/v1/admin/providers", json!({"id": "pv-a", "name": "微粒贷"}), 201).await;
    c.post(admin, "/v1/admin/providers", json!({"id": "pv-b", "name": "花呗"}), 201).await;
    c.post(admin, "/v1/admin/banks", bank_body("bk-a", 1), 201).await;
    c.post(admin, "/v1/admin/stores", json!({"id": "st-a", "name": "营业厅", "region_code": "440305"}), 201).await;
    c.post(admin, "/v1/admin/partners", partner_body("pt-a"), 201).await;
    c.post(admin, "/v1/admin/products", product_body("p12"), 201).await;
    let key = async |c: &mut Client, kind: &str, id: &str| {
        st(&c.post(admin, "/v1/admin/api-keys", json!({"principal": {"kind": kind, "id": id}}), 201).await["key"])
    };
    let (pv, pv_b, store, partner, bank) = (
        key(&mut c, "provider", "pv-a").await,
        key(&mut c, "provider", "pv-b").await,
        key(&mut c, "store", "st-a").await,
        key(&mut c, "partner", "pt-a").await,
        key(&mut c, "bank", "bk-a").await,
    );

    // Credit lines: new, lowercase x, an update with a new phone, another provider.
    let line = |id: &str, phone: &str, name: Option<&str>, limit: &str| {
        let mut b = json!({"customer": {"id_number": id, "phone": phone}, "limit": limit, "expires_on": FAR});
        if let Some(n) = name {
            b["customer"]["name"] = json!(n);
        }
        b
    };
    let l = c.post(&pv, "/v1/credit-lines", line(&id_x, &ph_x, Some(name_x), "50000"), 201).await;
    assert_eq!(l["customer"]["id_number_masked"], json!(format!("{}********{}", &id_x[..6], &id_x[14..])), "{l}");
    c.post(&pv, "/v1/credit-lines", line(&lower(&id_lx), &ph_lx, None, "50000"), 201).await;
    c.post(&pv, "/v1/credit-lines", line(&id_d, &ph_d, Some(name_d), "50000"), 201).await;
    let l = c.post(&pv, "/v1/credit-lines", line(&id_d, &ph_d2, Some(name_d), "60000"), 200).await;
    assert_eq!(l["customer"]["phone_masked"], json!(format!("{}****{}", &ph_d2[..3], &ph_d2[7..])), "{l}");
    c.post(&pv_b, "/v1/credit-lines", line(&lower(&id_x), &ph_x, Some(name_x), "9000"), 201).await;

    // Refusals that carry the raw values in every way a client gets them wrong.
    let refusals: Vec<(String, &str)> = vec![
        (line(&bad_check, &ph_d, None, "100").to_string(), "invalid_id_number"),
        (line(&spaced_id, &ph_d, None, "100").to_string(), "invalid_id_number"),
        (line(&id_d[..17], &ph_d, None, "100").to_string(), "invalid_id_number"),
        (line(&id_d, &dashed_phone, None, "100").to_string(), "invalid_phone"),
        (line(&id_d, &plus_phone, None, "100").to_string(), "invalid_phone"),
        (line(&id_d, &ph_d[..10], None, "100").to_string(), "invalid_phone"),
        (
            format!(r#"{{"customer": {{"id_number": {}, "phone": "{ph_d}"}}, "limit": "100", "expires_on": "{FAR}"}}"#, &id_d),
            "invalid_request",
        ),
        (
            format!(r#"{{"customer": {{"id_number": "{id_d}", "phone": {ph_d}}}, "limit": "100", "expires_on": "{FAR}"}}"#),
            "invalid_request",
        ),
        (
            format!(
                r#"{{"customer": {{"id_number": "{id_d}", "phone": "{ph_d}", "mobile": "{ph_d2}"}}, "limit": "100", "expires_on": "{FAR}"}}"#
            ),
            "invalid_request",
        ),
        (
            format!(
                r#"{{"customer": {{"id_number": "{id_d}", "id_number": "{id_x}", "phone": "{ph_d}"}}, "limit": "100", "expires_on": "{FAR}"}}"#
            ),
            "invalid_request",
        ),
        (format!(r#"{{"customer": {{"id_number": "{id_d}", "phone": "{ph_d}""#), "invalid_request"),
        (format!(r#"{{"customer": {{"id_number": {id_x}, "phone": "{ph_x}"}}}}"#), "invalid_request"),
        (format!(r#"{{"customer": {{"{id_d}": "{ph_d}"}}, "limit": "100", "expires_on": "{FAR}"}}"#), "invalid_request"),
        (format!(r#"["{id_d}", "{ph_d}"]"#), "invalid_request"),
        (line(&id_d, &ph_d, None, "-1").to_string(), "invalid_amount"),
    ];
    for (body, code) in &refusals {
        let (status, answer) = c.raw(&pv, "/v1/credit-lines", body, &format!("bad-{}", uuid::Uuid::new_v4().simple())).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(*code)), "{body}: {answer}");
    }
    // The same idempotency key with another customer: 422 idempotency_key_reused.
    let (status, _) = c.raw(&pv, "/v1/credit-lines", &line(&id_none, &ph_none, None, "100").to_string(), "reuse-1").await;
    assert_eq!(status, 201);
    let (status, answer) = c.raw(&pv, "/v1/credit-lines", &line(&id_d, &ph_d, None, "100").to_string(), "reuse-1").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("idempotency_key_reused")), "{answer}");
    // A line over its exposure refused later is fine; a closed line for `id_none` so no order matches it.
    c.post(
        &pv,
        "/v1/credit-lines",
        json!({"customer": {"id_number": id_none, "phone": ph_none}, "limit": "100", "expires_on": FAR, "status": "closed"}),
        200,
    )
    .await;

    // Orders: the X customer sent lowercase, the lowercase-registered one sent uppercase, through a
    // store and a partner; stored business refusals; replays.
    let order = |no: &str, id: &str, phone: &str, name: Option<&str>, imei_seed: u64| {
        let mut b = json!({"out_order_no": no, "product_id": "p12", "term_months": 12, "customer": {"id_number": id, "phone": phone},
                           "device": {"sku": "phone-128g", "imei": imei(imei_seed), "price": "3999"}, "down_payment": "999"});
        if let Some(n) = name {
            b["customer"]["name"] = json!(n);
        }
        b
    };
    let o1 = c.post(&store, "/v1/orders", order("PII-1", &lower(&id_x), &ph_x, Some(name_x), 1), 201).await;
    let mut po = order("PII-2", &id_lx, &ph_lx, None, 2);
    po["region_code"] = json!("440305");
    po["agent_id"] = json!("a-1");
    let o2 = c.post(&partner, "/v1/orders", po, 201).await;
    let o3_body = order("PII-3", &id_d, &ph_d2, Some(name_d), 3).to_string();
    let (s1, first) = c.raw(&store, "/v1/orders", &o3_body, "order-3").await;
    let (s2, replay) = c.raw(&store, "/v1/orders", &o3_body, "order-3").await;
    assert_eq!((s1, s2, &first), (201, 201, &replay));
    let (status, answer) = c.raw(&store, "/v1/orders", &order("PII-3", &id_d, &ph_d, None, 3).to_string(), "order-3b").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("already_exists")), "{answer}");
    let (status, answer) = c.raw(&store, "/v1/orders", &order("PII-4", &id_none, &ph_none, Some(name_x), 4).to_string(), "order-4").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("no_matching_credit_line")), "{answer}");
    let (status, _) = c.raw(&store, "/v1/orders", &order("PII-4", &id_none, &ph_none, Some(name_x), 4).to_string(), "order-4").await;
    assert_eq!(status, 422, "the stored refusal replays");
    let mut bad_imei = order("PII-5", &id_d, &ph_d, Some(name_d), 5);
    bad_imei["device"]["imei"] = json!("123456789012345");
    let (status, answer) = c.raw(&store, "/v1/orders", &bad_imei.to_string(), "order-5").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("invalid_imei")), "{answer}");
    c.post(&store, "/v1/quotes", json!({"product_id": "p12", "term_months": 12, "device_price": "3999", "down_payment": "999"}), 200).await;

    // Funding, the borrower in clear for the bank (the answer has them; nothing else may), reads, lists, a cancellation.
    let today = today().to_string();
    let (oid1, oid2, oid3) = (st(&o1["id"]), st(&o2["id"]), st(&first["id"]));
    let funded = c
        .post(&bank, &format!("/v1/orders/{oid1}/funding"), json!({"decision": "approved", "loan_no": "PII-L1", "funded_on": today}), 200)
        .await;
    for (oid, id, phone) in [(&oid1, &id_x, &ph_x), (&oid2, &id_lx, &ph_lx), (&oid3, &id_d, &ph_d2)] {
        let (status, b) = c.send("GET", &format!("/v1/orders/{oid}/borrower"), Some(&bank), None, None).await;
        assert_eq!(status, 200, "{b}");
        assert_eq!((b["id_number"].as_str(), b["phone"].as_str()), (Some(id.as_str()), Some(phone.as_str())), "X read as uppercase: {b}");
    }
    let plan = st(&funded["plan"]["id"]);
    c.post(&bank, &format!("/v1/plans/{plan}/repayments"), json!({"amount": "100", "paid_on": today, "reference": "PII-R1"}), 201).await;
    c.post(&partner, &format!("/v1/orders/{oid2}/cancel"), json!({"reason": "changed mind"}), 200).await;
    for (key, path) in [
        (&store, format!("/v1/orders/{oid1}")),
        (&store, "/v1/orders".to_string()),
        (&store, format!("/v1/orders?status=awaiting_funding&customer_phone={ph_d}&id_number={id_d}")),
        (&bank, format!("/v1/plans/{plan}")),
        (&pv, format!("/v1/holds/{}", st(&o1["hold"]["id"]))),
        (&pv, format!("/v1/credit-lines/{}", st(&o1["hold"]["credit_line_id"]))),
        (&pv, "/v1/notices".to_string()),
        (&bank, "/v1/notices".to_string()),
        (&admin.to_string(), "/v1/admin/audit-log".to_string()),
    ] {
        let (status, b) = c.send("GET", &path, Some(key), None, None).await;
        assert_eq!(status, 200, "{path}: {b}");
    }
    let (status, b) = c.send("GET", &format!("/v1/orders?status={ph_d}"), Some(&store), None, None).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
    let (status, _) = c.send("POST", "/v1/admin/eod", Some(admin), Some(json!({"business_date": today}).to_string()), None).await;
    assert_eq!(status, 200);

    // Stop the service (its log complete), then dump its database.
    let status = serve.stop(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&serve.log_path).expect("the log");
    let dump = pg_dump(&pg).await;

    // Everything the client sent that identifies a person (each as sent), in every spelling.
    let mut raw: Vec<(String, String)> = Vec::new();
    for id in [&id_x, &id_lx, &id_d, &id_none, &bad_check, &spaced_id] {
        let joined = id.replace(' ', "");
        for v in [id.to_string(), id.to_ascii_uppercase(), lower(id), joined.clone(), joined[..17].to_string()] {
            raw.push((v, id.to_string()));
        }
    }
    for p in [&ph_x, &ph_lx, &ph_d, &ph_d2, &ph_none, &dashed_phone, &plus_phone] {
        raw.push((p.to_string(), p.to_string()));
        raw.push((p.chars().filter(char::is_ascii_digit).collect(), p.to_string()));
    }
    for n in [name_x, name_d] {
        raw.push((n.to_string(), n.to_string()));
        raw.push((n.chars().map(|ch| format!("\\u{:04x}", ch as u32)).collect(), n.to_string()));
    }
    raw.sort();
    raw.dedup();
    let sent = c.sent.join("\n");
    let mut leaks = Vec::new();
    for (v, original) in &raw {
        // The scan is not vacuous: the test itself sent each value to the service (the X ones in both cases).
        assert!(sent.contains(original.as_str()), "the test sent {original}");
        for (name, text) in [("the database dump", &dump), ("the debug log", &log)] {
            if let Some(at) = text.find(v.as_str()) {
                let from = text.floor_char_boundary(at.saturating_sub(150));
                let to = text.ceil_char_boundary((at + v.len() + 150).min(text.len()));
                leaks.push(format!("{v} in {name}: …{}…", &text[from..to]));
            }
        }
    }
    for id in [&id_x, &id_lx] {
        assert!(sent.contains(id.as_str()) && sent.contains(&lower(id)), "{id} was sent with X and with x");
    }
    // And the scan reads what is there: masked forms in the dump, debug lines of every request in the log.
    for masked in [
        format!("{}********{}", &id_x[..6], &id_x[14..]),
        format!("{}********{}", &id_lx[..6], &id_lx[14..]),
        format!("{}****{}", &ph_d2[..3], &ph_d2[7..]),
    ] {
        assert!(dump.contains(&masked), "the dump holds the masked {masked}");
    }
    assert!(log.contains("\"level\":\"DEBUG\""), "the log is at debug level: {}", &log[..log.len().min(2000)]);
    // At debug the database driver would log every statement with its parameters: it is held at info.
    let driver_debug = log.lines().find(|l| l.contains("\"target\":\"tokio_postgres") && !l.contains("\"level\":\"INFO\""));
    assert!(driver_debug.is_none(), "the driver logs below info: {driver_debug:?}");
    assert!(log.contains("/v1/credit-lines") && log.contains("/borrower") && log.contains("request done"), "requests are logged");
    assert!(leaks.is_empty(), "raw personal data found ({} of {} values scanned):\n{}", leaks.len(), raw.len(), leaks.join("\n\n"));
}

// ---------- 4. secrets are shown once ----------

/// Object keys anywhere in a JSON value.
fn json_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                json_keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn api_keys_and_webhook_secrets_are_shown_once_and_the_database_keeps_only_key_hashes() {
    let app = TestApp::start().await;
    let admin = app.admin_key.clone();
    let secret_of = |v: &Value| st(&v["webhook_secret"]);

    // Webhook secrets: at creation, when a URL is added, on rotation; the rotated-away ones are dead.
    let pv_a = app
        .admin_post("/v1/admin/providers", json!({"id": "pv-a", "name": "P", "webhook_url": "https://pv-a.example.com/h"}))
        .await
        .expect(201);
    let plain = app.admin_post("/v1/admin/providers", json!({"id": "pv-b", "name": "P"})).await.expect(201);
    assert!(plain.get("webhook_secret").is_none(), "{plain}");
    let mut bk = bank_body("bk-a", 1);
    bk["webhook_url"] = json!("https://bk-a.example.com/h");
    let bk_a = app.admin_post("/v1/admin/banks", bk).await.expect(201);
    let patched = app
        .call("PATCH", "/v1/admin/providers/pv-b", Some(&admin), Some(&json!({"webhook_url": "https://pv-b.example.com/h"})), None)
        .await;
    let pv_b_secret = secret_of(&patched.expect(200));
    let rotated_pv_a = secret_of(&app.admin_post("/v1/admin/providers/pv-a/webhook-secret", json!({})).await.expect(200));
    let rotated_bk_a = secret_of(&app.admin_post("/v1/admin/banks/bk-a/webhook-secret", json!({})).await.expect(200));
    let dead_webhook = [secret_of(&pv_a), secret_of(&bk_a)];
    let live_webhook = [rotated_pv_a, rotated_bk_a, pv_b_secret];
    for s in dead_webhook.iter().chain(&live_webhook) {
        assert!(s.starts_with("whsec_") && s.len() >= 30, "{s}");
    }

    // API keys of every kind, one with its own rate, one revoked: each shown once, and it works.
    app.admin_post("/v1/admin/stores", json!({"id": "st-a", "name": "S", "region_code": "440305"})).await.expect(201);
    app.admin_post("/v1/admin/partners", partner_body("pt-a")).await.expect(201);
    let mut keys: Vec<(String, String)> = Vec::new();
    for (principal, rate) in [
        (json!({"kind": "admin"}), None),
        (json!({"kind": "store", "id": "st-a"}), None),
        (json!({"kind": "partner", "id": "pt-a"}), None),
        (json!({"kind": "bank", "id": "bk-a"}), Some(100)),
        (json!({"kind": "provider", "id": "pv-a"}), None),
        (json!({"kind": "store", "id": "st-a"}), None),
    ] {
        let mut body = json!({ "principal": principal });
        if let Some(r) = rate {
            body["rate_limit_per_minute"] = json!(r);
        }
        let created = app.admin_post("/v1/admin/api-keys", body).await.expect(201);
        let (id, key) = (st(&created["id"]), st(&created["key"]));
        assert!(id.starts_with("key_") && key.starts_with("cpk_") && key.len() >= 40, "{created}");
        assert_eq!(app.get(&key, "/v1/notices").await.status, 200, "the key shown is the key");
        keys.push((id, key));
    }
    let (revoked_id, revoked) = keys.last().cloned().expect("a key");
    assert_eq!(app.admin().delete(&format!("/v1/admin/api-keys/{revoked_id}")).await.status, 204);
    assert_eq!(app.get(&revoked, "/v1/notices").await.status, 401);

    // Every read: lists (every page), single objects, notices, audit, metrics, the document, and PATCH answers.
    let mut reads: Vec<(String, Resp)> = Vec::new();
    let mut paths: Vec<String> = [
        "/v1/admin/providers",
        "/v1/admin/providers/pv-a",
        "/v1/admin/providers/pv-b",
        "/v1/admin/banks",
        "/v1/admin/banks/bk-a",
        "/v1/admin/stores",
        "/v1/admin/partners",
        "/v1/admin/partners/pt-a",
        "/v1/admin/api-keys",
        "/v1/admin/notices",
        "/v1/admin/audit-log",
        "/v1/admin/ledger/verify",
        "/v1/notices",
        "/metrics",
        "/openapi.json",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.extend(keys.iter().map(|(id, _)| format!("/v1/admin/api-keys/{id}")));
    for p in &paths {
        reads.push((p.clone(), app.admin_get(p).await));
    }
    let mut cursor: Option<String> = None;
    loop {
        let p = match &cursor {
            Some(c) => format!("/v1/admin/api-keys?limit=2&cursor={c}"),
            None => "/v1/admin/api-keys?limit=2".to_string(),
        };
        let r = app.admin_get(&p).await;
        cursor = r.body["next_cursor"].as_str().map(str::to_string);
        reads.push((p, r));
        if cursor.is_none() {
            break;
        }
    }
    for (_, key) in &keys[..keys.len() - 1] {
        reads.push(("/v1/notices (each key)".into(), app.get(key, "/v1/notices").await));
    }
    reads.push(("/v1/admin/partners/pt-a (the partner)".into(), app.get(&keys[2].1, "/v1/admin/partners/pt-a").await));
    for p in ["/v1/admin/banks/bk-a", "/v1/admin/providers/pv-a", "/v1/admin/providers/pv-b"] {
        reads.push((format!("PATCH {p}"), app.admin().patch(p, json!({"name": "Renamed"})).await));
    }
    let all_secrets: Vec<&String> = keys.iter().map(|(_, k)| k).chain(&dead_webhook).chain(&live_webhook).chain([&admin]).collect();
    let mut leaks = Vec::new();
    let mut texts = String::new();
    for (path, r) in &reads {
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let text = r.body.to_string();
        for s in &all_secrets {
            if text.contains(s.as_str()) || text.contains(&s[4..]) {
                leaks.push(format!("{path} shows {s}"));
            }
        }
        let mut names = Vec::new();
        // The OpenAPI document names the fields of the answers that create keys and secrets; only
        // the secret values themselves must never appear in it.
        if path != "/openapi.json" {
            json_keys(&r.body, &mut names);
        }
        for n in names.iter().filter(|n| ["key", "webhook_secret", "secret", "key_hash", "hash"].contains(&n.as_str())) {
            leaks.push(format!("{path} has a field `{n}`"));
        }
        texts.push_str(&text);
    }
    // The reads are the real ones: every key is listed (with its principal and rate), and the URLs are read back.
    for (id, _) in &keys {
        assert!(texts.contains(id.as_str()), "{id} is listed");
    }
    assert!(texts.contains("https://bk-a.example.com/h") && texts.contains("\"rate_limit_per_minute\":100"), "{texts}");
    assert!(leaks.is_empty(), "secrets readable after creation:\n{}", leaks.join("\n"));

    // The database: API keys only as SHA-256 hashes (the bootstrap key not at all); webhook secrets are
    // kept (they sign every delivery) but only the current ones.
    let dump = pg_dump(&app.pg).await;
    let mut found = Vec::new();
    for (_, key) in &keys {
        for s in [key.as_str(), &key[4..]] {
            if dump.contains(s) {
                found.push(format!("the API key {key} is in the dump"));
            }
        }
        let hash = hex::encode(creditphone::auth::hash_api_key(key));
        assert!(dump.contains(&hash), "the dump holds the hash of {key}");
    }
    if dump.contains(admin.as_str()) {
        found.push("the bootstrap admin key is in the dump".to_string());
    }
    for s in &dead_webhook {
        if dump.contains(s.as_str()) {
            found.push(format!("the rotated-away webhook secret {s} is still stored"));
        }
    }
    for s in &live_webhook {
        assert!(dump.contains(s.as_str()), "the current webhook secret {s} is kept for signing");
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

// ---------- 1b. what a caller may list, and keys that are not quite keys ----------

/// The lists answer only the caller's own: orders, the notice feed, a bank's reconciliation; an
/// idempotency key is scoped to its principal (another principal's same key runs afresh).
#[actix_web::test]
async fn lists_feeds_and_idempotency_keys_are_scoped_to_the_caller() {
    let fx = fixture().await;
    let mut wrong = Vec::new();
    let own = |who: Who| -> (&'static str, &'static str) {
        match who {
            Who::StoreA => ("store", "st-a"),
            Who::StoreB => ("store", "st-b"),
            Who::PartnerA => ("partner", "pt-a"),
            Who::PartnerB => ("partner", "pt-b"),
            Who::BankA => ("bank", "bk-a"),
            Who::BankB => ("bank", "bk-b"),
            Who::ProviderA => ("provider", "pv-a"),
            Who::ProviderB => ("provider", "pv-b"),
            _ => unreachable!(),
        }
    };
    // Orders of st-b and pt-b too, so that every seller has something of its own to see.
    for who in [Who::StoreB, Who::PartnerB] {
        fx.call("POST", "/v1/orders", who, fx.body("order", who)).await.expect(201);
    }
    let mut seen_total = 0;
    for who in [Who::StoreA, Who::StoreB, Who::PartnerA, Who::PartnerB, Who::BankA, Who::BankB] {
        let (kind, id) = own(who);
        let list = fx.call("GET", "/v1/orders?limit=200", who, None).await.expect(200);
        let orders = list["data"].as_array().expect("data");
        let field = match kind {
            "store" => "store_id",
            "partner" => "partner_id",
            _ => "bank_id",
        };
        if kind != "bank" || id == "bk-a" {
            assert!(!orders.is_empty(), "{} sees its own orders", who.label());
        }
        seen_total += orders.len();
        for o in orders.iter().filter(|o| o[field] != json!(id)) {
            wrong.push(format!("GET /v1/orders as {} lists {} of {}", who.label(), o["id"], o[field]));
        }
    }
    assert!(seen_total >= 20, "{seen_total}");
    for who in [Who::StoreA, Who::StoreB, Who::PartnerA, Who::PartnerB, Who::BankA, Who::BankB, Who::ProviderA, Who::ProviderB] {
        let (kind, id) = own(who);
        let feed = fx.call("GET", "/v1/notices?limit=200", who, None).await.expect(200);
        for n in feed["data"].as_array().expect("data").iter().filter(|n| n["recipient"] != json!({"kind": kind, "id": id})) {
            wrong.push(format!("GET /v1/notices as {} has {} for {}", who.label(), n["id"], n["recipient"]));
        }
    }
    let today = fx.vars["today"].clone();
    for who in [Who::BankA, Who::BankB] {
        let r = fx.call("GET", &format!("/v1/reconciliation/{today}"), who, None).await.expect(200);
        let movements = r["movements"].as_array().expect("movements");
        if who == Who::BankA {
            assert!(!movements.is_empty(), "{r}");
        }
        for m in movements.iter().filter(|m| m["bank_id"] != json!(own(who).1)) {
            wrong.push(format!("reconciliation of {} has {m}", who.label()));
        }
    }

    // One Idempotency-Key, one body, two stores: two orders, no replay across principals.
    let body = order_body("SHARED-1", 1, false);
    let raw = serde_json::to_vec(&body).expect("json");
    let a = fx.app.call_raw("POST", "/v1/orders", Some(&fx.keys[&Who::StoreA]), Some(raw.clone()), Some("shared-key"), &[]).await;
    let b = fx.app.call_raw("POST", "/v1/orders", Some(&fx.keys[&Who::StoreB]), Some(raw.clone()), Some("shared-key"), &[]).await;
    assert_eq!((a.status, b.status), (201, 201), "{} {}", a.body, b.body);
    assert!(b.header("idempotent-replayed").is_none() && a.body["id"] != b.body["id"], "store st-b got st-a's answer: {}", b.body);
    assert_eq!(b.body["store_id"], json!("st-b"));
    // Another key of the same principal shares the scope: its retry is the replay (API.md: scoped to the principal).
    let (_, twin) = new_key(&fx.app, json!({"kind": "store", "id": "st-a"}), None).await;
    let c = fx.app.call_raw("POST", "/v1/orders", Some(&twin), Some(raw), Some("shared-key"), &[]).await;
    assert_eq!((c.status, c.header("idempotent-replayed"), &c.body), (201, Some("true"), &a.body));
    assert!(wrong.is_empty(), "answers beyond the caller's own:\n{}", wrong.join("\n"));
}

/// `Authorization` variants: the scheme is case-insensitive (RFC 9110 §11.1); anything that is not
/// `Bearer <a valid, unrevoked key>` is 401 with the API.md body; nothing is 5xx.
#[actix_web::test]
async fn malformed_or_foreign_authorization_is_401() {
    let app = TestApp::start().await;
    let key = World::empty().store("st-a", "440305").build(&app).await.store().key.clone();
    let get = async |value: &str| {
        let mut req = app.http.get(format!("{}/v1/orders", app.url));
        if !value.is_empty() {
            req = req.header("Authorization", value);
        }
        let res = req.send().await.expect("answer");
        let status = res.status().as_u16();
        let request_id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        (status, request_id, res.json::<Value>().await.unwrap_or(Value::Null))
    };
    for accepted in [format!("Bearer {key}"), format!("bearer {key}"), format!("BEARER {key}"), format!("Bearer  {key} ")] {
        let (status, _, body) = get(&accepted).await;
        assert_eq!(status, 200, "{accepted:?}: {body}");
    }
    let mut refused = vec![
        String::new(),
        key.clone(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Basic {key}"),
        format!("Token {key}"),
        format!("Bearer {key}x"),
        format!("Bearer {}", &key[..key.len() - 1]),
        format!("Bearer {}", key.to_uppercase()),
        format!("Bearer {key} {key}"),
        format!("Bearer {}", "a".repeat(5000)),
        format!("Bearer {}", app.admin_key.to_uppercase()),
        "Bearer '; SELECT 1; --".to_string(),
    ];
    refused.push(format!("Bearer {key}\u{00e9}"));
    for value in &refused {
        let (status, request_id, body) = get(value).await;
        assert_eq!(status, 401, "{value:?}: {body}");
        assert_error_body(&body, 401, "unauthenticated", request_id.as_deref());
    }
}

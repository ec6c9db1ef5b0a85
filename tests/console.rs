//! The operations console (`/console/`): its sign-in, session cookie, CSRF tokens and headers
//! over HTTP, and the whole of it driven in headless Chromium through WebDriver.

mod common;

use common::browser::Browser;
use common::world::{World, order_body};
use common::{TestApp, id_number, phone};
use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;

/// A world with an order funded (and, from `new`, a dead notice of the bank), and an admin key of its own.
struct Console {
    app: TestApp,
    world: World,
    admin_key: String,
    admin_key_id: String,
    /// Answers as they come: redirects are not followed, cookies not kept.
    http: reqwest::Client,
    order: serde_json::Value,
}

impl Console {
    /// With the bank's `plan.opened` dead (no delivery runs: its 20 attempts are written here).
    async fn new() -> Console {
        let c = Console::start(TestApp::start().await, json!({"webhook_url": "http://127.0.0.1:9/hook", "name": "<b>招商</b> & Co"})).await;
        let db = c.app.db().await;
        db.execute("UPDATE notices SET state = 'dead', attempts = 20, next_attempt_at = NULL WHERE type = 'plan.opened'", &[])
            .await
            .unwrap();
        c
    }

    /// The world on `app`, bank `bk` with `bank_extra`.
    async fn start(app: TestApp, bank_extra: serde_json::Value) -> Console {
        let world = World::standard().bank_extra("bk", bank_extra).build(&app).await;
        let (admin_key_id, admin_key) = world.admin.new_key(json!({"kind": "admin"}), None).await;
        let placed = world.store().place_order(order_body("POS-C1", "p12", 7, 1)).await.expect(201);
        let today = creditphone::domain::shanghai_date(chrono::Utc::now()).to_string();
        let order = world.bank().fund(placed["id"].as_str().unwrap(), "LN-C1", &today).await.expect(200);
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Console { app, world, admin_key, admin_key_id, http, order }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.url)
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut r = self.http.get(self.url(path));
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        r.send().await.unwrap()
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.http.post(self.url(path)).form(form);
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        r.send().await.unwrap()
    }

    /// Signs in with `key`: the answer, and the session cookie (`name=value`) when one was set.
    async fn sign_in(&self, key: &str) -> (reqwest::Response, Option<String>) {
        let r = self.post("/console/sign-in", None, &[("key", key)]).await;
        let cookie = r.headers().get("set-cookie").map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        (r, cookie)
    }

    async fn page(&self, path: &str, cookie: &str) -> String {
        let r = self.get(path, Some(cookie)).await;
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    async fn notice_state(&self, kind: &str) -> String {
        let db = self.app.db().await;
        db.query_one("SELECT state FROM notices WHERE type = $1", &[&kind]).await.unwrap().get(0)
    }
}

/// The CSRF token of a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers().get("location").map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[actix_web::test]
async fn only_an_admin_key_signs_in_and_its_cookie_is_httponly_strict_and_signed() {
    let c = Console::new().await;
    // No session: to the sign-in page, which carries the security headers.
    let r = c.get("/console/overview", None).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/sign-in"));
    let r = c.get("/console/sign-in", None).await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
    assert!(r.text().await.unwrap().contains("管理员 API 密钥"), "zh-CN by default");

    // Another principal's key, an unknown key: refused, no cookie.
    for key in [c.world.bank().key.clone(), "cpk_nope".to_string(), String::new()] {
        let (r, cookie) = c.sign_in(&key).await;
        assert_eq!((r.status().as_u16(), cookie), (403, None), "{key}");
    }
    let (r, cookie) = c.sign_in(&c.admin_key).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/overview"));
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    let cookie = cookie.unwrap();
    let page = c.page("/console/overview", &cookie).await;
    assert!(page.contains("¥10,000,000.00") && page.contains("¥3,000.00"), "limit and exposure of bk as ¥ amounts");
    let en = c.http.get(c.url("/console/overview")).header("Cookie", &cookie).header("Accept-Language", "en-US,en;q=0.9").send().await;
    assert!(en.unwrap().text().await.unwrap().contains("Overview"));

    // A tampered cookie (one character of the signature changed) is no session.
    let mut tampered = cookie.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let r = c.get("/console/overview", Some(&tampered)).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/sign-in"));

    // The sign-in is audited with the key's id; revoking the key ends the session.
    let log = c.world.admin.get("/v1/admin/audit-log").await.expect(200);
    let actor = format!("admin:{}", c.admin_key_id);
    assert!(log["data"].as_array().unwrap().iter().any(|e| e["actor"] == actor.as_str() && e["action"] == "console.sign_in"), "{log}");
    c.world.admin.delete(&format!("/v1/admin/api-keys/{}", c.admin_key_id)).await.expect(204);
    assert_eq!(c.get("/console/overview", Some(&cookie)).await.status(), 303);
}

#[actix_web::test]
async fn a_session_expires_after_eight_hours_by_the_services_clock() {
    let c = Console::new().await;
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    c.app.clock.set(chrono::Utc::now() + chrono::Duration::hours(8) - chrono::Duration::minutes(1));
    assert_eq!(c.get("/console/overview", Some(&cookie)).await.status(), 200);
    c.app.clock.set(chrono::Utc::now() + chrono::Duration::hours(8) + chrono::Duration::minutes(1));
    let r = c.get("/console/overview", Some(&cookie)).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/sign-in"));
    c.app.clock.reset();
}

#[actix_web::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let c = Console::new().await;
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    let page = c.page("/console/notices?state=dead", &cookie).await;
    let token = csrf_of(&page);
    for form in [vec![], vec![("csrf", "0".repeat(64))]] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.post("/console/notices/redeliver-all", Some(&cookie), &form).await;
        assert_eq!(r.status(), 403);
        assert_eq!(c.notice_state("plan.opened").await, "dead", "nothing changed");
        let r = c.post("/console/eod/run", Some(&cookie), &[("business_date", "2020-01-01")]).await;
        assert_eq!(r.status(), 403);
    }
    assert_eq!(c.world.admin.get("/v1/admin/eod-runs").await.expect(200)["data"], json!([]), "no end of day ran");
    // Another session's token does not do either.
    let (_, other) = c.sign_in(&c.admin_key).await;
    let other_token = csrf_of(&c.page("/console/notices", &other.unwrap()).await);
    let r = c.post("/console/notices/redeliver-all", Some(&cookie), &[("csrf", &other_token)]).await;
    assert_eq!(r.status(), 403);
    // With it: every dead notice pending again, audited.
    let r = c.post("/console/notices/redeliver-all", Some(&cookie), &[("csrf", &token)]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/notices?state=dead&done=1"));
    assert_eq!(c.notice_state("plan.opened").await, "pending");
    let log = c.world.admin.get("/v1/admin/audit-log").await.expect(200);
    assert!(log["data"].as_array().unwrap().iter().any(|e| e["action"] == "notices.redeliver_dead"), "{log}");
    // Signing out needs the token too, and clears the cookie.
    assert_eq!(c.post("/console/sign-out", Some(&cookie), &[]).await.status(), 403);
    let r = c.post("/console/sign-out", Some(&cookie), &[("csrf", &token)]).await;
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[actix_web::test]
async fn pages_escape_stored_text_and_never_show_identity() {
    let c = Console::new().await;
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    let reference = c.page("/console/reference", &cookie).await;
    assert!(reference.contains("&lt;b&gt;招商&lt;/b&gt; &amp; Co") && !reference.contains("<b>招商"), "escaped");
    let found = c.page("/console/orders?q=POS-C1", &cookie).await;
    assert!(found.contains(c.order["id"].as_str().unwrap()) && found.contains("¥3,000.00"));
    // Who sold it, on what terms: what a store calling about its order is asked.
    let sale = element(&found, "p", "sale");
    for part in ["<span class=\"seller\">store:st</span>", "<span class=\"product\">p12 · 12</span>", "首付 ¥999.00"] {
        assert!(sale.contains(part), "{part} in {sale}");
    }
    let funded_on = c.order["plan"]["funded_on"].as_str().unwrap();
    assert!(found.contains(&format!("放款日 {funded_on}")) && found.contains("冻结代偿 ¥0.00"), "the plan's line");
    for page in [found, c.page("/console/overview", &cookie).await, c.page("/console/notices", &cookie).await] {
        assert!(!page.contains(&id_number(7)) && !page.contains(&phone(7)), "no raw ID number or phone");
    }
    let aging = c.page("/console/aging", &cookie).await;
    assert!(aging.contains("<svg") && aging.contains("181+"));
}

/// The pages a signed-in admin reads, and the forms that change something.
fn console_pages(c: &Console, notice: &str) -> (Vec<String>, Vec<String>) {
    let order = c.order["id"].as_str().unwrap();
    let gets = ["/console/overview", "/console/orders", "/console/orders?q=POS-C1", "/console/notices", "/console/notices?state=dead"]
        .into_iter()
        .map(str::to_string)
        .chain([format!("/console/orders/{order}"), format!("/console/notices/{notice}")])
        .chain(["/console/eod", "/console/aging", "/console/aging?bank_id=bk", "/console/reference"].map(str::to_string))
        .collect();
    let posts = ["/console/notices/redeliver-all", "/console/eod/confirm", "/console/eod/run", "/console/sign-out"]
        .into_iter()
        .map(str::to_string)
        .chain([format!("/console/notices/{notice}/redeliver")])
        .collect();
    (gets, posts)
}

/// `Content-Security-Policy` without inline script or style, `X-Frame-Options: DENY`, `Referrer-Policy`.
fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let csp = r.headers().get("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP")).to_str().unwrap();
    for needed in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(needed), "{what}: {needed} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(r.headers().get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
    assert_eq!(r.headers().get("referrer-policy").map(|v| v.to_str().unwrap()), Some("same-origin"), "{what}");
}

/// No script but the vendored file, no inline style, no event handler attribute: read tag by tag
/// (escaped text holds no `<`, so what looks like markup in it is not looked at).
fn assert_no_inline_code(page: &str, what: &str) {
    let lower = page.to_ascii_lowercase();
    for tag in lower.split('<').skip(1).map(|t| t.split('>').next().unwrap_or("")) {
        assert!(!tag.starts_with("script") || tag.contains("src=\"/console/assets/"), "{what}: an inline script: <{tag}>");
        assert!(!tag.starts_with("style"), "{what}: a style element");
        let attributes = tag.split_whitespace().skip(1).map(|a| a.split('=').next().unwrap_or(""));
        for name in attributes {
            assert!(name != "style" && !(name.starts_with("on") && name.len() > 2), "{what}: attribute {name} in <{tag}>");
        }
    }
}

#[actix_web::test]
async fn every_page_needs_a_session_and_carries_the_security_headers() {
    let c = Console::new().await;
    let db = c.app.db().await;
    let notice: String = db.query_one("SELECT id FROM notices WHERE type = 'plan.opened'", &[]).await.unwrap().get(0);
    // HTML in a stored reason: a second order cancelled by its store.
    let placed = c.world.store().place_order(order_body("POS-C2", "p12", 7, 2)).await.expect(201);
    let cancelled = c.world.store().cancel(placed["id"].as_str().unwrap(), "<img src=x onerror=alert(1)>").await.expect(200);
    let (gets, posts) = console_pages(&c, &notice);

    // No session: every page and every form goes to the sign-in page, and nothing changes.
    for path in &gets {
        let r = c.get(path, None).await;
        assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/sign-in"), "{path}");
        assert_security_headers(&r, path);
    }
    for path in &posts {
        let r = c.post(path, None, &[("csrf", "0"), ("business_date", "2020-01-01")]).await;
        assert_eq!((r.status().as_u16(), location(&r)), (303, "/console/sign-in"), "{path}");
    }
    assert_eq!(c.notice_state("plan.opened").await, "dead");
    assert_eq!(c.world.admin.get("/v1/admin/eod-runs").await.expect(200)["data"], json!([]), "no end of day ran");

    // Signed in: every page answers with the headers and no inline code; so do the sign-in page,
    // the assets, an unknown console path and a refusal.
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    for path in &gets {
        let r = c.get(path, Some(&cookie)).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_security_headers(&r, path);
        assert_no_inline_code(&r.text().await.unwrap(), path);
    }
    for path in ["/console/sign-in", "/console/assets/console.css", "/console/assets/htmx-2.0.11.min.js", "/console/nope"] {
        assert_security_headers(&c.get(path, Some(&cookie)).await, path);
    }
    let refused = c.post("/console/eod/run", Some(&cookie), &[("business_date", "2020-01-01")]).await;
    assert_eq!(refused.status(), 403);
    assert_security_headers(&refused, "a refusal");

    // A dead notice's own redelivery needs the token too.
    let one = format!("/console/notices/{notice}/redeliver");
    for form in [vec![], vec![("csrf", "0".repeat(64))]] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(c.post(&one, Some(&cookie), &form).await.status(), 403);
        assert_eq!(c.notice_state("plan.opened").await, "dead", "nothing changed");
    }

    // The stored reason is shown, escaped, on the order and on its notices.
    let page = c.page(&format!("/console/orders/{}", cancelled["id"].as_str().unwrap()), &cookie).await;
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;") && !page.contains("<img src=x"), "escaped reason");
    assert_no_inline_code(&page, "the cancelled order");

    // A revoked admin key signs in no more.
    c.world.admin.delete(&format!("/v1/admin/api-keys/{}", c.admin_key_id)).await.expect(204);
    let (r, none) = c.sign_in(&c.admin_key).await;
    assert_eq!((r.status().as_u16(), none), (403, None));
}

/// A webhook receiver that answers every delivery `503`, until stopped.
async fn unavailable_receiver() -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(|| async { actix_web::HttpResponse::ServiceUnavailable().body("down") }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), handle)
}

/// How often `needle` occurs in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The element of `page` with id `id` (a `tag`), to its closing tag, nested ones counted.
fn element<'a>(page: &'a str, tag: &str, id: &str) -> &'a str {
    let start = page.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {page}"));
    let start = page[..start].rfind(&format!("<{tag}")).unwrap();
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let (mut depth, mut at) = (0usize, start);
    loop {
        let next_open = page[at..].find(&open).map(|i| at + i);
        let next_close = page[at..].find(&close).map(|i| at + i).unwrap_or_else(|| panic!("#{id} is not closed"));
        match next_open {
            Some(o) if o < next_close => (depth, at) = (depth + 1, o + open.len()),
            _ if depth == 1 => return &page[start..next_close + close.len()],
            _ => (depth, at) = (depth - 1, next_close + close.len()),
        }
    }
}

/// A console whose bank's webhook answers `503`: the order funded and repaid once (the
/// repayment answered), then delivery run until every bank notice is dead after its 2 attempts.
async fn with_failed_deliveries() -> (Console, serde_json::Value) {
    let (hook, receiver) = unavailable_receiver().await;
    let app = TestApp::start_with(|s| {
        s.notices.enabled = true;
        s.notices.poll_interval_ms = 50;
        s.notices.retry_initial_secs = 1;
        s.notices.max_attempts = 2;
    })
    .await;
    let c = Console::start(app, json!({"webhook_url": hook})).await;
    let plan_id = c.order["plan"]["id"].as_str().unwrap().to_string();
    let today = creditphone::domain::shanghai_date(chrono::Utc::now()).to_string();
    let repaid = c.world.bank().repay(&plan_id, "275.04", &today, "R-C1").await.expect(201);
    let jobs = creditphone::jobs::spawn_all(c.app.state.deps.clone());
    let db = c.app.db().await;
    let pending = "SELECT count(*) FROM notices WHERE recipient_kind = 'bank' AND state = 'pending'";
    let mut left: i64 = 1;
    for _ in 0..300 {
        left = db.query_one(pending, &[]).await.unwrap().get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    jobs.stop().await;
    receiver.stop(false).await;
    assert_eq!(left, 0, "every bank notice dead after its attempts");
    (c, repaid)
}

/// Every journal entry of the order is on the page with each of its lines, shown balanced.
async fn assert_journal_shown(c: &Console, order_id: &str, page: &str) {
    let db = c.app.db().await;
    let entries: Vec<(i64, i64)> = db
        .query(
            "SELECT e.id, count(l.*) FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id
             WHERE e.order_id = $1 GROUP BY e.id ORDER BY e.id",
            &[&order_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(entries.len() >= 4, "placed, reserved, opened, repaid: {entries:?}");
    for (id, lines) in &entries {
        let entry = element(page, "tbody", &format!("je-{id}"));
        assert!(entry.contains("借贷平衡"), "{entry}");
        assert_eq!(count(entry, "<td class=\"account\">"), *lines as usize, "{entry}");
    }
    assert!(!page.contains("借贷不平"));
}

#[actix_web::test]
async fn the_order_lookup_shows_repayments_notices_with_their_attempts_and_balanced_journal_entries() {
    let (c, repaid) = with_failed_deliveries().await;
    let order_id = c.order["id"].as_str().unwrap().to_string();
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    let page = c.page("/console/orders?q=POS-C1", &cookie).await;
    let detail = c.page(&format!("/console/orders/{order_id}"), &cookie).await;
    let listed = element(&page, "div", "order-notices");
    assert_eq!(element(&detail, "div", "order-notices"), listed, "the one order found, in full as on its page");
    let db = c.app.db().await;
    let notices: Vec<(String, String, i32)> = db
        .query("SELECT id, state, attempts FROM notices WHERE data ->> 'order_id' = $1 ORDER BY seq", &[&order_id])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(notices.iter().any(|n| n.1 == "dead") && notices.len() >= 5, "{notices:?}");
    // Each notice of the order, with as many attempt rows as it had attempts.
    for (id, state, attempts) in &notices {
        let one = element(listed, "details", &format!("n-{id}"));
        assert_eq!(count(one, "<tr class=\"attempt\">"), *attempts as usize, "{id} ({state}): {one}");
        if state == "dead" {
            assert_eq!(count(one, "HTTP 503"), 2, "each attempt's answer: {one}");
        }
    }
    // The repayment, and every journal entry of the order with its lines, balanced.
    let repayments = element(&page, "table", "repayments");
    let shown = [repaid["id"].as_str().unwrap(), "¥275.04", "R-C1"];
    assert!(shown.iter().all(|s| repayments.contains(s)), "{repayments}");
    assert_journal_shown(&c, &order_id, &page).await;
    assert!(!page.contains(&id_number(7)) && !page.contains(&phone(7)), "no raw ID number or phone");

    // A notice's own page: its attempt history; an unknown order or notice is not found.
    let dead = &notices.iter().find(|n| n.1 == "dead").unwrap().0;
    let history = c.page(&format!("/console/notices/{dead}"), &cookie).await;
    assert_eq!(count(&history, "<tr class=\"attempt\">"), 2, "{history}");
    assert!(history.contains("class=\"redeliver\""), "a dead notice can be redelivered from its page");
    let list = c.page("/console/notices?state=dead", &cookie).await;
    assert!(list.contains(&format!("href=\"/console/notices/{dead}\"")), "the list links to each notice's history");
    for missing in ["/console/orders/ord_nope", "/console/notices/ntc_9999999999999999", "/console/notices/nope"] {
        assert_eq!(c.get(missing, Some(&cookie)).await.status(), 404, "{missing}");
    }
}

#[actix_web::test]
async fn an_entry_that_does_not_balance_is_shown_unbalanced_at_the_top_of_the_order() {
    let c = Console::new().await;
    let order_id = c.order["id"].as_str().unwrap();
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    let page = c.page(&format!("/console/orders/{order_id}"), &cookie).await;
    assert!(!page.contains("journal-alert") && !page.contains("借贷不平"), "a sound book shows no alarm");

    // The book changed behind the engine's back: one debit line of the order's first entry a fen
    // more. Posting refuses such an entry; the schema keeps only each line non-zero.
    let db = c.app.db().await;
    let entry: i64 = db.query_one("SELECT min(id) FROM journal_entries WHERE order_id = $1", &[&order_id]).await.unwrap().get(0);
    let changed = db
        .execute(
            "UPDATE journal_lines SET amount_fen = amount_fen + 1
             WHERE ctid = (SELECT ctid FROM journal_lines WHERE entry_id = $1 AND amount_fen > 0 LIMIT 1)",
            &[&entry],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);

    let page = c.page(&format!("/console/orders/{order_id}"), &cookie).await;
    // An alert at the top of the order, before its plan, naming the entry and linking to it.
    let alert = page.find("id=\"journal-alert\"").unwrap_or_else(|| panic!("no alert: {page}"));
    assert!(alert < page.find("class=\"plan\"").unwrap(), "the alert comes first");
    let alert = element(&page, "p", "journal-alert");
    assert!(alert.contains("role=\"alert\"") && alert.contains("借贷不平") && alert.contains(&format!("href=\"#je-{entry}\"")), "{alert}");
    // The entry itself: marked, its totals and the fen that is off under its lines.
    let shown = element(&page, "tbody", &format!("je-{entry}"));
    assert!(shown.starts_with("<tbody class=\"entry unbalanced\""), "{shown}");
    assert!(shown.contains("借贷不平") && !shown.contains("借贷平衡"), "{shown}");
    assert!(shown.contains("<span class=\"difference\">¥0.01</span>"), "{shown}");
    // Every other entry of the order still balances, and says so.
    assert_eq!(count(&page, "class=\"entry unbalanced\""), 1);
    let entries: i64 = db.query_one("SELECT count(*) FROM journal_entries WHERE order_id = $1", &[&order_id]).await.unwrap().get(0);
    assert!(entries >= 3, "placed, reserved, opened: {entries}");
    assert_eq!(count(&page, "借贷平衡") as i64, entries - 1, "{page}");
    // In English too.
    let en = c.http.get(c.url(&format!("/console/orders/{order_id}"))).header("Cookie", &cookie).header("Accept-Language", "en");
    let en = en.send().await.unwrap().text().await.unwrap();
    assert!(element(&en, "p", "journal-alert").contains("do NOT balance"), "{en}");
    assert_no_inline_code(&page, "the unbalanced order");
}

#[actix_web::test]
async fn the_lookup_shows_a_holds_confirmation_and_the_reference_each_providers_mode() {
    let c = Console::new().await;
    let patch = json!({"hold_confirmation": "required", "hold_confirmation_timeout_minutes": 45});
    c.world.admin.patch("/v1/admin/providers/wld", patch).await.expect(200);
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    let reference = c.page("/console/reference", &cookie).await;
    let wld = element(&reference, "tr", "provider-wld");
    assert!(wld.contains("<td class=\"confirmation\">required</td>") && wld.contains(">45</td>"), "{wld}");

    // A pending hold: its deadline (Asia/Shanghai); acknowledged: the provider's order number;
    // declined: why, and the void.
    let placed = c.world.store().place_order(order_body("POS-C2", "p12", 7, 2)).await.expect(201);
    let (order, hold) = (placed["id"].as_str().unwrap(), placed["hold"]["id"].as_str().unwrap());
    let deadline = chrono::DateTime::parse_from_rfc3339(placed["hold"]["confirm_deadline"].as_str().unwrap()).unwrap();
    let page = c.page(&format!("/console/orders/{order}"), &cookie).await;
    let shown = element(&page, "p", "hold");
    let at = creditphone::console::text::shanghai(deadline.with_timezone(&chrono::Utc));
    assert!(shown.contains("pending") && shown.contains(&format!("确认截止 {at}")), "{shown}");
    c.world.provider().acknowledge_hold(hold, "https://pay.example/sign/1", Some("HB-<7>")).await.expect(200);
    c.world.provider().decline_hold(hold, "risk_refused").await.expect(200);
    let page = c.page(&format!("/console/orders/{order}"), &cookie).await;
    let shown = element(&page, "p", "hold");
    for part in [
        "<span class=\"hold-status\">voided</span>",
        "<span class=\"void-reason\">declined</span>",
        "<span class=\"decline-reason\">risk_refused</span>",
        "HB-&lt;7&gt;",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
    assert!(!shown.contains("pay.example"), "the customer's signing page is not the console's business");
}

#[actix_web::test]
async fn the_reference_pages_banks_and_providers_fifty_at_a_time_each_with_its_cursor() {
    let c = Console::new().await;
    // 51 of each with the world's own, written straight to the tables (only listed here; through
    // the API a hundred creations take most of this test's time on a loaded machine).
    let db = c.app.db().await;
    db.batch_execute(
        "INSERT INTO banks (id, name, priority, apr_min, apr_max, exposure_limit_fen)
             SELECT 'bank-' || lpad(n::text, 2, '0'), 'B', 9, 0, 0.24, 100000 FROM generate_series(0, 49) n;
         INSERT INTO providers (id, name) SELECT 'prov-' || lpad(n::text, 2, '0'), 'P' FROM generate_series(0, 49) n;",
    )
    .await
    .unwrap();
    let (_, cookie) = c.sign_in(&c.admin_key).await;
    let cookie = cookie.unwrap();
    let rows = |page: &str, table: &str, prefix: &str| count(element(page, "table", table), &format!("<tr id=\"{prefix}-"));
    let link = |page: &str, id: &str| {
        let at = page.find(&format!("id=\"{id}\" href=\"")).map(|i| i + format!("id=\"{id}\" href=\"").len());
        at.map(|i| page[i..].split('"').next().unwrap().replace("&amp;", "&"))
    };
    let first = c.page("/console/reference", &cookie).await;
    assert_eq!((rows(&first, "ref-banks", "bank"), rows(&first, "ref-providers", "provider")), (50, 50));
    assert!(first.contains("id=\"bank-bk\"") && first.contains("id=\"provider-wld\""), "creation order: the world's first");
    // The providers' next page keeps the banks where they were, and has no page after it.
    let second = c.page(&link(&first, "next-providers").expect("a next page of providers"), &cookie).await;
    assert_eq!((rows(&second, "ref-banks", "bank"), rows(&second, "ref-providers", "provider")), (50, 1));
    assert!(second.contains("id=\"provider-prov-49\"") && link(&second, "next-providers").is_none(), "{second}");
    // Then the banks' next page keeps the providers' page.
    let third = c.page(&link(&second, "next-banks").expect("a next page of banks"), &cookie).await;
    assert_eq!((rows(&third, "ref-banks", "bank"), rows(&third, "ref-providers", "provider")), (1, 1));
    assert!(third.contains("id=\"bank-bank-49\"") && link(&third, "next-banks").is_none(), "{third}");
    // A malformed cursor reads from the first.
    let bad = c.page("/console/reference?banks=%21&providers=zz", &cookie).await;
    assert_eq!((rows(&bad, "ref-banks", "bank"), rows(&bad, "ref-providers", "provider")), (50, 50));
}

/// Polls the page until `check` holds on its source (the browser's answer to a click arrives a
/// little later), then answers the source.
async fn wait_for_source(b: &Browser, what: &str, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        let source = b.client.source().await.unwrap();
        if check(&source) {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {}", b.client.source().await.unwrap());
}

/// The first elements that reach past the document's width (to name them when a page does not fit).
const WIDE: &str = "const w = document.documentElement.clientWidth;
    return [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > w + 0.5 || (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX == 'visible')).slice(0, 6)
        .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.getAttribute('class') + ' ' + Math.round(e.getBoundingClientRect().right));";

/// The document's `[scrollWidth, clientWidth, innerWidth]`.
async fn widths(b: &Browser) -> (i64, i64, i64) {
    let w = b
        .client
        .execute("const d = document.documentElement; return [d.scrollWidth, d.clientWidth, window.innerWidth];", vec![])
        .await
        .unwrap();
    (w[0].as_i64().unwrap(), w[1].as_i64().unwrap(), w[2].as_i64().unwrap())
}

/// Every page at a 1366×768 laptop screen and a 768×1024 tablet held upright: the document never
/// scrolls sideways, the notices table pages 50 rows at a time with its next-page link in view,
/// and a screenshot of each page at each size (`target/console-screenshots/<size>-<page>.png`).
async fn fits_a_laptop_and_a_tablet(c: &Console, b: &Browser) {
    // More notices than a page holds (pull-only: nothing to deliver or redeliver).
    let db = c.app.db().await;
    db.execute(
        "INSERT INTO notices (type, recipient_kind, recipient_id, data, state)
         SELECT 'order.updated', 'store', 'st', jsonb_build_object('out_order_no', 'POS-X' || n, 'status', 'cancelled'), 'pull_only'
         FROM generate_series(1, 60) n",
        &[],
    )
    .await
    .unwrap();
    let total: i64 = db.query_one("SELECT count(*) FROM notices", &[]).await.unwrap().get(0);
    let notice: String = db.query_one("SELECT id FROM notices WHERE type = 'plan.opened'", &[]).await.unwrap().get(0);
    let notice_page = format!("/console/notices/{notice}");
    let pages = [
        ("/console/sign-in", "sign-in"),
        ("/console/overview", "overview"),
        ("/console/orders?q=POS-C1", "order-lookup"),
        ("/console/notices", "notices"),
        (notice_page.as_str(), "notice"),
        ("/console/eod", "end-of-day"),
        ("/console/aging", "aging"),
        ("/console/reference", "banks-and-providers"),
    ];
    for (width, height, size) in [(1366, 768, "laptop"), (768, 1024, "tablet")] {
        b.client.set_window_size(width, height).await.unwrap();
        for (path, name) in pages {
            b.client.goto(&c.url(path)).await.unwrap();
            let (scroll, client, inner) = widths(b).await;
            assert!((width as i64 - 20..=width as i64).contains(&inner), "{size}: the window is {inner} wide");
            if scroll > client {
                let wide = b.client.execute(WIDE, vec![]).await.unwrap();
                panic!("{size} {path}: the document scrolls sideways ({scroll} > {client}); too wide: {wide}");
            }
            b.screenshot(&format!("{size}-{name}")).await;
        }
        // The notices page: 50 rows, then the next page with the rest and no further link.
        b.client.goto(&c.url("/console/notices")).await.unwrap();
        let rows = b.client.find_all(Locator::Css("#notices tr[id^='ntc_']")).await.unwrap().len();
        assert_eq!(rows, 50, "{size}: one page of notices");
        let next = b.client.find(Locator::Css("a.next")).await.unwrap();
        assert!(next.is_displayed().await.unwrap(), "{size}: the next page link");
        next.click().await.unwrap();
        wait_for_source(b, "the next page", |s| s.contains("cursor=") || !s.contains("class=\"next\"")).await;
        let rest = b.client.find_all(Locator::Css("#notices tr[id^='ntc_']")).await.unwrap().len();
        assert_eq!(rest as i64, total - 50, "{size}: the rest of the notices");
        assert!(b.client.find_all(Locator::Css("a.next")).await.unwrap().is_empty(), "{size}: no page after the last");
        assert!(widths(b).await.0 <= widths(b).await.1, "{size}: the second page fits too");
    }
    b.client.set_window_size(1366, 900).await.unwrap();
}

/// `"3300.46"` as the console writes it: `¥3,300.46`.
fn yuan(api: &str) -> String {
    let fen = (api.parse::<f64>().unwrap() * 100.0).round() as i64;
    creditphone::console::text::yuan(creditphone::domain::money::Amount::from_fen(fen))
}

/// The seven amounts of a return (API.md §13), in the order of the console's table.
const RETURN_AMOUNTS: [&str; 7] = [
    "principal_to_bank",
    "repayments_to_refund",
    "interest_waived",
    "fee_waived",
    "penalty_waived",
    "down_payment_to_refund",
    "hold_to_void",
];

/// Two returns of the console's order requested through the API (the first rejected, the second
/// completed, both with HTML in their text), then the order found by the second's id in the
/// search box: each return with its status, its text escaped and its amounts as the API answers
/// them; the hold voided by the completion.
async fn returns_in_the_lookup(c: &Console, b: &Browser) {
    let order_id = c.order["id"].as_str().unwrap();
    let today = creditphone::domain::shanghai_date(chrono::Utc::now()).to_string();
    let mut first = common::world::return_body(1, &today, "RET-C1");
    first["reason"] = json!("performance_fault");
    let first = c.world.store().request_return(order_id, first).await.expect(201);
    let first_id = first["id"].as_str().unwrap();
    c.world.bank().reject_return(first_id, "<i>屏幕有划痕</i>").await.expect(200);
    let mut second = common::world::return_body(1, &today, "RET-C2");
    second["note"] = json!("<script>alert(1)</script>盒子已拆");
    let second = c.world.store().request_return(order_id, second).await.expect(201);
    let second_id = second["id"].as_str().unwrap();
    let done = c.world.bank().complete_return(second_id, &today).await.expect(200);
    assert_eq!((done["principal_to_bank"].as_str(), done["down_payment_to_refund"].as_str()), (Some("3000.00"), Some("999.00")), "{done}");
    assert_eq!(done["hold_to_void"], c.order["hold"]["remaining"], "nothing repaid: the whole hold is voided");

    b.client.goto(&c.url("/console/orders")).await.unwrap();
    b.client.find(Locator::Id("q")).await.unwrap().send_keys(second_id).await.unwrap();
    b.client.find(Locator::Id("search-submit")).await.unwrap().click().await.unwrap();
    let source = wait_for_source(b, "the order found by its return's id", |s| s.contains(&format!("id=\"ret-{second_id}\""))).await;
    for (ret, status, text) in [(&first, "已拒绝", "<i>屏幕有划痕</i>"), (&done, "已完成", "<script>alert(1)</script>盒子已拆")]
    {
        let id = ret["id"].as_str().unwrap();
        let row = b.client.find(Locator::Css(&format!("tbody[id='ret-{id}']"))).await.unwrap();
        assert_eq!(row.find(Locator::Css(".return-status")).await.unwrap().text().await.unwrap(), status, "{id}");
        let mut amounts = vec![];
        for cell in row.find_all(Locator::Css("tr.return-amounts td")).await.unwrap() {
            amounts.push(cell.text().await.unwrap());
        }
        let expected: Vec<String> = RETURN_AMOUNTS.iter().map(|k| yuan(ret[*k].as_str().unwrap())).collect();
        assert_eq!(amounts, expected, "{id}: the amounts fixed at its request");
        assert!(row.text().await.unwrap().contains(text), "{id}: its stored text as written");
    }
    for escaped in ["&lt;i&gt;屏幕有划痕&lt;/i&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;盒子已拆"] {
        assert!(source.contains(escaped), "escaped: {escaped}");
    }
    let completed = b.client.find(Locator::Css(&format!("tbody[id='ret-{second_id}'] .completed-on"))).await.unwrap();
    assert_eq!(completed.text().await.unwrap(), today);
    let status = b.client.find(Locator::Css("section.order .status")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "returned");
    let voided = b.client.find(Locator::Css("section.order .hold-voided")).await.unwrap().text().await.unwrap();
    let reason = b.client.find(Locator::Css("section.order .void-reason")).await.unwrap().text().await.unwrap();
    assert_eq!((voided, reason.as_str()), (yuan(done["hold_to_void"].as_str().unwrap()), "returned"));
    b.client.execute("document.getElementById('returns').scrollIntoView()", vec![]).await.unwrap();
    b.screenshot("order-returns").await;
}

#[actix_web::test]
async fn the_console_in_a_real_browser() {
    let c = Console::new().await;
    let b = Browser::start().await;
    let at = |p: &str| c.url(p);
    // No session: the sign-in page; an admin key signs in.
    b.client.goto(&at("/console/overview")).await.unwrap();
    assert!(b.client.current_url().await.unwrap().path().ends_with("/console/sign-in"));
    b.screenshot("sign-in").await;
    b.client.find(Locator::Id("key")).await.unwrap().send_keys(&c.admin_key).await.unwrap();
    b.client.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    wait_for_source(&b, "the overview", |s| s.contains("id=\"banks\"")).await;
    let banks = b.client.find(Locator::Id("banks")).await.unwrap().text().await.unwrap();
    assert!(banks.contains("bk") && banks.contains("¥3,000.00 / ¥10,000,000.00"), "{banks}");
    b.screenshot("overview").await;

    // Order lookup: the order placed through the API, with its amounts.
    b.client.goto(&at("/console/orders")).await.unwrap();
    b.client.find(Locator::Id("q")).await.unwrap().send_keys("POS-C1").await.unwrap();
    b.client.find(Locator::Id("search-submit")).await.unwrap().click().await.unwrap();
    let order_id = c.order["id"].as_str().unwrap();
    wait_for_source(&b, "the order found", |s| s.contains(&format!("id=\"{order_id}\""))).await;
    let principal = b.client.find(Locator::Css("section.order .principal")).await.unwrap().text().await.unwrap();
    assert_eq!(principal, "¥3,000.00");
    b.screenshot("order-lookup").await;
    returns_in_the_lookup(&c, &b).await;

    // A dead notice redelivered from its row: it leaves the dead letters and is pending again.
    b.client.goto(&at("/console/notices?state=dead")).await.unwrap();
    b.screenshot("notices").await;
    b.client.find(Locator::Css("button.redeliver")).await.unwrap().click().await.unwrap();
    wait_for_source(&b, "the redelivery", |s| s.contains("id=\"message\"") && !s.contains("class=\"redeliver\"")).await;
    assert_eq!(c.notice_state("plan.opened").await, "pending");

    // End of day from the page, with its confirmation step.
    let yesterday = (creditphone::domain::shanghai_date(chrono::Utc::now()) - chrono::Duration::days(1)).to_string();
    b.client.goto(&at("/console/eod")).await.unwrap();
    b.client.execute("document.getElementById('business_date').value = arguments[0]", vec![json!(yesterday)]).await.unwrap();
    b.client.find(Locator::Id("eod-run")).await.unwrap().click().await.unwrap();
    wait_for_source(&b, "the confirmation", |s| s.contains("id=\"confirm-text\"")).await;
    b.client.find(Locator::Id("eod-confirm")).await.unwrap().click().await.unwrap();
    wait_for_source(&b, "end of day done", |s| s.contains("id=\"message\"")).await;
    b.screenshot("end-of-day").await;
    let runs = c.world.admin.get("/v1/admin/eod-runs").await.expect(200);
    assert_eq!((runs["data"][0]["business_date"].as_str(), runs["data"][0]["trigger"].as_str()), (Some(yesterday.as_str()), Some("api")));
    for (path, name) in [("/console/aging", "aging"), ("/console/reference", "banks-and-providers")] {
        b.client.goto(&at(path)).await.unwrap();
        b.screenshot(name).await;
    }

    fits_a_laptop_and_a_tablet(&c, &b).await;

    // Sign out: the console is refused from then on.
    b.client.find(Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    wait_for_source(&b, "the sign-in page", |s| s.contains("id=\"key\"")).await;
    b.client.goto(&at("/console/overview")).await.unwrap();
    assert!(b.client.current_url().await.unwrap().path().ends_with("/console/sign-in"));
    b.stop().await;
}

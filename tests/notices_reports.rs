//! Notice delivery and reports against the real service: signed webhooks to real HTTP receivers
//! (retries with backoff, dead letters and redelivery, a slow receiver, two instances, a lost
//! instance's lease, the Python example receiver), the bank reconciliation against the journal
//! (JSON and CSV, byte-stable once closed), and the partner statement.

mod common;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::world::{World, merged, order_body, partner_body, product_body};
use common::{Resp, TestApp};
use creditphone::config::Settings;
use creditphone::db::notices::{BacklogCounts, backlog_counts};
use creditphone::jobs::Jobs;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------- a real HTTP receiver ----------

#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    path: String,
    event_id: String,
    event_type: String,
    signature: String,
    attempt: String,
    body: Vec<u8>,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Accept,
    /// The first event id seen answers 500 this many times, then 200; others 200 at once.
    FailFirstEvent(usize),
    /// 302 to /landed (which must never be requested).
    Redirect,
    /// Sleeps this long, then 200.
    Sleep(Duration),
}

struct RecvState {
    mode: Mutex<Mode>,
    hits: Mutex<Vec<Hit>>,
    first_event: Mutex<Option<String>>,
    failures: Mutex<HashMap<String, usize>>,
}

struct Receiver {
    url: String,
    state: Arc<RecvState>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(state: web::Data<RecvState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let hit = Hit {
        at: Instant::now(),
        path: req.path().to_string(),
        event_id: header("CreditPhone-Event-Id"),
        event_type: header("CreditPhone-Event-Type"),
        signature: header("CreditPhone-Signature"),
        attempt: header("CreditPhone-Delivery-Attempt"),
        body: body.to_vec(),
    };
    let id = hit.event_id.clone();
    state.hits.lock().unwrap().push(hit);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Accept => HttpResponse::Ok().body("ok"),
        Mode::FailFirstEvent(n) => {
            let first = state.first_event.lock().unwrap().get_or_insert_with(|| id.clone()).clone();
            let mut failures = state.failures.lock().unwrap();
            let count = failures.entry(id.clone()).or_default();
            if id == first && *count < n {
                *count += 1;
                HttpResponse::InternalServerError().body("try again later")
            } else {
                HttpResponse::Ok().finish()
            }
        }
        Mode::Redirect => HttpResponse::Found().insert_header(("Location", "/landed")).finish(),
        Mode::Sleep(d) => {
            actix_web::rt::time::sleep(d).await;
            HttpResponse::Ok().finish()
        }
    }
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let state = Arc::new(RecvState {
            mode: Mutex::new(mode),
            hits: Mutex::new(Vec::new()),
            first_event: Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver { url: format!("http://127.0.0.1:{port}/hook"), state, handle }
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn hits_of(&self, event_id: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.event_id == event_id).collect()
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Stripe's scheme, verified independently of the service's code.
fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

// ---------- a world with webhooks ----------

fn fast(s: &mut Settings) {
    s.notices.enabled = true;
    s.notices.poll_interval_ms = 50;
    s.notices.timeout_secs = 2;
    s.notices.retry_initial_secs = 1;
    s.notices.retry_max_secs = 8;
    s.notices.max_attempts = 5;
}

/// The standard world (common::World) with webhooks where a test gives them, and the service's
/// notice jobs, started or not.
struct Hooks {
    app: TestApp,
    jobs: Option<Jobs>,
    store: String,
    bank: String,
    provider: String,
    bank_secret: Option<String>,
    provider_secret: Option<String>,
}

impl Hooks {
    /// Provider `wld`, bank `bk`, store `st`, product `p12` (3000.00 over 12 months at 0.18), a line.
    async fn new(adjust: impl FnOnce(&mut Settings), bank_url: Option<&str>, provider_url: Option<&str>, start_jobs: bool) -> Hooks {
        let app = TestApp::start_with(|s| {
            fast(s);
            adjust(s)
        })
        .await;
        let url = |u: Option<&str>| u.map_or(json!({}), |u| json!({"webhook_url": u}));
        let w = World::standard()
            .no_lines()
            .line("wld", 7, "1000000")
            .provider_extra("wld", url(provider_url))
            .bank_extra("bk", url(bank_url))
            .build(&app)
            .await;
        let mut h = Hooks {
            bank_secret: w.secrets.get("bk").cloned(),
            provider_secret: w.secrets.get("wld").cloned(),
            store: w.store().key.clone(),
            bank: w.bank().key.clone(),
            provider: w.provider().key.clone(),
            app,
            jobs: None,
        };
        if start_jobs {
            h.start_jobs();
        }
        h
    }

    fn start_jobs(&mut self) {
        self.jobs = Some(creditphone::jobs::spawn_all(self.app.state.deps.clone()));
    }

    async fn stop_jobs(&mut self) {
        if let Some(j) = self.jobs.take() {
            j.stop().await;
        }
    }

    async fn order(&self, n: u32) -> Value {
        self.app.client(&self.store).place_order(order_body(&format!("POS-{n}"), "p12", 7, n.into())).await.expect(201)
    }

    /// Every notice as the admin sees it, following cursors.
    async fn admin_notices(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut path = format!("/v1/admin/notices?limit=200&{query}");
        loop {
            let page = self.app.admin_get(&path).await.expect(200);
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/admin/notices?limit=200&{query}&cursor={c}"),
                None => return out,
            }
        }
    }

    async fn notice(&self, id: &str) -> Value {
        self.app.admin_get(&format!("/v1/admin/notices/{id}")).await.expect(200)
    }

    /// A caller's pull feed, all of it.
    async fn feed(&self, key: &str) -> Vec<Value> {
        let page = self.app.get(key, "/v1/notices?limit=200").await.expect(200);
        page["data"].as_array().unwrap().clone()
    }
}

/// Polls `check` until it holds or `within` has passed (then fails with `what`).
async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, within: Duration, mut check: F) {
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < within, "timed out after {within:?} waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(40)).await;
    }
}

fn ids(notices: &[Value]) -> Vec<String> {
    notices.iter().map(|n| n["id"].as_str().unwrap().to_string()).collect()
}

async fn metrics(app: &TestApp) -> String {
    app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap()
}

// ---------- webhooks ----------

#[actix_web::test]
async fn webhooks_are_signed_in_creation_order_and_carry_the_feed_item() {
    let bank_rx = Receiver::start(Mode::Accept).await;
    let prov_rx = Receiver::start(Mode::Accept).await;
    let mut w = Hooks::new(|_| {}, Some(&bank_rx.url), Some(&prov_rx.url), true).await;
    let bank_secret = w.bank_secret.clone().expect("a bank with a webhook_url gets a secret");
    let provider_secret = w.provider_secret.clone().expect("a provider with a webhook_url gets a secret");
    for n in 1..=4 {
        w.order(n).await;
    }
    wait_for("4 notices to the bank and 4 to the provider", Duration::from_secs(10), async || {
        bank_rx.hits().len() >= 4 && prov_rx.hits().len() >= 4
    })
    .await;
    for (rx, secret, key, kind) in [(&bank_rx, &bank_secret, &w.bank, "bank"), (&prov_rx, &provider_secret, &w.provider, "provider")] {
        let feed = w.feed(key).await;
        let hits = rx.hits();
        assert_eq!(hits.len(), 4, "each notice once: {hits:?}");
        assert_eq!(hits.iter().map(|h| h.event_id.clone()).collect::<Vec<_>>(), ids(&feed), "first attempts in creation order");
        for (hit, item) in hits.iter().zip(&feed) {
            assert_eq!(hit.path, "/hook");
            assert!(
                signature_ok(secret, &hit.signature, &hit.body),
                "signature {} over {:?}",
                hit.signature,
                String::from_utf8_lossy(&hit.body)
            );
            assert!(!signature_ok("whsec_wrong", &hit.signature, &hit.body));
            assert_eq!(&hit.json(), item, "the body is the feed item");
            assert_eq!(hit.event_id, item["id"].as_str().unwrap());
            assert_eq!(hit.event_type, item["type"].as_str().unwrap());
            assert_eq!(item["recipient"]["kind"], kind);
            assert_eq!(hit.attempt, "1");
        }
        let delivered = w.admin_notices(&format!("state=delivered&recipient={kind}:{}", if kind == "bank" { "bk" } else { "wld" })).await;
        assert_eq!(ids(&delivered), ids(&feed));
        for n in &delivered {
            assert_eq!(
                (n["state"].as_str(), n["attempts"].as_i64(), n["last_status"].as_i64()),
                (Some("delivered"), Some(1), Some(200)),
                "{n}"
            );
            assert!(n["delivered_at"].is_string() && n["last_error"].is_null(), "{n}");
        }
    }
    // Stores and partners have no webhook: their notices are pull only.
    let store_notices = w.admin_notices("recipient=store:st").await;
    assert_eq!(store_notices.len(), 4);
    assert!(store_notices.iter().all(|n| n["state"] == "pull_only" && n["attempts"] == 0));
    assert!(w.admin_notices("state=pending").await.is_empty());
    assert_eq!(w.admin_notices("").await.len(), 12);

    let text = metrics(&w.app).await;
    assert!(text.contains("creditphone_notice_attempts_total{outcome=\"delivered\"} 8"), "{text}");
    assert!(text.contains("creditphone_notice_delivery_latency_seconds_count{recipient_kind=\"bank\"} 4"), "{text}");
    assert!(text.contains("creditphone_notices{state=\"pending\"}"), "{text}");
    assert!(!text.contains("creditphone_notices{state=\"delivered\"}"), "delivered notices are not counted: {text}");
    w.stop_jobs().await;
    bank_rx.stop().await;
    prov_rx.stop().await;
}

#[actix_web::test]
async fn a_failing_receiver_gets_the_same_event_again_after_backoff_without_holding_back_later_ones() {
    let rx = Receiver::start(Mode::FailFirstEvent(2)).await;
    let mut w = Hooks::new(|_| {}, Some(&rx.url), None, true).await;
    w.order(1).await;
    w.order(2).await;
    let bank_ids = ids(&w.admin_notices("recipient=bank:bk").await);
    assert_eq!(bank_ids.len(), 2);
    wait_for("both bank notices delivered", Duration::from_secs(15), async || {
        w.admin_notices("recipient=bank:bk&state=delivered").await.len() == 2
    })
    .await;
    let first = rx.hits_of(&bank_ids[0]);
    let second = rx.hits_of(&bank_ids[1]);
    assert_eq!(first.len(), 3, "two failures, then accepted");
    assert_eq!(first.iter().map(|h| h.attempt.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(first.iter().all(|h| h.body == first[0].body || h.json() == first[0].json()), "the same event every time");
    let gap1 = first[1].at - first[0].at;
    let gap2 = first[2].at - first[1].at;
    assert!(gap1 >= Duration::from_millis(950), "first retry after retry_initial_secs (1 s), was {gap1:?}");
    assert!(gap2 >= Duration::from_millis(1950), "then doubled (2 s), was {gap2:?}");
    assert!(gap2 < Duration::from_secs(4), "and not much later: {gap2:?}");
    assert_eq!(second.len(), 1);
    assert!(second[0].at < first[1].at, "the later notice went while the first one waited for its retry");
    let n = w.notice(&bank_ids[0]).await;
    assert_eq!((n["state"].as_str(), n["attempts"].as_i64(), n["last_status"].as_i64()), (Some("delivered"), Some(3), Some(200)), "{n}");
    assert!(n["last_error"].as_str().unwrap().starts_with("HTTP 500"), "{n}");
    let text = metrics(&w.app).await;
    assert!(text.contains("creditphone_notice_attempts_total{outcome=\"failed\"} 2"), "{text}");
    w.stop_jobs().await;
    rx.stop().await;
}

#[actix_web::test]
async fn a_receiver_that_never_accepts_makes_notices_dead_and_redelivery_brings_them_back() {
    let rx = Receiver::start(Mode::Redirect).await;
    let mut w = Hooks::new(|s| s.notices.max_attempts = 3, Some(&rx.url), None, true).await;
    w.order(1).await;
    let bank_id = ids(&w.admin_notices("recipient=bank:bk").await).remove(0);
    wait_for("the bank notice to be dead", Duration::from_secs(10), async || w.notice(&bank_id).await["state"] == "dead").await;
    let n = w.notice(&bank_id).await;
    assert_eq!((n["attempts"].as_i64(), n["last_status"].as_i64(), n["next_attempt_at"].is_null()), (Some(3), Some(302), true), "{n}");
    assert!(n["last_error"].as_str().unwrap().contains("not followed"), "{n}");
    assert_eq!(rx.hits_of(&bank_id).len(), 3, "3 attempts in all");
    assert!(rx.hits().iter().all(|h| h.path == "/hook"), "redirects are not followed");
    assert_eq!(w.admin_notices("state=dead").await.len(), 1);
    assert_eq!(backlog_counts(&w.app.db().await).await.unwrap(), BacklogCounts { pending: 0, dead: 1 });

    // Redelivery: admin only, known ids only; then pending from attempt one, due now.
    let path = format!("/v1/admin/notices/{bank_id}/redeliver");
    w.app.call("POST", &path, Some(&w.bank), None, None).await.expect_err(403, "forbidden");
    w.app.admin_post("/v1/admin/notices/ntc_9999999999999999/redeliver", json!({})).await.expect_err(404, "not_found");
    w.app.admin_post("/v1/admin/notices/nope/redeliver", json!({})).await.expect_err(404, "not_found");
    w.app.admin_get("/v1/admin/notices/nope").await.expect_err(404, "not_found");
    rx.set_mode(Mode::Accept);
    let again = w.app.admin_post(&path, json!({})).await.expect(202);
    assert_eq!(
        (again["id"].as_str(), again["state"].as_str(), again["attempts"].as_i64()),
        (Some(bank_id.as_str()), Some("pending"), Some(0))
    );
    wait_for("the redelivered notice", Duration::from_secs(5), async || w.notice(&bank_id).await["state"] == "delivered").await;
    assert_eq!(w.notice(&bank_id).await["attempts"], 1);
    assert_eq!(backlog_counts(&w.app.db().await).await.unwrap(), BacklogCounts { pending: 0, dead: 0 }, "delivered at last");

    // A pull-only notice: refused while its recipient has no webhook_url, delivered once it has one.
    let hold_placed = w.admin_notices("recipient=provider:wld").await.remove(0);
    assert_eq!(hold_placed["state"], "pull_only");
    let hold_path = format!("/v1/admin/notices/{}/redeliver", hold_placed["id"].as_str().unwrap());
    w.app.admin_post(&hold_path, json!({})).await.expect_err(409, "invalid_state");
    let store_notice = w.admin_notices("recipient=store:st").await.remove(0);
    w.app
        .admin_post(&format!("/v1/admin/notices/{}/redeliver", store_notice["id"].as_str().unwrap()), json!({}))
        .await
        .expect_err(409, "invalid_state");
    let patched = w.app.admin().patch("/v1/admin/providers/wld", json!({"webhook_url": rx.url})).await;
    let secret = patched.expect(200)["webhook_secret"].as_str().expect("a new secret with the first URL").to_string();
    w.app.admin_post(&hold_path, json!({})).await.expect(202);
    let hold_id = hold_placed["id"].as_str().unwrap().to_string();
    wait_for("the pull-only notice delivered", Duration::from_secs(5), async || !rx.hits_of(&hold_id).is_empty()).await;
    let hit = rx.hits_of(&hold_id).remove(0);
    assert!(signature_ok(&secret, &hit.signature, &hit.body));
    assert_eq!(hit.json()["type"], "hold.placed");

    // The admin list checks its query.
    w.app.admin_get("/v1/admin/notices?state=bogus").await.expect_err(422, "invalid_request");
    let r = w.app.admin_get("/v1/admin/notices?recipient=bk").await;
    r.expect_err(422, "invalid_request");
    assert_eq!(r.field(), Some("recipient"));
    w.app.admin_get("/v1/admin/notices?limit=0").await.expect_err(422, "invalid_request");
    w.app.get(&w.bank, "/v1/admin/notices").await.expect_err(403, "forbidden");
    let mut paged = Vec::new();
    let mut path = "/v1/admin/notices?limit=1".to_string();
    loop {
        let page = w.app.admin_get(&path).await.expect(200);
        paged.extend(ids(page["data"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/admin/notices?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, ids(&w.admin_notices("").await));
    w.stop_jobs().await;
    rx.stop().await;
}

#[actix_web::test]
async fn a_slow_receiver_does_not_hold_up_another_recipient() {
    // Generous times so a loaded machine cannot make the quick recipient look held up: it must be
    // served long before the slow one's first attempt times out.
    let slow = Receiver::start(Mode::Sleep(Duration::from_secs(10))).await;
    let quick = Receiver::start(Mode::Accept).await;
    let mut w = Hooks::new(
        |s| {
            s.notices.timeout_secs = 5;
            s.notices.workers = 2;
        },
        Some(&slow.url),
        Some(&quick.url),
        true,
    )
    .await;
    for n in 1..=3 {
        w.order(n).await;
    }
    wait_for("the provider's 3 notices", Duration::from_secs(5), async || quick.hits().len() >= 3).await;
    // A receiver has the notice before the worker records its answer: wait for the record too.
    wait_for("the provider's 3 notices recorded as delivered", Duration::from_secs(5), async || {
        w.admin_notices("recipient=provider:wld").await.iter().all(|n| n["state"] == "delivered")
    })
    .await;
    let provider = w.admin_notices("recipient=provider:wld").await;
    for n in &provider {
        assert_eq!(n["state"], "delivered");
        let created = chrono::DateTime::parse_from_rfc3339(n["created_at"].as_str().unwrap()).unwrap();
        let delivered = chrono::DateTime::parse_from_rfc3339(n["delivered_at"].as_str().unwrap()).unwrap();
        let lag = (delivered - created).to_std().unwrap();
        assert!(lag < Duration::from_secs(4), "the provider waited {lag:?} behind the slow bank");
    }
    wait_for("the bank's first attempt to time out", Duration::from_secs(15), async || {
        w.admin_notices("recipient=bank:bk").await[0]["last_error"].as_str().is_some_and(|e| e.contains("no answer within 5 s"))
    })
    .await;
    let bank = w.admin_notices("recipient=bank:bk").await;
    assert!(bank.iter().all(|n| n["state"] == "pending"), "timeouts are retried: {bank:?}");
    w.stop_jobs().await;
    slow.stop().await;
    quick.stop().await;
}

/// A world whose bank `bk` and four more banks (`hang1`..`hang4`) have their webhooks at
/// `hanging`, and whose provider has its webhook at `quick`; 2 quick and 2 slow delivery workers,
/// an attempt slow after 400 ms, a 5 s timeout; jobs not started. Answers the hanging banks.
async fn world_with_hanging_banks(hanging: &Receiver, quick: &Receiver) -> (Hooks, Vec<String>) {
    let w = Hooks::new(
        |s| {
            s.notices.timeout_secs = 5;
            s.notices.workers = 2;
            s.notices.slow_workers = 2;
            s.notices.slow_after_ms = 400;
        },
        Some(&hanging.url),
        Some(&quick.url),
        false,
    )
    .await;
    let mut hanging_banks = vec!["bk".to_string()];
    for i in 1..=4 {
        let id = format!("hang{i}");
        let bank = json!({"id": id, "name": "Hanging", "priority": 2, "apr_min": "0", "apr_max": "0.24",
                          "exposure_limit": "1000", "webhook_url": format!("{}/{i}", hanging.url)});
        w.app.admin_post("/v1/admin/banks", bank).await.expect(201);
        hanging_banks.push(id);
    }
    (w, hanging_banks)
}

/// From creation to delivery, of each of a recipient's delivered notices.
async fn delivery_lags(w: &Hooks, recipient: &str) -> Vec<Duration> {
    let lag = |n: &Value| {
        let at = |f: &str| chrono::DateTime::parse_from_rfc3339(n[f].as_str().unwrap()).unwrap();
        (at("delivered_at") - at("created_at")).to_std().unwrap()
    };
    w.admin_notices(&format!("recipient={recipient}&state=delivered")).await.iter().map(lag).collect()
}

/// More hanging receivers than delivery workers of both kinds (2 + 2): the bank `bk` and four
/// more accept requests and never answer. The provider's receiver answers at once: its notices
/// must not wait for the hanging attempts' 5 s timeout, and the hanging ones are still attempted.
#[actix_web::test]
async fn many_hanging_receivers_do_not_delay_a_healthy_one() {
    let hanging = Receiver::start(Mode::Sleep(Duration::from_secs(3600))).await;
    let quick = Receiver::start(Mode::Accept).await;
    let (mut w, hanging_banks) = world_with_hanging_banks(&hanging, &quick).await;
    let db = w.app.db().await;
    db.execute(
        "INSERT INTO notices (type, recipient_kind, recipient_id, data, state, next_attempt_at)
         SELECT 'test.hang', 'bank', id, '{}', 'pending', now() FROM unnest($1::text[]) id",
        &[&hanging_banks],
    )
    .await
    .unwrap();
    w.start_jobs();
    wait_for("the delivery workers to hang on the first receivers", Duration::from_secs(5), async || hanging.hits().len() >= 2).await;
    // Orders while the hanging receivers hold requests: each tells the provider (quick) and the
    // bank `bk` (hanging).
    for n in 1..=6 {
        w.order(n).await;
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    }
    wait_for("the provider's 6 notices recorded as delivered", Duration::from_secs(40), async || {
        delivery_lags(&w, "provider:wld").await.len() == 6
    })
    .await;
    let lags = delivery_lags(&w, "provider:wld").await;
    eprintln!("the provider's notices waited {lags:?} beside 5 hanging receivers");
    assert!(lags.iter().all(|l| *l < Duration::from_secs(2)), "the provider waited behind the hanging receivers: {lags:?}");

    // Every hanging recipient got a request. Two attempts moved to the slow workers (both free),
    // the three others were cut short and their recipients marked slow; the provider is quick.
    let paths = |hits: &[Hit]| hits.iter().map(|h| h.path.clone()).collect::<BTreeSet<_>>();
    assert_eq!(paths(&hanging.hits()).len(), 5, "every hanging recipient got a request: {:?}", paths(&hanging.hits()));
    let slow_lanes = async || -> Vec<String> {
        db.query("SELECT recipient_id FROM notice_lanes WHERE slow", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    };
    wait_for("the cut-short recipients marked slow", Duration::from_secs(5), async || slow_lanes().await.len() >= 3).await;
    let slow = slow_lanes().await;
    assert!(slow.iter().all(|id| hanging_banks.contains(id)), "{slow:?}");
    let text = metrics(&w.app).await;
    assert!(text.contains("creditphone_notice_attempts_total{outcome=\"cut_short\"} 3"), "{text}");

    // The receivers recover: the hanging recipients are not starved, each is tried again and
    // served, and becomes quick again.
    hanging.set_mode(Mode::Accept);
    wait_for("every notice delivered and no recipient slow", Duration::from_secs(20), async || {
        let sql = "SELECT (SELECT count(*) FROM notices WHERE state = 'pending') + (SELECT count(*) FROM notice_lanes WHERE slow)";
        db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) == 0
    })
    .await;
    let hits = hanging.hits();
    for path in paths(&hits) {
        assert!(hits.iter().filter(|h| h.path == path).count() >= 2, "{path}: the hanging request, then another one");
    }
    // Two attempts moved to the slow workers and ran to their timeout (counted); three were cut
    // short while both slow workers were busy (given back, not counted).
    let rows = db.query("SELECT attempts, last_error FROM notices WHERE type = 'test.hang' AND state = 'delivered'", &[]).await.unwrap();
    let mut outcomes: BTreeMap<(i32, String), usize> = BTreeMap::new();
    for r in &rows {
        let error: String = r.get(1);
        *outcomes.entry((r.get(0), error.split(" while").next().unwrap().to_string())).or_default() += 1;
    }
    let expected = [((1, "no answer within 400 ms".to_string()), 3), ((2, "no answer within 5 s".to_string()), 2)];
    assert_eq!(outcomes, BTreeMap::from(expected), "{rows:?}");
    w.stop_jobs().await;
    hanging.stop().await;
    quick.stop().await;
}

/// How many attempt rows each of `seqs` has, in that order.
async fn attempt_rows(db: &tokio_postgres::Client, seqs: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    for seq in seqs {
        out.push(db.query_one("SELECT count(*) FROM notice_attempts WHERE notice_seq = $1", &[seq]).await.unwrap().get(0));
    }
    out
}

#[actix_web::test]
async fn housekeeping_forgets_old_attempts_of_delivered_notices_but_keeps_a_dead_notices_history() {
    let rx = Receiver::start(Mode::Accept).await;
    let mut w = Hooks::new(|_| {}, Some(&rx.url), None, true).await;
    for n in 1..=3 {
        w.order(n).await;
    }
    wait_for("the bank's 3 notices delivered", Duration::from_secs(10), async || {
        w.admin_notices("recipient=bank:bk&state=delivered").await.len() == 3
    })
    .await;
    w.stop_jobs().await;
    let db = w.app.db().await;
    let seqs: Vec<i64> = db
        .query("SELECT seq FROM notices WHERE recipient_kind = 'bank' ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (old, dead) = (seqs[0], seqs[1]);
    // Past the default retention (30 days): the first notice's attempt and 2,500 more (more than
    // one purge batch); the second notice is dead, its attempts as old; the third's are today's.
    db.batch_execute(&format!(
        "INSERT INTO notice_attempts (notice_seq, attempt, attempted_at, delivered, status, error)
             SELECT {old}, g, now() - interval '40 days', false, 500, 'HTTP 500' FROM generate_series(2, 2501) g;
         UPDATE notice_attempts SET attempted_at = now() - interval '40 days' WHERE notice_seq IN ({old}, {dead});
         UPDATE notices SET state = 'dead', delivered_at = NULL, last_status = 302 WHERE seq = {dead};"
    ))
    .await
    .unwrap();
    assert_eq!(attempt_rows(&db, &seqs).await, [2501, 1, 1]);

    // Housekeeping runs once when the jobs start, then hourly.
    w.start_jobs();
    wait_for("the old attempts purged", Duration::from_secs(10), async || attempt_rows(&db, &[old]).await == [0]).await;
    assert_eq!(attempt_rows(&db, &seqs).await, [0, 1, 1], "a dead notice's attempts and recent ones stay");
    let dead_page = w.notice(&format!("ntc_{dead:016}")).await;
    assert_eq!(dead_page["state"], "dead");
    w.stop_jobs().await;

    // One purge statement deletes at most its limit.
    db.batch_execute(&format!(
        "INSERT INTO notice_attempts (notice_seq, attempt, attempted_at, delivered, status)
             SELECT {old}, g, now() - interval '40 days', true, 200 FROM generate_series(1, 3) g"
    ))
    .await
    .unwrap();
    let purge = async || creditphone::db::notices::purge_attempts(&db, 30, 2).await.unwrap();
    assert_eq!((purge().await, purge().await, purge().await), (2, 1, 0));
    assert_eq!(attempt_rows(&db, &seqs).await, [0, 1, 1]);
    rx.stop().await;
}

/// `n` pending notices to the bank straight into the outbox; their ids in creation order.
async fn burst_to_bank(db: &tokio_postgres::Client, n: i64) -> Vec<String> {
    db.query(
        "INSERT INTO notices (type, recipient_kind, recipient_id, data, state, next_attempt_at)
         SELECT 'test.burst', 'bank', 'bk', jsonb_build_object('n', g), 'pending', now() FROM generate_series(1, $1::int8) g
         RETURNING id",
        &[&n],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// How many of the bank's notices have had an attempt counted.
async fn bank_counted(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM notices WHERE recipient_kind = 'bank' AND attempts > 0", &[]).await.unwrap().get(0)
}

#[actix_web::test]
async fn the_next_run_is_counted_while_one_is_being_sent() {
    // Each answer takes 1.5 s (under `slow_after_ms`, so the recipient stays quick); runs of 2.
    let rx = Receiver::start(Mode::Sleep(Duration::from_millis(1500))).await;
    let mut w = Hooks::new(
        |s| {
            s.notices.timeout_secs = 10;
            s.notices.batch_size = 2;
        },
        Some(&rx.url),
        None,
        false,
    )
    .await;
    let db = w.app.db().await;
    let sent = burst_to_bank(&db, 4).await;
    w.start_jobs();
    wait_for("both runs counted", Duration::from_secs(10), async || bank_counted(&db).await == 4).await;
    assert_eq!(rx.hits().len(), 1, "the second run was counted while the first run's first attempt was unanswered");
    wait_for("the 4 notices delivered", Duration::from_secs(20), async || {
        w.admin_notices("recipient=bank:bk&state=delivered").await.len() == 4
    })
    .await;
    let hits: Vec<String> = rx.hits().iter().map(|h| h.event_id.clone()).collect();
    assert_eq!(hits, sent, "each once, in creation order");
    w.stop_jobs().await;
    rx.stop().await;
}

#[actix_web::test]
async fn a_failure_gives_back_the_run_counted_after_it_and_first_attempts_stay_in_order() {
    let rx = Receiver::start(Mode::FailFirstEvent(1)).await;
    let mut w = Hooks::new(|s| s.notices.batch_size = 3, Some(&rx.url), None, false).await;
    let db = w.app.db().await;
    let sent = burst_to_bank(&db, 10).await;
    w.start_jobs();
    wait_for("the 10 notices delivered", Duration::from_secs(15), async || {
        w.admin_notices("recipient=bank:bk&state=delivered").await.len() == 10
    })
    .await;
    let hits = rx.hits();
    let first: Vec<String> = hits.iter().filter(|h| h.attempt == "1").map(|h| h.event_id.clone()).collect();
    assert_eq!(first, sent, "first attempts once each, in creation order: {hits:?}");
    assert_eq!(rx.hits_of(&sent[0]).iter().map(|h| h.attempt.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(hits.len(), 11);
    // The run counted while the failing one was sent was given back uncounted.
    let attempts: Vec<i64> = w.admin_notices("recipient=bank:bk").await.iter().map(|n| n["attempts"].as_i64().unwrap()).collect();
    assert_eq!(attempts, [2, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    w.stop_jobs().await;
    rx.stop().await;
}

#[actix_web::test]
async fn two_instances_deliver_each_notice_once_in_order() {
    let rx = Receiver::start(Mode::Accept).await;
    let mut w = Hooks::new(|_| {}, Some(&rx.url), Some(&rx.url), true).await;
    let app2 = TestApp::start_on(w.app.pg.clone(), fast).await;
    let jobs2 = creditphone::jobs::spawn_all(app2.state.deps.clone());
    let started = Instant::now();
    for n in 1..=12 {
        w.order(n).await;
    }
    let placed = started.elapsed();
    wait_for("24 webhook notices delivered", Duration::from_secs(15), async || w.admin_notices("state=delivered").await.len() == 24).await;
    let hits = rx.hits();
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for h in &hits {
        *per_event.entry(h.event_id.clone()).or_default() += 1;
    }
    assert_eq!(per_event.len(), 24);
    assert!(per_event.values().all(|n| *n == 1), "each notice delivered once: {per_event:?}");
    for kind in ["bank", "provider"] {
        let seen: Vec<String> = hits.iter().filter(|h| h.json()["recipient"]["kind"] == kind).map(|h| h.event_id.clone()).collect();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "{kind}: first attempts in creation order across instances");
    }
    let delivered_by = |app: &TestApp| app.state.metrics.notice_attempts.with_label_values(&["delivered"]).get();
    assert_eq!(delivered_by(&w.app) + delivered_by(&app2), 24);
    eprintln!(
        "two instances: 12 orders placed in {placed:?}, 24 notices delivered {:?} after the first order (instance 1: {}, instance 2: {})",
        started.elapsed(),
        delivered_by(&w.app),
        delivered_by(&app2)
    );

    // A burst straight into the outbox: 300 notices to each recipient.
    let db = w.app.db().await;
    let burst = Instant::now();
    db.execute(
        "INSERT INTO notices (type, recipient_kind, recipient_id, data, state, next_attempt_at)
         SELECT 'test.burst', k, i, jsonb_build_object('n', n), 'pending', now()
         FROM generate_series(1, 300) n, (VALUES ('bank', 'bk'), ('provider', 'wld')) r(k, i) ORDER BY n, k",
        &[],
    )
    .await
    .unwrap();
    wait_for("the burst delivered", Duration::from_secs(30), async || {
        db.query_one("SELECT count(*) FROM notices WHERE state = 'pending'", &[]).await.unwrap().get::<_, i64>(0) == 0
    })
    .await;
    let took = burst.elapsed();
    eprintln!("burst: 600 notices to 2 recipients (per_recipient = 1) delivered in {took:?}, {:.0}/s", 600.0 / took.as_secs_f64());
    assert_eq!(rx.hits().len(), 624, "each once");
    jobs2.stop().await;
    w.stop_jobs().await;
    app2.stop().await;
    rx.stop().await;
}

#[actix_web::test]
async fn a_lost_instance_or_a_restart_loses_nothing() {
    let rx = Receiver::start(Mode::Accept).await;
    let mut w = Hooks::new(|_| {}, Some(&rx.url), None, false).await;
    w.order(1).await;
    w.order(2).await;
    let bank_ids = ids(&w.admin_notices("recipient=bank:bk").await);
    // The backlog gauge counts pending notices before they have a position and after.
    let mut db = w.app.db().await;
    assert_eq!(backlog_counts(&db).await.unwrap(), BacklogCounts { pending: 2, dead: 0 }, "not yet positioned");
    assert!(creditphone::db::notices::position_new(&mut db).await.unwrap() >= 2, "the two bank notices among them");
    assert_eq!(backlog_counts(&db).await.unwrap(), BacklogCounts { pending: 2, dead: 0 }, "positioned");
    // An instance died holding the bank's lane, in the middle of an attempt at the first notice.
    db.execute("UPDATE notices SET attempts = 1, next_attempt_at = now() + interval '2 seconds' WHERE id = $1", &[&bank_ids[0]])
        .await
        .unwrap();
    db.execute(
        "INSERT INTO notice_lanes (recipient_kind, recipient_id, leased_by, leased_until) VALUES ('bank', 'bk', 'crashed', now() + interval '2 seconds')",
        &[],
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    w.start_jobs();
    wait_for("both delivered after the lease ran out", Duration::from_secs(8), async || rx.hits().len() == 2).await;
    let hits = rx.hits();
    assert!(hits[0].at - t0 >= Duration::from_millis(1500), "nobody took the lane before its lease ended");
    assert_eq!(
        hits.iter().map(|h| (h.event_id.as_str(), h.attempt.as_str())).collect::<Vec<_>>(),
        [(bank_ids[0].as_str(), "2"), (bank_ids[1].as_str(), "1")]
    );
    // Stopped: notices wait in the outbox; started again: delivered.
    w.stop_jobs().await;
    w.order(3).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 2);
    assert_eq!(w.admin_notices("state=pending").await.len(), 1);
    w.start_jobs();
    wait_for("the notice left while stopped", Duration::from_secs(5), async || rx.hits().len() == 3).await;
    w.stop_jobs().await;
    rx.stop().await;
}

#[actix_web::test]
async fn the_feed_never_skips_a_notice_that_commits_late() {
    let w = Hooks::new(|_| {}, None, None, false).await;
    w.order(1).await;
    let first = w.app.get(&w.bank, "/v1/notices").await.expect(200);
    let last = ids(first["data"].as_array().unwrap()).pop().unwrap();
    // A slow transaction draws a notice id now and commits after a later one is read.
    let mut slow = w.app.db().await;
    let tx = slow.transaction().await.unwrap();
    let late: String = tx
        .query_one(
            "INSERT INTO notices (type, recipient_kind, recipient_id, data, state) VALUES ('test.late', 'bank', 'bk', '{}', 'pull_only') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    w.order(2).await;
    let second = w.app.get(&w.bank, &format!("/v1/notices?after={last}")).await.expect(200);
    let second = ids(second["data"].as_array().unwrap());
    assert_eq!(second.len(), 1, "order 2's funding.requested");
    assert!(late < second[0], "the late notice has the smaller id");
    tx.commit().await.unwrap();
    let third = w.app.get(&w.bank, &format!("/v1/notices?after={}", second[0])).await.expect(200);
    assert_eq!(ids(third["data"].as_array().unwrap()), std::slice::from_ref(&late), "the late notice comes next, not never");
    // The whole feed, paged, has every notice once.
    let mut all = Vec::new();
    let mut path = "/v1/notices?limit=1".to_string();
    loop {
        let page = w.app.get(&w.bank, &path).await.expect(200);
        all.extend(ids(page["data"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/notices?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], late);
}

/// A child process ended however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example receiver in docs/examples (Python standard library) verifies and deduplicates
/// real deliveries; with the `stripe` package installed, Stripe's verifier accepts them too.
#[actix_web::test]
async fn the_python_example_receiver_verifies_real_deliveries() {
    use std::io::BufRead;
    let python = std::env::var("CREDITPHONE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/webhook_receiver.py");
    let Ok(out) = std::process::Command::new(&python).args([script, "--self-test"]).output() else {
        eprintln!("skipped: no {python} on this machine");
        return;
    };
    assert!(out.status.success(), "self-test: {}", String::from_utf8_lossy(&out.stderr));

    let rx = Receiver::start(Mode::Accept).await;
    let mut w = Hooks::new(|_| {}, Some(&rx.url), Some("http://127.0.0.1:9/not-yet"), false).await;
    let secret = w.provider_secret.clone().unwrap();
    let mut child = KillOnDrop(
        std::process::Command::new(&python)
            .args([script, "--port", "0"])
            .env("CREDITPHONE_WEBHOOK_SECRET", &secret)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The test's runtime also runs the delivery workers: wait without blocking it.
    let next_line = async || {
        let start = Instant::now();
        loop {
            match lines.try_recv() {
                Ok(line) => return Some(line),
                Err(_) if start.elapsed() > Duration::from_secs(30) => return None,
                Err(_) => actix_web::rt::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    let url = next_line().await.expect("the receiver's address").strip_prefix("listening on ").expect("the receiver's address").to_string();
    let patched = w.app.admin().patch("/v1/admin/providers/wld", json!({"webhook_url": url})).await.expect(200);
    assert!(patched.get("webhook_secret").is_none(), "changing the URL keeps the secret");
    w.start_jobs();
    w.order(1).await;
    w.order(2).await;
    let mut events = Vec::new();
    for _ in 0..2 {
        let Some(line) = next_line().await else {
            panic!("no event at the Python receiver: {:?}", w.admin_notices("recipient=provider:wld").await);
        };
        events.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let feed = w.feed(&w.provider).await;
    assert_eq!(events.iter().map(|e| e["event"].as_str().unwrap().to_string()).collect::<Vec<_>>(), ids(&feed));
    assert!(events.iter().all(|e| e["duplicate"] == false && e["type"] == "hold.placed"));

    // A retry of the same event is acknowledged and skipped; tampering and stale timestamps are refused.
    let body = serde_json::to_vec(&feed[0]).unwrap();
    let now = chrono::Utc::now().timestamp();
    let post = |body: Vec<u8>, signature: String| {
        w.app
            .http
            .post(&url)
            .header("CreditPhone-Event-Id", feed[0]["id"].as_str().unwrap())
            .header("CreditPhone-Signature", signature)
            .body(body)
            .send()
    };
    let signed = creditphone::service::notices::signature_header(&secret, now, &body);
    assert_eq!(post(body.clone(), signed.clone()).await.unwrap().status(), 200);
    let dup: Value = serde_json::from_str(&next_line().await.expect("the duplicate's line")).unwrap();
    assert_eq!((dup["event"].as_str(), dup["duplicate"].as_bool()), (feed[0]["id"].as_str(), Some(true)));
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(post(tampered, signed).await.unwrap().status(), 400);
    let stale = creditphone::service::notices::signature_header(&secret, now - 301, &body);
    assert_eq!(post(body.clone(), stale).await.unwrap().status(), 400);
    drop(child);

    // Stripe's own verifier, where the package is installed, on a real delivery (to the bank).
    let has_stripe = std::process::Command::new(&python).args(["-c", "import stripe"]).output().is_ok_and(|o| o.status.success());
    if has_stripe {
        wait_for("a delivery to the bank", Duration::from_secs(5), async || !rx.hits().is_empty()).await;
        let hit = rx.hits().remove(0);
        let check =
            "import os, stripe; stripe.WebhookSignature.verify_header(os.environ['P'], os.environ['H'], os.environ['S'], tolerance=300)";
        let out = std::process::Command::new(&python)
            .args(["-c", check])
            .env("P", String::from_utf8(hit.body.clone()).unwrap())
            .env("H", &hit.signature)
            .env("S", w.bank_secret.as_deref().unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "stripe refused: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("stripe.WebhookSignature.verify_header accepted a delivered creditphone signature: {}", hit.signature);
    } else {
        eprintln!("stripe not installed for {python}: Stripe's own verifier not tried");
    }
    w.stop_jobs().await;
    rx.stop().await;
}

// ---------- reconciliation ----------

fn fen(s: &Value) -> i64 {
    let s = s.as_str().unwrap_or_else(|| panic!("money as a string: {s}"));
    let (int, dec) = s.split_once('.').expect("2 decimals");
    assert_eq!(dec.len(), 2, "{s}");
    int.parse::<i64>().unwrap() * 100 + dec.parse::<i64>().unwrap()
}

/// RFC 4180 records (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\n') => panic!("a bare LF line end"),
            (false, c) => field.push(c),
        }
    }
    assert!(row.is_empty() && field.is_empty(), "the last record ends with CRLF");
    rows
}

/// What the journal says was booked on `date` (for a bank or all), by movement kind:
/// (count, amount, principal, interest + fee + penalty) in fen.
async fn journal_totals(
    db: &tokio_postgres::Client,
    date: chrono::NaiveDate,
    bank: Option<&str>,
) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let rows = db
        .query(
            "SELECT CASE WHEN e.kind = 'plan.opened' THEN 'funding'
                         WHEN e.kind = 'repayment.recorded' THEN 'repayment'
                         WHEN e.kind = 'default.compensated' THEN 'compensation'
                         WHEN o.status = 'expired' THEN 'expiry'
                         WHEN o.status = 'cancelled' THEN 'cancellation'
                         WHEN o.status = 'rejected' THEN 'rejection' END AS kind,
                    count(DISTINCT e.id),
                    coalesce(sum(CASE WHEN e.kind = 'plan.opened' AND l.account = 'bank:' || e.bank_id || ':funded' THEN -l.amount_fen
                                      WHEN e.kind IN ('repayment.recorded', 'default.compensated') AND l.account = 'bank:' || e.bank_id || ':collected' THEN l.amount_fen
                                      WHEN e.kind = 'exposure.released' AND l.account = 'bank:' || e.bank_id || ':exposure' THEN -l.amount_fen END), 0)::int8,
                    coalesce(sum(CASE WHEN e.kind = 'plan.opened' AND l.account LIKE 'plan:%:principal' THEN l.amount_fen
                                      WHEN e.kind IN ('repayment.recorded', 'default.compensated') AND l.account LIKE 'plan:%:principal' THEN -l.amount_fen
                                      WHEN e.kind = 'exposure.released' AND l.account = 'bank:' || e.bank_id || ':exposure' THEN -l.amount_fen END), 0)::int8,
                    coalesce(sum(CASE WHEN l.account LIKE 'plan:%:income' THEN -l.amount_fen END), 0)::int8
             FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id LEFT JOIN orders o ON o.id = e.order_id
             WHERE e.booked_on = $1 AND ($2::text IS NULL OR e.bank_id = $2)
               AND e.kind IN ('plan.opened', 'repayment.recorded', 'default.compensated', 'exposure.released')
             GROUP BY 1",
            &[&date, &bank],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2), r.get(3), r.get(4)))).collect()
}

/// API.md §8 and §15 (v2): the six v1 kinds, then `return`, `write_off`, `recovery`.
const KINDS: [&str; 9] = ["funding", "repayment", "compensation", "expiry", "cancellation", "rejection", "return", "write_off", "recovery"];
const CSV_HEADER: &str = "kind,booked_on,value_date,bank_id,order_id,plan_id,loan_no,installment_seq,reference,amount,principal,interest,fee,\
penalty,count,refund,waived";

/// The JSON report and its CSV twin agree field by field, totals included.
fn assert_csv_matches(json_report: &Value, csv: &str) {
    assert!(!csv.starts_with('\u{feff}'), "no byte-order mark");
    let rows = parse_csv(csv);
    assert_eq!(rows[0].join(","), CSV_HEADER);
    let movements = json_report["movements"].as_array().unwrap();
    assert_eq!(rows.len(), 1 + movements.len() + KINDS.len());
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (row, m) in rows[1..].iter().zip(movements) {
        let expected: Vec<String> = CSV_HEADER.split(',').map(|k| if k == "count" { String::new() } else { text(&m[k]) }).collect();
        assert_eq!(row, &expected);
    }
    for (row, kind) in rows[1 + movements.len()..].iter().zip(KINDS) {
        let t = &json_report["totals"][kind];
        assert_eq!(row[0], format!("total_{kind}"));
        assert_eq!(row[1], json_report["business_date"].as_str().unwrap());
        assert_eq!(row[3], text(&json_report["bank_id"]));
        assert_eq!(row[9..14], ["amount", "principal", "interest", "fee", "penalty"].map(|k| text(&t[k])));
        assert_eq!(row[14], t["count"].to_string());
        assert_eq!(row[15..17], ["refund", "waived"].map(|k| text(&t[k])));
    }
}

struct Books {
    app: TestApp,
    store: String,
    bank_a: String,
    bank_b: String,
}

impl Books {
    /// Banks `bka` (APR 0.15-0.24, first) and `bkb` (APR 0-0.24); products at 0.18 (→ bka) and 0.10 (→ bkb).
    async fn new() -> Books {
        Self::with_app(TestApp::start().await).await
    }

    async fn with_app(app: TestApp) -> Books {
        let product = |id: &str, rate: &str| merged(product_body(id), json!({"name": id, "terms": [{"months": 12, "rate": rate}]}));
        let w = World::empty()
            .provider("wld", json!({"name": "微粒贷"}))
            .bank("bka", json!({"name": "bka", "apr_min": "0.15"}))
            .bank("bkb", json!({"name": "bkb", "priority": 2}))
            .store("st", "440305")
            .product(product("p18", "0.18"))
            .product(product("p10", "0.10"))
            .line("wld", 9, "1000000")
            .build(&app)
            .await;
        let (store, bank_a, bank_b) = (w.store().key.clone(), w.key("bka").key.clone(), w.key("bkb").key.clone());
        Books { app, store, bank_a, bank_b }
    }

    async fn order(&self, n: u32, product: &str) -> String {
        let o = self.app.client(&self.store).place_order(order_body(&format!("R-{n}"), product, 9, 1000 + u64::from(n))).await;
        o.expect(201)["id"].as_str().unwrap().to_string()
    }

    /// Funds an order on `date` (the order placed while the service's today was `date`); answers the plan id.
    async fn fund_on(&self, order: &str, key: &str, loan_no: &str, date: &str) -> String {
        self.app.client(key).fund(order, loan_no, date).await.expect(200)["plan"]["id"].as_str().unwrap().to_string()
    }

    async fn eod(&self, date: &str) -> Value {
        self.app.admin().eod(date).await.expect(200)
    }

    async fn report(&self, key: &str, date: &str, query: &str) -> Resp {
        self.app.get(key, &format!("/v1/reconciliation/{date}{query}")).await
    }

    async fn csv(&self, key: &str, date: &str, query: &str) -> (u16, String, Vec<u8>) {
        let res = self
            .app
            .http
            .get(format!("{}/v1/reconciliation/{date}{query}", self.app.url))
            .bearer_auth(key)
            .header("Accept", "text/csv")
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (status, content_type, res.bytes().await.unwrap().to_vec())
    }
}

#[actix_web::test]
async fn reconciliation_agrees_with_the_journal_in_json_and_csv_and_never_changes_once_closed() {
    let b = Books::new().await;
    let admin = b.app.admin_key.clone();
    b.app.set_today("2027-01-31");
    let o1 = b.order(1, "p18").await;
    let o2 = b.order(2, "p10").await;
    let plan1 = b.fund_on(&o1, &b.bank_a, "L-1", "2027-01-31").await;
    let plan2 = b.fund_on(&o2, &b.bank_b, "L-2", "2027-01-31").await;
    b.app.clock.reset();
    let o3 = b.order(3, "p18").await;
    let o4 = b.order(4, "p18").await;
    let o5 = b.order(5, "p18").await;
    b.app.post(&b.store, &format!("/v1/orders/{o3}/cancel"), json!({"reason": "changed mind"})).await.expect(200);
    b.app.post(&b.bank_a, &format!("/v1/orders/{o4}/funding"), json!({"decision": "rejected", "reason": "kyc"})).await.expect(200);
    let decided: chrono::NaiveDate =
        b.app.db().await.query_one("SELECT decided_on FROM orders WHERE id = $1", &[&o3]).await.unwrap().get(0);
    let decided = decided.to_string();

    // Before any end of day: cancellations and rejections are booked on their decision's date, still open.
    let open = b.report(&admin, &decided, "").await.expect(200);
    assert_eq!(open["closed"], false);
    assert_eq!(
        open["movements"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        ["cancellation", "rejection"]
    );

    let eod = b.eod("2027-01-31").await;
    assert_eq!(eod["holds_expired"], 1, "o5 was never funded");
    let closed_csv = b.csv(&admin, "2027-01-31", "").await;
    let closed_json = b.report(&admin, "2027-01-31", "").await.expect(200);

    // After the close: a late repayment valued on the closed date is booked on the next open one.
    b.app
        .post(
            &b.bank_b,
            &format!("/v1/plans/{plan2}/repayments"),
            json!({"amount": "10.00", "paid_on": "2027-01-31", "reference": "late,\"1\""}),
        )
        .await
        .expect(201);
    let first = b.app.get(&b.bank_a, &format!("/v1/plans/{plan1}")).await.expect(200)["installments"][0].clone();
    let due1 = fen(&first["principal"]) + fen(&first["interest"]);
    b.app
        .post(
            &b.bank_a,
            &format!("/v1/plans/{plan1}/repayments"),
            json!({"amount": format!("{}.{:02}", due1 / 100, due1 % 100), "paid_on": "2027-02-28", "reference": "R1"}),
        )
        .await
        .expect(201);
    // o2's first installment is short: after 3 days of grace the hold pays it.
    let eod = b.eod("2027-03-03").await;
    assert_eq!(eod["compensations"]["count"], 1, "{eod}");

    // A closed date answers the same bytes every time, whatever happened since.
    assert_eq!(b.csv(&admin, "2027-01-31", "").await, closed_csv);
    assert_eq!(b.csv(&admin, "2027-01-31", "").await, closed_csv);
    assert_eq!(b.report(&admin, "2027-01-31", "").await.expect(200), closed_json);
    let (status, content_type, bytes) = &closed_csv;
    assert_eq!((*status, content_type.as_str()), (200, "text/csv; charset=utf-8"));
    assert_csv_matches(&closed_json, std::str::from_utf8(bytes).unwrap());

    // Every movement kind, with its fields filled.
    let day = |date: &str| {
        let b = &b;
        let admin = admin.clone();
        let date = date.to_string();
        async move { b.report(&admin, &date, "").await.expect(200) }
    };
    let jan31 = day("2027-01-31").await;
    let kinds: Vec<(&str, &str, &str)> = jan31["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["bank_id"].as_str().unwrap(), m["order_id"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("funding", "bka", o1.as_str()), ("funding", "bkb", o2.as_str()), ("expiry", "bka", o5.as_str())]);
    let funding = &jan31["movements"][0];
    assert_eq!(
        (funding["plan_id"].as_str(), funding["loan_no"].as_str(), funding["value_date"].as_str()),
        (Some(plan1.as_str()), Some("L-1"), Some("2027-01-31"))
    );
    assert_eq!(
        (funding["amount"].as_str(), funding["principal"].as_str(), funding["interest"].as_str()),
        (Some("3000.00"), Some("3000.00"), Some("0.00"))
    );
    let expiry = &jan31["movements"][2];
    assert_eq!(
        (expiry["value_date"].as_str(), expiry["principal"].as_str(), expiry["plan_id"].is_null()),
        (Some("2027-01-31"), Some("3000.00"), true)
    );
    assert_eq!((jan31["closed"].as_bool(), jan31["bank_id"].is_null()), (Some(true), true));

    let cancel_day = day(&decided).await;
    let m = cancel_day["movements"].as_array().unwrap();
    assert_eq!(
        (m[0]["kind"].as_str(), m[0]["order_id"].as_str(), m[0]["value_date"].as_str()),
        (Some("cancellation"), Some(o3.as_str()), Some(decided.as_str()))
    );
    assert_eq!(
        (m[1]["kind"].as_str(), m[1]["order_id"].as_str(), m[1]["amount"].as_str()),
        (Some("rejection"), Some(o4.as_str()), Some("3000.00"))
    );

    let feb1 = day("2027-02-01").await;
    let late = &feb1["movements"][0];
    assert_eq!(feb1["movements"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            late["kind"].as_str(),
            late["booked_on"].as_str(),
            late["value_date"].as_str(),
            late["reference"].as_str(),
            late["loan_no"].as_str()
        ),
        (Some("repayment"), Some("2027-02-01"), Some("2027-01-31"), Some("late,\"1\""), Some("L-2"))
    );
    assert!(
        late["repayment_id"].as_str().unwrap().starts_with("rep_") && late["plan_id"] == plan2.as_str() && late["order_id"] == o2.as_str()
    );
    assert_eq!(fen(&late["amount"]), fen(&late["principal"]) + fen(&late["interest"]) + fen(&late["fee"]) + fen(&late["penalty"]));
    assert_csv_matches(&feb1, std::str::from_utf8(&b.csv(&admin, "2027-02-01", "").await.2).unwrap());

    let mar3 = day("2027-03-03").await;
    let comp = &mar3["movements"][0];
    assert_eq!(
        (
            comp["kind"].as_str(),
            comp["bank_id"].as_str(),
            comp["plan_id"].as_str(),
            comp["installment_seq"].as_i64(),
            comp["value_date"].as_str()
        ),
        (Some("compensation"), Some("bkb"), Some(plan2.as_str()), Some(1), Some("2027-03-03"))
    );
    assert_eq!(fen(&comp["amount"]), fen(&comp["principal"]) + fen(&comp["interest"]) + fen(&comp["fee"]) + fen(&comp["penalty"]));
    assert!(fen(&comp["penalty"]) > 0, "penalty accrued over the grace days: {comp}");
    assert_eq!(fen(&mar3["totals"]["compensation"]["amount"]), fen(&eod["compensations"]["amount"]));

    // Totals equal the journal's, for every date, for each bank and for all.
    let db = b.app.db().await;
    for date in [decided.as_str(), "2027-01-31", "2027-02-01", "2027-02-28", "2027-03-03", "2027-03-04"] {
        for (bank, key, query) in
            [(None, &admin, String::new()), (Some("bka"), &b.bank_a, String::new()), (Some("bkb"), &admin, "?bank_id=bkb".to_string())]
        {
            let report = b.report(key, date, &query).await.expect(200);
            assert_eq!(report["bank_id"].as_str(), bank);
            assert!(report["movements"].as_array().unwrap().iter().all(|m| bank.is_none_or(|bk| m["bank_id"] == bk)));
            let journal = journal_totals(&db, date.parse().unwrap(), bank).await;
            for kind in KINDS {
                let t = &report["totals"][kind];
                let (count, amount, principal, income) = journal.get(kind).copied().unwrap_or_default();
                let ours = (
                    t["count"].as_i64().unwrap(),
                    fen(&t["amount"]),
                    fen(&t["principal"]),
                    fen(&t["interest"]) + fen(&t["fee"]) + fen(&t["penalty"]),
                );
                assert_eq!(ours, (count, amount, principal, income), "{date} {bank:?} {kind}");
                let listed = report["movements"].as_array().unwrap().iter().filter(|m| m["kind"] == kind).count() as i64;
                assert_eq!(listed, count);
            }
            let csv = b.csv(key, date, &query).await;
            assert_csv_matches(&report, std::str::from_utf8(&csv.2).unwrap());
        }
    }
    let later = day("2027-03-04").await;
    assert_eq!((later["closed"].as_bool(), later["movements"].as_array().unwrap().len()), (Some(false), 0));
    assert_eq!(day("2027-03-03").await["closed"], true);

    let v = b.app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(v["ok"], true, "{v}");
}

/// Who may ask for a reconciliation, and how: the admin (all banks or one), a bank for its own
/// movements only; a store is refused, another bank's id is not found, a malformed date named.
#[actix_web::test]
async fn reconciliation_is_for_the_admin_and_each_bank_of_its_own_movements() {
    let b = Books::new().await;
    let admin = b.app.admin_key.clone();
    b.app.set_today("2027-01-31");
    let (o1, o2) = (b.order(1, "p18").await, b.order(2, "p10").await);
    b.fund_on(&o1, &b.bank_a, "L-1", "2027-01-31").await;
    b.fund_on(&o2, &b.bank_b, "L-2", "2027-01-31").await;
    b.app.clock.reset();
    b.eod("2027-01-31").await;
    b.report(&b.store, "2027-01-31", "").await.expect_err(403, "forbidden");
    b.report(&b.bank_a, "2027-01-31", "?bank_id=bkb").await.expect_err(404, "not_found");
    assert_eq!(b.report(&b.bank_a, "2027-01-31", "?bank_id=bka").await.expect(200)["bank_id"], "bka");
    b.report(&admin, "2027-01-31", "?bank_id=nope").await.expect_err(404, "not_found");
    for bad in ["2027-02-30", "20270131", "yesterday"] {
        let r = b.report(&b.bank_a, bad, "").await;
        r.expect_err(422, "invalid_date");
        assert_eq!(r.field(), Some("business_date"));
    }
    let bank_b_view = b.report(&b.bank_b, "2027-01-31", "").await.expect(200);
    assert_eq!(bank_b_view["movements"].as_array().unwrap().len(), 1);
    assert_eq!(bank_b_view["movements"][0]["order_id"], o2.as_str(), "bkb sees its own funding only");
}

/// API.md §8 (v2, issue 15): within one end of day, funding expiries come first, in order of
/// the orders' creation (not of their deadlines), then conversions, plans in the order of their
/// creation (not of their orders' nor their ids), each plan's installments in due order — in the
/// JSON movements and the CSV rows alike, across end of day's chunks (two plans a chunk here).
#[actix_web::test]
async fn one_end_of_day_books_expiries_by_order_creation_then_conversions_by_plan_creation() {
    let b = Books::with_app(TestApp::start_with(|s| s.eod.chunk_size = 2).await).await;
    let admin = b.app.admin_key.clone();
    let mut quick = json!({"id": "p18q", "name": "p18q", "pricing": "interest", "terms": [{"months": 12, "rate": "0.18"}],
                           "providers": ["wld"], "regions": ["44"], "min_principal": "500", "max_principal": "20000"});
    quick["funding_timeout_hours"] = json!(1);
    b.app.admin_post("/v1/admin/products", quick).await.expect(201);
    b.app.set_today("2027-01-31");
    // Each later order's deadline is earlier: 72 hours, then 1 hour, then 72, then 1.
    let mut expiring = Vec::new();
    for (n, product) in [(1, "p18"), (2, "p18q"), (3, "p18"), (4, "p18q")] {
        expiring.push(b.order(n, product).await);
    }
    let mut funded_orders = Vec::new();
    for n in 11..17 {
        funded_orders.push(b.order(n, "p18").await);
    }
    // Plans are created in the reverse order of their orders.
    let mut plans = Vec::new();
    for (i, o) in funded_orders.iter().enumerate().rev() {
        plans.push(b.fund_on(o, &b.bank_a, &format!("L-{i}"), "2027-01-31").await);
    }
    b.app.clock.reset();
    // Nothing paid: installments 1 (due 02-28) and 2 (due 03-31) convert in one end of day.
    let eod = b.eod("2027-04-03").await;
    assert_eq!((eod["holds_expired"].as_i64(), eod["compensations"]["count"].as_i64()), (Some(4), Some(12)), "{eod}");
    let report = b.report(&admin, "2027-04-03", "").await.expect(200);
    let booked: Vec<(String, String, Option<i64>)> = report["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = if m["kind"] == "expiry" { &m["order_id"] } else { &m["plan_id"] };
            (m["kind"].as_str().unwrap().to_string(), id.as_str().unwrap().to_string(), m["installment_seq"].as_i64())
        })
        .collect();
    let mut expected: Vec<(String, String, Option<i64>)> = expiring.iter().map(|o| ("expiry".into(), o.clone(), None)).collect();
    for p in &plans {
        for seq in [1, 2] {
            expected.push(("compensation".into(), p.clone(), Some(seq)));
        }
    }
    assert_eq!(booked, expected, "booking order of one end of day");
    assert_csv_matches(&report, std::str::from_utf8(&b.csv(&admin, "2027-04-03", "").await.2).unwrap());
    let v = b.app.admin_get("/v1/admin/ledger/verify").await.expect(200);
    assert_eq!(v["ok"], true, "{v}");
}

/// API.md §8 (issue 15): a reconciliation for a date after today is `422 invalid_date` unless
/// configuration allows future dates; who may see which bank is decided first (404), as §1's
/// order of checks puts objects before checks against the clock.
#[actix_web::test]
async fn a_reconciliation_for_a_future_date_is_refused_unless_future_dates_are_allowed() {
    let b = Books::with_app(TestApp::start_with(|s| s.clock.allow_future_dates = false).await).await;
    let admin = b.app.admin_key.clone();
    b.app.set_today("2027-01-31");
    assert_eq!(b.report(&b.bank_a, "2027-01-31", "").await.expect(200)["closed"], false, "today is open, not refused");
    b.report(&admin, "2027-01-30", "?bank_id=bka").await.expect(200);
    for (key, query) in [(&b.bank_a, ""), (&admin, ""), (&admin, "?bank_id=bkb")] {
        let r = b.report(key, "2027-02-01", query).await;
        r.expect_err(422, "invalid_date");
        assert_eq!(r.field(), Some("business_date"), "{}", r.body);
        let (status, _, body) = b.csv(key, "2027-02-01", query).await;
        assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    }
    b.report(&b.bank_a, "2027-02-01", "?bank_id=bkb").await.expect_err(404, "not_found");
    b.report(&admin, "2027-02-01", "?bank_id=nope").await.expect_err(404, "not_found");
    b.report(&b.store, "2027-02-01", "").await.expect_err(403, "forbidden");
    b.app.clock.reset();

    // Where configuration allows future dates (test environments), the date answers as usual.
    let open = Books::new().await;
    let tomorrow = (creditphone::domain::shanghai_date(chrono::Utc::now()) + chrono::Duration::days(1)).to_string();
    let r = open.report(&open.app.admin_key, &tomorrow, "").await.expect(200);
    assert_eq!((r["closed"].as_bool(), r["movements"].as_array().map(Vec::len)), (Some(false), Some(0)));
}

// ---------- partner statement ----------

#[actix_web::test]
async fn partner_statement_counts_events_in_their_month_and_sums_referral_fees() {
    let app = TestApp::start().await;
    let w = World::standard()
        .no_lines()
        .partner(partner_body("pa", &["wld"], &["44"]))
        .partner(partner_body("pb", &["wld"], &["44"]))
        .product_extra(json!({"partner_referral_fee": "30"}))
        .line("wld", 5, "1000000")
        .build(&app)
        .await;
    let (pa, pb, bank, store_key) = (w.key("pa").key.clone(), w.key("pb").key.clone(), w.bank().key.clone(), w.store().key.clone());
    let order = async |n: u32, agent: &str| -> String {
        let body =
            merged(order_body(&format!("PA-{n}"), "p12", 5, 2000 + u64::from(n)), json!({"region_code": "440305", "agent_id": agent}));
        let o = app.client(&pa).place_order(body).await.expect(201);
        o["id"].as_str().unwrap().to_string()
    };
    // Each event happens on its own date: the service's today is set to it.
    let fund = async |id: &str, loan: &str, date: &str| {
        app.set_today(date);
        app.client(&bank).fund(id, loan, date).await.expect(200);
    };
    let placed_on = async |n: u32, agent: &str, date: &str| {
        app.set_today(date);
        order(n, agent).await
    };
    // Agent a-1: three placed in November 2027; two funded (one in November, one on 1 December); one cancelled.
    let a1 = placed_on(1, "a-1", "2027-11-10").await;
    let a2 = placed_on(2, "a-1", "2027-11-30").await;
    let a3 = placed_on(3, "a-1", "2027-11-12").await;
    fund(&a1, "L1", "2027-11-11").await;
    fund(&a2, "L2", "2027-12-01").await;
    app.set_today("2027-11-12");
    app.post(&pa, &format!("/v1/orders/{a3}/cancel"), json!({})).await.expect(200);
    // Agent a-2: one rejected, one expired by the end of day of 2027-11-20.
    let b1 = placed_on(4, "a-2", "2027-11-02").await;
    app.post(&bank, &format!("/v1/orders/{b1}/funding"), json!({"decision": "rejected", "reason": "kyc"})).await.expect(200);
    let _b2 = placed_on(5, "a-2", "2027-11-15").await;
    app.clock.reset();
    let eod = app.admin().eod("2027-11-20").await.expect(200);
    assert_eq!(eod["holds_expired"], 1);

    let nov = app.get(&pa, "/v1/partners/pa/statement?month=2027-11").await.expect(200);
    assert_eq!(
        nov,
        json!({"partner_id": "pa", "month": "2027-11", "agents": [
            {"agent_id": "a-1", "placed": 3, "funded": 1, "cancelled": 1, "rejected": 0, "expired": 0, "returned": 0, "funded_principal": "3000.00", "referral_fees": "30.00"},
            {"agent_id": "a-2", "placed": 2, "funded": 0, "cancelled": 0, "rejected": 1, "expired": 1, "returned": 0, "funded_principal": "0.00", "referral_fees": "0.00"}],
            "total": {"placed": 5, "funded": 1, "cancelled": 1, "rejected": 1, "expired": 1, "returned": 0, "funded_principal": "3000.00", "referral_fees": "30.00"}})
    );
    let dec = app.admin_get("/v1/partners/pa/statement?month=2027-12").await.expect(200);
    assert_eq!(
        dec["agents"],
        json!([{"agent_id": "a-1", "placed": 0, "funded": 1, "cancelled": 0, "rejected": 0, "expired": 0, "returned": 0, "funded_principal": "3000.00", "referral_fees": "30.00"}])
    );
    let empty = app.get(&pb, "/v1/partners/pb/statement?month=2027-11").await.expect(200);
    assert_eq!((empty["agents"].clone(), empty["total"]["referral_fees"].clone()), (json!([]), json!("0.00")));

    app.get(&pb, "/v1/partners/pa/statement?month=2027-11").await.expect_err(404, "not_found");
    app.get(&store_key, "/v1/partners/pa/statement?month=2027-11").await.expect_err(403, "forbidden");
    app.admin_get("/v1/partners/nope/statement?month=2027-11").await.expect_err(404, "not_found");
    for bad in ["2027-13", "2027-1", "nov", "2027-11-01"] {
        let r = app.get(&pa, &format!("/v1/partners/pa/statement?month={bad}")).await;
        r.expect_err(422, "invalid_date");
        assert_eq!(r.field(), Some("month"));
    }
    app.get(&pa, "/v1/partners/pa/statement").await.expect_err(422, "invalid_request");
    app.get(&pb, "/v1/partners/pa/statement?month=bad").await.expect_err(422, "invalid_date");
}

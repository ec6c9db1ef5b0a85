//! One world for every test file: the setup data (providers, banks, stores, partners, products),
//! an API key per principal and the customers' credit lines, built through the public API and
//! answered as typed handles, so that a test names the world it needs instead of writing it.
//!
//! `World::standard()` is the world most tests start from; a test that needs more or other parts
//! says so with the builder's options (`bank`, `store`, `partner`, `product_extra`, `line`, …),
//! never with a copy of the setup.

use super::{Resp, TestApp, id_number, imei, phone};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Far enough ahead that no test's line expires while it runs.
pub const FAR: &str = "2035-12-31";

/// A caller of the API holding its key: the typed helpers name the operation, not its method,
/// path and headers.
#[derive(Clone)]
pub struct Client {
    pub key: String,
    http: reqwest::Client,
    url: String,
}

/// What a test asks of the service, exactly as it is to be sent.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub key: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    pub idem: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
}

/// One request to the service; `TestApp::call_raw` and every `Client` send through it.
pub(crate) async fn send(http: &reqwest::Client, url: &str, r: Request<'_>) -> Resp {
    let Request { method, path, key, body, idem, headers } = r;
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http.request(method, format!("{url}{path}"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(i) = idem {
        req = req.header("Idempotency-Key", i);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b);
    }
    let res = req.send().await.expect("request reaches the service");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, body, headers }
}

impl Client {
    pub fn new(app: &TestApp, key: &str) -> Client {
        Client::at(&app.http, &app.url, key)
    }

    /// A client of a service at `url` (an in-process `TestApp` or a spawned binary).
    pub fn at(http: &reqwest::Client, url: &str, key: &str) -> Client {
        Client { key: key.to_string(), http: http.clone(), url: url.to_string() }
    }

    /// A new API key for a principal (an admin client); answers its id and its secret.
    pub async fn new_key(&self, principal: Value, rate_limit_per_minute: Option<u32>) -> (String, String) {
        let mut body = json!({ "principal": principal });
        if let Some(r) = rate_limit_per_minute {
            body["rate_limit_per_minute"] = json!(r);
        }
        let made = self.call("POST", "/v1/admin/api-keys", Some(&body), None).await.expect(201);
        (made["id"].as_str().expect("a key id").to_string(), made["key"].as_str().expect("a key").to_string())
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>, idem: Option<&str>) -> Resp {
        let raw = body.map(|b| serde_json::to_vec(b).expect("json"));
        let request = Request { method, path, key: Some(&self.key), body: raw, idem, headers: &[] };
        send(&self.http, &self.url, request).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None, None).await
    }

    /// A POST with a fresh idempotency key.
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        let idem = format!("k-{}", uuid::Uuid::new_v4().simple());
        self.call("POST", path, Some(&body), Some(&idem)).await
    }

    pub async fn post_idem(&self, path: &str, body: Value, idem: &str) -> Resp {
        self.call("POST", path, Some(&body), Some(idem)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(&body), None).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None, None).await
    }

    // ---- credit lines (provider) ----

    pub async fn register_line(&self, body: Value) -> Resp {
        self.post("/v1/credit-lines", body).await
    }

    pub async fn line(&self, id: &str) -> Resp {
        self.get(&format!("/v1/credit-lines/{id}")).await
    }

    // ---- orders (store, partner; banks read them) ----

    /// A quote (not an idempotent operation: no key is sent).
    pub async fn quote(&self, body: Value) -> Resp {
        self.call("POST", "/v1/quotes", Some(&body), None).await
    }

    pub async fn place_order(&self, body: Value) -> Resp {
        self.post("/v1/orders", body).await
    }

    pub async fn order(&self, id: &str) -> Resp {
        self.get(&format!("/v1/orders/{id}")).await
    }

    pub async fn cancel(&self, order: &str, reason: &str) -> Resp {
        self.post(&format!("/v1/orders/{order}/cancel"), json!({"reason": reason})).await
    }

    // ---- funding and plans (bank) ----

    pub async fn fund(&self, order: &str, loan_no: &str, funded_on: &str) -> Resp {
        let body = json!({"decision": "approved", "loan_no": loan_no, "funded_on": funded_on});
        self.post(&format!("/v1/orders/{order}/funding"), body).await
    }

    pub async fn reject(&self, order: &str, reason: &str) -> Resp {
        self.post(&format!("/v1/orders/{order}/funding"), json!({"decision": "rejected", "reason": reason})).await
    }

    pub async fn repay(&self, plan: &str, amount: &str, paid_on: &str, reference: &str) -> Resp {
        let body = json!({"amount": amount, "paid_on": paid_on, "reference": reference});
        self.post(&format!("/v1/plans/{plan}/repayments"), body).await
    }

    pub async fn plan(&self, id: &str) -> Resp {
        self.get(&format!("/v1/plans/{id}")).await
    }

    pub async fn payoff(&self, plan: &str, as_of: &str) -> Resp {
        self.get(&format!("/v1/plans/{plan}/payoff?as_of={as_of}")).await
    }

    pub async fn accelerate(&self, plan: &str, as_of: &str, reason: &str) -> Resp {
        self.post(&format!("/v1/plans/{plan}/accelerate"), json!({"as_of": as_of, "reason": reason})).await
    }

    /// A GET with extra headers (`Accept: text/csv`, `If-None-Match`); a body that is not JSON
    /// (CSV) is the answer's `body` as a JSON string.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        send(&self.http, &self.url, Request { method: "GET", path, key: Some(&self.key), body: None, idem: None, headers }).await
    }

    /// `POST /v1/plans/{id}/write-off` (API.md §14).
    pub async fn write_off(&self, plan: &str, on: &str, reason: &str, reference: &str) -> Resp {
        self.post(&format!("/v1/plans/{plan}/write-off"), json!({"written_off_on": on, "reason": reason, "reference": reference})).await
    }

    /// `POST /v1/plans/{id}/recoveries` (API.md §14).
    pub async fn recover(&self, plan: &str, amount: &str, paid_on: &str, reference: &str) -> Resp {
        self.post(&format!("/v1/plans/{plan}/recoveries"), json!({"amount": amount, "paid_on": paid_on, "reference": reference})).await
    }

    // ---- device returns (API.md §13) ----

    /// `POST /v1/orders/{id}/returns` of `body` (see [`return_body`]).
    pub async fn request_return(&self, order: &str, body: Value) -> Resp {
        self.post(&format!("/v1/orders/{order}/returns"), body).await
    }

    /// The bank completes return `ret` on `completed_on`.
    pub async fn complete_return(&self, ret: &str, completed_on: &str) -> Resp {
        self.post(&format!("/v1/returns/{ret}/decision"), json!({"decision": "completed", "completed_on": completed_on})).await
    }

    /// The bank rejects return `ret`.
    pub async fn reject_return(&self, ret: &str, reason: &str) -> Resp {
        self.post(&format!("/v1/returns/{ret}/decision"), json!({"decision": "rejected", "reason": reason})).await
    }

    pub async fn return_of(&self, ret: &str) -> Resp {
        self.get(&format!("/v1/returns/{ret}")).await
    }

    /// Every return of an order, newest first, following cursors.
    pub async fn returns_of_order(&self, order: &str) -> Vec<Value> {
        self.all_pages(&format!("/v1/orders/{order}/returns?limit=1")).await
    }

    // ---- notices and operations ----

    /// The caller's whole pull feed, following cursors.
    pub async fn notices(&self) -> Vec<Value> {
        self.all_pages("/v1/notices?limit=200").await
    }

    /// Every item of a listing, following `next_cursor` (`path` carries its query, with `limit`).
    pub async fn all_pages(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = path.to_string();
        loop {
            let page = self.get(&next).await.expect(200);
            out.extend(page["data"].as_array().expect("a page of data").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => next = format!("{path}&cursor={c}"),
                None => return out,
            }
        }
    }

    /// End of day for `date` (an admin client).
    pub async fn eod(&self, date: &str) -> Resp {
        self.call("POST", "/v1/admin/eod", Some(&json!({"business_date": date})), None).await
    }

    /// The ledger check (an admin client); it must find nothing.
    pub async fn verify_ok(&self) -> Value {
        let v = self.get("/v1/admin/ledger/verify").await.expect(200);
        assert_eq!(v["ok"], json!(true), "the ledger verifies: {v}");
        assert_eq!(v["violations"], json!([]), "{v}");
        v
    }

    // ---- the provider's confirmation of a hold (API.md §12) ----

    pub async fn acknowledge_hold(&self, hold: &str, sign_url: &str, provider_order_no: Option<&str>) -> Resp {
        let body = json!({"sign_url": sign_url, "provider_order_no": provider_order_no});
        self.post(&format!("/v1/holds/{hold}/acknowledge"), body).await
    }

    pub async fn confirm_hold(&self, hold: &str, amount: &str, provider_order_no: &str) -> Resp {
        self.post(&format!("/v1/holds/{hold}/confirm"), json!({"amount": amount, "provider_order_no": provider_order_no})).await
    }

    pub async fn decline_hold(&self, hold: &str, reason: &str) -> Resp {
        self.post(&format!("/v1/holds/{hold}/decline"), json!({"reason": reason})).await
    }
}

/// `base` with every field of `extra` set over it.
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let Value::Object(fields) = extra {
        for (k, v) in fields {
            base[k] = v;
        }
    }
    base
}

/// A bank of the default terms (APR 0 to 0.24, priority 1, no regions: it funds everywhere).
pub fn bank_body(id: &str) -> Value {
    json!({"id": id, "name": "Bank", "priority": 1, "apr_min": "0", "apr_max": "0.24", "exposure_limit": "10000000"})
}

/// The product most tests sell: 12 months at 0.18, interest pricing, provider wld, region 44.
pub fn product_body(id: &str) -> Value {
    json!({"id": id, "name": "12期", "pricing": "interest", "terms": [{"months": 12, "rate": "0.18"}],
           "providers": ["wld"], "regions": ["44"], "min_principal": "500", "max_principal": "20000"})
}

/// A partner of good standing (established 800 days ago, deposit paid, no violation).
pub fn partner_body(id: &str, providers: &[&str], regions: &[&str]) -> Value {
    let established = creditphone::domain::shanghai_date(chrono::Utc::now()) - chrono::Duration::days(800);
    json!({"id": id, "name": "Agent Co", "established_on": established.to_string(), "deposit_paid": "3000000.00",
           "authorized_providers": providers, "major_violation_last_year": false, "regions": regions})
}

/// A registration of customer `seed`'s credit line.
pub fn line_body(seed: u64, limit: &str, expires_on: &str) -> Value {
    json!({"customer": {"id_number": id_number(seed), "phone": phone(seed)}, "limit": limit, "expires_on": expires_on})
}

/// A store order of principal 3000.00 (device 3999, down payment 999) over 12 months on
/// `product` for customer `seed`, with the IMEI of `device`.
pub fn order_body(no: &str, product: &str, seed: u64, device: u64) -> Value {
    json!({"out_order_no": no, "product_id": product, "term_months": 12,
           "customer": {"id_number": id_number(seed), "phone": phone(seed)},
           "device": {"sku": "phone", "imei": imei(device), "price": "3999"}, "down_payment": "999"})
}

/// A store order like [`order_body`] on p12 for customer `seed`, who gives a name (personal data
/// the tests of masking and of the logs look for), with the IMEI of the same seed.
pub fn named_order_body(no: &str, seed: u64) -> Value {
    json!({"out_order_no": no, "product_id": "p12", "term_months": 12,
           "customer": {"id_number": id_number(seed), "phone": phone(seed), "name": "王小明"},
           "device": {"sku": "phone-128g", "imei": imei(seed), "price": "3999"}, "down_payment": "999"})
}

/// A return of the device with the IMEI of `device`, returned on `returned_on`, under `reference`.
pub fn return_body(device: u64, returned_on: &str, reference: &str) -> Value {
    json!({"reason": "no_reason", "returned_on": returned_on, "imei": imei(device), "reference": reference})
}

/// An order `body` as a partner places it: in a region, by one of its agents.
pub fn by_partner(body: Value, region: &str, agent: &str) -> Value {
    merged(body, json!({"region_code": region, "agent_id": agent}))
}

/// A credit line the world registers: its provider, customer, limit and expiry.
#[derive(Debug, Clone)]
pub struct LineSpec {
    pub provider: String,
    pub seed: u64,
    pub limit: String,
    pub expires_on: String,
}

/// What a world holds; built with [`WorldSpec::build`].
#[derive(Debug, Clone, Default)]
pub struct WorldSpec {
    providers: Vec<Value>,
    banks: Vec<Value>,
    stores: Vec<Value>,
    partners: Vec<Value>,
    products: Vec<Value>,
    lines: Vec<LineSpec>,
}

/// The built world: a client per principal (by id), the admin, the lines' ids in the order the
/// spec named them, and the webhook secrets the service answered.
pub struct World {
    pub admin: Client,
    clients: BTreeMap<String, Client>,
    /// The id of each principal's key (to list, revoke or audit it).
    pub key_ids: BTreeMap<String, String>,
    /// Each principal's kind, in the order the spec named them (the first of a kind is its default).
    kinds: Vec<(String, &'static str)>,
    pub lines: Vec<String>,
    pub secrets: BTreeMap<String, String>,
}

impl World {
    /// Nothing yet: every part is an option.
    pub fn empty() -> WorldSpec {
        WorldSpec::default()
    }

    /// Provider `wld`, bank `bk` (limit 10,000,000), store `st` (440305), product `p12`
    /// ([`product_body`]) and customer 7's line at wld (limit 100,000).
    pub fn standard() -> WorldSpec {
        World::empty()
            .provider("wld", json!({"name": "微粒贷"}))
            .bank("bk", json!({}))
            .store("st", "440305")
            .product(product_body("p12"))
            .line("wld", 7, "100000")
    }

    /// The client of principal `id` (a provider, bank, store or partner of the spec).
    #[track_caller]
    pub fn key(&self, id: &str) -> &Client {
        self.clients.get(id).unwrap_or_else(|| panic!("no principal {id} in this world"))
    }

    /// The first principal of a kind: the one a world of one store, bank, … means.
    #[track_caller]
    fn first(&self, kind: &str) -> &Client {
        let id = self.kinds.iter().find(|(_, k)| *k == kind).map(|(id, _)| id).unwrap_or_else(|| panic!("no {kind} in this world"));
        &self.clients[id]
    }

    pub fn store(&self) -> &Client {
        self.first("store")
    }

    pub fn bank(&self) -> &Client {
        self.first("bank")
    }

    pub fn provider(&self) -> &Client {
        self.first("provider")
    }

    pub fn partner(&self) -> &Client {
        self.first("partner")
    }

    /// The first line of the spec.
    pub fn line(&self) -> &str {
        self.lines.first().expect("a line in this world")
    }
}

impl WorldSpec {
    /// A provider; `extra` adds or overrides fields (e.g. `webhook_url`).
    pub fn provider(mut self, id: &str, extra: Value) -> Self {
        self.providers.push(merged(json!({"id": id, "name": format!("Provider {id}")}), extra));
        self
    }

    /// A bank of [`bank_body`]; `extra` sets limits, regions, priority, webhook, ….
    pub fn bank(mut self, id: &str, extra: Value) -> Self {
        self.banks.push(merged(bank_body(id), extra));
        self
    }

    pub fn store(mut self, id: &str, region: &str) -> Self {
        self.stores.push(json!({"id": id, "name": "营业厅", "region_code": region}));
        self
    }

    /// A partner (see [`partner_body`]).
    pub fn partner(mut self, body: Value) -> Self {
        self.partners.push(body);
        self
    }

    pub fn product(mut self, body: Value) -> Self {
        self.products.push(body);
        self
    }

    /// Fields set over the last product named so far (terms, hold ratio, grace days, …).
    pub fn product_extra(mut self, extra: Value) -> Self {
        let last = self.products.pop().expect("a product to change");
        self.products.push(merged(last, extra));
        self
    }

    /// Fields set over the bank `id` named so far.
    pub fn bank_extra(mut self, id: &str, extra: Value) -> Self {
        let bank = self.banks.iter_mut().find(|b| b["id"].as_str() == Some(id)).unwrap_or_else(|| panic!("no bank {id}"));
        *bank = merged(bank.clone(), extra);
        self
    }

    /// Fields set over the provider `id` named so far.
    pub fn provider_extra(mut self, id: &str, extra: Value) -> Self {
        let provider = self.providers.iter_mut().find(|p| p["id"].as_str() == Some(id)).unwrap_or_else(|| panic!("no provider {id}"));
        *provider = merged(provider.clone(), extra);
        self
    }

    /// Customer `seed`'s line at `provider`, expiring [`FAR`].
    pub fn line(self, provider: &str, seed: u64, limit: &str) -> Self {
        self.line_until(provider, seed, limit, FAR)
    }

    pub fn line_until(mut self, provider: &str, seed: u64, limit: &str, expires_on: &str) -> Self {
        self.lines.push(LineSpec { provider: provider.into(), seed, limit: limit.into(), expires_on: expires_on.into() });
        self
    }

    /// No credit line (the spec's lines are dropped).
    pub fn no_lines(mut self) -> Self {
        self.lines.clear();
        self
    }

    /// Creates every part through the admin API (each must answer 201), a key per principal, and
    /// the lines through their providers' keys.
    pub async fn build(self, app: &TestApp) -> World {
        self.build_at(&app.http, &app.url, &app.admin_key).await
    }

    /// [`WorldSpec::build`] on a service at `url` whose admin key is `admin_key`.
    pub async fn build_at(self, http: &reqwest::Client, url: &str, admin_key: &str) -> World {
        let admin = Client::at(http, url, admin_key);
        let mut world = World {
            admin,
            clients: BTreeMap::new(),
            key_ids: BTreeMap::new(),
            kinds: Vec::new(),
            lines: Vec::new(),
            secrets: BTreeMap::new(),
        };
        let parts = [
            ("provider", "/v1/admin/providers", &self.providers),
            ("bank", "/v1/admin/banks", &self.banks),
            ("store", "/v1/admin/stores", &self.stores),
            ("partner", "/v1/admin/partners", &self.partners),
        ];
        for (kind, path, bodies) in parts {
            for body in bodies {
                let made = world.admin.call("POST", path, Some(body), None).await.expect(201);
                let id = body["id"].as_str().expect("an id").to_string();
                if let Some(secret) = made["webhook_secret"].as_str() {
                    world.secrets.insert(id.clone(), secret.to_string());
                }
                let (key_id, key) = world.admin.new_key(json!({"kind": kind, "id": id}), None).await;
                world.clients.insert(id.clone(), Client::at(http, url, &key));
                world.key_ids.insert(id.clone(), key_id);
                world.kinds.push((id, kind));
            }
        }
        for body in &self.products {
            world.admin.call("POST", "/v1/admin/products", Some(body), None).await.expect(201);
        }
        for l in &self.lines {
            let made = world.key(&l.provider).register_line(line_body(l.seed, &l.limit, &l.expires_on)).await.expect(201);
            world.lines.push(made["id"].as_str().expect("a line id").to_string());
        }
        world
    }
}

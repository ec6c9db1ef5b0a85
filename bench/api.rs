//! Seeding the order phases through the public API: a provider, banks each covering one province
//! (plus a "hot" bank alone in its province, and a bank whose webhook is the local receiver),
//! stores in those provinces, one product open in all of them, API keys, and thousands of
//! customers' credit lines with limits large enough never to run out.

use crate::Params;
use crate::service::Service;
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The generators are the tests' own (one definition, in the library).
pub use creditphone::testkit::{id_number, imei, phone};

pub const PROVIDER: &str = "bench-wld";
pub const PRODUCT: &str = "bench-12";
/// A provider in `required` hold-confirmation mode (API.md §12) and the product it finances: the
/// order path of that mode (order, then the provider's confirm).
pub const REQUIRED_PROVIDER: &str = "bench-req";
pub const REQUIRED_PRODUCT: &str = "bench-12-req";
/// Every order of the hot-bank phase reserves exposure at this one bank.
pub const HOT_BANK: &str = "bank-hot";
/// The recipient of the notices phase; its webhook is the local receiver.
pub const NOTICE_BANK: &str = "bank-notice";
/// One bank per province (GB/T 2260 province-level codes but the two below); stores spread over
/// them, so with 48 connections no bank has more than two orders in flight on average.
const SPREAD_PROVINCES: [&str; 29] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51",
    "52", "53", "54", "61", "62", "63", "64",
];
const STORES_PER_PROVINCE: usize = 2;
/// Only the hot bank covers this province, and only hot stores are in it.
const HOT_PROVINCE: &str = "35";
const HOT_STORES: usize = 4;
/// No store is here: the notice bank never gets an order.
const NOTICE_PROVINCE: &str = "65";
const SEED_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub struct Customer {
    pub id_number: String,
    pub phone: String,
}

pub struct World {
    pub spread_store_keys: Vec<String>,
    pub hot_store_keys: Vec<String>,
    pub customers: Arc<Vec<Customer>>,
    pub spread_banks: usize,
    /// The customers with a line at [`REQUIRED_PROVIDER`] (the first quarter of `customers`).
    pub required_customers: Arc<Vec<Customer>>,
    pub required_provider_key: String,
}

/// How the order world is laid out, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    pub spread_banks: usize,
    pub spread_stores: usize,
    pub hot_stores: usize,
}

impl World {
    pub fn layout(&self) -> Layout {
        Layout { spread_banks: self.spread_banks, spread_stores: self.spread_store_keys.len(), hot_stores: self.hot_store_keys.len() }
    }
}

impl World {
    pub async fn setup(service: &Service, params: &Params, receiver_url: &str) -> Result<World> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .context("HTTP client")?;
        let api = Api { http, base: service.url.clone(), admin_key: service.admin_key.clone() };

        api.admin("/v1/admin/providers", json!({"id": PROVIDER, "name": "Bench provider"})).await?;
        let bank = |id: &str, regions: Value, priority: i64| {
            json!({"id": id, "name": id, "priority": priority, "apr_min": "0", "apr_max": "0.24",
                   "exposure_limit": "900000000000", "regions": regions})
        };
        for p in SPREAD_PROVINCES {
            api.admin("/v1/admin/banks", bank(&format!("bank-{p}"), json!([p]), 10)).await?;
        }
        api.admin("/v1/admin/banks", bank(HOT_BANK, json!([HOT_PROVINCE]), 10)).await?;
        let mut notice_bank = bank(NOTICE_BANK, json!([NOTICE_PROVINCE]), 99);
        notice_bank["webhook_url"] = json!(receiver_url);
        api.admin("/v1/admin/banks", notice_bank).await?;

        let mut spread_stores = Vec::new();
        for p in SPREAD_PROVINCES {
            for k in 0..STORES_PER_PROVINCE {
                let id = format!("st-{p}-{k}");
                api.admin("/v1/admin/stores", json!({"id": id, "name": id, "region_code": format!("{p}01{:02}", k + 2)})).await?;
                spread_stores.push(id);
            }
        }
        let mut hot_stores = Vec::new();
        for k in 0..HOT_STORES {
            let id = format!("hot-{k}");
            api.admin("/v1/admin/stores", json!({"id": id, "name": id, "region_code": format!("{HOT_PROVINCE}01{:02}", k + 2)})).await?;
            hot_stores.push(id);
        }
        let mut regions: Vec<&str> = SPREAD_PROVINCES.to_vec();
        regions.push(HOT_PROVINCE);
        api.admin(
            "/v1/admin/products",
            json!({"id": PRODUCT, "name": "Bench 12 months", "pricing": "interest", "terms": [{"months": 12, "rate": "0.18"}],
                   "providers": [PROVIDER], "regions": regions, "min_principal": "500", "max_principal": "20000"}),
        )
        .await?;
        api.admin(
            "/v1/admin/providers",
            json!({"id": REQUIRED_PROVIDER, "name": "Bench provider confirming holds", "hold_confirmation": "required"}),
        )
        .await?;
        api.admin(
            "/v1/admin/products",
            json!({"id": REQUIRED_PRODUCT, "name": "Bench 12 months, confirmed holds", "pricing": "interest",
                   "terms": [{"months": 12, "rate": "0.18"}], "providers": [REQUIRED_PROVIDER], "regions": SPREAD_PROVINCES,
                   "min_principal": "500", "max_principal": "20000"}),
        )
        .await?;

        let mut spread_store_keys = Vec::new();
        for s in &spread_stores {
            spread_store_keys.push(api.key("store", s).await?);
        }
        let mut hot_store_keys = Vec::new();
        for s in &hot_stores {
            hot_store_keys.push(api.key("store", s).await?);
        }
        let provider_key = api.key("provider", PROVIDER).await?;
        let required_provider_key = api.key("provider", REQUIRED_PROVIDER).await?;

        let customers: Vec<Customer> =
            (0..params.customers).map(|i| Customer { id_number: id_number(i as u64), phone: phone(i as u64) }).collect();
        let customers = Arc::new(customers);
        api.register_lines(&provider_key, &customers, "bench-line").await?;
        let required_customers = Arc::new(customers[..(customers.len() / 4).max(1)].to_vec());
        api.register_lines(&required_provider_key, &required_customers, "bench-req-line").await?;
        Ok(World {
            spread_store_keys,
            hot_store_keys,
            customers,
            spread_banks: SPREAD_PROVINCES.len(),
            required_customers,
            required_provider_key,
        })
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    admin_key: String,
}

impl Api {
    async fn call(&self, path: &str, key: &str, body: &Value, idem: Option<&str>) -> Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(key).json(body);
        if let Some(i) = idem {
            req = req.header("Idempotency-Key", i);
        }
        let res = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = res.status().as_u16();
        let text = res.text().await.with_context(|| format!("reading the answer of POST {path}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// An admin POST that must answer 201.
    async fn admin(&self, path: &str, body: Value) -> Result<Value> {
        let (status, answer) = self.call(path, &self.admin_key, &body, None).await?;
        if status != 201 {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// A credit line at the key's provider for each customer, `SEED_CONCURRENCY` at a time.
    async fn register_lines(&self, provider_key: &str, customers: &[Customer], idem_prefix: &str) -> Result<()> {
        let results: Vec<Result<()>> = futures_util::stream::iter(customers.iter().enumerate())
            .map(|(i, c)| async move {
                let body =
                    json!({"customer": {"id_number": c.id_number, "phone": c.phone}, "limit": "1000000", "expires_on": "2040-12-31"});
                let (status, answer) = self.call("/v1/credit-lines", provider_key, &body, Some(&format!("{idem_prefix}-{i}"))).await?;
                if status != 201 {
                    bail!("POST /v1/credit-lines answered {status}: {answer}");
                }
                Ok(())
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .collect()
            .await;
        let failed: Vec<&anyhow::Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if let Some(first) = failed.first() {
            bail!("{} of {} credit lines could not be registered; the first: {first:#}", failed.len(), results.len());
        }
        Ok(())
    }

    /// A new API key for a principal, at the highest rate a key may have.
    async fn key(&self, kind: &str, id: &str) -> Result<String> {
        let answer =
            self.admin("/v1/admin/api-keys", json!({"principal": {"kind": kind, "id": id}, "rate_limit_per_minute": 1_000_000})).await?;
        answer["key"].as_str().map(str::to_string).with_context(|| format!("no key in {answer}"))
    }
}

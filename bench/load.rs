//! The load generator: `POST /v1/orders` over HTTP with a unique `out_order_no` and
//! `Idempotency-Key` per request, round-robin over customers and stores; with several service
//! instances, each connection (worker) sends to one of them, round-robin over the connections.
//!
//! - Closed loop: N connections, each sends its next request as soon as the previous answered;
//!   latency is from send to answer.
//! - Open loop: request i is due at t0 + i / rate whatever happened before (a fixed arrival rate);
//!   latency is counted from the due time, so a request that could only start late carries its
//!   lateness (no coordinated omission). A request started more than 5 ms after its due time is
//!   counted late.

use crate::api::{Customer, PRODUCT, REQUIRED_PRODUCT, World, imei};
use crate::service::Service;
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LATE_AFTER: Duration = Duration::from_millis(5);
/// An open-loop answer slower than this (the p99 target) is counted in its second of the
/// run, so stalls that hit many requests at once stand out from a spread-out tail.
pub const SLOW_AFTER: Duration = Duration::from_millis(25);
const ERROR_SAMPLES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Stores in many provinces, each province with its own bank.
    Spread,
    /// Stores in the one province only the hot bank covers.
    HotBank,
    /// As `Spread`, through the provider in `required` confirmation mode: each order is
    /// confirmed by the provider (API.md §12) before the next; an order counts once confirmed.
    Required,
}

#[derive(Clone)]
pub struct OrderTarget {
    inner: Arc<Inner>,
    /// The instance (index into `urls`) this copy sends to.
    home: usize,
}

struct Inner {
    http: reqwest::Client,
    /// Each instance's base URL.
    urls: Vec<String>,
    keys: Vec<String>,
    customers: Arc<Vec<Customer>>,
    product: &'static str,
    /// `Route::Required`: the provider's key that confirms each hold.
    confirm_key: Option<String>,
}

/// One request's outcome: its status (0 when no answer came) and, for failures, a short reason.
struct Outcome {
    status: u16,
    error: Option<String>,
}

impl OrderTarget {
    /// Orders to `services` (one or more instances on the same database).
    pub fn new(world: &World, services: &[&Service], route: Route) -> Result<OrderTarget> {
        let keys = match route {
            Route::Spread | Route::Required => world.spread_store_keys.clone(),
            Route::HotBank => world.hot_store_keys.clone(),
        };
        let (customers, product, confirm_key) = match route {
            Route::Required => (world.required_customers.clone(), REQUIRED_PRODUCT, Some(world.required_provider_key.clone())),
            _ => (world.customers.clone(), PRODUCT, None),
        };
        anyhow::ensure!(!keys.is_empty() && !customers.is_empty(), "no stores or no customers to order with");
        anyhow::ensure!(!services.is_empty(), "no service to order from");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .context("HTTP client")?;
        let urls = services.iter().map(|s| s.url.clone()).collect();
        Ok(OrderTarget { inner: Arc::new(Inner { http, urls, keys, customers, product, confirm_key }), home: 0 })
    }

    /// This target as load connection `c` uses it: its instance is `c` modulo their number.
    fn for_connection(&self, c: usize) -> OrderTarget {
        OrderTarget { inner: self.inner.clone(), home: c % self.inner.urls.len() }
    }

    async fn place(&self, prefix: &str, i: u64) -> Outcome {
        let t = &self.inner;
        let customer = &t.customers[(i % t.customers.len() as u64) as usize];
        let key = &t.keys[(i % t.keys.len() as u64) as usize];
        let reference = format!("{prefix}-{i}");
        let body = json!({
            "out_order_no": reference, "product_id": t.product, "term_months": 12,
            "customer": {"id_number": customer.id_number, "phone": customer.phone},
            "device": {"sku": "bench-phone", "imei": imei(i), "price": "3999"}, "down_payment": "999",
        });
        let url = format!("{}/v1/orders", t.urls[self.home]);
        let (outcome, answer) = post(&t.http, &url, key, &reference, &body, 201).await;
        match (&t.confirm_key, answer) {
            (Some(provider_key), Some(text)) => match serde_json::from_str(&text) {
                Ok(order) => self.confirm(provider_key, &reference, &order).await,
                Err(e) => Outcome { status: 0, error: Some(format!("the order's answer is not JSON: {e}")) },
            },
            _ => outcome,
        }
    }

    /// The provider confirms the order's pending hold for its whole amount (API.md §12).
    async fn confirm(&self, provider_key: &str, reference: &str, order: &serde_json::Value) -> Outcome {
        let t = &self.inner;
        let (Some(hold), Some(amount)) = (order["hold"]["id"].as_str(), order["hold"]["amount"].as_str()) else {
            return Outcome { status: 0, error: Some(format!("no hold id and amount in the order: {order}")) };
        };
        let url = format!("{}/v1/holds/{hold}/confirm", t.urls[self.home]);
        let body = json!({"amount": amount, "provider_order_no": format!("{reference}-p")});
        post(&t.http, &url, provider_key, &format!("{reference}-c"), &body, 200).await.0
    }
}

/// One POST with its idempotency key; the answer's text when it is the status expected.
async fn post(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    idem: &str,
    body: &serde_json::Value,
    expected: u16,
) -> (Outcome, Option<String>) {
    match http.post(url).bearer_auth(key).header("Idempotency-Key", idem).json(body).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            // Read the whole answer, as a client would.
            let text = res.text().await.unwrap_or_default();
            if status == expected {
                (Outcome { status, error: None }, Some(text))
            } else {
                (Outcome { status, error: Some(format!("{status}: {}", text.chars().take(300).collect::<String>())) }, None)
            }
        }
        Err(e) => (Outcome { status: 0, error: Some(format!("no answer: {e}")) }, None),
    }
}

/// What one load phase measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub connections: usize,
    pub planned_secs: f64,
    pub elapsed_secs: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Answers by status ("201", "503", "no answer").
    pub statuses: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    /// Of successful requests, milliseconds.
    pub latency: Percentiles,
    /// Open loop: the fixed arrival rate and how many requests started late.
    pub rate: Option<f64>,
    pub late: Option<u64>,
    /// Open loop: answers slower than `SLOW_AFTER`, by the second of the run they were due in.
    pub slow_by_second: BTreeMap<u64, u64>,
    /// The order batcher over the phase (`service::BatchCounters::since`), when it batched.
    pub batches: Option<crate::service::BatchDelta>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(mut micros: Vec<u64>) -> Percentiles {
        if micros.is_empty() {
            return Percentiles::default();
        }
        micros.sort_unstable();
        let n = micros.len();
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            micros[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: micros[n - 1] as f64 / 1000.0,
            mean: micros.iter().sum::<u64>() as f64 / n as f64 / 1000.0,
        }
    }
}

impl LoadResult {
    /// Successful orders per second.
    pub fn per_sec(&self) -> f64 {
        if self.elapsed_secs > 0.0 { self.ok as f64 / self.elapsed_secs } else { 0.0 }
    }

    pub fn summary(&self) -> String {
        let l = &self.latency;
        let mut s = format!(
            "{} requests, {} ok, {} errors in {:.1} s: {:.1} orders/s; latency ms p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
            self.requests,
            self.ok,
            self.errors,
            self.elapsed_secs,
            self.per_sec(),
            l.p50,
            l.p95,
            l.p99,
            l.max
        );
        if let Some(late) = self.late {
            s.push_str(&format!("; {late} started late (> 5 ms after due)"));
        }
        if self.errors > 0 {
            s.push_str(&format!("\n   errors: {}", self.error_summary()));
        }
        if !self.slow_by_second.is_empty() {
            s.push_str(&format!("\n   {}", self.slow_seconds_line(8)));
        }
        if let Some(b) = &self.batches {
            s.push_str(&format!("\n   batches: {}", b.line()));
            if let Some(steps) = b.steps_line() {
                s.push_str(&format!("\n   {steps}"));
            }
        }
        s
    }

    /// The seconds of the run with the most answers over `SLOW_AFTER`, worst first.
    pub fn slow_seconds_line(&self, n: usize) -> String {
        let total: u64 = self.slow_by_second.values().sum();
        let mut worst: Vec<(u64, u64)> = self.slow_by_second.iter().map(|(s, c)| (*s, *c)).collect();
        worst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let parts: Vec<String> = worst.iter().take(n).map(|(sec, c)| format!("{c} in second {sec}")).collect();
        format!(
            "{total} answers over {} ms, in {} of the run's seconds; the worst: {}",
            SLOW_AFTER.as_millis(),
            self.slow_by_second.len(),
            parts.join(", ")
        )
    }

    pub fn error_summary(&self) -> String {
        let by_status: Vec<String> =
            self.statuses.iter().filter(|(k, _)| !matches!(k.as_str(), "200" | "201")).map(|(k, v)| format!("{k} ×{v}")).collect();
        format!("{}; e.g. {}", by_status.join(", "), self.error_samples.join(" | "))
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    statuses: BTreeMap<String, u64>,
    samples: Vec<String>,
    errors: u64,
    late: u64,
    slow_by_second: BTreeMap<u64, u64>,
    last_done: Option<Instant>,
}

impl Tally {
    fn record(&mut self, outcome: Outcome, latency: Duration) {
        let label = if outcome.status == 0 { "no answer".to_string() } else { outcome.status.to_string() };
        *self.statuses.entry(label).or_default() += 1;
        match outcome.error {
            None => self.latencies.push(latency.as_micros() as u64),
            Some(e) => {
                self.errors += 1;
                if self.samples.len() < ERROR_SAMPLES {
                    self.samples.push(e);
                }
            }
        }
        self.last_done = Some(Instant::now());
    }

    fn merge(mut tallies: Vec<Tally>) -> Tally {
        let mut all = tallies.pop().unwrap_or_default();
        for t in tallies {
            all.latencies.extend(t.latencies);
            for (k, v) in t.statuses {
                *all.statuses.entry(k).or_default() += v;
            }
            for s in t.samples {
                if all.samples.len() < ERROR_SAMPLES {
                    all.samples.push(s);
                }
            }
            all.errors += t.errors;
            all.late += t.late;
            for (sec, n) in t.slow_by_second {
                *all.slow_by_second.entry(sec).or_default() += n;
            }
            all.last_done = all.last_done.max(t.last_done);
        }
        all
    }

    fn into_result(self, connections: usize, planned: Duration, started: Instant) -> LoadResult {
        let requests = self.statuses.values().sum();
        let elapsed = self.last_done.unwrap_or(started).saturating_duration_since(started);
        LoadResult {
            connections,
            planned_secs: planned.as_secs_f64(),
            elapsed_secs: elapsed.as_secs_f64(),
            requests,
            ok: requests - self.errors,
            errors: self.errors,
            statuses: self.statuses,
            error_samples: self.samples,
            latency: Percentiles::of(self.latencies),
            rate: None,
            late: None,
            slow_by_second: self.slow_by_second,
            batches: None,
        }
    }
}

async fn join(handles: Vec<tokio::task::JoinHandle<Tally>>) -> Vec<Tally> {
    let mut tallies = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(t) => tallies.push(t),
            Err(e) => eprintln!("creditphone-bench: a load worker failed: {e}"),
        }
    }
    tallies
}

/// `connections` workers, each sending its next order as soon as the last one answered, until
/// `duration` has passed (requests in flight then are completed and counted).
pub async fn closed_loop(target: &OrderTarget, prefix: &str, connections: usize, duration: Duration) -> LoadResult {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            let (target, next, prefix) = (target.for_connection(c), next.clone(), prefix.to_string());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let outcome = target.place(&prefix, i).await;
                    tally.record(outcome, t0.elapsed());
                }
                tally
            })
        })
        .collect();
    Tally::merge(join(handles).await).into_result(connections, duration, started)
}

/// A fixed arrival rate for `duration`: request i is due at t0 + i / rate and is sent by the
/// first free one of `max_connections` workers; its latency runs from its due time.
pub async fn open_loop(target: &OrderTarget, prefix: &str, rate: f64, duration: Duration, max_connections: usize) -> LoadResult {
    let total = (rate * duration.as_secs_f64()).floor().max(1.0) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let t0 = tokio::time::Instant::now() + Duration::from_millis(20);
    let started = t0.into_std();
    let handles: Vec<_> = (0..max_connections)
        .map(|c| {
            let (target, next, prefix) = (target.for_connection(c), next.clone(), prefix.to_string());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let due = t0 + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due).await;
                    let start = tokio::time::Instant::now();
                    if start.saturating_duration_since(due) > LATE_AFTER {
                        tally.late += 1;
                    }
                    let outcome = target.place(&prefix, i).await;
                    let latency = due.elapsed();
                    if latency > SLOW_AFTER {
                        *tally.slow_by_second.entry(due.saturating_duration_since(t0).as_secs()).or_default() += 1;
                    }
                    tally.record(outcome, latency);
                }
                tally
            })
        })
        .collect();
    let tally = Tally::merge(join(handles).await);
    let late = tally.late;
    let mut result = tally.into_result(max_connections, duration, started);
    result.rate = Some(rate);
    result.late = Some(late);
    result
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Percentiles::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(vec![]).max, 0.0);
    }
}

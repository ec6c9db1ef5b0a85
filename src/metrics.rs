//! Prometheus metrics: request counts and latencies by route and status, pool usage, jobs.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub pool_size: IntGauge,
    pub pool_available: IntGauge,
    pub pool_waiting: IntGauge,
    pub job_runs: IntCounterVec,
    pub gauges: IntGaugeVec,
    /// Notices `pending` and `dead` (delivery's backlog and what it gave up on), refreshed by the
    /// delivery workers. Not `delivered` nor `pull_only`: counting every notice ever written is a
    /// scan of a table that only grows (`notice_attempts` counts deliveries).
    pub notices: IntGaugeVec,
    /// Webhook attempts by outcome (`delivered`, `failed`, `dead`).
    pub notice_attempts: IntCounterVec,
    /// One webhook attempt, request to answer (or timeout).
    pub notice_attempt_duration: HistogramVec,
    /// A notice's creation to its delivery.
    pub notice_delivery_latency: HistogramVec,
    /// Cancellations by a seller that look like probing a customer's credit (place, cancel, repeat).
    pub order_probes_suspected: IntCounter,
    /// Recipients marked slow (served only by the slow workers), refreshed with `notices`.
    pub notice_slow_recipients: IntGauge,
    /// This instance's delivery workers serving a recipient, by kind (`quick`, `slow`).
    pub notice_workers_busy: IntGaugeVec,
    /// Orders placed per batched transaction (issue 20).
    pub order_batch_orders: Histogram,
    /// Where a batched order's time goes: `queued` (waiting for its batch to start) and `placed`
    /// (its batch's transaction, start to answers).
    pub order_batch_stage: HistogramVec,
}

/// Histogram buckets, in seconds.
const LATENCY: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const ATTEMPT: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const DELIVERY: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0];
const BATCH_STAGE: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("creditphone".into()), None).expect("static prefix is valid");
        let r = &registry;
        Metrics {
            http_requests: counters(
                r,
                "http_requests_total",
                "HTTP requests answered, by method, route and status",
                &["method", "route", "status"],
            ),
            http_duration: histograms(
                r,
                "http_request_duration_seconds",
                "HTTP request latency, by method and route",
                LATENCY,
                &["method", "route"],
            ),
            pool_size: gauge(r, "db_pool_connections", "Connections open in the pool"),
            pool_available: gauge(r, "db_pool_available", "Idle connections in the pool"),
            pool_waiting: gauge(r, "db_pool_waiting", "Requests waiting for a connection"),
            job_runs: counters(r, "job_runs_total", "Background job runs, by job and outcome", &["job", "outcome"]),
            gauges: gauges(r, "state", "Counts of things by kind (notices by state, ...)", &["kind"]),
            notices: gauges(r, "notices", "Notices pending delivery and dead (given up on), by state", &["state"]),
            notice_attempts: counters(r, "notice_attempts_total", "Webhook delivery attempts, by outcome", &["outcome"]),
            notice_attempt_duration: histograms(
                r,
                "notice_attempt_duration_seconds",
                "One webhook attempt, request to answer, by outcome",
                ATTEMPT,
                &["outcome"],
            ),
            notice_delivery_latency: histograms(
                r,
                "notice_delivery_latency_seconds",
                "From a notice's creation to its delivery, by recipient kind",
                DELIVERY,
                &["recipient_kind"],
            ),
            order_probes_suspected: registered(
                r,
                IntCounter::new(
                    "order_probe_suspected_total",
                    "Cancellations by a seller that has cancelled this often against one customer within the window (probing)",
                ),
            ),
            notice_slow_recipients: gauge(r, "notice_slow_recipients", "Recipients marked slow, served only by the slow delivery workers"),
            notice_workers_busy: gauges(
                r,
                "notice_workers_busy",
                "Delivery workers of this instance serving a recipient, by kind (quick, slow)",
                &["kind"],
            ),
            order_batch_orders: registered(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("order_batch_orders", "Orders placed per batched transaction")
                        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
                ),
            ),
            order_batch_stage: histograms(
                r,
                "order_batch_stage_seconds",
                "A batched order's time by stage: queued for its batch, placed by it",
                BATCH_STAGE,
                &["stage"],
            ),
            registry,
        }
    }

    pub fn observe_pool(&self, status: deadpool_postgres::Status) {
        self.pool_size.set(status.size as i64);
        self.pool_available.set(status.available as i64);
        self.pool_waiting.set(status.waiting as i64);
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A metric made from a static definition, registered once.
fn registered<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<C>) -> C {
    let metric = made.expect("static metric definition");
    registry.register(Box::new(metric.clone())).expect("each metric registered once");
    metric
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    registered(r, IntGauge::new(name, help))
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(r, IntGaugeVec::new(Opts::new(name, help), labels))
}

fn histograms(r: &Registry, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    registered(r, HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels))
}

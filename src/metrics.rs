//! Prometheus metrics: request counts and latencies by route and status, pool usage, jobs.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub pool_size: IntGauge,
    pub pool_available: IntGauge,
    pub pool_waiting: IntGauge,
    pub job_runs: IntCounterVec,
    pub gauges: IntGaugeVec,
    /// Notices by delivery state (`pending`, `delivered`, `dead`, `pull_only`), refreshed by the delivery workers.
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
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("creditphone".into()), None).expect("static prefix is valid");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered, by method, route and status"),
            &["method", "route", "status"],
        )
        .expect("static metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency, by method and route")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route"],
        )
        .expect("static metric definition");
        let pool_size = IntGauge::new("db_pool_connections", "Connections open in the pool").expect("static");
        let pool_available = IntGauge::new("db_pool_available", "Idle connections in the pool").expect("static");
        let pool_waiting = IntGauge::new("db_pool_waiting", "Requests waiting for a connection").expect("static");
        let job_runs = IntCounterVec::new(Opts::new("job_runs_total", "Background job runs, by job and outcome"), &["job", "outcome"])
            .expect("static metric definition");
        let gauges = IntGaugeVec::new(Opts::new("state", "Counts of things by kind (notices by state, ...)"), &["kind"])
            .expect("static metric definition");
        let notices = IntGaugeVec::new(Opts::new("notices", "Notices by delivery state"), &["state"]).expect("static metric definition");
        let notice_attempts = IntCounterVec::new(Opts::new("notice_attempts_total", "Webhook delivery attempts, by outcome"), &["outcome"])
            .expect("static metric definition");
        let notice_attempt_duration = HistogramVec::new(
            HistogramOpts::new("notice_attempt_duration_seconds", "One webhook attempt, request to answer, by outcome")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["outcome"],
        )
        .expect("static metric definition");
        let notice_delivery_latency = HistogramVec::new(
            HistogramOpts::new("notice_delivery_latency_seconds", "From a notice's creation to its delivery, by recipient kind")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0]),
            &["recipient_kind"],
        )
        .expect("static metric definition");
        let order_probes_suspected = IntCounter::new(
            "order_probe_suspected_total",
            "Cancellations by a seller that has cancelled this often against one customer within the window (probing)",
        )
        .expect("static metric definition");
        let notice_slow_recipients =
            IntGauge::new("notice_slow_recipients", "Recipients marked slow, served only by the slow delivery workers").expect("static");
        let notice_workers_busy = IntGaugeVec::new(
            Opts::new("notice_workers_busy", "Delivery workers of this instance serving a recipient, by kind (quick, slow)"),
            &["kind"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_available.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(job_runs.clone()),
            Box::new(gauges.clone()),
            Box::new(notices.clone()),
            Box::new(notice_attempts.clone()),
            Box::new(notice_attempt_duration.clone()),
            Box::new(notice_delivery_latency.clone()),
            Box::new(order_probes_suspected.clone()),
            Box::new(notice_slow_recipients.clone()),
            Box::new(notice_workers_busy.clone()),
        ] {
            registry.register(c).expect("each metric registered once");
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            pool_size,
            pool_available,
            pool_waiting,
            job_runs,
            gauges,
            notices,
            notice_attempts,
            notice_attempt_duration,
            notice_delivery_latency,
            order_probes_suspected,
            notice_slow_recipients,
            notice_workers_busy,
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

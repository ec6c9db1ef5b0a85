//! The figures: a table on stdout, the markdown report, and the final `BENCH {json}` line.

use crate::Params;
use crate::eod::{EodResult, EodRun};
use crate::instances::InstancesRun;
use crate::load::LoadResult;
use crate::notices::NoticeResult;
use crate::observe::Observation;
use crate::pgbench::PgbenchResult;
use serde_json::json;
use std::fmt::Write as _;

/// The machine the figures come from.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub load_average: String,
    pub date: String,
    /// The source revision measured.
    pub source: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            memory_gib: mem_kb / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            source: String::new(),
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "machine: {} cores ({}), {:.1} GiB memory, Linux {}, load average at start {}; source {}",
            self.cores, self.cpu_model, self.memory_gib, self.kernel, self.load_average, self.source
        )
    }
}

pub struct OrderResults {
    pub closed: LoadResult,
    pub closed_obs: Observation,
    pub open: LoadResult,
    pub open_obs: Observation,
    pub hot: LoadResult,
    pub hot_obs: Observation,
    /// The spread closed loop through the provider in `required` confirmation mode (order, then
    /// the provider's confirm: one order per confirmed pair).
    pub required: LoadResult,
    pub required_obs: Observation,
}

pub struct Results {
    pub params: Params,
    pub machine: Machine,
    pub settings: Vec<(String, String)>,
    /// MiB of WAL written ahead and the segment files ready afterwards (cluster::preallocate_wal).
    pub wal_preallocated: (u64, i64),
    pub pgbench: Option<PgbenchResult>,
    pub pgbench_open: Option<crate::pgbench::OpenLoopReference>,
    pub statement_costs: Option<crate::pgbench::StatementCosts>,
    pub seed_http_secs: f64,
    pub layout: crate::api::Layout,
    pub orders: Option<OrderResults>,
    /// The closed loop with 1, 2 and 3 service instances (instances.rs).
    pub instances: Option<Vec<InstancesRun>>,
    pub notices: Option<(NoticeResult, Observation)>,
    pub eod: Option<EodResult>,
    pub rss_mb: Option<f64>,
    pub service_log_tail: String,
    pub total_secs: f64,
}

/// A headline figure, its target and whether it is met.
struct Figure {
    key: &'static str,
    label: &'static str,
    value: Option<f64>,
    decimals: usize,
    target: Option<(&'static str, f64)>,
}

impl Figure {
    fn value_text(&self) -> String {
        self.value.map_or("-".to_string(), |v| format!("{v:.*}", self.decimals))
    }

    fn target_text(&self) -> String {
        self.target.map_or(String::new(), |(op, t)| format!("{op} {t}"))
    }

    fn met(&self) -> &'static str {
        match (self.value, self.target) {
            (Some(v), Some((">=", t))) => {
                if v >= t {
                    "yes"
                } else {
                    "NO"
                }
            }
            (Some(v), Some(("<=", t))) => {
                if v <= t {
                    "yes"
                } else {
                    "NO"
                }
            }
            _ => "",
        }
    }
}

impl Results {
    pub fn new(params: Params, machine: Machine, settings: Vec<(String, String)>) -> Results {
        Results {
            params,
            machine,
            settings,
            wal_preallocated: (0, 0),
            pgbench: None,
            pgbench_open: None,
            statement_costs: None,
            seed_http_secs: 0.0,
            layout: Default::default(),
            orders: None,
            instances: None,
            notices: None,
            eod: None,
            rss_mb: None,
            service_log_tail: String::new(),
            total_secs: 0.0,
        }
    }

    fn pgbench_tps(&self) -> Option<f64> {
        self.pgbench.as_ref().map(|p| p.tps)
    }

    fn orders_per_s(&self) -> Option<f64> {
        self.orders.as_ref().map(|o| o.closed.per_sec())
    }

    /// The closed loop with `n` service instances, if measured.
    fn instances_run(&self, n: usize) -> Option<&InstancesRun> {
        self.instances.as_ref()?.iter().find(|r| r.instances == n)
    }

    fn figures(&self) -> Vec<Figure> {
        let o = self.orders.as_ref();
        let ratio = match (self.orders_per_s(), self.pgbench_tps()) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let hot_ratio = o.and_then(|o| {
            let spread = o.closed.per_sec();
            (spread > 0.0).then(|| o.hot.per_sec() / spread)
        });
        let f = |key, label, value, decimals, target| Figure { key, label, value, decimals, target };
        vec![
            f("pgbench_tps", "pgbench TPC-B-like tps", self.pgbench_tps(), 0, None),
            f("orders_per_s", "POST /v1/orders, closed loop, orders/s", self.orders_per_s(), 1, None),
            f("ratio", "orders/s ÷ pgbench tps", ratio, 3, Some((">=", 1.0))),
            f("p50_ms", "closed loop p50 ms", o.map(|o| o.closed.latency.p50), 1, None),
            f("p99_ms", "closed loop p99 ms", o.map(|o| o.closed.latency.p99), 1, None),
            f("open_loop_p99_ms", "open loop (half rate) p99 ms", o.map(|o| o.open.latency.p99), 1, Some(("<=", 10.0))),
            f("hot_bank_ratio", "hot-bank orders/s ÷ spread orders/s", hot_ratio, 3, Some((">=", 0.9))),
            f("eod_1m_due_s", "end of day, due date + grace + 1, s", self.eod.as_ref().map(|e| e.due.secs), 2, Some(("<=", 10.0))),
            f("eod_nothing_due_s", "end of day, nothing due, s", self.eod.as_ref().map(|e| e.nothing_due.secs), 3, Some(("<=", 0.5))),
            f("eod_write_off_1m_s", "end of day writing off 10% defaulted, s", self.eod.as_ref().map(|e| e.write_off.secs), 3, None),
            f(
                "reports_store_100k_s",
                "closed date's reports rendered and stored, s",
                self.eod.as_ref().and_then(|e| e.reports_store_secs),
                3,
                None,
            ),
            f(
                "report_read_closed_ms",
                "stored closed date's reconciliation read, ms",
                self.eod.as_ref().map(|e| e.api.report_read_ms),
                1,
                None,
            ),
            f("aging_ms", "GET /v1/admin/aging over the book, ms", self.eod.as_ref().map(|e| e.api.aging_ms), 1, Some(("<=", 1000.0))),
            f(
                "portfolio_ms",
                "GET /v1/admin/portfolio over the book, ms",
                self.eod.as_ref().map(|e| e.api.portfolio_ms),
                1,
                Some(("<=", 1000.0)),
            ),
            f(
                "console_aging_ms",
                "the console's aging page over the book, ms",
                self.eod.as_ref().map(|e| e.api.console_aging_ms),
                1,
                Some(("<=", 1000.0)),
            ),
            f(
                "console_overview_ms",
                "the console's overview page over the book, ms",
                self.eod.as_ref().map(|e| e.api.console_overview_ms),
                1,
                Some(("<=", 1000.0)),
            ),
            f("notices_per_s", "webhook notices delivered/s", self.notices.as_ref().map(|n| n.0.per_sec()), 0, Some((">=", 10000.0))),
            f("rss_mb", "service peak RSS MiB", self.rss_mb, 1, Some(("<=", 64.0))),
            f(
                "pgbench_open_loop_p99_ms",
                "pgbench at the open-loop rate, p99 ms",
                self.pgbench_open.as_ref().map(|p| p.latency.p99),
                1,
                None,
            ),
            f(
                "pg_cpu_ms_per_pgbench_tx",
                "PostgreSQL CPU ms per pgbench transaction",
                self.pgbench.as_ref().map(|p| p.pg_cpu_ms_per_tx()),
                3,
                None,
            ),
            f(
                "pg_cpu_ms_per_order",
                "PostgreSQL CPU ms per order",
                o.and_then(|o| cpu_ms_per(o.closed_obs.cpu.postgres, o.closed.per_sec())),
                3,
                None,
            ),
            f(
                "service_cpu_ms_per_order",
                "service CPU ms per order",
                o.and_then(|o| cpu_ms_per(o.closed_obs.cpu.service, o.closed.per_sec())),
                3,
                None,
            ),
            f("ratio_ceiling", "ratio if the service cost nothing (CPU bound)", self.ratio_ceiling(), 3, None),
            f(
                "cpu_ms_per_order",
                "service + PostgreSQL CPU ms per order",
                o.and_then(|o| cpu_ms_per_order(&o.closed_obs, &o.closed)),
                3,
                None,
            ),
            f(
                "orders_per_s_required_mode",
                "order + confirm (required mode), closed loop, orders/s",
                o.map(|o| o.required.per_sec()),
                1,
                None,
            ),
            f("ratio_required_mode", "required-mode orders/s ÷ pgbench tps", self.ratio_required_mode(), 3, None),
            f(
                "cpu_ms_per_order_required_mode",
                "service + PostgreSQL CPU ms per order, required mode",
                o.and_then(|o| cpu_ms_per_order(&o.required_obs, &o.required)),
                3,
                None,
            ),
            f("instances_1_orders_per_s", "1 instance, closed loop (short), orders/s", self.instances_rate(1), 1, None),
            f("instances_2_orders_per_s", "2 instances, closed loop (short), orders/s", self.instances_rate(2), 1, None),
            f("instances_3_orders_per_s", "3 instances, closed loop (short), orders/s", self.instances_rate(3), 1, None),
        ]
    }

    fn ratio_required_mode(&self) -> Option<f64> {
        let rate = self.orders.as_ref()?.required.per_sec();
        self.pgbench_tps().filter(|t| *t > 0.0).map(|tps| rate / tps)
    }

    fn instances_rate(&self, n: usize) -> Option<f64> {
        self.instances_run(n).map(|r| r.load.per_sec())
    }

    /// The ratio PostgreSQL alone would allow: every core of the machine running only its share of
    /// the orders' work (no service, no load generator), against the measured pgbench rate.
    fn ratio_ceiling(&self) -> Option<f64> {
        let o = self.orders.as_ref()?;
        let ms = cpu_ms_per(o.closed_obs.cpu.postgres, o.closed.per_sec())?;
        let tps = self.pgbench_tps().filter(|t| *t > 0.0)?;
        Some(o.closed_obs.cpu.cores as f64 * 1000.0 / ms / tps)
    }
}

/// The CPU (the service's and PostgreSQL's, from /proc) each successful order of a closed loop cost.
fn cpu_ms_per_order(obs: &Observation, load: &crate::load::LoadResult) -> Option<f64> {
    cpu_ms_per(obs.cpu.service + obs.cpu.postgres, load.per_sec())
}

/// Milliseconds of CPU per unit of work, from cores busy and units per second.
fn cpu_ms_per(cores_busy: f64, per_sec: f64) -> Option<f64> {
    (per_sec > 0.0 && cores_busy > 0.0).then(|| cores_busy / per_sec * 1000.0)
}

/// The keys of the `BENCH` line, as issue 6 fixes them (and issue 19 adds the `instances_*` ones);
/// the other figures are in the table and the report.
const BENCH_KEYS: [&str; 25] = [
    "pgbench_tps",
    "orders_per_s",
    "ratio",
    "p50_ms",
    "p99_ms",
    "open_loop_p99_ms",
    "hot_bank_ratio",
    "eod_1m_due_s",
    "eod_nothing_due_s",
    "notices_per_s",
    "rss_mb",
    "instances_1_orders_per_s",
    "instances_2_orders_per_s",
    "instances_3_orders_per_s",
    "eod_write_off_1m_s",
    "reports_store_100k_s",
    "report_read_closed_ms",
    "aging_ms",
    "portfolio_ms",
    "console_aging_ms",
    "console_overview_ms",
    "orders_per_s_required_mode",
    "ratio_required_mode",
    "cpu_ms_per_order",
    "cpu_ms_per_order_required_mode",
];

/// The final machine-readable line's JSON (without the `BENCH ` prefix).
pub fn bench_json(r: &Results) -> String {
    let mut map = serde_json::Map::new();
    for f in r.figures().into_iter().filter(|f| BENCH_KEYS.contains(&f.key)) {
        let v = f.value.map(|v| {
            let scale = 10f64.powi(f.decimals.max(1) as i32);
            (v * scale).round() / scale
        });
        map.insert(f.key.to_string(), json!(v));
    }
    serde_json::Value::Object(map).to_string()
}

pub fn table(r: &Results) -> String {
    let mut s = String::new();
    let smoke = r.params.smoke;
    let _ =
        writeln!(s, "{:<44} {:>12}  {:<10} {}", "figure", "value", "target", if smoke { "(smoke: targets not comparable)" } else { "met" });
    let _ = writeln!(s, "{}", "-".repeat(76));
    for f in r.figures() {
        let _ = writeln!(s, "{:<44} {:>12}  {:<10} {}", f.label, f.value_text(), f.target_text(), if smoke { "" } else { f.met() });
    }
    if let Some(o) = &r.orders {
        let _ = writeln!(s);
        for (name, l) in [("spread, closed", &o.closed), ("spread, open", &o.open), ("hot bank, closed", &o.hot)] {
            let _ = writeln!(s, "{name:<17} {}", l.summary().replace('\n', "\n                  "));
        }
    }
    for run in r.instances.iter().flatten() {
        let name = format!("{} instance(s)", run.instances);
        let _ = writeln!(s, "{name:<17} {}", run.load.summary().replace('\n', "\n                  "));
    }
    if let Some(e) = &r.eod {
        let _ = writeln!(
            s,
            "end of day        {} plans, {} installments, {} due on {}, {} unpaid: {:.2} s ({:.0} due installments/s); nothing due: {:.3} s",
            e.plans,
            e.installments,
            e.due_on_d0,
            e.d0,
            e.unpaid,
            e.due.secs,
            e.installments_per_sec(),
            e.nothing_due.secs
        );
    }
    if let Some((n, _)) = &r.notices {
        let _ = writeln!(s, "notices           {}", n.summary());
    }
    let _ = write!(s, "total {:.0} s", r.total_secs);
    s
}

/// Round trips to the database of one batch of orders (service::orders::batch): begin; the reads
/// with the claims; the stripes locked; those banks' stripes read; the writes; the idempotency
/// records; commit. (A batch of one takes the single path: about as many.)
const BATCH_ROUND_TRIPS: u32 = 7;

/// What bounds orders/s on this machine: the CPU each order costs PostgreSQL and the service,
/// against what a pgbench transaction costs PostgreSQL.
fn bound_md(s: &mut String, r: &Results, o: &OrderResults) {
    let (Some(pg), Some(order_pg_ms), Some(service_ms), Some(ceiling)) = (
        r.pgbench.as_ref(),
        cpu_ms_per(o.closed_obs.cpu.postgres, o.closed.per_sec()),
        cpu_ms_per(o.closed_obs.cpu.service, o.closed.per_sec()),
        r.ratio_ceiling(),
    ) else {
        return;
    };
    let cores = o.closed_obs.cpu.cores;
    let _ = writeln!(
        s,
        "### What bounds orders/s here
"
    );
    let _ = writeln!(
        s,
        "The closed loops keep all {cores} cores busy, so orders/s is CPU-bound: each order cost PostgreSQL **{order_pg_ms:.3} ms** \
         of CPU and the service {service_ms:.3} ms, where a pgbench transaction cost PostgreSQL {:.3} ms ({:.1}× less). Even with a \
         service and a load generator that cost nothing, {cores} cores of PostgreSQL would run at most {:.0} orders/s: a ratio of \
         **{ceiling:.3}** to this run's pgbench. An order is about {:.0} statements of its batch's transaction, writing {:.0} rows (the order, \
         its hold, two journal entries and their lines, three notices and the idempotency record) and updating {:.0} (the credit \
         line, an exposure stripe, and each notice's read position once committed), where TPC-B writes one row and updates three: \
         {:.0} WAL records (every row and every index entry is one) against {:.0} for a pgbench transaction.\n",
        pg.pg_cpu_ms_per_tx(),
        order_pg_ms / pg.pg_cpu_ms_per_tx().max(1e-9),
        cores as f64 * 1000.0 / order_pg_ms,
        o.closed_obs.db.statement_calls as f64 / o.closed.requests.max(1) as f64,
        o.closed_obs.db.rows_inserted as f64 / o.closed.requests.max(1) as f64,
        o.closed_obs.db.rows_updated as f64 / o.closed.requests.max(1) as f64,
        o.closed_obs.db.wal_records as f64 / o.closed.requests.max(1) as f64,
        pg.obs.db.wal_records as f64 / pg.transactions.unwrap_or(0).max(1) as f64,
    );
    if let Some(c) = &r.statement_costs {
        protocol_md(s, r, o, c, order_pg_ms + service_ms);
    }
    wal_md(s, r, o);
}

/// What the statements and round trips of an order cost, batched, and what a ratio of 1 allows.
fn protocol_md(s: &mut String, r: &Results, o: &OrderResults, c: &crate::pgbench::StatementCosts, order_ms: f64) {
    let (Some(pg), cores) = (r.pgbench.as_ref(), o.closed_obs.cpu.cores) else { return };
    let statements = o.closed_obs.db.statement_calls as f64 / o.closed.requests.max(1) as f64;
    let per_batch = o.closed.batches.as_ref().map_or(1.0, |b| b.per_batch());
    let round_trips = BATCH_ROUND_TRIPS as f64 / per_batch;
    let protocol_ms = (statements * c.statement_us + round_trips * c.round_trip_us) / 1000.0;
    let _ = writeln!(
        s,
        "Orders are placed in batches ({:.1} orders a batch in the closed loop): a batch is {BATCH_ROUND_TRIPS} round trips \
         (begin; the reads with the idempotency claims; the exposure stripes locked, then read; the writes; the idempotency \
         records; commit), so an order's {statements:.1} statements and {round_trips:.2} round trips take about \
         {protocol_ms:.2} ms of the {order_ms:.3} ms of CPU it costs PostgreSQL and the service together, at this machine's \
         {:.1} µs a statement and {:.1} µs a round trip (pgbench above, with the cheapest statement there is). The rest is \
         the work itself: rows, index entries and WAL written, the commit, the HTTP request and its JSON, and the keyed \
         hashing and sealing of the customer's identity. A ratio of 1 allows at most {:.3} ms for all of it on these \
         {cores} cores (0.5: {:.3} ms).\n",
        per_batch,
        c.statement_us,
        c.round_trip_us,
        cores as f64 * 1000.0 / pg.tps.max(1e-9),
        cores as f64 * 1000.0 / (0.5 * pg.tps).max(1e-9),
    );
}

/// Where PostgreSQL's writes go, per order against per pgbench transaction, from the WAL.
fn wal_md(s: &mut String, r: &Results, o: &OrderResults) {
    let (Some(pg), n) = (r.pgbench.as_ref(), o.closed.requests.max(1) as f64) else { return };
    if o.closed_obs.wal_kinds.is_empty() {
        return;
    }
    let count = |kinds: &[crate::observe::WalKind], prefix: &str, per: f64| {
        kinds.iter().filter(|k| k.kind.starts_with(prefix)).map(|k| k.records as f64).sum::<f64>() / per.max(1.0)
    };
    let tx = pg.transactions.unwrap_or(0) as f64;
    let _ = writeln!(
        s,
        "The WAL says what that work is: an order wrote {:.1} heap records and {:.1} index records (`Heap*`, `Btree*` in \
         `pg_waldump --stats=record`), a pgbench transaction {:.1} and {:.1}. Each row and each index entry is written, \
         logged and later vacuumed: what would reach a ratio of 1 is fewer of them per order (the notices one row per \
         event rather than one per recipient, and positioned as they are written rather than updated after; the journal \
         lines folded into their entry; fewer indexes on orders and notices), and the service's own share (HTTP, JSON, \
         the identity's hashing and sealing) on cores PostgreSQL does not need. No setting of this machine does it.\n",
        count(&o.closed_obs.wal_kinds, "Heap", n),
        count(&o.closed_obs.wal_kinds, "Btree", n),
        count(&pg.obs.wal_kinds, "Heap", tx),
        count(&pg.obs.wal_kinds, "Btree", tx),
    );
}

/// The closed loop with 1, 2 and 3 instances: a table, and what bounds the rate.
fn instances_md(s: &mut String, r: &Results, runs: &[InstancesRun]) {
    let p = &r.params;
    let _ = writeln!(s, "### 1, 2 and 3 service instances on one database\n");
    let _ = writeln!(
        s,
        "After the notices phase, with the service above stopped: for each count, that many `creditphone serve` processes \
         started afresh on the same order database, each with a database pool of ⌈{} ÷ n⌉ (so about {} sessions in all at \
         every count), and the closed loop's {} connections spread round-robin over their URLs. Each count runs **{} s** \
         (shorter than the phases above, to keep the run short){}, after a `VACUUM (ANALYZE)`. \"CPU\" is average cores busy; \
         the service's is the sum over its instances, each one's in brackets.\n",
        p.service_pool_size,
        p.service_pool_size,
        p.connections,
        p.instances_secs,
        if p.warmup.is_zero() { String::new() } else { format!(" after a {} s warm-up", p.warmup.as_secs()) }
    );
    let _ = writeln!(
        s,
        "| instances | pool each | orders/s | p50 ms | p99 ms | errors | CPU service | CPU PostgreSQL | CPU machine (others) | PostgreSQL CPU ms/order | service CPU ms/order |"
    );
    let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |");
    for run in runs {
        let (l, c) = (&run.load, &run.obs.cpu);
        let ms = |cores| cpu_ms_per(cores, l.per_sec()).map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            s,
            "| {} | {} | **{:.1}** | {:.1} | {:.1} | {} | {:.2}{} | {:.2} | {:.2} of {} ({:.2}) | {} | {} |",
            run.instances,
            run.pool_each,
            l.per_sec(),
            l.latency.p50,
            l.latency.p99,
            l.errors,
            c.service,
            if run.instances > 1 { format!(" ({})", crate::instances::per_instance(&run.obs)) } else { String::new() },
            c.postgres,
            c.machine,
            c.cores,
            c.others(),
            ms(c.postgres),
            ms(c.service)
        );
    }
    let _ = writeln!(s);
    if let Some(sentence) = instances_bound(runs) {
        let _ = writeln!(s, "{sentence}\n");
    }
}

/// What bounds the rate across the instance counts, from the measured rates and CPU.
fn instances_bound(runs: &[InstancesRun]) -> Option<String> {
    let one = runs.iter().find(|r| r.instances == 1)?;
    let most = runs.iter().max_by_key(|r| r.instances)?;
    let (r1, rn) = (one.load.per_sec(), most.load.per_sec());
    if r1 <= 0.0 || most.instances < 2 {
        return None;
    }
    let gain = rn / r1;
    let c = &most.obs.cpu;
    let cores = c.cores as f64;
    let pg_ms = cpu_ms_per(c.postgres, rn)?;
    let mut s = format!("With {} instances the rate is **{gain:.2}×** that of one. ", most.instances);
    if gain >= 1.1 {
        let _ = write!(
            s,
            "More service processes raised it, so at one instance the service process was a bound (it used {:.2} cores then); ",
            one.obs.cpu.service
        );
    } else {
        let _ =
            write!(s, "More service processes did not raise it (by less than 10%), so the service process is not what bounds the rate; ");
    }
    if c.machine >= 0.9 * cores {
        let _ = write!(
            s,
            "the bound is the CPU of these {} cores, all busy ({:.2}), which PostgreSQL, the instances and the load generator share{}: \
             PostgreSQL used {:.2} of them, {pg_ms:.3} ms per order, which alone caps the rate at {:.0} orders/s however many \
             instances there are. More instances on the same cores only add processes competing for them; on a machine where the \
             database has its own cores, the database's CPU per order is the figure that sets the ceiling.",
            c.cores,
            c.machine,
            if c.others() >= 0.1 { format!(" with other processes on the machine ({:.2} cores)", c.others()) } else { String::new() },
            c.postgres,
            cores * 1000.0 / pg_ms
        );
    } else {
        let wait = most.obs.waits.iter().find(|(k, _)| k != "active: on CPU").map(|(k, v)| format!("`{k}` ({v:.1} sessions on average)"));
        let _ = write!(
            s,
            "the cores were not all busy ({:.2} of {}), so the bound is what the database's sessions wait for{}.",
            c.machine,
            c.cores,
            wait.map_or(String::new(), |w| format!(", most of all {w}"))
        );
    }
    Some(s)
}

fn obs_md(s: &mut String, o: &Observation, who: &str, work: Option<(u64, &str)>) {
    let c = &o.cpu;
    if let Some((n, unit)) = work {
        let _ = writeln!(
            s,
            "- Database, {} (statements: `pg_stat_statements`, exact; ≈: `pg_stat_database`, which backends publish about once a second).",
            o.db.per(n, unit)
        );
        if let Some(line) = o.wal_kinds_line(n, unit, 10) {
            let _ = writeln!(s, "- {line}.");
        }
    }
    let _ = writeln!(
        s,
        "- CPU, average cores busy over {:.1} s: {who} {:.2}, PostgreSQL {:.2}, this harness {:.2}; whole machine {:.2} of {} \
         (other processes: {:.2}).",
        o.wall_secs,
        c.service,
        c.postgres,
        c.bench,
        c.machine,
        c.cores,
        c.others()
    );
    if !o.waits.is_empty() {
        let parts: Vec<String> = o.waits.iter().take(8).map(|(k, v)| format!("`{k}` {v:.2}")).collect();
        let _ = writeln!(
            s,
            "- Database sessions, average over {} samples of `pg_stat_activity` (100 ms apart): {}.",
            o.samples,
            parts.join(", ")
        );
    }
    let _ = writeln!(s, "- {}.", capitalized(&o.maintenance_line(12)));
    if !o.statements.is_empty() {
        let _ = writeln!(s, "- Statements by total time (`pg_stat_statements`):\n");
        let _ = writeln!(s, "  | calls | total ms | mean ms | statement |");
        let _ = writeln!(s, "  | ---: | ---: | ---: | --- |");
        for st in &o.statements {
            let q = st.query.replace('|', "\\|");
            let _ = writeln!(s, "  | {} | {:.0} | {:.3} | `{}` |", st.calls, st.total_ms, st.mean_ms, q);
        }
    }
    let _ = writeln!(s);
}

fn load_md(s: &mut String, title: &str, l: &LoadResult, o: &Observation) {
    let _ = writeln!(s, "### {title}\n");
    let p = &l.latency;
    let _ = writeln!(
        s,
        "- {} requests in {:.1} s (planned {:.0} s) over {} connections{}: **{} ok, {} errors**, **{:.1} orders/s**.",
        l.requests,
        l.elapsed_secs,
        l.planned_secs,
        l.connections,
        l.rate.map_or(String::new(), |r| format!(" at a fixed {r:.1} requests/s")),
        l.ok,
        l.errors,
        l.per_sec()
    );
    let _ = writeln!(
        s,
        "- Latency of successful orders, ms: p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1} (mean {:.1}).",
        p.p50, p.p95, p.p99, p.max, p.mean
    );
    if let Some(late) = l.late {
        let _ = writeln!(s, "- Started more than 5 ms after their due time: {late} (their lateness is in the latency).");
        let _ = writeln!(s, "- Slow answers by second: {}.", l.slow_seconds_line(10));
    }
    if let Some(b) = &l.batches {
        let _ = writeln!(s, "- Batches (the service's `/metrics`): {}.", b.line());
        if let Some(steps) = b.steps_line() {
            let _ = writeln!(s, "- In {steps}.");
        }
    }
    if l.errors > 0 {
        let _ = writeln!(s, "- Errors: {}.", l.error_summary().replace('|', "/"));
    }
    obs_md(s, o, "service", Some((l.requests, "order")));
}

fn eod_run_md(s: &mut String, title: &str, run: &EodRun) {
    let _ = writeln!(s, "### {title}\n");
    let _ = writeln!(s, "- Business date {}: **{:.3} s**.", run.date, run.secs);
    let _ = writeln!(s, "- Summary: `{}`", run.summary);
    for p in &run.phases {
        let _ = writeln!(s, "- {p}");
    }
    for plan in &run.slow_plans {
        let _ = writeln!(s, "- A statement over 1 s (auto_explain):\n\n```\n{plan}\n```\n");
    }
    obs_md(s, &run.obs, "creditphone end of day (in this process)", Some((1, "run")));
}

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let p = &r.params;
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `bench/run`{} on {} ({:.0} s in all), source `{}`. Do not edit by hand: run it again.\n",
        if p.smoke { " --smoke (a short check of the harness: the figures mean nothing)" } else { "" },
        r.machine.date,
        r.total_secs,
        r.machine.source
    );
    let _ = writeln!(s, "## Figures\n");
    let _ = writeln!(s, "| figure | key | value | target | met |");
    let _ = writeln!(s, "| --- | --- | ---: | --- | --- |");
    for f in r.figures() {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} |",
            f.label,
            f.key,
            f.value_text(),
            f.target_text(),
            if p.smoke { "" } else { f.met() }
        );
    }
    let _ = writeln!(s, "\n```\nBENCH {}\n```\n", bench_json(r));

    let _ = writeln!(s, "## Machine\n");
    let m = &r.machine;
    let _ = writeln!(s, "- {} cores (`nproc`), {}; {:.1} GiB memory; Linux {}.", m.cores, m.cpu_model, m.memory_gib, m.kernel);
    let _ = writeln!(s, "- Load average when the run started: {}.", m.load_average);
    let _ = writeln!(
        s,
        "- PostgreSQL, the service and the load generator (this harness, in Rust) **share these {} cores**: every figure \
         includes the cost of the other two. Everything talks over 127.0.0.1 and a unix socket.",
        m.cores
    );
    let _ = writeln!(
        s,
        "- PostgreSQL is a throwaway cluster (`initdb` in a directory under /tmp, removed afterwards), durable: fsync and \
         synchronous commit on. `SHOW`:\n"
    );
    let _ = writeln!(s, "  | setting | value |\n  | --- | --- |");
    for (k, v) in &r.settings {
        let _ = writeln!(s, "  | `{k}` | {v} |");
    }
    let _ = writeln!(s);
    let (mb, segments) = r.wal_preallocated;
    let _ = writeln!(
        s,
        "- Before the first phase the cluster writes {mb} MiB of WAL (logical messages, no table) and checkpoints, leaving \
         {segments} WAL segment files ready for reuse, as a database in service has them. A new cluster instead creates and \
         zero-fills each 16 MiB segment the first time it reaches it while every commit waits (`IO/WALInitWrite`): at a few \
         hundred orders a second, a stall of tens of milliseconds every few seconds, which is a fresh cluster's, not the \
         service's.\n"
    );

    if let Some(pg) = &r.pgbench {
        let _ = writeln!(s, "## 1. pgbench (the machine's reference)\n");
        let _ = writeln!(
            s,
            "`pgbench -i -s {}` ({:.1} s), then `{}`: **{:.0} tps** (TPC-B-like: 5 statements and a commit per transaction){}{}.\n",
            pg.scale,
            pg.init_secs,
            pg.command,
            pg.tps,
            pg.latency_avg_ms.map_or(String::new(), |l| format!(", average latency {l:.2} ms")),
            pg.transactions.map_or(String::new(), |t| format!(", {t} transactions"))
        );
        let _ = writeln!(s, "- {}", pg.obs.cpu_line().replace("service 0.00, ", ""));
        let _ = writeln!(s, "- PostgreSQL CPU per transaction: {:.3} ms.", pg.pg_cpu_ms_per_tx());
        if let Some(line) = pg.obs.wal_kinds_line(pg.transactions.unwrap_or(0), "transaction", 10) {
            let _ = writeln!(s, "- {line}.");
        }
        if let Some(c) = &r.statement_costs {
            let _ = writeln!(
                s,
                "- What a statement and a round trip cost, PostgreSQL and its client together: `{}` with `SELECT 1` alone, 21 of \
                 them in one pipeline, 21 one after the other (read-only: no commit to flush): a statement **{:.1} µs** of CPU, \
                 a round trip **{:.1} µs** more.",
                c.command, c.statement_us, c.round_trip_us
            );
        }
        let _ = writeln!(s);
    }

    if let Some(o) = &r.orders {
        let _ = writeln!(s, "## 2-3. `POST /v1/orders` over HTTP\n");
        let _ = writeln!(
            s,
            "The release `creditphone serve` (its own process: {} HTTP workers = cores, database pool {}, log level warn, end of \
             day off, notice workers on) on its own database. Seeded through the API in {:.1} s: one provider, {} banks each \
             covering one province and {} stores in those provinces, one more bank alone in another province with {} \"hot\" \
             stores, a bank for the notices phase, one product (12 months at 18%) open in all those provinces, and {} \
             customers' credit lines with limits that never run out. Every order: principal 3000.00 (device 3999, down \
             payment 999), a unique `out_order_no` and `Idempotency-Key`, round-robin over customers and stores, so no credit \
             line is hot. {}`VACUUM (ANALYZE)` precedes each order phase (as pgbench vacuums its tables before its run), \
             so no phase pays for the autovacuum the previous one's writes called for (pgbench's database, kept for the open-loop \
             reference, is vacuumed after its runs for the same reason); autovacuum still runs within the phases.\n",
            m.cores,
            p.service_pool_size,
            r.seed_http_secs,
            r.layout.spread_banks,
            r.layout.spread_stores,
            r.layout.hot_stores,
            p.customers,
            if p.warmup.is_zero() {
                String::new()
            } else {
                format!("A {} s closed-loop warm-up precedes the measurements. ", p.warmup.as_secs())
            }
        );
        load_md(&mut s, &format!("Spread over {} banks, closed loop", r.layout.spread_banks), &o.closed, &o.closed_obs);
        load_md(&mut s, "Spread, open loop at half the closed-loop rate", &o.open, &o.open_obs);
        if let Some(pg) = &r.pgbench_open {
            let l = &pg.latency;
            let _ = writeln!(
                s,
                "The reference for this open loop, measured right after the hot-bank phase: `{}`, PostgreSQL's own TPC-B-like \
                 transaction at the same arrival rate, its latency from each transaction's scheduled start (pgbench's \
                 per-transaction log): {} transactions, p50 {:.1}, p95 {:.1}, **p99 {:.1}**, max {:.1} ms.\n",
                pg.command, pg.transactions, l.p50, l.p95, l.p99, l.max
            );
        }
        load_md(&mut s, "Hot bank: every order reserves exposure at one bank, closed loop", &o.hot, &o.hot_obs);
        load_md(
            &mut s,
            "Required confirmation mode (API.md §12): each order, then its provider's confirm, closed loop over the spread stores",
            &o.required,
            &o.required_obs,
        );
        bound_md(&mut s, r, o);
    }
    if let Some(runs) = &r.instances {
        instances_md(&mut s, r, runs);
    }

    if let Some(e) = &r.eod {
        let _ = writeln!(s, "## 4. End of day\n");
        let _ = writeln!(
            s,
            "{} active plans of 12 installments ({} installments) loaded with binary `COPY` straight into the tables (foreign-key \
             triggers off for the load; the rows are consistent by construction and checked afterwards: lines' held = their \
             holds' remaining, holds balance, each exposure stripe's used = the unpaid principal of the orders on it) in {:.1} s, then `VACUUM (ANALYZE)` and \
             `CHECKPOINT` in {:.1} s; the database is {:.0} MiB. All plans were funded on the same date, so installment 3 of \
             every plan ({} installments) is due on {}; installments 1-2 are paid, 90% of installment 3 is paid and {} are not; \
             4-12 are pending. `service::eod::run` (the library, in this process, pool of 4, chunk size {}) then closes the day \
             after grace, and the next day over the same books, when nothing is due. The journal holds no history for these \
             plans (end of day only appends to it).\n",
            e.plans, e.installments, e.copy_secs, e.vacuum_secs, e.database_mb, e.due_on_d0, e.d0, e.unpaid, e.chunk_size
        );
        eod_run_md(&mut s, &format!("After grace: {:.0} due installments/s", e.installments_per_sec()), &e.due);
        eod_run_md(&mut s, "Nothing due", &e.nothing_due);
        let _ = writeln!(
            s,
            "### Reports of a closed date, the operations API, and automatic write-off\n\n\
             - The due date's reports (each bank's and the all-banks reconciliation, the provider's settlement, JSON and CSV; \
             {} movements in the all-banks reconciliation) were rendered and stored by its end of day in **{}**.\n\
             - Then {} plans (every tenth) were made defaulted with SQL in {:.1} s: installments 2-3 unpaid again, the hold \
             released, the exposure raised to match; the product writes off after 30 days. The release service, started on \
             this database, answered (medians of 5 calls over HTTP): `GET /v1/admin/aging?as_of={}` (the first open date: \
             computed now) **{:.1} ms**, `GET /v1/admin/portfolio` **{:.1} ms**, and the closed {}'s stored all-banks \
             reconciliation ({} bytes of JSON) **{:.1} ms**. The console's pages, signed in with the admin key: the aging \
             as of the same date **{:.1} ms**, the overview (portfolio and end-of-day runs) **{:.1} ms**.\n",
            e.report_movements,
            e.reports_store_secs.map_or("(no log line)".to_string(), |v| format!("{v:.2} s")),
            e.defaulted,
            e.defaulted_secs,
            e.api.aging_as_of.map_or("-".to_string(), |d| d.to_string()),
            e.api.aging_ms,
            e.api.portfolio_ms,
            e.due.date,
            e.api.report_bytes,
            e.api.report_read_ms,
            e.api.console_aging_ms,
            e.api.console_overview_ms
        );
        eod_run_md(&mut s, "Automatic write-off of the defaulted plans", &e.write_off);
    }

    if let Some((n, o)) = &r.notices {
        let _ = writeln!(s, "## 5. Webhook notices\n");
        let _ = writeln!(
            s,
            "{} `pending` notices inserted with SQL into the outbox of the order database for one bank whose `webhook_url` is a \
             receiver in the harness (it answers 200 at once), delivered by the service's notice workers ({}): **{} delivered in \
             {:.1} s, {:.0} notices/s**{}, {} dead; the receiver got {} requests. The time runs from the first notice's \
             `created_at` to the last `delivered_at`.\n",
            n.count,
            n.per_recipient,
            n.delivered,
            n.db_secs.unwrap_or(n.secs),
            n.per_sec(),
            if n.complete { "" } else { " (the deadline came first)" },
            n.dead,
            n.received
        );
        obs_md(&mut s, o, "service", Some((n.delivered.max(0) as u64, "notice")));
    }

    let _ = writeln!(s, "## 6. Memory\n");
    let _ = writeln!(
        s,
        "Peak resident set of the service process over phases 2-5 (`VmHWM` in `/proc/<pid>/status`): **{}**.\n",
        r.rss_mb.map_or("unknown".to_string(), |v| format!("{v:.1} MiB"))
    );

    let _ = writeln!(s, "## How to reproduce\n");
    let _ = writeln!(
        s,
        "```sh\nbench/run             # cargo build --release --bins, then the full run (about 5 minutes); rewrites this file\n\
         bench/run --smoke     # seconds per phase and tiny data; what CI runs (tests/bench_smoke.rs), writes nothing\n\
         bench/run --help      # --duration, --instances-duration, --connections, --customers, --plans, --notices, --out, --keep, --only\n```\n"
    );
    let _ = writeln!(
        s,
        "It needs the PostgreSQL server binaries and `pgbench` (Debian's `postgresql` package), and runs as any user (as root \
         the cluster runs as `postgres`). Stop other work on the machine first: the figures are only as quiet as the box. \
         Parameters of this run: pgbench scale {}, {} clients, {} s; HTTP phases {} s each ({} s each with 1, 2 and 3 \
         instances), closed loop at {} connections, open loop with up to {} connections; {} customers; {} plans; {} notices.",
        p.pgbench_scale,
        p.pgbench_clients,
        p.pgbench_secs,
        p.load_secs,
        p.instances_secs,
        p.connections,
        p.open_loop_max_connections,
        p.customers,
        p.plans,
        p.notices
    );
    s
}

/// `text` with its first letter upper case (a report line's start).
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

//! `creditphone-bench`: the benchmark harness (README "Benchmarks", docs/BENCHMARKS.md).
//!
//! On a fresh throwaway PostgreSQL cluster (synchronous commit on) it measures, in order:
//! 1. `pgbench` TPC-B-like: the machine's reference transactions per second;
//! 2. `POST /v1/orders` over HTTP against the release `creditphone serve`, closed loop, then open
//!    loop at half that rate;
//! 3. the same closed loop with every order routed to one bank (the hot-bank case);
//! 4. webhook delivery of pending notices to a local receiver;
//! 5. end of day over a million plans loaded with COPY, and over the same books with nothing due;
//! 6. the service's peak RSS;
//! 7. the closed loop of phase 2 with 1, 2 and 3 service instances on the one database (shorter runs).
//!
//! It prints a table, writes the markdown report and ends with one line `BENCH {json}`.
//! Everything runs on 127.0.0.1 and in a directory under /tmp, and stops by itself.

mod api;
mod cluster;
mod eod;
mod instances;
mod load;
mod notices;
mod observe;
mod pgbench;
mod report;
mod service;

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(name = "creditphone-bench", about = "The creditphone benchmark harness (see docs/BENCHMARKS.md)")]
pub struct Args {
    /// A short run (seconds per phase, tiny data) that checks the harness works; CI runs it.
    #[arg(long)]
    smoke: bool,
    /// Where to write the markdown report [default: docs/BENCHMARKS.md for a full run, none for --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the throwaway directory (cluster, logs) instead of removing it at the end, and the
    /// end-of-day phase's database (its book, after the write-off run) in that cluster.
    #[arg(long)]
    keep: bool,
    /// Seconds of each measured HTTP load phase [default: 30; smoke 2].
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds of each closed loop with 1, 2 and 3 service instances [default: 10; smoke 1].
    #[arg(long)]
    instances_duration: Option<u64>,
    /// Connections of the closed-loop load [default: 48; smoke 8].
    #[arg(long)]
    connections: Option<usize>,
    /// Customers (credit lines) registered for the order phases [default: 20000; smoke 200].
    #[arg(long)]
    customers: Option<usize>,
    /// Active plans loaded for end of day [default: 1000000; smoke 1000].
    #[arg(long)]
    plans: Option<usize>,
    /// Pending notices delivered [default: 100000; smoke 1000].
    #[arg(long)]
    notices: Option<usize>,
    /// Database connections of the service's pool [default: 32].
    #[arg(long)]
    pool_size: Option<usize>,
    /// MiB of WAL written and checkpointed before the first phase [default: 2048; smoke 32; 0: none].
    #[arg(long)]
    wal_preallocate_mb: Option<u64>,
    /// Do not load pg_stat_statements (it costs a little; it names the expensive statements).
    #[arg(long)]
    no_stat_statements: bool,
    /// What source was measured, for the report [default: `git describe --always --dirty` of the crate].
    #[arg(long)]
    source_label: Option<String>,
    /// Run only these phases (comma separated: `pgbench`, `orders` (with notices and instances),
    /// `notices` (the notices phase alone, on a world seeded with at most 100 customers), `open`
    /// (the orders' open loop alone, at `--open-rate`), `eod`) [default: all]; to measure one
    /// change without the minutes of the others. The report is written only with `--out`: a
    /// partial run must not replace the full one.
    #[arg(long, value_delimiter = ',', value_parser = ["pgbench", "orders", "notices", "open", "eod"])]
    only: Vec<String>,
    /// The open loop's arrival rate, orders/s [default: half the closed loop's rate; with
    /// `--only open`, 900]: a fixed rate compares two builds at the same load.
    #[arg(long)]
    open_rate: Option<f64>,
    /// `KEY=VALUE` set in the service's environment after the harness's own (repeatable), to
    /// measure a setting: e.g. `CREDITPHONE__NOTICES__ENABLED=false`, `CREDITPHONE__ORDERS__BATCH_WINDOW_US=500`.
    #[arg(long, value_parser = parse_env_pair)]
    service_env: Vec<(String, String)>,
    /// `KEY=VALUE` passed to the throwaway PostgreSQL server after the harness's own settings
    /// (repeatable), to measure a server setting: e.g. `wal_compression=off`. Shown with `SHOW`.
    #[arg(long, value_parser = parse_env_pair)]
    pg_setting: Vec<(String, String)>,
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s}: expected KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// What one run measures, resolved from the mode and the options.
#[derive(Debug, Clone)]
pub struct Params {
    pub smoke: bool,
    pub pgbench_scale: u32,
    pub pgbench_clients: u32,
    pub pgbench_secs: u64,
    pub warmup: Duration,
    pub load_secs: u64,
    /// Each closed loop of the several-instances phase (instances.rs).
    pub instances_secs: u64,
    pub connections: usize,
    pub open_loop_max_connections: usize,
    pub customers: usize,
    pub plans: usize,
    pub notices: usize,
    pub notices_deadline: Duration,
    pub service_pool_size: usize,
    pub shared_buffers: &'static str,
    /// WAL written and checkpointed before the first phase, so segments are reused as in service.
    pub wal_preallocate_mb: u64,
    pub stat_statements: bool,
    /// The phases to run (`--only`); empty: all.
    pub only: Vec<String>,
    /// `--keep`: the end-of-day database stays in the kept cluster, to query its book afterwards.
    pub keep: bool,
    /// `--open-rate`: the open loop's fixed arrival rate instead of half the closed loop's.
    pub open_rate: Option<f64>,
    /// `--pg-setting`: server settings after the harness's own.
    pub pg_settings: Vec<(String, String)>,
}

impl Params {
    /// Whether phase `name` runs in this invocation.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    fn from_args(a: &Args) -> Params {
        let smoke = a.smoke;
        let pick = |given: Option<usize>, full: usize, small: usize| given.unwrap_or(if smoke { small } else { full });
        let connections = pick(a.connections, 48, 8);
        Params {
            smoke,
            pgbench_scale: if smoke { 1 } else { 10 },
            pgbench_clients: if smoke { 4 } else { 16 },
            pgbench_secs: if smoke { 2 } else { 20 },
            warmup: if smoke { Duration::ZERO } else { Duration::from_secs(3) },
            load_secs: a.duration.unwrap_or(if smoke { 2 } else { 30 }).max(1),
            instances_secs: a.instances_duration.unwrap_or(if smoke { 1 } else { 10 }).max(1),
            connections: connections.max(1),
            open_loop_max_connections: connections.max(1) + 16,
            customers: pick(a.customers, 20_000, 200).max(10),
            plans: pick(a.plans, 1_000_000, 1_000).max(10),
            notices: pick(a.notices, 100_000, 1_000).max(1),
            notices_deadline: Duration::from_secs(if smoke { 60 } else { 1200 }),
            service_pool_size: a.pool_size.unwrap_or(32).max(1),
            shared_buffers: if smoke { "128MB" } else { "1GB" },
            wal_preallocate_mb: a.wal_preallocate_mb.unwrap_or(if smoke { 32 } else { 2048 }),
            stat_statements: !a.no_stat_statements,
            only: a.only.clone(),
            keep: a.keep,
            open_rate: a.open_rate.filter(|r| *r > 0.0),
            pg_settings: a.pg_setting.clone(),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("creditphone-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `block_on` runs on this (the main) thread: children spawned from here (the service) are tied
    // to it by PR_SET_PDEATHSIG, and it lives as long as the process.
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("creditphone-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let params = Params::from_args(&args);
    let _ = service::EXTRA_ENV.set(args.service_env.clone());
    let started = Instant::now();
    let server_bin = server_binary()?;
    let out = match (&args.out, params.smoke || !params.only.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BENCHMARKS.md")),
        (None, true) => None,
    };
    let workdir = make_workdir()?;
    init_logging(&workdir)?;
    println!(
        "creditphone-bench {} mode; work directory {}; server binary {}",
        if params.smoke { "smoke" } else { "full" },
        workdir.display(),
        server_bin.display()
    );
    let mut machine = report::Machine::probe();
    machine.source = args.source_label.clone().unwrap_or_else(source_revision);
    println!("{}", machine.one_line());
    for (k, v) in &args.service_env {
        println!("service environment: {k}={v}");
    }

    let outcome = run_phases(&params, &server_bin, &workdir, machine).await;
    if args.keep {
        println!("kept {}", workdir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&workdir) {
        eprintln!("creditphone-bench: could not remove {}: {e}", workdir.display());
    }
    let mut results = outcome?;
    results.total_secs = started.elapsed().as_secs_f64();

    println!();
    println!("{}", report::table(&results));
    if let Some(path) = &out {
        let md = report::markdown(&results);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
        }
        std::fs::write(path, md).with_context(|| format!("could not write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("BENCH {}", report::bench_json(&results));
    Ok(())
}

/// Every phase, on one cluster that is stopped whatever happens.
async fn run_phases(params: &Params, server_bin: &Path, workdir: &Path, machine: report::Machine) -> Result<report::Results> {
    let mut cluster = cluster::Cluster::start(&workdir.join("pg"), params).await?;
    let result = async {
        let mut results = report::Results::new(params.clone(), machine, cluster.settings.clone());
        results.wal_preallocated = cluster.wal_preallocated;
        // The orders' open loop compares with pgbench at its rate: pgbench runs whenever they do.
        if params.runs("pgbench") || params.runs("orders") {
            results.pgbench = Some(pgbench::run(&cluster, params).await.context("pgbench")?);
            println!("\n== pgbench: what a statement and a round trip cost");
            results.statement_costs = Some(pgbench::statement_costs(&cluster, params, workdir).await.context("pgbench statement costs")?);
            // pgbench's database stays for the open-loop reference; its autovacuum is done now, not in the order phases.
            settle(&cluster, pgbench::DB).await?;
        }
        if params.runs("orders") {
            orders_and_notices(&cluster, params, server_bin, workdir, &mut results).await?;
        } else if params.runs("notices") {
            notices_alone(&cluster, params, server_bin, workdir, &mut results).await?;
        } else if params.runs("open") {
            open_alone(&cluster, params, server_bin, workdir).await?;
        }
        if params.runs("eod") {
            results.eod = Some(eod::run(&cluster, params, workdir, server_bin).await.context("end of day")?);
        }
        anyhow::Ok(results)
    }
    .await;
    if let Err(e) = cluster.stop().await {
        eprintln!("creditphone-bench: stopping PostgreSQL: {e:#}");
    }
    result
}

/// Phases 2, 3 and 5: the service over HTTP, then its notice delivery; its peak RSS at the end;
/// then, with that service stopped, phase 7 on the same database.
async fn orders_and_notices(
    cluster: &cluster::Cluster,
    params: &Params,
    server_bin: &Path,
    workdir: &Path,
    results: &mut report::Results,
) -> Result<()> {
    const DB: &str = "orders";
    cluster.create_database(DB).await?;
    let receiver = notices::Receiver::start().context("the local webhook receiver")?;
    let service = service::Service::start(server_bin, &cluster.url(DB), workdir, "service", params.service_pool_size).await?;
    let outcome = async {
        println!("\n== orders: setting up banks, stores, a product and {} customers over HTTP", params.customers);
        let t = Instant::now();
        let world = api::World::setup(&service, params, &receiver.url()).await.context("seeding over the API")?;
        results.seed_http_secs = t.elapsed().as_secs_f64();
        println!("   seeded in {:.1} s ({} credit lines)", results.seed_http_secs, world.customers.len());
        results.layout = world.layout();

        let spread = load::OrderTarget::new(&world, &[&service], load::Route::Spread)?;
        if !params.warmup.is_zero() {
            let w = load::closed_loop(&spread, "warm", params.connections, params.warmup).await;
            println!("   warm-up: {} orders in {:.1} s", w.ok, w.elapsed_secs);
        }

        settle(cluster, DB).await?;
        println!(
            "\n== orders, spread over {} banks: closed loop, {} connections, {} s",
            world.spread_banks, params.connections, params.load_secs
        );
        let (obs, b0) = (observe::Observer::start(cluster, DB, &[service.pid]).await?, service.batch_counters().await?);
        let mut closed = load::closed_loop(&spread, "spread", params.connections, Duration::from_secs(params.load_secs)).await;
        closed.batches = service.batch_counters().await?.since(&b0);
        let closed_obs = obs.finish().await?;
        println!("   {}", closed.summary());
        print_obs(&closed_obs, closed.requests, "order");
        if closed.ok == 0 {
            bail!("no order succeeded in the closed loop: {}", closed.error_summary());
        }

        let rate = params.open_rate.unwrap_or((closed.per_sec() * 0.5).max(1.0));
        settle(cluster, DB).await?;
        println!("\n== orders: open loop at {rate:.1}/s (half the closed-loop rate), {} s", params.load_secs);
        let (obs, b0) = (observe::Observer::start(cluster, DB, &[service.pid]).await?, service.batch_counters().await?);
        let mut open =
            load::open_loop(&spread, "open", rate, Duration::from_secs(params.load_secs), params.open_loop_max_connections).await;
        open.batches = service.batch_counters().await?.since(&b0);
        let open_obs = obs.finish().await?;
        println!("   {}", open.summary());
        print_obs(&open_obs, open.requests, "order");

        println!(
            "\n== orders, every one to bank {}: closed loop, {} connections, {} s",
            api::HOT_BANK,
            params.connections,
            params.load_secs
        );
        let hot = load::OrderTarget::new(&world, &[&service], load::Route::HotBank)?;
        settle(cluster, DB).await?;
        let (obs, b0) = (observe::Observer::start(cluster, DB, &[service.pid]).await?, service.batch_counters().await?);
        let mut hot_closed = load::closed_loop(&hot, "hot", params.connections, Duration::from_secs(params.load_secs)).await;
        hot_closed.batches = service.batch_counters().await?.since(&b0);
        let hot_obs = obs.finish().await?;
        println!("   {}", hot_closed.summary());
        print_obs(&hot_obs, hot_closed.requests, "order");

        let (required, required_obs) = required_mode(cluster, params, &world, &service).await?;

        results.orders =
            Some(report::OrderResults { closed, closed_obs, open, open_obs, hot: hot_closed, hot_obs, required, required_obs });
        results.pgbench_open = Some(pgbench::open_loop(cluster, params, rate, workdir).await.context("pgbench at the open-loop rate")?);

        results.notices = Some(notices_phase(cluster, DB, &receiver, &service, params, false).await?);
        anyhow::Ok(world)
    }
    .await;
    results.rss_mb = service.peak_rss_mb();
    results.service_log_tail = service.log_tail(15);
    if let Err(e) = service.stop().await {
        eprintln!("creditphone-bench: stopping the service: {e:#}");
    }
    let outcome = match outcome {
        Ok(world) => {
            println!("\n== several instances on the one database: {:?}", instances::COUNTS);
            instances::run(cluster, DB, params, server_bin, workdir, &world)
                .await
                .context("several service instances")
                .map(|runs| results.instances = Some(runs))
        }
        Err(e) => Err(e),
    };
    receiver.stop();
    outcome
}

/// The orders' open loop alone (`--only open`), to compare two builds at one fixed rate in a
/// minute: the world of phase 2, its warm-up, then the open loop at `--open-rate` (900/s unless
/// given), observed and printed as in the full run.
async fn open_alone(cluster: &cluster::Cluster, params: &Params, server_bin: &Path, workdir: &Path) -> Result<()> {
    const DB: &str = "orders";
    cluster.create_database(DB).await?;
    let receiver = notices::Receiver::start().context("the local webhook receiver")?;
    let service = service::Service::start(server_bin, &cluster.url(DB), workdir, "service", params.service_pool_size).await?;
    let outcome = async {
        let world = api::World::setup(&service, params, &receiver.url()).await.context("seeding over the API")?;
        let spread = load::OrderTarget::new(&world, &[&service], load::Route::Spread)?;
        if !params.warmup.is_zero() {
            let w = load::closed_loop(&spread, "warm", params.connections, params.warmup).await;
            println!("   warm-up: {} orders in {:.1} s", w.ok, w.elapsed_secs);
        }
        settle(cluster, DB).await?;
        let rate = params.open_rate.unwrap_or(900.0);
        println!("\n== orders: open loop at {rate:.1}/s, {} s", params.load_secs);
        let (obs, b0) = (observe::Observer::start(cluster, DB, &[service.pid]).await?, service.batch_counters().await?);
        let mut open =
            load::open_loop(&spread, "open", rate, Duration::from_secs(params.load_secs), params.open_loop_max_connections).await;
        open.batches = service.batch_counters().await?.since(&b0);
        let open_obs = obs.finish().await?;
        println!("   {}", open.summary());
        print_obs(&open_obs, open.requests, "order");
        for s in open_obs.statements.iter().take(12) {
            println!("   {:>7} calls {:>9.0} ms {:>8.3} ms/call  {}", s.calls, s.total_ms, s.mean_ms, s.query);
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = service.stop().await {
        eprintln!("creditphone-bench: stopping the service: {e:#}");
    }
    receiver.stop();
    outcome
}

/// Phase 5 alone (`--only notices`), to measure delivery in seconds rather than the minutes of the
/// order phases: the service on a fresh order database seeded as for phase 2 but with at most 100
/// customers (delivery reads none of them), then the notices phase, with its statements printed.
async fn notices_alone(
    cluster: &cluster::Cluster,
    params: &Params,
    server_bin: &Path,
    workdir: &Path,
    results: &mut report::Results,
) -> Result<()> {
    const DB: &str = "orders";
    cluster.create_database(DB).await?;
    let receiver = notices::Receiver::start().context("the local webhook receiver")?;
    let service = service::Service::start(server_bin, &cluster.url(DB), workdir, "service", params.service_pool_size).await?;
    let outcome = async {
        let small = Params { customers: params.customers.min(100), ..params.clone() };
        api::World::setup(&service, &small, &receiver.url()).await.context("seeding over the API")?;
        settle(cluster, DB).await?;
        results.notices = Some(notices_phase(cluster, DB, &receiver, &service, params, true).await?);
        anyhow::Ok(())
    }
    .await;
    results.rss_mb = service.peak_rss_mb();
    results.service_log_tail = service.log_tail(15);
    if let Err(e) = service.stop().await {
        eprintln!("creditphone-bench: stopping the service: {e:#}");
    }
    receiver.stop();
    outcome
}

/// Phase 5: the pending notices delivered by `service` to the local receiver, observed;
/// `statements` prints the statements it ran (the notices phase alone).
async fn notices_phase(
    cluster: &cluster::Cluster,
    db: &str,
    receiver: &notices::Receiver,
    service: &service::Service,
    params: &Params,
    statements: bool,
) -> Result<(notices::NoticeResult, observe::Observation)> {
    println!("\n== notices: {} pending to a local receiver", params.notices);
    let obs = observe::Observer::start(cluster, db, &[service.pid]).await?;
    let delivered = notices::run(cluster, db, receiver, params).await?;
    let obs = obs.finish().await?;
    println!("   {}", delivered.summary());
    print_obs(&obs, delivered.delivered.max(0) as u64, "notice");
    for s in obs.statements.iter().filter(|_| statements) {
        println!("   {:>7} calls {:>9.0} ms {:>8.3} ms/call  {}", s.calls, s.total_ms, s.mean_ms, s.query);
    }
    Ok((delivered, obs))
}

/// The spread closed loop through the provider in `required` confirmation mode (API.md §12):
/// each order, then its provider's confirm.
async fn required_mode(
    cluster: &cluster::Cluster,
    params: &Params,
    world: &api::World,
    service: &service::Service,
) -> Result<(load::LoadResult, observe::Observation)> {
    const DB: &str = "orders";
    println!(
        "\n== orders through provider {} (required confirmation): order then confirm, closed loop, {} connections, {} s",
        api::REQUIRED_PROVIDER,
        params.connections,
        params.load_secs
    );
    let target = load::OrderTarget::new(world, &[service], load::Route::Required)?;
    settle(cluster, DB).await?;
    let (obs, b0) = (observe::Observer::start(cluster, DB, &[service.pid]).await?, service.batch_counters().await?);
    let mut required = load::closed_loop(&target, "req", params.connections, Duration::from_secs(params.load_secs)).await;
    required.batches = service.batch_counters().await?.since(&b0);
    let required_obs = obs.finish().await?;
    println!("   {}", required.summary());
    print_obs(&required_obs, required.requests, "order");
    if required.ok == 0 {
        bail!("no order was placed and confirmed in the required-mode closed loop: {}", required.error_summary());
    }
    Ok((required, required_obs))
}

/// `VACUUM (ANALYZE)` of a database: of the order database before an order phase, as pgbench
/// vacuums its tables before its run, so a phase does not pay for the autovacuum the previous
/// one's writes called for (seen as a burst of slow answers in the open loop). Autovacuum still
/// runs within the phases.
async fn settle(cluster: &cluster::Cluster, db: &str) -> Result<()> {
    let t = Instant::now();
    cluster.connect(db).await?.batch_execute("VACUUM (ANALYZE)").await.context("VACUUM (ANALYZE) before a phase")?;
    println!("   (VACUUM (ANALYZE) of database {db}: {:.1} s)", t.elapsed().as_secs_f64());
    Ok(())
}

/// `git describe --always --dirty` of the crate the harness was built from, if it is a checkout.
fn source_revision() -> String {
    std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn print_obs(obs: &observe::Observation, n: u64, unit: &str) {
    println!("   {}", obs.cpu_line());
    println!("   {}", obs.waits_line(6));
    println!("   {}", obs.maintenance_line(8));
    println!("   database {}", obs.db.per(n, unit));
    if let Some(line) = obs.wal_kinds_line(n, unit, 6) {
        println!("   {line}");
    }
}

/// The `creditphone` server binary built next to this one (same target directory and profile).
fn server_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this program's path")?;
    let dir = me.parent().context("this program's path has no directory")?;
    let mut candidates = vec![dir.join("creditphone")];
    // Test harnesses may run us from target/<profile>/deps.
    if dir.file_name().is_some_and(|n| n == "deps")
        && let Some(up) = dir.parent()
    {
        candidates.push(up.join("creditphone"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("the creditphone server binary is not next to {} (build it: cargo build --release --bins)", me.display()))
}

/// A fresh directory under /tmp, traversable by the unprivileged user PostgreSQL runs as; leftovers
/// of earlier runs whose process is gone are removed first.
fn make_workdir() -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    remove_stale_workdirs();
    let dir = PathBuf::from(format!("/tmp/cp-bench-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("could not clear {}", dir.display()))?;
    }
    std::fs::create_dir(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).with_context(|| format!("chmod {}", dir.display()))?;
    Ok(dir)
}

fn remove_stale_workdirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("cp-bench-").and_then(|p| p.parse::<i32>().ok()) else { continue };
        if pid == std::process::id() as i32 || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// Library logs (the embedded cluster, end of day's chunks) go to `bench.log` in the work
/// directory, as JSON lines; the end-of-day phase reads its timings back from there.
fn init_logging(workdir: &Path) -> Result<()> {
    let path = workdir.join("bench.log");
    let file = std::fs::File::create(&path).with_context(|| format!("could not create {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_new("info").context("log filter")?;
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::sync::Mutex::new(file)).json().flatten_event(true).try_init();
    Ok(())
}

pub fn log_path(workdir: &Path) -> PathBuf {
    workdir.join("bench.log")
}

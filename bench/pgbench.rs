//! Phase 1: `pgbench` TPC-B-like on the same cluster, the machine's reference transactions per second
//! (with the CPU PostgreSQL spent on each); after the order phases, the same transaction at the
//! orders' open-loop arrival rate, the reference for the open-loop latency.

use crate::Params;
use crate::cluster::Cluster;
use crate::load::Percentiles;
use crate::observe::{Observation, Observer};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

pub const DB: &str = "pgbench";

#[derive(Debug, Clone)]
pub struct PgbenchResult {
    pub scale: u32,
    pub tps: f64,
    pub latency_avg_ms: Option<f64>,
    pub transactions: Option<u64>,
    pub init_secs: f64,
    pub command: String,
    /// CPU and database counters over the measured run (no service: its CPU reads 0).
    pub obs: Observation,
}

impl PgbenchResult {
    /// Milliseconds of PostgreSQL CPU per pgbench transaction.
    pub fn pg_cpu_ms_per_tx(&self) -> f64 {
        if self.tps > 0.0 { self.obs.cpu.postgres / self.tps * 1000.0 } else { 0.0 }
    }
}

/// pgbench TPC-B-like at a fixed arrival rate (`pgbench -R`): its latencies count from each
/// transaction's scheduled start, as the open-loop order load does.
#[derive(Debug, Clone)]
pub struct OpenLoopReference {
    pub transactions: u64,
    pub latency: Percentiles,
    pub command: String,
}

pub async fn run(cluster: &Cluster, params: &Params) -> Result<PgbenchResult> {
    let bin = cluster.bin_dir().join("pgbench");
    if !bin.is_file() {
        bail!("pgbench is not next to the server binaries ({}); install the postgresql package's client tools", bin.display());
    }
    cluster.create_database(DB).await?;
    let conn = |cmd: &mut tokio::process::Command| connect_args(cmd, cluster);
    println!("\n== pgbench: initialising scale {}", params.pgbench_scale);
    let t = Instant::now();
    let mut init = tokio::process::Command::new(&bin);
    conn(&mut init);
    init.args(["-i", "-q", "-s", &params.pgbench_scale.to_string(), DB]);
    run_to_end(init, Duration::from_secs(600)).await.context("pgbench -i")?;
    let init_secs = t.elapsed().as_secs_f64();

    let args = load_args(params, params.pgbench_secs, ["-P".to_string(), if params.smoke { "1" } else { "5" }.to_string()]);
    let command = format!("pgbench -h <socket dir> -p {} -U {} {}", cluster.port(), cluster.user(), args.join(" "));
    println!("== pgbench: {command}");
    let mut bench = tokio::process::Command::new(&bin);
    conn(&mut bench);
    bench.args(&args);
    let observer = Observer::start(cluster, DB, &[]).await?;
    let out = run_to_end(bench, Duration::from_secs(params.pgbench_secs + 120)).await.context("pgbench")?;
    let obs = observer.finish().await?;
    for line in out.lines().filter(|l| l.starts_with("progress:") || l.starts_with("tps") || l.starts_with("latency average")) {
        println!("   {line}");
    }
    let tps = find_number(&out, "tps = ").with_context(|| format!("no `tps = ` in pgbench's output:\n{out}"))?;
    let latency_avg_ms = find_number(&out, "latency average = ");
    let transactions = find_number(&out, "number of transactions actually processed: ").map(|n| n as u64);
    println!("   {}", obs.cpu_line());
    Ok(PgbenchResult { scale: params.pgbench_scale, tps, latency_avg_ms, transactions, init_secs, command, obs })
}

/// What a statement and a round trip cost this machine's CPU (PostgreSQL and its client together),
/// from three read-only pgbench scripts: `SELECT 1` alone; 21 of them in one pipeline (20 more
/// statements); 21 one after the other (20 more round trips).
#[derive(Debug, Clone)]
pub struct StatementCosts {
    pub statement_us: f64,
    pub round_trip_us: f64,
    pub command: String,
}

const STATEMENTS_PER_SCRIPT: usize = 21;

pub async fn statement_costs(cluster: &Cluster, params: &Params, workdir: &std::path::Path) -> Result<StatementCosts> {
    let select = "SELECT 1;\n".repeat(STATEMENTS_PER_SCRIPT);
    let scripts = [("one", "SELECT 1;\n".to_string()), ("piped", format!("\\startpipeline\n{select}\\endpipeline\n")), ("serial", select)];
    let secs = if params.smoke { 1 } else { 5 };
    let mut cpu_us = Vec::new();
    let mut command = String::new();
    for (name, text) in scripts {
        let file = workdir.join(format!("pgbench-{name}.sql"));
        std::fs::write(&file, text).with_context(|| format!("could not write {}", file.display()))?;
        let args =
            load_args(params, secs, ["-n", "-M", "prepared", "-f"].map(String::from).into_iter().chain([file.display().to_string()]));
        command = format!("pgbench {}", args.join(" ").replace(&workdir.display().to_string(), "<dir>"));
        let mut bench = tokio::process::Command::new(cluster.bin_dir().join("pgbench"));
        connect_args(&mut bench, cluster);
        bench.args(&args);
        let observer = Observer::start(cluster, DB, &[]).await?;
        let out = run_to_end(bench, Duration::from_secs(secs + 60)).await.with_context(|| format!("pgbench -f {name}"))?;
        let obs = observer.finish().await?;
        let tps = find_number(&out, "tps = ").with_context(|| format!("no `tps = ` in pgbench's output:\n{out}"))?;
        cpu_us.push(if tps > 0.0 { obs.cpu.machine / tps * 1e6 } else { 0.0 });
    }
    let extra = (STATEMENTS_PER_SCRIPT - 1) as f64;
    let costs = StatementCosts {
        statement_us: (cpu_us[1] - cpu_us[0]) / extra,
        round_trip_us: (cpu_us[2] - cpu_us[1]) / extra,
        command: command.replace("pgbench-serial", "pgbench-{one,piped,serial}"),
    };
    println!(
        "   a statement {:.1} µs of CPU, a round trip {:.1} µs more (machine CPU per script: {:.0}, {:.0}, {:.0} µs)",
        costs.statement_us, costs.round_trip_us, cpu_us[0], cpu_us[1], cpu_us[2]
    );
    Ok(costs)
}

/// The open-loop reference: pgbench at `rate` transactions a second for `params.pgbench_secs`, each
/// transaction's latency read from pgbench's per-transaction log; then the pgbench database is dropped.
pub async fn open_loop(cluster: &Cluster, params: &Params, rate: f64, workdir: &std::path::Path) -> Result<OpenLoopReference> {
    let bin = cluster.bin_dir().join("pgbench");
    let logs = workdir.join("pgbench-open");
    std::fs::create_dir_all(&logs).with_context(|| format!("could not create {}", logs.display()))?;
    let args = load_args(
        params,
        params.pgbench_secs,
        ["-R".to_string(), format!("{rate:.1}"), "-l".to_string(), "--log-prefix".to_string(), logs.join("tx").display().to_string()],
    );
    let command = format!(
        "pgbench -h <socket dir> -p {} -U {} {}",
        cluster.port(),
        cluster.user(),
        args.join(" ").replace(&logs.display().to_string(), "<dir>")
    );
    println!("\n== pgbench at the open-loop rate: {command}");
    let mut bench = tokio::process::Command::new(&bin);
    connect_args(&mut bench, cluster);
    bench.args(&args);
    run_to_end(bench, Duration::from_secs(params.pgbench_secs + 120)).await.context("pgbench -R")?;
    let mut micros = Vec::new();
    for entry in std::fs::read_dir(&logs).with_context(|| format!("could not read {}", logs.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?;
        micros.extend(text.lines().filter_map(transaction_latency_us));
    }
    if micros.is_empty() {
        bail!("pgbench -R logged no transactions in {}", logs.display());
    }
    let transactions = micros.len() as u64;
    let latency = Percentiles::of(micros);
    println!(
        "   {transactions} transactions at {rate:.1}/s: latency ms p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
        latency.p50, latency.p95, latency.p99, latency.max
    );
    cluster.drop_database(DB).await?;
    Ok(OpenLoopReference { transactions, latency, command })
}

/// The latency in a per-transaction log line (`client tx_no time_us script epoch_s epoch_us [lag_us]`),
/// which under `-R` counts from the scheduled start; skipped transactions have none.
fn transaction_latency_us(line: &str) -> Option<u64> {
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `-h <socket dir> -p <port> -U <user>` of the cluster.
fn connect_args(cmd: &mut tokio::process::Command, cluster: &Cluster) {
    cmd.arg("-h").arg(cluster.socket_dir()).arg("-p").arg(cluster.port().to_string()).arg("-U").arg(cluster.user());
}

/// A measured pgbench run's arguments: the configured clients, threads (at most 2), `secs`, then
/// `extra`, then the database.
fn load_args(params: &Params, secs: u64, extra: impl IntoIterator<Item = String>) -> Vec<String> {
    let threads = 2.min(params.pgbench_clients);
    let mut args = vec![
        "-c".to_string(),
        params.pgbench_clients.to_string(),
        "-j".to_string(),
        threads.to_string(),
        "-T".to_string(),
        secs.to_string(),
    ];
    args.extend(extra);
    args.push(DB.to_string());
    args
}

/// Runs to completion within `limit` (killed otherwise); answers stdout and stderr together.
async fn run_to_end(mut cmd: tokio::process::Command, limit: Duration) -> Result<String> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("did not finish within {} s", limit.as_secs()))?
        .context("could not run it")?;
    // pgbench's progress goes to stderr, its summary to stdout.
    let text = format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!("exited with {}:\n{text}", output.status);
    }
    Ok(text)
}

/// The number right after the first `prefix` in `text`.
fn find_number(text: &str, prefix: &str) -> Option<f64> {
    let at = text.find(prefix)? + prefix.len();
    let rest = &text[at..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{find_number, transaction_latency_us};

    #[test]
    fn parses_transaction_log_lines() {
        assert_eq!(transaction_latency_us("0 199 2241 0 1175850568 995598 1034"), Some(2241));
        assert_eq!(transaction_latency_us("3 12 skipped 0 1175850569 1234 88"), None);
        assert_eq!(transaction_latency_us(""), None);
    }

    #[test]
    fn parses_pgbench_output() {
        let out = "number of transactions actually processed: 41234\nlatency average = 7.760 ms\ntps = 2061.708455 (without initial connection time)\n";
        assert_eq!(find_number(out, "tps = "), Some(2061.708455));
        assert_eq!(find_number(out, "latency average = "), Some(7.76));
        assert_eq!(find_number(out, "number of transactions actually processed: "), Some(41234.0));
        assert_eq!(find_number(out, "nothing = "), None);
    }
}

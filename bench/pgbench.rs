//! Phase 1: `pgbench` TPC-B-like on the same cluster, the machine's reference transactions per second.

use crate::Params;
use crate::cluster::Cluster;
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

const DB: &str = "pgbench";

#[derive(Debug, Clone)]
pub struct PgbenchResult {
    pub scale: u32,
    pub tps: f64,
    pub latency_avg_ms: Option<f64>,
    pub transactions: Option<u64>,
    pub init_secs: f64,
    pub command: String,
}

pub async fn run(cluster: &Cluster, params: &Params) -> Result<PgbenchResult> {
    let bin = cluster.bin_dir().join("pgbench");
    if !bin.is_file() {
        bail!("pgbench is not next to the server binaries ({}); install the postgresql package's client tools", bin.display());
    }
    cluster.create_database(DB).await?;
    let conn = |cmd: &mut tokio::process::Command| {
        cmd.arg("-h").arg(cluster.socket_dir()).arg("-p").arg(cluster.port().to_string()).arg("-U").arg(cluster.user());
    };
    println!("\n== pgbench: initialising scale {}", params.pgbench_scale);
    let t = Instant::now();
    let mut init = tokio::process::Command::new(&bin);
    conn(&mut init);
    init.args(["-i", "-q", "-s", &params.pgbench_scale.to_string(), DB]);
    run_to_end(init, Duration::from_secs(600)).await.context("pgbench -i")?;
    let init_secs = t.elapsed().as_secs_f64();

    let threads = 2.min(params.pgbench_clients);
    let args = [
        "-c".to_string(),
        params.pgbench_clients.to_string(),
        "-j".to_string(),
        threads.to_string(),
        "-T".to_string(),
        params.pgbench_secs.to_string(),
        "-P".to_string(),
        if params.smoke { "1".to_string() } else { "5".to_string() },
        DB.to_string(),
    ];
    let command = format!("pgbench -h <socket dir> -p {} -U {} {}", cluster.port(), cluster.user(), args.join(" "));
    println!("== pgbench: {command}");
    let mut bench = tokio::process::Command::new(&bin);
    conn(&mut bench);
    bench.args(&args);
    let out = run_to_end(bench, Duration::from_secs(params.pgbench_secs + 120)).await.context("pgbench")?;
    for line in out.lines().filter(|l| l.starts_with("progress:") || l.starts_with("tps") || l.starts_with("latency average")) {
        println!("   {line}");
    }
    let tps = find_number(&out, "tps = ").with_context(|| format!("no `tps = ` in pgbench's output:\n{out}"))?;
    let latency_avg_ms = find_number(&out, "latency average = ");
    let transactions = find_number(&out, "number of transactions actually processed: ").map(|n| n as u64);
    cluster.drop_database(DB).await?;
    Ok(PgbenchResult { scale: params.pgbench_scale, tps, latency_avg_ms, transactions, init_secs, command })
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
    use super::find_number;

    #[test]
    fn parses_pgbench_output() {
        let out = "number of transactions actually processed: 41234\nlatency average = 7.760 ms\ntps = 2061.708455 (without initial connection time)\n";
        assert_eq!(find_number(out, "tps = "), Some(2061.708455));
        assert_eq!(find_number(out, "latency average = "), Some(7.76));
        assert_eq!(find_number(out, "number of transactions actually processed: "), Some(41234.0));
        assert_eq!(find_number(out, "nothing = "), None);
    }
}

//! What a phase was bound by: CPU time of the service, of PostgreSQL and of this process (the
//! load generator and receiver) over the phase, what the database's sessions were doing
//! (`pg_stat_activity` sampled every 100 ms: lock waits, WAL flushes, idle in transaction), and
//! the statements that took the most time (`pg_stat_statements`).

use crate::cluster::Cluster;
use anyhow::Result;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const TOP_STATEMENTS: i64 = 8;

#[derive(Debug, Clone, Default)]
pub struct Cpu {
    /// Average cores busy over the phase; `service` is the sum over the service's instances.
    pub service: f64,
    /// Each service instance's share of `service`, in the order their pids were given.
    pub services: Vec<f64>,
    pub postgres: f64,
    pub bench: f64,
    /// The whole machine (every process), and its core count.
    pub machine: f64,
    pub cores: usize,
}

impl Cpu {
    /// What processes other than ours used: builds, other tests.
    pub fn others(&self) -> f64 {
        let ours = if (self.service - self.bench).abs() < f64::EPSILON { self.service } else { self.service + self.bench };
        (self.machine - ours - self.postgres).max(0.0)
    }
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub query: String,
}

/// Counters of the database over the phase (`pg_stat_database`, flushed by backends about once a
/// second, so exact to within that) and totals of `pg_stat_statements`.
#[derive(Debug, Clone, Default)]
pub struct DbDelta {
    pub sessions: i64,
    pub commits: i64,
    pub rollbacks: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub statement_calls: i64,
    pub statement_ms: f64,
    /// WAL records written by the database's statements (`pg_stat_statements`, commits included).
    pub wal_records: i64,
    /// WAL written by the whole cluster (`pg_current_wal_lsn()`), exact.
    pub wal_bytes: i64,
}

impl DbDelta {
    /// Per unit of work (an order, a notice), for the report.
    pub fn per(&self, n: u64, unit: &str) -> String {
        let n = n.max(1) as f64;
        format!(
            "per {unit}: {:.1} statements executing {:.2} ms, {:.1} KiB of WAL in {:.1} records; ≈ {:.1} commits, {:.1} rows inserted, {:.1} updated; {} new sessions, {} rollbacks in all",
            self.statement_calls as f64 / n,
            self.statement_ms / n,
            self.wal_bytes as f64 / n / 1024.0,
            self.wal_records as f64 / n,
            self.commits as f64 / n,
            self.rows_inserted as f64 / n,
            self.rows_updated as f64 / n,
            self.sessions,
            self.rollbacks
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub wall_secs: f64,
    pub db: DbDelta,
    pub cpu: Cpu,
    /// (what a session was doing, average number of sessions doing it), most first.
    pub waits: Vec<(String, f64)>,
    pub samples: u64,
    pub statements: Vec<Statement>,
    /// The phase's WAL by record type (`pg_waldump --stats=record`), most bytes first; empty when
    /// it was too much to read back or could not be read.
    pub wal_kinds: Vec<WalKind>,
}

/// One record type's share of a phase's WAL.
#[derive(Debug, Clone, PartialEq)]
pub struct WalKind {
    pub kind: String,
    pub records: u64,
    /// Record and full-page-image bytes together.
    pub bytes: u64,
}

/// A phase's WAL is read back only up to this much (a few seconds of `pg_waldump`).
const WALDUMP_MAX_BYTES: i64 = 1 << 30;

/// The WAL between two LSNs by record type, from `pg_waldump --stats=record`. Best effort: the
/// segments may have been recycled by a checkpoint, and then the figures are left out.
fn wal_kinds((bin, dir): &(PathBuf, PathBuf), from: &str, to: &str) -> Vec<WalKind> {
    let out = std::process::Command::new(bin)
        .arg("--stats=record")
        .arg("-p")
        .arg(dir)
        .args(["-s", from, "-e", to])
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => parse_wal_stats(&String::from_utf8_lossy(&o.stdout)),
        _ => Vec::new(),
    }
}

/// The rows of `pg_waldump --stats=record`: `Type N (%) Record-size (%) FPI-size (%) Combined (%)`.
fn parse_wal_stats(text: &str) -> Vec<WalKind> {
    let mut kinds: Vec<WalKind> = Vec::new();
    for line in text.lines() {
        // The percentages in parentheses, "( 12.34)" or "(100.00)", are dropped before splitting.
        let mut bare = String::with_capacity(line.len());
        let mut depth = 0;
        for ch in line.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => bare.push(c),
                _ => {}
            }
        }
        let f: Vec<&str> = bare.split_whitespace().collect();
        let [kind, n, _record, _fpi, combined] = f[..] else { continue };
        let (Ok(records), Ok(bytes)) = (n.parse::<u64>(), combined.parse::<u64>()) else { continue };
        if kind != "Total" && records > 0 {
            kinds.push(WalKind { kind: kind.to_string(), records, bytes });
        }
    }
    kinds.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.kind.cmp(&b.kind)));
    kinds
}

#[cfg(test)]
mod tests {
    use super::{WalKind, parse_wal_stats};

    #[test]
    fn waldump_stats_are_read_by_record_type() {
        let text = "Type                                           N      (%)          Record size      (%)             FPI size      (%)        Combined size      (%)
----                                           -      ---          -----------      ---             --------      ---        -------------      ---
Heap/INSERT                                  300 ( 60.00)                30000 ( 75.00)                 8000 (100.00)                38000 ( 79.17)
Btree/INSERT_LEAF                            200 ( 40.00)                10000 ( 25.00)                    0 (  0.00)                10000 ( 20.83)
XLOG/NOOP                                      0 (  0.00)                    0 (  0.00)                    0 (  0.00)                    0 (  0.00)
                                        --------                      --------                      --------                      --------
Total                                        500                         40000 [83.33%]                 8000 [16.67%]                48000 [100%]
";
        assert_eq!(
            parse_wal_stats(text),
            vec![
                WalKind { kind: "Heap/INSERT".into(), records: 300, bytes: 38000 },
                WalKind { kind: "Btree/INSERT_LEAF".into(), records: 200, bytes: 10000 },
            ]
        );
    }
}

impl Observation {
    pub fn cpu_line(&self) -> String {
        let c = &self.cpu;
        format!(
            "CPU cores busy: service {:.2}, PostgreSQL {:.2}, load generator {:.2}; machine {:.2} of {} (other processes {:.2})",
            c.service,
            c.postgres,
            c.bench,
            c.machine,
            c.cores,
            c.others()
        )
    }

    /// The record types that wrote the most WAL, per unit of work; `None` when not read.
    pub fn wal_kinds_line(&self, n: u64, unit: &str, top: usize) -> Option<String> {
        if self.wal_kinds.is_empty() {
            return None;
        }
        let n = n.max(1) as f64;
        let parts: Vec<String> = self
            .wal_kinds
            .iter()
            .take(top)
            .map(|k| format!("`{}` {:.1} records {:.2} KiB", k.kind, k.records as f64 / n, k.bytes as f64 / n / 1024.0))
            .collect();
        Some(format!("WAL by record type per {unit} (`pg_waldump --stats=record` over the phase, most bytes first): {}", parts.join(", ")))
    }

    pub fn waits_line(&self, n: usize) -> String {
        let parts: Vec<String> = self.waits.iter().take(n).map(|(k, v)| format!("{k} {v:.1}")).collect();
        format!("sessions (avg): {}", if parts.is_empty() { "-".to_string() } else { parts.join(", ") })
    }
}

pub struct Observer {
    started: Instant,
    cpu0: CpuSnapshot,
    service_pids: Vec<u32>,
    postmaster_pid: Option<u32>,
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<(HashMap<String, u64>, u64)>,
    stats: Option<tokio_postgres::Client>,
    counters: tokio_postgres::Client,
    db0: DbDelta,
    db: String,
    /// Where the phase's WAL starts, and how to read it back (`pg_waldump`, the cluster's `pg_wal`).
    wal_from: String,
    waldump: (PathBuf, PathBuf),
}

impl Observer {
    /// `service_pids`: the processes counted as the service (none, one, or several instances).
    pub async fn start(cluster: &Cluster, db: &str, service_pids: &[u32]) -> Result<Observer> {
        let stats = if cluster.stat_statements {
            let c = cluster.connect("postgres").await?;
            c.execute("SELECT pg_stat_statements_reset()", &[]).await?;
            Some(c)
        } else {
            None
        };
        let sampler_client = cluster.connect("postgres").await?;
        let counters = cluster.connect("postgres").await?;
        let db0 = db_counters(&counters, db).await?;
        let wal_from: String = counters.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await?.get(0);
        let waldump = (cluster.bin_dir().join("pg_waldump"), cluster.data_dir().join("pg_wal"));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample(sampler_client, db.to_string(), stop.clone()));
        // The server's log (`--keep`) has UTC times: this places its entries in the phase.
        println!("   measured from {} UTC", chrono::Utc::now().format("%H:%M:%S%.3f"));
        let postmaster_pid = cluster.postmaster_pid();
        Ok(Observer {
            started: Instant::now(),
            cpu0: CpuSnapshot::take(service_pids, postmaster_pid),
            service_pids: service_pids.to_vec(),
            postmaster_pid,
            stop,
            sampler,
            stats,
            counters,
            db0,
            db: db.to_string(),
            wal_from,
            waldump,
        })
    }

    pub async fn finish(self) -> Result<Observation> {
        let wall = self.started.elapsed().as_secs_f64();
        let cpu1 = CpuSnapshot::take(&self.service_pids, self.postmaster_pid);
        // Backends publish their counters at most once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let db1 = db_counters(&self.counters, &self.db).await?;
        self.stop.store(true, Ordering::Relaxed);
        let (counts, samples) = self.sampler.await.unwrap_or_default();
        let mut waits: Vec<(String, f64)> = counts.into_iter().map(|(k, n)| (k, n as f64 / samples.max(1) as f64)).collect();
        waits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (statements, (calls, ms, wal_records)) = match &self.stats {
            Some(c) => (top_statements(c, &self.db).await?, statement_totals(c, &self.db).await?),
            None => (Vec::new(), (0, 0.0, 0)),
        };
        let d0 = &self.db0;
        let db = DbDelta {
            sessions: db1.sessions - d0.sessions,
            commits: db1.commits - d0.commits,
            rollbacks: db1.rollbacks - d0.rollbacks,
            rows_inserted: db1.rows_inserted - d0.rows_inserted,
            rows_updated: db1.rows_updated - d0.rows_updated,
            wal_bytes: db1.wal_bytes - d0.wal_bytes,
            statement_calls: calls,
            statement_ms: ms,
            wal_records,
        };
        let wal_to: String = self.counters.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await?.get(0);
        let wal_kinds = if db.wal_bytes <= WALDUMP_MAX_BYTES { wal_kinds(&self.waldump, &self.wal_from, &wal_to) } else { Vec::new() };
        Ok(Observation { wall_secs: wall, db, cpu: self.cpu0.until(&cpu1, wall), waits, samples, statements, wal_kinds })
    }
}

async fn sample(client: tokio_postgres::Client, db: String, stop: Arc<AtomicBool>) -> (HashMap<String, u64>, u64) {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut samples = 0;
    let query = "SELECT state, wait_event_type, wait_event, count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'
                 GROUP BY 1, 2, 3";
    let Ok(statement) = client.prepare(query).await else { return (counts, 0) };
    while !stop.load(Ordering::Relaxed) {
        if let Ok(rows) = client.query(&statement, &[&db]).await {
            samples += 1;
            for r in rows {
                let state: Option<String> = r.get(0);
                let kind: Option<String> = r.get(1);
                let event: Option<String> = r.get(2);
                let n: i64 = r.get(3);
                let state = state.unwrap_or_else(|| "?".into());
                let label = match (kind, event) {
                    (Some(k), Some(e)) => format!("{state}: {k}/{e}"),
                    _ if state == "active" => "active: on CPU".to_string(),
                    _ => state,
                };
                *counts.entry(label).or_default() += n as u64;
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    (counts, samples)
}

async fn db_counters(client: &tokio_postgres::Client, db: &str) -> Result<DbDelta> {
    let r = client
        .query_one(
            "SELECT coalesce(sessions, 0)::int8, xact_commit, xact_rollback, tup_inserted, tup_updated,
                    (pg_current_wal_lsn() - '0/0')::int8
             FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .await?;
    Ok(DbDelta {
        sessions: r.get(0),
        commits: r.get(1),
        rollbacks: r.get(2),
        rows_inserted: r.get(3),
        rows_updated: r.get(4),
        wal_bytes: r.get(5),
        ..DbDelta::default()
    })
}

/// Calls and execution time of every statement in `db` since the last reset.
async fn statement_totals(client: &tokio_postgres::Client, db: &str) -> Result<(i64, f64, i64)> {
    let r = client
        .query_one(
            "SELECT coalesce(sum(s.calls), 0)::int8, coalesce(sum(s.total_exec_time), 0)::float8, coalesce(sum(s.wal_records), 0)::int8
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
            &[&db],
        )
        .await?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

async fn top_statements(client: &tokio_postgres::Client, db: &str) -> Result<Vec<Statement>> {
    let rows = client
        .query(
            "SELECT s.calls, s.total_exec_time, s.mean_exec_time, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 140)
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = $1 ORDER BY s.total_exec_time DESC LIMIT $2",
            &[&db, &TOP_STATEMENTS],
        )
        .await?;
    Ok(rows.iter().map(|r| Statement { calls: r.get(0), total_ms: r.get(1), mean_ms: r.get(2), query: r.get(3) }).collect())
}

/// CPU seconds used so far by each party, and the machine's busy and total time.
#[derive(Debug, Clone, Default)]
struct CpuSnapshot {
    services: Vec<f64>,
    postgres: f64,
    bench: f64,
    machine_busy: f64,
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (ppid, utime + stime, cutime + cstime) in ticks, from /proc/<pid>/stat.
fn proc_times(pid: u32) -> Option<(u32, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((f.get(1)?.parse().ok()?, num(11)? + num(12)?, num(13)? + num(14)?))
}

impl CpuSnapshot {
    fn take(service_pids: &[u32], postmaster_pid: Option<u32>) -> CpuSnapshot {
        let tick = ticks_per_sec();
        let services = service_pids.iter().map(|pid| proc_times(*pid).map_or(0.0, |t| t.1) / tick).collect();
        let bench = proc_times(std::process::id()).map_or(0.0, |t| t.1);
        // The postmaster with its reaped children, plus every live child (backends, walwriter, ...).
        let mut postgres = 0.0;
        if let Some(pm) = postmaster_pid {
            postgres += proc_times(pm).map_or(0.0, |t| t.1 + t.2);
            if let Ok(entries) = std::fs::read_dir("/proc") {
                for e in entries.flatten() {
                    let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                    if let Some((ppid, own, _)) = proc_times(pid)
                        && ppid == pm
                    {
                        postgres += own;
                    }
                }
            }
        }
        let machine_busy = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_string();
                let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                Some(v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum::<f64>())
            })
            .unwrap_or(0.0);
        CpuSnapshot { services, postgres: postgres / tick, bench: bench / tick, machine_busy: machine_busy / tick }
    }

    fn until(&self, later: &CpuSnapshot, wall: f64) -> Cpu {
        let per = |a: f64, b: f64| if wall > 0.0 { ((b - a) / wall).max(0.0) } else { 0.0 };
        let services: Vec<f64> = self.services.iter().zip(&later.services).map(|(a, b)| per(*a, *b)).collect();
        Cpu {
            service: services.iter().sum(),
            services,
            postgres: per(self.postgres, later.postgres),
            bench: per(self.bench, later.bench),
            machine: per(self.machine_busy, later.machine_busy),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

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
    /// The autovacuums and autoanalyzes that ended within the phase, from the server's log.
    pub maintenance: Vec<Maintenance>,
}

/// An autovacuum or autoanalyze the server logged (`log_autovacuum_min_duration` 0): what ran
/// beside the phase's own work, on the same cores, to place against its slow seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// `vacuum` or `analyze`.
    pub kind: String,
    pub table: String,
    /// When it started, seconds from the phase's start (negative: before it), and how long it ran.
    pub from_secs: f64,
    pub elapsed_secs: f64,
    /// Its CPU time, user and system.
    pub cpu_secs: f64,
}

/// At most this many log lines are read for one autovacuum's figures (PostgreSQL 15 writes 9).
const MAINTENANCE_DETAIL_MAX_LINES: usize = 16;

/// The autovacuums and autoanalyzes in `log` (the server's, from the phase's start on), each
/// placed against `phase_start`. Best effort: an entry without its `system usage` line is left out.
pub fn maintenance_in(log: &str, phase_start: chrono::DateTime<chrono::Utc>) -> Vec<Maintenance> {
    let lines: Vec<&str> = log.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((at, rest)) = line.split_once(" UTC [") else { continue };
        let Some((_, message)) = rest.split_once("] LOG:  automatic ") else { continue };
        let Some((kind, table)) = message.split_once(" of table \"") else { continue };
        let Ok(ended) = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.3f") else { continue };
        let detail = lines[i + 1..].iter().take(MAINTENANCE_DETAIL_MAX_LINES).take_while(|l| l.starts_with('\t'));
        let Some(usage) = detail.filter_map(|l| l.trim().strip_prefix("system usage: CPU: ")).next() else { continue };
        let figure = |name: &str| -> Option<f64> { usage.split(", ").find_map(|p| p.strip_prefix(name)?.strip_suffix(" s")?.parse().ok()) };
        let (Some(user), Some(system), Some(elapsed)) = (figure("user: "), figure("system: "), figure("elapsed: ")) else { continue };
        let ended_secs = (ended.and_utc() - phase_start).num_milliseconds() as f64 / 1000.0;
        let table = table.trim_end_matches(|c| c != '"').trim_end_matches('"');
        found.push(Maintenance {
            kind: kind.to_string(),
            // `orders.public.notices` → `orders.notices`: the database tells the order phases'
            // tables from pgbench's, kept beside them.
            table: match (table.split('.').next(), table.rsplit('.').next()) {
                (Some(db), Some(name)) if db != name => format!("{db}.{name}"),
                _ => table.to_string(),
            },
            from_secs: ended_secs - elapsed,
            elapsed_secs: elapsed,
            cpu_secs: user + system,
        });
    }
    found
}

/// The part of the file at `path` from byte `offset` on (empty when it cannot be read).
pub fn read_from(path: &std::path::Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        f.read_to_string(&mut text)
    });
    if read.is_err() { String::new() } else { text }
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

    /// The phase's autovacuums and autoanalyzes, the first `n` in the order they started.
    pub fn maintenance_line(&self, n: usize) -> String {
        let cpu: f64 = self.maintenance.iter().map(|m| m.cpu_secs).sum();
        let mut runs: Vec<&Maintenance> = self.maintenance.iter().collect();
        runs.sort_by(|a, b| a.from_secs.total_cmp(&b.from_secs));
        let parts: Vec<String> = runs
            .iter()
            .take(n)
            .map(|m| format!("{} `{}` at {:.1} s for {:.2} s (CPU {:.2} s)", m.kind, m.table, m.from_secs, m.elapsed_secs, m.cpu_secs))
            .collect();
        match runs.len() {
            0 => "autovacuum (the server's log): none in the phase".to_string(),
            k => format!(
                "autovacuum (the server's log): {k} runs, {cpu:.2} s of CPU in all; {}{}",
                parts.join(", "),
                if k > n { format!(", and {} more", k - n) } else { String::new() }
            ),
        }
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
    /// The server's log, where it stood at the start, and the start in UTC (the log's clock).
    pg_log: (PathBuf, u64),
    started_utc: chrono::DateTime<chrono::Utc>,
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
        let pg_log = (cluster.log_path().to_path_buf(), std::fs::metadata(cluster.log_path()).map_or(0, |m| m.len()));
        let started_utc = chrono::Utc::now();
        println!("   measured from {} UTC", started_utc.format("%H:%M:%S%.3f"));
        let postmaster_pid = cluster.postmaster_pid();
        Ok(Observer {
            pg_log,
            started_utc,
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
        let maintenance = maintenance_in(&read_from(&self.pg_log.0, self.pg_log.1), self.started_utc);
        Ok(Observation { wall_secs: wall, db, cpu: self.cpu0.until(&cpu1, wall), waits, samples, statements, wal_kinds, maintenance })
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

#[cfg(test)]
mod maintenance_tests {
    use super::{Maintenance, maintenance_in};

    const LOG: &str = "2026-12-07 04:16:17.460 UTC [4242] LOG:  automatic analyze of table \"orders.public.journal_entries\"
\tavg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s
\tbuffer usage: 30218 hits, 0 misses, 0 dirtied
\tsystem usage: CPU: user: 0.18 s, system: 0.01 s, elapsed: 0.20 s
2026-12-07 04:16:18.100 UTC [4243] LOG:  checkpoint starting: time
2026-12-07 04:16:18.550 UTC [4244] LOG:  automatic vacuum of table \"orders.public.notices\": index scans: 1
\tpages: 0 removed, 30125 remain, 30125 scanned (100.00% of total)
\tsystem usage: CPU: user: 0.70 s, system: 0.05 s, elapsed: 0.83 s
2026-12-07 04:16:19.000 UTC [4245] LOG:  automatic vacuum of table \"orders.public.orders\": index scans: 0
";

    #[test]
    fn autovacuums_are_placed_in_the_phase_with_their_cpu() {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_milli_opt(4, 16, 10, 0).unwrap().and_utc();
        let found = maintenance_in(LOG, start);
        let expected = [("analyze", "orders.journal_entries", 7.26, 0.20, 0.19), ("vacuum", "orders.notices", 7.72, 0.83, 0.75)];
        assert_eq!(found.len(), expected.len(), "the last entry has no usage line: left out; {found:?}");
        for (m, (kind, table, from, elapsed, cpu)) in found.iter().zip(expected) {
            let Maintenance { kind: k, table: t, .. } = m;
            assert_eq!((k.as_str(), t.as_str()), (kind, table));
            for (got, want) in [(m.from_secs, from), (m.elapsed_secs, elapsed), (m.cpu_secs, cpu)] {
                assert!((got - want).abs() < 1e-9, "{m:?}");
            }
        }
    }
}

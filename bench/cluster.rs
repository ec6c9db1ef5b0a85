//! The throwaway PostgreSQL cluster every phase runs on: durable settings (fsync and
//! synchronous commit on) sized for the box, printed with `SHOW`.

use crate::Params;
use anyhow::{Context, Result};
use creditphone::pg::embedded::{ClusterOptions, EmbeddedCluster};
use std::path::{Path, PathBuf};

/// The settings reported (`SHOW`), in this order.
const SHOWN: &[&str] = &[
    "server_version",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_compression",
    "wal_sync_method",
    "shared_buffers",
    "wal_buffers",
    "max_connections",
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "random_page_cost",
    "shared_preload_libraries",
];

pub struct Cluster {
    inner: EmbeddedCluster,
    /// `SHOW` of the settings above, as the server reports them.
    pub settings: Vec<(String, String)>,
    pub stat_statements: bool,
    /// WAL written and checkpointed at start, and the segment files ready afterwards.
    pub wal_preallocated: (u64, i64),
}

impl Cluster {
    pub async fn start(dir: &Path, params: &Params) -> Result<Cluster> {
        println!("\n== PostgreSQL: a throwaway cluster in {}", dir.display());
        let mut extra: Vec<(String, String)> = [
            ("synchronous_commit", "on"),
            ("fsync", "on"),
            ("full_page_writes", "on"),
            ("shared_buffers", params.shared_buffers),
            ("max_connections", "300"),
            ("max_wal_size", "8GB"),
            ("min_wal_size", "1GB"),
            ("checkpoint_timeout", "30min"),
            ("checkpoint_completion_target", "0.9"),
            ("work_mem", "16MB"),
            ("maintenance_work_mem", "512MB"),
            ("effective_cache_size", "12GB"),
            ("random_page_cost", "1.1"),
            ("track_io_timing", "on"),
            ("log_lock_waits", "on"),
            // Every autovacuum and autoanalyze in the server's log (`--keep`), to place them against slow seconds.
            ("log_autovacuum_min_duration", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // auto_explain logs the plan of any statement over 1 s (plan only, no ANALYZE: it costs
        // nothing on fast statements); end of day reports those of its runs.
        let mut preload = vec!["auto_explain"];
        extra.push(("auto_explain.log_min_duration".into(), "1s".into()));
        if params.stat_statements {
            preload.insert(0, "pg_stat_statements");
            extra.push(("pg_stat_statements.max".into(), "1000".into()));
        }
        extra.push(("shared_preload_libraries".into(), preload.join(",")));
        extra.extend(params.pg_settings.iter().cloned());
        let inner = EmbeddedCluster::start(ClusterOptions {
            dir: dir.to_path_buf(),
            db_name: "postgres".to_string(),
            extra_settings: extra,
            die_with_parent: true,
        })
        .await
        .context("starting the throwaway PostgreSQL cluster")?;
        let mut cluster = Cluster { inner, settings: Vec::new(), stat_statements: params.stat_statements, wal_preallocated: (0, 0) };
        let client = cluster.connect("postgres").await?;
        // The harness's own, then any `--pg-setting` it does not show already.
        let given = params.pg_settings.iter().map(|(k, _)| k.as_str()).filter(|k| !SHOWN.contains(k));
        for name in SHOWN.iter().copied().chain(given) {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await.with_context(|| format!("SHOW {name}"))?;
            cluster.settings.push((name.to_string(), row.get(0)));
        }
        if params.stat_statements {
            client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .await
                .context("CREATE EXTENSION pg_stat_statements")?;
        }
        for (k, v) in &cluster.settings {
            println!("   {k:<26} {v}");
        }
        let segments = preallocate_wal(&client, params.wal_preallocate_mb).await?;
        cluster.wal_preallocated = (params.wal_preallocate_mb, segments);
        println!("   WAL: {} MiB written and checkpointed, {segments} segment files ready for reuse", params.wal_preallocate_mb);
        Ok(cluster)
    }

    /// One connection to `db` (its connection task runs in the background).
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client> {
        creditphone::db::connect(&self.inner.pg_config(db)).await.with_context(|| format!("connecting to database {db}"))
    }

    pub fn pg_config(&self, db: &str) -> tokio_postgres::Config {
        self.inner.pg_config(db)
    }

    pub async fn create_database(&self, db: &str) -> Result<()> {
        let client = self.connect("postgres").await?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\"")).await.with_context(|| format!("DROP DATABASE {db}"))?;
        client.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.with_context(|| format!("CREATE DATABASE {db}"))?;
        Ok(())
    }

    pub async fn drop_database(&self, db: &str) -> Result<()> {
        let client = self.connect("postgres").await?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\"")).await.with_context(|| format!("DROP DATABASE {db}"))?;
        Ok(())
    }

    pub fn url(&self, db: &str) -> String {
        self.inner.url(db)
    }

    pub fn socket_dir(&self) -> &Path {
        self.inner.socket_dir()
    }

    pub fn port(&self) -> u16 {
        self.inner.port()
    }

    pub fn user(&self) -> &str {
        self.inner.user()
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.inner.binaries().bin_dir.clone()
    }

    pub fn data_dir(&self) -> &Path {
        self.inner.data_dir()
    }

    /// The server's log (stderr), where auto_explain writes.
    pub fn log_path(&self) -> &Path {
        self.inner.log_path()
    }

    pub fn postmaster_pid(&self) -> Option<u32> {
        self.inner.pid()
    }

    pub async fn stop(&mut self) -> Result<()> {
        self.inner.stop().await
    }
}

/// A new cluster creates and zero-fills each 16 MiB WAL segment the first time it reaches it,
/// and every commit waits meanwhile (`IO/WALInitWrite`): at a few hundred orders a second, a stall
/// every few seconds. A database in service reuses the segments its checkpoints free instead.
/// Writing `mb` MiB of WAL (logical messages: no table grows) and a checkpoint leaves about that
/// much in segments ready for reuse, as in service. Answers how many segment files there are.
async fn preallocate_wal(client: &tokio_postgres::Client, mb: u64) -> Result<i64> {
    if mb > 0 {
        client
            .batch_execute(&format!(
                "SELECT count(pg_logical_emit_message(false, 'creditphone-bench', repeat('x', 1048576))) FROM generate_series(1, {mb})"
            ))
            .await
            .context("writing WAL ahead")?;
        client.batch_execute("CHECKPOINT").await.context("CHECKPOINT")?;
    }
    let row = client.query_one("SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'", &[]).await.context("pg_ls_waldir")?;
    Ok(row.get(0))
}

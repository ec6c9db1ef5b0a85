//! The command line: `creditphone serve | migrate | eod | verify`.

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "creditphone", version, about = "Pre-authorization engine for carrier credit phone purchase")]
pub struct Cli {
    /// Directory of default.toml and <CREDITPHONE_ENV>.toml.
    #[arg(long, global = true, default_value = "config")]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (and its embedded PostgreSQL when no database.url is set).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Run end of day for a business date (YYYY-MM-DD) and print its summary.
    Eod {
        #[arg(long)]
        date: String,
    },
    /// Check every ledger invariant; exits 1 when any is violated.
    Verify,
}

pub fn init_logging(settings: &Settings) {
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = log_subscriber(&settings.log.level, &settings.log.format, std::io::stderr).try_init();
}

/// The subscriber of `log.level` (an EnvFilter directive) and `log.format`, writing to `writer`.
fn log_subscriber<W>(level: &str, format: &str, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let quiet = tracing_subscriber::filter::filter_fn(|meta| !is_raw_data_target(meta));
    if format == "text" {
        Box::new(builder.finish().with(quiet))
    } else {
        Box::new(builder.json().with_current_span(true).with_span_list(false).flatten_event(true).finish().with(quiet))
    }
}

/// Libraries whose debug and trace lines carry what a request sent, raw: the database driver logs
/// every statement with its parameters (ID numbers, phones), actix-web logs the raw path of a
/// request whose path it could not parse. Dropped after the EnvFilter, so that no directive in
/// `log.level` (`debug`, `tokio_postgres=trace`, …) can let them through.
fn is_raw_data_target(meta: &tracing::Metadata<'_>) -> bool {
    const TARGETS: [&str; 2] = ["tokio_postgres", "actix_web"];
    *meta.level() > tracing::Level::INFO
        && TARGETS.iter().any(|t| meta.target().strip_prefix(t).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config_dir)?;
    init_logging(&settings);
    match cli.command {
        Command::Serve => crate::app::serve(settings).await,
        Command::Migrate => {
            with_database(&settings, async |client, _| {
                let applied = crate::db::migrate(client).await?;
                println!("migrations applied: {applied}");
                Ok(true)
            })
            .await
        }
        Command::Eod { date } => {
            let date = crate::domain::dates::parse_date(&date).map_err(|_| anyhow::anyhow!("--date must be YYYY-MM-DD"))?;
            with_database(&settings, async |client, pg| {
                crate::db::migrate(client).await?;
                let pool = crate::db::make_pool(pg.clone(), 4, std::time::Duration::from_secs(10), std::time::Duration::from_secs(3600))?;
                let summary = crate::service::eod::run(
                    &pool,
                    &crate::clock::SystemClock,
                    date,
                    settings.clock.allow_future_dates,
                    settings.eod.chunk_size,
                    crate::domain::eod_run::EodTrigger::Cli,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("{}", serde_json::to_string_pretty(&summary)?);
                Ok(true)
            })
            .await
        }
        Command::Verify => {
            with_database(&settings, async |client, _| {
                let report = crate::service::verify::verify(client).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(report.ok)
            })
            .await
        }
    }
}

/// Opens the configured or embedded database for a one-off command; `Ok(false)` from `f` exits 1.
async fn with_database(
    settings: &Settings,
    f: impl AsyncFnOnce(&mut tokio_postgres::Client, &tokio_postgres::Config) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut database = crate::app::open_database(settings).await?;
    let result = async {
        let mut client = crate::db::connect(&database.pg_config).await?;
        f(&mut client, &database.pg_config).await
    }
    .await;
    if let Some(cluster) = database.cluster.as_mut() {
        cluster.stop().await?;
    }
    match result {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::log_subscriber;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn no_log_level_lets_the_driver_log_statement_parameters() {
        for level in ["debug", "trace", "trace,tokio_postgres=trace,tokio_postgres::query=trace,actix_web=trace"] {
            for format in ["json", "text"] {
                let buffer = Buffer::default();
                let writer = buffer.clone();
                let subscriber = log_subscriber(level, format, move || writer.clone());
                tracing::subscriber::with_default(subscriber, || {
                    tracing::debug!(target: "tokio_postgres::query", "executing statement s1 with parameters: [\"440305199001011234\"]");
                    tracing::trace!(target: "actix_web::types::path", "Request path: \"/v1/orders/13800138000\"");
                    tracing::debug!(target: "tokio_postgres_like", "kept-other");
                    tracing::info!(target: "tokio_postgres::connection", "kept-info");
                    tracing::debug!(target: "creditphone::http", "kept-debug");
                });
                let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
                assert!(!log.contains("440305199001011234") && !log.contains("13800138000"), "{level} ({format}): {log}");
                for kept in ["kept-other", "kept-info", "kept-debug"] {
                    assert!(log.contains(kept), "{level} ({format}) logs {kept}: {log}");
                }
            }
        }
    }
}

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
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&settings.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if settings.log.format == "text" {
        builder.try_init()
    } else {
        builder.json().with_current_span(true).with_span_list(false).flatten_event(true).try_init()
    };
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
                let summary = crate::service::eod::run(&pool, date, settings.clock.allow_future_dates, settings.eod.chunk_size)
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

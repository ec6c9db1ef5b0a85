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
            let mut database = crate::app::open_database(&settings).await?;
            let mut client = crate::db::connect(&database.pg_config).await?;
            let applied = crate::db::migrate(&mut client).await?;
            println!("migrations applied: {applied}");
            if let Some(cluster) = database.cluster.as_mut() {
                cluster.stop().await?;
            }
            Ok(())
        }
    }
}

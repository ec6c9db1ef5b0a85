//! Putting the service together: database (embedded or configured), migrations, pool, HTTP server.

use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::db;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::pg::embedded::{ClusterOptions, EmbeddedCluster, PgBinaries};
use crate::pii::PiiKeys;
use crate::service::Deps;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use std::sync::Arc;
use std::time::Duration;

/// Where the database is: a configured URL, or the embedded cluster we started (kept to stop it).
pub struct Database {
    pub pg_config: tokio_postgres::Config,
    pub cluster: Option<EmbeddedCluster>,
}

pub const EMBEDDED_DB_NAME: &str = "creditphone";

/// Opens the configured database, or creates and starts the embedded cluster under `database.data_dir`.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    if let Some(url) = settings.database_url() {
        let pg_config: tokio_postgres::Config = url.parse().map_err(|e| anyhow::anyhow!("database.url is not a PostgreSQL URL: {e}"))?;
        return Ok(Database { pg_config, cluster: None });
    }
    PgBinaries::ensure()?;
    let dir = absolute(&settings.database.data_dir)?;
    let cluster = EmbeddedCluster::start(ClusterOptions {
        dir,
        db_name: EMBEDDED_DB_NAME.to_string(),
        extra_settings: vec![("max_connections".into(), "200".into())],
        die_with_parent: true,
    })
    .await?;
    Ok(Database { pg_config: cluster.pg_config(EMBEDDED_DB_NAME), cluster: Some(cluster) })
}

fn absolute(p: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    if p.is_absolute() { Ok(p.to_path_buf()) } else { Ok(std::env::current_dir()?.join(p)) }
}

/// Migrates and builds the shared state, on the system clock.
pub async fn prepare(settings: Arc<Settings>, pg_config: &tokio_postgres::Config) -> anyhow::Result<web::Data<AppState>> {
    prepare_with_clock(settings, pg_config, Arc::new(SystemClock)).await
}

/// Migrates and builds the shared state on the given clock (tests step a manual one).
pub async fn prepare_with_clock(
    settings: Arc<Settings>,
    pg_config: &tokio_postgres::Config,
    clock: SharedClock,
) -> anyhow::Result<web::Data<AppState>> {
    let mut client = db::connect(pg_config).await?;
    db::migrate(&mut client).await?;
    drop(client);
    let pool = db::make_pool(
        pg_config.clone(),
        settings.database.pool_size,
        Duration::from_millis(settings.database.timeout_ms),
        Duration::from_millis(settings.database.statement_timeout_ms),
    )?;
    let pii = PiiKeys::load(&settings.pii, &absolute(&settings.database.data_dir)?)?;
    let console_key = crate::console::session::ConsoleKey::load(&settings.console, &absolute(&settings.database.data_dir)?)?;
    let deps = Deps { pool, settings, metrics: Arc::new(Metrics::new()), pii: Arc::new(pii), clock, order_batcher: Default::default() };
    let deps = Arc::new(deps);
    // The order batcher's own connections, besides `database.pool_size` (service::orders::Batcher).
    let batcher_pool = db::make_pool(
        pg_config.clone(),
        crate::service::orders::BATCHER_CONNECTIONS,
        Duration::from_millis(deps.settings.database.timeout_ms),
        Duration::from_millis(deps.settings.database.statement_timeout_ms),
    )?;
    crate::service::orders::Batcher::start(&deps, batcher_pool);
    Ok(web::Data::new(AppState { deps, rate_limiter: Default::default(), console_key: Arc::new(console_key) }))
}

/// The actix application: request context outermost, then auth, then the routes.
pub fn server(state: web::Data<AppState>, listener: std::net::TcpListener, workers: usize) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(state.settings.server.body_limit_bytes))
            .configure(http::routes)
            .configure(crate::console::routes)
            .default_service(web::to(http::not_found))
            .wrap(from_fn(http::auth::authenticate))
            .wrap(from_fn(http::context::request_context))
    })
    .workers(workers.max(1))
    // Stated rather than left to actix's defaults: a connection's first request head must arrive
    // within 5 s (else actix answers a bare 408 and closes it; bodies have server.body_read_timeout_ms),
    // and a connection closed over an unread body lingers 1 s so that the client reads its answer.
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}

/// `creditphone serve`: runs until SIGINT/SIGTERM, then stops the embedded cluster cleanly.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let mut database = open_database(&settings).await?;
    let result = serve_on(settings, &database.pg_config).await;
    if let Some(cluster) = database.cluster.as_mut()
        && let Err(e) = cluster.stop().await
    {
        tracing::error!(error = %e, "stopping the embedded cluster failed");
    }
    result
}

async fn serve_on(settings: Arc<Settings>, pg_config: &tokio_postgres::Config) -> anyhow::Result<()> {
    let state = prepare(settings.clone(), pg_config).await?;
    let addr = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = std::net::TcpListener::bind(&addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let workers = if settings.server.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        settings.server.workers
    };
    let jobs = crate::jobs::spawn_all(state.deps.clone());
    tracing::info!(%addr, workers, "creditphone listening");
    let result = server(state, listener, workers)?.await;
    jobs.stop().await;
    tracing::info!("creditphone stopped");
    Ok(result?)
}

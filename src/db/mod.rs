//! PostgreSQL access: the pool, migrations, transactions and error classification.
//! One module per aggregate below; every function there takes a transaction (or a client).

pub mod api_keys;
pub mod audit;
pub mod banks;
pub mod business_days;
pub mod compensations;
pub mod credit_lines;
pub mod holds;
pub mod idempotency;
pub mod journal;
pub mod notices;
pub mod ops;
pub mod orders;
pub mod plans;
pub mod repayments;
pub mod report_store;
pub mod reports;
pub mod returns;
pub mod settlement;
pub mod setup;
pub mod status;
pub mod verify;
pub mod write_offs;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

mod embedded_migrations {
    refinery::embed_migrations!("sql");
}

/// Every advisory lock key of the service, in one place so two mechanisms never share one.
pub mod lock_keys {
    /// Serialises migrations across instances starting at once.
    pub const MIGRATIONS: i64 = 0x6372_6564_6974_0001;
    /// One end of day at a time across instances.
    pub const END_OF_DAY: i64 = 0x6372_6564_6974_0002;
    /// One notice sequencer at a time.
    pub const NOTICE_SEQUENCER: i64 = 0x6372_6564_6974_0003;
    /// Held shared by every booking, exclusively by the closing of a business date.
    pub const CLOSING: i64 = 0x6372_6564_6974_0004;
    /// One confirmation sweep at a time (API.md §12), apart from end of day's.
    pub const CONFIRMATION_SWEEP: i64 = 0x6372_6564_6974_0005;
}

const MIGRATION_LOCK_KEY: i64 = lock_keys::MIGRATIONS;

/// A transaction whose statements are prepared once per connection and cached: one round trip
/// per statement instead of two, and no re-planning. Derefs to the plain transaction for the rest.
pub struct Tx<'a>(deadpool_postgres::Transaction<'a>);

impl<'a> Tx<'a> {
    pub async fn begin(client: &'a mut deadpool_postgres::Client) -> Result<Tx<'a>, tokio_postgres::Error> {
        Ok(Tx(client.transaction().await?))
    }

    pub async fn begin_with(builder: deadpool_postgres::TransactionBuilder<'a>) -> Result<Tx<'a>, tokio_postgres::Error> {
        Ok(Tx(builder.start().await?))
    }

    /// A read-only transaction on one snapshot, for several reads that must agree with each other.
    pub async fn snapshot(client: &'a mut deadpool_postgres::Client) -> Result<Tx<'a>, tokio_postgres::Error> {
        Tx::begin_with(client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).read_only(true)).await
    }

    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.0.commit().await
    }

    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        self.0.rollback().await
    }

    /// The statement prepared on this connection (cached): to send several in a known order,
    /// prepare them all first, then run them through the plain transaction's methods.
    pub async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        self.0.prepare_cached(sql).await
    }

    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        tokio_postgres::Transaction::query(&self.0, &statement, params).await
    }

    pub async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        tokio_postgres::Transaction::query_one(&self.0, &statement, params).await.inspect_err(|e| log_row_count(e, sql))
    }

    pub async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        tokio_postgres::Transaction::query_opt(&self.0, &statement, params).await.inspect_err(|e| log_row_count(e, sql))
    }

    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        tokio_postgres::Transaction::execute(&self.0, &statement, params).await
    }
}

/// The transaction's `now()`: what every `DEFAULT now()` it writes stores.
pub async fn transaction_time(tx: &Tx<'_>) -> Result<chrono::DateTime<chrono::Utc>, tokio_postgres::Error> {
    Ok(tx.query_one("SELECT now()", &[]).await?.get(0))
}

/// Runs one statement with server settings of its own (`(name, value)`), then puts each back as it
/// was: set for the caller's transaction, so outside one (each statement its own) the statement
/// runs with the server's settings. The one way a statement here is given settings of its own:
/// the aging ([`ops::aging`]) and the day's reports ([`query_without_jit`]).
pub async fn query_with_settings(
    c: &impl Db,
    settings: &[(&str, &str)],
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let names: Vec<&str> = settings.iter().map(|(n, _)| *n).collect();
    let values: Vec<&str> = settings.iter().map(|(_, v)| *v).collect();
    // Read and set in one round trip: set_config, volatile, is computed after the ORDER BY, so
    // after every current_setting (stable) has been read.
    let was: Vec<String> = c
        .query(
            "SELECT current_setting(n), set_config(n, v, true)
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(n, v, i) ORDER BY i",
            &[&names, &values],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(was.len(), names.len(), "one value read per setting");
    let rows = c.query(sql, params).await?;
    c.query("SELECT set_config(n, v, true) FROM unnest($1::text[], $2::text[]) AS s(n, v)", &[&names, &was]).await?;
    Ok(rows)
}

/// Runs one report statement with JIT and parallel workers off ([`query_with_settings`]). For the
/// day's reports that end of day renders over a large book (`reports::movements`,
/// `settlement::movements`): their plans, lookups by key for each of the day's rows, cost enough
/// to be compiled, which took longer than running them; parallel workers gained at most a few
/// percent over the bench's book, and end of day renders these while autovacuum works through the
/// day's changes, where the aging's parallel plan waited for its workers (`ops::aging`). More
/// `work_mem` changed neither measurably, so it is left alone.
pub async fn query_without_jit(c: &impl Db, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, tokio_postgres::Error> {
    query_with_settings(c, &[("jit", "off"), ("max_parallel_workers_per_gather", "0")], sql, params).await
}

/// A statement that answered more rows (or fewer) than its caller's `query_one`/`query_opt` allow
/// is a bug in that statement: the driver's error does not say which, so it is named here.
fn log_row_count(e: &tokio_postgres::Error, sql: &str) {
    if e.as_db_error().is_none() && e.to_string().contains("unexpected number of rows") {
        let statement: String = sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect();
        tracing::error!(statement, "a statement answered an unexpected number of rows");
    }
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = tokio_postgres::Transaction<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What the `db` functions run their statements on: a cached transaction, a pooled connection
/// (cached too), or a plain client or transaction (commands, tests).
pub trait Db: Sync {
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send;

    /// Exactly one row (the driver's own row-count error otherwise); the statement runs once.
    fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        self.query_one_plain(sql, params)
    }

    /// At most one row; the statement runs once.
    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        self.query_opt_plain(sql, params)
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send;

    /// The driver's single-row calls, for the two above.
    fn query_one_plain(&self, sql: &str, params: &[&(dyn ToSql + Sync)])
    -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send;
    fn query_opt_plain(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send;
}

macro_rules! plain_db {
    ($t:ty) => {
        impl Db for $t {
            fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
                <$t>::query(self, sql, params)
            }
            fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
                <$t>::execute(self, sql, params)
            }
            fn query_one_plain(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
                <$t>::query_one(self, sql, params)
            }
            fn query_opt_plain(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
                <$t>::query_opt(self, sql, params)
            }
        }
    };
}

plain_db!(tokio_postgres::Client);
plain_db!(tokio_postgres::Transaction<'_>);

impl Db for Tx<'_> {
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        Tx::query(self, sql, params)
    }
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        Tx::execute(self, sql, params)
    }
    fn query_one_plain(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        Tx::query_one(self, sql, params)
    }
    fn query_opt_plain(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        Tx::query_opt(self, sql, params)
    }
}

impl Db for deadpool_postgres::ClientWrapper {
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            tokio_postgres::Client::query(self, &statement, params).await
        }
    }
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            tokio_postgres::Client::execute(self, &statement, params).await
        }
    }
    fn query_one_plain(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            tokio_postgres::Client::query_one(self, &statement, params).await.inspect_err(|e| log_row_count(e, sql))
        }
    }
    fn query_opt_plain(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.prepare_cached(sql).await?;
            tokio_postgres::Client::query_opt(self, &statement, params).await.inspect_err(|e| log_row_count(e, sql))
        }
    }
}

/// Sets the status of each row of `table` (plans or orders) named in `ids` to the one at the same
/// index of `statuses`, in one statement.
async fn set_statuses<S: ToSql + Sync>(
    tx: &Tx<'_>,
    table: &'static str,
    ids: &[&str],
    statuses: &[S],
) -> Result<(), tokio_postgres::Error> {
    assert_eq!(ids.len(), statuses.len(), "one status per row");
    if ids.is_empty() {
        return Ok(());
    }
    let sql =
        format!("UPDATE {table} x SET status = t.s, updated_at = now() FROM unnest($1::text[], $2::text[]) AS t(id, s) WHERE x.id = t.id");
    let n = tx.execute(&sql, &[&ids, &statuses]).await?;
    assert_eq!(n as usize, ids.len(), "every status changed was written");
    Ok(())
}

/// When a connection was last found lost (`error::is_lost_connection`: a failover, a terminated
/// backend, a primary turned read-only). Per process, not per pool: one process talks to one
/// database, and a test process's other pools only reconnect once more than they need to.
static LAST_LOST_CONNECTION: Mutex<Option<Instant>> = Mutex::new(None);

/// Records that a connection was lost now: every pooled connection opened before this is dropped
/// instead of handed out again. Closed sockets would be caught by deadpool's `is_closed()` check
/// anyway, but a demoted primary keeps its sessions open, answering `25006` to every write, and
/// so do the other sessions to a server whose neighbours were terminated: none of them is trusted.
pub fn connection_lost() {
    *LAST_LOST_CONNECTION.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
}

fn opened_before_a_lost_connection(created: Instant) -> bool {
    LAST_LOST_CONNECTION.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|lost| created <= lost)
}

/// A pool whose waits are bounded by `timeout`, so a lost database answers 503 quickly. A
/// connection opened before the last lost one (see [`connection_lost`]) is never handed out again:
/// the pool opens a new one, on the first host of the URL that takes writes.
pub fn make_pool(mut pg: tokio_postgres::Config, size: usize, timeout: Duration, statement_timeout: Duration) -> anyhow::Result<Pool> {
    pg.connect_timeout(timeout);
    pg.options(format!("-c statement_timeout={} -c lock_timeout={}", statement_timeout.as_millis(), statement_timeout.as_millis()));
    pg.application_name("creditphone");
    let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .pre_recycle(Hook::sync_fn(|_, metrics| {
            if opened_before_a_lost_connection(metrics.created) {
                return Err(HookError::message("opened before a lost connection"));
            }
            Ok(())
        }))
        .max_size(size)
        // The connection freed last is handed out next: under moderate load a few connections do
        // the work and keep their caches warm, and after an ANALYZE (which invalidates the cached
        // plans of its table's statements in every session) only those few plan again. Measured
        // at 900 orders/s: half the planning time and about 12% less PostgreSQL CPU than FIFO.
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()?;
    Ok(pool)
}

/// Connects one client (for migrations and commands), driving the connection on a task.
pub async fn connect(pg: &tokio_postgres::Config) -> anyhow::Result<Client> {
    let (client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// Applies the embedded migrations under an advisory lock; safe when several instances start together.
pub async fn migrate(client: &mut Client) -> anyhow::Result<usize> {
    let started = std::time::Instant::now();
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    let result = embedded_migrations::migrations::runner().set_abort_divergent(true).run_async(client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    let report = result?;
    let applied = report.applied_migrations().len();
    tracing::info!(applied, elapsed_ms = started.elapsed().as_millis() as u64, "migrations done");
    Ok(applied)
}

/// The newest migration version embedded in this binary.
pub fn latest_migration_version() -> i64 {
    embedded_migrations::migrations::runner().get_migrations().iter().map(|m| i64::from(m.version())).max().unwrap_or(0)
}

/// Is the database reachable with every migration applied? The whole check (a connection, then
/// one query) is bounded by the pool's configured timeout (`database.timeout_ms`), so `/readyz`
/// answers 503 within it even when the database hangs rather than refuses (a frozen server).
pub async fn ready(pool: &Pool) -> bool {
    let limit = pool.timeouts().wait.unwrap_or(Duration::from_secs(2));
    let check = async {
        let client = pool.get().await.ok()?;
        let row = client.query_one("SELECT coalesce(max(version), 0)::int8 FROM refinery_schema_history", &[]).await.ok()?;
        Some(row.get::<_, i64>(0) >= latest_migration_version())
    };
    matches!(tokio::time::timeout(limit, check).await, Ok(Some(true)))
}

/// The constraint a unique violation hit, if that is what `e` is.
pub fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    (*db.code() == SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or(""))
}

/// A serialization failure or deadlock: the transaction may simply be run again.
pub fn is_retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

//! Layered, typed settings: config/default.toml, then config/<CREDITPHONE_ENV>.toml, then
//! `CREDITPHONE__SECTION__KEY` environment variables (API.md section 10).

use rust_decimal::Decimal;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// A string that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub pii: PiiSettings,
    pub clock: ClockSettings,
    pub business: BusinessSettings,
    pub idempotency: IdempotencySettings,
    pub eod: EodSettings,
    pub notices: NoticeSettings,
    pub log: LogSettings,
    pub console: ConsoleSettings,
    /// v2 (API.md §12); absent from an older configuration file: the defaults.
    #[serde(default)]
    pub holds: HoldSettings,
    /// Batched placement (issue 20); absent from an older configuration file: the defaults.
    #[serde(default)]
    pub orders: OrderSettings,
}

/// How concurrent `POST /v1/orders` are gathered into one transaction (`service::order_batch`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSettings {
    /// How long the first order of a batch waits for others while another batch runs, in
    /// microseconds.
    pub batch_window_us: u64,
    /// Orders placed in one transaction at most; 1 turns batching off (every order alone).
    pub batch_max: usize,
    /// Wait the window even when no batch runs (off: such an order starts at once). Tests use it
    /// to gather a known set of orders into one batch.
    #[serde(default)]
    pub batch_wait_when_idle: bool,
}

impl Default for OrderSettings {
    fn default() -> OrderSettings {
        OrderSettings { batch_window_us: 1000, batch_max: 64, batch_wait_when_idle: false }
    }
}

/// The provider's confirmation of each hold (API.md §12).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldSettings {
    /// Seconds between two sweeps timing out pending holds past their deadline; 0 turns the sweep
    /// off (end of day still times them out).
    pub confirmation_sweep_secs: u64,
    /// Pending holds one sweep times out at most (one transaction); the next sweep takes the rest.
    pub confirmation_sweep_batch: i64,
}

impl Default for HoldSettings {
    fn default() -> HoldSettings {
        HoldSettings { confirmation_sweep_secs: 30, confirmation_sweep_batch: 500 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// 0 means one worker per core.
    pub workers: usize,
    pub body_limit_bytes: usize,
    /// A request still unanswered after this long answers `503 unavailable` and its transaction
    /// rolls back (a database that holds connections open but never answers cannot hang callers).
    /// End of day over HTTP is exempt: it is long by nature and safe to interrupt.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// A request body must have arrived in full this long after its head, or the request answers
    /// `408 request_timeout` (and its connection closes): a stalled or short body costs a worker
    /// no more than this, and is not mistaken for a database outage by `request_timeout_ms`.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
}

fn default_body_read_timeout_ms() -> u64 {
    10_000
}

fn default_request_timeout_ms() -> u64 {
    30_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// A PostgreSQL URL; absent or empty: the embedded cluster under `data_dir`.
    pub url: Option<Secret>,
    pub data_dir: PathBuf,
    pub pool_size: usize,
    /// How long a request waits for a connection (or for the database to answer a connect) before `503 unavailable`.
    pub timeout_ms: u64,
    /// Server-side statement timeout for request transactions.
    pub statement_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// A bootstrap admin key accepted besides created ones (empty: none).
    pub admin_key: Secret,
    pub default_rate_limit_per_minute: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiSettings {
    /// 32 bytes, hex: the key of the lookup hash of ID numbers and phones. Empty: generated once under `data_dir`.
    pub hash_key: Secret,
    /// 32 bytes, hex: the AES-256-GCM key of the encrypted identity copy. Empty: generated once under `data_dir`.
    pub encryption_key: Secret,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    pub allow_future_dates: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessSettings {
    #[serde(with = "rust_decimal::serde::str")]
    pub apr_cap: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub partner_min_deposit: Decimal,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    pub retention_days: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EodSettings {
    pub enabled: bool,
    /// Asia/Shanghai wall-clock time `HH:MM` of the daily run.
    pub run_at: String,
    pub chunk_size: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeSettings {
    pub enabled: bool,
    /// A 2xx must arrive within this long, else the attempt failed.
    pub timeout_secs: u64,
    /// Backoff after the first failed attempt, doubling after each further one up to `retry_max_secs`.
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// Attempts in all before a notice is `dead`.
    pub max_attempts: u32,
    /// Recipients served at once by one instance (each by one worker), not counting slow ones.
    pub workers: usize,
    /// Slow recipients served at once by one instance: a recipient whose attempt is still unanswered
    /// after `slow_after_ms` moves to these workers, so slow and dead receivers, however many, never
    /// take the workers of the others.
    #[serde(default = "default_slow_workers")]
    pub slow_workers: usize,
    /// An attempt unanswered this long makes its recipient slow; one answered sooner makes it quick
    /// again. At most half of `timeout_secs` is used (see `slow_after`).
    #[serde(default = "default_slow_after_ms")]
    pub slow_after_ms: u64,
    /// How often an idle instance looks for due notices.
    pub poll_interval_ms: u64,
    /// Deliveries in flight to one recipient at once; 1 keeps first attempts strictly in creation order.
    #[serde(default = "default_per_recipient")]
    pub per_recipient: usize,
    /// Due notices of one recipient read per query.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Tests only: the first backoff in milliseconds instead of `retry_initial_secs` (0: unused).
    #[serde(default)]
    pub retry_initial_ms: u64,
    /// Webhook attempts (`notice_attempts`) of delivered notices are forgotten this many days after
    /// they were made; a dead or pending notice's stay (housekeeping, src/jobs/mod.rs).
    #[serde(default = "default_attempts_retention_days")]
    pub attempts_retention_days: u32,
}

fn default_attempts_retention_days() -> u32 {
    30
}

fn default_per_recipient() -> usize {
    1
}

fn default_batch_size() -> u32 {
    100
}

fn default_slow_workers() -> usize {
    4
}

fn default_slow_after_ms() -> u64 {
    2000
}

impl NoticeSettings {
    /// `slow_after_ms`, at most half the timeout: a lowered `timeout_secs` alone (2 s in a test
    /// environment) must neither stop the service from starting nor leave slowness undetected
    /// until attempts time out.
    pub fn slow_after(&self) -> std::time::Duration {
        let half_timeout_ms = self.timeout_secs.saturating_mul(500);
        std::time::Duration::from_millis(self.slow_after_ms.min(half_timeout_ms).max(1))
    }

    /// The wait after failed attempt number `attempts` (1-based): initial × 2^(attempts-1), capped.
    pub fn backoff(&self, attempts: u32) -> std::time::Duration {
        let initial_ms = if self.retry_initial_ms > 0 { self.retry_initial_ms } else { self.retry_initial_secs.saturating_mul(1000) };
        let max_ms = self.retry_max_secs.saturating_mul(1000).max(1);
        let factor = 1u64.checked_shl(attempts.saturating_sub(1).min(62)).unwrap_or(u64::MAX);
        std::time::Duration::from_millis(initial_ms.saturating_mul(factor).min(max_ms))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// An EnvFilter directive, e.g. `info` or `creditphone=debug,info`.
    pub level: String,
    /// `json` or `text`.
    pub format: String,
}

/// The operations console (`/console/`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// 32 bytes, hex: the key that signs session cookies. Empty: generated once under `data_dir`.
    pub session_key: Secret,
}

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

impl Settings {
    /// Loads the layers from `config_dir` (the built-in default when the file is absent) and the environment.
    pub fn load(config_dir: &std::path::Path) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder();
        let default_file = config_dir.join("default.toml");
        if default_file.exists() {
            builder = builder.add_source(config::File::from(default_file));
        } else {
            builder = builder.add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
        }
        if let Ok(env_name) = std::env::var("CREDITPHONE_ENV")
            && !env_name.is_empty()
        {
            builder = builder.add_source(config::File::from(config_dir.join(format!("{env_name}.toml"))).required(true));
        }
        // Values stay strings (no `try_parsing`): numbers and booleans are converted when a typed field
        // is read, while secrets and URLs such as an admin key "00123" or "1e5" are kept as written.
        builder = builder.add_source(config::Environment::with_prefix("CREDITPHONE").prefix_separator("__").separator("__"));
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// The built-in defaults alone (tests start from these and override fields).
    pub fn defaults() -> Settings {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("config/default.toml is valid (checked by a unit test)");
        settings
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.idempotency.retention_days >= 7, "idempotency.retention_days must be at least 7");
        anyhow::ensure!(self.database.pool_size >= 1 && self.database.pool_size <= 1000, "database.pool_size must be 1-1000");
        anyhow::ensure!(self.notices.max_attempts >= 1, "notices.max_attempts must be at least 1");
        anyhow::ensure!((1..=100_000).contains(&self.holds.confirmation_sweep_batch), "holds.confirmation_sweep_batch must be 1-100000");
        anyhow::ensure!(self.notices.timeout_secs >= 1, "notices.timeout_secs must be at least 1");
        anyhow::ensure!(
            self.notices.workers >= 1 && self.notices.per_recipient >= 1,
            "notices.workers and notices.per_recipient must be at least 1"
        );
        anyhow::ensure!((1..=1000).contains(&self.notices.batch_size), "notices.batch_size must be 1-1000");
        anyhow::ensure!(self.notices.slow_workers >= 1, "notices.slow_workers must be at least 1");
        anyhow::ensure!(self.notices.slow_after_ms >= 1, "notices.slow_after_ms must be at least 1");
        anyhow::ensure!((1..=36_500).contains(&self.notices.attempts_retention_days), "notices.attempts_retention_days must be 1-36500");
        anyhow::ensure!(self.server.body_limit_bytes >= 1024, "server.body_limit_bytes must be at least 1024");
        anyhow::ensure!(self.server.request_timeout_ms >= 100, "server.request_timeout_ms must be at least 100");
        anyhow::ensure!(
            (100..self.server.request_timeout_ms).contains(&self.server.body_read_timeout_ms),
            "server.body_read_timeout_ms must be at least 100 and below server.request_timeout_ms"
        );
        anyhow::ensure!(self.auth.default_rate_limit_per_minute >= 1, "auth.default_rate_limit_per_minute must be at least 1");
        anyhow::ensure!((1..=1000).contains(&self.orders.batch_max), "orders.batch_max must be 1-1000");
        anyhow::ensure!(self.orders.batch_window_us <= 10_000_000, "orders.batch_window_us must be at most 10000000 (10 s)");
        parse_hh_mm(&self.eod.run_at).ok_or_else(|| anyhow::anyhow!("eod.run_at must be HH:MM"))?;
        Ok(())
    }

    pub fn database_url(&self) -> Option<&str> {
        self.database.url.as_ref().map(Secret::expose).filter(|u| !u.is_empty())
    }
}

pub fn parse_hh_mm(s: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_hide_secrets() {
        let mut s = Settings::defaults();
        s.auth.admin_key = Secret::new("super-secret-admin-key");
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret-admin-key"));
        assert_eq!(s.server.port, 8080);
        assert!(!s.clock.allow_future_dates);
        assert_eq!(s.notices.retry_initial_secs, 5);
        s.check().unwrap();
    }

    #[test]
    fn a_body_read_timeout_must_be_shorter_than_the_request_timeout() {
        let mut s = Settings::defaults();
        assert_eq!((s.server.body_read_timeout_ms, s.server.request_timeout_ms), (10_000, 30_000));
        s.server.body_read_timeout_ms = 30_000;
        assert!(s.check().is_err(), "a stalled body would be cut as a database outage (503) first");
        s.server.body_read_timeout_ms = 99;
        assert!(s.check().is_err());
    }

    #[test]
    fn a_slow_attempt_is_at_most_half_the_timeout() {
        let mut s = Settings::defaults();
        assert_eq!((s.notices.slow_workers, s.notices.slow_after().as_millis()), (4, 2000));
        s.notices.timeout_secs = 2;
        s.check().unwrap();
        assert_eq!(s.notices.slow_after().as_millis(), 1000);
        s.notices.slow_workers = 0;
        assert!(s.check().unwrap_err().to_string().contains("notices.slow_workers"));
    }

    #[test]
    fn webhook_attempts_are_kept_at_least_a_day() {
        let mut s = Settings::defaults();
        assert_eq!(s.notices.attempts_retention_days, 30);
        s.notices.attempts_retention_days = 0;
        assert!(s.check().unwrap_err().to_string().contains("notices.attempts_retention_days"));
    }

    #[test]
    fn notice_backoff_doubles_up_to_the_cap() {
        let s = Settings::defaults().notices;
        let secs: Vec<u64> = (1..=12).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(s.backoff(200).as_secs(), 3600);
    }
}

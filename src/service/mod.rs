//! Services own the transaction: they call `db` and `domain` and return views or `ApiError`s.

pub mod audit;
pub mod credit_lines;
pub mod eod;
pub mod holds;
pub mod lifecycle;
pub mod notices;
pub mod ops;
pub mod order_notices;
pub mod orders;
pub mod plans;
pub mod report_store;
pub mod reports;
pub mod returns;
pub mod settlement;
pub mod setup;
pub mod verify;
pub mod verify_reports;
pub mod write_offs;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::pii::PiiKeys;
use deadpool_postgres::Pool;
use std::sync::Arc;

/// What services and jobs work with, and nothing of the web layer (zero2prod's `startup.rs`):
/// the database pool, the settings (business rules among them), metrics, the PII keys and the
/// clock. The HTTP layer holds it inside its own state; jobs hold it directly.
pub struct Deps {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub pii: Arc<PiiKeys>,
    /// Now and today for every service and job (the system clock but in tests).
    pub clock: SharedClock,
    /// Gathers concurrent order placements into batches (`orders.batch_max`), once started.
    pub order_batcher: orders::Batcher,
}

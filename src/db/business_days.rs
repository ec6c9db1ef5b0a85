//! Business days closed by end of day; what arrives for a closed day is booked on the next open one.

use super::Tx;
use crate::db::Db;
use crate::domain::dates::{LAST_DATE, next_date};
use chrono::NaiveDate;

pub async fn last_closed(c: &impl Db) -> Result<Option<NaiveDate>, tokio_postgres::Error> {
    Ok(c.query_one("SELECT max(business_date) FROM business_days", &[]).await?.get(0))
}

/// One end of day at a time across instances: a session-level lock, held across the run's many
/// transactions on the connection that took it.
const END_OF_DAY_LOCK_KEY: i64 = super::lock_keys::END_OF_DAY;

/// Waits for any other end of day to finish, then holds the end-of-day lock on this connection.
pub async fn lock_end_of_day(c: &impl Db) -> Result<(), tokio_postgres::Error> {
    c.execute("SELECT pg_advisory_lock($1)", &[&END_OF_DAY_LOCK_KEY]).await?;
    Ok(())
}

/// Gives the end-of-day lock back (taken on this same connection by [`lock_end_of_day`]).
pub async fn unlock_end_of_day(c: &impl Db) -> Result<(), tokio_postgres::Error> {
    c.execute("SELECT pg_advisory_unlock($1)", &[&END_OF_DAY_LOCK_KEY]).await?;
    Ok(())
}

/// Bookers hold this advisory lock shared until they commit; end of day takes it exclusively in
/// the transaction that closes a date, so nothing can be booked on a date as it closes.
const CLOSING_LOCK_KEY: i64 = super::lock_keys::CLOSING;

/// The booking date of something valued `value_date`: itself while open, else the first open date.
/// Read under the shared closing lock (a statement of its own, so the read's snapshot follows it).
pub async fn booking_date(tx: &Tx<'_>, value_date: NaiveDate) -> Result<NaiveDate, tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&CLOSING_LOCK_KEY]).await?;
    Ok(match last_closed(tx).await? {
        // End of day never closes the last date (it refuses), so a closed date always has a next.
        Some(closed) if closed >= value_date => next_date(closed).unwrap_or(LAST_DATE),
        _ => value_date,
    })
}

/// Closes `date` once every booking in flight has committed.
pub async fn close(tx: &Tx<'_>, date: NaiveDate, summary: &serde_json::Value) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLOSING_LOCK_KEY]).await?;
    tx.execute("INSERT INTO business_days (business_date, summary) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&date, summary]).await?;
    Ok(())
}

//! Business days closed by end of day; what arrives for a closed day is booked on the next open one.

use super::Tx;
use chrono::NaiveDate;
use tokio_postgres::GenericClient;

pub async fn last_closed(c: &impl GenericClient) -> Result<Option<NaiveDate>, tokio_postgres::Error> {
    Ok(c.query_one("SELECT max(business_date) FROM business_days", &[]).await?.get(0))
}

/// The booking date of something valued `value_date`: itself while open, else the first open date.
pub async fn booking_date(tx: &Tx<'_>, value_date: NaiveDate) -> Result<NaiveDate, tokio_postgres::Error> {
    Ok(match last_closed(tx).await? {
        Some(closed) if closed >= value_date => closed.succ_opt().unwrap_or(closed),
        _ => value_date,
    })
}

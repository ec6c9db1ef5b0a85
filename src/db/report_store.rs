//! Stored reports of closed dates (API.md §15, sql/V23): the bytes answered for a closed date,
//! with their SHA-256. Written once (a second write of the same report keeps the first).

use super::Db;
use chrono::NaiveDate;

/// One stored report: `kind` is `reconciliation` or `settlement`; `subject` a bank id (`''` for
/// the all-banks reconciliation) or a provider id; `format` `json` or `csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub kind: &'static str,
    pub business_date: NaiveDate,
    pub subject: String,
    pub format: &'static str,
    pub body: Vec<u8>,
    pub sha256: String,
    pub movements: i32,
}

/// Stores reports, in one statement; one already stored is kept as it was.
pub async fn put_all(c: &impl Db, reports: &[StoredReport]) -> Result<(), tokio_postgres::Error> {
    if reports.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = reports.iter().map(|r| r.kind).collect();
    let dates: Vec<NaiveDate> = reports.iter().map(|r| r.business_date).collect();
    let subjects: Vec<&str> = reports.iter().map(|r| r.subject.as_str()).collect();
    let formats: Vec<&str> = reports.iter().map(|r| r.format).collect();
    let bodies: Vec<&[u8]> = reports.iter().map(|r| r.body.as_slice()).collect();
    let hashes: Vec<&str> = reports.iter().map(|r| r.sha256.as_str()).collect();
    let movements: Vec<i32> = reports.iter().map(|r| r.movements).collect();
    c.execute(
        "INSERT INTO report_store (kind, business_date, subject, format, body, sha256, movements)
         SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::int4[])
         ON CONFLICT DO NOTHING",
        &[&kinds, &dates, &subjects, &formats, &bodies, &hashes, &movements],
    )
    .await?;
    Ok(())
}

/// The stored bytes of one report and their SHA-256, if stored.
pub async fn get(
    c: &impl Db,
    kind: &str,
    date: NaiveDate,
    subject: &str,
    format: &str,
) -> Result<Option<(Vec<u8>, String)>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT body, sha256 FROM report_store WHERE kind = $1 AND business_date = $2 AND subject = $3 AND format = $4",
            &[&kind, &date, &subject, &format],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Dates before `date` with anything booked on them (the first end of day renders those).
pub async fn booked_dates_before(c: &impl Db, date: NaiveDate) -> Result<Vec<NaiveDate>, tokio_postgres::Error> {
    let rows = c.query("SELECT DISTINCT booked_on FROM journal_entries WHERE booked_on < $1 ORDER BY 1", &[&date]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every bank's and every provider's id, in id order.
pub async fn subjects(c: &impl Db) -> Result<(Vec<String>, Vec<String>), tokio_postgres::Error> {
    let banks = c.query("SELECT id FROM banks ORDER BY id", &[]).await?;
    let providers = c.query("SELECT id FROM providers ORDER BY id", &[]).await?;
    Ok((banks.iter().map(|r| r.get(0)).collect(), providers.iter().map(|r| r.get(0)).collect()))
}

/// Every stored report, for the ledger check: `(kind, date, subject, format, body, sha256)`.
pub async fn all(c: &impl Db) -> Result<Vec<(String, NaiveDate, String, String, Vec<u8>, String)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT kind, business_date, subject, format, body, sha256 FROM report_store ORDER BY business_date, kind, subject, format",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect())
}

/// Refreshes the planner's statistics of the tables a date's reports find their rows in by
/// booking date. Autovacuum analyzes a table only some time after a large write, so the reports
/// of a day that booked many rows would otherwise be planned as if that date had none: nested
/// loops over the day's entries for each of its write-offs (an end of day writing off 30,000 plans
/// spent minutes in the all-banks reconciliation). ANALYZE reads a fixed sample, not the tables.
pub async fn analyze_booked_tables(c: &impl Db) -> Result<(), tokio_postgres::Error> {
    c.execute("ANALYZE journal_entries, compensations, plans", &[]).await?;
    Ok(())
}

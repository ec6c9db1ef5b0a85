//! Frozen closed days (API.md §15). When end of day closes a date it renders that date's reports
//! — each bank's reconciliation, the all-banks one, each provider's settlement — JSON and CSV,
//! stores the bytes with their SHA-256 and tells each bank and provider; from then on a closed
//! date is answered from the store, byte for byte, whatever is booked or whatever the renderer
//! becomes. A report missing for a closed date is rendered and stored at its first read. Every
//! report answer carries its body's SHA-256 as its `ETag`.

use super::Deps;
use crate::auth::Principal;
use crate::db::report_store::{self as store_db, StoredReport};
use crate::db::{Db, Tx, business_days};
use crate::domain::notice::{Notice, Recipient, ReportReady};
use crate::error::{ApiError, ApiResult};
use chrono::NaiveDate;
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

/// JSON or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// A report's answer: its bytes and their SHA-256 (hex), the `ETag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportBytes {
    pub body: Vec<u8>,
    pub sha256: String,
}

impl ReportBytes {
    pub fn of(body: Vec<u8>) -> ReportBytes {
        let sha256 = hex::encode(Sha256::digest(&body));
        ReportBytes { body, sha256 }
    }
}

const RECONCILIATION: &str = "reconciliation";
const SETTLEMENT: &str = "settlement";

/// A report's two renderings, ready to store, and how many movements it lists.
fn stored(kind: &'static str, date: NaiveDate, subject: &str, json: Vec<u8>, csv: String, movements: usize) -> [StoredReport; 2] {
    let movements = i32::try_from(movements).expect("a day's movements fit an i32");
    let one = |format: &'static str, body: Vec<u8>| {
        let b = ReportBytes::of(body);
        StoredReport { kind, business_date: date, subject: subject.to_string(), format, body: b.body, sha256: b.sha256, movements }
    };
    [one("json", json), one("csv", csv.into_bytes())]
}

fn to_json<T: serde::Serialize>(value: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ApiError::internal_because("Failed to render a report as JSON", e))
}

/// Renders a bank's (or, with `None`, the all-banks) reconciliation of `date` as the books say now.
async fn render_reconciliation(c: &impl Db, date: NaiveDate, bank_id: Option<&str>) -> ApiResult<[StoredReport; 2]> {
    let r = super::reports::read(c, date, bank_id.map(str::to_string)).await?;
    rendered_reconciliation(&r)
}

fn rendered_reconciliation(r: &super::reports::Reconciliation) -> ApiResult<[StoredReport; 2]> {
    let subject = r.bank_id.as_deref().unwrap_or("");
    Ok(stored(RECONCILIATION, r.business_date, subject, to_json(r)?, super::reports::to_csv(r), r.movements.len()))
}

/// Renders a provider's settlement of `date` as the books say now.
async fn render_settlement(tx: &Tx<'_>, date: NaiveDate, provider_id: &str) -> ApiResult<[StoredReport; 2]> {
    let s = super::settlement::read(tx, provider_id, date).await?;
    Ok(stored(SETTLEMENT, date, provider_id, to_json(&s)?, super::settlement::to_csv(&s), s.movements.len()))
}

/// A closed date's report in `format`: as stored, else rendered now and stored (the first read
/// after the date closed, for a bank or provider created since, or an empty date).
async fn closed_report(tx: &Tx<'_>, kind: &'static str, date: NaiveDate, subject: &str, format: Format) -> ApiResult<ReportBytes> {
    if let Some((body, sha256)) = store_db::get(tx, kind, date, subject, format.as_str()).await? {
        return Ok(ReportBytes { body, sha256 });
    }
    let rendered = match kind {
        RECONCILIATION => render_reconciliation(tx, date, Some(subject).filter(|s| !s.is_empty())).await?,
        _ => render_settlement(tx, date, subject).await?,
    };
    store_db::put_all(tx, &rendered).await?;
    // Another reader may have stored it first: what is stored is the answer.
    let (body, sha256) = store_db::get(tx, kind, date, subject, format.as_str())
        .await?
        .ok_or_else(|| ApiError::internal_because("Failed to store a closed date's report", format!("{kind} {date} {subject}")))?;
    Ok(ReportBytes { body, sha256 })
}

/// `GET /v1/reconciliation/{date}` as bytes: from the store once the date is closed.
#[tracing::instrument(skip_all, fields(business_date = %date, bank_id = ?bank_param))]
pub async fn reconciliation(
    state: &Deps,
    caller: &Principal,
    date: NaiveDate,
    bank_param: Option<&str>,
    format: Format,
) -> ApiResult<ReportBytes> {
    let mut client = state.pool.get().await?;
    let tx = Tx::begin(&mut client).await?;
    let bank_id = super::reports::authorize(state, &tx, caller, date, bank_param).await?;
    let bytes = if business_days::last_closed(&tx).await?.is_some_and(|c| c >= date) {
        closed_report(&tx, RECONCILIATION, date, bank_id.as_deref().unwrap_or(""), format).await?
    } else {
        let r = super::reports::read(&tx, date, bank_id).await?;
        ReportBytes::of(match format {
            Format::Json => to_json(&r)?,
            Format::Csv => super::reports::to_csv(&r).into_bytes(),
        })
    };
    tx.commit().await?;
    Ok(bytes)
}

/// `GET /v1/providers/{id}/settlement/{date}` as bytes: from the store once the date is closed.
#[tracing::instrument(skip_all, fields(provider_id = %provider_id, business_date = %date))]
pub async fn settlement(state: &Deps, caller: &Principal, provider_id: &str, date: NaiveDate, format: Format) -> ApiResult<ReportBytes> {
    let mut client = state.pool.get().await?;
    let tx = Tx::begin(&mut client).await?;
    super::settlement::authorize(state, &tx, caller, provider_id, date).await?;
    let bytes = if business_days::last_closed(&tx).await?.is_some_and(|c| c >= date) {
        closed_report(&tx, SETTLEMENT, date, provider_id, format).await?
    } else {
        let s = super::settlement::read(&tx, provider_id, date).await?;
        ReportBytes::of(match format {
            Format::Json => to_json(&s)?,
            Format::Csv => super::settlement::to_csv(&s).into_bytes(),
        })
    };
    tx.commit().await?;
    Ok(bytes)
}

/// After end of day closed `date` (the previous run's date `previous`): the dates to freeze and
/// announce — every date after `previous` through `date`; on the first run, `date` and the
/// earlier dates with bookings (the other empty ones are rendered at first read).
pub async fn dates_closed(c: &impl Db, previous: Option<NaiveDate>, date: NaiveDate) -> ApiResult<Vec<NaiveDate>> {
    let Some(previous) = previous else {
        let mut dates = store_db::booked_dates_before(c, date).await?;
        dates.push(date);
        return Ok(dates);
    };
    Ok(previous.iter_days().skip(1).take_while(|d| *d <= date).collect())
}

/// Renders and stores every report of each closed date, and tells every bank and provider; one
/// transaction per date.
#[tracing::instrument(skip_all, fields(business_date = %date))]
pub async fn freeze_closed(pool: &Pool, previous: Option<NaiveDate>, date: NaiveDate) -> ApiResult<()> {
    let dates = dates_closed(&**pool.get().await?, previous, date).await?;
    for day in dates {
        let mut client = pool.get().await?;
        let tx = Tx::begin(&mut client).await?;
        let (banks, providers) = store_db::subjects(&tx).await?;
        let mut reports: Vec<StoredReport> = Vec::with_capacity(2 * (banks.len() + providers.len() + 1));
        let mut notices = Vec::with_capacity(banks.len() + providers.len());
        // The day is read once; each bank's report is its part of the all-banks one.
        let all = super::reports::read(&tx, day, None).await?;
        reports.extend(rendered_reconciliation(&all)?);
        for bank in &banks {
            let r = rendered_reconciliation(&super::reports::for_bank(&all, bank))?;
            notices.push(Notice::report_ready(Recipient::Bank(bank.clone()), ready(day, &r)));
            reports.extend(r);
        }
        for provider in &providers {
            let r = render_settlement(&tx, day, provider).await?;
            notices.push(Notice::report_ready(Recipient::Provider(provider.clone()), ready(day, &r)));
            reports.extend(r);
        }
        store_db::put_all(&tx, &reports).await?;
        crate::db::notices::record(&tx, &notices).await?;
        tx.commit().await?;
    }
    Ok(())
}

fn ready(date: NaiveDate, [json, csv]: &[StoredReport; 2]) -> ReportReady {
    ReportReady {
        business_date: date,
        sha256_json: json.sha256.clone(),
        sha256_csv: csv.sha256.clone(),
        movements: i64::from(json.movements),
    }
}

//! End of day over a large book: N active plans (12 installments each) bulk-loaded with binary
//! COPY straight into the tables, consistent with each other, then `service::eod::run` (the
//! library, in this process) for the day after grace of the installment everyone has due on one
//! date, and for the next day, when nothing is due.
//!
//! The book: every plan funded on the same date F, 12 months at 18% (seven principals in turn),
//! so installment 3 of every plan is due on D0 = F + 3 months. Installments 1-2 are paid, 90% of
//! installment 3 is paid, 10% is not; 4-12 are pending. Each plan has its own order, hold and
//! credit line: the hold's remaining is its target (the unpaid scheduled amount, hold ratio 1),
//! the rest of it released; the line's held is its hold's remaining; each bank's exposure (kept in
//! stripes, see sql/V4__exposure_stripes.sql; an order's on the stripe it names) is the unpaid
//! principal of its plans. Nothing is in the journal (end of day only adds to it).
//!
//! Then (issues 17 and 18): 10% of the plans are made defaulted with SQL (installments 2-3
//! unpaid again, the hold released, the exposure raised to match) and the product writes off
//! after 30 days; with the service started on this database the aging and the portfolio are
//! timed over HTTP, and the closed due date's stored reconciliation read back; then end of day
//! for the next date writes those plans off. The rendering and storing of the due date's reports
//! (its 100,000 compensations) is timed from the end-of-day log.

use crate::Params;
use crate::cluster::Cluster;
use crate::observe::{Observation, Observer};
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use creditphone::domain::hold::{hold_amount, hold_target};
use creditphone::domain::irr::{format_apr, schedule_apr_irr};
use creditphone::domain::money::{Amount, Rate};
use creditphone::domain::schedule::{Pricing, ScheduledInstallment, build_schedule};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

const DB: &str = "eod";
const PROVIDER: &str = "eod-wld";
const STORE: &str = "eod-st";
const PRODUCT: &str = "eod-12";
const BANKS: [&str; 4] = ["eod-bank-a", "eod-bank-b", "eod-bank-c", "eod-bank-d"];
const TERM: usize = 12;
const GRACE_DAYS: i64 = 3;
/// The installment every plan has due on D0.
const DUE_SEQ: usize = 3;
/// Principals (fen) the plans take in turn.
const PRINCIPALS: [i64; 7] = [150_000, 200_000, 299_900, 300_000, 450_000, 599_900, 800_000];
const LINE_LIMIT_FEN: i64 = 2_000_000;
const BANK_LIMIT_FEN: i64 = 900_000_000_000_000;

#[derive(Debug, Clone)]
pub struct EodRun {
    pub date: NaiveDate,
    pub secs: f64,
    pub summary: Value,
    /// The run's own phase timings, from its log lines.
    pub phases: Vec<String>,
    /// Plans of its statements that took over a second (auto_explain, from the server's log).
    pub slow_plans: Vec<String>,
    pub obs: Observation,
}

/// The service's answers over the large book, timed over HTTP (median of [`TIMED_CALLS`]).
#[derive(Debug, Clone, Default)]
pub struct ApiTimings {
    /// The date the live aging was asked as of: the first open date.
    pub aging_as_of: Option<NaiveDate>,
    pub aging_ms: f64,
    pub portfolio_ms: f64,
    /// `GET /v1/reconciliation/{due date}` (all banks, JSON), a stored closed date.
    pub report_read_ms: f64,
    pub report_bytes: usize,
    /// The console's pages over the same book, signed in with the admin key: the aging as of the
    /// same date, and the overview (the portfolio and the end-of-day runs).
    pub console_aging_ms: f64,
    pub console_overview_ms: f64,
}

const TIMED_CALLS: usize = 5;
/// Every tenth plan (j % 10 == 7: none of the unpaid ones) is made defaulted for the write-off run.
const DEFAULTED_REM: usize = 7;
const WRITE_OFF_AFTER_DAYS: i32 = 30;

#[derive(Debug, Clone)]
pub struct EodResult {
    pub plans: usize,
    pub installments: usize,
    pub due_on_d0: usize,
    pub unpaid: usize,
    pub d0: NaiveDate,
    pub chunk_size: u32,
    pub copy_secs: f64,
    pub vacuum_secs: f64,
    pub database_mb: f64,
    pub due: EodRun,
    pub nothing_due: EodRun,
    /// Rendering and storing the due date's reports (end of day's log), and their movements.
    pub reports_store_secs: Option<f64>,
    pub report_movements: i64,
    pub defaulted: usize,
    pub defaulted_secs: f64,
    pub api: ApiTimings,
    pub write_off: EodRun,
}

impl EodResult {
    /// Installments due on D0 per second of the end of day after grace.
    pub fn installments_per_sec(&self) -> f64 {
        if self.due.secs > 0.0 { self.due_on_d0 as f64 / self.due.secs } else { 0.0 }
    }
}

/// One plan template: a principal's schedule and hold.
struct Template {
    principal: i64,
    schedule: Vec<ScheduledInstallment>,
    hold_amount: i64,
    apr: String,
}

struct Book {
    funded_on: NaiveDate,
    funding_deadline: DateTime<Utc>,
    templates: Vec<Template>,
    rate: Decimal,
    penalty_rate: Decimal,
}

/// What plan `j` is.
struct PlanShape<'a> {
    t: &'a Template,
    bank: &'static str,
    /// The exposure stripe its order reserved on.
    stripe: i16,
    /// Installment 3 unpaid (10% of the plans).
    unpaid: bool,
}

impl Book {
    fn new() -> Result<Book> {
        let funded_on = NaiveDate::from_ymd_opt(2026, 1, 15).context("date")?;
        let rate = Rate::parse("0.18").map_err(|e| anyhow!("rate: {e}"))?;
        let mut templates = Vec::new();
        for p in PRINCIPALS {
            let schedule = build_schedule(Amount::from_fen(p), TERM as u32, Pricing::Interest, rate, funded_on)
                .map_err(|e| anyhow!("schedule of {p} fen: {e}"))?;
            let hold = hold_amount(&schedule, Decimal::ONE).fen();
            let apr = format_apr(schedule_apr_irr(&schedule));
            templates.push(Template { principal: p, schedule, hold_amount: hold, apr });
        }
        let deadline = funded_on.and_hms_opt(0, 0, 0).context("time")? - Days::hours(8) + Days::hours(72);
        Ok(Book {
            funded_on,
            funding_deadline: DateTime::from_naive_utc_and_offset(deadline, Utc),
            templates,
            rate: rate.as_decimal(),
            penalty_rate: Decimal::new(5, 4),
        })
    }

    fn d0(&self) -> NaiveDate {
        self.templates[0].schedule[DUE_SEQ - 1].due_on
    }

    fn shape(&self, j: usize) -> PlanShape<'_> {
        let stripe = ((j / BANKS.len()) % creditphone::db::banks::STRIPES as usize) as i16;
        PlanShape { t: &self.templates[j % self.templates.len()], bank: BANKS[j % BANKS.len()], stripe, unpaid: j % 10 == 3 }
    }
}

impl PlanShape<'_> {
    fn paid(&self, seq: usize) -> bool {
        seq < DUE_SEQ || (seq == DUE_SEQ && !self.unpaid)
    }

    fn first_unpaid(&self) -> usize {
        if self.unpaid { DUE_SEQ } else { DUE_SEQ + 1 }
    }

    fn unpaid_principal(&self) -> i64 {
        self.t.schedule[self.first_unpaid() - 1..].iter().map(|i| i.principal.fen()).sum()
    }

    /// The hold's remaining: its target for what is still scheduled.
    fn hold_remaining(&self) -> i64 {
        let unpaid: Amount = self.t.schedule[self.first_unpaid() - 1..].iter().map(ScheduledInstallment::total).sum();
        hold_target(unpaid, Decimal::ONE).fen()
    }
}

fn id(prefix: &str, j: usize) -> String {
    format!("{prefix}_{j:016}")
}

pub async fn run(cluster: &Cluster, params: &Params, workdir: &Path, server_bin: &Path) -> Result<EodResult> {
    let n = params.plans;
    println!("\n== end of day: loading {n} active plans ({} installments) with COPY", n * TERM);
    cluster.create_database(DB).await?;
    let mut client = cluster.connect(DB).await?;
    creditphone::db::migrate(&mut client).await.context("migrating the end-of-day database")?;
    let book = Arc::new(Book::new()?);
    let d0 = book.d0();

    let t = Instant::now();
    insert_reference_data(&client, &book, n).await?;
    let ranges = |parts: usize| -> Vec<Range<usize>> { (0..parts).map(|k| n * k / parts..n * (k + 1) / parts).collect() };
    let mut tasks: Vec<tokio::task::JoinHandle<Result<(&'static str, u64)>>> = Vec::new();
    for table in [Table::Lines, Table::Orders, Table::Holds, Table::Plans, Table::OpenPrincipal] {
        tasks.push(tokio::spawn(copy(cluster.connect(DB).await?, table, 0..n, book.clone())));
    }
    for r in ranges(2) {
        tasks.push(tokio::spawn(copy(cluster.connect(DB).await?, Table::Installments, r, book.clone())));
    }
    let mut copied: Vec<(&'static str, u64)> = Vec::new();
    for task in tasks {
        copied.push(task.await.context("a COPY task failed")??);
    }
    let copy_secs = t.elapsed().as_secs_f64();
    let total: u64 = copied.iter().map(|c| c.1).sum();
    println!("   copied {total} rows in {copy_secs:.1} s ({:.0} rows/s)", total as f64 / copy_secs.max(1e-9));

    let t = Instant::now();
    for table in ["credit_lines", "orders", "holds", "plans", "plan_open_principal", "installments", "banks", "bank_exposure_stripes"] {
        client.batch_execute(&format!("VACUUM (ANALYZE) {table}")).await.with_context(|| format!("VACUUM {table}"))?;
    }
    client.batch_execute("CHECKPOINT").await.context("CHECKPOINT")?;
    let vacuum_secs = t.elapsed().as_secs_f64();
    let database_mb: f64 = client.query_one("SELECT pg_database_size(current_database())::float8 / 1048576", &[]).await?.get(0);
    println!("   VACUUM (ANALYZE) and CHECKPOINT in {vacuum_secs:.1} s; database {database_mb:.0} MiB");
    check_book(&client, n).await?;

    let chunk_size = creditphone::config::Settings::defaults().eod.chunk_size;
    let pool = creditphone::db::make_pool(cluster.pg_config(DB), 4, Duration::from_secs(10), Duration::from_secs(3600))?;
    let unpaid = (0..n).filter(|j| book.shape(*j).unpaid).count();
    let log = crate::log_path(workdir);

    let date = d0 + Days::days(GRACE_DAYS + 1);
    println!("== end of day for {date} (installment {DUE_SEQ} of every plan was due {d0}, grace {GRACE_DAYS} days; {unpaid} unpaid)");
    let due = run_once(cluster, &pool, date, chunk_size, &log).await?;
    let compensations = due.summary["compensations"]["count"].as_i64().unwrap_or(-1);
    let overdue = due.summary["overdue_marked"].as_i64().unwrap_or(-1);
    let uncovered = due.summary["uncovered"]["count"].as_i64().unwrap_or(-1);
    if compensations != unpaid as i64 || overdue != unpaid as i64 || uncovered != 0 {
        bail!(
            "end of day for {date} should mark and compensate the {unpaid} unpaid installments (none uncovered); its summary: {}",
            due.summary
        );
    }

    let date = date + Days::days(1);
    println!("== end of day for {date}: nothing is due");
    let nothing_due = run_once(cluster, &pool, date, chunk_size, &log).await?;
    let touched = ["overdue_marked", "holds_expired"].iter().map(|k| nothing_due.summary[k].as_i64().unwrap_or(-1)).sum::<i64>()
        + ["penalties", "compensations", "uncovered"].iter().map(|k| nothing_due.summary[k]["count"].as_i64().unwrap_or(-1)).sum::<i64>();
    if touched != 0 {
        bail!("end of day for {date} should find nothing to do; its summary: {}", nothing_due.summary);
    }
    let after = after_the_due_days(cluster, params, workdir, server_bin, &client, &pool, &due, date + Days::days(1)).await?;
    pool.close();
    drop(client);
    if params.keep {
        println!("   kept database {DB} (port {}) in the kept cluster", cluster.port());
    } else {
        cluster.drop_database(DB).await?;
    }
    Ok(EodResult {
        plans: n,
        installments: n * TERM,
        due_on_d0: n,
        unpaid,
        d0,
        chunk_size,
        copy_secs,
        vacuum_secs,
        database_mb,
        due,
        nothing_due,
        reports_store_secs: after.reports_store_secs,
        report_movements: after.report_movements,
        defaulted: after.defaulted,
        defaulted_secs: after.defaulted_secs,
        api: after.api,
        write_off: after.write_off,
    })
}

/// What [`run`] measures after the due and nothing-due days.
struct AfterDue {
    reports_store_secs: Option<f64>,
    report_movements: i64,
    defaulted: usize,
    defaulted_secs: f64,
    api: ApiTimings,
    write_off: EodRun,
}

/// The due date's reports (timed by its end of day's log), 10% of the plans made defaulted, the
/// service's answers over the book, then end of day for `open_date` writing them off.
#[allow(clippy::too_many_arguments)]
async fn after_the_due_days(
    cluster: &Cluster,
    params: &Params,
    workdir: &Path,
    server_bin: &Path,
    client: &tokio_postgres::Client,
    pool: &deadpool_postgres::Pool,
    due: &EodRun,
    open_date: NaiveDate,
) -> Result<AfterDue> {
    let log = crate::log_path(workdir);
    let reports_store_secs = reports_secs(&log, due.date);
    let report_movements: i64 = client
        .query_one(
            "SELECT coalesce(max(movements), 0)::int8 FROM report_store
             WHERE kind = 'reconciliation' AND subject = '' AND format = 'json' AND business_date = $1",
            &[&due.date],
        )
        .await?
        .get(0);

    let t = Instant::now();
    let defaulted = make_defaulted(client).await?;
    let defaulted_secs = t.elapsed().as_secs_f64();
    println!(
        "== {defaulted} plans made defaulted (installments 2-3 unpaid) in {defaulted_secs:.1} s; write-off after {WRITE_OFF_AFTER_DAYS} days"
    );
    let api = time_api(cluster, params, workdir, server_bin, open_date, due.date).await?;

    println!("== end of day for {open_date}: {defaulted} defaulted plans aged past {WRITE_OFF_AFTER_DAYS} days are written off");
    let chunk_size = creditphone::config::Settings::defaults().eod.chunk_size;
    let write_off = run_once(cluster, pool, open_date, chunk_size, &log).await?;
    let written_off = write_off.summary["write_offs"]["count"].as_i64().unwrap_or(-1);
    if written_off != defaulted as i64 {
        bail!("end of day for {open_date} should write off the {defaulted} defaulted plans; its summary: {}", write_off.summary);
    }
    Ok(AfterDue { reports_store_secs, report_movements, defaulted, defaulted_secs, api, write_off })
}

/// Every plan `j % 10 == DEFAULTED_REM` defaulted, as a conversion that fell short leaves it:
/// installments 2 and 3 unpaid and overdue (the oldest due long enough ago to be written off),
/// the plan and order `defaulted`, the hold released to nothing (the line holds nothing for it),
/// the bank's exposure raised by the principal now unpaid. The product then writes off after
/// [`WRITE_OFF_AFTER_DAYS`]. Consistent as `verify` reads exposure; the journal holds no history.
async fn make_defaulted(client: &tokio_postgres::Client) -> Result<usize> {
    let group = format!("right(p.id, 16)::int8 % 10 = {DEFAULTED_REM}");
    let statements = [
        format!(
            "CREATE TEMP TABLE bench_defaulted AS SELECT p.id AS plan_id, p.order_id, o.hold_id, o.credit_line_id, o.bank_id, o.exposure_stripe
             FROM plans p JOIN orders o ON o.id = p.order_id WHERE {group} AND p.status = 'active'"
        ),
        "UPDATE bank_exposure_stripes s SET used_fen = s.used_fen + a.add
         FROM (SELECT d.bank_id, d.exposure_stripe, sum(i.paid_principal_fen)::int8 AS add
               FROM bench_defaulted d JOIN installments i ON i.plan_id = d.plan_id AND i.seq IN (2, 3)
               GROUP BY 1, 2) a
         WHERE s.bank_id = a.bank_id AND s.stripe = a.exposure_stripe"
            .to_string(),
        "UPDATE installments i SET paid_principal_fen = 0, paid_interest_fen = 0, paid_fee_fen = 0, status = 'overdue'
         FROM bench_defaulted d WHERE i.plan_id = d.plan_id AND i.seq IN (2, 3)"
            .to_string(),
        "UPDATE plans p SET status = 'defaulted' FROM bench_defaulted d WHERE p.id = d.plan_id".to_string(),
        "UPDATE orders o SET status = 'defaulted' FROM bench_defaulted d WHERE o.id = d.order_id".to_string(),
        "UPDATE holds h SET released_fen = h.released_fen + h.remaining_fen, remaining_fen = 0, status = 'closed'
         FROM bench_defaulted d WHERE h.id = d.hold_id"
            .to_string(),
        "UPDATE credit_lines l SET held_fen = 0 FROM bench_defaulted d WHERE l.id = d.credit_line_id".to_string(),
        format!("UPDATE products SET write_off_after_days = {WRITE_OFF_AFTER_DAYS} WHERE id = '{PRODUCT}'"),
    ];
    client.batch_execute("BEGIN").await?;
    for sql in &statements {
        client.batch_execute(sql).await.with_context(|| format!("making plans defaulted: {}", sql.lines().next().unwrap_or("")))?;
    }
    let n: i64 = client.query_one("SELECT count(*) FROM bench_defaulted", &[]).await?.get(0);
    client.batch_execute("COMMIT; DROP TABLE bench_defaulted").await?;
    for table in ["plans", "orders", "holds", "credit_lines", "installments", "plan_open_principal", "bank_exposure_stripes"] {
        client.batch_execute(&format!("VACUUM (ANALYZE) {table}")).await.with_context(|| format!("VACUUM {table}"))?;
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The service on this database: the aging (live, as of the first open date) and the portfolio
/// over the whole book, and the due date's stored all-banks reconciliation, each the median of
/// [`TIMED_CALLS`] calls.
async fn time_api(
    cluster: &Cluster,
    params: &Params,
    workdir: &Path,
    server_bin: &Path,
    open_date: NaiveDate,
    closed_date: NaiveDate,
) -> Result<ApiTimings> {
    let service = crate::service::Service::start(server_bin, &cluster.url(DB), workdir, "eod-service", params.service_pool_size).await?;
    let outcome = async {
        // No redirects followed: the console's sign-in answers 303 with the session cookie.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("HTTP client")?;
        let bearer = (reqwest::header::AUTHORIZATION, format!("Bearer {}", service.admin_key));
        let (aging_ms, _) = median_get(&http, &format!("{}/v1/admin/aging?as_of={open_date}", service.url), &bearer).await?;
        let (portfolio_ms, _) = median_get(&http, &format!("{}/v1/admin/portfolio", service.url), &bearer).await?;
        let (report_read_ms, report_bytes) =
            median_get(&http, &format!("{}/v1/reconciliation/{closed_date}", service.url), &bearer).await?;
        let cookie = (reqwest::header::COOKIE, console_session(&http, &service).await?);
        let (console_aging_ms, _) = median_get(&http, &format!("{}/console/aging?as_of={open_date}", service.url), &cookie).await?;
        let (console_overview_ms, _) = median_get(&http, &format!("{}/console/overview", service.url), &cookie).await?;
        println!(
            "   GET aging as of {open_date} {aging_ms:.1} ms, portfolio {portfolio_ms:.1} ms, the reconciliation of closed {closed_date} ({report_bytes} bytes) {report_read_ms:.1} ms; \
             the console's aging page {console_aging_ms:.1} ms, overview {console_overview_ms:.1} ms (medians of {TIMED_CALLS})"
        );
        anyhow::Ok(ApiTimings {
            aging_as_of: Some(open_date),
            aging_ms,
            portfolio_ms,
            report_read_ms,
            report_bytes,
            console_aging_ms,
            console_overview_ms,
        })
    }
    .await;
    if let Err(e) = service.stop().await {
        eprintln!("creditphone-bench: stopping the end-of-day service: {e:#}");
    }
    outcome
}

/// Seconds end of day took to render and store the reports of the dates it closed (its log line).
fn reports_secs(log: &Path, date: NaiveDate) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let date = date.to_string();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "end of day: closed dates' reports stored" && v["business_date"] == date.as_str())
        .filter_map(|v| v["elapsed_ms"].as_f64())
        .last()
        .map(|ms| ms / 1000.0)
}

/// The median of [`TIMED_CALLS`] GETs of `url` with `credential` (the API's `Authorization`, or a
/// console session's `Cookie`), each timed until its whole body is read; a non-2xx fails.
async fn median_get(http: &reqwest::Client, url: &str, credential: &(reqwest::header::HeaderName, String)) -> Result<(f64, usize)> {
    let (header, value) = credential;
    let mut ms = Vec::with_capacity(TIMED_CALLS);
    let mut bytes = 0;
    for _ in 0..TIMED_CALLS {
        let t = Instant::now();
        let res = http.get(url).header(header, value).send().await.with_context(|| format!("GET {url}"))?;
        let status = res.status();
        let body = res.bytes().await.with_context(|| format!("reading GET {url}"))?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if !status.is_success() {
            bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        bytes = body.len();
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], bytes))
}

/// Signs in to the console with the service's admin key, as its sign-in form does: the session
/// cookie's `name=value`, to send back as `Cookie`.
async fn console_session(http: &reqwest::Client, service: &crate::service::Service) -> Result<String> {
    let url = format!("{}/console/sign-in", service.url);
    let res = http.post(&url).form(&[("key", service.admin_key.as_str())]).send().await.with_context(|| format!("POST {url}"))?;
    if res.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("the console's sign-in answered {}", res.status());
    }
    let cookie = res.headers().get(reqwest::header::SET_COOKIE).and_then(|v| v.to_str().ok()).context("the sign-in set no cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

async fn run_once(cluster: &Cluster, pool: &deadpool_postgres::Pool, date: NaiveDate, chunk_size: u32, log: &Path) -> Result<EodRun> {
    let pg_log_offset = std::fs::metadata(cluster.log_path()).map_or(0, |m| m.len());
    let obs = Observer::start(cluster, DB, &[std::process::id()]).await?;
    let t = Instant::now();
    let summary = creditphone::service::eod::run(
        pool,
        &creditphone::clock::SystemClock,
        date,
        true,
        chunk_size,
        creditphone::domain::eod_run::EodTrigger::Cli,
    )
    .await
    .map_err(|e| anyhow!("end of day for {date}: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let obs = obs.finish().await?;
    let summary = serde_json::to_value(&summary).context("the end-of-day summary")?;
    let phases = phases_from_log(log, date);
    let slow_plans = slow_plans(cluster.log_path(), pg_log_offset);
    println!("   {secs:.2} s; summary {summary}");
    for p in &phases {
        println!("   {p}");
    }
    if !slow_plans.is_empty() {
        println!("   {} statements over 1 s (plans in the report)", slow_plans.len());
    }
    crate::print_obs(&obs, 1, "run");
    Ok(EodRun { date, secs, summary, phases, slow_plans, obs })
}

/// The auto_explain entries (`LOG:  duration: … plan:` and its tab-indented lines) written to the
/// server's log after `offset`; at most 4, each cut to 40 lines.
fn slow_plans(pg_log: &Path, offset: u64) -> Vec<String> {
    let text = crate::observe::read_from(pg_log, offset);
    let mut plans: Vec<Vec<&str>> = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line.contains("LOG:  duration: ") && line.ends_with("plan:") {
            plans.extend(current.take());
            current = Some(vec![line.split_once("LOG:  ").map_or(line, |(_, rest)| rest)]);
        } else if line.starts_with('\t') {
            if let Some(c) = current.as_mut() {
                c.push(line.trim_start_matches('\t'));
            }
        } else {
            plans.extend(current.take());
        }
    }
    plans.extend(current.take());
    plans
        .into_iter()
        .take(4)
        .map(|p| {
            let n = p.len();
            let mut kept: Vec<&str> = p.into_iter().take(40).collect();
            if n > 40 {
                kept.push("...");
            }
            kept.join("\n")
        })
        .collect()
}

/// The end-of-day log lines of `date` (JSON, in bench.log): the last progress line of each
/// phase, with the spread of its chunks' durations.
fn phases_from_log(log: &Path, date: NaiveDate) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let date = date.to_string();
    let mut out = Vec::new();
    for (message, unit) in [("end of day: expiring unfunded orders", "orders"), ("end of day: due installments", "plans")] {
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message && v["business_date"] == date.as_str())
            .collect();
        let Some(last) = lines.last() else {
            out.push(format!("{message}: nothing to do"));
            continue;
        };
        let elapsed: Vec<f64> = lines.iter().filter_map(|v| v["elapsed_ms"].as_f64()).collect();
        let steps: Vec<f64> = elapsed
            .iter()
            .scan(0.0, |prev, e| {
                let step = e - *prev;
                *prev = *e;
                Some(step)
            })
            .collect();
        let min = steps.iter().copied().fold(f64::INFINITY, f64::min);
        let max = steps.iter().copied().fold(0.0, f64::max);
        out.push(format!(
            "{message}: {} chunks, {} {unit}, {:.2} s (a chunk {:.0}-{:.0} ms)",
            last["chunks"],
            last[unit],
            last["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            min,
            max
        ));
    }
    out
}

async fn insert_reference_data(client: &tokio_postgres::Client, book: &Book, n: usize) -> Result<()> {
    client.execute("INSERT INTO providers (id, name) VALUES ($1, 'EOD bench provider')", &[&PROVIDER]).await.context("provider")?;
    client
        .execute("INSERT INTO stores (id, name, region_code) VALUES ($1, 'EOD bench store', '440305')", &[&STORE])
        .await
        .context("store")?;
    let terms = json!([{"months": TERM, "rate": "0.18", "apr_irr": book.templates[0].apr}]);
    let providers = vec![PROVIDER.to_string()];
    let regions = vec!["44".to_string()];
    client
        .execute(
            "INSERT INTO products (id, name, pricing, terms, providers, regions, min_principal_fen, max_principal_fen, hold_ratio,
                 grace_days, penalty_daily_rate, funding_timeout_hours, partner_referral_fee_fen)
             VALUES ($1, 'EOD bench 12 months', 'interest', $2, $3, $4, 50000, 2000000, 1, $5, $6, 72, 0)",
            &[&PRODUCT, &terms, &providers, &regions, &(GRACE_DAYS as i32), &book.penalty_rate],
        )
        .await
        .context("product")?;
    let stripes = creditphone::db::banks::STRIPES;
    let mut used = vec![vec![0i64; stripes as usize]; BANKS.len()];
    for j in 0..n {
        let s = book.shape(j);
        used[j % BANKS.len()][s.stripe as usize] += s.unpaid_principal();
    }
    for (k, bank) in BANKS.iter().enumerate() {
        client
            .execute(
                "INSERT INTO banks (id, name, priority, apr_min, apr_max, exposure_limit_fen) VALUES ($1, $1, $2, 0, 0.24, $3)",
                &[bank, &(k as i32 + 1), &BANK_LIMIT_FEN],
            )
            .await
            .with_context(|| format!("bank {bank}"))?;
        let limits = creditphone::db::banks::stripe_limits(BANK_LIMIT_FEN, &used[k]);
        let ids: Vec<i16> = (0..stripes).collect();
        client
            .execute(
                "INSERT INTO bank_exposure_stripes (bank_id, stripe, limit_fen, used_fen)
                 SELECT $1, s, l, u FROM unnest($2::int2[], $3::int8[], $4::int8[]) AS t(s, l, u)",
                &[bank, &ids, &limits, &used[k]],
            )
            .await
            .with_context(|| format!("exposure stripes of bank {bank}"))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Lines,
    Orders,
    Holds,
    Plans,
    /// Each plan's open unpaid principal, which sql/V35's triggers on installments keep (off here,
    /// with every trigger, for the load).
    OpenPrincipal,
    Installments,
}

/// COPYs rows `range` of one table on its own connection, foreign-key triggers off
/// (`session_replication_role = replica`: the rows are consistent by construction).
async fn copy(client: tokio_postgres::Client, table: Table, range: Range<usize>, book: Arc<Book>) -> Result<(&'static str, u64)> {
    client.batch_execute("SET session_replication_role = replica").await.context("SET session_replication_role")?;
    let (name, sql, types): (&'static str, &str, Vec<Type>) = match table {
        Table::Lines => (
            "credit_lines",
            "COPY credit_lines (id, provider_id, id_number_hash, id_number_masked, phone_hash, phone_masked, identity_sealed,
                 limit_fen, held_fen, drawn_fen, expires_on, status) FROM STDIN (FORMAT binary)",
            vec![
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::BYTEA,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::DATE,
                Type::TEXT,
            ],
        ),
        Table::Orders => (
            "orders",
            "COPY orders (id, owner_scope, out_order_no, channel, store_id, region_code, product_id, term_months, pricing, rate,
                 hold_ratio, grace_days, penalty_daily_rate, partner_referral_fee_fen, principal_fen, apr_irr, device_sku, imei_masked,
                 device_price_fen, down_payment_fen, identity_sealed, credit_line_id, bank_id, hold_id, funding_deadline, status,
                 created_on, exposure_stripe) FROM STDIN (FORMAT binary)",
            vec![
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT4,
                Type::TEXT,
                Type::NUMERIC,
                Type::NUMERIC,
                Type::INT4,
                Type::NUMERIC,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::BYTEA,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::DATE,
                Type::INT2,
            ],
        ),
        Table::Holds => (
            "holds",
            "COPY holds (id, credit_line_id, provider_id, order_id, amount_fen, released_fen, converted_fen, voided_fen, remaining_fen,
                 status) FROM STDIN (FORMAT binary)",
            vec![Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::TEXT],
        ),
        Table::Plans => (
            "plans",
            "COPY plans (id, order_id, bank_id, loan_no, principal_fen, pricing, rate, apr_irr, term_months, funded_on, status)
             FROM STDIN (FORMAT binary)",
            vec![
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::NUMERIC,
                Type::TEXT,
                Type::INT4,
                Type::DATE,
                Type::TEXT,
            ],
        ),
        Table::OpenPrincipal => (
            "plan_open_principal",
            "COPY plan_open_principal (plan_id, bank_id, open_unpaid_principal_fen) FROM STDIN (FORMAT binary)",
            vec![Type::TEXT, Type::TEXT, Type::INT8],
        ),
        Table::Installments => (
            "installments",
            "COPY installments (plan_id, seq, due_on, principal_fen, interest_fen, fee_fen, paid_principal_fen, paid_interest_fen,
                 paid_fee_fen, status) FROM STDIN (FORMAT binary)",
            vec![Type::TEXT, Type::INT4, Type::DATE, Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::INT8, Type::TEXT],
        ),
    };
    let sink = client.copy_in(sql).await.with_context(|| format!("COPY {name}"))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    let b = &*book;
    let sealed: &[u8] = b"bench-sealed-identity";
    let expires = NaiveDate::from_ymd_opt(2040, 12, 31).context("date")?;
    let (zero, one, twelve, grace) = (0i64, Decimal::ONE, TERM as i32, GRACE_DAYS as i32);
    for j in range {
        let s = b.shape(j);
        let (line, order, hold, plan) = (id("line", j), id("ord", j), id("hold", j), id("plan", j));
        match table {
            Table::Lines => {
                let (hash, phone_hash, held) = (format!("bench-id-{j}"), format!("bench-phone-{j}"), s.hold_remaining());
                let row: [&(dyn ToSql + Sync); 12] = [
                    &line,
                    &PROVIDER,
                    &hash,
                    &"110101********0000",
                    &phone_hash,
                    &"139****0000",
                    &sealed,
                    &LINE_LIMIT_FEN,
                    &held,
                    &zero,
                    &expires,
                    &"active",
                ];
                writer.as_mut().write(&row).await?;
            }
            Table::Orders => {
                let (scope, out_no, principal) = (format!("store:{STORE}"), format!("E{j}"), s.t.principal);
                let row: [&(dyn ToSql + Sync); 28] = [
                    &order,
                    &scope,
                    &out_no,
                    &"store",
                    &STORE,
                    &"440305",
                    &PRODUCT,
                    &twelve,
                    &"interest",
                    &b.rate,
                    &one,
                    &grace,
                    &b.penalty_rate,
                    &zero,
                    &principal,
                    &s.t.apr,
                    &"bench-phone",
                    &"490154*****7518",
                    &principal,
                    &zero,
                    &sealed,
                    &line,
                    &s.bank,
                    &hold,
                    &b.funding_deadline,
                    &"active",
                    &b.funded_on,
                    &s.stripe,
                ];
                writer.as_mut().write(&row).await?;
            }
            Table::Holds => {
                let remaining = s.hold_remaining();
                let released = s.t.hold_amount - remaining;
                let row: [&(dyn ToSql + Sync); 10] =
                    [&hold, &line, &PROVIDER, &order, &s.t.hold_amount, &released, &zero, &zero, &remaining, &"active"];
                writer.as_mut().write(&row).await?;
            }
            Table::Plans => {
                let loan_no = format!("L{j}");
                let row: [&(dyn ToSql + Sync); 11] =
                    [&plan, &order, &s.bank, &loan_no, &s.t.principal, &"interest", &b.rate, &s.t.apr, &twelve, &b.funded_on, &"active"];
                writer.as_mut().write(&row).await?;
            }
            Table::OpenPrincipal => {
                let row: [&(dyn ToSql + Sync); 3] = [&plan, &s.bank, &s.unpaid_principal()];
                writer.as_mut().write(&row).await?;
            }
            Table::Installments => {
                for inst in &s.t.schedule {
                    let seq = inst.seq as i32;
                    let (p, i, f) = (inst.principal.fen(), inst.interest.fen(), inst.fee.fen());
                    let paid = s.paid(inst.seq as usize);
                    let (pp, pi, pf) = if paid { (p, i, f) } else { (0, 0, 0) };
                    let status = if paid { "paid" } else { "pending" };
                    let row: [&(dyn ToSql + Sync); 10] = [&plan, &seq, &inst.due_on, &p, &i, &f, &pp, &pi, &pf, &status];
                    writer.as_mut().write(&row).await?;
                }
            }
        }
    }
    let rows = writer.as_mut().finish().await.with_context(|| format!("COPY {name}"))?;
    Ok((name, rows))
}

/// The loaded book balances: lines' held equal their holds' remaining, holds balance, banks'
/// exposure equals the unpaid principal of their plans, and the counts are right.
async fn check_book(client: &tokio_postgres::Client, n: usize) -> Result<()> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM plans), (SELECT count(*) FROM installments),
                    (SELECT count(*) FROM credit_lines l JOIN holds h ON h.credit_line_id = l.id WHERE l.held_fen <> h.remaining_fen),
                    (SELECT count(*) FROM holds WHERE amount_fen <> released_fen + converted_fen + voided_fen + remaining_fen),
                    (WITH e AS (SELECT o.bank_id, o.exposure_stripe, sum(i.principal_fen - i.paid_principal_fen)::int8 AS unpaid
                                FROM plans p JOIN orders o ON o.id = p.order_id JOIN installments i ON i.plan_id = p.id
                                GROUP BY o.bank_id, o.exposure_stripe)
                     SELECT count(*) FROM bank_exposure_stripes s LEFT JOIN e ON e.bank_id = s.bank_id AND e.exposure_stripe = s.stripe
                     WHERE s.used_fen <> coalesce(e.unpaid, 0)),
                    (SELECT count(*) FROM plans p LEFT JOIN plan_open_principal o ON o.plan_id = p.id
                     WHERE o.bank_id IS DISTINCT FROM p.bank_id OR coalesce(o.open_unpaid_principal_fen, 0) <> (SELECT coalesce(sum(i.principal_fen - i.paid_principal_fen), 0)
                         FROM installments i WHERE i.plan_id = p.id AND i.status IN ('pending', 'overdue')))",
            &[],
        )
        .await
        .context("checking the loaded book")?;
    let (plans, insts, lines_off, holds_off, banks_off, plans_off): (i64, i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    if plans != n as i64 || insts != (n * TERM) as i64 || lines_off != 0 || holds_off != 0 || banks_off != 0 || plans_off != 0 {
        bail!(
            "the loaded book does not balance: {plans} plans, {insts} installments, {lines_off} lines off their hold, {holds_off} holds unbalanced, {banks_off} exposure stripes off, {plans_off} plans' open principal off (plan_open_principal)"
        );
    }
    Ok(())
}

//! Background jobs inside `serve` (end of day, notice delivery, housekeeping). Each can run in
//! several instances at once: they coordinate through the database, never through memory.

pub mod confirmation_sweep;
pub mod notices;

use crate::service::Deps;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Jobs {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Jobs {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
        }
    }
}

pub fn spawn_all(state: Arc<Deps>) -> Jobs {
    let (stop, stopped) = watch::channel(false);
    let mut handles = vec![tokio::spawn(housekeeping(state.clone(), stopped.clone()))];
    if state.settings.notices.enabled {
        handles.push(tokio::spawn(notices::run(state.clone(), stopped.clone())));
    }
    if state.settings.holds.confirmation_sweep_secs > 0 {
        handles.push(tokio::spawn(confirmation_sweep::run(state.clone(), stopped.clone())));
    }
    if state.settings.eod.enabled {
        handles.push(tokio::spawn(daily_eod(state, stopped)));
    }
    Jobs { stop, handles }
}

/// Webhook attempts deleted per statement by housekeeping: each batch is its own short
/// transaction, so a backlog never holds locks or writes WAL in one lump.
const ATTEMPT_PURGE_BATCH: i64 = 5_000;
/// Batches per housekeeping run at most (a million attempts an hour); a larger backlog is worked
/// off over the next runs.
const ATTEMPT_PURGE_BATCHES: usize = 200;

/// Hourly: forget idempotency answers and webhook attempts past their retention.
async fn housekeeping(state: Arc<Deps>, mut stopped: watch::Receiver<bool>) {
    loop {
        if let Ok(client) = state.pool.get().await {
            match crate::db::idempotency::purge_older_than_days(&client, state.settings.idempotency.retention_days).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "purged expired idempotency keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
            }
        }
        purge_notice_attempts(&state, &stopped).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Deletes the attempts of delivered notices past `notices.attempts_retention_days`, in batches of
/// `ATTEMPT_PURGE_BATCH` until one comes back short, at most `ATTEMPT_PURGE_BATCHES` of them.
async fn purge_notice_attempts(state: &Deps, stopped: &watch::Receiver<bool>) {
    let days = state.settings.notices.attempts_retention_days;
    let mut deleted = 0;
    for _ in 0..ATTEMPT_PURGE_BATCHES {
        if *stopped.borrow() {
            break;
        }
        let batch = match state.pool.get().await {
            Ok(client) => crate::db::notices::purge_attempts(&**client, days, ATTEMPT_PURGE_BATCH).await,
            Err(e) => {
                tracing::warn!(error = %e, "purging webhook attempts: no database connection");
                break;
            }
        };
        match batch {
            Ok(n) => {
                deleted += n;
                if n < ATTEMPT_PURGE_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::db_cause(&e), "purging webhook attempts failed");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, retention_days = days, "purged webhook attempts past their retention");
    }
}

/// Every day at `eod.run_at` (Asia/Shanghai): end of day for the previous date, unless closed already.
/// Several instances may run this; the end-of-day lock lets one work and the others find it done.
async fn daily_eod(state: Arc<Deps>, mut stopped: watch::Receiver<bool>) {
    use crate::domain::dates::SHANGHAI;
    let Some(run_at) = crate::config::parse_hh_mm(&state.settings.eod.run_at) else { return };
    loop {
        let now = chrono::Utc::now().with_timezone(&SHANGHAI);
        let mut next = now.date_naive().and_time(run_at);
        if next <= now.naive_local() {
            next += chrono::Duration::days(1);
        }
        let wait = (next - now.naive_local()).to_std().unwrap_or(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
        let date = state.clock.today() - chrono::Duration::days(1);
        let s = &state.settings;
        match crate::service::eod::run(
            &state.pool,
            &*state.clock,
            date,
            s.clock.allow_future_dates,
            s.eod.chunk_size,
            crate::domain::eod_run::EodTrigger::Schedule,
        )
        .await
        {
            Ok(summary) => {
                state.metrics.job_runs.with_label_values(&["eod", "ok"]).inc();
                tracing::info!(business_date = %summary.business_date, "scheduled end of day done");
            }
            Err(e) if e.code == crate::error::ErrorCode::BusinessDateRegression => {
                tracing::info!(business_date = %date, "scheduled end of day: a later date is already closed");
            }
            Err(e) => {
                state.metrics.job_runs.with_label_values(&["eod", "error"]).inc();
                tracing::error!(business_date = %date, error = %e, "scheduled end of day failed; it will be retried at the next run");
            }
        }
    }
}

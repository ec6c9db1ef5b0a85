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

/// Hourly: forget idempotency answers past their retention.
async fn housekeeping(state: Arc<Deps>, mut stopped: watch::Receiver<bool>) {
    loop {
        if let Ok(client) = state.pool.get().await {
            match crate::db::idempotency::purge_older_than_days(&client, state.settings.idempotency.retention_days).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "purged expired idempotency keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stopped.changed() => return,
        }
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

//! The confirmation sweep (API.md §12): every `holds.confirmation_sweep_secs`, the pending holds
//! past their `confirm_deadline` are voided (`confirmation_timeout`), their orders expired and
//! their providers told — the notice is the provider's instruction to unfreeze, so it should not
//! wait for end of day. One sweep at a time across instances (its own advisory lock, taken per
//! sweep transaction, never end of day's: a long end of day does not stop the sweep).

use crate::service::Deps;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Sweeps until stopped; a sweep that filled its batch is followed at once by the next.
pub async fn run(deps: Arc<Deps>, mut stopped: watch::Receiver<bool>) {
    let every = Duration::from_secs(deps.settings.holds.confirmation_sweep_secs);
    let batch = deps.settings.holds.confirmation_sweep_batch;
    loop {
        let wait = match crate::service::holds::sweep(&deps, batch).await {
            Ok(count) => {
                deps.metrics.job_runs.with_label_values(&["confirmation_sweep", "ok"]).inc();
                if count > 0 {
                    tracing::info!(timed_out = count, "confirmation sweep: pending holds timed out");
                }
                if count >= batch { Duration::ZERO } else { every }
            }
            Err(e) => {
                deps.metrics.job_runs.with_label_values(&["confirmation_sweep", "error"]).inc();
                tracing::warn!(error = %e, "confirmation sweep failed; it runs again at the next interval");
                every
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}

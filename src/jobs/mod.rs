//! Background jobs inside `serve` (end of day, notice delivery, housekeeping). Each can run in
//! several instances at once: they coordinate through the database, never through memory.

use crate::http::AppState;
use actix_web::web;
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

pub fn spawn_all(state: web::Data<AppState>) -> Jobs {
    let (stop, stopped) = watch::channel(false);
    let handles = vec![tokio::spawn(housekeeping(state, stopped))];
    Jobs { stop, handles }
}

/// Hourly: forget idempotency answers past their retention.
async fn housekeeping(state: web::Data<AppState>, mut stopped: watch::Receiver<bool>) {
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

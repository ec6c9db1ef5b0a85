//! Webhook delivery: pending notices inserted straight into the outbox for a bank whose webhook is
//! a receiver in this process (it answers 200 to everything), delivered by the service's notice
//! workers; measured until every one is `delivered`.

use crate::Params;
use crate::api::NOTICE_BANK;
use crate::cluster::Cluster;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const POLL_EVERY: Duration = Duration::from_millis(50);
const DB_CHECK_EVERY: Duration = Duration::from_secs(10);

/// A local webhook receiver on 127.0.0.1: counts requests, answers 200.
pub struct Receiver {
    port: u16,
    pub received: Arc<AtomicU64>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Result<Receiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("could not bind a loopback port for the receiver")?;
        let port = listener.local_addr().context("local address")?.port();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("webhook-receiver".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let started = system.block_on(async move {
                    let server = actix_web::HttpServer::new(move || {
                        let counter = counter.clone();
                        actix_web::App::new().default_service(actix_web::web::to(move |_body: actix_web::web::Bytes| {
                            counter.fetch_add(1, Ordering::Relaxed);
                            async { actix_web::HttpResponse::Ok().finish() }
                        }))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener)?
                    .run();
                    std::io::Result::Ok(server)
                });
                match started {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.handle()));
                        let _ = system.block_on(server);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .context("could not start the receiver's thread")?;
        let handle = rx.recv().context("the receiver's thread ended")?.context("the receiver could not start")?;
        Ok(Receiver { port, received, handle, thread: Some(thread) })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn stop(mut self) {
        let handle = self.handle.clone();
        let stopping = std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
        let _ = stopping.join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NoticeResult {
    pub count: usize,
    pub delivered: i64,
    pub dead: i64,
    pub secs: f64,
    /// First created to last delivered, from the database's own timestamps.
    pub db_secs: Option<f64>,
    /// The backlog's commit to the last delivered: `db_secs` without the harness's own insert of
    /// the backlog (a statement of seconds, within `db_secs` since `created_at` is its start).
    pub after_commit_secs: Option<f64>,
    pub received: u64,
    pub complete: bool,
    pub per_recipient: String,
}

impl NoticeResult {
    pub fn per_sec(&self) -> f64 {
        let secs = self.db_secs.filter(|s| *s > 0.0).unwrap_or(self.secs);
        if secs > 0.0 { self.delivered as f64 / secs } else { 0.0 }
    }

    pub fn summary(&self) -> String {
        let after_commit = match self.after_commit_secs.filter(|s| *s > 0.0) {
            Some(s) => format!("; {:.0}/s from the backlog's commit", self.delivered as f64 / s),
            None => String::new(),
        };
        format!(
            "{} of {} delivered{} in {:.1} s: {:.0} notices/s ({} requests received, {} dead{after_commit})",
            self.delivered,
            self.count,
            if self.complete { "" } else { " (deadline reached)" },
            self.db_secs.unwrap_or(self.secs),
            self.per_sec(),
            self.received,
            self.dead
        )
    }
}

pub async fn run(cluster: &Cluster, db: &str, receiver: &Receiver, params: &Params) -> Result<NoticeResult> {
    let client = cluster.connect(db).await?;
    let before = receiver.received.load(Ordering::Relaxed);
    let n = params.notices as i64;
    let started = Instant::now();
    let inserted = client
        .execute(
            "INSERT INTO notices (type, recipient_kind, recipient_id, data, state, next_attempt_at)
             SELECT 'funding.requested', 'bank', $1,
                    jsonb_build_object('order_id', 'ord_bench' || lpad(g::text, 11, '0'), 'hold_id', 'hold_bench' || lpad(g::text, 10, '0'),
                                       'amount', '3000.00', 'principal', '3000.00', 'term_months', 12, 'apr_irr', '0.1800'),
                    'pending', now()
             FROM generate_series(1, $2::int8) AS g",
            &[&NOTICE_BANK, &n],
        )
        .await
        .context("inserting pending notices")?;
    if inserted != n as u64 {
        bail!("inserted {inserted} notices instead of {n}");
    }
    let committed_at: chrono::DateTime<chrono::Utc> = client.query_one("SELECT now()", &[]).await?.get(0);
    let deadline = started + params.notices_deadline;
    let mut complete = false;
    // Progress is watched at the receiver (free); the database, which counting would load, is
    // asked only once every notice has arrived, or now and then.
    let mut asked_at = Instant::now();
    loop {
        let received = receiver.received.load(Ordering::Relaxed) - before;
        if received >= n as u64 || asked_at.elapsed() >= DB_CHECK_EVERY || Instant::now() >= deadline {
            asked_at = Instant::now();
            let pending: i64 = client
                .query_one(
                    "SELECT count(*) FROM notices WHERE state = 'pending' AND recipient_kind = 'bank' AND recipient_id = $1",
                    &[&NOTICE_BANK],
                )
                .await?
                .get(0);
            if pending == 0 {
                complete = true;
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "creditphone-bench: {pending} notices still pending after {} s; reporting what was delivered",
                    params.notices_deadline.as_secs()
                );
                break;
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'delivered'), count(*) FILTER (WHERE state = 'dead'),
                    extract(epoch FROM max(delivered_at) - min(created_at))::float8,
                    extract(epoch FROM max(delivered_at) - $2)::float8
             FROM notices WHERE recipient_kind = 'bank' AND recipient_id = $1",
            &[&NOTICE_BANK, &committed_at],
        )
        .await?;
    Ok(NoticeResult {
        count: params.notices,
        delivered: row.get(0),
        dead: row.get(1),
        secs,
        db_secs: row.get(2),
        after_commit_secs: row.get(3),
        received: receiver.received.load(Ordering::Relaxed) - before,
        complete,
        per_recipient: {
            let n = creditphone::config::Settings::defaults().notices;
            format!(
                "`notices.workers` {}, `per_recipient` {}, `batch_size` {}, `poll_interval_ms` {}",
                n.workers, n.per_recipient, n.batch_size, n.poll_interval_ms
            )
        },
    })
}

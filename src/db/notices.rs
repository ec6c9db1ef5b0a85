//! The notice outbox (API.md section 7), written in the same transaction as the change it tells of.

use super::Db;
use super::Tx;
// A notice to be recorded; `Notice` in this module is the feed's item, as read back.
use crate::domain::notice::Notice as NewNotice;
use crate::domain::status::NoticeState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;

/// One sequencer at a time gives positions (sql/V5__notice_positions.sql).
const NOTICE_SEQUENCER_LOCK_KEY: i64 = super::lock_keys::NOTICE_SEQUENCER;

/// Records notices; each is `pending` delivery when its recipient has a webhook URL, else `pull_only`.
/// Readers see them once `position_new` has given them a position, after commit.
pub async fn record(tx: &Tx<'_>, notices: &[NewNotice]) -> Result<(), tokio_postgres::Error> {
    if notices.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = notices.iter().map(NewNotice::kind).collect();
    let recipients: Vec<_> = notices.iter().map(NewNotice::recipient).collect();
    let kinds: Vec<&str> = recipients.iter().map(|r| r.kind()).collect();
    let ids: Vec<&str> = recipients.iter().map(|r| r.id()).collect();
    let data: Vec<Value> = notices.iter().map(NewNotice::data).collect();
    tx.execute(
        "INSERT INTO notices (type, recipient_kind, recipient_id, data, state, next_attempt_at)
         SELECT t.type, t.kind, t.rid, t.data,
                CASE WHEN w.url IS NULL THEN 'pull_only' ELSE 'pending' END,
                CASE WHEN w.url IS NULL THEN NULL ELSE now() END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS t(type, kind, rid, data, n)
         LEFT JOIN LATERAL (
             SELECT webhook_url AS url FROM banks WHERE t.kind = 'bank' AND id = t.rid
             UNION ALL
             SELECT webhook_url FROM providers WHERE t.kind = 'provider' AND id = t.rid
         ) w ON true
         ORDER BY t.n",
        &[&types, &kinds, &ids, &data],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notice {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub recipient: Value,
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(skip)]
    pub seq: i64,
    /// The read order: given after commit (`None` until then).
    #[serde(skip)]
    pub pos: Option<i64>,
}

fn notice(r: &Row) -> Notice {
    Notice {
        id: r.get("id"),
        kind: r.get("type"),
        created_at: r.get("created_at"),
        recipient: serde_json::json!({"kind": r.get::<_, String>("recipient_kind"), "id": r.get::<_, String>("recipient_id")}),
        data: r.get("data"),
        seq: r.get("seq"),
        pos: r.get("pos"),
    }
}

/// Gives positions to the committed notices without one, in id order, after every position given
/// so far; answers how many. Waits for a sequencer already running (they are quick), so a reader
/// that calls this first sees every notice committed before it.
pub async fn position_new(client: &mut tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    position_next(client, 100_000).await
}

/// `position_new` for at most the first `limit` notices without a position (in id order): what
/// delivery's dispatcher calls, so that workers can start on the first ones while the rest of a
/// large backlog is positioned.
pub async fn position_next(client: &mut tokio_postgres::Client, limit: i64) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&NOTICE_SEQUENCER_LOCK_KEY]).await?;
    let n = tx
        .execute(
            "UPDATE notices n SET pos = b.base + c.rn
             FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM notices WHERE pos IS NULL ORDER BY seq LIMIT $1) c,
                  (SELECT coalesce(max(pos), 0) AS base FROM notices) b
             WHERE n.seq = c.seq",
            &[&limit],
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// The position a feed continues after, for `after=<notice id>`: that notice's, or for an id
/// not (yet) positioned, the last position among smaller ids.
pub async fn position_after(c: &impl Db, seq: i64) -> Result<i64, tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT coalesce((SELECT pos FROM notices WHERE seq = $1), (SELECT max(pos) FROM notices WHERE seq < $1), 0)::int8",
            &[&seq],
        )
        .await?;
    Ok(row.get(0))
}

/// A recipient's notices after position `after_pos`, in position order (`None` recipient: all, for the admin).
pub async fn feed(c: &impl Db, recipient: Option<(&str, &str)>, after_pos: i64, limit: i64) -> Result<Vec<Notice>, tokio_postgres::Error> {
    let rows = match recipient {
        Some((kind, id)) => {
            c.query(
                "SELECT * FROM notices WHERE recipient_kind = $1 AND recipient_id = $2 AND pos > $3 ORDER BY pos LIMIT $4",
                &[&kind, &id, &after_pos, &limit],
            )
            .await?
        }
        None => c.query("SELECT * FROM notices WHERE pos > $1 ORDER BY pos LIMIT $2", &[&after_pos, &limit]).await?,
    };
    Ok(rows.iter().map(notice).collect())
}

/// `ntc_0000000000000042` → 42.
pub fn seq_of_id(id: &str) -> Option<i64> {
    let digits = id.strip_prefix("ntc_")?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// ---------- delivery (API.md section 7, webhooks) ----------

/// A notice as the admin sees it: the feed item and where its delivery stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminNotice {
    #[serde(flatten)]
    pub notice: Notice,
    /// `pending`, `delivered`, `dead` or `pull_only`.
    #[schema(value_type = String)]
    pub state: NoticeState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn admin_notice(r: &Row) -> AdminNotice {
    AdminNotice {
        notice: notice(r),
        state: r.get("state"),
        attempts: r.get("attempts"),
        next_attempt_at: r.get("next_attempt_at"),
        last_attempt_at: r.get("last_attempt_at"),
        last_status: r.get("last_status"),
        last_error: r.get("last_error"),
        delivered_at: r.get("delivered_at"),
    }
}

/// Notices after `after_seq` in creation order, optionally of one state and one recipient.
pub async fn list_admin(
    c: &impl Db,
    state: Option<NoticeState>,
    recipient: Option<(&str, &str)>,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AdminNotice>, tokio_postgres::Error> {
    let (kind, id) = recipient.unzip();
    let rows = c
        .query(
            "SELECT * FROM notices
             WHERE seq > $1 AND ($2::text IS NULL OR state = $2)
               AND ($3::text IS NULL OR (recipient_kind = $3 AND recipient_id = $4))
             ORDER BY seq LIMIT $5",
            &[&after_seq, &state, &kind, &id, &limit],
        )
        .await?;
    Ok(rows.iter().map(admin_notice).collect())
}

pub async fn get_admin(c: &impl Db, seq: i64) -> Result<Option<AdminNotice>, tokio_postgres::Error> {
    Ok(c.query_opt("SELECT * FROM notices WHERE seq = $1", &[&seq]).await?.as_ref().map(admin_notice))
}

/// Locks one notice and answers it with its recipient's current webhook URL (if any).
pub async fn lock_with_url(tx: &Tx<'_>, seq: i64) -> Result<Option<(AdminNotice, Option<String>)>, tokio_postgres::Error> {
    let Some(row) = tx.query_opt("SELECT * FROM notices WHERE seq = $1 FOR UPDATE", &[&seq]).await? else { return Ok(None) };
    let n = admin_notice(&row);
    let url = recipient_webhook(tx, &row.get::<_, String>("recipient_kind"), &row.get::<_, String>("recipient_id")).await?.map(|w| w.0);
    Ok(Some((n, url)))
}

/// Pending again from attempt one, due now.
pub async fn reset_for_redelivery(tx: &Tx<'_>, seq: i64) -> Result<AdminNotice, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "UPDATE notices SET state = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL WHERE seq = $1 RETURNING *",
            &[&seq],
        )
        .await?;
    Ok(admin_notice(&row))
}

/// The recipient's current `(webhook_url, webhook_secret)`, when it has a URL.
pub async fn recipient_webhook(c: &impl Db, kind: &str, id: &str) -> Result<Option<(String, Option<String>)>, tokio_postgres::Error> {
    let sql = match kind {
        "bank" => "SELECT webhook_url, webhook_secret FROM banks WHERE id = $1",
        "provider" => "SELECT webhook_url, webhook_secret FROM providers WHERE id = $1",
        _ => return Ok(None),
    };
    let row = c.query_opt(sql, &[&id]).await?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0).map(|url| (url, r.get(1)))))
}

/// Every bank and provider gets a lane (idempotent; cheap for reference data).
pub async fn refresh_lanes(c: &impl Db) -> Result<u64, tokio_postgres::Error> {
    c.execute(
        "INSERT INTO notice_lanes (recipient_kind, recipient_id)
         SELECT 'bank', id FROM banks UNION ALL SELECT 'provider', id FROM providers
         ON CONFLICT DO NOTHING",
        &[],
    )
    .await
}

/// A recipient's lane as claimed: `slow` when an attempt of its last run stayed unanswered past
/// `notices.slow_after_ms` (sql/V14__notice_lanes_slow.sql).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub kind: String,
    pub id: String,
    pub slow: bool,
}

/// Leases free lanes that have a due notice, the longest unserved first: up to `quick` lanes not
/// marked slow and up to `slow` marked slow, so that each kind is claimed only for its own workers.
pub async fn claim_lanes(c: &impl Db, owner: &str, lease_ms: i64, quick: i64, slow: i64) -> Result<Vec<Lane>, tokio_postgres::Error> {
    let rows = c
        .query(
            "WITH quick AS MATERIALIZED (
                 SELECT l.recipient_kind, l.recipient_id FROM notice_lanes l
                 WHERE l.leased_until <= now() AND NOT l.slow
                   AND EXISTS (SELECT 1 FROM notices n WHERE n.state = 'pending' AND n.recipient_kind = l.recipient_kind
                                 AND n.recipient_id = l.recipient_id AND n.next_attempt_at <= now() AND n.pos IS NOT NULL)
                 ORDER BY l.leased_until, l.recipient_kind, l.recipient_id
                 LIMIT $3
                 FOR UPDATE OF l SKIP LOCKED),
             slow AS MATERIALIZED (
                 SELECT l.recipient_kind, l.recipient_id FROM notice_lanes l
                 WHERE l.leased_until <= now() AND l.slow
                   AND EXISTS (SELECT 1 FROM notices n WHERE n.state = 'pending' AND n.recipient_kind = l.recipient_kind
                                 AND n.recipient_id = l.recipient_id AND n.next_attempt_at <= now() AND n.pos IS NOT NULL)
                 ORDER BY l.leased_until, l.recipient_kind, l.recipient_id
                 LIMIT $4
                 FOR UPDATE OF l SKIP LOCKED)
             UPDATE notice_lanes l SET leased_by = $1, leased_until = now() + $2::int8 * interval '1 millisecond'
             FROM (SELECT * FROM quick UNION ALL SELECT * FROM slow) f
             WHERE l.recipient_kind = f.recipient_kind AND l.recipient_id = f.recipient_id
             RETURNING l.recipient_kind, l.recipient_id, l.slow",
            &[&owner, &lease_ms, &quick, &slow],
        )
        .await?;
    Ok(rows.iter().map(|r| Lane { kind: r.get(0), id: r.get(1), slow: r.get(2) }).collect())
}

/// Gives a lane back; it goes behind the lanes that waited longer. `slow`: what its last run
/// showed (`None`: nothing was sent, the mark stands).
pub async fn release_lane(c: &impl Db, owner: &str, kind: &str, id: &str, slow: Option<bool>) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "UPDATE notice_lanes SET leased_by = NULL, leased_until = now(), slow = coalesce($4, slow)
         WHERE recipient_kind = $1 AND recipient_id = $2 AND leased_by = $3",
        &[&kind, &id, &owner, &slow],
    )
    .await?;
    Ok(())
}

/// A due notice of a lane and how many attempts it has had.
#[derive(Debug, Clone)]
pub struct Due {
    pub notice: Notice,
    pub attempts: i32,
}

/// A lane's due notices in read order (positioned, so in commit order): retries that came due and
/// first attempts alike.
///
/// The lane's pending notices are walked in position order and the walk stops at `limit` due
/// ones (`OFFSET 0` keeps the due test out of the walk): collecting every due notice and sorting
/// them, which the planner may prefer when its statistics expect few, costs as much as the lane
/// has due notices, 100,000 after end of day (sql/V8__notice_plans_without_state_statistics.sql).
pub async fn due_in_lane(c: &impl Db, kind: &str, id: &str, limit: i64) -> Result<Vec<Due>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT * FROM (
                 SELECT * FROM notices WHERE state = 'pending' AND recipient_kind = $1 AND recipient_id = $2 AND pos IS NOT NULL
                 ORDER BY pos OFFSET 0) lane
             WHERE next_attempt_at <= now()
             ORDER BY pos LIMIT $3",
            &[&kind, &id, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| Due { notice: notice(r), attempts: r.get("attempts") }).collect())
}

/// What starting a run of attempts found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Go: these notices (`seq`, attempt number), in the order asked; none is due again before the
    /// lease ends. Notices that changed meanwhile (delivered elsewhere, redelivered) are left out.
    Attempts(Vec<(i64, i32)>),
    /// The lane's lease was lost: stop serving it.
    LaneLost,
}

/// Counts a run of attempts before they are made and renews the lane's lease, in one statement.
/// `due` holds each notice's `seq` and its attempts so far.
pub async fn start_attempts(
    c: &impl Db,
    owner: &str,
    kind: &str,
    id: &str,
    due: &[(i64, i32)],
    lease_ms: i64,
) -> Result<Started, tokio_postgres::Error> {
    let seqs: Vec<i64> = due.iter().map(|d| d.0).collect();
    let attempts_before: Vec<i32> = due.iter().map(|d| d.1).collect();
    let row = c
        .query_one(
            "WITH lane AS (
                 UPDATE notice_lanes SET leased_until = now() + $4::int8 * interval '1 millisecond'
                 WHERE recipient_kind = $2 AND recipient_id = $3 AND leased_by = $1 RETURNING 1),
             n AS (
                 UPDATE notices n SET attempts = n.attempts + 1, last_attempt_at = now(),
                        next_attempt_at = now() + $4::int8 * interval '1 millisecond'
                 FROM unnest($5::int8[], $6::int4[]) AS d(seq, attempts_before)
                 WHERE n.seq = d.seq AND n.state = 'pending' AND n.attempts = d.attempts_before AND n.next_attempt_at <= now()
                   AND EXISTS (SELECT 1 FROM lane)
                 RETURNING n.seq, n.attempts)
             SELECT EXISTS (SELECT 1 FROM lane), coalesce(array_agg(n.seq), '{}'), coalesce(array_agg(n.attempts), '{}') FROM n",
            &[&owner, &kind, &id, &lease_ms, &seqs, &attempts_before],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(Started::LaneLost);
    }
    let started_seqs: Vec<i64> = row.get(1);
    let numbers: Vec<i32> = row.get(2);
    let by_seq: std::collections::HashMap<i64, i32> = started_seqs.into_iter().zip(numbers).collect();
    Ok(Started::Attempts(due.iter().filter_map(|(seq, _)| by_seq.get(seq).map(|n| (*seq, *n))).collect()))
}

/// What a receiver answered to one attempt.
#[derive(Debug, Clone)]
pub struct Answered {
    pub seq: i64,
    pub attempt: i32,
    pub delivered: bool,
    /// The HTTP status, when an answer came.
    pub status: Option<i32>,
    pub error: Option<String>,
    /// When a failure is tried again.
    pub retry_in_ms: i64,
}

/// Records a run of attempts' outcomes, leaving out notices that changed meanwhile, and adds each
/// to its notice's attempt history (`notice_attempts`, V30) in the same statement; answers each
/// recorded notice's new state. A failure is retried after its `retry_in_ms`, or is `dead` once
/// its attempt reaches `max_attempts`.
pub async fn finish_attempts(
    c: &impl Db,
    answered: &[Answered],
    max_attempts: i32,
) -> Result<std::collections::HashMap<i64, NoticeState>, tokio_postgres::Error> {
    let seqs: Vec<i64> = answered.iter().map(|a| a.seq).collect();
    let attempts: Vec<i32> = answered.iter().map(|a| a.attempt).collect();
    let delivered: Vec<bool> = answered.iter().map(|a| a.delivered).collect();
    let statuses: Vec<Option<i32>> = answered.iter().map(|a| a.status).collect();
    let errors: Vec<Option<&str>> = answered.iter().map(|a| a.error.as_deref()).collect();
    let retry_in_ms: Vec<i64> = answered.iter().map(|a| a.retry_in_ms).collect();
    let rows = c
        .query(
            "WITH done AS (
                 UPDATE notices n SET
                     state = CASE WHEN d.delivered THEN 'delivered' WHEN n.attempts >= $1 THEN 'dead' ELSE 'pending' END,
                     delivered_at = CASE WHEN d.delivered THEN now() ELSE n.delivered_at END,
                     next_attempt_at = CASE WHEN d.delivered OR n.attempts >= $1 THEN NULL
                                            ELSE now() + d.retry_in_ms * interval '1 millisecond' END,
                     last_status = d.status,
                     last_error = CASE WHEN d.delivered THEN n.last_error ELSE d.error END
                 FROM unnest($2::int8[], $3::int4[], $4::bool[], $5::int4[], $6::text[], $7::int8[])
                      AS d(seq, attempt, delivered, status, error, retry_in_ms)
                 WHERE n.seq = d.seq AND n.attempts = d.attempt AND n.state = 'pending'
                 RETURNING n.seq, n.state, n.attempts, n.last_attempt_at, n.next_attempt_at, d.delivered, d.status, d.error),
             history AS (
                 INSERT INTO notice_attempts (notice_seq, attempt, attempted_at, delivered, status, error, next_attempt_at)
                 SELECT seq, attempts, coalesce(last_attempt_at, now()), delivered, status, error, next_attempt_at FROM done)
             SELECT seq, state FROM done",
            &[&max_attempts, &seqs, &attempts, &delivered, &statuses, &errors, &retry_in_ms],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Attempts counted but not answered (never sent for want of lease time, or cut short): uncounted
/// and due now, with `error` (when given) as the notice's last error.
pub async fn give_back_attempts(c: &impl Db, started: &[(i64, i32, Option<&str>)]) -> Result<u64, tokio_postgres::Error> {
    if started.is_empty() {
        return Ok(0);
    }
    let seqs: Vec<i64> = started.iter().map(|s| s.0).collect();
    let attempts: Vec<i32> = started.iter().map(|s| s.1).collect();
    let errors: Vec<Option<&str>> = started.iter().map(|s| s.2).collect();
    c.execute(
        "UPDATE notices n SET attempts = n.attempts - 1, next_attempt_at = now(), last_error = coalesce(d.error, n.last_error)
         FROM unnest($1::int8[], $2::int4[], $3::text[]) AS d(seq, attempt, error)
         WHERE n.seq = d.seq AND n.attempts = d.attempt AND n.state = 'pending'",
        &[&seqs, &attempts, &errors],
    )
    .await
}

/// The notices operations act on: `pending` (delivery's backlog) and `dead` (given up on). Each
/// part is read through a partial index holding only its own rows (notices_pending_lane_pos,
/// notices_unpositioned, notices_dead), so the count costs what the backlog is, not what every
/// notice ever written is: counting all states scanned the whole table every 10 s on every
/// instance (182 ms a scan in the bench's notices phase), a cost that grew with the table.
pub async fn backlog_counts(c: &impl Db) -> Result<BacklogCounts, tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM notices WHERE state = 'pending' AND pos IS NOT NULL)
                  + (SELECT count(*) FROM notices WHERE state = 'pending' AND pos IS NULL),
                    (SELECT count(*) FROM notices WHERE state = 'dead')",
            &[],
        )
        .await?;
    Ok(BacklogCounts { pending: row.get(0), dead: row.get(1) })
}

/// What `backlog_counts` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogCounts {
    pub pending: i64,
    pub dead: i64,
}

/// How many recipients are marked slow (served only by the slow workers).
pub async fn count_slow_lanes(c: &impl Db) -> Result<i64, tokio_postgres::Error> {
    Ok(c.query_one("SELECT count(*) FROM notice_lanes WHERE slow", &[]).await?.get(0))
}

// ---------- the console's order lookup and notice history ----------

/// The notices about an order (their `data.order_id`), oldest first, at most `limit`. They are
/// found through `notices_order` (V30) and then sorted: `OFFSET 0` keeps the planner from walking
/// the whole table in `seq` order instead, which it prefers when it misjudges how many match.
pub async fn of_order(c: &impl Db, order_id: &str, limit: i64) -> Result<Vec<AdminNotice>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT * FROM (SELECT * FROM notices WHERE data ->> 'order_id' = $1 OFFSET 0) n ORDER BY seq LIMIT $2",
            &[&order_id, &limit],
        )
        .await?;
    Ok(rows.iter().map(admin_notice).collect())
}

/// One recorded webhook attempt (sql/V30__console_order_lookup.sql).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    #[serde(skip)]
    pub notice_seq: i64,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub delivered: bool,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The latest `per_notice` attempts of each notice of `seqs`, by notice and then oldest first.
pub async fn attempts(c: &impl Db, seqs: &[i64], per_notice: i64) -> Result<Vec<Attempt>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT s.seq, a.attempt, a.attempted_at, a.delivered, a.status, a.error, a.next_attempt_at
             FROM unnest($1::int8[]) AS s(seq)
             CROSS JOIN LATERAL (
                 SELECT * FROM notice_attempts WHERE notice_seq = s.seq ORDER BY attempted_at DESC, attempt DESC LIMIT $2) a
             ORDER BY s.seq, a.attempted_at, a.attempt",
            &[&seqs, &per_notice],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Attempt {
            notice_seq: r.get(0),
            attempt: r.get(1),
            attempted_at: r.get(2),
            delivered: r.get(3),
            status: r.get(4),
            error: r.get(5),
            next_attempt_at: r.get(6),
        })
        .collect())
}

/// Deletes at most `limit` webhook attempts made more than `days` days ago whose notice is
/// delivered; answers how many. A dead notice keeps its whole history while it is dead (the console
/// shows why it died, and redelivery is decided on it), and a pending one while it is retried.
/// Attempts another instance's purge has locked are skipped, so several instances purge side by
/// side without waiting for each other. Old attempts are found through an index on their time
/// (`notice_attempts_at`, BRIN, sql/V34, or `notice_attempts_notice`), and each one's notice by its
/// key in a subquery: as a join, the planner hashed every notice of the book (it has no statistics
/// on `state`, sql/V8) to delete a few thousand attempts.
pub async fn purge_attempts(c: &impl Db, days: u32, limit: i64) -> Result<u64, tokio_postgres::Error> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    c.execute(
        "DELETE FROM notice_attempts WHERE ctid = ANY (ARRAY(
             SELECT a.ctid FROM notice_attempts a
             WHERE a.attempted_at < now() - make_interval(days => $1)
               AND (SELECT n.state FROM notices n WHERE n.seq = a.notice_seq) = 'delivered'
             LIMIT $2 FOR UPDATE SKIP LOCKED))",
        &[&days, &limit],
    )
    .await
}

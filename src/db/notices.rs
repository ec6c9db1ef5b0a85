//! The notice outbox (API.md section 7), written in the same transaction as the change it tells of.

use super::Tx;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};

/// A notice to be recorded: its type, recipient and data.
#[derive(Debug, Clone)]
pub struct NewNotice {
    pub kind: &'static str,
    pub recipient_kind: &'static str,
    pub recipient_id: String,
    pub data: Value,
}

/// Records notices; each is `pending` delivery when its recipient has a webhook URL, else `pull_only`.
pub async fn record(tx: &Tx<'_>, notices: &[NewNotice]) -> Result<(), tokio_postgres::Error> {
    if notices.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = notices.iter().map(|n| n.kind).collect();
    let kinds: Vec<&str> = notices.iter().map(|n| n.recipient_kind).collect();
    let ids: Vec<&str> = notices.iter().map(|n| n.recipient_id.as_str()).collect();
    let data: Vec<&Value> = notices.iter().map(|n| &n.data).collect();
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
}

fn notice(r: &Row) -> Notice {
    Notice {
        id: r.get("id"),
        kind: r.get("type"),
        created_at: r.get("created_at"),
        recipient: serde_json::json!({"kind": r.get::<_, String>("recipient_kind"), "id": r.get::<_, String>("recipient_id")}),
        data: r.get("data"),
        seq: r.get("seq"),
    }
}

/// A recipient's notices after `after_seq`, in order (`None` recipient: all, for the admin).
pub async fn feed(
    c: &impl GenericClient,
    recipient: Option<(&str, &str)>,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Notice>, tokio_postgres::Error> {
    let rows = match recipient {
        Some((kind, id)) => {
            c.query(
                "SELECT * FROM notices WHERE recipient_kind = $1 AND recipient_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                &[&kind, &id, &after_seq, &limit],
            )
            .await?
        }
        None => c.query("SELECT * FROM notices WHERE seq > $1 ORDER BY seq LIMIT $2", &[&after_seq, &limit]).await?,
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

//! Credit lines (the whitelist) and their holds.

use super::Db;
use super::Tx;
use crate::domain::money::Amount;
use crate::domain::status::LineStatus;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use tokio_postgres::Row;

#[derive(Debug, Clone)]
pub struct CreditLine {
    pub id: String,
    pub provider_id: String,
    pub id_number_masked: String,
    pub phone_masked: String,
    /// The keyed hash of the phone the provider last registered: an order must carry this phone.
    pub phone_hash: String,
    pub limit: Amount,
    pub held: Amount,
    pub drawn: Amount,
    pub expires_on: NaiveDate,
    pub status: LineStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CreditLine {
    pub fn available(&self) -> Amount {
        let used = self.held + self.drawn;
        self.limit.checked_sub(used).expect("a line is never overdrawn (checked by the database)")
    }
}

const COLUMNS: &str = "id, provider_id, id_number_masked, phone_masked, phone_hash, limit_fen, held_fen, drawn_fen, expires_on, status, created_at, updated_at";

fn line(r: &Row) -> CreditLine {
    CreditLine {
        id: r.get("id"),
        provider_id: r.get("provider_id"),
        id_number_masked: r.get("id_number_masked"),
        phone_masked: r.get("phone_masked"),
        phone_hash: r.get("phone_hash"),
        limit: Amount::from_fen(r.get("limit_fen")),
        held: Amount::from_fen(r.get("held_fen")),
        drawn: Amount::from_fen(r.get("drawn_fen")),
        expires_on: r.get("expires_on"),
        status: r.get("status"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub async fn get(c: &impl Db, id: &str) -> Result<Option<CreditLine>, tokio_postgres::Error> {
    Ok(c.query_opt(&format!("SELECT {COLUMNS} FROM credit_lines WHERE id = $1"), &[&id]).await?.as_ref().map(line))
}

pub async fn lock(tx: &Tx<'_>, id: &str) -> Result<Option<CreditLine>, tokio_postgres::Error> {
    Ok(tx.query_opt(&format!("SELECT {COLUMNS} FROM credit_lines WHERE id = $1 FOR UPDATE"), &[&id]).await?.as_ref().map(line))
}

pub async fn lock_by_customer(tx: &Tx<'_>, provider_id: &str, id_number_hash: &str) -> Result<Option<CreditLine>, tokio_postgres::Error> {
    Ok(tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM credit_lines WHERE provider_id = $1 AND id_number_hash = $2 FOR UPDATE"),
            &[&provider_id, &id_number_hash],
        )
        .await?
        .as_ref()
        .map(line))
}

/// All of the customer's lines (one per provider), locked in id order (the fixed lock order).
pub async fn lock_customer_lines(tx: &Tx<'_>, id_number_hash: &str) -> Result<Vec<CreditLine>, tokio_postgres::Error> {
    let rows = tx
        .query(&format!("SELECT {COLUMNS} FROM credit_lines WHERE id_number_hash = $1 ORDER BY id FOR UPDATE"), &[&id_number_hash])
        .await?;
    Ok(rows.iter().map(line).collect())
}

/// The lines of several customers (by ID-number hash), each with its customer's hash, all locked
/// in id order (the fixed lock order, the same as [`lock_customer_lines`]).
pub async fn lock_lines_of_customers(tx: &Tx<'_>, id_number_hashes: &[&str]) -> Result<Vec<(String, CreditLine)>, tokio_postgres::Error> {
    let rows = tx
        .query(
            &format!("SELECT {COLUMNS}, id_number_hash FROM credit_lines WHERE id_number_hash = ANY($1) ORDER BY id FOR UPDATE"),
            &[&id_number_hashes],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get("id_number_hash"), line(r))).collect())
}

pub struct NewLine<'a> {
    pub id: &'a str,
    pub provider_id: &'a str,
    pub id_number_hash: &'a str,
    pub id_number_masked: &'a str,
    pub phone_hash: &'a str,
    pub phone_masked: &'a str,
    pub identity_sealed: &'a [u8],
    pub limit: Amount,
    pub expires_on: NaiveDate,
    pub status: LineStatus,
}

/// Inserts a new line; `None` when one for this provider and customer appeared meanwhile.
pub async fn insert(tx: &Tx<'_>, n: &NewLine<'_>) -> Result<Option<CreditLine>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO credit_lines (id, provider_id, id_number_hash, id_number_masked, phone_hash, phone_masked, identity_sealed,
                     limit_fen, expires_on, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT ON CONSTRAINT credit_lines_provider_customer DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                &n.id,
                &n.provider_id,
                &n.id_number_hash,
                &n.id_number_masked,
                &n.phone_hash,
                &n.phone_masked,
                &n.identity_sealed,
                &n.limit.fen(),
                &n.expires_on,
                &n.status,
            ],
        )
        .await?;
    Ok(row.as_ref().map(line))
}

#[allow(clippy::too_many_arguments)]
pub async fn update_registration(
    tx: &Tx<'_>,
    id: &str,
    phone_hash: &str,
    phone_masked: &str,
    identity_sealed: &[u8],
    limit: Amount,
    expires_on: NaiveDate,
    status: LineStatus,
) -> Result<CreditLine, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE credit_lines SET phone_hash = $2, phone_masked = $3, identity_sealed = $4, limit_fen = $5, expires_on = $6,
                     status = $7, updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &phone_hash, &phone_masked, &identity_sealed, &limit.fen(), &expires_on, &status],
        )
        .await?;
    Ok(line(&row))
}

/// Adds `hold_amount` to the line's held: placing an order's hold. This is the reservation side
/// of a hold, which order placement writes by itself (pipelined with the order, the hold and the
/// bank's reservation in one round trip, the line locked when the customer's lines were read);
/// everything that later moves a line's balances goes through `service::lifecycle::Effects`.
pub async fn add_held(tx: &Tx<'_>, id: &str, hold_amount: Amount) -> Result<CreditLine, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &format!("UPDATE credit_lines SET held_fen = held_fen + $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id, &hold_amount.fen()],
        )
        .await?;
    Ok(line(&row))
}

/// What one batch adds to a line's held and drawn (signed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineDelta {
    pub held_fen: i64,
    pub drawn_fen: i64,
}

/// Lines locked in id order (the fixed lock order): those of `ids` that exist.
pub async fn lock_many(tx: &Tx<'_>, ids: &[&str]) -> Result<Vec<CreditLine>, tokio_postgres::Error> {
    let rows = tx.query(&format!("SELECT {COLUMNS} FROM credit_lines WHERE id = ANY($1) ORDER BY id FOR UPDATE"), &[&ids]).await?;
    Ok(rows.iter().map(line).collect())
}

/// Adds each delta to its line's held and drawn in one statement (the database refuses a negative
/// or overdrawn result); answers the lines as written. The caller has locked them.
pub async fn move_balances(tx: &Tx<'_>, deltas: &BTreeMap<String, LineDelta>) -> Result<Vec<CreditLine>, tokio_postgres::Error> {
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = deltas.keys().map(String::as_str).collect();
    let held: Vec<i64> = deltas.values().map(|l| l.held_fen).collect();
    let drawn: Vec<i64> = deltas.values().map(|l| l.drawn_fen).collect();
    let rows = tx
        .query(
            &format!(
                "UPDATE credit_lines l SET held_fen = held_fen + t.h, drawn_fen = drawn_fen + t.d, updated_at = now()
                 FROM unnest($1::text[], $2::int8[], $3::int8[]) AS t(line_id, h, d) WHERE l.id = t.line_id RETURNING {COLUMNS}"
            ),
            &[&ids, &held, &drawn],
        )
        .await?;
    assert_eq!(rows.len(), ids.len(), "every line changed was written");
    Ok(rows.iter().map(line).collect())
}

pub async fn insert_debt_repayment(
    tx: &Tx<'_>,
    id: &str,
    line_id: &str,
    amount: Amount,
    booked_on: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO debt_repayments (id, credit_line_id, amount_fen, booked_on) VALUES ($1, $2, $3, $4)",
        &[&id, &line_id, &amount.fen(), &booked_on],
    )
    .await?;
    Ok(())
}

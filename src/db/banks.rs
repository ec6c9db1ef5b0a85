//! Funding banks' exposure: reserved by orders, freed by cancellation, rejection, expiry and repaid principal.

use super::Tx;
use crate::domain::money::Amount;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
pub struct BankCandidate {
    pub id: String,
    pub apr_min: Decimal,
    pub apr_max: Decimal,
    pub regions: Option<Vec<String>>,
}

/// Every bank, in routing order (priority, then creation order).
pub async fn routing_order(tx: &Tx<'_>) -> Result<Vec<BankCandidate>, tokio_postgres::Error> {
    let rows = tx.query("SELECT id, apr_min, apr_max, regions FROM banks ORDER BY priority, seq", &[]).await?;
    Ok(rows
        .iter()
        .map(|r| BankCandidate { id: r.get(0), apr_min: r.get(1), apr_max: r.get(2), regions: r.get(3) })
        .collect())
}

/// Reserves `principal` if the bank has room; `false` when it does not. Locks the bank row.
pub async fn try_reserve(tx: &Tx<'_>, bank_id: &str, principal: Amount) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            "UPDATE banks SET exposure_used_fen = exposure_used_fen + $2
             WHERE id = $1 AND exposure_used_fen + $2 <= exposure_limit_fen",
            &[&bank_id, &principal.fen()],
        )
        .await?;
    Ok(n == 1)
}

/// Frees exposure (the database refuses going below zero).
pub async fn release(tx: &Tx<'_>, bank_id: &str, principal: Amount) -> Result<(), tokio_postgres::Error> {
    if principal.is_zero() {
        return Ok(());
    }
    let n = tx
        .execute("UPDATE banks SET exposure_used_fen = exposure_used_fen - $2 WHERE id = $1", &[&bank_id, &principal.fen()])
        .await?;
    assert_eq!(n, 1, "the bank of an order exists");
    Ok(())
}

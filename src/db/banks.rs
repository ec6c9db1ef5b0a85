//! Funding banks' exposure, kept in stripes (see sql/V4__exposure_stripes.sql): reserved by
//! orders, freed by cancellation, rejection, expiry and repaid principal.

use super::Tx;
use crate::domain::money::Amount;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;

/// How many stripes a new bank's exposure is spread over.
pub const STRIPES: i16 = 8;

/// A reservation on one stripe keeps the bank within its limit only while no stripe is over its
/// own: the stripes' limits add up to the bank's, so with none over, one stripe's room is at most
/// the bank's. After a cut below what is in use some stripes are over, and a release on one of
/// them gives it room while the bank as a whole is still over: then only the locked rebalance of
/// every stripe (which checks the bank's total) may reserve. Only a limit change puts a stripe
/// over, under locks on every stripe, so a reservation racing it re-checks its stripe's new limit.
const NO_STRIPE_OVER_ITS_LIMIT: &str =
    "NOT EXISTS (SELECT 1 FROM bank_exposure_stripes o WHERE o.bank_id = $1 AND o.used_fen > o.limit_fen)";

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
    Ok(rows.iter().map(|r| BankCandidate { id: r.get(0), apr_min: r.get(1), apr_max: r.get(2), regions: r.get(3) }).collect())
}

/// Splits `limit_fen` over the stripes given their `used_fen`: each gets its used amount plus an
/// even share of what is free; the limits add up exactly.
///
/// After a cut below what is in use the share is negative, and then no stripe may be left with
/// room: rounding the deficit's remainder onto one stripe would otherwise hand it a few fen of room
/// while the bank as a whole is over its limit.
pub fn stripe_limits(limit_fen: i64, used_fen: &[i64]) -> Vec<i64> {
    assert!(!used_fen.is_empty(), "a bank has at least one stripe");
    let n = used_fen.len() as i64;
    let free = limit_fen - used_fen.iter().sum::<i64>();
    // Towards zero, so a deficit's remainder deepens stripe 0's deficit instead of giving it room.
    let (share, rest) = (free / n, free % n);
    let limits: Vec<i64> = used_fen.iter().enumerate().map(|(i, u)| u + share + if i == 0 { rest } else { 0 }).collect();
    assert_eq!(limits.iter().sum::<i64>(), limit_fen, "stripe limits add up to the bank's limit");
    assert!(
        limits.iter().zip(used_fen).all(|(l, u)| if free >= 0 { l >= u } else { l <= u }),
        "every stripe has room when the bank has, none when it is over its limit"
    );
    limits
}

/// Creates the stripes of a new bank.
pub async fn create_stripes(tx: &Tx<'_>, bank_id: &str, limit: Amount) -> Result<(), tokio_postgres::Error> {
    let stripes: Vec<i16> = (0..STRIPES).collect();
    let limits = stripe_limits(limit.fen(), &vec![0; STRIPES as usize]);
    tx.execute(
        "INSERT INTO bank_exposure_stripes (bank_id, stripe, limit_fen) SELECT $1, s, l FROM unnest($2::int2[], $3::int8[]) AS t(s, l)",
        &[&bank_id, &stripes, &limits],
    )
    .await?;
    Ok(())
}

/// Spreads the bank's limit over its stripes again (all stripes locked in order): after a limit
/// change. A limit cut below what is in use records that exposure on the bank (`exposure_at_cut_fen`):
/// it may only fall from there, which `verify` checks; a limit that covers the exposure clears it.
pub async fn rebalance(tx: &Tx<'_>, bank_id: &str, limit_fen: i64) -> Result<(), tokio_postgres::Error> {
    let rows =
        tx.query("SELECT stripe, used_fen FROM bank_exposure_stripes WHERE bank_id = $1 ORDER BY stripe FOR UPDATE", &[&bank_id]).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let stripes: Vec<i16> = rows.iter().map(|r| r.get(0)).collect();
    let used: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
    let limits = stripe_limits(limit_fen, &used);
    let used_fen: i64 = used.iter().sum();
    let at_cut_fen = (used_fen > limit_fen).then_some(used_fen);
    tx.execute(
        "UPDATE bank_exposure_stripes s SET limit_fen = t.l FROM unnest($2::int2[], $3::int8[]) AS t(stripe, l)
         WHERE s.bank_id = $1 AND s.stripe = t.stripe",
        &[&bank_id, &stripes, &limits],
    )
    .await?;
    tx.execute("UPDATE banks SET exposure_at_cut_fen = $2 WHERE id = $1", &[&bank_id, &at_cut_fen]).await?;
    Ok(())
}

/// Reserves `principal` on one stripe of the bank; answers the stripe, or `None` when the bank has
/// no room. A transaction never waits for a stripe while it holds another one, or it takes them
/// all in stripe order, so reservations cannot deadlock each other. A failed attempt may leave a
/// row lock behind (PostgreSQL keeps the lock of a row whose re-check failed), so every failed
/// attempt rolls back to a savepoint, which drops it.
/// 1. A stripe with room that no one holds, from a random start: no waiting. The pick is a
///    MATERIALIZED CTE so it runs once: as the inner side of a join it could be rescanned, pick a
///    second stripe freed meanwhile and update both (seen under load as a two-row answer).
/// 2. A random stripe with room (as last committed), waiting for that one row only.
/// 3. When the room is split across stripes: all stripes locked in order, and rebalanced.
pub async fn try_reserve(tx: &Tx<'_>, bank_id: &str, principal: Amount, start: i16) -> Result<Option<i16>, tokio_postgres::Error> {
    let p = principal.fen();
    let first_attempt = format!(
        "WITH c AS MATERIALIZED (
             SELECT stripe FROM bank_exposure_stripes WHERE bank_id = $1 AND used_fen + $2 <= limit_fen
               AND {NO_STRIPE_OVER_ITS_LIMIT}
             ORDER BY (stripe + {STRIPES} - $3::int2) % {STRIPES} LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE bank_exposure_stripes s SET used_fen = s.used_fen + $2
         FROM c WHERE s.bank_id = $1 AND s.stripe = c.stripe RETURNING s.stripe"
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&bank_id, &p, &start];
    // The savepoint and the first attempt in one round trip: polled in this order, sent in this order.
    let ((), free) = futures_util::try_join!(tx.batch_execute("SAVEPOINT reserve_exposure"), tx.query_opt(&first_attempt, &params))?;
    if let Some(r) = free {
        return Ok(Some(r.get(0)));
    }
    let pick_sql = format!(
        "SELECT stripe FROM bank_exposure_stripes WHERE bank_id = $1 AND used_fen + $2 <= limit_fen AND {NO_STRIPE_OVER_ITS_LIMIT}
         ORDER BY random() LIMIT 1"
    );
    let take_sql = format!(
        "UPDATE bank_exposure_stripes SET used_fen = used_fen + $3
         WHERE bank_id = $1 AND stripe = $2 AND used_fen + $3 <= limit_fen AND {NO_STRIPE_OVER_ITS_LIMIT}"
    );
    for _ in 0..2 {
        tx.batch_execute("ROLLBACK TO SAVEPOINT reserve_exposure").await?;
        let Some(pick) = tx.query_opt(&pick_sql, &[&bank_id, &p]).await? else { break };
        let stripe: i16 = pick.get(0);
        let taken = tx.execute(&take_sql, &[&bank_id, &stripe, &p]).await?;
        if taken == 1 {
            return Ok(Some(stripe));
        }
    }
    tx.batch_execute("ROLLBACK TO SAVEPOINT reserve_exposure").await?;
    // The room may be split across stripes. Without locks first: a full bank answers at once.
    let room: i64 = tx
        .query_one(
            "SELECT b.exposure_limit_fen - coalesce((SELECT sum(used_fen) FROM bank_exposure_stripes WHERE bank_id = b.id), 0)::int8
             FROM banks b WHERE b.id = $1",
            &[&bank_id],
        )
        .await?
        .get(0);
    if room < p {
        return Ok(None);
    }
    // Then under locks on every stripe, in order: give stripe 0 the room it needs. The limit is read
    // once the stripes are locked: a limit change commits its rebalance under those same locks, so
    // a limit read before them could be one that a change has just replaced.
    let rows =
        tx.query("SELECT stripe, used_fen FROM bank_exposure_stripes WHERE bank_id = $1 ORDER BY stripe FOR UPDATE", &[&bank_id]).await?;
    let limit: i64 = tx.query_one("SELECT exposure_limit_fen FROM banks WHERE id = $1", &[&bank_id]).await?.get(0);
    let stripes: Vec<i16> = rows.iter().map(|r| r.get(0)).collect();
    let mut used: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
    if stripes.is_empty() || limit - used.iter().sum::<i64>() < p {
        return Ok(None);
    }
    let mut limits = stripe_limits(limit - p, &used);
    limits[0] += p;
    used[0] += p;
    assert!(used.iter().zip(&limits).all(|(u, l)| u <= l) || limits.iter().sum::<i64>() == limit, "rebalanced within the limit");
    tx.execute(
        "UPDATE bank_exposure_stripes s SET limit_fen = t.l, used_fen = t.u FROM unnest($2::int2[], $3::int8[], $4::int8[]) AS t(stripe, l, u)
         WHERE s.bank_id = $1 AND s.stripe = t.stripe",
        &[&bank_id, &stripes, &limits, &used],
    )
    .await?;
    Ok(Some(stripes[0]))
}

/// A bank's stripes and limit, as a batch of orders reserves on them (`service::orders`' batch).
#[derive(Debug, Clone)]
pub struct BankStripes {
    pub bank_id: String,
    pub limit_fen: i64,
    pub stripes: Vec<i16>,
    pub used_fen: Vec<i64>,
    pub limit_fens: Vec<i64>,
}

/// Every bank's stripes and limit as last committed, without locks.
pub async fn read_stripes(tx: &Tx<'_>) -> Result<Vec<BankStripes>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT b.id, b.exposure_limit_fen, s.stripe, s.used_fen, s.limit_fen
             FROM banks b JOIN bank_exposure_stripes s ON s.bank_id = b.id ORDER BY b.id, s.stripe",
            &[],
        )
        .await?;
    Ok(stripes_by_bank(&rows))
}

fn stripes_by_bank(rows: &[tokio_postgres::Row]) -> Vec<BankStripes> {
    let mut out: Vec<BankStripes> = Vec::new();
    for r in rows {
        let bank: String = r.get(0);
        if out.last().is_none_or(|b| b.bank_id != bank) {
            out.push(BankStripes { bank_id: bank, limit_fen: r.get(1), stripes: vec![], used_fen: vec![], limit_fens: vec![] });
        }
        let b = out.last_mut().expect("pushed above");
        b.stripes.push(r.get(2));
        b.used_fen.push(r.get(3));
        b.limit_fens.push(r.get(4));
    }
    out
}

/// Locks the given stripes in (bank, stripe) order, then reads these banks' stripes and limits:
/// the locked stripes as they stand under the locks. A batch waits for stripes only here, holding
/// none before, so it cannot deadlock another batch (same order) or a single reservation (which
/// waits for one stripe while holding none, or takes a bank's stripes in this order).
///
/// One round trip: the two statements are prepared first (cached: no round trip after a
/// connection's first batch), so they are sent in this order, and the read, a statement of its
/// own, starts only once the locks are granted: its snapshot follows the lock waits.
pub async fn lock_and_read_stripes(
    tx: &Tx<'_>,
    keys: &[(&str, i16)],
    bank_ids: &[&str],
) -> Result<Vec<BankStripes>, tokio_postgres::Error> {
    const LOCK: &str = "SELECT bank_id, stripe FROM bank_exposure_stripes
         WHERE (bank_id, stripe) IN (SELECT b, st FROM unnest($1::text[], $2::int2[]) AS t(b, st))
         ORDER BY bank_id, stripe FOR UPDATE";
    const READ: &str = "SELECT b.id, b.exposure_limit_fen, s.stripe, s.used_fen, s.limit_fen
         FROM banks b JOIN bank_exposure_stripes s ON s.bank_id = b.id WHERE b.id = ANY($1) ORDER BY b.id, s.stripe";
    let banks: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let stripes: Vec<i16> = keys.iter().map(|k| k.1).collect();
    let (lock, read) = futures_util::try_join!(tx.prepared(LOCK), tx.prepared(READ))?;
    let plain: &tokio_postgres::Transaction<'_> = tx;
    let (lock_params, read_params): ([&(dyn ToSql + Sync); 2], [&(dyn ToSql + Sync); 1]) = ([&banks, &stripes], [&bank_ids]);
    let (_, rows) = futures_util::try_join!(plain.query(&lock, &lock_params), plain.query(&read, &read_params))?;
    Ok(stripes_by_bank(&rows))
}

/// Writes the used and limit of each stripe given, (bank, stripe, used, limit), locked by
/// [`lock_and_read_stripes`], in one statement.
pub async fn write_stripes(tx: &Tx<'_>, rows: &[(&str, i16, i64, i64)]) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let banks: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let stripes: Vec<i16> = rows.iter().map(|r| r.1).collect();
    let used: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let limits: Vec<i64> = rows.iter().map(|r| r.3).collect();
    let n = tx
        .execute(
            "UPDATE bank_exposure_stripes s SET used_fen = t.u, limit_fen = t.l
             FROM unnest($1::text[], $2::int2[], $3::int8[], $4::int8[]) AS t(b, st, u, l)
             WHERE s.bank_id = t.b AND s.stripe = t.st",
            &[&banks, &stripes, &used, &limits],
        )
        .await?;
    assert_eq!(n as usize, banks.len(), "every stripe written exists");
    Ok(())
}

/// Ends the reservation's savepoint once the order keeps it; sent with the order's writes.
///
/// The customer's credit line was locked before the savepoint; updating it from inside the
/// savepoint's subtransaction makes PostgreSQL record locker and updater as a MultiXact, one per
/// order. Released, the update runs in the locker's own subtransaction.
pub async fn keep_reservation(tx: &Tx<'_>) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute("RELEASE SAVEPOINT reserve_exposure").await
}

/// One stripe of a bank's exposure: where an order's principal was reserved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExposureKey {
    pub bank_id: String,
    pub stripe: i16,
}

/// Frees each stripe's amount in one statement, in key order (the database refuses going below
/// zero). Reservations are taken by [`try_reserve`] alone; everything freed goes through here.
pub async fn release_many(tx: &Tx<'_>, freed: &BTreeMap<ExposureKey, i64>) -> Result<(), tokio_postgres::Error> {
    assert!(freed.values().all(|x| *x >= 0), "exposure is only freed here, never reserved");
    let freed: Vec<(&ExposureKey, i64)> = freed.iter().filter(|(_, x)| **x > 0).map(|(k, x)| (k, *x)).collect();
    if freed.is_empty() {
        return Ok(());
    }
    let banks: Vec<&str> = freed.iter().map(|f| f.0.bank_id.as_str()).collect();
    let stripes: Vec<i16> = freed.iter().map(|f| f.0.stripe).collect();
    let amounts: Vec<i64> = freed.iter().map(|f| f.1).collect();
    let n = tx
        .execute(
            "UPDATE bank_exposure_stripes s SET used_fen = used_fen - t.x FROM unnest($1::text[], $2::int2[], $3::int8[]) AS t(b, st, x)
             WHERE s.bank_id = t.b AND s.stripe = t.st",
            &[&banks, &stripes, &amounts],
        )
        .await?;
    assert_eq!(n as usize, freed.len(), "every stripe freed exists");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_limits_add_up_and_follow_use() {
        assert_eq!(stripe_limits(800, &[0; 8]), vec![100; 8]);
        assert_eq!(stripe_limits(803, &[0; 8]), vec![103, 100, 100, 100, 100, 100, 100, 100]);
        assert_eq!(stripe_limits(100, &[50, 10]), vec![70, 30]);
        let cut = stripe_limits(10, &[50, 10]);
        assert_eq!(cut.iter().sum::<i64>(), 10);
        assert!(cut[0] < 50 && cut[1] < 10, "after a cut no stripe has room: {cut:?}");
        // A cut of one fen: the remainder of the deficit must not give stripe 0 room (it gave 6 fen).
        let used = [125_000_000; 8];
        let cut = stripe_limits(999_999_999, &used);
        assert!(cut.iter().zip(used).all(|(l, u)| *l <= u), "{cut:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn stripes_have_room_exactly_when_the_bank_has(
            used in proptest::collection::vec(0i64..1_000_000_000, 1..12),
            limit in 1i64..10_000_000_000,
        ) {
            let limits = stripe_limits(limit, &used);
            proptest::prop_assert_eq!(limits.iter().sum::<i64>(), limit);
            let over = used.iter().sum::<i64>() > limit;
            for (l, u) in limits.iter().zip(&used) {
                // Over: no stripe has room. Within: every stripe has at least its use.
                proptest::prop_assert!(if over { l <= u } else { l >= u }, "limit {} used {:?} -> {:?}", limit, used, limits);
            }
        }
    }
}

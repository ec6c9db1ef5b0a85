//! Compensations: what a hold paid to the bank for a defaulted installment (代偿).

use super::Tx;
use crate::domain::installment::Split;
use chrono::NaiveDate;

/// One installment compensated from its plan's hold.
#[derive(Debug, Clone)]
pub struct Compensation {
    pub plan_id: String,
    pub installment_seq: u32,
    pub split: Split,
    pub value_date: NaiveDate,
    pub booked_on: NaiveDate,
}

/// Inserts every compensation of a batch in one statement.
pub async fn insert_all(tx: &Tx<'_>, c: &[Compensation]) -> Result<(), tokio_postgres::Error> {
    if c.is_empty() {
        return Ok(());
    }
    let plan_ids: Vec<&str> = c.iter().map(|x| x.plan_id.as_str()).collect();
    let seqs: Vec<i32> = c.iter().map(|x| x.installment_seq as i32).collect();
    let amount: Vec<i64> = c.iter().map(|x| x.split.total().fen()).collect();
    let p: Vec<i64> = c.iter().map(|x| x.split.principal.fen()).collect();
    let i: Vec<i64> = c.iter().map(|x| x.split.interest.fen()).collect();
    let f: Vec<i64> = c.iter().map(|x| x.split.fee.fen()).collect();
    let pen: Vec<i64> = c.iter().map(|x| x.split.penalty.fen()).collect();
    let value: Vec<NaiveDate> = c.iter().map(|x| x.value_date).collect();
    let booked: Vec<NaiveDate> = c.iter().map(|x| x.booked_on).collect();
    let n = tx
        .execute(
            "INSERT INTO compensations (plan_id, installment_seq, amount_fen, principal_fen, interest_fen, fee_fen, penalty_fen, value_date, booked_on)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::date[], $9::date[])",
            &[&plan_ids, &seqs, &amount, &p, &i, &f, &pen, &value, &booked],
        )
        .await?;
    assert_eq!(n as usize, c.len(), "every compensation was written");
    Ok(())
}

//! The double-entry journal: every movement of money is one balanced entry, posted in the same
//! transaction as the balances it moves. Debits are positive, credits negative; lines sum to zero.

use super::Tx;
use chrono::NaiveDate;

/// Accounts, named `<object kind>:<id>:<bucket>`.
pub mod account {
    pub fn line_limit_source(line: &str) -> String {
        format!("line:{line}:limit_source")
    }
    pub fn line_available(line: &str) -> String {
        format!("line:{line}:available")
    }
    pub fn line_held(line: &str) -> String {
        format!("line:{line}:held")
    }
    pub fn line_drawn(line: &str) -> String {
        format!("line:{line}:drawn")
    }
    pub fn hold_origin(hold: &str) -> String {
        format!("hold:{hold}:origin")
    }
    pub fn hold_remaining(hold: &str) -> String {
        format!("hold:{hold}:remaining")
    }
    pub fn hold_released(hold: &str) -> String {
        format!("hold:{hold}:released")
    }
    pub fn hold_converted(hold: &str) -> String {
        format!("hold:{hold}:converted")
    }
    pub fn hold_voided(hold: &str) -> String {
        format!("hold:{hold}:voided")
    }
    pub fn bank_exposure(bank: &str) -> String {
        format!("bank:{bank}:exposure")
    }
    pub fn bank_exposure_source(bank: &str) -> String {
        format!("bank:{bank}:exposure_source")
    }
    pub fn bank_funded(bank: &str) -> String {
        format!("bank:{bank}:funded")
    }
    pub fn bank_collected(bank: &str) -> String {
        format!("bank:{bank}:collected")
    }
    pub fn provider_paid_out(provider: &str) -> String {
        format!("provider:{provider}:paid_out")
    }
    pub fn plan_principal(plan: &str) -> String {
        format!("plan:{plan}:principal")
    }
    pub fn plan_income(plan: &str) -> String {
        format!("plan:{plan}:income")
    }
}

/// What an entry is about; ids that do not apply stay `None`.
#[derive(Default, Debug, Clone)]
pub struct Refs<'a> {
    pub order_id: Option<&'a str>,
    pub plan_id: Option<&'a str>,
    pub hold_id: Option<&'a str>,
    pub credit_line_id: Option<&'a str>,
    pub bank_id: Option<&'a str>,
    pub reference: Option<&'a str>,
}

/// One entry under construction.
#[derive(Debug)]
pub struct Entry<'a> {
    pub kind: &'static str,
    pub booked_on: NaiveDate,
    pub refs: Refs<'a>,
    accounts: Vec<String>,
    amounts_fen: Vec<i64>,
}

const ENTRY_MAX_LINES: usize = 64;

impl<'a> Entry<'a> {
    pub fn new(kind: &'static str, booked_on: NaiveDate, refs: Refs<'a>) -> Self {
        Entry { kind, booked_on, refs, accounts: Vec::new(), amounts_fen: Vec::new() }
    }

    /// Moves `amount_fen` from `from` (credited) to `to` (debited). Zero moves nothing.
    pub fn transfer(&mut self, from: String, to: String, amount_fen: i64) -> &mut Self {
        assert!(amount_fen >= 0, "a transfer moves a non-negative amount, got {amount_fen}");
        if amount_fen > 0 {
            self.accounts.push(from);
            self.amounts_fen.push(-amount_fen);
            self.accounts.push(to);
            self.amounts_fen.push(amount_fen);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Writes the entry and its lines in one statement; an empty entry writes nothing.
    pub async fn post(&self, tx: &Tx<'_>) -> Result<Option<i64>, tokio_postgres::Error> {
        if self.is_empty() {
            return Ok(None);
        }
        assert!(self.accounts.len() <= ENTRY_MAX_LINES, "journal entry {} has too many lines", self.kind);
        assert_eq!(self.amounts_fen.iter().sum::<i64>(), 0, "journal entry {} does not balance", self.kind);
        let r = &self.refs;
        let row = tx
            .query_one(
                "WITH e AS (
                     INSERT INTO journal_entries (kind, booked_on, order_id, plan_id, hold_id, credit_line_id, bank_id, reference)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)
                 , l AS (INSERT INTO journal_lines (entry_id, account, amount_fen)
                     SELECT e.id, a, x FROM e, unnest($9::text[], $10::int8[]) AS t(a, x))
                 SELECT id FROM e",
                &[&self.kind, &self.booked_on, &r.order_id, &r.plan_id, &r.hold_id, &r.credit_line_id, &r.bank_id, &r.reference, &self.accounts, &self.amounts_fen],
            )
            .await?;
        Ok(Some(row.get(0)))
    }
}

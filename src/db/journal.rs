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
    pub fn plan_principal(plan: &str) -> String {
        format!("plan:{plan}:principal")
    }
    pub fn plan_income(plan: &str) -> String {
        format!("plan:{plan}:income")
    }
    /// The unpaid principal a device return forgave (API.md §13): the return repaid the bank.
    pub fn plan_returned(plan: &str) -> String {
        format!("plan:{plan}:returned")
    }
    /// What was written off of a plan and not yet recovered (API.md §14).
    pub fn plan_written_off(plan: &str) -> String {
        format!("plan:{plan}:written_off")
    }
}

/// What an entry is about; ids that do not apply stay `None`.
#[derive(Default, Debug, Clone)]
pub struct Refs {
    pub order_id: Option<String>,
    pub plan_id: Option<String>,
    pub hold_id: Option<String>,
    pub credit_line_id: Option<String>,
    pub bank_id: Option<String>,
    pub reference: Option<String>,
}

impl Refs {
    pub fn new() -> Refs {
        Refs::default()
    }
    pub fn order(mut self, id: &str) -> Self {
        self.order_id = Some(id.to_string());
        self
    }
    pub fn plan(mut self, id: &str) -> Self {
        self.plan_id = Some(id.to_string());
        self
    }
    pub fn hold(mut self, id: &str) -> Self {
        self.hold_id = Some(id.to_string());
        self
    }
    pub fn line(mut self, id: &str) -> Self {
        self.credit_line_id = Some(id.to_string());
        self
    }
    pub fn bank(mut self, id: &str) -> Self {
        self.bank_id = Some(id.to_string());
        self
    }
    pub fn reference(mut self, r: &str) -> Self {
        self.reference = Some(r.to_string());
        self
    }
}

/// One entry under construction.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: &'static str,
    pub booked_on: NaiveDate,
    pub refs: Refs,
    accounts: Vec<String>,
    amounts_fen: Vec<i64>,
}

const ENTRY_MAX_LINES: usize = 64;
const BATCH_MAX_ENTRIES: usize = 100_000;

impl Entry {
    pub fn new(kind: &'static str, booked_on: NaiveDate, refs: Refs) -> Self {
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

    fn assert_valid(&self) {
        assert!(self.accounts.len() <= ENTRY_MAX_LINES, "journal entry {} has too many lines", self.kind);
        assert_eq!(self.amounts_fen.iter().sum::<i64>(), 0, "journal entry {} does not balance", self.kind);
    }

    pub async fn post(&self, tx: &Tx<'_>) -> Result<(), tokio_postgres::Error> {
        post_all(tx, std::slice::from_ref(self)).await
    }
}

/// Writes entries and their lines in one statement; empty entries are skipped.
pub async fn post_all(tx: &Tx<'_>, entries: &[Entry]) -> Result<(), tokio_postgres::Error> {
    let entries: Vec<&Entry> = entries.iter().filter(|e| !e.is_empty()).collect();
    if entries.is_empty() {
        return Ok(());
    }
    assert!(entries.len() <= BATCH_MAX_ENTRIES, "too many journal entries in one batch");
    let mut kinds = Vec::with_capacity(entries.len());
    let mut booked = Vec::with_capacity(entries.len());
    let (mut order, mut plan, mut hold, mut line, mut bank, mut reference) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut line_entry, mut line_account, mut line_amount) = (vec![], vec![], vec![]);
    for (i, e) in entries.iter().enumerate() {
        e.assert_valid();
        kinds.push(e.kind);
        booked.push(e.booked_on);
        order.push(e.refs.order_id.as_deref());
        plan.push(e.refs.plan_id.as_deref());
        hold.push(e.refs.hold_id.as_deref());
        line.push(e.refs.credit_line_id.as_deref());
        bank.push(e.refs.bank_id.as_deref());
        reference.push(e.refs.reference.as_deref());
        for (a, x) in e.accounts.iter().zip(&e.amounts_fen) {
            line_entry.push(i as i32 + 1);
            line_account.push(a.as_str());
            line_amount.push(*x);
        }
    }
    tx.execute(
        "WITH input AS MATERIALIZED (
             SELECT nextval('journal_entry_seq') AS id, t.*
             FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                  WITH ORDINALITY AS t(kind, booked_on, order_id, plan_id, hold_id, credit_line_id, bank_id, reference, n)),
         e AS (INSERT INTO journal_entries (id, kind, booked_on, order_id, plan_id, hold_id, credit_line_id, bank_id, reference)
               SELECT id, kind, booked_on, order_id, plan_id, hold_id, credit_line_id, bank_id, reference FROM input)
         INSERT INTO journal_lines (entry_id, account, amount_fen)
         SELECT i.id, l.account, l.amount FROM unnest($9::int4[], $10::text[], $11::int8[]) AS l(n, account, amount)
         JOIN input i ON i.n = l.n",
        &[&kinds, &booked, &order, &plan, &hold, &line, &bank, &reference, &line_entry, &line_account, &line_amount],
    )
    .await?;
    Ok(())
}

/// A posted entry as read back, with its lines (debits positive).
#[derive(Debug, Clone)]
pub struct Posted {
    pub id: i64,
    pub kind: String,
    pub booked_on: NaiveDate,
    pub reference: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `(account, amount in fen)`, debits first.
    pub lines: Vec<(String, i64)>,
}

impl Posted {
    /// Do the lines sum to zero? (Posting refuses anything else; this shows it held.)
    pub fn balanced(&self) -> bool {
        self.lines.iter().map(|l| l.1).sum::<i64>() == 0
    }
}

/// The entries about an order, in posting order, at most `limit`, each with its lines: found
/// through `journal_entries_order` (V30), then sorted (`OFFSET 0`: never a walk of the journal in
/// id order).
pub async fn of_order(c: &impl super::Db, order_id: &str, limit: i64) -> Result<Vec<Posted>, tokio_postgres::Error> {
    let entries = c
        .query(
            "SELECT id, kind, booked_on, reference, created_at
             FROM (SELECT * FROM journal_entries WHERE order_id = $1 OFFSET 0) e ORDER BY id LIMIT $2",
            &[&order_id, &limit],
        )
        .await?;
    let ids: Vec<i64> = entries.iter().map(|r| r.get(0)).collect();
    let lines = c
        .query(
            "SELECT entry_id, account, amount_fen FROM journal_lines WHERE entry_id = ANY($1)
             ORDER BY entry_id, amount_fen DESC, account",
            &[&ids],
        )
        .await?;
    let mut posted: Vec<Posted> = entries
        .iter()
        .map(|r| Posted { id: r.get(0), kind: r.get(1), booked_on: r.get(2), reference: r.get(3), created_at: r.get(4), lines: vec![] })
        .collect();
    for l in &lines {
        let entry: i64 = l.get(0);
        if let Some(p) = posted.iter_mut().find(|p| p.id == entry) {
            p.lines.push((l.get(1), l.get(2)));
        }
    }
    Ok(posted)
}

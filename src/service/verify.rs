//! `GET /v1/admin/ledger/verify` and `creditphone verify`: every rule of PRODUCT.md "What must
//! always be true", checked against the balances and the journal, violations reported by name.

use crate::db::Db;
use crate::db::journal::account;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Violation {
    pub rule: String,
    pub object_id: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema, Default)]
pub struct Checked {
    pub credit_lines: i64,
    pub holds: i64,
    pub plans: i64,
    pub installments: i64,
    pub journal_entries: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    pub ok: bool,
    pub checked: Checked,
    pub violations: Vec<Violation>,
}

const VIOLATIONS_MAX: usize = 1000;

struct Collector {
    violations: Vec<Violation>,
}

impl Collector {
    fn check(&mut self, ok: bool, rule: &str, object_id: &str, message: impl FnOnce() -> String) {
        if !ok && self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(Violation { rule: rule.to_string(), object_id: object_id.to_string(), message: message() });
        }
    }
}

/// Runs every check in one repeatable-read snapshot.
#[tracing::instrument(skip_all)]
pub async fn verify(client: &mut tokio_postgres::Client) -> Result<Report, tokio_postgres::Error> {
    let tx = client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let mut c = Collector { violations: Vec::new() };
    // Every entry balances.
    let mut checked =
        Checked { journal_entries: tx.query_one("SELECT count(*) FROM journal_entries", &[]).await?.get(0), ..Checked::default() };
    for r in
        tx.query("SELECT entry_id, sum(amount_fen)::int8 FROM journal_lines GROUP BY entry_id HAVING sum(amount_fen) <> 0", &[]).await?
    {
        let (id, sum): (i64, i64) = (r.get(0), r.get(1));
        c.check(false, "journal_entry_balanced", &id.to_string(), || format!("lines sum to {sum} fen, not 0"));
    }
    let balances = account_balances(&tx).await?;
    let bal = |a: String| balances.get(&a).copied().unwrap_or(0);

    // Credit lines: available + held + drawn = limit, none negative, and each bucket as the journal says.
    let lines = tx.query("SELECT id, limit_fen, held_fen, drawn_fen FROM credit_lines", &[]).await?;
    let held_by_holds: HashMap<String, i64> = tx
        .query("SELECT credit_line_id, sum(remaining_fen)::int8 FROM holds GROUP BY credit_line_id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    checked.credit_lines = lines.len() as i64;
    for r in &lines {
        let (id, limit, held, drawn): (String, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let available = limit - held - drawn;
        c.check(available >= 0 && held >= 0 && drawn >= 0, "credit_line_balanced", &id, || {
            format!("available {available} + held {held} + drawn {drawn} = limit {limit} with none negative")
        });
        c.check(bal(account::line_limit_source(&id)) == -limit, "credit_line_limit_journal", &id, || {
            format!("limit {limit} but the journal says {}", -bal(account::line_limit_source(&id)))
        });
        c.check(bal(account::line_available(&id)) == available, "credit_line_available_journal", &id, || {
            format!("available {available} but the journal says {}", bal(account::line_available(&id)))
        });
        c.check(bal(account::line_held(&id)) == held, "credit_line_held_journal", &id, || {
            format!("held {held} but the journal says {}", bal(account::line_held(&id)))
        });
        c.check(bal(account::line_drawn(&id)) == drawn, "credit_line_drawn_journal", &id, || {
            format!("drawn {drawn} but the journal says {}", bal(account::line_drawn(&id)))
        });
        let by_holds = held_by_holds.get(&id).copied().unwrap_or(0);
        c.check(by_holds == held, "credit_line_held_equals_holds", &id, || format!("held {held} but its holds have {by_holds} remaining"));
    }

    // Holds: amount = released + converted + voided + remaining, as the journal says.
    let holds = tx.query("SELECT id, amount_fen, released_fen, converted_fen, voided_fen, remaining_fen FROM holds", &[]).await?;
    checked.holds = holds.len() as i64;
    for r in &holds {
        let id: String = r.get(0);
        let [amount, released, converted, voided, remaining]: [i64; 5] = [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)];
        c.check(
            amount == released + converted + voided + remaining && released >= 0 && converted >= 0 && voided >= 0 && remaining >= 0,
            "hold_balanced",
            &id,
            || format!("amount {amount} ≠ released {released} + converted {converted} + voided {voided} + remaining {remaining}"),
        );
        for (rule, column, journal) in [
            ("hold_amount_journal", amount, -bal(account::hold_origin(&id))),
            ("hold_remaining_journal", remaining, bal(account::hold_remaining(&id))),
            ("hold_released_journal", released, bal(account::hold_released(&id))),
            ("hold_converted_journal", converted, bal(account::hold_converted(&id))),
            ("hold_voided_journal", voided, bal(account::hold_voided(&id))),
        ] {
            c.check(column == journal, rule, &id, || format!("{column} fen in the hold but {journal} in the journal"));
        }
    }

    // References the schema does not enforce (sql/V7__lean_order_writes.sql): every order's and
    // hold's counterparts exist.
    for r in &tx.query(REFERENCES_MISSING, &[]).await? {
        let (rule, id, missing): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        c.check(false, &rule, &id, || format!("refers to {missing}, which does not exist"));
    }

    // Plans: installments add up to the principal; paid + outstanding = owed.
    let plans = tx
        .query(
            "SELECT p.id, p.principal_fen, count(i.seq), coalesce(sum(i.principal_fen), 0)::int8, coalesce(sum(i.paid_principal_fen), 0)::int8,
                    bool_and(i.paid_principal_fen <= i.principal_fen AND i.paid_interest_fen + i.waived_fen <= i.interest_fen + i.fee_fen + i.waived_fen
                             AND i.paid_fee_fen <= i.fee_fen AND i.paid_penalty_fen + i.waived_penalty_fen <= i.penalty_fen AND i.compensated_fen
                             <= i.paid_principal_fen + i.paid_interest_fen + i.paid_fee_fen + i.paid_penalty_fen)
             FROM plans p LEFT JOIN installments i ON i.plan_id = p.id GROUP BY p.id, p.principal_fen",
            &[],
        )
        .await?;
    checked.plans = plans.len() as i64;
    for r in &plans {
        let id: String = r.get(0);
        let (principal, count, sum_principal, paid_principal): (i64, i64, i64, i64) = (r.get(1), r.get(2), r.get(3), r.get(4));
        let parts_ok: Option<bool> = r.get(5);
        checked.installments += count;
        c.check(sum_principal == principal, "plan_principal_adds_up", &id, || {
            format!("installments' principal {sum_principal} ≠ plan principal {principal}")
        });
        c.check(parts_ok.unwrap_or(true), "installment_not_overpaid", &id, || "an installment was paid more than it owed".to_string());
        let outstanding = principal - paid_principal;
        let journal = bal(account::plan_principal(&id));
        c.check(journal == outstanding, "plan_outstanding_journal", &id, || {
            format!("paid {paid_principal} + outstanding {outstanding} = owed {principal}, but the journal has {journal} outstanding")
        });
    }

    // Banks: exposure = awaiting principal + unpaid principal of active and defaulted plans, stripe by
    // stripe, and as the journal says; the stripes' limits add up to the bank's limit.
    let stripes = tx
        .query(
            "SELECT s.bank_id, s.stripe, s.used_fen,
                    coalesce((SELECT sum(principal_fen) FROM orders o
                              WHERE o.bank_id = s.bank_id AND o.exposure_stripe = s.stripe AND o.status = 'awaiting_funding'), 0)::int8
                  + coalesce((SELECT sum(i.principal_fen - i.paid_principal_fen) FROM orders o JOIN plans p ON p.order_id = o.id
                              JOIN installments i ON i.plan_id = p.id
                              WHERE o.bank_id = s.bank_id AND o.exposure_stripe = s.stripe AND p.status IN ('active', 'defaulted')), 0)::int8
             FROM bank_exposure_stripes s ORDER BY s.bank_id, s.stripe",
            &[],
        )
        .await?;
    let mut used_by_bank: HashMap<String, i64> = HashMap::new();
    for r in &stripes {
        let (bank, stripe, used, expected): (String, i16, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        c.check(used == expected, "bank_exposure_matches_book", &format!("{bank}#{stripe}"), || {
            format!("stripe {stripe} has {used} in use but its orders and plans add up to {expected}")
        });
        *used_by_bank.entry(bank).or_default() += used;
    }
    // Over its limit only after a cut, and never above what it held at the cut (reservations stop
    // while a bank is over; releases only lower it).
    let banks =
        "SELECT b.id, b.exposure_limit_fen, (SELECT coalesce(sum(limit_fen), 0)::int8 FROM bank_exposure_stripes s WHERE s.bank_id = b.id),
                        b.exposure_at_cut_fen FROM banks b";
    for r in &tx.query(banks, &[]).await? {
        let (id, limit, stripe_limits, at_cut): (String, i64, i64, Option<i64>) = (r.get(0), r.get(1), r.get(2), r.get(3));
        c.check(limit == stripe_limits, "bank_stripes_add_up", &id, || {
            format!("the limit is {limit} but its stripes' limits add up to {stripe_limits}")
        });
        let used = used_by_bank.get(&id).copied().unwrap_or(0);
        let allowed = limit.max(at_cut.unwrap_or(0));
        c.check(used <= allowed, "bank_exposure_within_limit", &id, || match at_cut {
            Some(at_cut) => format!("exposure in use {used} is over the limit {limit} and over the {at_cut} held when the limit was cut"),
            None => format!("exposure in use {used} is over the limit {limit}"),
        });
        let journal = bal(account::bank_exposure(&id));
        c.check(used == journal, "bank_exposure_journal", &id, || format!("exposure in use {used} but the journal says {journal}"));
    }
    tx.commit().await?;
    Ok(Report { ok: c.violations.is_empty(), checked, violations: c.violations })
}

/// `(rule, object id, what is missing)` for every order or hold whose reference points nowhere.
const REFERENCES_MISSING: &str = "
    SELECT 'order_references_exist', o.id, 'store ' || o.store_id FROM orders o
     WHERE o.store_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stores s WHERE s.id = o.store_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'partner ' || o.partner_id FROM orders o
     WHERE o.partner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM partners p WHERE p.id = o.partner_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'product ' || o.product_id FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = o.product_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'credit line ' || o.credit_line_id FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM credit_lines l WHERE l.id = o.credit_line_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'bank ' || o.bank_id FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM banks b WHERE b.id = o.bank_id)
    UNION ALL SELECT 'order_references_exist', o.id, 'hold ' || coalesce(o.hold_id, '(none)') FROM orders o
     WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = o.hold_id AND h.order_id = o.id)
    UNION ALL SELECT 'hold_references_exist', h.id, 'order ' || h.order_id FROM holds h
     WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = h.order_id)
    UNION ALL SELECT 'hold_references_exist', h.id, 'credit line ' || h.credit_line_id FROM holds h
     WHERE NOT EXISTS (SELECT 1 FROM credit_lines l WHERE l.id = h.credit_line_id AND l.provider_id = h.provider_id)
    LIMIT 1000";

async fn account_balances(c: &impl Db) -> Result<HashMap<String, i64>, tokio_postgres::Error> {
    let rows = c.query("SELECT account, sum(amount_fen)::int8 FROM journal_lines GROUP BY account", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

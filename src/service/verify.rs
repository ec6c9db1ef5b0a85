//! `GET /v1/admin/ledger/verify` and `creditphone verify`: every rule of PRODUCT.md "What must
//! always be true", checked against the balances and the journal, violations reported by name.

use crate::db::journal::account;
use crate::db::verify::{self as verify_db, Books};
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

pub(super) struct Collector {
    violations: Vec<Violation>,
}

impl Collector {
    pub(super) fn check(&mut self, ok: bool, rule: &str, object_id: &str, message: impl FnOnce() -> String) {
        if !ok && self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(Violation { rule: rule.to_string(), object_id: object_id.to_string(), message: message() });
        }
    }
}

/// Runs every check in one repeatable-read snapshot: the books are read, then checked.
#[tracing::instrument(skip_all)]
pub async fn verify(client: &mut tokio_postgres::Client) -> Result<Report, tokio_postgres::Error> {
    let tx = client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let books = verify_db::load(&tx).await?;
    tx.commit().await?;
    Ok(check(&books))
}

/// Every rule of PRODUCT.md "What must always be true" over the books, violations by name.
pub fn check(books: &Books) -> Report {
    let mut c = Collector { violations: Vec::new() };
    let mut checked = Checked { journal_entries: books.journal_entries, ..Checked::default() };
    for (id, sum) in &books.unbalanced_entries {
        c.check(false, "journal_entry_balanced", &id.to_string(), || format!("lines sum to {sum} fen, not 0"));
    }
    let bal = |a: String| books.account_balances.get(&a).copied().unwrap_or(0);
    checked.credit_lines = check_lines(&mut c, books, &bal);
    checked.holds = check_holds(&mut c, books, &bal);
    for r in &books.missing_references {
        c.check(false, &r.rule, &r.object_id, || format!("refers to {}, which does not exist", r.missing));
    }
    (checked.plans, checked.installments) = check_plans(&mut c, books, &bal);
    check_banks(&mut c, books, &bal);
    check_confirmations(&mut c, books);
    check_returns(&mut c, books);
    super::verify_reports::check(&mut c, &books.stored_reports);
    Report { ok: c.violations.is_empty(), checked, violations: c.violations }
}

/// Credit lines: available + held + drawn = limit, none negative, and each bucket as the journal
/// says; held is what the line's holds have remaining. Answers how many were checked.
fn check_lines(c: &mut Collector, books: &Books, bal: &impl Fn(String) -> i64) -> i64 {
    for l in &books.lines {
        let (id, limit, held, drawn) = (&l.id, l.limit_fen, l.held_fen, l.drawn_fen);
        let available = limit - held - drawn;
        c.check(available >= 0 && held >= 0 && drawn >= 0, "credit_line_balanced", id, || {
            format!("available {available} + held {held} + drawn {drawn} = limit {limit} with none negative")
        });
        for (rule, what, column, journal) in [
            ("credit_line_limit_journal", "limit", limit, -bal(account::line_limit_source(id))),
            ("credit_line_available_journal", "available", available, bal(account::line_available(id))),
            ("credit_line_held_journal", "held", held, bal(account::line_held(id))),
            ("credit_line_drawn_journal", "drawn", drawn, bal(account::line_drawn(id))),
        ] {
            c.check(column == journal, rule, id, || format!("{what} {column} but the journal says {journal}"));
        }
        let by_holds = books.held_by_holds.get(id).copied().unwrap_or(0);
        c.check(by_holds == held, "credit_line_held_equals_holds", id, || format!("held {held} but its holds have {by_holds} remaining"));
    }
    books.lines.len() as i64
}

/// Holds: amount = released + converted + voided + remaining, none negative, as the journal says.
fn check_holds(c: &mut Collector, books: &Books, bal: &impl Fn(String) -> i64) -> i64 {
    for h in &books.holds {
        let id = &h.id;
        let [amount, released, converted, voided, remaining] =
            [h.amount_fen, h.released_fen, h.converted_fen, h.voided_fen, h.remaining_fen];
        c.check(
            amount == released + converted + voided + remaining && released >= 0 && converted >= 0 && voided >= 0 && remaining >= 0,
            "hold_balanced",
            id,
            || format!("amount {amount} ≠ released {released} + converted {converted} + voided {voided} + remaining {remaining}"),
        );
        for (rule, column, journal) in [
            ("hold_amount_journal", amount, -bal(account::hold_origin(id))),
            ("hold_remaining_journal", remaining, bal(account::hold_remaining(id))),
            ("hold_released_journal", released, bal(account::hold_released(id))),
            ("hold_converted_journal", converted, bal(account::hold_converted(id))),
            ("hold_voided_journal", voided, bal(account::hold_voided(id))),
        ] {
            c.check(column == journal, rule, id, || format!("{column} fen in the hold but {journal} in the journal"));
        }
    }
    books.holds.len() as i64
}

/// Plans: installments add up to the principal, none paid beyond what it owed, and paid +
/// outstanding = owed as the journal says. Answers how many plans and installments were checked.
fn check_plans(c: &mut Collector, books: &Books, bal: &impl Fn(String) -> i64) -> (i64, i64) {
    let mut installments = 0;
    for p in &books.plans {
        let (id, principal, paid_principal) = (&p.id, p.principal_fen, p.paid_principal_fen);
        installments += p.installments;
        let sum_principal = p.installments_principal_fen;
        c.check(sum_principal == principal, "plan_principal_adds_up", id, || {
            format!("installments' principal {sum_principal} ≠ plan principal {principal}")
        });
        c.check(p.parts_within_owed.unwrap_or(true), "installment_not_overpaid", id, || {
            "an installment was paid more than it owed".to_string()
        });
        let outstanding = principal - paid_principal - p.written_off_principal_fen - p.waived_principal_fen;
        let journal = bal(account::plan_principal(id));
        c.check(journal == outstanding, "plan_outstanding_journal", id, || {
            format!("paid {paid_principal} + outstanding {outstanding} = owed {principal}, but the journal has {journal} outstanding")
        });
        let (kept, summed) = (p.open_unpaid_principal_fen, p.installments_open_unpaid_principal_fen);
        c.check(kept == summed, "plan_open_principal_kept", id, || {
            format!("the plan keeps {kept} fen of open unpaid principal but its open installments owe {summed}")
        });
        c.check(p.kept_bank_is_the_plans, "plan_open_principal_kept", id, || {
            "the bank kept with the plan's open principal is not the plan's".to_string()
        });
        c.check(!p.closed_with_open_installment, "closed_plan_has_no_open_installment", id, || {
            "a plan that is not open still has a pending or overdue installment".to_string()
        });
        check_written_off(c, p, bal);
        check_returned(c, p, bal);
    }
    (books.plans.len() as i64, installments)
}

/// API.md §14: a written-off plan owes nothing more; `0 ≤ recovered ≤ written_off.total`; the
/// journal holds what was written off and not recovered.
fn check_written_off(c: &mut Collector, p: &verify_db::PlanRow, bal: &impl Fn(String) -> i64) {
    let id = &p.id;
    c.check(!p.written_off_owes, "written_off_plan_owes_nothing", id, || "a written-off plan still has an open installment".to_string());
    let (total, recovered) = (p.written_off_total_fen.unwrap_or(0), p.recovered_fen);
    c.check((0..=total).contains(&recovered), "recovered_within_written_off", id, || {
        format!("recovered {recovered} is not within 0 and the {total} written off")
    });
    let journal = bal(account::plan_written_off(id));
    c.check(journal == total - recovered, "written_off_journal", id, || {
        format!("written off {total} less recovered {recovered}, but the journal has {journal}")
    });
}

/// API.md §13: a returned plan owes nothing; the journal holds the principal returns forgave.
fn check_returned(c: &mut Collector, p: &verify_db::PlanRow, bal: &impl Fn(String) -> i64) {
    let id = &p.id;
    c.check(!p.returned_owes, "returned_plan_owes_nothing", id, || "a returned plan still has something unpaid".to_string());
    let (waived, journal) = (p.waived_principal_fen, bal(account::plan_returned(id)));
    c.check(journal == waived, "returned_principal_journal", id, || {
        format!("returns forgave {waived} of principal, but the journal has {journal}")
    });
}

/// API.md §13: a requested return is its plan's latest and freezes it; a completed one made its
/// plan `returned`; a rejected one left it running; no plan is returned or frozen without one.
fn check_returns(c: &mut Collector, books: &Books) {
    for r in &books.returns {
        let id = &r.id;
        let ok = match r.status.as_str() {
            "requested" => r.plan_frozen_by_it && r.plan_status == "active",
            "completed" => r.plan_status == "returned" && !r.plan_frozen,
            "rejected" => r.plan_status != "returned" || !r.is_latest,
            _ => false,
        };
        c.check(ok, "return_matches_plan", id, || {
            format!("the return is {} but its plan {} is {} (frozen: {})", r.status, r.plan_id, r.plan_status, r.plan_frozen)
        });
    }
    for (plan, status, frozen) in &books.unexplained_returns {
        c.check(false, "plan_return_explained", plan, || {
            format!("the plan is {status} (frozen: {frozen}) without a return that explains it")
        });
    }
}

/// Banks: exposure = awaiting principal + unpaid principal of active and defaulted plans, stripe
/// by stripe, and as the journal says; the stripes' limits add up to the bank's limit; over its
/// limit only after a cut, and never above what it held at the cut (reservations stop while a bank
/// is over; releases only lower it).
fn check_banks(c: &mut Collector, books: &Books, bal: &impl Fn(String) -> i64) {
    let mut used_by_bank: HashMap<&str, i64> = HashMap::new();
    for s in &books.stripes {
        let (stripe, used, expected) = (s.stripe, s.used_fen, s.book_fen);
        c.check(used == expected, "bank_exposure_matches_book", &format!("{}#{stripe}", s.bank_id), || {
            format!("stripe {stripe} has {used} in use but its orders and plans add up to {expected}")
        });
        *used_by_bank.entry(&s.bank_id).or_default() += used;
    }
    for b in &books.banks {
        let (id, limit, stripe_limits, at_cut) = (&b.id, b.limit_fen, b.stripe_limits_fen, b.exposure_at_cut_fen);
        c.check(limit == stripe_limits, "bank_stripes_add_up", id, || {
            format!("the limit is {limit} but its stripes' limits add up to {stripe_limits}")
        });
        let used = used_by_bank.get(id.as_str()).copied().unwrap_or(0);
        let allowed = limit.max(at_cut.unwrap_or(0));
        c.check(used <= allowed, "bank_exposure_within_limit", id, || match at_cut {
            Some(at_cut) => format!("exposure in use {used} is over the limit {limit} and over the {at_cut} held when the limit was cut"),
            None => format!("exposure in use {used} is over the limit {limit}"),
        });
        let journal = bal(account::bank_exposure(id));
        c.check(used == journal, "bank_exposure_journal", id, || format!("exposure in use {used} but the journal says {journal}"));
    }
}

/// Pending holds and voids (API.md §12): a pending hold has moved nothing, has its deadline and
/// its order awaits its confirmation without a funding deadline (and such an order's hold is
/// pending); a voided hold's reason is what its order became.
fn check_confirmations(c: &mut Collector, books: &Books) {
    for r in &books.confirmations {
        let id = &r.hold_id;
        let pending = r.hold_status == "pending";
        let awaiting = r.order_status == "awaiting_hold_confirmation";
        c.check(pending == awaiting, "hold_pending_with_its_order", id, || {
            format!("the hold is {} but its order is {}", r.hold_status, r.order_status)
        });
        if pending {
            c.check(r.untouched && r.has_confirm_deadline && !r.order_has_funding_deadline, "hold_pending_untouched", id, || {
                "a pending hold has moved nothing, has a confirm deadline, and its order no funding deadline".to_string()
            });
        }
        if r.hold_status == "voided" {
            let expected = expected_order(r.void_reason.as_deref());
            let found = (r.order_status.as_str(), r.order_reason.as_deref());
            c.check(expected.is_some_and(|e| e.matches(found)), "hold_void_reason_matches_order", id, || {
                format!("voided for {:?} but its order is {} ({:?})", r.void_reason, r.order_status, r.order_reason)
            });
        }
    }
}

/// What the order of a hold voided for `reason` must be: its status and, where the engine wrote
/// it, its reason (a cancellation's or a bank's rejection reason is the caller's free text).
struct ExpectedOrder {
    status: &'static str,
    reason: Option<&'static str>,
}

impl ExpectedOrder {
    fn matches(&self, (status, reason): (&str, Option<&str>)) -> bool {
        status == self.status && (self.reason.is_none() || reason == self.reason)
    }
}

fn expected_order(reason: Option<&str>) -> Option<ExpectedOrder> {
    let (status, reason) = match reason? {
        "cancelled" => ("cancelled", None),
        "rejected" => ("rejected", None),
        "expired" => ("expired", Some("funding timeout")),
        "declined" => ("rejected", Some("hold_declined")),
        "confirmation_timeout" => ("expired", Some("confirmation_timeout")),
        "returned" => ("returned", None),
        _ => return None,
    };
    Some(ExpectedOrder { status, reason })
}

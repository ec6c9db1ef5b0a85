//! The life of a funded plan: repayments, compensations from the hold, releases down to the hold
//! target, settlement and default. One mechanism for a single repayment and for a chunk of end
//! of day: `Book`s are changed in memory, their `Effects` collected, then written in a few batched
//! statements.

use super::order_notices::OrderRefs;
use crate::db::journal::{self, Entry, Refs, account};
use crate::db::notices::record;
use crate::db::orders::Hold;
use crate::db::plans::{self, Plan};
use crate::db::{Tx, orders as orders_db};
use crate::domain::hold::hold_target;
use crate::domain::installment::{InstallmentState, Split, compensate, unpaid_scheduled_total};
use crate::domain::money::Amount;
use crate::domain::notice::{About, DefaultCompensated, DefaultUncovered, HoldConverted, Notice, PlanSettled, Recipient};
use crate::domain::status::{InstallmentStatus, OrderStatus, PlanStatus};
use crate::error::{ApiError, ApiResult};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A plan with what moving its money needs: its order's terms, its hold, its installments.
#[derive(Debug, Clone)]
pub struct Book {
    pub plan: Plan,
    pub order_id: String,
    pub owner_kind: &'static str,
    pub owner_id: String,
    pub out_order_no: String,
    pub hold: Hold,
    pub hold_ratio: Decimal,
    pub penalty_daily_rate: Decimal,
    pub grace_days: i64,
    pub exposure_stripe: i16,
    pub insts: Vec<InstallmentState>,
    pub statuses: Vec<InstallmentStatus>,
    changed: Vec<bool>,
}

/// Loads and locks plans (id order), their holds, and their installments.
pub async fn load_books(tx: &Tx<'_>, plan_ids: &[String]) -> ApiResult<Vec<Book>> {
    let plans = plans::lock_many(tx, plan_ids).await?;
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = plans.iter().map(|p| p.id.clone()).collect();
    let order_rows = tx
        .query(
            "SELECT o.id, o.store_id, o.partner_id, o.out_order_no, o.hold_id, o.hold_ratio, o.penalty_daily_rate, o.grace_days,
                    o.exposure_stripe
             FROM orders o JOIN plans p ON p.order_id = o.id WHERE p.id = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut orders: BTreeMap<String, tokio_postgres::Row> = order_rows.into_iter().map(|r| (r.get::<_, String>(0), r)).collect();
    let hold_ids: Vec<String> = orders.values().map(|r| r.get::<_, String>(4)).collect();
    let holds = orders_db::lock_holds(tx, &hold_ids).await?;
    let mut holds: BTreeMap<String, Hold> = holds.into_iter().map(|h| (h.id.clone(), h)).collect();
    let mut insts: BTreeMap<String, Vec<plans::InstallmentRow>> = BTreeMap::new();
    for (plan_id, row) in plans::installments_of(tx, &ids).await? {
        insts.entry(plan_id).or_default().push(row);
    }
    let mut books = Vec::with_capacity(plans.len());
    for plan in plans {
        // plans.order_id keeps its foreign key to orders (V7 dropped only the orders' and holds' own).
        let o = orders.remove(&plan.order_id).expect("plans.order_id references orders, and the join read every plan's order");
        let (owner_kind, owner_id) = match (o.get::<_, Option<String>>(1), o.get::<_, Option<String>>(2)) {
            (Some(s), _) => ("store", s),
            (_, Some(p)) => ("partner", p),
            // No constraint holds one of the two: stored data, not code, would be wrong.
            _ => {
                return Err(ApiError::internal_because(
                    "Failed to load a plan",
                    format!("order {} has neither store nor partner", plan.order_id),
                ));
            }
        };
        let hold_id: String = o.get(4);
        let hold = holds
            .remove(&hold_id)
            .ok_or_else(|| ApiError::internal_because("Failed to load a plan", format!("order {} has no hold {hold_id}", plan.order_id)))?;
        let rows = insts.remove(&plan.id).unwrap_or_default();
        let n = rows.len();
        books.push(Book {
            order_id: plan.order_id.clone(),
            owner_kind,
            owner_id,
            out_order_no: o.get(3),
            hold,
            hold_ratio: o.get(5),
            penalty_daily_rate: o.get(6),
            grace_days: i64::from(o.get::<_, i32>(7)),
            exposure_stripe: o.get(8),
            statuses: rows.iter().map(|r| r.status).collect(),
            insts: rows.into_iter().map(|r| r.state).collect(),
            changed: vec![false; n],
            plan,
        });
    }
    Ok(books)
}

/// Everything a batch of changes writes, collected first.
#[derive(Default)]
pub struct Effects {
    installments: Vec<(String, InstallmentState, InstallmentStatus)>,
    /// hold id → (line id, released, converted)
    holds: BTreeMap<String, (String, i64, i64)>,
    /// line id → (held delta, drawn delta)
    lines: BTreeMap<String, (i64, i64)>,
    /// (bank id, stripe) → principal repaid (exposure freed)
    exposure_freed: BTreeMap<(String, i16), i64>,
    plan_status: BTreeMap<String, PlanStatus>,
    order_status: BTreeMap<String, OrderStatus>,
    compensations: Vec<(String, u32, Split, NaiveDate, NaiveDate)>,
    pub entries: Vec<Entry>,
    pub notices: Vec<Notice>,
    pub compensated: Counter,
    pub uncovered: Counter,
    pub released_fen: i64,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counter {
    pub count: i64,
    pub amount_fen: i64,
}

impl Counter {
    fn add(&mut self, amount: Amount) {
        self.count += 1;
        self.amount_fen += amount.fen();
    }
    pub fn to_json(self) -> Value {
        json!({ "count": self.count, "amount": Amount::from_fen(self.amount_fen) })
    }
}

impl Book {
    pub fn refs(&self) -> Refs {
        Refs::new().order(&self.order_id).plan(&self.plan.id).hold(&self.hold.id).line(&self.hold.credit_line_id).bank(&self.plan.bank_id)
    }

    pub fn touch(&mut self, index: usize) {
        self.changed[index] = true;
    }

    pub fn is_paid_off(&self) -> bool {
        self.insts.iter().all(InstallmentState::is_settled)
    }

    /// The ids every notice about this plan's order carries: all five exist once funded.
    pub fn order_refs(&self) -> OrderRefs {
        OrderRefs::unfunded(&self.order_id, &self.hold.id, &self.hold.credit_line_id).funded(&self.plan.id, &self.plan.loan_no)
    }

    /// A notice's content about this plan, to its bank.
    pub fn bank_notice<F>(&self, fields: F) -> About<F> {
        self.order_refs().about(Recipient::Bank(self.plan.bank_id.clone()), fields)
    }

    /// Principal paid in `split` no longer counts against the bank's exposure; the payment moves in the journal.
    fn book_payment(&self, fx: &mut Effects, kind: &'static str, split: &Split, booked_on: NaiveDate, reference: Option<&str>) {
        let mut refs = self.refs();
        if let Some(r) = reference {
            refs = refs.reference(r);
        }
        let mut e = Entry::new(kind, booked_on, refs);
        self.pay_into(fx, &mut e, split);
        fx.entries.push(e);
    }

    /// The payment of `split` to the bank, on `e`.
    fn pay_into(&self, fx: &mut Effects, e: &mut Entry, split: &Split) {
        let bank = &self.plan.bank_id;
        e.transfer(account::plan_principal(&self.plan.id), account::bank_collected(bank), split.principal.fen())
            .transfer(
                account::plan_income(&self.plan.id),
                account::bank_collected(bank),
                (split.interest + split.fee + split.penalty).fen(),
            )
            .transfer(account::bank_exposure(bank), account::bank_exposure_source(bank), split.principal.fen());
        *fx.exposure_freed.entry((bank.clone(), self.exposure_stripe)).or_default() += split.principal.fen();
    }

    /// Takes `amount` out of the hold into the credit line's drawn (代偿), on `e`.
    fn convert(&mut self, fx: &mut Effects, e: &mut Entry, amount: Amount) {
        let remaining = self.hold.remaining.checked_sub(amount).expect("a conversion never exceeds the hold's remaining");
        self.hold.remaining = remaining;
        self.hold.converted += amount;
        self.hold.assert_balanced();
        let line = self.hold.credit_line_id.clone();
        let h = fx.holds.entry(self.hold.id.clone()).or_insert((line.clone(), 0, 0));
        h.2 += amount.fen();
        let l = fx.lines.entry(line.clone()).or_default();
        l.0 -= amount.fen();
        l.1 += amount.fen();
        e.transfer(account::line_held(&line), account::line_drawn(&line), amount.fen()).transfer(
            account::hold_remaining(&self.hold.id),
            account::hold_converted(&self.hold.id),
            amount.fen(),
        );
    }

    fn release(&mut self, fx: &mut Effects, amount: Amount, booked_on: NaiveDate) {
        if amount.is_zero() {
            return;
        }
        self.hold.remaining = self.hold.remaining.checked_sub(amount).expect("a release never exceeds the hold's remaining");
        self.hold.released += amount;
        self.hold.assert_balanced();
        let line = self.hold.credit_line_id.clone();
        let h = fx.holds.entry(self.hold.id.clone()).or_insert((line.clone(), 0, 0));
        h.1 += amount.fen();
        fx.lines.entry(line.clone()).or_default().0 -= amount.fen();
        let mut e = Entry::new("hold.released", booked_on, self.refs());
        e.transfer(account::line_held(&line), account::line_available(&line), amount.fen()).transfer(
            account::hold_remaining(&self.hold.id),
            account::hold_released(&self.hold.id),
            amount.fen(),
        );
        fx.entries.push(e);
        fx.released_fen += amount.fen();
        fx.notices.push(Notice::HoldReleased(Notice::hold_moved(&self.order_refs(), &self.hold.provider_id, amount, self.hold.remaining)));
    }

    /// Compensates installment `index` from the hold: `min(unpaid, remaining)`; answers the shortfall.
    pub fn compensate_installment(&mut self, fx: &mut Effects, index: usize, value_date: NaiveDate, booked_on: NaiveDate) -> Amount {
        let available = self.hold.remaining;
        let (split, shortfall) = compensate(&mut self.insts[index], available);
        self.touch(index);
        let amount = split.total();
        if amount.is_positive() {
            // One entry: the hold converted into the line's drawn, and paid to the bank.
            let mut e = Entry::new("default.compensated", booked_on, self.refs());
            self.convert(fx, &mut e, amount);
            self.pay_into(fx, &mut e, &split);
            fx.entries.push(e);
            let seq = self.insts[index].seq;
            fx.compensations.push((self.plan.id.clone(), seq, split, value_date, booked_on));
            fx.compensated.add(amount);
            fx.notices.push(Notice::DefaultCompensated(self.bank_notice(DefaultCompensated { installment_seq: seq, amount, split })));
            let converted = HoldConverted { amount, remaining: self.hold.remaining, installment_seq: seq };
            fx.notices.push(Notice::HoldConverted(self.order_refs().about(Recipient::Provider(self.hold.provider_id.clone()), converted)));
        }
        shortfall
    }

    /// Reports what the hold could not cover and defaults the plan.
    pub fn default_uncovered(&mut self, fx: &mut Effects, index: usize, shortfall: Amount) {
        fx.uncovered.add(shortfall);
        let seq = self.insts[index].seq;
        fx.notices.push(Notice::DefaultUncovered(self.bank_notice(DefaultUncovered {
            installment_seq: seq,
            shortfall,
            amount: shortfall,
        })));
        self.set_status(fx, PlanStatus::Defaulted);
    }

    /// Releases the hold down to its target (everything once the plan is paid off).
    pub fn release_to_target(&mut self, fx: &mut Effects, booked_on: NaiveDate) -> Amount {
        let target = if self.is_paid_off() { Amount::ZERO } else { hold_target(unpaid_scheduled_total(&self.insts), self.hold_ratio) };
        let excess = self.hold.remaining.saturating_sub(target);
        self.release(fx, excess, booked_on);
        excess
    }

    pub fn set_status(&mut self, fx: &mut Effects, status: PlanStatus) {
        if self.plan.status == status {
            return;
        }
        self.plan.status = status;
        fx.plan_status.insert(self.plan.id.clone(), status);
        fx.order_status.insert(self.order_id.clone(), status.into());
        let seller = Recipient::seller(self.owner_kind, &self.owner_id);
        fx.notices.push(Notice::order_updated(&self.order_refs(), seller, &self.out_order_no, status.into()));
    }

    /// Everything still owed has fallen due at once (an acceleration the hold could not cover,
    /// API.md §5): every installment left owing reads `overdue`, those due later included.
    pub fn fall_due(&mut self) {
        for i in 0..self.insts.len() {
            if !self.insts[i].is_settled() && self.statuses[i] != InstallmentStatus::Overdue {
                self.statuses[i] = InstallmentStatus::Overdue;
                self.touch(i);
            }
        }
    }

    /// Settles the plan once nothing is owed: the whole hold is released.
    pub fn settle_if_paid_off(&mut self, fx: &mut Effects, booked_on: NaiveDate) {
        if self.plan.status != PlanStatus::Settled && self.is_paid_off() {
            self.release_to_target(fx, booked_on);
            self.set_status(fx, PlanStatus::Settled);
            fx.notices.push(Notice::PlanSettled(self.bank_notice(PlanSettled { amount: self.plan.principal })));
        }
    }

    /// Records a repayment's payment in the journal (the split was already applied to the installments).
    pub fn book_repayment(&self, fx: &mut Effects, split: &Split, booked_on: NaiveDate, repayment_id: &str) {
        self.book_payment(fx, "repayment.recorded", split, booked_on, Some(repayment_id));
    }

    /// Queues every changed installment with the status it now has.
    pub fn collect_installments(&mut self, fx: &mut Effects, as_of: Option<NaiveDate>) {
        for (i, inst) in self.insts.iter().enumerate() {
            if !self.changed[i] {
                continue;
            }
            inst.assert_invariants();
            let status = match as_of {
                Some(d) => inst.status(d),
                None if inst.is_settled() => inst.status(inst.due_on),
                None => self.statuses[i],
            };
            self.statuses[i] = status;
            fx.installments.push((self.plan.id.clone(), inst.clone(), status));
        }
        self.changed.iter_mut().for_each(|c| *c = false);
    }
}

impl Effects {
    /// Writes everything in a few statements, in the fixed lock order: holds, lines, banks.
    pub async fn apply(self, tx: &Tx<'_>) -> ApiResult<()> {
        let rows: Vec<(&str, &InstallmentState, InstallmentStatus)> =
            self.installments.iter().map(|(p, s, st)| (p.as_str(), s, *st)).collect();
        plans::save_installments(tx, &rows).await?;
        if !self.holds.is_empty() {
            let ids: Vec<&str> = self.holds.keys().map(String::as_str).collect();
            let released: Vec<i64> = self.holds.values().map(|h| h.1).collect();
            let converted: Vec<i64> = self.holds.values().map(|h| h.2).collect();
            let n = tx
                .execute(
                    "UPDATE holds h SET released_fen = released_fen + t.r, converted_fen = converted_fen + t.c,
                         remaining_fen = remaining_fen - t.r - t.c,
                         status = CASE WHEN remaining_fen - t.r - t.c = 0 THEN 'closed' ELSE status END, updated_at = now()
                     FROM unnest($1::text[], $2::int8[], $3::int8[]) AS t(id, r, c) WHERE h.id = t.id",
                    &[&ids, &released, &converted],
                )
                .await?;
            assert_eq!(n as usize, ids.len(), "every hold changed was written");
        }
        if !self.lines.is_empty() {
            let ids: Vec<&str> = self.lines.keys().map(String::as_str).collect();
            tx.query("SELECT 1 FROM credit_lines WHERE id = ANY($1) ORDER BY id FOR UPDATE", &[&ids]).await?;
            let held: Vec<i64> = self.lines.values().map(|l| l.0).collect();
            let drawn: Vec<i64> = self.lines.values().map(|l| l.1).collect();
            let n = tx
                .execute(
                    "UPDATE credit_lines l SET held_fen = held_fen + t.h, drawn_fen = drawn_fen + t.d, updated_at = now()
                     FROM unnest($1::text[], $2::int8[], $3::int8[]) AS t(id, h, d) WHERE l.id = t.id",
                    &[&ids, &held, &drawn],
                )
                .await?;
            assert_eq!(n as usize, ids.len(), "every line changed was written");
        }
        let freed: Vec<(&str, i16, i64)> =
            self.exposure_freed.iter().filter(|(_, x)| **x > 0).map(|((b, stripe), x)| (b.as_str(), *stripe, *x)).collect();
        crate::db::banks::release_many(tx, &freed).await?;
        let plans = self.plan_status.iter().map(|(id, s)| (id.as_str(), s.as_str())).collect::<Vec<_>>();
        let orders = self.order_status.iter().map(|(id, s)| (id.as_str(), s.as_str())).collect::<Vec<_>>();
        for (table, changes) in [("plans", plans), ("orders", orders)] {
            if changes.is_empty() {
                continue;
            }
            let (ids, statuses): (Vec<&str>, Vec<&str>) = changes.into_iter().unzip();
            tx.execute(
                &format!("UPDATE {table} x SET status = t.s, updated_at = now() FROM unnest($1::text[], $2::text[]) AS t(id, s) WHERE x.id = t.id"),
                &[&ids, &statuses],
            )
            .await?;
        }
        if !self.compensations.is_empty() {
            let c = &self.compensations;
            let plan_ids: Vec<&str> = c.iter().map(|x| x.0.as_str()).collect();
            let seqs: Vec<i32> = c.iter().map(|x| x.1 as i32).collect();
            let amount: Vec<i64> = c.iter().map(|x| x.2.total().fen()).collect();
            let p: Vec<i64> = c.iter().map(|x| x.2.principal.fen()).collect();
            let i: Vec<i64> = c.iter().map(|x| x.2.interest.fen()).collect();
            let f: Vec<i64> = c.iter().map(|x| x.2.fee.fen()).collect();
            let pen: Vec<i64> = c.iter().map(|x| x.2.penalty.fen()).collect();
            let value: Vec<NaiveDate> = c.iter().map(|x| x.3).collect();
            let booked: Vec<NaiveDate> = c.iter().map(|x| x.4).collect();
            tx.execute(
                "INSERT INTO compensations (plan_id, installment_seq, amount_fen, principal_fen, interest_fen, fee_fen, penalty_fen, value_date, booked_on)
                 SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::date[], $9::date[])",
                &[&plan_ids, &seqs, &amount, &p, &i, &f, &pen, &value, &booked],
            )
            .await?;
        }
        journal::post_all(tx, &self.entries).await?;
        record(tx, &self.notices).await?;
        Ok(())
    }
}

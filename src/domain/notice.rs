//! The notices (API.md §7): one variant of [`Notice`] per type, each carrying its recipient, the
//! ids of the order it is about ([`OrderRefs`]) and a payload struct whose fields are the JSON keys
//! sent. The type's name and audience are stated once, in the `notices!` list below; what a
//! notice's `data` holds is its structs' fields, so no notice can leave out an id of an object
//! that exists, nor set one of them to something else.

use super::installment::Split;
use super::money::Amount;
use super::returns::ReturnAmounts;
use super::status::{OrderStatus, PlanStatus, VoidReason};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

/// Who a notice is for: a principal that reads notices (API.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Bank(String),
    Provider(String),
    Store(String),
    Partner(String),
}

impl Recipient {
    /// An order's seller, by the order's channel (`store` or `partner`).
    ///
    /// # Panics
    /// On another channel: the channels are the code's own constants.
    pub fn seller(channel: &str, id: &str) -> Recipient {
        match channel {
            "store" => Recipient::Store(id.to_string()),
            "partner" => Recipient::Partner(id.to_string()),
            other => panic!("an order is sold by a store or a partner, not by a {other}"),
        }
    }

    /// An order's seller as the order's row names it: its store, else its partner; `None` when it
    /// names neither (no constraint holds one of the two).
    pub fn seller_of(store_id: Option<&str>, partner_id: Option<&str>) -> Option<Recipient> {
        match (store_id, partner_id) {
            (Some(s), _) => Some(Recipient::Store(s.to_string())),
            (_, Some(p)) => Some(Recipient::Partner(p.to_string())),
            _ => None,
        }
    }

    /// `bank`, `provider`, `store` or `partner`, as stored in `notices.recipient_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Recipient::Bank(_) => "bank",
            Recipient::Provider(_) => "provider",
            Recipient::Store(_) => "store",
            Recipient::Partner(_) => "partner",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Recipient::Bank(id) | Recipient::Provider(id) | Recipient::Store(id) | Recipient::Partner(id) => id,
        }
    }
}

/// Which recipients a type of notice goes to (API.md §7's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The order's funding bank.
    Bank,
    /// The provider of the order's credit line.
    Provider,
    /// The order's store or partner.
    Seller,
}

impl Audience {
    pub fn admits(self, recipient: &Recipient) -> bool {
        matches!(
            (self, recipient),
            (Audience::Bank, Recipient::Bank(_))
                | (Audience::Provider, Recipient::Provider(_))
                | (Audience::Seller, Recipient::Store(_) | Recipient::Partner(_))
        )
    }
}

/// The plan's ids, which exist together from funding on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRefs {
    pub plan_id: String,
    pub loan_no: String,
}

/// The ids of the objects an order's notices are about, each that exists (API.md §7: every
/// notice about an order carries each of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRefs {
    pub order_id: String,
    /// `None` until the order is funded: then absent from the data rather than null.
    #[serde(flatten)]
    pub plan: Option<PlanRefs>,
    pub hold_id: String,
    pub credit_line_id: String,
}

impl OrderRefs {
    /// An order not (yet) funded: its hold and credit line exist from placement on.
    pub fn unfunded(order_id: &str, hold_id: &str, credit_line_id: &str) -> OrderRefs {
        OrderRefs { order_id: order_id.to_string(), plan: None, hold_id: hold_id.to_string(), credit_line_id: credit_line_id.to_string() }
    }

    /// The same order once its plan is opened.
    pub fn funded(self, plan_id: &str, loan_no: &str) -> OrderRefs {
        OrderRefs { plan: Some(PlanRefs { plan_id: plan_id.to_string(), loan_no: loan_no.to_string() }), ..self }
    }

    /// A notice's content about this order: to `to`, with these ids and then `fields`.
    pub fn about<F>(&self, to: Recipient, fields: F) -> About<F> {
        About { to, refs: Some(self.clone()), fields }
    }
}

/// One notice's content: its recipient (not part of `data`), the order's ids and its own fields.
/// Only the notices about no order (a closed date's reports, API.md §15) have no ids: they are
/// built by [`Notice::report_ready`], every other through [`OrderRefs::about`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct About<F> {
    #[serde(skip)]
    pub to: Recipient,
    #[serde(flatten)]
    pub refs: Option<OrderRefs>,
    #[serde(flatten)]
    pub fields: F,
}

// ---------- the payloads: each struct's fields are the JSON keys its notices send ----------

/// `funding.requested`: the order awaits the bank's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FundingRequested {
    pub amount: Amount,
    pub principal: Amount,
    pub term_months: u32,
    pub apr_irr: String,
    pub funding_deadline: DateTime<Utc>,
}

/// `plan.opened`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOpened {
    pub amount: Amount,
    pub principal: Amount,
    pub funded_on: NaiveDate,
}

/// `order.expired`: the bank did not decide in time; its exposure is freed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderExpired {
    pub amount: Amount,
    pub principal: Amount,
}

/// `order.cancelled`: `reason` is null when the seller gave none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderCancelled {
    pub amount: Amount,
    pub reason: Option<String>,
}

/// `order.updated`: the order's new status, for its seller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderUpdated {
    pub out_order_no: String,
    pub status: OrderStatus,
}

/// `hold.placed`, `hold.released`: `amount` moved, `remaining` left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldMoved {
    pub amount: Amount,
    pub remaining: Amount,
}

/// `hold.requested` (API.md §12): the provider must confirm (or decline) freezing `amount` before
/// `confirm_deadline`; `consent` is the order's evidence of the customer's consent, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldRequested {
    pub amount: Amount,
    pub confirm_deadline: DateTime<Utc>,
    pub consent: Option<Value>,
}

/// `hold.voided`: `amount` voided, `remaining` left (zero), and why (API.md §12): the provider's
/// instruction to unfreeze.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldVoided {
    pub amount: Amount,
    pub remaining: Amount,
    pub reason: VoidReason,
}

/// `hold.converted`: `amount` converted into the line's drawn to pay installment `installment_seq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldConverted {
    pub amount: Amount,
    pub remaining: Amount,
    pub installment_seq: u32,
}

/// `default.compensated`: what the hold paid of one installment, split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefaultCompensated {
    pub installment_seq: u32,
    pub amount: Amount,
    #[serde(flatten)]
    pub split: Split,
}

/// `default.uncovered`: `installment_seq` is the first installment the hold could not pay in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefaultUncovered {
    pub installment_seq: u32,
    pub shortfall: Amount,
    pub amount: Amount,
}

/// `plan.settled`: `amount` is the plan's principal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSettled {
    pub amount: Amount,
}

/// `installment.overdue`: `amount` is everything unpaid of it, penalty included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstallmentOverdue {
    pub installment_seq: u32,
    pub due_on: NaiveDate,
    pub amount: Amount,
}

/// `repayment.recorded`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepaymentRecorded {
    pub repayment_id: String,
    pub reference: String,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub hold_released: Amount,
    pub plan_status: PlanStatus,
    #[serde(flatten)]
    pub split: Split,
}

/// `plan.accelerated`: `amount` is the payoff as of `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanAccelerated {
    pub as_of: NaiveDate,
    pub reason: String,
    pub amount: Amount,
}

/// `plan.written_off` (API.md §14): `amount` is the total written off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanWrittenOff {
    pub written_off_on: NaiveDate,
    pub reason: String,
    pub reference: String,
    pub booked_on: NaiveDate,
    pub amount: Amount,
    #[serde(flatten)]
    pub split: Split,
}

/// `recovery.recorded` (API.md §14): what was collected after the write-off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryRecorded {
    pub recovery_id: String,
    pub reference: String,
    pub amount: Amount,
    pub paid_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub recovered: Amount,
    pub recoverable: Amount,
}

/// `return.requested` (API.md §13): the owner asks to return the device; the plan is frozen until
/// the bank decides. `amount` is `principal_to_bank`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReturnRequested {
    pub return_id: String,
    pub reference: String,
    pub reason: String,
    pub returned_on: NaiveDate,
    pub amount: Amount,
    #[serde(flatten)]
    pub amounts: ReturnAmounts,
}

/// `return.completed` (API.md §13): the plan and order are `returned`, what was unpaid waived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReturnCompleted {
    pub return_id: String,
    pub reference: String,
    pub completed_on: NaiveDate,
    pub booked_on: NaiveDate,
    pub amount: Amount,
    #[serde(flatten)]
    pub amounts: ReturnAmounts,
}

/// `return.rejected` (API.md §13): nothing changed but the return; the plan runs on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReturnRejected {
    pub return_id: String,
    pub reference: String,
    pub reason: String,
    pub amount: Amount,
}

/// `reconciliation.ready` and `settlement.ready` (API.md §15): a closed date's report is stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportReady {
    pub business_date: NaiveDate,
    pub sha256_json: String,
    pub sha256_csv: String,
    pub movements: i64,
}

macro_rules! notices {
    ($($(#[$doc:meta])* $variant:ident($fields:ty) = $name:tt to $audience:ident;)+) => {
        /// Every notice the service sends, tagged by its type. Serialized it reads as the feed
        /// shows it: `{"type": …, "data": {…}}`.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Notice {
            $($(#[$doc])* #[serde(rename = $name)] $variant(About<$fields>),)+
        }

        impl Notice {
            /// Every type, as stored in `notices.type` and sent as `type`.
            pub const TYPES: &'static [&'static str] = &[$($name,)+];

            /// The notice's type, as stored in `notices.type` and sent as `type`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Notice::$variant(_) => $name,)+
                }
            }

            /// Who this type of notice goes to.
            pub fn audience(&self) -> Audience {
                match self {
                    $(Notice::$variant(_) => Audience::$audience,)+
                }
            }

            fn to(&self) -> &Recipient {
                match self {
                    $(Notice::$variant(about) => &about.to,)+
                }
            }

            /// The notice's `data`: the order's ids and the payload's fields, one JSON object.
            pub fn data(&self) -> Value {
                let data = match self {
                    $(Notice::$variant(about) => serde_json::to_value(about),)+
                };
                data.expect("a notice's data is strings, numbers and objects keyed by field names")
            }
        }
    };
}

notices! {
    FundingRequested(FundingRequested) = "funding.requested" to Bank;
    PlanOpened(PlanOpened) = "plan.opened" to Bank;
    RepaymentRecorded(RepaymentRecorded) = "repayment.recorded" to Bank;
    InstallmentOverdue(InstallmentOverdue) = "installment.overdue" to Bank;
    DefaultCompensated(DefaultCompensated) = "default.compensated" to Bank;
    DefaultUncovered(DefaultUncovered) = "default.uncovered" to Bank;
    PlanSettled(PlanSettled) = "plan.settled" to Bank;
    PlanAccelerated(PlanAccelerated) = "plan.accelerated" to Bank;
    OrderCancelled(OrderCancelled) = "order.cancelled" to Bank;
    OrderExpired(OrderExpired) = "order.expired" to Bank;
    HoldPlaced(HoldMoved) = "hold.placed" to Provider;
    HoldReleased(HoldMoved) = "hold.released" to Provider;
    HoldConverted(HoldConverted) = "hold.converted" to Provider;
    HoldVoided(HoldVoided) = "hold.voided" to Provider;
    OrderUpdated(OrderUpdated) = "order.updated" to Seller;
    HoldRequested(HoldRequested) = "hold.requested" to Provider;
    PlanWrittenOff(PlanWrittenOff) = "plan.written_off" to Bank;
    RecoveryRecorded(RecoveryRecorded) = "recovery.recorded" to Bank;
    ReconciliationReady(ReportReady) = "reconciliation.ready" to Bank;
    SettlementReady(ReportReady) = "settlement.ready" to Provider;
    ReturnRequested(ReturnRequested) = "return.requested" to Bank;
    ReturnCompleted(ReturnCompleted) = "return.completed" to Bank;
    ReturnRejected(ReturnRejected) = "return.rejected" to Bank;
}

impl Notice {
    /// Whom the notice is for.
    ///
    /// # Panics
    /// When that recipient is not of the type's audience: a builder's mistake, which every
    /// notice type's test would meet.
    pub fn recipient(&self) -> &Recipient {
        let to = self.to();
        assert!(self.audience().admits(to), "{} goes to a {:?}, not to a {}", self.kind(), self.audience(), to.kind());
        to
    }

    /// `order.updated` to the order's seller: the one place its payload is built.
    pub fn order_updated(refs: &OrderRefs, seller: Recipient, out_order_no: &str, status: OrderStatus) -> Notice {
        Notice::OrderUpdated(refs.about(seller, OrderUpdated { out_order_no: out_order_no.to_string(), status }))
    }

    /// `hold.voided` to the hold's provider: the one place its payload is built.
    pub fn hold_voided(refs: &OrderRefs, provider_id: &str, amount: Amount, reason: VoidReason) -> Notice {
        Notice::HoldVoided(refs.about(Recipient::Provider(provider_id.to_string()), HoldVoided { amount, remaining: Amount::ZERO, reason }))
    }

    /// A closed date's report stored, to its bank (`reconciliation.ready`) or provider
    /// (`settlement.ready`): about no order, so with no order ids.
    pub fn report_ready(to: Recipient, ready: ReportReady) -> Notice {
        match to {
            Recipient::Bank(_) => Notice::ReconciliationReady(About { to, refs: None, fields: ready }),
            _ => Notice::SettlementReady(About { to, refs: None, fields: ready }),
        }
    }

    /// What a `hold.*` notice other than `hold.converted` says, to the hold's provider.
    pub fn hold_moved(refs: &OrderRefs, provider_id: &str, amount: Amount, remaining: Amount) -> About<HoldMoved> {
        refs.about(Recipient::Provider(provider_id.to_string()), HoldMoved { amount, remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(s: &str) -> Amount {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn unfunded() -> OrderRefs {
        OrderRefs::unfunded("ord_1", "hold_1", "line_1")
    }

    fn funded() -> OrderRefs {
        unfunded().funded("plan_1", "L1")
    }

    fn bank() -> Recipient {
        Recipient::Bank("bk".into())
    }

    fn ret_amounts() -> ReturnAmounts {
        ReturnAmounts {
            principal_to_bank: a("3000.00"),
            repayments_to_refund: a("275.04"),
            interest_waived: a("255.46"),
            fee_waived: a("0.00"),
            penalty_waived: a("0.00"),
            down_payment_to_refund: a("999.00"),
            hold_to_void: a("3025.42"),
        }
    }

    fn split() -> Split {
        Split { principal: a("250.00"), interest: a("20.00"), fee: a("5.00"), penalty: a("0.35") }
    }

    /// The notice serialized, its type and data as recorded, and its recipient.
    fn sent(n: &Notice) -> (Value, &'static str, Value, (&'static str, String)) {
        let to = n.recipient();
        (serde_json::to_value(n).unwrap(), n.kind(), n.data(), (to.kind(), to.id().to_string()))
    }

    /// Each notice serializes exactly as the `json!` literal that built it before it had a type:
    /// the order's ids (the plan's once funded), then the type's own fields.
    #[test]
    fn every_type_sends_the_json_it_sent_before() {
        let unfunded_ids = json!({ "order_id": "ord_1", "hold_id": "hold_1", "credit_line_id": "line_1" });
        let funded_ids =
            json!({ "order_id": "ord_1", "plan_id": "plan_1", "hold_id": "hold_1", "credit_line_id": "line_1", "loan_no": "L1" });
        let no_ids = json!({});
        let deadline: DateTime<Utc> = "2027-01-07T04:00:00Z".parse().unwrap();
        let provider = || Recipient::Provider("wld".into());
        let cases: Vec<(Notice, (&str, &str), &Value, Value)> = vec![
            (
                Notice::HoldRequested(unfunded().about(
                    Recipient::Provider("wld".into()),
                    HoldRequested {
                        amount: a("3300.46"),
                        confirm_deadline: deadline,
                        consent: Some(json!({"method": "provider_app", "reference": "c-1"})),
                    },
                )),
                ("provider", "wld"),
                &unfunded_ids,
                json!({ "amount": "3300.46", "confirm_deadline": "2027-01-07T04:00:00Z",
                        "consent": {"method": "provider_app", "reference": "c-1"} }),
            ),
            (
                Notice::FundingRequested(unfunded().about(
                    bank(),
                    FundingRequested {
                        amount: a("3000.00"),
                        principal: a("3000.00"),
                        term_months: 12,
                        apr_irr: "0.1956".into(),
                        funding_deadline: deadline,
                    },
                )),
                ("bank", "bk"),
                &unfunded_ids,
                json!({ "amount": "3000.00", "principal": "3000.00", "term_months": 12, "apr_irr": "0.1956",
                        "funding_deadline": "2027-01-07T04:00:00Z" }),
            ),
            (
                Notice::HoldPlaced(Notice::hold_moved(&unfunded(), "wld", a("3300.00"), a("3300.00"))),
                ("provider", "wld"),
                &unfunded_ids,
                json!({ "amount": "3300.00", "remaining": "3300.00" }),
            ),
            (
                Notice::order_updated(&unfunded(), Recipient::seller("store", "st"), "POS-1", OrderStatus::AwaitingFunding),
                ("store", "st"),
                &unfunded_ids,
                json!({ "out_order_no": "POS-1", "status": "awaiting_funding" }),
            ),
            (
                Notice::order_updated(&funded(), Recipient::seller("partner", "pa"), "POS-1", OrderStatus::Active),
                ("partner", "pa"),
                &funded_ids,
                json!({ "out_order_no": "POS-1", "status": "active" }),
            ),
            (
                Notice::OrderCancelled(unfunded().about(bank(), OrderCancelled { amount: a("3000.00"), reason: None })),
                ("bank", "bk"),
                &unfunded_ids,
                json!({ "amount": "3000.00", "reason": null }),
            ),
            (
                Notice::OrderCancelled(
                    unfunded().about(bank(), OrderCancelled { amount: a("3000.00"), reason: Some("changed mind".into()) }),
                ),
                ("bank", "bk"),
                &unfunded_ids,
                json!({ "amount": "3000.00", "reason": "changed mind" }),
            ),
            (
                Notice::hold_voided(&unfunded(), "wld", a("3300.00"), VoidReason::Cancelled),
                ("provider", "wld"),
                &unfunded_ids,
                json!({ "amount": "3300.00", "remaining": "0.00", "reason": "cancelled" }),
            ),
            (
                Notice::OrderExpired(unfunded().about(bank(), OrderExpired { amount: a("3000.00"), principal: a("3000.00") })),
                ("bank", "bk"),
                &unfunded_ids,
                json!({ "amount": "3000.00", "principal": "3000.00" }),
            ),
            (
                Notice::PlanOpened(
                    funded().about(bank(), PlanOpened { amount: a("3000.00"), principal: a("3000.00"), funded_on: d("2027-01-06") }),
                ),
                ("bank", "bk"),
                &funded_ids,
                json!({ "amount": "3000.00", "principal": "3000.00", "funded_on": "2027-01-06" }),
            ),
            (
                Notice::HoldReleased(Notice::hold_moved(&funded(), "wld", a("250.00"), a("3050.00"))),
                ("provider", "wld"),
                &funded_ids,
                json!({ "amount": "250.00", "remaining": "3050.00" }),
            ),
            (
                Notice::HoldConverted(
                    funded().about(provider(), HoldConverted { amount: a("275.35"), remaining: a("3024.65"), installment_seq: 1 }),
                ),
                ("provider", "wld"),
                &funded_ids,
                json!({ "amount": "275.35", "remaining": "3024.65", "installment_seq": 1 }),
            ),
            (
                Notice::DefaultCompensated(
                    funded().about(bank(), DefaultCompensated { installment_seq: 1, amount: a("275.35"), split: split() }),
                ),
                ("bank", "bk"),
                &funded_ids,
                json!({ "principal": "250.00", "interest": "20.00", "fee": "5.00", "penalty": "0.35",
                        "installment_seq": 1, "amount": "275.35" }),
            ),
            (
                Notice::DefaultUncovered(
                    funded().about(bank(), DefaultUncovered { installment_seq: 2, shortfall: a("12.34"), amount: a("12.34") }),
                ),
                ("bank", "bk"),
                &funded_ids,
                json!({ "installment_seq": 2, "shortfall": "12.34", "amount": "12.34" }),
            ),
            (
                Notice::PlanSettled(funded().about(bank(), PlanSettled { amount: a("3000.00") })),
                ("bank", "bk"),
                &funded_ids,
                json!({ "amount": "3000.00" }),
            ),
            (
                Notice::InstallmentOverdue(
                    funded().about(bank(), InstallmentOverdue { installment_seq: 1, due_on: d("2027-02-06"), amount: a("275.35") }),
                ),
                ("bank", "bk"),
                &funded_ids,
                json!({ "installment_seq": 1, "due_on": "2027-02-06", "amount": "275.35" }),
            ),
            (
                Notice::RepaymentRecorded(funded().about(
                    bank(),
                    RepaymentRecorded {
                        repayment_id: "rep_1".into(),
                        reference: "R1".into(),
                        amount: a("275.35"),
                        paid_on: d("2027-02-08"),
                        booked_on: d("2027-02-08"),
                        hold_released: a("250.00"),
                        plan_status: PlanStatus::Active,
                        split: split(),
                    },
                )),
                ("bank", "bk"),
                &funded_ids,
                json!({ "repayment_id": "rep_1", "reference": "R1", "amount": "275.35", "paid_on": "2027-02-08",
                        "booked_on": "2027-02-08", "hold_released": "250.00", "plan_status": "active",
                        "principal": "250.00", "interest": "20.00", "fee": "5.00", "penalty": "0.35" }),
            ),
            (
                Notice::PlanAccelerated(
                    funded().about(bank(), PlanAccelerated { as_of: d("2027-03-01"), reason: "fraud".into(), amount: a("3045.00") }),
                ),
                ("bank", "bk"),
                &funded_ids,
                json!({ "as_of": "2027-03-01", "reason": "fraud", "amount": "3045.00" }),
            ),
            (
                Notice::PlanWrittenOff(funded().about(
                    bank(),
                    PlanWrittenOff {
                        written_off_on: d("2027-09-01"),
                        reason: "aged".into(),
                        reference: "eod-2027-09-01".into(),
                        booked_on: d("2027-09-01"),
                        amount: a("275.35"),
                        split: split(),
                    },
                )),
                ("bank", "bk"),
                &funded_ids,
                json!({ "written_off_on": "2027-09-01", "reason": "aged", "reference": "eod-2027-09-01", "booked_on": "2027-09-01",
                        "amount": "275.35", "principal": "250.00", "interest": "20.00", "fee": "5.00", "penalty": "0.35" }),
            ),
            (
                Notice::RecoveryRecorded(funded().about(
                    bank(),
                    RecoveryRecorded {
                        recovery_id: "rcv_1".into(),
                        reference: "R-1".into(),
                        amount: a("100.00"),
                        paid_on: d("2027-09-02"),
                        booked_on: d("2027-09-03"),
                        recovered: a("100.00"),
                        recoverable: a("175.35"),
                    },
                )),
                ("bank", "bk"),
                &funded_ids,
                json!({ "recovery_id": "rcv_1", "reference": "R-1", "amount": "100.00", "paid_on": "2027-09-02", "booked_on": "2027-09-03",
                        "recovered": "100.00", "recoverable": "175.35" }),
            ),
            (
                Notice::ReturnRequested(funded().about(
                    bank(),
                    ReturnRequested {
                        return_id: "ret_1".into(),
                        reference: "R-1".into(),
                        reason: "no_reason".into(),
                        returned_on: d("2027-03-01"),
                        amount: a("3000.00"),
                        amounts: ret_amounts(),
                    },
                )),
                ("bank", "bk"),
                &funded_ids,
                json!({ "return_id": "ret_1", "reference": "R-1", "reason": "no_reason", "returned_on": "2027-03-01", "amount": "3000.00",
                        "principal_to_bank": "3000.00", "repayments_to_refund": "275.04", "interest_waived": "255.46", "fee_waived": "0.00",
                        "penalty_waived": "0.00", "down_payment_to_refund": "999.00", "hold_to_void": "3025.42" }),
            ),
            (
                Notice::ReturnCompleted(funded().about(
                    bank(),
                    ReturnCompleted {
                        return_id: "ret_1".into(),
                        reference: "R-1".into(),
                        completed_on: d("2027-03-02"),
                        booked_on: d("2027-03-02"),
                        amount: a("3000.00"),
                        amounts: ret_amounts(),
                    },
                )),
                ("bank", "bk"),
                &funded_ids,
                json!({ "return_id": "ret_1", "reference": "R-1", "completed_on": "2027-03-02", "booked_on": "2027-03-02", "amount": "3000.00",
                        "principal_to_bank": "3000.00", "repayments_to_refund": "275.04", "interest_waived": "255.46", "fee_waived": "0.00",
                        "penalty_waived": "0.00", "down_payment_to_refund": "999.00", "hold_to_void": "3025.42" }),
            ),
            (
                Notice::ReturnRejected(funded().about(
                    bank(),
                    ReturnRejected { return_id: "ret_1".into(), reference: "R-1".into(), reason: "scratched".into(), amount: a("3000.00") },
                )),
                ("bank", "bk"),
                &funded_ids,
                json!({ "return_id": "ret_1", "reference": "R-1", "reason": "scratched", "amount": "3000.00" }),
            ),
            (
                Notice::report_ready(
                    bank(),
                    ReportReady { business_date: d("2027-09-01"), sha256_json: "a".repeat(64), sha256_csv: "b".repeat(64), movements: 3 },
                ),
                ("bank", "bk"),
                &no_ids,
                json!({ "business_date": "2027-09-01", "sha256_json": "a".repeat(64), "sha256_csv": "b".repeat(64), "movements": 3 }),
            ),
            (
                Notice::report_ready(
                    provider(),
                    ReportReady { business_date: d("2027-09-01"), sha256_json: "c".repeat(64), sha256_csv: "d".repeat(64), movements: 0 },
                ),
                ("provider", "wld"),
                &no_ids,
                json!({ "business_date": "2027-09-01", "sha256_json": "c".repeat(64), "sha256_csv": "d".repeat(64), "movements": 0 }),
            ),
        ];
        let mut types: Vec<&str> = Vec::new();
        for (notice, (to_kind, to_id), ids, fields) in &cases {
            let (whole, kind, data, to) = sent(notice);
            let mut expected = ids.as_object().unwrap().clone();
            expected.extend(fields.as_object().unwrap().clone());
            let expected = Value::Object(expected);
            assert_eq!(data, expected, "{kind}");
            assert_eq!(whole, json!({ "type": kind, "data": expected }), "{kind}: tagged as the feed shows it");
            assert_eq!(to, (*to_kind, to_id.to_string()), "{kind}");
            types.push(kind);
        }
        types.sort_unstable();
        types.dedup();
        let mut all = Notice::TYPES.to_vec();
        all.sort_unstable();
        assert_eq!(types, all, "every type is tested");
    }

    #[test]
    fn the_types_are_those_of_the_contract() {
        // API.md §7's table, version 1 types.
        let mut types = Notice::TYPES.to_vec();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "default.compensated",
                "default.uncovered",
                "funding.requested",
                "hold.converted",
                "hold.placed",
                "hold.released",
                "hold.requested",
                "hold.voided",
                "installment.overdue",
                "order.cancelled",
                "order.expired",
                "order.updated",
                "plan.accelerated",
                "plan.opened",
                "plan.settled",
                "repayment.recorded",
                // v2, §14
                "plan.written_off",
                "recovery.recorded",
                // v2, §15
                "reconciliation.ready",
                "settlement.ready",
                // v2, §13
                "return.requested",
                "return.completed",
                "return.rejected",
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
    }

    #[test]
    #[should_panic(expected = "hold.placed goes to a Provider, not to a bank")]
    fn a_notice_goes_only_to_its_audience() {
        Notice::HoldPlaced(unfunded().about(bank(), HoldMoved { amount: a("1.00"), remaining: a("1.00") })).recipient();
    }

    #[test]
    fn an_orders_seller_is_its_store_else_its_partner() {
        assert_eq!(Recipient::seller_of(Some("st"), None), Some(Recipient::Store("st".into())));
        assert_eq!(Recipient::seller_of(None, Some("pa")), Some(Recipient::Partner("pa".into())));
        assert_eq!(Recipient::seller_of(None, None), None);
    }

    #[test]
    #[should_panic(expected = "not by a bank")]
    fn a_seller_is_a_store_or_a_partner() {
        Recipient::seller("bank", "bk");
    }
}

//! Every status the service stores and answers (API.md §3-§7), each an enum whose text — on the
//! wire, in the database (checked text columns, sql/V2) and in query filters — is stated once,
//! in the `statuses!` list below. Serde, `as_str`, `FromStr` and the database mapping
//! (`db::status`) all read that one list, so a status cannot be spelled two ways.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A text that names no status of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus {
    /// Which kind of status was asked for (`order status`, …).
    pub kind: &'static str,
    pub text: String,
}

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} names no {}", self.text, self.kind)
    }
}

impl std::error::Error for UnknownStatus {}

macro_rules! statuses {
    ($(
        $(#[$doc:meta])*
        $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }
    )+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in the order API.md lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Their texts, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The text stored and answered.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value named exactly `text` (no case folding, no trimming).
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(text: &str) -> Result<$name, UnknownStatus> {
                $name::parse(text).ok_or_else(|| UnknownStatus { kind: $what, text: text.to_string() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

statuses! {
    /// An order's status (API.md §4). It follows its plan once funded.
    OrderStatus ("order status") {
        AwaitingFunding = "awaiting_funding",
        Active = "active",
        Settled = "settled",
        Defaulted = "defaulted",
        Cancelled = "cancelled",
        Rejected = "rejected",
        Expired = "expired",
        /// v2 (API.md §12): placed on a line whose provider must confirm the hold first; not
        /// yet shown to its bank.
        AwaitingHoldConfirmation = "awaiting_hold_confirmation",
        /// API.md §14: its plan was written off.
        WrittenOff = "written_off",
        /// API.md §13: its device was returned, its plan with it.
        Returned = "returned",
    }

    /// An installment plan's status (API.md §5).
    PlanStatus ("plan status") {
        Active = "active",
        Settled = "settled",
        Defaulted = "defaulted",
        /// API.md §14: what the hold could not cover was written off; only recoveries follow.
        WrittenOff = "written_off",
        /// API.md §13: its device was returned; nothing more is owed.
        Returned = "returned",
    }

    /// A hold's status (API.md §4): `closed` once nothing remains by release or conversion,
    /// `voided` when its order was cancelled, rejected or expired.
    HoldStatus ("hold status") {
        Active = "active",
        Closed = "closed",
        Voided = "voided",
        /// v2 (API.md §12): placed, counted in its line's held, awaiting its provider's
        /// confirmation until its `confirm_deadline`.
        Pending = "pending",
    }

    /// A credit line's status as its provider registers it and the database keeps it (API.md §3);
    /// what a line reads, `expired` included, is [`LineReading`].
    LineStatus ("credit line status") {
        Active = "active",
        Frozen = "frozen",
        /// Final: the line cannot be registered again.
        Closed = "closed",
    }

    /// What a credit line reads in answers (API.md §3): its stored status, or `expired` once its
    /// `expires_on` is before today (a frozen line's too; closed stays closed).
    LineReading ("credit line status") {
        Active = "active",
        Frozen = "frozen",
        Closed = "closed",
        Expired = "expired",
    }

    /// What an installment shows as its `status` (API.md §5).
    InstallmentStatus ("installment status") {
        /// Something is owed and it is not past due.
        Pending = "pending",
        /// Something is owed and `due_on` is before the date asked about.
        Overdue = "overdue",
        /// Nothing is owed and nothing was forgiven.
        Paid = "paid",
        /// Nothing is owed and something was forgiven.
        Waived = "waived",
        /// API.md §14: what it still owed was written off with its plan.
        WrittenOff = "written_off",
    }

    /// Where a notice's webhook delivery stands (API.md §7).
    NoticeState ("notice delivery state") {
        Pending = "pending",
        Delivered = "delivered",
        Dead = "dead",
        /// Its recipient has no webhook URL: it reads the notice from its feed.
        PullOnly = "pull_only",
    }

    /// Why a hold was voided (API.md §12): every voided hold has one, every `hold.voided` notice
    /// says it as `data.reason`.
    VoidReason ("void reason") {
        /// The owner (or admin) cancelled the unfunded order.
        Cancelled = "cancelled",
        /// The bank's funding decision was a rejection.
        Rejected = "rejected",
        /// Nobody funded the order before its funding deadline.
        Expired = "expired",
        /// The provider declined to freeze the line.
        Declined = "declined",
        /// The provider did not confirm before the hold's confirm deadline.
        ConfirmationTimeout = "confirmation_timeout",
        /// The device was returned (API.md §13).
        Returned = "returned",
    }

    /// Whether a provider confirms each hold on its side before it counts as placed (API.md §12).
    HoldConfirmation ("hold confirmation mode") {
        /// Version 1: the hold is placed when the order's transaction commits.
        None = "none",
        /// The hold stays `pending` until the provider confirms it.
        Required = "required",
    }

    /// Where a device return stands (API.md §13).
    ReturnStatus ("return status") {
        /// Asked by the owner: the plan is frozen until the bank decides.
        Requested = "requested",
        Completed = "completed",
        Rejected = "rejected",
    }

    /// Why a provider declined a pending hold (API.md §12).
    DeclineReason ("decline reason") {
        CustomerDeclined = "customer_declined",
        RiskRefused = "risk_refused",
        InsufficientLimit = "insufficient_limit",
        Other = "other",
    }
}

impl From<PlanStatus> for OrderStatus {
    /// A funded order follows its plan (API.md §4).
    fn from(status: PlanStatus) -> OrderStatus {
        match status {
            PlanStatus::Active => OrderStatus::Active,
            PlanStatus::Settled => OrderStatus::Settled,
            PlanStatus::Defaulted => OrderStatus::Defaulted,
            PlanStatus::WrittenOff => OrderStatus::WrittenOff,
            PlanStatus::Returned => OrderStatus::Returned,
        }
    }
}

impl LineStatus {
    /// What the line reads on `today` when it expires on `expires_on`.
    pub fn reading(self, expires_on: chrono::NaiveDate, today: chrono::NaiveDate) -> LineReading {
        match self {
            LineStatus::Closed => LineReading::Closed,
            _ if expires_on < today => LineReading::Expired,
            LineStatus::Active => LineReading::Active,
            LineStatus::Frozen => LineReading::Frozen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// Serde, `as_str`, `parse` and `Display` agree on every value of a status type.
    fn agree<S>(all: &[S], names: &[&str])
    where
        S: Copy + PartialEq + fmt::Debug + fmt::Display + Serialize + for<'de> Deserialize<'de> + FromStr<Err = UnknownStatus>,
    {
        assert_eq!(all.len(), names.len());
        for (status, name) in all.iter().zip(names) {
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(name), "{status:?}");
            assert_eq!(serde_json::from_value::<S>(serde_json::json!(name)).unwrap(), *status);
            assert_eq!(status.to_string(), *name);
            assert_eq!(name.parse::<S>().as_ref(), Ok(status));
        }
        for wrong in ["", "Active", " active", "active ", "AWAITING_FUNDING", "awaiting-funding", "unknown"] {
            if !names.contains(&wrong) {
                assert!(wrong.parse::<S>().is_err(), "{wrong:?} names nothing");
            }
        }
    }

    #[test]
    fn every_status_is_spelled_one_way() {
        agree(OrderStatus::ALL, OrderStatus::NAMES);
        agree(PlanStatus::ALL, PlanStatus::NAMES);
        agree(HoldStatus::ALL, HoldStatus::NAMES);
        agree(LineStatus::ALL, LineStatus::NAMES);
        agree(LineReading::ALL, LineReading::NAMES);
        agree(InstallmentStatus::ALL, InstallmentStatus::NAMES);
        agree(NoticeState::ALL, NoticeState::NAMES);
        agree(VoidReason::ALL, VoidReason::NAMES);
        agree(HoldConfirmation::ALL, HoldConfirmation::NAMES);
        agree(DeclineReason::ALL, DeclineReason::NAMES);
        agree(ReturnStatus::ALL, ReturnStatus::NAMES);
    }

    #[test]
    fn the_texts_are_those_of_the_contract_and_the_schema() {
        // API.md §3-§7 and the CHECK constraints of sql/V2__origination.sql.
        assert_eq!(
            OrderStatus::NAMES,
            [
                "awaiting_funding",
                "active",
                "settled",
                "defaulted",
                "cancelled",
                "rejected",
                "expired",
                "awaiting_hold_confirmation",
                "written_off",
                "returned"
            ]
        );
        assert_eq!(PlanStatus::NAMES, ["active", "settled", "defaulted", "written_off", "returned"]);
        assert_eq!(HoldStatus::NAMES, ["active", "closed", "voided", "pending"]);
        assert_eq!(LineStatus::NAMES, ["active", "frozen", "closed"]);
        assert_eq!(LineReading::NAMES, ["active", "frozen", "closed", "expired"]);
        assert_eq!(InstallmentStatus::NAMES, ["pending", "overdue", "paid", "waived", "written_off"]);
        assert_eq!(NoticeState::NAMES, ["pending", "delivered", "dead", "pull_only"]);
        // API.md §12 and the CHECK of sql/V19__void_reason.sql.
        assert_eq!(VoidReason::NAMES, ["cancelled", "rejected", "expired", "declined", "confirmation_timeout", "returned"]);
        let err = "active ".parse::<OrderStatus>().unwrap_err();
        assert_eq!(err.to_string(), "\"active \" names no order status");
    }

    #[test]
    fn an_order_follows_its_plan() {
        for plan in PlanStatus::ALL {
            assert_eq!(OrderStatus::from(*plan).as_str(), plan.as_str());
        }
    }

    #[test]
    fn a_line_reads_expired_after_its_expiry_unless_closed() {
        let d = |day| NaiveDate::from_ymd_opt(2027, 3, day).unwrap();
        assert_eq!(LineStatus::Active.reading(d(10), d(10)), LineReading::Active);
        assert_eq!(LineStatus::Active.reading(d(9), d(10)), LineReading::Expired);
        assert_eq!(LineStatus::Frozen.reading(d(10), d(10)), LineReading::Frozen);
        assert_eq!(LineStatus::Frozen.reading(d(9), d(10)), LineReading::Expired);
        assert_eq!(LineStatus::Closed.reading(d(9), d(10)), LineReading::Closed);
    }
}

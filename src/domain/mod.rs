//! The pure domain layer of creditphone: money, identity parsing and schedule
//! arithmetic. No I/O and no floating point; every value type that exists is
//! valid ("parse, don't validate"). See API.md §1, §3, §4 and §9.

pub mod aging;
pub mod dates;
pub mod eod_run;
pub mod hold;
pub mod identity;
pub mod installment;
pub mod irr;
pub mod money;
pub mod notice;
#[cfg(test)]
mod parser_properties;
pub mod partner;
pub mod placement;
pub mod returns;
pub mod schedule;
pub mod settlement;
pub mod status;
#[cfg(test)]
mod test_support;
pub mod write_off;

pub use dates::{DateError, SHANGHAI, add_months_clamped, parse_date, shanghai_date};
pub use hold::{HoldRatio, hold_amount, hold_target};
pub use identity::{IdNumber, IdNumberError, Imei, ImeiError, Phone, PhoneError, RegionCode, RegionError, RegionPattern};
pub use installment::{
    AllocError, Allocation, AllocationLine, InstallmentState, InstallmentStatus, Split, allocate, bring_all_up_to, compensate, payoff,
    unpaid_scheduled_total, waive_beyond_payoff,
};
pub use irr::{apr_irr, format_apr, monthly_irr, schedule_apr_irr, term_apr_unrounded};
pub use money::{Amount, AmountError, Rate, RateError};
pub use partner::{IneligibleReason, eligibility};
pub use schedule::{Pricing, PricingError, ScheduleError, ScheduledInstallment, build_schedule, total_repayable};

//! Services own the transaction: they call `db` and `domain` and return views or `ApiError`s.

pub mod credit_lines;
pub mod eod;
pub mod lifecycle;
pub mod notices;
pub mod order_notices;
pub mod orders;
pub mod plans;
pub mod reports;
pub mod setup;
pub mod verify;

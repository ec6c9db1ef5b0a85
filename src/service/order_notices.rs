//! The notices about an order (API.md §7), as the services build them from stored rows. Their
//! types, payloads and ids are [`crate::domain::notice`]'s; this adds what reads them off an
//! order.

use crate::db::orders::Order;
pub use crate::domain::notice::{OrderRefs, PlanRefs};

impl OrderRefs {
    /// The stored order, as it is before funding (every state it can leave without a plan).
    pub fn of_order(o: &Order) -> OrderRefs {
        OrderRefs::unfunded(&o.id, &o.hold_id, &o.credit_line_id)
    }
}

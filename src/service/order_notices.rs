//! The notices about an order (API.md §7). Every one of them is built from the order's
//! [`OrderRefs`] — the ids of the order, its hold, its credit line and, once funded, its plan and
//! loan number — so that no notice can leave out an id of an object that exists (issue 15: each
//! call site used to spell its own subset). A notice's own fields (amounts, dates, seq…) come
//! after, and may not set those ids themselves.

use crate::db::notices::NewNotice;
use crate::db::orders::Order;
use serde_json::{Map, Value, json};

/// The ids `OrderRefs` fills in every notice about an order.
pub const REF_KEYS: [&str; 5] = ["order_id", "plan_id", "hold_id", "credit_line_id", "loan_no"];

/// The plan's ids, which exist together from funding on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRefs {
    pub plan_id: String,
    pub loan_no: String,
}

/// The ids of the objects an order's notices are about, each that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRefs {
    pub order_id: String,
    pub hold_id: String,
    pub credit_line_id: String,
    /// `None` until the order is funded.
    pub plan: Option<PlanRefs>,
}

impl OrderRefs {
    /// An order not (yet) funded: its hold and credit line exist from placement on.
    pub fn unfunded(order_id: &str, hold_id: &str, credit_line_id: &str) -> OrderRefs {
        OrderRefs { order_id: order_id.to_string(), hold_id: hold_id.to_string(), credit_line_id: credit_line_id.to_string(), plan: None }
    }

    /// The stored order, as it is before funding (every state it can leave without a plan).
    pub fn of_order(o: &Order) -> OrderRefs {
        OrderRefs::unfunded(&o.id, &o.hold_id, &o.credit_line_id)
    }

    /// The same order once its plan is opened.
    pub fn funded(self, plan_id: &str, loan_no: &str) -> OrderRefs {
        OrderRefs { plan: Some(PlanRefs { plan_id: plan_id.to_string(), loan_no: loan_no.to_string() }), ..self }
    }

    /// The ids as notice data: the plan's only once it exists (absent rather than null before).
    fn data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("order_id".into(), json!(self.order_id));
        data.insert("hold_id".into(), json!(self.hold_id));
        data.insert("credit_line_id".into(), json!(self.credit_line_id));
        if let Some(plan) = &self.plan {
            data.insert("plan_id".into(), json!(plan.plan_id));
            data.insert("loan_no".into(), json!(plan.loan_no));
        }
        data
    }

    /// A notice about this order: the ids, then `fields` (a JSON object that sets none of them).
    ///
    /// # Panics
    /// If `fields` is not an object or sets one of [`REF_KEYS`]: a builder's mistake, which every
    /// notice type's test would meet.
    pub fn notice(&self, kind: &'static str, recipient_kind: &'static str, recipient_id: &str, fields: Value) -> NewNotice {
        let Value::Object(fields) = fields else { panic!("{kind}: a notice's fields are a JSON object") };
        let ids = self.data();
        let mut data = ids.clone();
        for (key, value) in fields {
            assert!(!REF_KEYS.contains(&key.as_str()), "{kind}: {key} comes from the order's refs, not from the notice's fields");
            data.insert(key, value);
        }
        assert!(ids.iter().all(|(key, id)| data.get(key) == Some(id)), "{kind}: every id of the order is carried as it is");
        NewNotice { kind, recipient_kind, recipient_id: recipient_id.to_string(), data: Value::Object(data) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_first_and_the_plans_once_funded() {
        let refs = OrderRefs::unfunded("ord_1", "hold_1", "line_1");
        let placed = refs.notice("hold.placed", "provider", "wld", json!({ "amount": "1.00" }));
        assert_eq!(placed.data, json!({ "order_id": "ord_1", "hold_id": "hold_1", "credit_line_id": "line_1", "amount": "1.00" }));
        assert_eq!((placed.kind, placed.recipient_kind, placed.recipient_id.as_str()), ("hold.placed", "provider", "wld"));
        let funded = refs.funded("plan_1", "L1").notice("order.updated", "store", "st", json!({ "status": "active" }));
        assert_eq!(
            funded.data,
            json!({ "order_id": "ord_1", "plan_id": "plan_1", "hold_id": "hold_1", "credit_line_id": "line_1", "loan_no": "L1",
                    "status": "active" })
        );
    }

    #[test]
    #[should_panic(expected = "comes from the order's refs")]
    fn fields_may_not_set_an_id() {
        OrderRefs::unfunded("ord_1", "hold_1", "line_1").notice("order.updated", "store", "st", json!({ "hold_id": "hold_2" }));
    }
}

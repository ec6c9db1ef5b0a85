//! Golden schedules (shared/vectors/schedules.json) reproduced to the fen:
//! every due date and component, each installment's total, total_repayable,
//! apr_irr and hold_amount at the vector's hold_ratio.

use chrono::NaiveDate;
use creditphone::domain::{
    Amount, HoldRatio, Pricing, Rate, build_schedule, format_apr, hold_amount, parse_date, schedule_apr_irr, term_apr_unrounded,
    total_repayable,
};
use serde::Deserialize;

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/schedules.json");

/// One vector; unknown fields are refused so a new field cannot go unchecked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    principal: String,
    term_months: u32,
    pricing: String,
    rate: String,
    funded_on: String,
    hold_ratio: String,
    apr_irr: String,
    hold_amount: String,
    total_repayable: String,
    installments: Vec<VectorInstallment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorInstallment {
    seq: u32,
    due_on: String,
    principal: String,
    interest: String,
    fee: String,
    total: String,
}

fn load_vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS_PATH).unwrap_or_else(|e| panic!("read {VECTORS_PATH}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {VECTORS_PATH}: {e}"))
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap_or_else(|e| panic!("amount {text:?}: {e}"))
}

fn date(text: &str) -> NaiveDate {
    parse_date(text).unwrap_or_else(|e| panic!("date {text:?}: {e}"))
}

#[test]
fn vectors_file_is_not_empty() {
    assert!(load_vectors().len() >= 7, "the shared vectors hold at least the 7 known schedules");
}

#[test]
fn every_vector_reproduces_to_the_fen() {
    for (index, vector) in load_vectors().iter().enumerate() {
        let name = format!("vector {index} ({} {} {} months at {})", vector.principal, vector.pricing, vector.term_months, vector.rate);
        let principal = amount(&vector.principal);
        let pricing = Pricing::parse(&vector.pricing).unwrap_or_else(|e| panic!("{name}: {e}"));
        let rate = Rate::parse(&vector.rate).unwrap_or_else(|e| panic!("{name}: {e}"));
        let hold_ratio = HoldRatio::parse(&vector.hold_ratio).unwrap_or_else(|e| panic!("{name}: {e}"));
        let funded_on = date(&vector.funded_on);

        let schedule = build_schedule(principal, vector.term_months, pricing, rate, funded_on).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(schedule.len(), vector.installments.len(), "{name}: installment count");
        assert_eq!(schedule.len(), vector.term_months as usize, "{name}: one installment per month");
        for (built, expected) in schedule.iter().zip(&vector.installments) {
            let at = format!("{name}, seq {}", expected.seq);
            assert_eq!(built.seq, expected.seq, "{at}: seq");
            assert_eq!(built.due_on, date(&expected.due_on), "{at}: due_on");
            assert_eq!(built.principal, amount(&expected.principal), "{at}: principal");
            assert_eq!(built.interest, amount(&expected.interest), "{at}: interest");
            assert_eq!(built.fee, amount(&expected.fee), "{at}: fee");
            assert_eq!(built.total(), amount(&expected.total), "{at}: total");
            assert_eq!(built.total().to_string(), expected.total, "{at}: total as shown");
        }
        assert_eq!(total_repayable(&schedule), amount(&vector.total_repayable), "{name}: total_repayable");
        assert_eq!(format_apr(schedule_apr_irr(&schedule)), vector.apr_irr, "{name}: apr_irr");
        let hold = hold_amount(&schedule, hold_ratio.as_decimal());
        assert_eq!(hold, amount(&vector.hold_amount), "{name}: hold_amount");
        assert_eq!(hold.to_string(), vector.hold_amount, "{name}: hold_amount as shown");
    }
}

#[test]
fn product_cap_apr_is_close_to_each_vectors_own() {
    // The cap check's APR comes from the unrounded schedule; on these sizes it
    // agrees with the schedule's own apr_irr to the 4th decimal.
    for vector in load_vectors() {
        let pricing = Pricing::parse(&vector.pricing).unwrap_or_else(|e| panic!("{e}"));
        let rate = Rate::parse(&vector.rate).unwrap_or_else(|e| panic!("{e}"));
        let apr = term_apr_unrounded(pricing, rate, vector.term_months);
        assert_eq!(format_apr(apr), vector.apr_irr, "cap apr of {} {}", vector.pricing, vector.rate);
    }
}

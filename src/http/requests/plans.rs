//! The bodies of plans (API.md section 5) and end of day (section 6): repayment, acceleration,
//! the payoff's query, the business date to close.
//!
//! What the schemas cannot say (an amount above zero; dates against the plan's funding date, the
//! clock or the last closed date) is in the descriptions and answered by the service.

use super::typed;
use crate::domain::dates::parse_date;
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::body::Obj;
use crate::service::plans as svc;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The longest reason of an acceleration.
const REASON_MAX: usize = 500;

/// A repayment the bank received.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepaymentRequest {
    /// CNY yuan, above zero and at most the payoff as of `paid_on` (else 422 overpayment).
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub amount: Amount,
    /// Not before the plan's `funded_on`, not after today (else 422 invalid_date).
    pub paid_on: NaiveDate,
    /// The bank's reference, unique per plan for ever.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub reference: String,
}

impl RepaymentRequest {
    const FIELDS: &[&str] = &["amount", "paid_on", "reference"];

    /// The body, checked in the contract's order.
    pub fn read(v: &Value) -> ApiResult<RepaymentRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        o.req_positive_money("amount")?;
        o.req_date("paid_on")?;
        super::write_offs::bank_reference(&o, "reference")?;
        typed(v)
    }
}

impl From<RepaymentRequest> for svc::RepaymentRequest {
    fn from(r: RepaymentRequest) -> Self {
        svc::RepaymentRequest { amount: r.amount, paid_on: r.paid_on, reference: r.reference }
    }
}

/// The whole loan falls due at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccelerateRequest {
    /// Follows the rules of a repayment's `paid_on`.
    pub as_of: NaiveDate,
    /// No control characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub reason: String,
}

impl AccelerateRequest {
    pub fn read(v: &Value) -> ApiResult<AccelerateRequest> {
        let o = Obj::root(v, &["as_of", "reason"])?;
        o.req_date("as_of")?;
        o.req_text("reason", REASON_MAX)?;
        typed(v)
    }
}

/// Closing a business date (and every earlier one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EodRequest {
    /// Not after today unless future dates are allowed (else 422 invalid_date); not before the last
    /// closed date (else 409 business_date_regression).
    pub business_date: NaiveDate,
}

impl EodRequest {
    pub fn read(v: &Value) -> ApiResult<EodRequest> {
        Obj::root(v, &["business_date"])?.req_date("business_date")?;
        typed(v)
    }
}

/// `GET /v1/plans/{id}/payoff?as_of=`: today when absent.
pub struct PayoffQuery {
    pub as_of: Option<NaiveDate>,
}

impl PayoffQuery {
    /// `as_of`, the query's value of that name.
    pub fn read(as_of: Option<&str>) -> ApiResult<PayoffQuery> {
        let as_of = as_of
            .map(|s| parse_date(s).map_err(|_| ApiError::new(ErrorCode::InvalidDate, "`as_of` must be a date YYYY-MM-DD").field("as_of")))
            .transpose()?;
        Ok(PayoffQuery { as_of })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    #[test]
    fn checks_and_types_take_the_same_fields() {
        same_fields::<RepaymentRequest>(RepaymentRequest::FIELDS);
        same_fields::<AccelerateRequest>(&["as_of", "reason"]);
        same_fields::<EodRequest>(&["business_date"]);
    }

    #[test]
    fn what_the_checks_accept_reads_as_the_type() {
        let body = |t: &str| parse_object(t.as_bytes()).expect("a JSON object");
        let r = RepaymentRequest::read(&body(r#"{"amount":"100","paid_on":"2027-01-05","reference":"r-1"}"#)).unwrap();
        assert_eq!(svc::RepaymentRequest::from(r).amount, Amount::parse("100.00").unwrap());
        assert_eq!(RepaymentRequest::read(&body(r#"{"amount":100}"#)).unwrap_err().code, ErrorCode::InvalidAmount);
        assert_eq!(AccelerateRequest::read(&body(r#"{"as_of":"2027-02-30","reason":"x"}"#)).unwrap_err().code, ErrorCode::InvalidDate);
        assert_eq!(EodRequest::read(&body(r#"{"business_date":"2027-01-05"}"#)).unwrap().business_date.to_string(), "2027-01-05");
        assert_eq!(PayoffQuery::read(Some("2027-13-01")).err().unwrap().field.as_deref(), Some("as_of"));
        assert_eq!(PayoffQuery::read(None).unwrap().as_of, None);
    }
}

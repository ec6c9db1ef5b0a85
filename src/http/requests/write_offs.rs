//! The bodies of write-off and recoveries (API.md §14). A `reference` is the bank's and unique per
//! plan across repayments, write-off and recoveries; one starting `eod-` is the engine's (end of
//! day's automatic write-offs) and a body error here.

use super::typed;
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult};
use crate::http::body::Obj;
use crate::service::write_offs as svc;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The bank's reference, checked as a repayment's is, `eod-` refused (API.md §14).
pub(super) fn bank_reference(o: &Obj, key: &str) -> ApiResult<()> {
    let reference = o.req_visible_ascii(key, 64)?;
    if reference.starts_with("eod-") {
        return Err(ApiError::invalid(o.path(key), "references starting `eod-` are the engine's"));
    }
    Ok(())
}

/// Why the bank writes the plan off.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteOffReason {
    Uncollectible,
    Fraud,
    Deceased,
    Other,
}

impl WriteOffReason {
    const NAMES: &[&str] = &["uncollectible", "fraud", "deceased", "other"];

    fn as_str(self) -> &'static str {
        match self {
            WriteOffReason::Uncollectible => "uncollectible",
            WriteOffReason::Fraud => "fraud",
            WriteOffReason::Deceased => "deceased",
            WriteOffReason::Other => "other",
        }
    }
}

/// A defaulted plan written off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteOffRequest {
    /// Not before `funded_on` nor the last repayment's `paid_on`, not after today (else 422 invalid_date).
    pub written_off_on: NaiveDate,
    #[schema(inline)]
    pub reason: WriteOffReason,
    /// Unique per plan for ever, across repayments, write-off and recoveries; not starting `eod-`.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub reference: String,
}

impl WriteOffRequest {
    const FIELDS: &[&str] = &["written_off_on", "reason", "reference"];

    pub fn read(v: &Value) -> ApiResult<WriteOffRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        o.req_date("written_off_on")?;
        let reason = o.req_str("reason")?;
        if !WriteOffReason::NAMES.contains(&reason) {
            return Err(ApiError::invalid(o.path("reason"), "`reason` is uncollectible, fraud, deceased or other"));
        }
        bank_reference(&o, "reference")?;
        typed(v)
    }
}

impl From<WriteOffRequest> for svc::WriteOffRequest {
    fn from(r: WriteOffRequest) -> Self {
        svc::WriteOffRequest { written_off_on: r.written_off_on, reason: r.reason.as_str().to_string(), reference: r.reference }
    }
}

/// Money collected on a written-off plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    /// CNY yuan, above zero and at most the plan's `recoverable` (else 422 overpayment).
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub amount: Amount,
    /// Not before `written_off_on`, not after today (else 422 invalid_date).
    pub paid_on: NaiveDate,
    /// Unique per plan for ever, across repayments, write-off and recoveries; not starting `eod-`.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub reference: String,
}

impl RecoveryRequest {
    const FIELDS: &[&str] = &["amount", "paid_on", "reference"];

    pub fn read(v: &Value) -> ApiResult<RecoveryRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        o.req_positive_money("amount")?;
        o.req_date("paid_on")?;
        bank_reference(&o, "reference")?;
        typed(v)
    }
}

impl From<RecoveryRequest> for svc::RecoveryRequest {
    fn from(r: RecoveryRequest) -> Self {
        svc::RecoveryRequest { amount: r.amount, paid_on: r.paid_on, reference: r.reference }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    fn body(t: &str) -> Value {
        parse_object(t.as_bytes()).expect("a JSON object")
    }

    #[test]
    fn checks_and_types_take_the_same_fields() {
        same_fields::<WriteOffRequest>(WriteOffRequest::FIELDS);
        same_fields::<RecoveryRequest>(RecoveryRequest::FIELDS);
    }

    #[test]
    fn what_the_checks_accept_reads_as_the_type() {
        let w = WriteOffRequest::read(&body(r#"{"written_off_on":"2027-09-01","reason":"fraud","reference":"W-1"}"#)).unwrap();
        assert_eq!(svc::WriteOffRequest::from(w).reason, "fraud");
        let e = WriteOffRequest::read(&body(r#"{"written_off_on":"2027-09-01","reason":"aged","reference":"W-1"}"#)).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidRequest, Some("reason")));
        let e = RecoveryRequest::read(&body(r#"{"amount":"1","paid_on":"2027-09-01","reference":"eod-2027-09-01"}"#)).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidRequest, Some("reference")));
        assert_eq!(
            RecoveryRequest::read(&body(r#"{"amount":"0","paid_on":"2027-09-01","reference":"r"}"#)).unwrap_err().code,
            ErrorCode::InvalidAmount
        );
        assert!(RecoveryRequest::read(&body(r#"{"amount":"1.5","paid_on":"2027-09-01","reference":"r"}"#)).is_ok());
    }
}

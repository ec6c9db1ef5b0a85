//! The bodies of device returns (API.md §13): the owner's request and the bank's decision.

use super::{parsed, typed};
use crate::domain::identity::Imei;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::body::Obj;
use crate::service::returns as svc;
use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;

const NOTE_MAX: usize = 500;
const REASON_MAX: usize = 500;

/// Why the customer returns the device.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnReason {
    NoReason,
    PerformanceFault,
    Other,
}

impl ReturnReason {
    const NAMES: &[&str] = &["no_reason", "performance_fault", "other"];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnReason::NoReason => "no_reason",
            ReturnReason::PerformanceFault => "performance_fault",
            ReturnReason::Other => "other",
        }
    }
}

/// The owner asks to return a funded order's device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    #[schema(inline)]
    pub reason: ReturnReason,
    /// Not before `funded_on`, not after `funded_on + return_window_days` (422 return_window_closed),
    /// not after today (422 invalid_date).
    pub returned_on: NaiveDate,
    /// The device's IMEI: 15 digits, Luhn-valid (else 422 invalid_imei); must be the order's (422 imei_mismatch).
    #[serde(deserialize_with = "imei")]
    #[schema(value_type = String, pattern = "^[0-9]{15}$")]
    pub imei: Imei,
    /// Unique per order for ever (409 already_exists).
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub reference: String,
    /// No control characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub note: Option<String>,
}

fn imei<'de, D: Deserializer<'de>>(d: D) -> Result<Imei, D::Error> {
    parsed(d, Imei::parse)
}

impl ReturnRequest {
    const FIELDS: &[&str] = &["reason", "returned_on", "imei", "reference", "note"];

    pub fn read(v: &Value) -> ApiResult<ReturnRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        let reason = o.req_str("reason")?;
        if !ReturnReason::NAMES.contains(&reason) {
            return Err(ApiError::invalid(o.path("reason"), "`reason` is no_reason, performance_fault or other"));
        }
        o.req_date("returned_on")?;
        Imei::parse(o.req_str("imei")?).map_err(|_| {
            ApiError::new(ErrorCode::InvalidImei, "`imei` must be 15 digits with a valid Luhn check digit").field(o.path("imei"))
        })?;
        o.req_visible_ascii("reference", 64)?;
        o.opt_text("note", NOTE_MAX)?;
        typed(v)
    }
}

impl From<ReturnRequest> for svc::ReturnRequest {
    fn from(r: ReturnRequest) -> Self {
        svc::ReturnRequest {
            reason: r.reason.as_str().to_string(),
            returned_on: r.returned_on,
            imei: r.imei,
            reference: r.reference,
            note: r.note,
        }
    }
}

/// The bank completes or rejects a requested return.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnDecisionKind {
    Completed,
    Rejected,
}

/// The order's bank decides a requested return.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnDecisionRequest {
    #[schema(inline)]
    pub decision: ReturnDecisionKind,
    /// Required with a completion, refused with a rejection; not before `returned_on`, not after today.
    pub completed_on: Option<NaiveDate>,
    /// Required with a rejection, refused with a completion; no control characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub reason: Option<String>,
}

impl ReturnDecisionRequest {
    const FIELDS: &[&str] = &["decision", "completed_on", "reason"];

    pub fn read(v: &Value) -> ApiResult<ReturnDecisionRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        match o.req_str("decision")? {
            "completed" => {
                if o.has("reason") {
                    return Err(ApiError::invalid(o.path("reason"), "a completion carries no reason"));
                }
                o.req_date("completed_on")?;
            }
            "rejected" => {
                if o.has("completed_on") {
                    return Err(ApiError::invalid(o.path("completed_on"), "a rejection carries no `completed_on`"));
                }
                o.req_text("reason", REASON_MAX)?;
            }
            _ => return Err(ApiError::invalid(o.path("decision"), "`decision` is completed or rejected")),
        }
        typed(v)
    }

    /// The decision with the fields it takes ([`Self::read`] made sure they are there).
    pub fn decision(self) -> ApiResult<svc::ReturnDecision> {
        match (self.decision, self.completed_on, self.reason) {
            (ReturnDecisionKind::Completed, Some(completed_on), None) => Ok(svc::ReturnDecision::Completed { completed_on }),
            (ReturnDecisionKind::Rejected, None, Some(reason)) => Ok(svc::ReturnDecision::Rejected { reason }),
            _ => Err(ApiError::internal_because("Failed to read a checked return decision", "its fields do not fit the decision")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    fn body(t: &str) -> Value {
        parse_object(t.as_bytes()).expect("a JSON object")
    }

    #[test]
    fn checks_and_types_take_the_same_fields() {
        same_fields::<ReturnRequest>(ReturnRequest::FIELDS);
        same_fields::<ReturnDecisionRequest>(ReturnDecisionRequest::FIELDS);
    }

    #[test]
    fn bad_bodies_get_their_codes() {
        let ok = r#""reason":"no_reason","returned_on":"2027-03-01","reference":"R-1""#;
        let code = |t: &str| ReturnRequest::read(&body(t)).unwrap_err().code;
        assert_eq!(code(&format!(r#"{{{ok},"imei":"490154203237519"}}"#)), ErrorCode::InvalidImei);
        assert_eq!(code(&format!(r#"{{{ok},"imei":"49015420323751"}}"#)), ErrorCode::InvalidImei);
        assert_eq!(
            code(r#"{"reason":"no_reason","returned_on":"2027-02-30","reference":"R-1","imei":"490154203237518"}"#),
            ErrorCode::InvalidDate
        );
        assert_eq!(
            code(r#"{"reason":"bored","returned_on":"2027-03-01","reference":"R-1","imei":"490154203237518"}"#),
            ErrorCode::InvalidRequest
        );
        let r = ReturnRequest::read(&body(&format!(r#"{{{ok},"imei":"490154203237518","note":null}}"#))).unwrap();
        assert_eq!((r.reason.as_str(), r.note), ("no_reason", None));
        let decision = |t: &str| ReturnDecisionRequest::read(&body(t)).map(|d| d.decision());
        assert!(matches!(
            decision(r#"{"decision":"completed","completed_on":"2027-03-02"}"#),
            Ok(Ok(svc::ReturnDecision::Completed { .. }))
        ));
        assert!(matches!(decision(r#"{"decision":"rejected","reason":"scratched"}"#), Ok(Ok(svc::ReturnDecision::Rejected { .. }))));
        assert_eq!(
            decision(r#"{"decision":"completed","reason":"x","completed_on":"2027-03-02"}"#).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(decision(r#"{"decision":"rejected"}"#).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(decision(r#"{"decision":"approved"}"#).unwrap_err().code, ErrorCode::InvalidRequest);
    }
}

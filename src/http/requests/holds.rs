//! The bodies of a provider's answer to a pending hold (API.md §12): acknowledge, confirm, decline.

use super::typed;
use crate::domain::money::Amount;
use crate::domain::status::DeclineReason;
use crate::error::{ApiError, ApiResult};
use crate::http::body::Obj;
use crate::service::holds::HoldAction;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The longest `sign_url`.
const URL_MAX: usize = 2000;
/// The longest provider order number (a business number, like `out_order_no`).
const ORDER_NO_MAX: usize = 64;

/// The provider showed the customer where to sign: the hold stays pending.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// An https URL, shown to the order's owner (the POS renders it as a QR code).
    #[schema(min_length = 1, max_length = 2000, pattern = r"^https://[!-~]+$")]
    pub sign_url: String,
    /// The provider's own order number, unique per provider for ever.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub provider_order_no: Option<String>,
}

impl AcknowledgeRequest {
    pub fn read(v: &Value) -> ApiResult<AcknowledgeRequest> {
        let o = Obj::root(v, &["sign_url", "provider_order_no"])?;
        let url = o.req_visible_ascii("sign_url", URL_MAX)?;
        let https = url::Url::parse(&url).is_ok_and(|u| u.scheme() == "https" && u.host().is_some());
        if !https {
            return Err(ApiError::invalid(o.path("sign_url"), "`sign_url` must be an https URL"));
        }
        if o.has("provider_order_no") {
            o.req_visible_ascii("provider_order_no", ORDER_NO_MAX)?;
        }
        typed(v)
    }
}

impl From<AcknowledgeRequest> for HoldAction {
    fn from(r: AcknowledgeRequest) -> HoldAction {
        HoldAction::Acknowledge { sign_url: r.sign_url, provider_order_no: r.provider_order_no }
    }
}

/// The provider froze the line for the hold's whole amount.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// CNY yuan, above zero; the hold's amount (else 422 hold_amount_mismatch).
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub amount: Amount,
    /// Unique per provider for ever; may repeat the number the hold was acknowledged with.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub provider_order_no: String,
}

impl ConfirmRequest {
    pub fn read(v: &Value) -> ApiResult<ConfirmRequest> {
        let o = Obj::root(v, &["amount", "provider_order_no"])?;
        o.req_positive_money("amount")?;
        o.req_visible_ascii("provider_order_no", ORDER_NO_MAX)?;
        typed(v)
    }
}

impl From<ConfirmRequest> for HoldAction {
    fn from(r: ConfirmRequest) -> HoldAction {
        HoldAction::Confirm { amount: r.amount, provider_order_no: r.provider_order_no }
    }
}

/// Why the provider declines.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReasonInput {
    CustomerDeclined,
    RiskRefused,
    InsufficientLimit,
    Other,
}

/// The provider will not freeze the line: the hold is voided, the order rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    #[schema(inline)]
    pub reason: DeclineReasonInput,
}

impl DeclineRequest {
    pub fn read(v: &Value) -> ApiResult<DeclineRequest> {
        let o = Obj::root(v, &["reason"])?;
        if DeclineReason::parse(o.req_str("reason")?).is_none() {
            let names = DeclineReason::NAMES.join(", ");
            return Err(ApiError::invalid(o.path("reason"), format!("`reason` is one of {names}")));
        }
        typed(v)
    }
}

impl From<DeclineRequest> for HoldAction {
    fn from(r: DeclineRequest) -> HoldAction {
        let reason = match r.reason {
            DeclineReasonInput::CustomerDeclined => DeclineReason::CustomerDeclined,
            DeclineReasonInput::RiskRefused => DeclineReason::RiskRefused,
            DeclineReasonInput::InsufficientLimit => DeclineReason::InsufficientLimit,
            DeclineReasonInput::Other => DeclineReason::Other,
        };
        HoldAction::Decline { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::same_fields;
    use super::*;
    use serde_json::json;

    #[test]
    fn the_checks_and_the_types_take_the_same_fields() {
        same_fields::<AcknowledgeRequest>(&["sign_url", "provider_order_no"]);
        same_fields::<ConfirmRequest>(&["amount", "provider_order_no"]);
        same_fields::<DeclineRequest>(&["reason"]);
    }

    #[test]
    fn bodies_are_checked_with_their_codes() {
        let code = |r: ApiResult<()>| r.unwrap_err().code.as_str();
        assert_eq!(code(AcknowledgeRequest::read(&json!({"sign_url": "http://x.example/s"})).map(drop)), "invalid_request");
        assert!(AcknowledgeRequest::read(&json!({"sign_url": "https://x.example/s?o=1"})).is_ok());
        assert_eq!(code(ConfirmRequest::read(&json!({"amount": 3300.46, "provider_order_no": "W1"})).map(drop)), "invalid_amount");
        assert_eq!(code(ConfirmRequest::read(&json!({"amount": "0", "provider_order_no": "W1"})).map(drop)), "invalid_amount");
        assert_eq!(code(ConfirmRequest::read(&json!({"amount": "1"})).map(drop)), "invalid_request");
        assert_eq!(code(DeclineRequest::read(&json!({"reason": "bored"})).map(drop)), "invalid_request");
        assert!(matches!(
            HoldAction::from(DeclineRequest::read(&json!({"reason": "risk_refused"})).unwrap()),
            HoldAction::Decline { reason: DeclineReason::RiskRefused }
        ));
    }
}

//! The bodies of credit lines (API.md section 3): registration and debt repayment, and the
//! customer that an order names too.
//!
//! What the schemas cannot say (the ID number's check character, an amount above zero) is in the
//! descriptions and answered 422 by the checks.

use super::{parsed, typed};
use crate::domain::identity::{IdNumber, Phone};
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::body::Obj;
use crate::service::credit_lines::{LineStatus, Registration};
use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;

/// The borrower, as the credit provider registered their line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// An 18-character PRC resident ID with a valid GB 11643 check character (`x` read as `X`).
    #[schema(value_type = String, pattern = "^[0-9]{17}[0-9Xx]$")]
    #[serde(deserialize_with = "id_number")]
    pub id_number: IdNumber,
    /// A mainland mobile number.
    #[schema(value_type = String, pattern = "^1[0-9]{10}$")]
    #[serde(deserialize_with = "phone")]
    pub phone: Phone,
    /// No control characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: Option<String>,
}

impl CustomerInput {
    pub(super) const FIELDS: &[&str] = &["id_number", "phone", "name"];

    /// `key: {id_number, phone, name?}` with the API.md code of each.
    pub(super) fn check(o: &Obj, key: &str) -> ApiResult<()> {
        let c = o.req_obj(key, Self::FIELDS)?;
        IdNumber::parse(c.req_str("id_number")?).map_err(|_| {
            ApiError::new(ErrorCode::InvalidIdNumber, "`id_number` must be an 18-character PRC resident ID with a valid check character")
                .field(c.path("id_number"))
        })?;
        Phone::parse(c.req_str("phone")?)
            .map_err(|_| ApiError::new(ErrorCode::InvalidPhone, "`phone` must be 11 digits starting with 1").field(c.path("phone")))?;
        c.opt_text("name", 100)?;
        Ok(())
    }
}

/// A line's status as its provider sets it (`expired` is read, never set).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineStatusInput {
    Active,
    Frozen,
    Closed,
}

impl From<LineStatusInput> for LineStatus {
    fn from(s: LineStatusInput) -> Self {
        match s {
            LineStatusInput::Active => LineStatus::Active,
            LineStatusInput::Frozen => LineStatus::Frozen,
            LineStatusInput::Closed => LineStatus::Closed,
        }
    }
}

/// A customer's line with this provider: registered (201) or updated (200).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditLineRequest {
    #[schema(inline)]
    pub customer: CustomerInput,
    /// CNY yuan; not below what the line holds and has drawn (else 409 limit_below_exposure).
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub limit: Amount,
    pub expires_on: NaiveDate,
    /// `active` for a new line when absent; absent on an update: unchanged.
    #[schema(inline)]
    pub status: Option<LineStatusInput>,
}

impl CreditLineRequest {
    const FIELDS: &[&str] = &["customer", "limit", "expires_on", "status"];

    /// The body, checked in the contract's order.
    pub fn read(v: &Value) -> ApiResult<CreditLineRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        CustomerInput::check(&o, "customer")?;
        o.req_money("limit")?;
        o.req_date("expires_on")?;
        if let Some(s) = o.opt_str("status")?
            && LineStatus::parse(s).is_none()
        {
            return Err(ApiError::invalid(o.path("status"), "`status` is active, frozen or closed"));
        }
        typed(v)
    }
}

impl From<CreditLineRequest> for Registration {
    fn from(r: CreditLineRequest) -> Self {
        Registration {
            id_number: r.customer.id_number,
            phone: r.customer.phone,
            name: r.customer.name,
            limit: r.limit,
            expires_on: r.expires_on,
            status: r.status.map(LineStatus::from),
        }
    }
}

/// The customer repaid the provider part of what was converted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebtRepaymentRequest {
    /// CNY yuan, above zero and at most the line's `drawn` (else 422 overpayment).
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub amount: Amount,
}

impl DebtRepaymentRequest {
    pub fn read(v: &Value) -> ApiResult<DebtRepaymentRequest> {
        Obj::root(v, &["amount"])?.req_positive_money("amount")?;
        typed(v)
    }
}

fn id_number<'de, D: Deserializer<'de>>(d: D) -> Result<IdNumber, D::Error> {
    parsed(d, IdNumber::parse)
}

fn phone<'de, D: Deserializer<'de>>(d: D) -> Result<Phone, D::Error> {
    parsed(d, Phone::parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    #[test]
    fn checks_and_types_take_the_same_fields() {
        same_fields::<CustomerInput>(CustomerInput::FIELDS);
        same_fields::<CreditLineRequest>(CreditLineRequest::FIELDS);
        same_fields::<DebtRepaymentRequest>(&["amount"]);
    }

    #[test]
    fn what_the_checks_accept_reads_as_the_type() {
        let body = |t: &str| parse_object(t.as_bytes()).expect("a JSON object");
        let line = CreditLineRequest::read(&body(
            r#"{"customer":{"id_number":"11010519491231002x","phone":"13800000000"},"limit":"5000","expires_on":"2099-12-31","status":"frozen"}"#,
        ));
        let r = Registration::from(line.expect("a registration"));
        assert_eq!((r.id_number.as_str(), r.status), ("11010519491231002X", Some(LineStatus::Frozen)));
        let bad = CreditLineRequest::read(&body(
            r#"{"customer":{"id_number":"110105194912310021","phone":"13800000000"},"limit":"5000","expires_on":"2099-12-31"}"#,
        ));
        assert_eq!(bad.unwrap_err().field.as_deref(), Some("customer.id_number"));
        assert_eq!(DebtRepaymentRequest::read(&body(r#"{"amount":"0"}"#)).unwrap_err().code, ErrorCode::InvalidAmount);
        assert_eq!(DebtRepaymentRequest::read(&body(r#"{"amount":"1.5"}"#)).unwrap().amount, Amount::parse("1.50").unwrap());
    }
}

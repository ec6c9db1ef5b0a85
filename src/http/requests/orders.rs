//! The bodies of quotes and orders (API.md section 4): quote, place, cancel, funding.
//!
//! Each type's schema states what its `read` checks, wherever JSON Schema can say it; what it
//! cannot (check characters, Luhn, amounts above zero, the fields a partner must and a store must
//! not send, the fields a decision takes) is in the descriptions and answered 422 by the checks.

use super::credit_lines::CustomerInput;
use super::{parsed, typed};
use crate::domain::identity::{Imei, RegionCode};
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::body::Obj;
use crate::service::orders::{self as svc, FundingDecision};
use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The longest free text of an order (`device.sku`, `consent.reference`).
const TEXT_MAX: usize = 200;
/// The longest reason of a cancellation or a rejection.
const REASON_MAX: usize = 500;

/// A plan for a device price: nothing is held or stored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// An active product's id.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub product_id: String,
    /// One of the product's terms.
    #[schema(minimum = 1, maximum = 360)]
    pub term_months: u32,
    /// CNY yuan, above zero.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub device_price: Amount,
    /// CNY yuan, below the price; the principal (price - down payment) within the product's bounds.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub down_payment: Amount,
}

impl QuoteRequest {
    const FIELDS: &[&str] = &["product_id", "term_months", "device_price", "down_payment"];

    /// The body, checked in the contract's order.
    pub fn read(v: &Value) -> ApiResult<QuoteRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        o.req_id("product_id")?;
        o.req_int("term_months", 1, 360)?;
        o.req_positive_money("device_price")?;
        o.req_money("down_payment")?;
        typed(v)
    }
}

impl From<QuoteRequest> for svc::QuoteRequest {
    fn from(q: QuoteRequest) -> Self {
        svc::QuoteRequest {
            product_id: q.product_id,
            term_months: q.term_months,
            device_price: q.device_price,
            down_payment: q.down_payment,
        }
    }
}

/// The phone sold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub sku: String,
    /// 15 digits with a valid Luhn check digit.
    #[schema(value_type = String, pattern = "^[0-9]{15}$")]
    #[serde(deserialize_with = "imei")]
    pub imei: Imei,
    /// CNY yuan, above zero.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub price: Amount,
}

impl DeviceInput {
    const FIELDS: &[&str] = &["sku", "imei", "price"];

    fn check(d: &Obj) -> ApiResult<()> {
        d.req_text("sku", TEXT_MAX)?;
        Imei::parse(d.req_str("imei")?).map_err(|_| {
            ApiError::new(ErrorCode::InvalidImei, "`imei` must be 15 digits with a valid Luhn check digit").field(d.path("imei"))
        })?;
        d.req_positive_money("price")?;
        Ok(())
    }
}

/// How the customer consented to the hold.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    ProviderApp,
    SmsOtp,
}

impl ConsentMethod {
    fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::ProviderApp => "provider_app",
            ConsentMethod::SmsOtp => "sms_otp",
        }
    }
}

/// The customer's consent, kept with the order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    #[schema(inline)]
    pub method: ConsentMethod,
    /// No control characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub reference: String,
}

impl ConsentInput {
    const FIELDS: &[&str] = &["method", "reference"];

    fn check(c: &Obj) -> ApiResult<()> {
        if !matches!(c.req_str("method")?, "provider_app" | "sms_otp") {
            return Err(ApiError::invalid(c.path("method"), "`method` is provider_app or sms_otp"));
        }
        c.req_text("reference", TEXT_MAX)?;
        Ok(())
    }
}

/// An order: the hold on the customer's line and the funding bank, in one transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The caller's own order number, unique per caller.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub out_order_no: String,
    /// An active product's id.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub product_id: String,
    /// One of the product's terms.
    #[schema(minimum = 1, maximum = 360)]
    pub term_months: u32,
    #[schema(inline)]
    pub customer: CustomerInput,
    #[schema(inline)]
    pub device: DeviceInput,
    /// CNY yuan, below the device price; the principal within the product's bounds.
    #[schema(value_type = String, pattern = r"^[0-9]{1,12}(\.[0-9]{1,2})?$")]
    pub down_payment: Amount,
    #[schema(inline)]
    pub consent: Option<ConsentInput>,
    /// Where a partner's agent sells: required from a partner, refused from a store (a store's
    /// region is its own).
    #[schema(value_type = Option<String>, pattern = "^[0-9]{6}$")]
    #[serde(default, deserialize_with = "region_code")]
    pub region_code: Option<RegionCode>,
    /// The partner's agent: required from a partner, refused from a store.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub agent_id: Option<String>,
}

impl OrderRequest {
    const FIELDS: &[&str] =
        &["out_order_no", "product_id", "term_months", "customer", "device", "down_payment", "consent", "region_code", "agent_id"];

    /// The body, checked in the contract's order; `partner`: sent by a partner (else a store).
    pub fn read(v: &Value, partner: bool) -> ApiResult<OrderRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        o.req_visible_ascii("out_order_no", 64)?;
        o.req_id("product_id")?;
        o.req_int("term_months", 1, 360)?;
        CustomerInput::check(&o, "customer")?;
        DeviceInput::check(&o.req_obj("device", DeviceInput::FIELDS)?)?;
        o.req_money("down_payment")?;
        if let Some(c) = o.opt_obj("consent", ConsentInput::FIELDS)? {
            ConsentInput::check(&c)?;
        }
        Self::check_channel(&o, partner)?;
        typed(v)
    }

    /// A partner says where its agent sells and who the agent is; a store may not.
    fn check_channel(o: &Obj, partner: bool) -> ApiResult<()> {
        if partner {
            RegionCode::parse_order(o.req_str("region_code")?)
                .map_err(|_| ApiError::invalid(o.path("region_code"), "a 6-digit region code"))?;
            o.req_visible_ascii("agent_id", 64)?;
            return Ok(());
        }
        for key in ["region_code", "agent_id"] {
            if o.has(key) {
                return Err(ApiError::invalid(o.path(key), format!("`{key}` is not allowed for a store: a store's region is its own")));
            }
        }
        Ok(())
    }
}

impl From<OrderRequest> for svc::OrderRequest {
    fn from(o: OrderRequest) -> Self {
        svc::OrderRequest {
            out_order_no: o.out_order_no,
            product_id: o.product_id,
            term_months: o.term_months,
            id_number: o.customer.id_number,
            phone: o.customer.phone,
            name: o.customer.name,
            device_sku: o.device.sku,
            imei: o.device.imei,
            device_price: o.device.price,
            down_payment: o.down_payment,
            consent: o.consent.map(|c| json!({ "method": c.method.as_str(), "reference": c.reference })),
            region_code: o.region_code,
            agent_id: o.agent_id,
        }
    }
}

/// Cancelling an order before funding; no body at all is `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// No control characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub reason: Option<String>,
}

impl CancelRequest {
    pub fn read(v: &Value) -> ApiResult<CancelRequest> {
        Obj::root(v, &["reason"])?.opt_text("reason", REASON_MAX)?;
        typed(v)
    }
}

/// The bank's decision on an order.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
}

// One flat object rather than one per decision: a field sent as `null` is absent (API.md
// section 1), so it must stay schema-valid whatever the decision.
/// The bank's decision: an approval takes `loan_no` and `funded_on`, a rejection takes `reason`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundingRequest {
    #[schema(inline)]
    pub decision: Decision,
    /// The bank's loan number, unique per bank: required with an approval, refused with a rejection.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub loan_no: Option<String>,
    /// Required with an approval, refused with a rejection.
    pub funded_on: Option<NaiveDate>,
    /// Required with a rejection, refused with an approval; no control characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub reason: Option<String>,
}

impl FundingRequest {
    /// The body, checked in the contract's order.
    pub fn read(v: &Value) -> ApiResult<FundingRequest> {
        let o = Obj::root(v, &["decision", "loan_no", "funded_on", "reason"])?;
        match o.req_str("decision")? {
            "approved" => {
                if o.has("reason") {
                    return Err(ApiError::invalid(o.path("reason"), "an approval carries no reason"));
                }
                o.req_visible_ascii("loan_no", 64)?;
                o.req_date("funded_on")?;
            }
            "rejected" => {
                for key in ["loan_no", "funded_on"] {
                    if o.has(key) {
                        return Err(ApiError::invalid(o.path(key), format!("a rejection carries no `{key}`")));
                    }
                }
                o.req_text("reason", REASON_MAX)?;
            }
            _ => return Err(ApiError::invalid(o.path("decision"), "`decision` is approved or rejected")),
        }
        typed(v)
    }

    /// The decision with the fields it takes ([`Self::read`] made sure they are there).
    pub fn decision(self) -> ApiResult<FundingDecision> {
        match (self.decision, self.loan_no, self.funded_on, self.reason) {
            (Decision::Approved, Some(loan_no), Some(funded_on), None) => Ok(FundingDecision::Approved { loan_no, funded_on }),
            (Decision::Rejected, None, None, Some(reason)) => Ok(FundingDecision::Rejected { reason }),
            _ => Err(ApiError::internal_because("Failed to read a checked funding decision", "its fields do not fit the decision")),
        }
    }
}

fn imei<'de, D: Deserializer<'de>>(d: D) -> Result<Imei, D::Error> {
    parsed(d, Imei::parse)
}

fn region_code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RegionCode>, D::Error> {
    // `null` is absent (API.md section 1).
    Option::<String>::deserialize(d)?.map(|s| RegionCode::parse_order(&s).map_err(serde::de::Error::custom)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    #[test]
    fn checks_and_types_take_the_same_fields() {
        same_fields::<QuoteRequest>(QuoteRequest::FIELDS);
        same_fields::<OrderRequest>(OrderRequest::FIELDS);
        same_fields::<DeviceInput>(DeviceInput::FIELDS);
        same_fields::<ConsentInput>(ConsentInput::FIELDS);
        same_fields::<CancelRequest>(&["reason"]);
        same_fields::<FundingRequest>(&["decision", "loan_no", "funded_on", "reason"]);
    }

    fn body(text: &str) -> Value {
        parse_object(text.as_bytes()).expect("a JSON object")
    }

    #[test]
    fn what_the_checks_accept_reads_as_the_type() {
        let q = QuoteRequest::read(&body(r#"{"product_id":"p12","term_months":12,"device_price":"3999","down_payment":"999.5"}"#));
        assert_eq!(q.expect("a quote").down_payment, Amount::parse("999.50").unwrap());
        let order = r#"{"out_order_no":"O-1","product_id":"p12","term_months":12,"down_payment":"0",
            "customer":{"id_number":"11010519491231002x","phone":"13800000000","name":null},
            "device":{"sku":"phone 1","imei":"490154203237518","price":"3999.00"}"#;
        let store =
            svc::OrderRequest::from(OrderRequest::read(&body(&format!("{order},\"consent\":null,\"region_code\":null}}")), false).unwrap());
        assert_eq!((store.id_number.as_str(), store.consent, store.region_code), ("11010519491231002X", None, None));
        let partner = format!(r#"{order},"consent":{{"method":"sms_otp","reference":"r-1"}},"region_code":"440305","agent_id":"a-1"}}"#);
        let partner = svc::OrderRequest::from(OrderRequest::read(&body(&partner), true).unwrap());
        assert_eq!(partner.consent, Some(json!({"method": "sms_otp", "reference": "r-1"})));
        assert_eq!(partner.region_code.map(|r| r.as_str().to_string()).as_deref(), Some("440305"));
        assert_eq!(CancelRequest::read(&json!({})).unwrap().reason, None);
        let approved = FundingRequest::read(&body(r#"{"decision":"approved","loan_no":"L-1","funded_on":"2027-01-05","reason":null}"#));
        assert!(matches!(approved.unwrap().decision(), Ok(FundingDecision::Approved { .. })));
        let rejected = FundingRequest::read(&body(r#"{"decision":"rejected","reason":"no","loan_no":null}"#));
        assert!(matches!(rejected.unwrap().decision(), Ok(FundingDecision::Rejected { .. })));
    }
}

//! The bodies and queries of the operations API (API.md §16): bulk redelivery's body, the aging's
//! and the search's queries.

use super::typed;
use crate::domain::dates::parse_date;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::body::{Obj, is_reference_id};
use crate::service::ops::RedeliverFilter;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Whose notices: a recipient as notices name it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    #[schema(pattern = "^(bank|provider|store|partner)$")]
    pub kind: String,
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{1,63}$")]
    pub id: String,
}

/// Every dead notice matching the filters is delivered again from attempt one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// Only dead notices are redelivered in bulk.
    #[schema(pattern = "^dead$")]
    pub state: String,
    pub recipient: Option<RecipientInput>,
    /// RFC 3339: only notices created after this instant.
    pub created_after: Option<DateTime<Utc>>,
}

impl RedeliverRequest {
    const FIELDS: &[&str] = &["state", "recipient", "created_after"];

    /// The body, checked in the contract's order: `state` (only `dead`, else `invalid_request`),
    /// then the recipient, then the instant (a malformed one is `invalid_request`: it is a
    /// timestamp, not a business date).
    pub fn read(v: &Value) -> ApiResult<RedeliverRequest> {
        let o = Obj::root(v, Self::FIELDS)?;
        if o.req_str("state")? != "dead" {
            return Err(ApiError::invalid("state", "only dead notices are redelivered in bulk: `state` must be \"dead\""));
        }
        if let Some(r) = o.opt_obj("recipient", &["kind", "id"])? {
            if !matches!(r.req_str("kind")?, "bank" | "provider" | "store" | "partner") {
                return Err(ApiError::invalid("recipient.kind", "`kind` is bank, provider, store or partner"));
            }
            r.req_id("id")?;
        }
        if let Some(t) = o.opt_str("created_after")?
            && DateTime::parse_from_rfc3339(t).is_err()
        {
            return Err(ApiError::invalid("created_after", "`created_after` must be an RFC 3339 timestamp"));
        }
        typed(v)
    }

    pub fn filter(self) -> RedeliverFilter {
        RedeliverFilter { recipient: self.recipient.map(|r| (r.kind, r.id)), created_after: self.created_after }
    }
}

/// `GET /v1/admin/aging?as_of=&bank_id=`.
pub struct AgingQuery {
    pub as_of: Option<NaiveDate>,
    pub bank_id: Option<String>,
}

impl AgingQuery {
    /// A malformed `as_of` is `invalid_date`, a `bank_id` that is no id `invalid_request` (one
    /// that is an id but names no bank is the service's `unknown_reference`).
    pub fn read(as_of: Option<&str>, bank_id: Option<&str>) -> ApiResult<AgingQuery> {
        let as_of = as_of
            .map(|s| parse_date(s).map_err(|_| ApiError::new(ErrorCode::InvalidDate, "`as_of` must be a date YYYY-MM-DD").field("as_of")))
            .transpose()?;
        if let Some(b) = bank_id
            && !is_reference_id(b)
        {
            return Err(ApiError::invalid("bank_id", "`bank_id` must match ^[a-z0-9][a-z0-9_-]{1,63}$"));
        }
        Ok(AgingQuery { as_of, bank_id: bank_id.map(str::to_string) })
    }
}

/// `GET /v1/admin/search?q=`: a business number or an engine id, compared exactly.
pub struct SearchQuery {
    pub q: String,
}

impl SearchQuery {
    /// The longest `q`, in characters: business numbers and ids are at most 64; longer finds nothing.
    const MAX: usize = 255;

    pub fn read(q: Option<&str>) -> ApiResult<SearchQuery> {
        let q = q.map(str::trim).unwrap_or_default();
        if q.is_empty() {
            return Err(ApiError::invalid("q", "`q` is required: an out_order_no, a loan_no or an engine id"));
        }
        if q.chars().count() > Self::MAX || q.chars().any(char::is_control) {
            return Err(ApiError::invalid("q", "`q` must be at most 255 characters without control characters"));
        }
        Ok(SearchQuery { q: q.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_object;
    use crate::http::requests::tests::same_fields;

    #[test]
    fn checks_and_types_take_the_same_fields() {
        same_fields::<RedeliverRequest>(RedeliverRequest::FIELDS);
    }

    #[test]
    fn bulk_redelivery_takes_dead_only() {
        let body = |t: &str| RedeliverRequest::read(&parse_object(t.as_bytes()).unwrap());
        let ok = body(r#"{"state":"dead","recipient":{"kind":"bank","id":"bk"},"created_after":"2027-01-01T00:00:00Z"}"#).unwrap();
        let f = ok.filter();
        assert_eq!(f.recipient, Some(("bank".into(), "bk".into())));
        assert!(f.created_after.is_some());
        for (bad, field) in [
            (r#"{"state":"pending"}"#, "state"),
            (r#"{}"#, "state"),
            (r#"{"state":"dead","recipient":{"kind":"admin","id":"x1"}}"#, "recipient.kind"),
            (r#"{"state":"dead","recipient":{"kind":"bank"}}"#, "recipient.id"),
            (r#"{"state":"dead","created_after":"yesterday"}"#, "created_after"),
            (r#"{"state":"dead","other":1}"#, "other"),
        ] {
            let e = body(bad).unwrap_err();
            assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidRequest, Some(field)), "{bad}");
        }
    }

    #[test]
    fn queries_check_their_values() {
        assert_eq!(AgingQuery::read(Some("2027-02-30"), None).err().unwrap().code, ErrorCode::InvalidDate);
        assert_eq!(AgingQuery::read(None, Some("BK!")).err().unwrap().code, ErrorCode::InvalidRequest);
        assert_eq!(AgingQuery::read(None, Some("bk")).unwrap().bank_id.as_deref(), Some("bk"));
        assert_eq!(SearchQuery::read(Some("  ")).err().unwrap().field.as_deref(), Some("q"));
        assert_eq!(SearchQuery::read(None).err().unwrap().code, ErrorCode::InvalidRequest);
        assert_eq!(SearchQuery::read(Some("ord_x")).unwrap().q, "ord_x");
    }
}

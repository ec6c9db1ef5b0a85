//! Typed request bodies: one `#[derive(Deserialize, ToSchema)]` type per endpoint body, whose
//! schema is the body's part of `/openapi.json` ([`super::openapi`]).
//!
//! A body is read in two steps. The strict-JSON pre-pass ([`super::body::parse_object`] and the
//! [`super::body::Obj`] checks each type's `read` runs) answers every refusal with its API.md code,
//! `field` path and message, in the contract's order: serde's own errors could give neither.
//! What the pre-pass lets through is then deserialized into the type, which cannot fail unless the
//! checks and the type disagree (a bug, answered 500 and logged; the unit tests keep them equal).

pub mod credit_lines;
pub mod holds;
pub mod ops;
pub mod orders;
pub mod plans;
pub mod returns;
pub mod setup;
pub mod write_offs;

use crate::error::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::Value;

/// A body the pre-pass accepted, as its type.
fn typed<'a, T: Deserialize<'a>>(v: &'a Value) -> ApiResult<T> {
    // Only the type's name goes to the log: serde's message may quote the body (personal data).
    T::deserialize(v)
        .map_err(|_| ApiError::internal_because("Failed to read a checked request body as its type", std::any::type_name::<T>()))
}

/// For `#[serde(deserialize_with)]`: a string field read with its domain parser (the pre-pass
/// already refused what the parser refuses, with the field's own error code).
fn parsed<'de, D, T, E>(d: D, parse: fn(&str) -> Result<T, E>) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: std::fmt::Display,
{
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, Schema};

    /// The property names of an object schema, and whether it refuses other properties.
    pub(super) fn properties<T: PartialSchema>() -> (Vec<String>, bool) {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => {
                let closed =
                    matches!(o.additional_properties.as_deref(), Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
                (o.properties.keys().cloned().collect(), closed)
            }
            _ => panic!("not an inline object schema"),
        }
    }

    /// The fields the checks take are the type's, and its schema refuses any other.
    pub(super) fn same_fields<T: PartialSchema>(fields: &[&str]) {
        let (mut names, closed) = properties::<T>();
        let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        names.sort();
        fields.sort();
        assert_eq!(names, fields);
        assert!(closed, "additionalProperties: false");
    }
}

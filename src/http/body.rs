//! Strict JSON bodies (API.md section 1): one UTF-8 JSON object, no duplicate keys, no unknown
//! fields, `null` as absent, money only as strings. Every refusal names the offending field.

use crate::domain::dates::parse_date;
use crate::domain::money::{Amount, Rate};
use crate::error::{ApiError, ApiResult, ErrorCode};
use chrono::NaiveDate;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Limits on what a body may contain, independent of the byte limit.
const MAX_DEPTH: usize = 16;

/// Parses a request body: valid UTF-8 JSON, an object at the top, no duplicate keys.
pub fn parse_object(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("$", "the body must be a JSON object"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::invalid("$", "the body is not valid UTF-8"))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize_at(&mut deserializer, 0, String::new()).map_err(|e| {
        let msg = e.to_string();
        match msg.strip_prefix("duplicate key ") {
            Some(rest) => {
                let key = rest.split(" at line").next().unwrap_or(rest).trim_matches('`');
                ApiError::invalid(key.to_string(), format!("duplicate key `{key}`"))
            }
            None => ApiError::invalid("$", format!("the body is not valid JSON: {msg}")),
        }
    })?;
    deserializer.end().map_err(|e| ApiError::invalid("$", format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid("$", "the body must be a JSON object"));
    }
    Ok(value)
}

struct StrictValue;

impl StrictValue {
    /// `path` is the JSON path of the value being read, so that a duplicate key is named by its path.
    fn deserialize_at<'de, D: Deserializer<'de>>(d: D, depth: usize, path: String) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth, path })
    }
}

struct StrictVisitor {
    depth: usize,
    path: String,
}

struct Seed {
    depth: usize,
    path: String,
}

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize_at(d, self.depth, self.path)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // Kept only so the refusal can name the field; no number is ever money.
        Ok(serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed { depth: self.depth + 1, path: format!("{}[{}]", self.path, items.len()) })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{path}`")));
            }
            let value = map.next_value_seed(Seed { depth: self.depth + 1, path })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// A field that PATCH may set, clear (`null`) or leave alone (absent).
#[derive(Debug, Clone, PartialEq)]
pub enum Patch<T> {
    Absent,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Clear => Patch::Clear,
            Patch::Set(v) => Patch::Set(f(v)),
        }
    }

    /// A field that cannot be cleared: the value set, else `current` (the checks refused `null`).
    pub fn or(self, current: T) -> T {
        match self {
            Patch::Set(v) => v,
            Patch::Absent | Patch::Clear => current,
        }
    }

    /// An optional field: the value set, nothing once cleared, else `current`.
    pub fn or_clear(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Set(v) => Some(v),
            Patch::Clear => None,
            Patch::Absent => current,
        }
    }

    /// A field with a default: the value set, the default once cleared, else `current`.
    pub fn or_default(self, current: T, default: T) -> T {
        match self {
            Patch::Set(v) => v,
            Patch::Clear => default,
            Patch::Absent => current,
        }
    }
}

/// Absent, until a body says otherwise (`#[serde(default)]` on the field or its struct).
impl<T> Default for Patch<T> {
    fn default() -> Self {
        Patch::Absent
    }
}

/// `null` clears, a value sets; an absent field is the [`Default`].
impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Patch::Clear, Patch::Set))
    }
}

/// A reader over one JSON object that knows its path, refuses unknown keys up front and
/// turns every wrong value into the API.md error code for that kind of field.
pub struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

const ID_MAX_LEN: usize = 64;

impl<'a> Obj<'a> {
    /// The top-level object, with the keys it may carry.
    pub fn root(value: &'a Value, allowed: &[&str]) -> ApiResult<Obj<'a>> {
        Self::at(String::new(), value, allowed)
    }

    fn at(path: String, value: &'a Value, allowed: &[&str]) -> ApiResult<Obj<'a>> {
        let map = value
            .as_object()
            .ok_or_else(|| ApiError::invalid(if path.is_empty() { "$".into() } else { path.clone() }, "must be a JSON object"))?;
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::invalid(join(&path, unknown), format!("unknown field `{unknown}`")));
        }
        Ok(Obj { path, map })
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value, with `null` read as absent.
    fn value(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> ApiResult<&'a Value> {
        self.value(key).ok_or_else(|| ApiError::invalid(self.path(key), format!("`{key}` is required")))
    }

    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// Absent, explicitly `null`, or a value (for PATCH).
    pub fn patch_value(&self, key: &str) -> Patch<&'a Value> {
        match self.map.get(key) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Clear,
            Some(v) => Patch::Set(v),
        }
    }

    fn as_str(&self, key: &str, v: &'a Value) -> ApiResult<&'a str> {
        v.as_str().ok_or_else(|| ApiError::invalid(self.path(key), format!("`{key}` must be a string")))
    }

    pub fn req_str(&self, key: &str) -> ApiResult<&'a str> {
        self.as_str(key, self.required(key)?)
    }

    pub fn opt_str(&self, key: &str) -> ApiResult<Option<&'a str>> {
        self.value(key).map(|v| self.as_str(key, v)).transpose()
    }

    /// A non-empty string of at most `max_chars` characters.
    pub fn req_text(&self, key: &str, max_chars: usize) -> ApiResult<String> {
        let s = self.req_str(key)?;
        self.check_text(key, s, max_chars)
    }

    pub fn opt_text(&self, key: &str, max_chars: usize) -> ApiResult<Option<String>> {
        self.opt_str(key)?.map(|s| self.check_text(key, s, max_chars)).transpose()
    }

    fn check_text(&self, key: &str, s: &str, max_chars: usize) -> ApiResult<String> {
        let n = s.chars().count();
        if n == 0 || n > max_chars {
            return Err(ApiError::invalid(self.path(key), format!("`{key}` must be 1-{max_chars} characters")));
        }
        if s.chars().any(char::is_control) {
            return Err(ApiError::invalid(self.path(key), format!("`{key}` must not contain control characters")));
        }
        Ok(s.to_string())
    }

    /// 1-`max_len` visible ASCII characters (business numbers such as `out_order_no`).
    pub fn req_visible_ascii(&self, key: &str, max_len: usize) -> ApiResult<String> {
        let s = self.req_str(key)?;
        if !is_visible_ascii(s, max_len) {
            return Err(ApiError::invalid(self.path(key), format!("`{key}` must be 1-{max_len} visible ASCII characters")));
        }
        Ok(s.to_string())
    }

    /// A reference-data id `^[a-z0-9][a-z0-9_-]{1,63}$`.
    pub fn req_id(&self, key: &str) -> ApiResult<String> {
        let s = self.req_str(key)?;
        self.check_id(&self.path(key), s)
    }

    fn check_id(&self, path: &str, s: &str) -> ApiResult<String> {
        if !is_reference_id(s) {
            return Err(ApiError::invalid(path.to_string(), "must match ^[a-z0-9][a-z0-9_-]{1,63}$"));
        }
        Ok(s.to_string())
    }

    /// A list of reference-data ids.
    pub fn id_list(&self, key: &str, v: &'a Value, max_items: usize) -> ApiResult<Vec<String>> {
        let items = v.as_array().ok_or_else(|| ApiError::invalid(self.path(key), format!("`{key}` must be an array")))?;
        if items.len() > max_items {
            return Err(ApiError::invalid(self.path(key), format!("`{key}` has more than {max_items} items")));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.path(key));
            let s = item.as_str().ok_or_else(|| ApiError::invalid(path.clone(), "must be a string"))?;
            let id = self.check_id(&path, s)?;
            if out.contains(&id) {
                return Err(ApiError::invalid(path, "listed twice"));
            }
            out.push(id);
        }
        Ok(out)
    }

    pub fn req_id_list(&self, key: &str, max_items: usize) -> ApiResult<Vec<String>> {
        self.id_list(key, self.required(key)?, max_items)
    }

    /// A list of strings each checked by `parse` (whose error names the element path).
    pub fn str_list<T>(
        &self,
        key: &str,
        v: &'a Value,
        max_items: usize,
        parse: impl Fn(&str, String) -> ApiResult<T>,
    ) -> ApiResult<Vec<T>> {
        let items = v.as_array().ok_or_else(|| ApiError::invalid(self.path(key), format!("`{key}` must be an array")))?;
        if items.len() > max_items {
            return Err(ApiError::invalid(self.path(key), format!("`{key}` has more than {max_items} items")));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{}[{i}]", self.path(key));
                let s = item.as_str().ok_or_else(|| ApiError::invalid(path.clone(), "must be a string"))?;
                parse(s, path)
            })
            .collect()
    }

    pub fn money_value(&self, key: &str, v: &Value) -> ApiResult<Amount> {
        let bad =
            || ApiError::new(ErrorCode::InvalidAmount, format!("`{key}` must be a string of yuan like \"2999.50\"")).field(self.path(key));
        let s = v.as_str().ok_or_else(bad)?;
        Amount::parse(s).map_err(|_| bad())
    }

    pub fn req_money(&self, key: &str) -> ApiResult<Amount> {
        self.money_value(key, self.required(key)?)
    }

    pub fn opt_money(&self, key: &str) -> ApiResult<Option<Amount>> {
        self.value(key).map(|v| self.money_value(key, v)).transpose()
    }

    /// Money that must be above zero (API.md "(>0)").
    pub fn req_positive_money(&self, key: &str) -> ApiResult<Amount> {
        let amount = self.req_money(key)?;
        self.positive(key, amount)
    }

    pub fn positive(&self, key: &str, amount: Amount) -> ApiResult<Amount> {
        if amount.is_zero() {
            return Err(ApiError::new(ErrorCode::InvalidAmount, format!("`{key}` must be above zero")).field(self.path(key)));
        }
        Ok(amount)
    }

    pub fn rate_value(&self, key: &str, v: &Value) -> ApiResult<Rate> {
        let bad = || ApiError::invalid(self.path(key), format!("`{key}` must be a decimal string like \"0.18\""));
        let s = v.as_str().ok_or_else(bad)?;
        Rate::parse(s).map_err(|_| bad())
    }

    pub fn req_rate(&self, key: &str) -> ApiResult<Rate> {
        self.rate_value(key, self.required(key)?)
    }

    pub fn opt_rate(&self, key: &str) -> ApiResult<Option<Rate>> {
        self.value(key).map(|v| self.rate_value(key, v)).transpose()
    }

    pub fn date_value(&self, key: &str, v: &Value) -> ApiResult<NaiveDate> {
        let bad = || ApiError::new(ErrorCode::InvalidDate, format!("`{key}` must be a date YYYY-MM-DD")).field(self.path(key));
        let s = v.as_str().ok_or_else(bad)?;
        parse_date(s).map_err(|_| bad())
    }

    pub fn req_date(&self, key: &str) -> ApiResult<NaiveDate> {
        self.date_value(key, self.required(key)?)
    }

    pub fn opt_date(&self, key: &str) -> ApiResult<Option<NaiveDate>> {
        self.value(key).map(|v| self.date_value(key, v)).transpose()
    }

    pub fn int_value(&self, key: &str, v: &Value, min: i64, max: i64) -> ApiResult<i64> {
        let bad = || ApiError::invalid(self.path(key), format!("`{key}` must be an integer from {min} to {max}"));
        let n = v.as_i64().ok_or_else(bad)?;
        if n < min || n > max {
            return Err(bad());
        }
        Ok(n)
    }

    pub fn req_int(&self, key: &str, min: i64, max: i64) -> ApiResult<i64> {
        self.int_value(key, self.required(key)?, min, max)
    }

    pub fn opt_int(&self, key: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        self.value(key).map(|v| self.int_value(key, v, min, max)).transpose()
    }

    pub fn bool_value(&self, key: &str, v: &Value) -> ApiResult<bool> {
        v.as_bool().ok_or_else(|| ApiError::invalid(self.path(key), format!("`{key}` must be true or false")))
    }

    pub fn req_bool(&self, key: &str) -> ApiResult<bool> {
        self.bool_value(key, self.required(key)?)
    }

    pub fn opt_bool(&self, key: &str) -> ApiResult<Option<bool>> {
        self.value(key).map(|v| self.bool_value(key, v)).transpose()
    }

    pub fn req_obj(&self, key: &str, allowed: &[&str]) -> ApiResult<Obj<'a>> {
        Obj::at(self.path(key), self.required(key)?, allowed)
    }

    pub fn opt_obj(&self, key: &str, allowed: &[&str]) -> ApiResult<Option<Obj<'a>>> {
        self.value(key).map(|v| Obj::at(self.path(key), v, allowed)).transpose()
    }

    /// The objects of an array field, each with its `key[i]` path.
    pub fn req_obj_list(&self, key: &str, allowed: &[&str], max_items: usize) -> ApiResult<Vec<Obj<'a>>> {
        let items = self.required(key)?.as_array().ok_or_else(|| ApiError::invalid(self.path(key), format!("`{key}` must be an array")))?;
        if items.len() > max_items {
            return Err(ApiError::invalid(self.path(key), format!("`{key}` has more than {max_items} items")));
        }
        items.iter().enumerate().map(|(i, v)| Obj::at(format!("{}[{i}]", self.path(key)), v, allowed)).collect()
    }
}

pub fn is_reference_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    (2..=ID_MAX_LEN).contains(&bytes.len())
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes[1..].iter().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

pub fn is_visible_ascii(s: &str, max_len: usize) -> bool {
    !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &str) -> ApiError {
        parse_object(bytes.as_bytes()).unwrap_err()
    }

    #[test]
    fn refuses_non_objects_duplicates_and_garbage() {
        assert_eq!(err("").field.as_deref(), Some("$"));
        assert_eq!(err("[1]").field.as_deref(), Some("$"));
        assert_eq!(err("\"x\"").code, ErrorCode::InvalidRequest);
        assert_eq!(err("{\"a\":1,\"a\":2}").field.as_deref(), Some("a"));
        assert_eq!(err("{\"a\":[{\"b\":1},{\"b\":1,\"b\":2}]}").field.as_deref(), Some("a[1].b"));
        assert_eq!(err("{\"a\":1} x").field.as_deref(), Some("$"));
        assert!(parse_object(b"{\"a\":{\"b\":[1,2]}}").is_ok());
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse_object(format!("{{\"a\":{deep}}}").as_bytes()).is_err());
    }

    #[test]
    fn reader_names_fields_and_codes() {
        let v = parse_object(br#"{"m": 5, "s": "1.234", "d": "2027-02-30", "o": {"x": 1}, "l": [{"r": "bad"}]}"#).unwrap();
        let o = Obj::root(&v, &["m", "s", "d", "o", "l"]).unwrap();
        assert_eq!(o.req_money("m").unwrap_err().code, ErrorCode::InvalidAmount);
        assert_eq!(o.req_money("s").unwrap_err().code, ErrorCode::InvalidAmount);
        assert_eq!(o.req_date("d").unwrap_err().code, ErrorCode::InvalidDate);
        let e = o.req_obj("o", &["y"]).err().unwrap();
        assert_eq!(e.field.as_deref(), Some("o.x"));
        let list = o.req_obj_list("l", &["r"], 10).unwrap();
        assert_eq!(list[0].req_rate("r").unwrap_err().field.as_deref(), Some("l[0].r"));
        // Objects keep their keys sorted (which also makes idempotency fingerprints independent of key
        // order), so of several unknown fields the first in sorted order is named.
        assert_eq!(Obj::root(&v, &["m"]).err().unwrap().field.as_deref(), Some("d"));
    }

    #[test]
    fn null_is_absent() {
        let v = parse_object(br#"{"a": null}"#).unwrap();
        let o = Obj::root(&v, &["a"]).unwrap();
        assert_eq!(o.opt_str("a").unwrap(), None);
        assert_eq!(o.req_str("a").unwrap_err().field.as_deref(), Some("a"));
        assert_eq!(o.patch_value("a"), Patch::Clear);
    }

    #[test]
    fn reference_ids() {
        assert!(is_reference_id("wld-1"));
        assert!(is_reference_id("a1"));
        assert!(!is_reference_id("a"));
        assert!(!is_reference_id("-ab"));
        assert!(!is_reference_id("Ab"));
        assert!(!is_reference_id(&"a".repeat(65)));
        assert!(is_reference_id(&"a".repeat(64)));
    }
}

//! Reading and writing DynamoDB attribute values.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl AsRef<str>) -> AttributeValue {
    AttributeValue::S(v.as_ref().to_string())
}

pub(crate) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

/// A required string attribute.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(other) => Err(format!("attribute {name} is not a string: {other:?}")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(crate) fn opt_bool(item: &Item, name: &str) -> Result<Option<bool>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::Bool(v)) => Ok(Some(*v)),
        Some(other) => Err(format!("attribute {name} is not a boolean: {other:?}")),
    }
}

//! What a client sent, read strictly and repeated briefly: JSON objects whose keys are unique at
//! every depth, and client text in error messages cut to about [`QUOTE_MAX_CHARS`] characters.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Write};

use crate::config::FieldError;

/// The most characters of client text an error message repeats (escapes included); a longer text
/// is cut and its length said instead, so a 200 KB field never comes back in a 400.
pub const QUOTE_MAX_CHARS: usize = 100;

/// `s` quoted as Rust's `{:?}` does (`"a\"b\n"`), cut after [`QUOTE_MAX_CHARS`] characters of
/// output with an ellipsis and the full length: `"tpl_xxxx"… (204800 characters)`.
pub fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    let mut shown = 0;
    for c in s.chars() {
        // `char::escape_debug` also escapes `'`, which `str`'s Debug leaves alone.
        let escaped: Cow<str> = if c == '\'' { Cow::Borrowed("'") } else { Cow::Owned(c.escape_debug().to_string()) };
        let width = escaped.chars().count();
        if shown + width > QUOTE_MAX_CHARS {
            let _ = write!(out, "\"… ({} characters)", s.chars().count());
            return out;
        }
        out.push_str(&escaped);
        shown += width;
    }
    out.push('"');
    out
}

/// A client's object key as part of a field name (`params.<key>`): as sent when short, else its
/// first [`QUOTE_MAX_CHARS`] characters and an ellipsis.
pub fn clipped(key: &str) -> Cow<'_, str> {
    match key.char_indices().nth(QUOTE_MAX_CHARS) {
        None => Cow::Borrowed(key),
        Some((cut, _)) => Cow::Owned(format!("{}…", &key[..cut])),
    }
}

/// Parses a request body that must be one JSON object. Unlike `serde_json::from_slice`, a key
/// given twice in any object, at any depth, is an error naming the key's path (`params.fast`,
/// `legs[1].qty`) instead of the last value silently winning.
pub fn parse_json_object_strict(body: &[u8]) -> Result<Map<String, Value>, FieldError> {
    let duplicate = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = StrictValue { at: &Step::Root, duplicate: &duplicate }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(FieldError::new("body", "must be a JSON object")),
        Err(e) => Err(match duplicate.take() {
            Some(path) => FieldError::new(path, "is given more than once; each key may appear once in an object"),
            None => FieldError::new("body", format!("is not valid JSON ({e})")),
        }),
    }
}

/// Where a value sits in the document, as a chain up to the root (built only on a duplicate).
enum Step<'a> {
    Root,
    Key(&'a Step<'a>, &'a str),
    Index(&'a Step<'a>, usize),
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Root => Ok(()),
            Step::Key(Step::Root, key) => f.write_str(&clipped(key)),
            Step::Key(parent, key) => write!(f, "{parent}.{}", clipped(key)),
            Step::Index(Step::Root, i) => write!(f, "[{i}]"),
            Step::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Builds a `serde_json::Value` as `Value`'s own `Deserialize` does, refusing duplicate keys. The
/// path of the first duplicate goes to `duplicate` (serde errors carry text only).
struct StrictValue<'a> {
    at: &'a Step<'a>,
    duplicate: &'a Cell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
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

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = Step::Index(self.at, items.len());
            match seq.next_element_seed(StrictValue { at: &at, duplicate: self.duplicate })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                self.duplicate.set(Some(Step::Key(self.at, &key).to_string()));
                return Err(de::Error::custom("duplicate key"));
            }
            let value =
                map.next_value_seed(StrictValue { at: &Step::Key(self.at, &key), duplicate: self.duplicate })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(body: &str) -> String {
        parse_json_object_strict(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn duplicate_keys_are_named_by_path() {
        assert_eq!(field_of(r#"{"capital": "1", "symbols": [], "capital": "2"}"#), "capital");
        assert_eq!(field_of(r#"{"params": {"fast": 1, "slow": 5, "fast": 2}}"#), "params.fast");
        assert_eq!(field_of(r#"{"legs": [{"qty": 1}, {"qty": 1, "side": "buy", "qty": 2}]}"#), "legs[1].qty");
        assert_eq!(field_of(r#"{"a": [[{"b": {"c": 1, "c": 1}}]]}"#), "a[0][0].b.c");
        // The same key after unescaping is the same key.
        assert_eq!(field_of(r#"{"fast": 1, "f\u0061st": 2}"#), "fast");
        let err = parse_json_object_strict(br#"{"x": 1, "x": 1}"#).unwrap_err();
        assert_eq!(err.to_string(), "x: is given more than once; each key may appear once in an object");
        let long = "k".repeat(5000);
        let field = field_of(&format!(r#"{{"{long}": 1, "{long}": 2}}"#));
        assert_eq!(field.chars().count(), QUOTE_MAX_CHARS + 1);
    }

    #[test]
    fn parses_as_serde_json_does_otherwise() {
        let body = r#"{"a": [1, -2, 3.5, 1e400, null, true, "s\n"], "b": {"c": {}}, "d": 18446744073709551615}"#;
        let strict = parse_json_object_strict(body.as_bytes());
        // serde_json itself refuses 1e400 (out of f64 range): so do we.
        assert_eq!(strict.unwrap_err().field, "body");
        let body = body.replace("1e400", "1e300");
        let expected: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(Value::Object(parse_json_object_strict(body.as_bytes()).unwrap()), expected);
        // The same key in sibling objects is not a duplicate.
        let siblings = parse_json_object_strict(br#"{"p": {"x": 1}, "q": {"x": 1}, "r": [{"x": 1}, {"x": 2}]}"#);
        assert_eq!(Value::Object(siblings.unwrap()), json!({"p": {"x": 1}, "q": {"x": 1}, "r": [{"x": 1}, {"x": 2}]}));
    }

    #[test]
    fn bodies_that_are_not_one_object_are_refused() {
        for (body, needle) in [
            ("[1]", "must be a JSON object"),
            ("\"x\"", "must be a JSON object"),
            ("{not json", "is not valid JSON"),
            ("{} {}", "is not valid JSON"),
            ("", "is not valid JSON"),
        ] {
            let err = parse_json_object_strict(body.as_bytes()).unwrap_err();
            assert_eq!(err.field, "body", "{body}");
            assert!(err.message.contains(needle), "{body}: {err}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_json_object_strict(deep.as_bytes()).unwrap_err().field, "body");
    }

    #[test]
    fn quoting_is_debug_style_and_short() {
        assert_eq!(quoted("tpl_x"), "\"tpl_x\"");
        assert_eq!(quoted("a\"b\n'c"), format!("{:?}", "a\"b\n'c"));
        assert_eq!(quoted(&"x".repeat(QUOTE_MAX_CHARS)), format!("\"{}\"", "x".repeat(QUOTE_MAX_CHARS)));
        let long = "y".repeat(200 * 1024);
        assert_eq!(quoted(&long), format!("\"{}\"… (204800 characters)", "y".repeat(QUOTE_MAX_CHARS)));
        // Escapes count towards the limit, and are never cut in half.
        let controls = quoted(&"\u{1}".repeat(1000));
        assert!(controls.len() < QUOTE_MAX_CHARS + 40, "{controls}");
        assert!(controls.contains("\\u{1}\"…"), "{controls}");
        let wide = quoted(&"é".repeat(150));
        assert_eq!(wide.chars().filter(|&c| c == 'é').count(), QUOTE_MAX_CHARS);
        assert_eq!(clipped("params"), "params");
        assert_eq!(clipped(&"é".repeat(150)), format!("{}…", "é".repeat(QUOTE_MAX_CHARS)));
    }
}

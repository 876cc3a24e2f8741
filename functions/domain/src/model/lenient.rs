//! Serde helpers that never fail on a field of the wrong shape.
//!
//! Meta's payloads drift: ids arrive as strings or integers, timestamps as strings or numbers,
//! and new versions add or reshape objects. Each helper here accepts the shapes Meta is known to
//! send and turns anything else into "absent" instead of an error, so one odd field never costs
//! Ventana a whole message. They only return an error when the JSON itself is broken.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::json::Object;

/// A JSON value reduced to what a scalar field can use.
enum Scalar {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    /// `null`, an object or an array: nothing a scalar field can use.
    Nothing,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Nothing)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Nothing)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nothing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nothing)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// A string; numbers become their decimal text (Meta sends template ids as integers and some
/// examples send phone numbers as integers). Booleans, objects and arrays become `None`.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Str(s) => Some(s),
        Scalar::Int(n) => Some(n.to_string()),
        Scalar::UInt(n) => Some(n.to_string()),
        Scalar::Float(n) if n.is_finite() => Some(n.to_string()),
        Scalar::Float(_) | Scalar::Bool(_) | Scalar::Nothing => None,
    })
}

/// Like [`string`], with an empty string for anything unusable.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(string(d)?.unwrap_or_default())
}

/// A boolean, also accepted as `"true"`/`"false"` or `1`/`0`; anything else is `None`.
pub(crate) fn opt_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Bool(b) => Some(b),
        Scalar::Str(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Scalar::Str(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        Scalar::Int(n) if n == 0 || n == 1 => Some(n == 1),
        Scalar::UInt(n) if n <= 1 => Some(n == 1),
        _ => None,
    })
}

/// Like [`opt_flag`], with `false` for anything absent or unusable.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(opt_flag(d)?.unwrap_or(false))
}

/// A finite number, also accepted as a numeric string.
pub(crate) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let n = match scalar(d)? {
        Scalar::Float(n) => Some(n),
        Scalar::Int(n) => Some(n as f64),
        Scalar::UInt(n) => Some(n as f64),
        Scalar::Str(s) => s.trim().parse::<f64>().ok(),
        Scalar::Bool(_) | Scalar::Nothing => None,
    };
    Ok(n.filter(|n| n.is_finite()))
}

/// A whole number that fits `i64`, also accepted as a numeric string or an integral float.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Int(n) => Some(n),
        Scalar::UInt(n) => i64::try_from(n).ok(),
        Scalar::Float(n) => float_to_i64(n),
        Scalar::Str(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(float_to_i64))
        }
        Scalar::Bool(_) | Scalar::Nothing => None,
    })
}

fn float_to_i64(n: f64) -> Option<i64> {
    // `as` saturates; the range check keeps out values that would be clamped.
    (n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e18).then_some(n as i64)
}

/// A unix timestamp: seconds as an integer or a numeric string (see
/// [`crate::clock::parse_unix`]), or an RFC 3339 date, which some account updates use.
pub(crate) fn unix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Int(n) => Some(n),
        Scalar::UInt(n) => i64::try_from(n).ok(),
        Scalar::Float(n) => float_to_i64(n),
        Scalar::Str(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(time::OffsetDateTime::unix_timestamp)
            })
        }
        Scalar::Bool(_) | Scalar::Nothing => None,
    })
}

/// A number kept as the exact text Meta sent (`30`, `12.99`), so that no decimal is lost to a
/// float; a string is kept as it is. Anything else is `None`.
pub(crate) fn number_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(raw) = Option::<Box<RawValue>>::deserialize(d)? else {
        return Ok(None);
    };
    let t = raw.get().trim();
    Ok(if t.starts_with('"') {
        serde_json::from_str::<String>(t).ok()
    } else if serde_json::from_str::<serde_json::Number>(t).is_ok() {
        Some(t.to_owned())
    } else {
        None
    })
}

/// A JSON object parsed as `T`; anything that is not an object of that shape is `None`.
pub(crate) fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = Option::<Box<RawValue>>::deserialize(d)?;
    Ok(raw.and_then(|r| parse_object(&r)))
}

/// An array of `T`, keeping the elements that parse and dropping the others; a lone object is
/// taken as a one-element array, anything else as an empty one.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = Option::<Box<RawValue>>::deserialize(d)?;
    Ok(raw.map(|r| parse_list(&r)).unwrap_or_default())
}

/// Parses raw JSON as `T` if it is an object ([`Object`]: never a struct from an array).
pub(crate) fn parse_object<T: DeserializeOwned>(raw: &RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok().map(|Object(t)| t)
}

/// Parses raw JSON as a list of `T` with the rules of [`list`].
pub(crate) fn parse_list<T: DeserializeOwned>(raw: &RawValue) -> Vec<T> {
    let t = raw.get().trim_start();
    if t.starts_with('{') {
        return parse_object(raw).into_iter().collect();
    }
    serde_json::from_str::<Vec<Box<RawValue>>>(t)
        .map(|items| items.iter().filter_map(|i| parse_object(i)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Probe {
        #[serde(deserialize_with = "string")]
        s: Option<String>,
        #[serde(deserialize_with = "flag")]
        b: bool,
        #[serde(deserialize_with = "float")]
        f: Option<f64>,
        #[serde(deserialize_with = "int")]
        i: Option<i64>,
        #[serde(deserialize_with = "unix")]
        t: Option<i64>,
        #[serde(deserialize_with = "number_text")]
        n: Option<String>,
        #[serde(deserialize_with = "list")]
        l: Vec<Inner>,
        #[serde(deserialize_with = "object")]
        o: Option<Inner>,
    }

    #[derive(Deserialize, Debug, Default, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "string")]
        k: Option<String>,
    }

    fn probe(s: &str) -> Probe {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn strings_accept_numbers_and_ignore_other_shapes() {
        assert_eq!(
            probe(r#"{"s":1689556908129832}"#).s.as_deref(),
            Some("1689556908129832")
        );
        assert_eq!(probe(r#"{"s":-3}"#).s.as_deref(), Some("-3"));
        assert_eq!(probe(r#"{"s":"x"}"#).s.as_deref(), Some("x"));
        assert_eq!(probe(r#"{"s":{"a":[1,{"b":2}]}}"#).s, None);
        assert_eq!(probe(r#"{"s":[1,2]}"#).s, None);
        assert_eq!(probe(r#"{"s":null}"#).s, None);
        assert_eq!(probe(r#"{"s":true}"#).s, None);
    }

    #[test]
    fn flags_numbers_and_timestamps_are_lenient() {
        assert!(probe(r#"{"b":"true"}"#).b);
        assert!(probe(r#"{"b":1}"#).b);
        assert!(!probe(r#"{"b":"yes please"}"#).b);
        assert_eq!(probe(r#"{"f":"12.5"}"#).f, Some(12.5));
        assert_eq!(probe(r#"{"f":"NaN"}"#).f, None);
        assert_eq!(probe(r#"{"i":"42"}"#).i, Some(42));
        assert_eq!(probe(r#"{"i":42.0}"#).i, Some(42));
        assert_eq!(probe(r#"{"i":42.5}"#).i, None);
        assert_eq!(probe(r#"{"i":1e300}"#).i, None);
        assert_eq!(probe(r#"{"t":"1749416383"}"#).t, Some(1_749_416_383));
        assert_eq!(
            probe(r#"{"t":"2022-12-12T07:09:27.000Z"}"#).t,
            Some(1_670_828_967)
        );
        assert_eq!(probe(r#"{"t":"soon"}"#).t, None);
    }

    #[test]
    fn number_text_keeps_the_exact_digits() {
        assert_eq!(probe(r#"{"n":30}"#).n.as_deref(), Some("30"));
        assert_eq!(probe(r#"{"n":12.10}"#).n.as_deref(), Some("12.10"));
        assert_eq!(
            probe(r#"{"n":12345678901234567890.123456789}"#)
                .n
                .as_deref(),
            Some("12345678901234567890.123456789")
        );
        assert_eq!(probe(r#"{"n":"9.99"}"#).n.as_deref(), Some("9.99"));
        assert_eq!(probe(r#"{"n":{"amount":1}}"#).n, None);
        assert_eq!(probe(r#"{"n":null}"#).n, None);
    }

    #[test]
    fn number_text_also_works_from_a_value() {
        let v = serde_json::json!({"n": 7.25});
        let p: Probe = serde_json::from_value(v).unwrap();
        assert_eq!(p.n.as_deref(), Some("7.25"));
    }

    #[test]
    fn lists_keep_good_elements_and_objects_refuse_arrays() {
        let p = probe(r#"{"l":[{"k":"a"},"junk",{"k":1},[1]]}"#);
        assert_eq!(
            p.l,
            vec![
                Inner {
                    k: Some("a".into())
                },
                Inner {
                    k: Some("1".into())
                }
            ]
        );
        assert_eq!(probe(r#"{"l":{"k":"solo"}}"#).l.len(), 1);
        assert!(probe(r#"{"l":"nope"}"#).l.is_empty());
        assert_eq!(probe(r#"{"o":["x"]}"#).o, None);
        assert_eq!(
            probe(r#"{"o":{"k":"x"}}"#).o,
            Some(Inner {
                k: Some("x".into())
            })
        );
    }

    #[test]
    fn broken_json_is_still_an_error() {
        assert!(serde_json::from_str::<Probe>(r#"{"s": }"#).is_err());
    }
}

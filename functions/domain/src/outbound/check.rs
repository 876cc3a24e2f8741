//! Small field checks shared by the validators. Each names the field it refuses with a
//! JSON-path-like string built from the caller's `path` and the key.

use serde_json::{Map, Value};

use super::error::SendError;

pub(super) type Obj = Map<String, Value>;
pub(super) type Res<T> = Result<T, SendError>;

/// `path.key`, or `key` at the top level.
pub(super) fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`.
pub(super) fn nth(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A field that is absent or `null` counts as absent.
fn get<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// JSON's name for a value's kind, for error reasons.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses a value of the wrong JSON kind.
pub(super) fn wrong_kind(field: String, want: &str, got: &Value) -> SendError {
    SendError::invalid(field, format!("must be {want}, not {}", kind(got)))
}

/// An element of an array that must be an object.
pub(super) fn as_object<'a>(v: &'a Value, field: &str) -> Res<&'a Obj> {
    v.as_object()
        .ok_or_else(|| wrong_kind(field.to_owned(), "an object", v))
}

pub(super) fn opt_object<'a>(obj: &'a Obj, path: &str, key: &str) -> Res<Option<&'a Obj>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(wrong_kind(at(path, key), "an object", v)),
    }
}

pub(super) fn req_object<'a>(obj: &'a Obj, path: &str, key: &str) -> Res<&'a Obj> {
    opt_object(obj, path, key)?.ok_or_else(|| SendError::missing(at(path, key)))
}

pub(super) fn opt_array<'a>(obj: &'a Obj, path: &str, key: &str) -> Res<Option<&'a [Value]>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(wrong_kind(at(path, key), "an array", v)),
    }
}

pub(super) fn req_array<'a>(obj: &'a Obj, path: &str, key: &str) -> Res<&'a [Value]> {
    opt_array(obj, path, key)?.ok_or_else(|| SendError::missing(at(path, key)))
}

/// An optional string (any length, empty allowed).
pub(super) fn opt_str<'a>(obj: &'a Obj, path: &str, key: &str) -> Res<Option<&'a str>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong_kind(at(path, key), "a string", v)),
    }
}

/// A required string (empty allowed).
pub(super) fn req_str<'a>(obj: &'a Obj, path: &str, key: &str) -> Res<&'a str> {
    opt_str(obj, path, key)?.ok_or_else(|| SendError::missing(at(path, key)))
}

/// Checks a length in characters (Unicode scalar values, not bytes).
pub(super) fn check_len(s: &str, field: &str, min: usize, max: usize) -> Res<()> {
    let n = s.chars().count();
    if n < min {
        let reason = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters (got {n})")
        };
        return Err(SendError::invalid(field, reason));
    }
    if n > max {
        return Err(SendError::invalid(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

/// A required string of `min..=max` characters.
pub(super) fn req_text<'a>(
    obj: &'a Obj,
    path: &str,
    key: &str,
    min: usize,
    max: usize,
) -> Res<&'a str> {
    let s = req_str(obj, path, key)?;
    check_len(s, &at(path, key), min, max)?;
    Ok(s)
}

/// An optional string which, when present, has `min..=max` characters.
pub(super) fn opt_text<'a>(
    obj: &'a Obj,
    path: &str,
    key: &str,
    min: usize,
    max: usize,
) -> Res<Option<&'a str>> {
    let s = opt_str(obj, path, key)?;
    if let Some(s) = s {
        check_len(s, &at(path, key), min, max)?;
    }
    Ok(s)
}

/// A URL Meta can fetch: `http://` or `https://` (any case) followed by a host, with no
/// whitespace. Meta's docs say "HTTP/HTTPS only"; anything else (`ftp:`, `data:`, a bare
/// path, a `<placeholder>`) is refused here rather than by Meta later.
pub(super) fn check_http_url(s: &str, field: &str) -> Res<()> {
    let has = |scheme: &str| {
        s.as_bytes()
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes()))
    };
    // The prefixes are ASCII, so slicing right after them is on a character boundary.
    let rest = if has("https://") {
        s.get(8..).unwrap_or_default()
    } else if has("http://") {
        s.get(7..).unwrap_or_default()
    } else {
        return Err(SendError::invalid(
            field,
            "must be an http:// or https:// URL",
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(SendError::invalid(field, "must be a URL with a host"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(SendError::invalid(field, "must not contain whitespace"));
    }
    Ok(())
}

/// What a media object may carry as `caption`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Caption {
    /// Image, video and document messages: up to 1,024 characters.
    Allowed,
    /// Audio and sticker messages take none.
    Refused,
    /// Headers and template parameters: not checked.
    Ignored,
}

/// Longest media caption Meta accepts.
pub const CAPTION_MAX: usize = 1024;

/// A media object: exactly one of `id` (an uploaded media id) or `link` (an http(s) URL).
pub(super) fn media(obj: &Obj, path: &str, caption: Caption) -> Res<()> {
    let id = opt_str(obj, path, "id")?;
    let link = opt_str(obj, path, "link")?;
    match (id, link) {
        (Some(_), Some(_)) => {
            return Err(SendError::invalid(
                path,
                "must have exactly one of `id` or `link`, not both",
            ));
        }
        (None, None) => {
            return Err(SendError::missing(at(path, "id")));
        }
        (Some(id), None) => check_len(id, &at(path, "id"), 1, usize::MAX)?,
        (None, Some(link)) => check_http_url(link, &at(path, "link"))?,
    }
    match caption {
        Caption::Allowed => {
            opt_text(obj, path, "caption", 0, CAPTION_MAX)?;
        }
        Caption::Refused => {
            if get(obj, "caption").is_some() {
                return Err(SendError::invalid(
                    at(path, "caption"),
                    "audio and sticker messages take no caption",
                ));
            }
        }
        Caption::Ignored => {}
    }
    Ok(())
}

/// A coordinate in `-limit..=limit` degrees, given as a JSON number or a numeric string
/// (Meta's spec types latitude and longitude as strings, its examples use numbers).
pub(super) fn coordinate(obj: &Obj, path: &str, key: &str, limit: f64) -> Res<f64> {
    let field = at(path, key);
    let v = match get(obj, key) {
        None => return Err(SendError::missing(field)),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(v) => return Err(wrong_kind(field, "a number", v)),
    };
    match v {
        Some(v) if v.is_finite() && (-limit..=limit).contains(&v) => Ok(v),
        _ => Err(SendError::invalid(
            field,
            format!("must be a number from -{limit} to {limit}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_an_http_scheme_and_a_host() {
        for ok in [
            "https://example.com/a.jpg",
            "http://example.com",
            "HTTPS://EXAMPLE.COM/x?y=1",
        ] {
            assert!(check_http_url(ok, "f").is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com/a",
            "example.com/a.jpg",
            "https://",
            "https:///path",
            "http(s)://image-url",
            "<http(s)://audio-url>",
            "https://exa mple.com",
            "",
        ] {
            assert!(check_http_url(bad, "f").is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let emoji = "😀".repeat(20);
        assert!(check_len(&emoji, "f", 1, 20).is_ok());
        assert!(check_len(&format!("{emoji}a"), "f", 1, 20).is_err());
    }
}

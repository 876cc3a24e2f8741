//! `GET /{version}/{waba_id}/message_templates`: the seeded templates, cursor-paginated as the
//! Graph API paginates (`limit`, `after`, `before`, `paging.cursors`, `paging.next`,
//! `paging.previous`).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::config::Template;

/// The page size when `limit` is not given (the Graph API's default).
pub(crate) const DEFAULT_LIMIT: usize = 25;
/// The largest page the sandbox serves; a larger `limit` is lowered to it.
pub(crate) const MAX_LIMIT: usize = 100;

/// Why a listing request was refused: a Cloud API code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListError {
    pub code: i64,
    pub message: String,
}

/// One page of `templates` for the query parameters, with `paging.next` / `previous` built on
/// `page_url` (the listing's own URL without its query).
///
/// Filters: `name` (exact), `status` and `category` (comma-separated, any case), `language`.
/// `fields` (comma-separated) keeps only those fields, plus `id`.
pub(crate) fn page(
    templates: &[Template],
    query: &HashMap<String, String>,
    page_url: &str,
) -> Result<Value, ListError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(0) | Err(_) => {
                return Err(ListError {
                    code: 100,
                    message: format!("(#100) Param limit must be a positive integer, got `{l}`"),
                });
            }
            Ok(n) => n.min(MAX_LIMIT),
        },
    };
    let selected: Vec<&Template> = templates
        .iter()
        .filter(|t| keeps(query.get("name"), &t.name, false))
        .filter(|t| keeps(query.get("status"), &t.status, true))
        .filter(|t| keeps(query.get("category"), &t.category, true))
        .filter(|t| keeps(query.get("language"), &t.language, false))
        .collect();
    let (start, end) = match (query.get("after"), query.get("before")) {
        (Some(after), _) => {
            let start = decode_cursor(after)?.saturating_add(1).min(selected.len());
            (start, (start + limit).min(selected.len()))
        }
        (None, Some(before)) => {
            let end = decode_cursor(before)?.min(selected.len());
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, limit.min(selected.len())),
    };
    let fields: Option<Vec<&str>> = query.get("fields").map(|f| {
        f.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    });
    let data: Vec<Value> = selected[start..end]
        .iter()
        .map(|t| render(t, fields.as_deref()))
        .collect();
    let mut out = json!({ "data": data });
    if start < end {
        let mut paging = json!({
            "cursors": {"before": encode_cursor(start), "after": encode_cursor(end - 1)}
        });
        let link = |key: &str, cursor: String| {
            let mut pairs: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "after" | "before" | "limit"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            pairs.sort();
            pairs.push(("limit".into(), limit.to_string()));
            pairs.push((key.into(), cursor));
            let query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
                .collect();
            format!("{page_url}?{}", query.join("&"))
        };
        if let Some(obj) = paging.as_object_mut() {
            if end < selected.len() {
                obj.insert("next".into(), json!(link("after", encode_cursor(end - 1))));
            }
            if start > 0 {
                obj.insert(
                    "previous".into(),
                    json!(link("before", encode_cursor(start))),
                );
            }
        }
        if let Some(obj) = out.as_object_mut() {
            obj.insert("paging".into(), paging);
        }
    }
    Ok(out)
}

/// Whether a filter (absent, or a comma-separated list) keeps `value`.
fn keeps(filter: Option<&String>, value: &str, any_of: bool) -> bool {
    match filter {
        None => true,
        Some(f) if any_of => f
            .split(',')
            .map(str::trim)
            .any(|want| want.eq_ignore_ascii_case(value)),
        Some(f) => f == value,
    }
}

fn render(t: &Template, fields: Option<&[&str]>) -> Value {
    let mut all = Map::new();
    all.insert("name".into(), json!(t.name));
    all.insert("components".into(), t.components.clone());
    all.insert("language".into(), json!(t.language));
    all.insert("status".into(), json!(t.status));
    all.insert("category".into(), json!(t.category));
    all.insert("id".into(), json!(t.id));
    if let Some(fields) = fields {
        all.retain(|k, _| k == "id" || fields.contains(&k.as_str()));
    }
    Value::Object(all)
}

/// A cursor is opaque to clients, as Meta's are: the position, base64-encoded.
fn encode_cursor(index: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("sandbox:{index}"))
}

fn decode_cursor(cursor: &str) -> Result<usize, ListError> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.strip_prefix("sandbox:")?.parse().ok())
        .ok_or_else(|| ListError {
            code: 131059,
            message: "(#131059) Invalid pagination cursor".into(),
        })
}

/// Percent-encodes a query component (everything but unreserved characters).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(n: usize) -> Vec<Template> {
        (0..n)
            .map(|i| {
                let mut t = Template::approved(format!("t{i}"), "en", "UTILITY", json!([]));
                if i % 2 == 1 {
                    t.status = "PAUSED".into();
                }
                t
            })
            .collect()
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(page: &Value) -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn after_and_before_move_between_pages() {
        let t = seeds(5);
        let first = page(&t, &q(&[("limit", "2")]), "U").unwrap();
        assert_eq!(names(&first), ["t0", "t1"]);
        assert!(first["paging"].get("previous").is_none());
        let after = first["paging"]["cursors"]["after"].as_str().unwrap();
        let second = page(&t, &q(&[("limit", "2"), ("after", after)]), "U").unwrap();
        assert_eq!(names(&second), ["t2", "t3"]);
        let before = second["paging"]["cursors"]["before"].as_str().unwrap();
        let back = page(&t, &q(&[("limit", "2"), ("before", before)]), "U").unwrap();
        assert_eq!(names(&back), ["t0", "t1"]);
        let after = second["paging"]["cursors"]["after"].as_str().unwrap();
        let last = page(&t, &q(&[("limit", "2"), ("after", after)]), "U").unwrap();
        assert_eq!(names(&last), ["t4"]);
        assert!(last["paging"].get("next").is_none());
        assert!(
            last["paging"]["previous"]
                .as_str()
                .unwrap()
                .starts_with("U?limit=2&before=")
        );
    }

    #[test]
    fn filters_and_fields_apply() {
        let t = seeds(4);
        let approved = page(&t, &q(&[("status", "approved"), ("fields", "name")]), "U").unwrap();
        assert_eq!(names(&approved), ["t0", "t2"]);
        let first = &approved["data"][0];
        assert_eq!(first.as_object().unwrap().len(), 2, "{first}");
        assert!(first.get("id").is_some());
        assert_eq!(
            names(&page(&t, &q(&[("name", "t3")]), "U").unwrap()),
            ["t3"]
        );
        let empty = page(&t, &q(&[("name", "nope")]), "U").unwrap();
        assert_eq!(empty, json!({"data": []}));
    }

    #[test]
    fn next_keeps_the_filters() {
        let t = seeds(6);
        let p = page(&t, &q(&[("status", "APPROVED"), ("limit", "1")]), "U").unwrap();
        let next = p["paging"]["next"].as_str().unwrap();
        assert!(
            next.starts_with("U?status=APPROVED&limit=1&after="),
            "{next}"
        );
    }

    #[test]
    fn bad_cursors_and_limits_are_refused() {
        let t = seeds(2);
        assert_eq!(
            page(&t, &q(&[("after", "garbage!")]), "U")
                .unwrap_err()
                .code,
            131059
        );
        assert_eq!(page(&t, &q(&[("limit", "0")]), "U").unwrap_err().code, 100);
        assert_eq!(page(&t, &q(&[("limit", "x")]), "U").unwrap_err().code, 100);
    }
}

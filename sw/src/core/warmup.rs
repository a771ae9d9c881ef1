//! Login warm-up: after a login, the worker reads a configured, ordered list
//! of routes in the background, so a person who logs in and then loses the
//! network still has their lists, their latest session and their images.
//!
//! The first route (`/api/sync/init` by default) is read first; the others
//! may name values of its answer in braces:
//! - `{sessions.0.id}`: a field, array elements by index;
//! - `{assets.*.id}`: every element of an array (one route each);
//! - `{assets[contentType=image/*].id}`: the elements whose field matches
//!   (a trailing `*` is a prefix match).
//!
//! A route whose values are missing is skipped; the whole list is cut at
//! `warmUpMaxRequests`.

use super::json::Value;
use super::text::{self, cat};

/// The routes to read after the first one, its answer filled in, in order,
/// at most `max` in all (the first one counts).
pub fn expand(routes: &[String], first_answer: &Value, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for route in routes.iter().skip(1) {
        for url in expand_one(route, first_answer) {
            if out.len() + 1 >= max {
                return out;
            }
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// One route with its `{…}` filled in: none, one, or one per element.
fn expand_one(route: &str, answer: &Value) -> Vec<String> {
    let Some(open) = text::find_byte(route, b'{') else { return vec![route.to_string()] };
    let Some(close) = text::find_byte(&route[open..], b'}').map(|c| open + c) else { return vec![] };
    let (head, path, tail) = (&route[..open], &route[open + 1..close], &route[close + 1..]);
    let mut out = Vec::new();
    for value in select(answer, path) {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.as_str().to_string(),
            _ => continue,
        };
        // Values go into a path: only what cannot leave its segment.
        if text.is_empty()
            || !text.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~'))
            || text == ".."
        {
            continue;
        }
        for rest in expand_one(tail, answer) {
            out.push(cat!(head, text, rest));
        }
    }
    out
}

/// The values `path` names in `value` (`a.0.b`, `a.*.b`, `a[f=x*].b`).
fn select<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for segment in text::split(path, b'.') {
        let (name, filter) = match text::split_once(segment, b'[') {
            Some((name, f)) => (name, f.strip_suffix("]").and_then(|f| text::split_once(f, b'='))),
            None => (segment, None),
        };
        let mut next = Vec::new();
        for &v in &current {
            let (all, one): (&[Value], Option<&Value>) = match (name, v) {
                ("*", Value::Array(items)) => (items, None),
                // (As u64: the one integer parser the wasm carries.)
                (n, Value::Array(items)) => match n.parse::<u64>() {
                    Ok(i) => (&[], usize::try_from(i).ok().and_then(|i| items.get(i))),
                    Err(_) => (&[], None),
                },
                (n, Value::Object(map)) => (&[], map.get(n)),
                _ => (&[], None),
            };
            for p in all.iter().chain(one) {
                match (filter, p) {
                    (Some((field, want)), Value::Array(items)) => {
                        for item in items {
                            if matches(item.get(field), want) {
                                next.push(item);
                            }
                        }
                    }
                    (Some(_), _) => {}
                    (None, p) => next.push(p),
                }
            }
        }
        current = next;
    }
    current
}

fn matches(value: Option<&Value>, want: &str) -> bool {
    let Some(Value::String(s)) = value else { return false };
    match want.strip_suffix("*") {
        Some(prefix) => s.starts_with(prefix),
        None => s == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> Value {
        crate::core::json::from_serde(serde_json::json!({
            "user": { "id": "u1" },
            "sessions": [{ "id": "s2", "title": "latest" }, { "id": "s1" }],
            "projects": [{ "id": "p1" }],
            "assets": [
                { "id": "a1", "contentType": "image/png" },
                { "id": "a2", "contentType": "video/mp4" },
                { "id": "a3", "contentType": "image/jpeg" },
                { "id": "../x", "contentType": "image/png" },
            ],
        }))
    }

    #[test]
    fn the_default_list_reads_the_latest_session_and_the_images() {
        let routes: Vec<String> = crate::core::config::Config::default().warm_up;
        let urls = expand(&routes, &init(), 40);
        assert_eq!(
            urls,
            [
                "/api/chat/sessions",
                "/api/chat/sessions/s2/messages",
                "/api/projects",
                "/api/assets/a1/content",
                "/api/assets/a3/content",
            ],
            "a value that could leave its path segment is skipped"
        );
    }

    #[test]
    fn missing_values_skip_their_route_and_the_budget_cuts_the_list() {
        let routes = ["/first", "/x/{nothing.0.id}", "/p/{projects.*.id}", "/s/{sessions.*.id}"].map(String::from);
        assert_eq!(expand(&routes, &init(), 40), ["/p/p1", "/s/s2", "/s/s1"]);
        assert_eq!(expand(&routes, &init(), 3), ["/p/p1", "/s/s2"], "the first route counts");
        assert_eq!(expand(&routes, &Value::Null, 40), Vec::<String>::new());
    }
}

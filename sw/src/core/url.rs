//! Just enough URL splitting for routing.
//!
//! Request URLs reaching a service worker have already been parsed and
//! serialised by the browser's URL parser, so they are absolute and
//! normalised; splitting them needs no full parser (the `url` crate would
//! add ~100 KB of IDNA tables to the wasm).

/// The parts of an absolute URL that routing looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `scheme://host[:port]`, as `location.origin` spells it.
    pub origin: &'a str,
    /// The path, starting with `/`, without query or fragment.
    pub path: &'a str,
    /// The query without its `?`, if any.
    pub query: Option<&'a str>,
}

/// Splits an absolute URL. Returns `None` for URLs without an authority
/// (`data:`, `blob:`), which no route can match.
pub fn split(url: &str) -> Option<UrlParts<'_>> {
    let scheme_end = super::text::find(url, "://")?;
    let after_scheme = scheme_end + 3;
    let rest = &url[after_scheme..];
    let authority_len = rest.bytes().position(|b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let origin = &url[..after_scheme + authority_len];
    let rest = &rest[authority_len..];
    let rest = super::text::before(rest, b'#');
    let (path, query) = match super::text::split_once(rest, b'?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Some(UrlParts { origin, path, query })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_origin_path_and_query() {
        assert_eq!(
            split("http://127.0.0.1:8080/api/chat/sessions?limit=5#x"),
            Some(UrlParts { origin: "http://127.0.0.1:8080", path: "/api/chat/sessions", query: Some("limit=5") })
        );
    }

    #[test]
    fn bare_origin_has_root_path() {
        let p = split("https://example.com").unwrap();
        assert_eq!((p.origin, p.path, p.query), ("https://example.com", "/", None));
        let p = split("https://example.com?q").unwrap();
        assert_eq!((p.path, p.query), ("/", Some("q")));
    }

    #[test]
    fn urls_without_authority_are_not_split() {
        assert_eq!(split("data:text/plain,hi"), None);
        assert_eq!(split("blob:null/1234"), None);
    }
}

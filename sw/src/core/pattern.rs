//! Route patterns from the config.
//!
//! Syntax, chosen to read like the paths it matches:
//! - literal characters match themselves;
//! - a segment that is exactly `*` matches one non-empty path segment
//!   (`/api/assets/*/content` matches `/api/assets/42/content` only);
//! - a `*` glued to the end of the last segment makes a prefix match that
//!   also takes any rest of the path (`/api/chat/sessions*` matches
//!   `/api/chat/sessions` and `/api/chat/sessions/7/messages`).

use super::text::cat;

/// A parsed, validated route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// Patterns are paths: they must start with `/`.
    NotAbsolute(String),
    /// `**` or `*x` inside a segment would be ambiguous.
    BadWildcard(String),
}

impl PatternError {
    /// What is wrong, for the config's error (`Display` writes the same).
    pub fn text(&self) -> String {
        match self {
            PatternError::NotAbsolute(p) => cat!("route pattern \"", p, "\" must start with '/'"),
            PatternError::BadWildcard(p) => {
                cat!("route pattern \"", p, "\": '*' must be a whole segment, or the last character")
            }
        }
    }
}

impl core::fmt::Display for PatternError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if !source.starts_with("/") {
            return Err(PatternError::NotAbsolute(source.into()));
        }
        let body = source.strip_suffix("*").unwrap_or(source);
        for segment in super::text::split(body, b'/') {
            if super::text::find_byte(segment, b'*').is_some() && segment != "*" {
                return Err(PatternError::BadWildcard(source.into()));
            }
        }
        Ok(Self { source: source.into() })
    }

    /// One of the built-in defaults (`Config::default`, `BatchRoute::messages`),
    /// taken as it is: checking constants at each start only cost the wasm
    /// the calls. `defaults_are_valid_patterns` (config's tests) holds each
    /// one to `parse`.
    pub(crate) fn builtin(source: &str) -> Self {
        Self { source: source.into() }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does `path` (no query, no fragment) match?
    pub fn matches(&self, path: &str) -> bool {
        let open_tail = self.source.ends_with("*") && !self.source.ends_with("/*");
        let body = if open_tail { &self.source[..self.source.len() - 1] } else { &self.source };
        let mut want = super::text::split(body, b'/');
        let mut have = super::text::split(path, b'/');
        let mut last_want = want.next();
        let mut last_have = have.next();
        loop {
            let next_want = want.next();
            match (last_want, last_have) {
                (Some(w), Some(h)) if next_want.is_none() && open_tail => return h.starts_with(w),
                (Some(w), Some(h)) => {
                    let ok = if w == "*" { !h.is_empty() } else { w == h };
                    if !ok {
                        return false;
                    }
                }
                (None, None) => return true,
                _ => return false,
            }
            last_want = next_want;
            last_have = have.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Pattern::parse(p).unwrap().matches(path)
    }

    #[test]
    fn exact_paths() {
        assert!(m("/api/projects", "/api/projects"));
        assert!(!m("/api/projects", "/api/projects/1"));
        assert!(!m("/api/projects", "/api/project"));
        assert!(!m("/api/projects", "/api/projectsX"));
    }

    #[test]
    fn open_tail_matches_any_rest() {
        assert!(m("/api/chat/sessions*", "/api/chat/sessions"));
        assert!(m("/api/chat/sessions*", "/api/chat/sessions/7/messages"));
        assert!(m("/api/assets*", "/api/assets/1"));
        assert!(!m("/api/chat/sessions*", "/api/chat/session"));
        assert!(!m("/api/chat/sessions*", "/api/chat"));
    }

    #[test]
    fn inner_star_is_one_segment() {
        assert!(m("/api/assets/*/content", "/api/assets/42/content"));
        assert!(!m("/api/assets/*/content", "/api/assets//content"));
        assert!(!m("/api/assets/*/content", "/api/assets/1/2/content"));
        assert!(m("/api/assets/*", "/api/assets/42"));
        assert!(!m("/api/assets/*", "/api/assets/42/content"));
        assert!(!m("/api/assets/*", "/api/assets/"));
    }

    /// The table `shim/sw.js`'s copy of the matcher is held to as well
    /// (`tests/page_protocol.rs`).
    #[test]
    fn the_shared_table_of_cases() {
        let cases: Vec<(String, String, bool)> = serde_json::from_str(include_str!("pattern_cases.json")).unwrap();
        assert!(cases.len() >= 30);
        for (pattern, path, want) in cases {
            let p = Pattern::parse(&pattern).unwrap_or_else(|e| panic!("the table holds valid patterns only: {e}"));
            assert_eq!(p.matches(&path), want, "{pattern} on {path}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Pattern::parse("api/x"), Err(PatternError::NotAbsolute("api/x".into())));
        assert_eq!(Pattern::parse("/api/a*b/c"), Err(PatternError::BadWildcard("/api/a*b/c".into())));
    }
}

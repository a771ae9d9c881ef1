//! Finding a short text in another. `str::find`, `contains`, `split` and
//! `replace` with a `&str` pattern link std's two-way string searcher
//! (about 2.5 KB of wasm) for needles of a few bytes in short texts (URLs,
//! header values, templates); this is the plain loop they need. The same
//! goes for `contains` with a `char`: a non-ASCII one goes through that
//! searcher, so an ASCII byte is looked for with `as_bytes().contains`.

/// The byte index where `needle` first occurs in `hay`.
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    // A match of valid UTF-8 in valid UTF-8 starts on a character boundary.
    hay.as_bytes().windows(needle.len()).position(|w| w == needle.as_bytes())
}

pub fn contains(hay: &str, needle: &str) -> bool {
    find(hay, needle).is_some()
}

/// What comes after the first `needle` in `hay`.
pub fn after<'a>(hay: &'a str, needle: &str) -> Option<&'a str> {
    find(hay, needle).map(|i| &hay[i + needle.len()..])
}

/// `parts` with `sep` between them: `[T]::join`'s generic copy loop, once
/// per element type, was 1.4 KB of wasm each.
pub fn join<S: AsRef<str>>(parts: &[S], sep: &str) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(part.as_ref());
    }
    out
}

/// `hay` with every `needle` replaced by `with`.
pub fn replace(hay: &str, needle: &str, with: &str) -> String {
    let mut out = String::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, needle).filter(|_| !needle.is_empty()) {
        out.push_str(&rest[..i]);
        out.push_str(with);
        rest = &rest[i + needle.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_as_std_does() {
        for parts in [vec![], vec!["a"], vec!["a", "", "b"]] {
            assert_eq!(join(&parts, "|"), parts.join("|"));
        }
    }

    #[test]
    fn as_std_does() {
        for (hay, needle) in
            [("https://h/x", "://"), ("a, b", ", "), ("ééjson", "json"), ("ab", "abc"), ("", "x"), ("x", "")]
        {
            assert_eq!(find(hay, needle), hay.find(needle), "{hay:?} {needle:?}");
            assert_eq!(after(hay, needle), hay.split_once(needle).map(|(_, r)| r));
        }
        for (hay, needle, with) in
            [("/a/{id}/b/{id}", "{id}", "42"), ("none", "{id}", "x"), ("{id}", "{id}", ""), ("ab", "", "x")]
        {
            let want = if needle.is_empty() { hay.to_string() } else { hay.replace(needle, with) };
            assert_eq!(replace(hay, needle, with), want);
        }
    }
}

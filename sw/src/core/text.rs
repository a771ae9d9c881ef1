//! Finding a short text in another. `str::find`, `contains`, `split` and
//! `replace` with a `&str` pattern link std's two-way string searcher
//! (about 2.5 KB of wasm) for needles of a few bytes in short texts (URLs,
//! header values, templates); this is the plain loop they need. The same
//! goes for a `char` pattern and for `<[u8]>::contains`: an ASCII byte is
//! looked for with `find_byte` (a plain loop, no `memchr`).
//!
//! Text is put together with `cat!` and `num`, not `format!`: formatting
//! links `core::fmt` (its writer, padding and integer code) and makes each
//! call site build a table of pieces and arguments: 2.7 KB of the shipped
//! wasm (1.3 KB gzip) for what is only ever text one piece after another.

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

/// Where the ASCII byte `b` first occurs in `s`. A `char` pattern
/// (`s.find('/')`, `s.split('/')`) links std's character searcher and its
/// word-at-a-time `memchr` and `memrchr`: 1.8 KB of wasm for the short texts
/// cut here. An ASCII byte in UTF-8 is always a whole character, so the
/// indices found are character boundaries.
pub fn find_byte(s: &str, b: u8) -> Option<usize> {
    // Indexing, not `bytes().position()`: each iterator method is a
    // `try_fold` of its own in the wasm.
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Where the ASCII byte `b` last occurs in `s`.
pub fn rfind_byte(s: &str, b: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        if bytes[i] == b {
            return Some(i);
        }
    }
    None
}

/// `s` before and after the first ASCII byte `b`.
pub fn split_once(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, b)?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s` up to the first ASCII byte `b` (all of it without one).
pub fn before(s: &str, b: u8) -> &str {
    &s[..find_byte(s, b).unwrap_or(s.len())]
}

/// The pieces of `s` between the ASCII bytes `sep`, as `s.split(sep)`.
pub fn split(s: &str, sep: u8) -> Split<'_> {
    Split { rest: Some(s), sep }
}

pub struct Split<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match split_once(rest, self.sep) {
            Some((piece, after)) => {
                self.rest = Some(after);
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
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

/// `parts` one after another (what `cat!` calls).
pub fn concat(parts: &[&str]) -> String {
    join(parts, "")
}

/// Its arguments' text one after another: `cat!("HTTP ", num(s), " for ", id)`
/// for `format!("HTTP {s} for {id}")`. Each argument is anything that is
/// `AsRef<str>` (`&str`, `String`, …); numbers go through `num`.
macro_rules! cat {
    ($($part:expr),* $(,)?) => {
        $crate::core::text::concat(&[$(AsRef::<str>::as_ref(&$part)),*])
    };
}
pub(crate) use cat;

/// `n` in decimal, as `n.to_string()` writes it.
pub fn num(n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    String::from_utf8(digits[i..].to_vec()).unwrap_or_default() // ASCII digits
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
    fn cuts_at_a_byte_as_std_cuts_at_a_char() {
        for s in ["", "/", "a/b", "/a//b/", "ä/ö/", "no-sep", "//"] {
            assert_eq!(split(s, b'/').collect::<Vec<_>>(), s.split('/').collect::<Vec<_>>(), "{s:?}");
            assert_eq!(find_byte(s, b'/'), s.find('/'));
            assert_eq!(rfind_byte(s, b'/'), s.rfind('/'));
            assert_eq!(split_once(s, b'/'), s.split_once('/'));
            assert_eq!(before(s, b'/'), s.split('/').next().unwrap());
        }
    }

    #[test]
    fn writes_numbers_and_text_as_format_does() {
        for n in [0, 7, 10, 409, 65_535, 1_733_500_000_000, u64::MAX] {
            assert_eq!(num(n), n.to_string());
        }
        let (id, status) = ("a1", 503u16);
        assert_eq!(
            cat!("HTTP ", num(status.into()), " for ", id, String::from("!")),
            format!("HTTP {status} for {id}!")
        );
        assert_eq!(cat!(), "");
    }

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

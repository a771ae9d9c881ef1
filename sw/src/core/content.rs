//! How stored bytes are served: inertly. A file a user uploaded (or any
//! body the inbox kept) is data, never a page of the app: served from the
//! app's own origin as HTML or SVG, its script would run there and could
//! read everything the app keeps on the device. So every such answer says
//! `nosniff`, carries a sandboxing Content-Security-Policy, and is a
//! download (`attachment`) unless its type is on a short passive list.
//! Used by the worker (files kept on the device) and by the reference
//! origin (`GET /api/inbox/{id}/body`).

use super::text::{cat, num};

/// Types shown inline: raster images, audio, video and PDF. Anything else
/// (HTML, SVG, XML, JavaScript, unknown types) is an attachment.
const PASSIVE_IMAGES: &[&str] =
    &["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/x-icon"];

/// The policy every stored body is served with: no script, no plugins, no
/// loads, a unique origin.
pub const CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

/// The media type itself, lowercase, without parameters.
fn essence(content_type: &str) -> String {
    super::text::before(content_type, b';').trim_ascii().to_ascii_lowercase()
}

/// Whether bytes of this type may be shown inline.
pub fn inline(content_type: &str) -> bool {
    let t = essence(content_type);
    PASSIVE_IMAGES.contains(&t.as_str()) || t.starts_with("audio/") || t.starts_with("video/") || t == "application/pdf"
}

/// The headers (names lowercase) to add to an answer carrying stored bytes
/// of this type.
pub fn headers(content_type: &str) -> [(&'static str, &'static str); 3] {
    let disposition = if inline(content_type) { "inline" } else { "attachment" };
    [("x-content-type-options", "nosniff"), ("content-security-policy", CSP), ("content-disposition", disposition)]
}

/// What a request's `Range` header asks of a body of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No range, or one this worker does not serve as a part (several
    /// ranges, another unit, bad syntax): the whole body, `200`.
    Whole,
    /// Bytes `[start, end)`: `206` with `Content-Range`.
    Part { start: u64, end: u64 },
    /// Past the end: `416` with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Reads a `Range` header (RFC 9110 §14.2) for a body of `size` bytes:
/// `bytes=a-b`, `bytes=a-` and the suffix form `bytes=-n`, one range only.
pub fn range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim_ascii().strip_prefix("bytes=")) else { return Ranged::Whole };
    if super::text::find_byte(spec, b',').is_some() {
        return Ranged::Whole; // several ranges: the whole body is a valid answer
    }
    let Some((first, last)) = super::text::split_once(spec.trim_ascii(), b'-') else { return Ranged::Whole };
    let number = |s: &str| s.trim_ascii().parse::<u64>().ok();
    match (first.trim_ascii().is_empty(), number(first), number(last)) {
        // The last n bytes.
        (true, _, Some(n)) if n > 0 && size > 0 => Ranged::Part { start: size.saturating_sub(n), end: size },
        (true, _, Some(_)) => Ranged::Unsatisfiable,
        (false, Some(start), _) if start >= size => Ranged::Unsatisfiable,
        (false, Some(start), None) if last.trim_ascii().is_empty() => Ranged::Part { start, end: size },
        (false, Some(start), Some(end)) if end >= start => Ranged::Part { start, end: (end + 1).min(size) },
        _ => Ranged::Whole,
    }
}

/// The `Content-Range` of an answer for `ranged` over `size` bytes.
pub fn content_range(ranged: Ranged, size: u64) -> Option<String> {
    match ranged {
        Ranged::Whole => None,
        Ranged::Part { start, end } => Some(cat!("bytes ", num(start), "-", num(end - 1), "/", num(size))),
        Ranged::Unsatisfiable => Some(cat!("bytes */", num(size))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_a_video_element_and_a_seek_ask_them() {
        let size = 20_000_000;
        assert_eq!(range(None, size), Ranged::Whole);
        assert_eq!(range(Some("bytes=0-"), size), Ranged::Part { start: 0, end: size });
        let seek = range(Some("bytes=10000000-10000099"), size);
        assert_eq!(seek, Ranged::Part { start: 10_000_000, end: 10_000_100 });
        assert_eq!(content_range(seek, size).as_deref(), Some("bytes 10000000-10000099/20000000"));
        assert_eq!(range(Some("bytes=19999990-30000000"), size), Ranged::Part { start: 19_999_990, end: size });
        assert_eq!(range(Some("bytes=-100"), size), Ranged::Part { start: 19_999_900, end: size });
        assert_eq!(range(Some("bytes=-30000000"), size), Ranged::Part { start: 0, end: size });
    }

    #[test]
    fn past_the_end_is_unsatisfiable_and_odd_headers_get_the_whole_body() {
        let size = 100;
        assert_eq!(range(Some("bytes=100-"), size), Ranged::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), size), Ranged::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-0"), 0), Ranged::Unsatisfiable, "nothing to give of an empty body");
        assert_eq!(content_range(Ranged::Unsatisfiable, size).as_deref(), Some("bytes */100"));
        for odd in ["bytes=0-1,5-6", "items=0-5", "bytes=5-1", "bytes=x-", "bytes", ""] {
            assert_eq!(range(Some(odd), size), Ranged::Whole, "{odd}");
        }
    }

    #[test]
    fn only_passive_types_are_inline() {
        for t in ["image/png", "IMAGE/JPEG", "image/webp; q=1", "video/mp4", "audio/ogg", "application/pdf"] {
            assert!(inline(t), "{t}");
        }
        for t in [
            "image/svg+xml",
            "text/html",
            "text/html; charset=utf-8",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "application/javascript",
            "text/plain",
            "application/octet-stream",
            "",
            "garbage",
        ] {
            assert!(!inline(t), "{t}");
        }
    }

    #[test]
    fn every_stored_answer_is_sandboxed_and_unsniffed() {
        let svg = headers("image/svg+xml");
        assert_eq!(svg[0], ("x-content-type-options", "nosniff"));
        assert!(svg[1].1.starts_with("sandbox"));
        assert_eq!(svg[2], ("content-disposition", "attachment"));
        assert_eq!(headers("image/png")[2], ("content-disposition", "inline"));
    }
}

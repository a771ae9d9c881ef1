//! How stored bytes are served: inertly. A file a user uploaded (or any
//! body the inbox kept) is data, never a page of the app: served from the
//! app's own origin as HTML or SVG, its script would run there and could
//! read everything the app keeps on the device. So every such answer says
//! `nosniff`, carries a sandboxing Content-Security-Policy, and is a
//! download (`attachment`) unless its type is on a short passive list.
//! Used by the worker (files kept on the device) and by the reference
//! origin (`GET /api/inbox/{id}/body`).

/// Types shown inline: raster images, audio, video and PDF. Anything else
/// (HTML, SVG, XML, JavaScript, unknown types) is an attachment.
const PASSIVE_IMAGES: &[&str] =
    &["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/x-icon"];

/// The policy every stored body is served with: no script, no plugins, no
/// loads, a unique origin.
pub const CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

/// The media type itself, lowercase, without parameters.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! Where the store is and how to sign for it, and which object keys it takes.

use std::fmt;

/// Bucket created by [`start_embedded`](super::start_embedded).
pub const DEFAULT_BUCKET: &str = "uploads";
/// Region used in signatures. s3s-fs has no notion of regions, but SigV4 needs
/// one in the credential scope and clients and server must agree on it.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Everything a client needs to talk to the store.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL of the S3 endpoint, e.g. `http://127.0.0.1:9000` (path-style).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

// Hand-written so the secret never ends up in logs through `{:?}`.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Whether `key` is acceptable as an object key.
///
/// Keys become file paths in s3s-fs and path segments in URLs, so anything
/// that could escape the bucket directory, be normalised into another key, or
/// read differently by another client is refused: empty keys, a leading `/`,
/// empty / `.` / `..` segments (this also refuses `a//b` and a trailing `/`),
/// backslashes (a separator on Windows) and control characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        // S3's own limit, in UTF-8 bytes.
        && key.len() <= 1024
        && !key.starts_with('/')
        && !key.contains('\\')
        && !key.chars().any(char::is_control)
        && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

//! Object storage: an embedded S3-compatible server and a presigner.
//!
//! Two halves, usable separately:
//!
//! * [`start_embedded`] runs a real S3 endpoint (the `s3s` protocol layer over
//!   `s3s-fs` storage) on its own port, with SigV4 authentication and CORS, so
//!   browsers can upload and download straight from it with presigned URLs and
//!   the origin server never proxies object bytes.
//! * [`Presigner`] signs URLs for an endpoint described by [`S3Config`] with
//!   `rusty-s3`, and performs the few server-side calls (create / list /
//!   complete / abort a multipart upload, HEAD an object) that a browser should
//!   not be trusted with.  It only speaks the S3 protocol, so the same code
//!   works against a real S3 / MinIO / Garage endpoint.
//!
//! Layout under `data_dir`:
//!
//! ```text
//! credentials   access / secret key pair, generated on first start (mode 0600)
//! objects/      s3s-fs root: one directory per bucket, plus s3s-fs's own
//!               dot-files (multipart parts, upload ids, metadata)
//! ```

mod config;
mod counts;
mod credentials;
mod embedded;
mod fs;
mod presign;

pub use config::{valid_key, S3Config, DEFAULT_BUCKET, DEFAULT_REGION};
#[cfg(feature = "test-counters")]
pub use counts::StoreCounts;
pub use embedded::{start_embedded, EmbeddedHandle};
/// Makes rustls over ring the process's TLS crypto (what `reqwest`, built
/// without a provider of its own, needs before any client is built). The
/// presigner calls it; so must any other code of the process that builds a
/// `reqwest` client first. Calling it again is a no-op.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use presign::{Presigner, UploadedPart, STORE_TIMEOUT, TIMED_OUT};

/// The paths from before the store was split into modules.
pub mod s3 {
    #[cfg(feature = "test-counters")]
    pub use super::StoreCounts;
    pub use super::{
        start_embedded, valid_key, EmbeddedHandle, Presigner, S3Config, UploadedPart, DEFAULT_BUCKET, DEFAULT_REGION,
    };
}

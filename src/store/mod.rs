//! Object storage: the embedded S3-compatible server and the presigner.
//! Wired into the API by the assets routes (not yet); tested on its own in
//! tests/store_s3.rs.

pub mod s3;

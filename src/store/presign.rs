//! The presigner, and the minimal S3 client for the calls a browser should
//! not be trusted with.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, ensure, Context as _};
use axum::http::{header, StatusCode};
use reqwest::Url;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};

use super::{valid_key, S3Config};

/// S3 (and rusty-s3) refuse presigned URLs valid for more than 7 days; s3s
/// does not enforce it, so the presigner does, to stay portable to real S3.
const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lifetime of the URLs the presigner signs for its own server-side calls:
/// they are used immediately, so a short window limits replay if logged.
const SERVER_SIDE_EXPIRY: Duration = Duration::from_secs(60);
const MAX_PART_NUMBER: u16 = 10_000;
/// The default budget of one server-side store call, headers and body: the
/// API answers within 10 s, so a store that stalls must fail before that.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(8);
/// The budget of a CompleteMultipartUpload, which assembles the object.
pub const COMPLETE_TIMEOUT: Duration = Duration::from_secs(600);
/// What a timed-out store call's error says (the API answers it `504`).
pub const TIMED_OUT: &str = "the object store did not answer within";

/// A part of an unfinished multipart upload, as reported by ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u16,
    /// As S3 sends it, quotes included: pass it back unchanged to complete.
    pub etag: String,
    pub size: u64,
}

/// Signs URLs for one bucket and performs the server-side multipart calls.
///
/// Presigned URLs are bearer tokens for one method on one key until they
/// expire; callers choose keys (check them with [`valid_key`]) and lifetimes.
/// Every `*_at` variant signs as if the current time were `at`, for tests.
pub struct Presigner {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    /// For CompleteMultipartUpload: the store may send nothing for a long
    /// while as it assembles the object, and giving up halfway must not be
    /// the client's doing.
    http_long: reqwest::Client,
    timeout: Duration,
}

impl Presigner {
    pub fn new(config: &S3Config) -> anyhow::Result<Self> {
        Self::with_timeout(config, STORE_TIMEOUT)
    }

    /// As [`Self::new`], with `timeout` as the budget of each server-side
    /// call (connecting, the answer's headers and its body together).
    pub fn with_timeout(config: &S3Config, timeout: Duration) -> anyhow::Result<Self> {
        // Path-style: the embedded endpoint is an IP:port, which cannot carry
        // a bucket sub-domain.
        Self::build(config, UrlStyle::Path, timeout)
    }

    /// As [`Self::new`], with the bucket in the host name if `style` says
    /// so: how AWS's published signing examples are written, so the tests
    /// can check this code against them.
    #[cfg(test)]
    fn with_url_style(config: &S3Config, style: UrlStyle) -> anyhow::Result<Self> {
        Self::build(config, style, STORE_TIMEOUT)
    }

    fn build(config: &S3Config, style: UrlStyle, timeout: Duration) -> anyhow::Result<Self> {
        let endpoint: Url = config.endpoint.parse().context("invalid S3 endpoint URL")?;
        let bucket = Bucket::new(endpoint, style, config.bucket.clone(), config.region.clone())
            .context("invalid S3 endpoint or bucket")?;
        let credentials = Credentials::new(config.access_key.clone(), config.secret_key.clone());
        // An overall timeout, so a store that accepts the connection and
        // never answers (or stops halfway through a body) fails the call;
        // the read timeout catches a stall sooner on long bodies.
        // https:// endpoints: rustls over ring (see Cargo.toml); installing it
        // twice is a harmless no-op.
        super::install_tls();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .read_timeout(timeout)
            .timeout(timeout)
            .build()
            .context("building HTTP client")?;
        let http_long = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(COMPLETE_TIMEOUT)
            .build()
            .context("building HTTP client")?;
        Ok(Self { bucket, credentials, http, http_long, timeout })
    }

    /// A request's failure, saying so plainly when it was a timeout (the
    /// URL is left out: it carries a signature).
    fn failed(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_timeout() {
            anyhow!("{TIMED_OUT} {} s", self.timeout.as_secs_f32())
        } else {
            e.without_url().into()
        }
    }

    /// Sends `request`, with [`Self::failed`]'s errors.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request.send().await.map_err(|e| self.failed(e))
    }

    /// Returns the body of a 2xx response, or an error naming the S3 error code.
    async fn expect_ok(&self, operation: &str, request: reqwest::RequestBuilder) -> anyhow::Result<String> {
        let response = self.send(request).await.map_err(|e| anyhow!("{operation}: {e:#}"))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| anyhow!("{operation}: {:#}", self.failed(e)))?;
        ensure!(status.is_success(), "{operation}: HTTP {status}: {}", error_summary(&body));
        Ok(body)
    }

    /// URL for a browser to `PUT` the object's bytes. With `content_type`, the
    /// header is signed: the upload must send exactly that `Content-Type`.
    pub fn presign_put(&self, key: &str, content_type: Option<&str>, expires: Duration) -> anyhow::Result<Url> {
        self.presign_put_at(key, content_type, expires, SystemTime::now())
    }

    pub fn presign_put_at(
        &self,
        key: &str,
        content_type: Option<&str>,
        expires: Duration,
        at: SystemTime,
    ) -> anyhow::Result<Url> {
        let at = sign_time(key, expires, at)?;
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        if let Some(content_type) = content_type {
            action.headers_mut().insert("content-type", content_type);
        }
        Ok(action.sign_with_time(expires, &at))
    }

    /// [`Self::presign_put`] for exactly `length` bytes: `Content-Length` is
    /// signed too, so the store refuses a body of any other size (a 1-byte
    /// asset cannot receive gigabytes).
    pub fn presign_put_exact(
        &self,
        key: &str,
        content_type: &str,
        length: u64,
        expires: Duration,
    ) -> anyhow::Result<Url> {
        let at = sign_time(key, expires, SystemTime::now())?;
        let length = length.to_string();
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action.headers_mut().insert("content-type", content_type);
        action.headers_mut().insert("content-length", length.as_str());
        Ok(action.sign_with_time(expires, &at))
    }

    pub fn presign_get(&self, key: &str, expires: Duration) -> anyhow::Result<Url> {
        self.presign_get_at(key, expires, SystemTime::now())
    }

    pub fn presign_get_at(&self, key: &str, expires: Duration, at: SystemTime) -> anyhow::Result<Url> {
        let at = sign_time(key, expires, at)?;
        Ok(self.bucket.get_object(Some(&self.credentials), key).sign_with_time(expires, &at))
    }

    /// URL for a browser to `PUT` one part (1..=10000) of a multipart upload;
    /// the response's `ETag` header is what [`Self::complete_multipart`] needs.
    pub fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        expires: Duration,
    ) -> anyhow::Result<Url> {
        self.presign_upload_part_at(key, upload_id, part_number, expires, SystemTime::now())
    }

    pub fn presign_upload_part_at(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        expires: Duration,
        at: SystemTime,
    ) -> anyhow::Result<Url> {
        ensure!((1..=MAX_PART_NUMBER).contains(&part_number), "part number must be 1..=10000");
        let at = sign_time(key, expires, at)?;
        let action = self.bucket.upload_part(Some(&self.credentials), key, part_number, upload_id);
        Ok(action.sign_with_time(expires, &at))
    }

    /// [`Self::presign_upload_part`] for a part of exactly `length` bytes
    /// (`Content-Length` is signed).
    pub fn presign_upload_part_exact(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        length: u64,
        expires: Duration,
    ) -> anyhow::Result<Url> {
        ensure!((1..=MAX_PART_NUMBER).contains(&part_number), "part number must be 1..=10000");
        let at = sign_time(key, expires, SystemTime::now())?;
        let length = length.to_string();
        let mut action = self.bucket.upload_part(Some(&self.credentials), key, part_number, upload_id);
        action.headers_mut().insert("content-length", length.as_str());
        Ok(action.sign_with_time(expires, &at))
    }

    /// Starts a multipart upload and returns its id. `content_type` becomes
    /// the final object's type (parts carry none).
    pub async fn create_multipart(&self, key: &str, content_type: Option<&str>) -> anyhow::Result<String> {
        let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
        let mut action = self.bucket.create_multipart_upload(Some(&self.credentials), key);
        if let Some(content_type) = content_type {
            action.headers_mut().insert("content-type", content_type);
        }
        let mut request = self.http.post(action.sign_with_time(SERVER_SIDE_EXPIRY, &at));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let body = self.expect_ok("CreateMultipartUpload", request).await?;
        let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(body.trim())
            .map_err(|e| anyhow!("CreateMultipartUpload: unexpected response: {e}"))?;
        Ok(parsed.upload_id().to_owned())
    }

    /// All parts uploaded so far, ascending, following ListParts pages.
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> anyhow::Result<Vec<UploadedPart>> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
            let mut action = self.bucket.list_parts(Some(&self.credentials), key, upload_id);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let url = action.sign_with_time(SERVER_SIDE_EXPIRY, &at);
            let body = self.expect_ok("ListParts", self.http.get(url)).await?;
            let page = rusty_s3::actions::ListParts::parse_response(body.trim())
                .map_err(|e| anyhow!("ListParts: unexpected response: {e}"))?;
            parts.extend(page.parts.into_iter().map(|p| UploadedPart {
                part_number: p.number,
                etag: p.etag,
                size: p.size,
            }));
            match page.next_part_number_marker {
                Some(next) => marker = Some(next),
                None => return Ok(parts),
            }
        }
    }

    /// Completes an upload from `(part_number, etag)` pairs in any order and
    /// returns the object's ETag. rusty-s3 numbers parts by position, so the
    /// numbers must be exactly 1..=n (which s3s-fs requires anyway).
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u16, String)],
    ) -> anyhow::Result<String> {
        let mut sorted: Vec<&(u16, String)> = parts.iter().collect();
        sorted.sort_by_key(|(n, _)| *n);
        ensure!(!sorted.is_empty(), "no parts to complete");
        for (i, (n, _)) in sorted.iter().enumerate() {
            ensure!(usize::from(*n) == i + 1, "part numbers must be 1..=n without gaps or duplicates");
        }

        let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            sorted.iter().map(|(_, etag)| etag.as_str()),
        );
        let url = action.sign_with_time(SERVER_SIDE_EXPIRY, &at);
        // Completing assembles the whole object: S3 says it may take
        // minutes. The caller runs it detached from any request.
        let request = self.http_long.post(url).body(action.body());
        let body = self.expect_ok("CompleteMultipartUpload", request).await?;
        // A 200 can still carry an <Error> (S3 streams keep-alive whitespace
        // before the result), so the body decides success, not the status.
        let parsed = rusty_s3::actions::CompleteMultipartUploadResponse::parse(body.trim())
            .map_err(|_| anyhow!("CompleteMultipartUpload failed: {}", error_summary(&body)))?;
        Ok(parsed.etag().to_owned())
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> anyhow::Result<()> {
        let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), key, upload_id)
            .sign_with_time(SERVER_SIDE_EXPIRY, &at);
        self.expect_ok("AbortMultipartUpload", self.http.delete(url)).await?;
        Ok(())
    }

    /// Size of the object, or `None` if it does not exist.
    pub async fn head_object(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
        let url = self.bucket.head_object(Some(&self.credentials), key).sign_with_time(SERVER_SIDE_EXPIRY, &at);
        let response = self.send(self.http.head(url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ensure!(response.status().is_success(), "HeadObject: HTTP {}", response.status());
        // Read the header itself: for HEAD, the client's body-length notion is 0.
        let size = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context("HeadObject: no Content-Length")?;
        Ok(Some(size))
    }

    pub async fn delete_object(&self, key: &str) -> anyhow::Result<()> {
        let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
        let url = self.bucket.delete_object(Some(&self.credentials), key).sign_with_time(SERVER_SIDE_EXPIRY, &at);
        self.expect_ok("DeleteObject", self.http.delete(url)).await?;
        Ok(())
    }

    /// Whether the bucket answers (readiness).
    pub async fn check_bucket(&self) -> anyhow::Result<()> {
        let at = jiff::Timestamp::now();
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign_with_time(SERVER_SIDE_EXPIRY, &at);
        let response = self.send(self.http.head(url)).await?;
        ensure!(response.status().is_success(), "HeadBucket: HTTP {}", response.status());
        Ok(())
    }

    /// Creates the bucket unless it already exists.
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        let at = jiff::Timestamp::now();
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign_with_time(SERVER_SIDE_EXPIRY, &at);
        let response = self.send(self.http.head(url)).await?;
        if response.status().is_success() {
            return Ok(());
        }
        ensure!(response.status() == StatusCode::NOT_FOUND, "HeadBucket: HTTP {}", response.status());
        let action = self.bucket.create_bucket(&self.credentials);
        let url = action.sign_with_time(SERVER_SIDE_EXPIRY, &at);
        self.expect_ok("CreateBucket", self.http.put(url).body(action.body())).await?;
        Ok(())
    }
}

/// Validates the common presigning inputs and converts the signing time.
fn sign_time(key: &str, expires: Duration, at: SystemTime) -> anyhow::Result<jiff::Timestamp> {
    ensure!(valid_key(key), "invalid object key {key:?}");
    // rusty-s3 signs whole seconds: below 1 s the URL is born expired.
    ensure!(
        (Duration::from_secs(1)..=MAX_PRESIGN_EXPIRY).contains(&expires),
        "presigned URL lifetime must be between 1 s and 7 days"
    );
    jiff::Timestamp::try_from(at).context("signing time out of range")
}

/// `Code: Message` out of an S3 XML error body, without an XML parser.
fn error_summary(body: &str) -> String {
    let element = |name: &str| {
        let start = body.find(&format!("<{name}>"))? + name.len() + 2;
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].to_owned())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example bucket and keys of AWS's SigV4 documentation.
    fn aws_example() -> S3Config {
        S3Config {
            endpoint: "https://s3.amazonaws.com".into(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    /// Fri, 24 May 2013 00:00:00 GMT, the example's signing time.
    fn aws_example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    /// AWS's presigned-URL example ("Authenticating Requests: Using Query
    /// Parameters (AWS Signature Version 4)"): `GET /test.txt`, valid for
    /// 86400 s. Only the URL style differs from what `new` builds.
    #[test]
    fn presigned_get_matches_the_aws_example() {
        let presigner = Presigner::with_url_style(&aws_example(), UrlStyle::VirtualHost).unwrap();
        let url = presigner.presign_get_at("test.txt", Duration::from_secs(86_400), aws_example_time()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://examplebucket.s3.amazonaws.com/test.txt\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z\
             &X-Amz-Expires=86400\
             &X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn new_signs_path_style_urls() {
        let presigner = Presigner::new(&aws_example()).unwrap();
        let url = presigner.presign_get_at("test.txt", Duration::from_secs(86_400), aws_example_time()).unwrap();
        assert!(url.as_str().starts_with("https://s3.amazonaws.com/examplebucket/test.txt?"), "{url}");
        assert!(url.as_str().contains("&X-Amz-Date=20130524T000000Z&"), "{url}");
    }
}

//! Embedded S3-compatible object store plus presigning.
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
//!   not be trusted with.  It only speaks the S3 protocol, so the same code can
//!   later be pointed at a real S3 / MinIO / Garage endpoint.
//!
//! Layout under `data_dir`:
//!
//! ```text
//! credentials   access / secret key pair, generated on first start (mode 0600)
//! objects/      s3s-fs root: one directory per bucket, plus s3s-fs's own
//!               dot-files (multipart parts, upload ids, metadata)
//! ```

use std::fmt;
use std::io::{self, Read as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, ensure, Context as _};
use axum::error_handling::HandleError;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::Router;
use reqwest::Url;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use s3s::auth::SimpleAuth;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput,
    DeleteObjectOutput, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput, Part, PutObjectInput,
    PutObjectOutput, Timestamp, UploadPartInput, UploadPartOutput,
};
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::hex;

/// Bucket created by [`start_embedded`].
pub const DEFAULT_BUCKET: &str = "uploads";
/// Region used in signatures. s3s-fs has no notion of regions, but SigV4 needs
/// one in the credential scope and clients and server must agree on it.
pub const DEFAULT_REGION: &str = "us-east-1";

/// S3 (and rusty-s3) refuse presigned URLs valid for more than 7 days; s3s
/// does not enforce it, so the presigner does, to stay portable to real S3.
const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lifetime of the URLs the presigner signs for its own server-side calls:
/// they are used immediately, so a short window limits replay if logged.
const SERVER_SIDE_EXPIRY: Duration = Duration::from_secs(60);
/// S3's minimum size for every part but the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3 returns at most this many parts per ListParts page.
const MAX_LIST_PARTS: i32 = 1000;
const MAX_PART_NUMBER: u16 = 10_000;

// ---------------------------------------------------------------------------
// Configuration and keys
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Embedded server
// ---------------------------------------------------------------------------

/// What the embedded store has been asked to write, since it started: how
/// a resumed upload can be seen to re-send only what was missing.
#[derive(Debug, Default)]
pub struct StoreCounts {
    /// PutObject requests that reached the store.
    pub puts: std::sync::atomic::AtomicU64,
    /// UploadPart requests that reached the store.
    pub part_puts: std::sync::atomic::AtomicU64,
}

/// Keeps the embedded server running; dropping it asks the server to stop.
pub struct EmbeddedHandle {
    local_addr: SocketAddr,
    counts: Arc<StoreCounts>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl EmbeddedHandle {
    /// Address the server is bound to (useful when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn counts(&self) -> &StoreCounts {
        &self.counts
    }

    /// Stops accepting connections and waits (up to 10 s) for in-flight
    /// requests; a transfer still running after that is cut off.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(10), &mut task).await {
            Ok(joined) => joined.context("embedded S3 task panicked")?.context("embedded S3 server"),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for EmbeddedHandle {
    fn drop(&mut self) {
        // Graceful stop without waiting: Drop cannot be async.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the embedded S3 server and makes sure [`DEFAULT_BUCKET`] exists.
///
/// * `addr`: where to listen; port 0 picks a free one. The endpoint put in
///   the returned config is built from the bound address, with an unspecified
///   IP (`0.0.0.0`, `::`) replaced by loopback, so presigned URLs only work for
///   browsers that can reach that address.
/// * `cors_origins`: origins (e.g. `http://127.0.0.1:8080`) whose pages may
///   call the endpoint; `"*"` allows any origin, an empty list none.
///
/// The access / secret key pair is generated on first start and stored in
/// `data_dir/credentials`, so URLs signed before a restart stay valid as long
/// as the endpoint (host and port, both signed) is the same.
pub async fn start_embedded(
    data_dir: &Path,
    addr: SocketAddr,
    cors_origins: &[String],
) -> anyhow::Result<(S3Config, EmbeddedHandle)> {
    let cors = cors_layer(cors_origins)?;

    // Startup does a little blocking file IO (key file, s3s-fs's root scan);
    // keep it off the async workers.
    let dir = data_dir.to_owned();
    let (keys, store) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        // Also creates `data_dir` itself, before the key file goes into it.
        let objects = dir.join("objects");
        std::fs::create_dir_all(&objects).with_context(|| format!("creating {}", objects.display()))?;
        let keys = load_or_create_keys(&dir.join("credentials"))?;
        Ok((keys, FsStore::new(&objects, Arc::new(StoreCounts::default()))?))
    })
    .await??;

    let counts = Arc::clone(&store.counts);
    let service = {
        let mut builder = S3ServiceBuilder::new(store);
        // With an auth provider set, s3s's default access check also refuses
        // unsigned requests, so there is no anonymous access at all.
        builder.set_auth(SimpleAuth::from_single(keys.access_key.clone(), keys.secret_key.as_str()));
        builder.build()
    };

    // s3s answers S3 errors (403, 404...) itself; only internal failures reach
    // this handler. CORS wraps everything, so browsers can read error bodies
    // too, and answers preflight OPTIONS before s3s (which has no OPTIONS op).
    let app = Router::new()
        .fallback_service(HandleError::new(service, |err: s3s::HttpError| async move {
            tracing::error!("embedded S3: internal error: {err:?}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }))
        .layer(cors);

    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding embedded S3 server to {addr}"))?;
    let local_addr = listener.local_addr()?;

    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    let handle = EmbeddedHandle { local_addr, counts, shutdown: Some(tx), task: Some(task) };

    let config = S3Config {
        endpoint: format!("http://{}", client_addr(local_addr)),
        bucket: DEFAULT_BUCKET.to_owned(),
        region: DEFAULT_REGION.to_owned(),
        access_key: keys.access_key,
        secret_key: keys.secret_key,
    };

    // Creating the bucket through the protocol (not mkdir) keeps us off
    // s3s-fs's on-disk layout and proves the server answers signed requests
    // before anyone is handed a URL. On error `handle` drops and stops it.
    Presigner::new(&config)?.ensure_bucket().await.context("embedded S3 server did not come up")?;

    Ok((config, handle))
}

/// The address clients should use to reach a listener bound to `bound`.
fn client_addr(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            // Browsers send `Origin` without a trailing slash; tolerate one in config.
            .map(|o| HeaderValue::from_str(o.trim_end_matches('/')))
            .collect::<Result<Vec<_>, _>>()
            .context("invalid CORS origin")?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::POST, Method::DELETE])
        // What a request may carry is already pinned by its signature (signed
        // headers must match), so echoing the requested headers is no wider
        // than the usual S3 bucket rule `AllowedHeaders: ["*"]`.
        .allow_headers(AllowHeaders::mirror_request())
        // ETag is not a CORS-safelisted response header: without this a page
        // cannot read the part ETags it must report to complete a multipart upload.
        .expose_headers([
            header::ETAG,
            HeaderName::from_static("x-amz-request-id"),
            HeaderName::from_static("x-amz-version-id"),
        ])
        .max_age(Duration::from_secs(3600)))
}

// ---------------------------------------------------------------------------
// Persistent credentials
// ---------------------------------------------------------------------------

struct Keys {
    access_key: String,
    secret_key: String,
}

fn load_or_create_keys(path: &Path) -> anyhow::Result<Keys> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_keys(&text).with_context(|| format!("reading {}", path.display())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let random = random_bytes::<30>()?;
            let keys = Keys {
                // AWS-like shape: 20 upper-case characters, 40 for the secret
                // (160 bits of entropy).
                access_key: hex::encode(&random[..10]).to_uppercase(),
                secret_key: hex::encode(&random[10..]),
            };
            crate::fsutil::write_private(
                path,
                format!("access_key={}\nsecret_key={}\n", keys.access_key, keys.secret_key).as_bytes(),
            )?;
            Ok(keys)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// A malformed file is an error, not a reason to mint new keys: silently
/// replacing them would invalidate every outstanding URL and hide corruption.
fn parse_keys(text: &str) -> anyhow::Result<Keys> {
    let (mut access_key, mut secret_key) = (None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some(("access_key", v)) => access_key = Some(v.trim().to_owned()),
            Some(("secret_key", v)) => secret_key = Some(v.trim().to_owned()),
            _ => bail!("unexpected line in credentials file"),
        }
    }
    match (access_key, secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(Keys { access_key: a, secret_key: s }),
        _ => bail!("credentials file lacks access_key or secret_key"),
    }
}

/// Kernel randomness without an extra crate. Unix-only; a Windows build would
/// need e.g. the `getrandom` crate (already in the dependency tree via s3s-fs).
fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).context("reading /dev/urandom")?;
    Ok(buf)
}

// ---------------------------------------------------------------------------
// S3 implementation: s3s-fs plus fixes
// ---------------------------------------------------------------------------

/// s3s-fs's `FileSystem` behind a narrower, stricter front:
///
/// * only the operations this module uses are exposed (everything else gets
///   s3s's `NotImplemented`), so e.g. bucket deletion or copies are off;
/// * object keys are checked with [`valid_key`] server-side too, because
///   s3s-fs resolves `bucket/<key>` inside its root, where a key like
///   `../.upload-<id>.json` would reach its internal files or another bucket;
/// * `ListParts` is reimplemented: s3s-fs's omits ETags (which rusty-s3 and
///   browsers resuming an upload need), returns parts unsorted, ignores
///   paging and does not report unknown upload ids;
/// * `CompleteMultipartUpload` is checked first: s3s-fs ignores the ETags the
///   client sends and consumes the upload before finding a too-small part,
///   which makes a client mistake unrecoverable.
///
/// The reimplemented parts read two s3s-fs on-disk names (`.upload-<id>.json`,
/// `.upload_id-<id>.part-<n>` in the root); re-check them on an s3s-fs upgrade.
struct FsStore {
    fs: FileSystem,
    root: PathBuf,
    counts: Arc<StoreCounts>,
}

impl FsStore {
    fn new(root: &Path, counts: Arc<StoreCounts>) -> anyhow::Result<Self> {
        let fs = FileSystem::new(root).map_err(|e| anyhow!("opening s3s-fs store: {e:?}"))?;
        // FileSystem canonicalises its root the same way; we need the same path.
        let root = std::env::current_dir()?.join(root).canonicalize()?;
        Ok(Self { fs, root, counts })
    }

    /// Checks that `upload_id` is an upload s3s-fs knows. Ids are UUIDs and
    /// end up in file names, so anything else is refused before touching disk.
    async fn known_upload<'a>(&self, upload_id: &'a str) -> S3Result<&'a str> {
        let uuid_like = upload_id.len() == 36 && upload_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if uuid_like
            && tokio::fs::try_exists(self.root.join(format!(".upload-{upload_id}.json"))).await.unwrap_or(false)
        {
            Ok(upload_id)
        } else {
            Err(s3_error!(NoSuchUpload))
        }
    }

    fn part_path(&self, upload_id: &str, part_number: i32) -> PathBuf {
        self.root.join(format!(".upload_id-{upload_id}.part-{part_number}"))
    }

    /// Part numbers uploaded so far, ascending.
    async fn part_numbers(&self, upload_id: &str) -> S3Result<Vec<i32>> {
        let prefix = format!(".upload_id-{upload_id}.part-");
        let mut dir = tokio::fs::read_dir(&self.root).await.map_err(internal)?;
        let mut numbers = Vec::new();
        while let Some(entry) = dir.next_entry().await.map_err(internal)? {
            let name = entry.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|n| n.parse().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }
}

/// Size and hex MD5 (= the part's ETag in s3s-fs) of a file. Hashing is
/// CPU-bound blocking work, so it runs on the blocking pool.
async fn size_and_md5(path: PathBuf) -> io::Result<(u64, String)> {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            size += n as u64;
        }
        Ok((size, hex::encode(&md5.finalize())))
    })
    .await
    .map_err(io::Error::other)?
}

fn internal(err: impl std::error::Error + Send + Sync + 'static) -> s3s::S3Error {
    s3_error!(err, InternalError)
}

fn check_key(key: &str) -> S3Result<()> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(s3_error!(InvalidArgument, "object key not allowed"))
    }
}

#[async_trait::async_trait]
impl S3 for FsStore {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        check_key(&req.input.key)?;
        self.fs.head_object(req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        check_key(&req.input.key)?;
        self.fs.get_object(req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        check_key(&req.input.key)?;
        self.counts.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.fs.put_object(req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        check_key(&req.input.key)?;
        self.fs.delete_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        check_key(&req.input.key)?;
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        check_key(&req.input.key)?;
        // s3s-fs answers 403 AccessDenied for an unknown (e.g. already
        // completed or aborted) upload, where S3 answers 404 NoSuchUpload.
        self.known_upload(&req.input.upload_id).await?;
        self.counts.part_puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.fs.upload_part(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        check_key(&req.input.key)?;
        self.known_upload(&req.input.upload_id).await?;
        self.fs.abort_multipart_upload(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        check_key(&input.key)?;
        let upload_id = self.known_upload(&input.upload_id).await?;

        let max_parts = input.max_parts.unwrap_or(MAX_LIST_PARTS).clamp(1, MAX_LIST_PARTS);
        let marker = input.part_number_marker.unwrap_or(0);
        let mut numbers = self.part_numbers(upload_id).await?;
        numbers.retain(|&n| n > marker);
        // clamp() above keeps it in 1..=1000, so the conversion cannot fail.
        let page = usize::try_from(max_parts).unwrap_or(1);
        let is_truncated = numbers.len() > page;
        numbers.truncate(page);

        let mut parts = Vec::with_capacity(numbers.len());
        for &number in &numbers {
            let path = self.part_path(upload_id, number);
            let modified = tokio::fs::metadata(&path).await.and_then(|m| m.modified()).map_err(internal)?;
            let (size, md5) = size_and_md5(path).await.map_err(internal)?;
            parts.push(Part {
                part_number: Some(number),
                e_tag: Some(s3s::dto::ETag::Strong(md5)),
                size: Some(i64::try_from(size).map_err(internal)?),
                last_modified: Some(Timestamp::from(modified)),
                ..Default::default()
            });
        }

        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max_parts),
            part_number_marker: input.part_number_marker,
            is_truncated: Some(is_truncated),
            next_part_number_marker: if is_truncated { numbers.last().copied() } else { None },
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        check_key(&req.input.key)?;
        let upload_id = self.known_upload(&req.input.upload_id).await?;

        let parts = req.input.multipart_upload.as_ref().and_then(|m| m.parts.as_deref()).unwrap_or_default();
        if parts.is_empty() {
            return Err(s3_error!(InvalidPart, "at least one part is required"));
        }
        let mut previous = 0;
        for (i, part) in parts.iter().enumerate() {
            let number = part.part_number.ok_or_else(|| s3_error!(InvalidPart, "part without number"))?;
            if number <= previous {
                return Err(s3_error!(InvalidPartOrder));
            }
            previous = number;
            let (size, md5) = match size_and_md5(self.part_path(upload_id, number)).await {
                Ok(found) => found,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(s3_error!(InvalidPart, "part {number} was not uploaded"));
                }
                Err(e) => return Err(internal(e)),
            };
            let claimed = part.e_tag.as_ref().map(|e| e.value().trim_matches('"'));
            if claimed != Some(md5.as_str()) {
                return Err(s3_error!(InvalidPart, "ETag of part {number} does not match"));
            }
            if i + 1 < parts.len() && size < MIN_PART_SIZE {
                return Err(s3_error!(EntityTooSmall, "part {number} is smaller than 5 MiB"));
            }
        }
        // s3s-fs itself still requires part numbers 1..=n without gaps (S3
        // allows gaps) and answers InvalidRequest otherwise.
        self.fs.complete_multipart_upload(req).await
    }
}

// ---------------------------------------------------------------------------
// Presigner / minimal client
// ---------------------------------------------------------------------------

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
}

impl Presigner {
    pub fn new(config: &S3Config) -> anyhow::Result<Self> {
        let endpoint: Url = config.endpoint.parse().context("invalid S3 endpoint URL")?;
        // Path-style: the embedded endpoint is an IP:port, which cannot carry
        // a bucket sub-domain.
        let bucket = Bucket::new(endpoint, UrlStyle::Path, config.bucket.clone(), config.region.clone())
            .context("invalid S3 endpoint or bucket")?;
        let credentials = Credentials::new(config.access_key.clone(), config.secret_key.clone());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building HTTP client")?;
        Ok(Self { bucket, credentials, http })
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
        let body =
            expect_ok("CreateMultipartUpload", request.send().await.map_err(reqwest::Error::without_url)?).await?;
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
            let body =
                expect_ok("ListParts", self.http.get(url).send().await.map_err(reqwest::Error::without_url)?).await?;
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
        let request = self.http.post(url).body(action.body());
        let body =
            expect_ok("CompleteMultipartUpload", request.send().await.map_err(reqwest::Error::without_url)?).await?;
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
        expect_ok("AbortMultipartUpload", self.http.delete(url).send().await.map_err(reqwest::Error::without_url)?)
            .await?;
        Ok(())
    }

    /// Size of the object, or `None` if it does not exist.
    pub async fn head_object(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let at = sign_time(key, SERVER_SIDE_EXPIRY, SystemTime::now())?;
        let url = self.bucket.head_object(Some(&self.credentials), key).sign_with_time(SERVER_SIDE_EXPIRY, &at);
        let response = self.http.head(url).send().await.map_err(reqwest::Error::without_url)?;
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
        expect_ok("DeleteObject", self.http.delete(url).send().await.map_err(reqwest::Error::without_url)?).await?;
        Ok(())
    }

    /// Creates the bucket unless it already exists.
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        let at = jiff::Timestamp::now();
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign_with_time(SERVER_SIDE_EXPIRY, &at);
        let response = self.http.head(url).send().await.map_err(reqwest::Error::without_url)?;
        if response.status().is_success() {
            return Ok(());
        }
        ensure!(response.status() == StatusCode::NOT_FOUND, "HeadBucket: HTTP {}", response.status());
        let action = self.bucket.create_bucket(&self.credentials);
        let url = action.sign_with_time(SERVER_SIDE_EXPIRY, &at);
        expect_ok(
            "CreateBucket",
            self.http.put(url).body(action.body()).send().await.map_err(reqwest::Error::without_url)?,
        )
        .await?;
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

/// Returns the body of a 2xx response, or an error naming the S3 error code.
async fn expect_ok(operation: &str, response: reqwest::Response) -> anyhow::Result<String> {
    let status = response.status();
    let body = response.text().await?;
    ensure!(status.is_success(), "{operation}: HTTP {status}: {}", error_summary(&body));
    Ok(body)
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

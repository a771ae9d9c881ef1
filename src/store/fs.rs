//! The embedded store's storage: s3s-fs, narrowed and fixed.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput,
    DeleteObjectOutput, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput, Part, PutObjectInput,
    PutObjectOutput, Timestamp, UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;

use super::counts::Probe;
use super::valid_key;
use crate::hex;

/// S3's minimum size for every part but the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3 returns at most this many parts per ListParts page.
const MAX_LIST_PARTS: i32 = 1000;

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
pub(super) struct FsStore {
    fs: std::sync::Arc<FileSystem>,
    root: PathBuf,
    pub(super) probe: Probe,
}

impl FsStore {
    pub(super) fn new(root: &Path) -> anyhow::Result<Self> {
        let fs = FileSystem::new(root).map_err(|e| anyhow!("opening s3s-fs store: {e:?}"))?;
        // FileSystem canonicalises its root the same way; we need the same path.
        let root = std::env::current_dir()?.join(root).canonicalize()?;
        Ok(Self { fs: std::sync::Arc::new(fs), root, probe: Probe::default() })
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
        self.probe.put();
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
        self.probe.part_put();
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
        // In a task of its own: s3s-fs forgets the upload id before it
        // assembles the object, so a client that hangs up (or times out)
        // halfway must not cancel it: the upload would be gone, the object
        // never written. S3 completes atomically whatever the client does.
        let fs = std::sync::Arc::clone(&self.fs);
        tokio::spawn(async move { fs.complete_multipart_upload(req).await })
            .await
            .map_err(|e| s3_error!(InternalError, "complete task: {e}"))?
    }
}

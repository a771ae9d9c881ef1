//! The embedded S3 endpoint: [`FsStore`] behind `s3s`'s protocol layer, with
//! SigV4 authentication and CORS, on its own port.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use axum::error_handling::HandleError;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::Router;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

#[cfg(feature = "test-counters")]
use super::counts::{Probe, StoreCounts};
use super::credentials::load_or_create_keys;
use super::fs::FsStore;
use super::{Presigner, S3Config, DEFAULT_BUCKET, DEFAULT_REGION};

/// Keeps the embedded server running; dropping it asks the server to stop.
pub struct EmbeddedHandle {
    local_addr: SocketAddr,
    #[cfg(feature = "test-counters")]
    probe: Probe,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl EmbeddedHandle {
    /// Address the server is bound to (useful when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the store has been asked to write (with the `test-counters`
    /// feature only).
    #[cfg(feature = "test-counters")]
    pub fn counts(&self) -> &StoreCounts {
        self.probe.counts()
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
        Ok((keys, FsStore::new(&objects)?))
    })
    .await??;

    #[cfg(feature = "test-counters")]
    let probe = store.probe.clone();
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
    let handle = EmbeddedHandle {
        local_addr,
        #[cfg(feature = "test-counters")]
        probe,
        shutdown: Some(tx),
        task: Some(task),
    };

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

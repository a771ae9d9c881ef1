//! The accept loop: hyper with a header-read timeout (a client that opens
//! connections and sends headers a byte at a time cannot hold them open),
//! and a drain on shutdown with a deadline.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting and lets requests in flight finish, for at most `grace`.
/// Returns how many connections were open when the drain began, if the
/// deadline passed before they closed (0 when they all finished).
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>, grace: Duration) -> usize {
    // HTTP/1.1 only: browsers speak HTTP/2 over TLS, which a proxy in front
    // terminates, and cleartext HTTP/2 would bring no header timeout.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        _ = graceful.shutdown() => 0,
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(open, "shutdown deadline reached with connections still open");
            open
        }
    }
}

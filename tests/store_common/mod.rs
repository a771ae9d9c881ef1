//! Shared fixtures: a throwaway data dir and a started embedded server.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use outpost::store::s3::{start_embedded, EmbeddedHandle, Presigner, S3Config};

pub const PAGE_ORIGIN: &str = "http://127.0.0.1:8080";

/// Temporary directory removed on drop (no tempfile crate needed).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "outpost-s3-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    pub config: S3Config,
    pub handle: EmbeddedHandle,
    pub presigner: Presigner,
    // Declared last so the server stops before its directory goes away.
    pub dir: TempDir,
}

/// Starts a server on `addr` (port 0: any free port) storing into `dir`.
pub async fn start_at(dir: TempDir, addr: SocketAddr) -> Server {
    // A not-yet-existing subdirectory: start_embedded must create it.
    let (config, handle) = start_embedded(&dir.path().join("store"), addr, &[PAGE_ORIGIN.to_owned()])
        .await
        .expect("embedded server starts");
    let presigner = Presigner::new(&config).unwrap();
    Server { config, handle, presigner, dir }
}

pub async fn start() -> Server {
    start_at(TempDir::new(), "127.0.0.1:0".parse().unwrap()).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Deterministic, non-repeating-looking test bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(seed as u32) as u8).collect()
}

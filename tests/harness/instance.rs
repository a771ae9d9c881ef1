//! `outpost serve` as a process, as an operator runs it: configured from
//! `OUTPOST_*` variables, stopped with SIGTERM.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

pub struct Instance {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    _data: tempfile::TempDir,
}

/// The environment of an instance on a shared database (`database_url`,
/// migrations over `migrate_url`) and an external store reached at
/// `endpoint` (which may be a proxy in front of `store`).
pub fn env(
    database_url: &str,
    migrate_url: &str,
    store: &outpost::store::S3Config,
    endpoint: &str,
    session_keys: &str,
) -> Vec<(String, String)> {
    [
        ("OUTPOST_DATABASE_URL", database_url),
        ("OUTPOST_MIGRATE_URL", migrate_url),
        ("OUTPOST_SESSION_KEYS", session_keys),
        ("OUTPOST_S3_ENDPOINT", endpoint),
        ("OUTPOST_S3_BUCKET", &store.bucket),
        ("OUTPOST_S3_REGION", &store.region),
        ("OUTPOST_S3_ACCESS_KEY", &store.access_key),
        ("OUTPOST_S3_SECRET_KEY", &store.secret_key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Instance {
    /// Starts one on a free loopback port with its own `--data`.
    pub fn start(env: &[(String, String)], args: &[&str]) -> Instance {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("OUTPOST_DATA", data.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep reading: a closed pipe would fail its next line.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addr = line
            .trim()
            .strip_prefix("outpost: listening on http://")
            .unwrap_or_else(|| panic!("the instance did not start: {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Instance { child, addr, _data: data }
    }

    /// SIGTERM, as a container runtime stops it; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap().success()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

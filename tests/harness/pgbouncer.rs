//! A real PgBouncer (Debian's `pgbouncer`) in transaction pooling mode in
//! front of a [`TestPostgres`](super::pg::TestPostgres), with a pool of 3
//! server connections: every client shares them, so consecutive
//! transactions of one client land on different server connections, which
//! is what breaks a client that keeps prepared statements.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/sbin/pgbouncer";

pub struct PgBouncer {
    child: Child,
    /// Stops PgBouncer when this process ends without running `Drop` (a
    /// shared one in a static): it waits on a pipe the kernel closes then.
    _watchdog: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts one in front of the PostgreSQL on `pg_port`; panics with what
    /// to do when PgBouncer is missing or does not start.
    pub fn start(pg_port: u16) -> PgBouncer {
        Self::with_pool(pg_port, 3)
    }

    /// With `pool` server connections (the benchmark's is larger).
    pub fn with_pool(pg_port: u16, pool: usize) -> PgBouncer {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "PgBouncer is not installed ({BINARY} is missing): run ./scripts/setup.sh (Debian: apt-get install pgbouncer)"
        );
        let dir = tempfile::Builder::new().prefix("pgbouncer-").tempdir().unwrap();
        // PgBouncer refuses to run as root and drops to `postgres` (-u),
        // which must reach its files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("users.txt"), "\"postgres\" \"\"\n").unwrap();
        let config = format!(
            "[databases]\n* = host=127.0.0.1 port={pg_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {users}\n\
             pool_mode = transaction\ndefault_pool_size = {pool}\nmax_client_conn = 1000\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {log}\npidfile = {pid}\n",
            users = path("users.txt").display(),
            log = path("pgbouncer.log").display(),
            pid = path("pgbouncer.pid").display(),
        );
        std::fs::write(path("pgbouncer.ini"), config).unwrap();
        for f in ["users.txt", "pgbouncer.ini"] {
            std::fs::set_permissions(path(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut cmd = Command::new(BINARY);
        if is_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(path("pgbouncer.ini"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        let watchdog = Command::new("/bin/sh")
            .args(["-c", "read _ || :; kill \"$1\" 2>/dev/null", "pgbouncer-watchdog"])
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start PgBouncer's cleanup watchdog: {e}"));
        let mut bouncer = PgBouncer { child, _watchdog: watchdog, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!("PgBouncer exited ({status}) at start; its log:\n{}", bouncer.log());
            }
            assert!(Instant::now() < deadline, "PgBouncer did not listen within 20 s; its log:\n{}", bouncer.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    /// The URL of database `db` through PgBouncer.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

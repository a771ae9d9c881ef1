//! A throwaway, real PostgreSQL server for integration tests.
//!
//! `TestPostgres::start()` runs `initdb` into a fresh temp dir and starts a
//! private postmaster on a free loopback port; dropping it stops the server
//! and deletes the directory. Each server is fully independent (own data dir,
//! own port, own socket dir), so any number of test binaries may start servers
//! at the same time. Within one binary, tests can share a server through
//! `TestPostgres::shared()` and isolate themselves with `create_database()`.
//!
//! Needs only the server binaries (Debian: `apt-get install postgresql`, which
//! `./scripts/setup.sh` does). No default cluster, no systemd, no network.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{chown, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use tempfile::TempDir;

/// Env var naming a directory that holds `initdb`, `pg_ctl` and `createdb`;
/// overrides the search below (e.g. to test against another major version).
const BIN_ENV: &str = "OUTPOST_PG_BIN";
/// Where Debian/Ubuntu install each major version (`/usr/lib/postgresql/15/bin`).
/// Their `/usr/bin` has only `pg_wrapper` links and no `initdb`/`pg_ctl`.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// Superuser role created by initdb; also the OS user we drop to when root.
const SUPERUSER: &str = "postgres";
/// Database created by `start()` and named by `url()`.
const DEFAULT_DB: &str = "test";
/// Tries at `pg_ctl start` when the port we picked was taken in the meantime.
const PORT_ATTEMPTS: u32 = 5;

pub struct TestPostgres {
    runner: Runner,
    port: u16,
    /// Suffix for `create_database`, so equal names from parallel tests
    /// never collide.
    next_db: AtomicU32,
    /// Stops the server and removes the directory if this process dies
    /// without running `Drop` (see `spawn_watchdog`).
    watchdog: Option<Child>,
    /// Held for its `Drop`, which deletes the directory; last field, so that
    /// happens only after the server has stopped.
    _tempdir: TempDir,
}

impl TestPostgres {
    /// Starts a new server with an empty database; panics (never skips) when
    /// PostgreSQL is missing or fails to start, with the reason.
    pub fn start() -> TestPostgres {
        let bin = find_bin_dir();
        // initdb/pg_ctl/postgres refuse to run as root, so as root we run them
        // as the `postgres` system user the Debian package creates.
        let owner = if effective_uid() == 0 { Some(lookup_user(SUPERUSER)) } else { None };

        // Under the system temp dir (/tmp is world-traversable), so the
        // dropped-privilege user can reach it. Short prefix on purpose: the
        // unix socket lives here and socket paths are capped at 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("pgtest-")
            .tempdir()
            .unwrap_or_else(|e| panic!("TestPostgres: cannot create a temp dir: {e}"));
        if let Some(o) = &owner {
            chown(dir.path(), Some(o.uid), Some(o.gid))
                .unwrap_or_else(|e| panic!("TestPostgres: cannot chown {} to {SUPERUSER}: {e}", dir.path().display()));
        }
        let runner = Runner { bin, dir: dir.path().to_path_buf(), owner };

        // Spawned before the server exists so there is no window in which a
        // crash could leak a running postmaster.
        let watchdog = spawn_watchdog(&runner);

        runner.run(
            runner
                .command("initdb")
                .arg("-D")
                .arg(runner.data_dir())
                .args(["-U", SUPERUSER, "-A", "trust", "--no-sync"])
                // A fixed C locale: reproducible sort order on every machine,
                // no dependency on which locales are generated, and English
                // server messages (we grep the log for the port clash below).
                .args(["-E", "UTF8", "--locale=C"]),
            "initdb",
        );

        write_config(&runner);
        let port = start_server(&runner);
        let pg = TestPostgres { runner, port, next_db: AtomicU32::new(0), watchdog: Some(watchdog), _tempdir: dir };
        pg.createdb(DEFAULT_DB);
        pg
    }

    /// One server per test binary, started on first use. Tests that call
    /// `create_database()` on it can run in parallel without seeing each
    /// other's data. Statics are never dropped: the watchdog stops this
    /// server when the test process exits.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(TestPostgres::start)
    }

    /// URL of the database created by `start()`.
    pub fn url(&self) -> String {
        self.url_for(DEFAULT_DB)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a fresh, empty database and returns its URL. The actual name is
    /// `name` (made a safe identifier) plus a unique suffix, so two tests
    /// passing the same name still get separate databases.
    pub fn create_database(&self, name: &str) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let db = format!("{}_{n}", sanitize_identifier(name));
        self.createdb(&db);
        self.url_for(&db)
    }

    fn url_for(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    fn createdb(&self, db: &str) {
        // The client tool rather than a hand-written wire protocol: it ships
        // next to initdb, and quoting the name is its job, not ours.
        self.runner.run(
            self.runner
                .command("createdb")
                .args(["-h", "127.0.0.1", "-U", SUPERUSER, "-p"])
                .arg(self.port.to_string())
                .arg(db),
            &format!("createdb {db}"),
        );
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Immediate mode: no checkpoint, nothing to keep; the data dir is
        // deleted next. Errors are ignored: panicking in Drop during a
        // failing test's unwind would abort and hide the real failure.
        let _ = self
            .runner
            .command("pg_ctl")
            .arg("-D")
            .arg(self.runner.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut w) = self.watchdog.take() {
            // Its work is done; killing it (rather than closing its stdin)
            // saves a redundant pg_ctl call.
            let _ = w.kill();
            let _ = w.wait();
        }
        // `self._tempdir` deletes the directory after this returns;
        // root may delete the postgres-owned files.
    }
}

/// How to run the PostgreSQL programs for one server.
struct Runner {
    bin: PathBuf,
    dir: PathBuf,
    owner: Option<Owner>,
}

#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Runner {
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        self.command_path(self.bin.join(program))
    }

    fn command_path(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        // The test's cwd (the crate dir, maybe under /root) may be unreadable
        // for the postgres user, and pg_ctl/initdb fail on that.
        cmd.current_dir(&self.dir);
        // PGDATA, PGPORT, PGHOST, PGOPTIONS, ... from the developer's shell
        // must not redirect or reconfigure our private server.
        for (key, _) in env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        // English, unlocalized output from the client tools too.
        cmd.env("LC_ALL", "C");
        if let Some(o) = self.owner {
            // std's own privilege drop (setgid + setuid, and it clears the
            // supplementary groups): no runuser/su/PAM needed.
            cmd.uid(o.uid).gid(o.gid);
        }
        cmd
    }

    /// Runs to completion, panicking with the program's output on failure.
    fn run(&self, cmd: &mut Command, what: &str) -> Output {
        let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("TestPostgres: cannot run {what}: {e}"));
        if !out.status.success() {
            panic!(
                "TestPostgres: {what} failed ({}):\n{}{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.hint(),
            );
        }
        out
    }

    fn hint(&self) -> String {
        match self.owner {
            Some(_) => format!(
                "(running as root, so as user {SUPERUSER}: it must be able to reach {}; \
                 set TMPDIR to a world-traversable directory if it is not)",
                self.dir.display()
            ),
            None => String::new(),
        }
    }
}

/// Starts the postmaster on a free loopback port and returns the port.
fn start_server(runner: &Runner) -> u16 {
    for attempt in 1..=PORT_ATTEMPTS {
        let port = free_port();
        let log = runner.log_file();
        // Fresh log per attempt, so a clash in an earlier one is not misread.
        let _ = fs::remove_file(&log);
        let out = runner
            .command("pg_ctl")
            .arg("-D")
            .arg(runner.data_dir())
            // -l matters beyond logging: pg_ctl then points the postmaster's
            // stdout/stderr at the file. Without it the postmaster would keep
            // our output pipes open and `output()` would wait for it forever.
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port}"))
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("TestPostgres: cannot run pg_ctl: {e}"));
        if out.status.success() {
            return port;
        }
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        // Binding 127.0.0.1:0 and closing it only reserves the port until
        // someone else takes it: another test binary doing the same, or a
        // client's outgoing connection. Rare, so a new port is enough.
        if log_text.contains("Address already in use") && attempt < PORT_ATTEMPTS {
            continue;
        }
        panic!(
            "TestPostgres: pg_ctl start failed on port {port} (attempt {attempt}):\n{}{}\n--- {} ---\n{log_text}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log.display(),
            runner.hint(),
        );
    }
    unreachable!("the last attempt either returns or panics")
}

/// Settings for our server, appended to the postgresql.conf initdb wrote
/// (later lines win). A file rather than `pg_ctl -o`, whose string goes
/// through a shell and would need quoting.
fn write_config(runner: &Runner) {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let settings = format!(
        "\n# TestPostgres\n\
         # TCP on loopback only: never reachable from outside the machine.\n\
         listen_addresses = '127.0.0.1'\n\
         # Debian's compiled-in default, /var/run/postgresql, may not exist (no\n\
         # service ever ran) and holds the system cluster's lock files.\n\
         unix_socket_directories = {}\n\
         # Durability is worthless for a throwaway server and costs time.\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n",
        quote(&runner.dir),
    );
    let conf = runner.data_dir().join("postgresql.conf");
    // Appending keeps the file's owner, which matters when we are root.
    fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut f| io::Write::write_all(&mut f, settings.as_bytes()))
        .unwrap_or_else(|e| panic!("TestPostgres: cannot write {}: {e}", conf.display()));
}

/// A port that was free a moment ago (see the retry in `start_server`).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("TestPostgres: cannot bind a loopback port: {e}"))
}

/// Starts a process that blocks reading a pipe from us. The kernel closes the
/// pipe when this process exits in any way (normal exit without running
/// destructors, as for `shared()`, a panic=abort, SIGKILL), and the process
/// then stops the server and deletes the directory. Runs as the data dir's
/// owner, so pg_ctl accepts it and it may delete the files.
fn spawn_watchdog(runner: &Runner) -> Child {
    const SCRIPT: &str = r#"read _ || :
"$1" -D "$2" -m immediate -w stop >/dev/null 2>&1
rm -rf "$3""#;
    runner
        .command_path("/bin/sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("pg-watchdog") // $0
        .arg(runner.bin.join("pg_ctl"))
        .arg(runner.data_dir())
        .arg(&runner.dir)
        .stdin(Stdio::piped())
        // Not our stdout: a harness reading it to EOF must not wait on this.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("TestPostgres: cannot start the cleanup watchdog: {e}"))
}

/// The directory holding initdb, pg_ctl and createdb: `$OUTPOST_PG_BIN`, else
/// the newest `/usr/lib/postgresql/<version>/bin`, else `$PATH` (other
/// distributions and Homebrew put them there).
fn find_bin_dir() -> PathBuf {
    search_bin_dir(env::var_os(BIN_ENV).map(PathBuf::from), Path::new(DEBIAN_ROOT), env::var_os("PATH"))
        .unwrap_or_else(|e| panic!("TestPostgres: {e}"))
}

fn search_bin_dir(
    override_dir: Option<PathBuf>,
    debian_root: &Path,
    path: Option<OsString>,
) -> Result<PathBuf, String> {
    const NEEDED: [&str; 3] = ["initdb", "pg_ctl", "createdb"];
    let complete = |dir: &Path| NEEDED.iter().all(|p| dir.join(p).is_file());

    if let Some(dir) = override_dir {
        // Absolute, because the programs run with the temp dir as their cwd.
        return match dir.canonicalize() {
            Ok(abs) if complete(&abs) => Ok(abs),
            _ => Err(format!("{BIN_ENV}={} lacks one of {NEEDED:?}", dir.display())),
        };
    }

    let newest_debian = fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            // "15", or "9.6" for old majors: compare numerically, so 15 > 9.6.
            let version: Option<Vec<u32>> = entry.file_name().to_str()?.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .max();
    if let Some((_, bin)) = newest_debian {
        return Ok(bin);
    }

    // Relative PATH entries are skipped for the same cwd reason as above.
    if let Some(dir) = path.iter().flat_map(env::split_paths).find(|dir| dir.is_absolute() && complete(dir)) {
        return Ok(dir);
    }

    Err(format!(
        "PostgreSQL server binaries not found ({NEEDED:?}; looked in ${BIN_ENV}, {}/*/bin \
         and $PATH). Run ./scripts/setup.sh, which installs Debian's `postgresql` package.",
        debian_root.display()
    ))
}

fn effective_uid() -> u32 {
    // /proc/self belongs to the process's effective uid; std has no geteuid.
    if let Ok(meta) = fs::metadata("/proc/self") {
        return meta.uid();
    }
    let out = Command::new("id").arg("-u").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("TestPostgres: cannot tell whether we run as root"))
}

/// uid and gid of a system user, through NSS like any other program.
fn lookup_user(name: &str) -> Owner {
    let parse = || -> io::Result<Owner> {
        let out = Command::new("getent").args(["passwd", name]).output()?;
        let line = String::from_utf8_lossy(&out.stdout);
        // name:password:uid:gid:gecos:home:shell
        let fields: Vec<&str> = line.trim().split(':').collect();
        match (fields.get(2).map(|s| s.parse()), fields.get(3).map(|s| s.parse())) {
            (Some(Ok(uid)), Some(Ok(gid))) => Ok(Owner { uid, gid }),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such user")),
        }
    };
    parse().unwrap_or_else(|e| {
        panic!(
            "TestPostgres: running as root, and PostgreSQL refuses root, but user \
             `{name}` cannot be found ({e}). Run ./scripts/setup.sh (Debian's \
             postgresql package creates it), or run the tests as a normal user."
        )
    })
}

/// A lowercase identifier that needs no quoting and leaves room for the
/// suffix within PostgreSQL's 63-byte name limit.
fn sanitize_identifier(name: &str) -> String {
    let mut id: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(50).collect();
    if !id.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        id.insert(0, 'd');
    }
    id
}

//! The `outpost` binary as a user runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use outpost::Bundle;

/// An external store nobody listens on (port 1 of loopback).
const UNREACHABLE_S3: [&str; 8] =
    ["--s3-endpoint", "http://127.0.0.1:1", "--s3-bucket", "b", "--s3-access-key", "k", "--s3-secret-key", "s"];

fn outpost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_outpost"))
}

#[test]
fn serve_prints_its_url_and_serves_the_bundle() {
    let data = tempfile::tempdir().unwrap();
    let mut child = outpost()
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut line, mut store_line) = (String::new(), String::new());
    stdout.read_line(&mut line).unwrap();
    stdout.read_line(&mut store_line).unwrap();
    assert!(store_line.starts_with("outpost: embedded object store at http://127.0.0.1:"), "{store_line:?}");
    let url = line.trim().strip_prefix("outpost: listening on ").unwrap_or_else(|| panic!("{line:?}"));
    let host = url.strip_prefix("http://").unwrap().trim_end_matches('/');

    let mut conn = TcpStream::connect(host).unwrap();
    write!(conn, "GET /sw.js HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(response.starts_with(b"HTTP/1.0 200"), "{}", String::from_utf8_lossy(&response[..split]));
    assert_eq!(&response[split + 4..], &Bundle::embedded().sw_js[..]);
}

#[test]
fn bad_flags_exit_non_zero_with_one_line() {
    let cases: [&[&str]; 4] = [
        &["serve", "--addr", "not-an-address"],
        &["serve", "--database-url", "mysql://x"],
        &["serve", "--s3-endpoint", "http://127.0.0.1:3900"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = outpost().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.lines().next().is_some_and(|l| l.starts_with("error") || l.starts_with("outpost:")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn unusable_data_dir_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out =
        outpost().args(["serve", "--addr", "127.0.0.1:0", "--data"]).arg(file.path().join("sub")).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot create the data directory"), "{stderr}");
}

#[test]
fn export_writes_the_drop_in_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = outpost().arg("export").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = Bundle::embedded();
    for name in
        ["sw.js", bundle.wasm_file.as_str(), "outpost.js", "outpost.d.ts", "outpost.config.json", "INTEGRATION.md"]
    {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    assert_eq!(std::fs::read(dir.path().join(&bundle.wasm_file)).unwrap(), bundle.wasm.to_vec());
    // The sample config is a config the worker accepts.
    let sample = std::fs::read_to_string(dir.path().join("outpost.config.json")).unwrap();
    outpost_sw::Config::from_json(&sample).unwrap();
}

/// `npm`, run the way a web developer's machine would, with nothing of the
/// network (the package has no dependencies).
fn npm(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("npm")
        .args(args)
        .args(["--offline", "--no-audit", "--no-fund", "--loglevel=error"])
        .env("npm_config_update_notifier", "false")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("npm is needed for this test (./scripts/setup.sh installs it): {e}"));
    assert!(out.status.success(), "npm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn export_npm_packs_a_package_a_site_installs_and_uses() {
    let package = tempfile::tempdir().unwrap();
    let out = outpost().args(["export", "--npm"]).arg(package.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = Bundle::embedded();

    // The tarball holds exactly the package's files.
    let packs = tempfile::tempdir().unwrap();
    let listing = npm(package.path(), &["pack", "--json", "--pack-destination", packs.path().to_str().unwrap()]);
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let mut files: Vec<String> =
        listing[0]["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    files.sort();
    let wasm = format!("worker/{}", bundle.wasm_file);
    let mut want = vec![
        "README.md",
        "bin/outpost-install.js",
        "client/outpost.d.ts",
        "client/outpost.js",
        "package.json",
        "worker/outpost.config.json",
        "worker/sw.js",
        wasm.as_str(),
    ];
    want.sort();
    assert_eq!(files, want);
    let tarball = packs.path().join(listing[0]["filename"].as_str().unwrap());
    assert_eq!(listing[0]["name"], "outpost-sw");
    assert_eq!(listing[0]["version"], env!("CARGO_PKG_VERSION"));

    // A site installs the tarball, imports the client by its package name,
    // and copies the worker into its public folder (an older wasm there goes).
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("package.json"), r#"{"name": "site", "private": true}"#).unwrap();
    npm(site.path(), &["install", "--no-save", tarball.to_str().unwrap()]);
    let import = std::process::Command::new("node")
        .args(["--input-type=module", "-e"])
        .arg(
            "import { Outpost } from 'outpost-sw/client'; if (typeof Outpost.register !== 'function') process.exit(3);",
        )
        .current_dir(site.path())
        .output()
        .unwrap();
    assert!(import.status.success(), "import of outpost-sw/client: {}", String::from_utf8_lossy(&import.stderr));
    let public = site.path().join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(public.join("outpost-sw-0123456789abcdef.wasm"), b"old").unwrap();
    let copied = npm(site.path(), &["exec", "--no", "--", "outpost-install", "public"]);
    assert!(copied.contains("copied ") && copied.contains("sw.js") && copied.contains(&bundle.wasm_file), "{copied}");
    assert_eq!(std::fs::read(public.join("sw.js")).unwrap(), bundle.sw_js.to_vec());
    assert_eq!(std::fs::read(public.join(&bundle.wasm_file)).unwrap(), bundle.wasm.to_vec());
    assert!(!public.join("outpost-sw-0123456789abcdef.wasm").exists(), "the older wasm is removed");
}

#[test]
fn unreachable_database_or_store_exits_with_one_line() {
    let data = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of loopback.
    let keys = "ab".repeat(32);
    let database = ["--session-keys", &keys, "--database-url", "postgres://postgres@127.0.0.1:1/outpost"];
    let with_db: Vec<&str> = database.iter().chain(&UNREACHABLE_S3).copied().collect();
    let cases: [&[&str]; 2] = [&with_db, &UNREACHABLE_S3];
    for extra in cases {
        let out =
            outpost().args(["serve", "--addr", "127.0.0.1:0", "--data"]).arg(data.path()).args(extra).output().unwrap();
        assert!(!out.status.success(), "{extra:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{extra:?}: {stderr}");
        assert!(
            stderr.starts_with("outpost: --database-url")
                || stderr.contains("S3 store at http://127.0.0.1:1 is unusable"),
            "{stderr}"
        );
    }
}

/// Sends one HTTP/1.0 request and returns the status line, headers and body.
fn http(host: &str, request: &str) -> String {
    let mut conn = TcpStream::connect(host).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

/// Starts `outpost serve` with `env` and returns it with its host:port.
fn serve_with(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut child = outpost()
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("outpost: listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    // Keep reading: a closed pipe would fail the server's next line.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, url.strip_prefix("http://").unwrap().trim_end_matches('/').to_string())
}

fn one_line_refusal(args: &[&str], expect: &str) {
    let out = outpost().arg("serve").args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(expect), "{args:?}: {stderr}");
}

#[test]
fn a_shared_database_with_the_embedded_store_is_refused() {
    one_line_refusal(
        &["--addr", "127.0.0.1:0", "--database-url", "postgres://postgres@127.0.0.1:1/outpost"],
        "--database-url needs --s3-endpoint: the embedded object store is per instance",
    );
    let args: Vec<&str> = ["--addr", "127.0.0.1:0", "--database-url", "postgres://postgres@127.0.0.1:1/outpost"]
        .iter()
        .chain(&UNREACHABLE_S3)
        .copied()
        .collect();
    one_line_refusal(&args, "--database-url needs the session keys every instance shares");
}

#[test]
fn a_public_address_needs_its_host_names() {
    let data = tempfile::tempdir().unwrap();
    one_line_refusal(&["--addr", "0.0.0.0:0", "--data", data.path().to_str().unwrap()], "give --public-host NAME");
}

#[test]
fn one_process_per_data_dir_created_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let data = data.to_str().unwrap();
    let (mut first, _) = serve_with(&["--addr", "127.0.0.1:0", "--data", data], &[]);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(data).unwrap().permissions().mode() & 0o777, 0o700);
    one_line_refusal(&["--addr", "127.0.0.1:0", "--data", data], "is in use by another outpost process");
    first.kill().unwrap();
    first.wait().unwrap();
    // The lock goes with the process.
    let (mut again, _) = serve_with(&["--addr", "127.0.0.1:0", "--data", data], &[]);
    again.kill().unwrap();
    again.wait().unwrap();
}

/// Every flag from an `OUTPOST_*` variable, the session keys included;
/// `revoke-sessions` ends a user's sessions; SIGTERM stops the server
/// cleanly.
#[test]
fn configured_from_the_environment_and_stopped_by_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let key = "ab".repeat(32);
    let env = [
        ("OUTPOST_ADDR", "127.0.0.1:0"),
        ("OUTPOST_DATA", data.path().to_str().unwrap()),
        ("OUTPOST_SESSION_KEYS", key.as_str()),
    ];
    let (child, host) = serve_with(&[], &env);
    let login = http(
        &host,
        &format!(
            "POST /api/auth/login HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{{\"user\":\"alice\"}}"
        ),
    );
    assert!(login.starts_with("HTTP/1.0 200"), "{login}");
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: outpost_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    // Signed with the key from the environment, not a generated one.
    let keys = outpost::auth::SessionKeys::parse(&key).unwrap();
    assert!(keys.verify(&cookie, outpost::db::now_ms()).is_ok());
    assert!(!data.path().join("session.key").exists());
    let me = |host: &str| {
        http(host, &format!("GET /api/auth/me HTTP/1.0\r\nHost: {host}\r\nCookie: outpost_session={cookie}\r\n\r\n"))
    };
    assert!(me(&host).starts_with("HTTP/1.0 200"));

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "SIGTERM is a clean stop: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outpost: stopping") && stderr.contains("outpost: stopped"), "{stderr}");

    let revoke = outpost().args(["revoke-sessions", "--user", "alice"]).envs(env.iter().copied()).output().unwrap();
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));
    let nobody = outpost().args(["revoke-sessions", "--user", "nobody"]).envs(env.iter().copied()).output().unwrap();
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user is named"));
    let (mut child, host) = serve_with(&[], &env);
    assert!(me(&host).starts_with("HTTP/1.0 401"), "a revoked session is no login after a restart either");
    child.kill().unwrap();
    child.wait().unwrap();
}

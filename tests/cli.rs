//! The `outpost` binary as a user runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use outpost::Bundle;

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

#[test]
fn unreachable_database_or_store_exits_with_one_line() {
    let data = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of loopback.
    let cases: [&[&str]; 2] = [
        &["--database-url", "postgres://postgres@127.0.0.1:1/outpost"],
        &["--s3-endpoint", "http://127.0.0.1:1", "--s3-bucket", "b", "--s3-access-key", "k", "--s3-secret-key", "s"],
    ];
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

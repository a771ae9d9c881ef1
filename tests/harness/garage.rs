//! A throwaway single-node Garage server (the S3 store the original design
//! uses), started from the `garage` binary that ./scripts/setup.sh installs
//! with `cargo install`. Missing binary: the test fails with that command.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost::store::s3::S3Config;

pub const REGION: &str = "garage";
pub const BUCKET: &str = "outpost";

pub struct Garage {
    child: Child,
    dir: tempfile::TempDir,
    pub config: S3Config,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("OUTPOST_GARAGE") {
        return p.into();
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("garage")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_home.map(|h| h.join("bin/garage")));
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!("garage not found on PATH or in ~/.cargo/bin: run ./scripts/setup.sh (it runs `cargo install garage`, about 11 minutes once), or set OUTPOST_GARAGE");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::Builder::new().prefix("outpost-garage-").tempdir().unwrap();
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).unwrap();
        let path = dir.path().display();
        let config = format!(
            "metadata_dir = \"{path}/meta\"\n\
             data_dir = \"{path}/data\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n\
             [admin]\n\
             api_bind_addr = \"127.0.0.1:{admin}\"\n\
             admin_token = \"{token}\"\n",
            secret = hex(&secret),
            token = hex(&token),
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start garage");
        let mut garage = Garage {
            child,
            dir,
            config: S3Config {
                endpoint: format!("http://127.0.0.1:{s3}"),
                bucket: BUCKET.into(),
                region: REGION.into(),
                access_key: String::new(),
                secret_key: String::new(),
            },
        };
        garage.set_up();
        garage
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}\n--- log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// One node, one key, one bucket the key may read and write.
    fn set_up(&mut self) {
        // `status` talks to the server over RPC, so its success means the
        // server is up (`node id` only reads the key file, which exists
        // before the server listens).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(binary())
                .arg("-c")
                .arg(self.dir.path().join("garage.toml"))
                .arg("status")
                .output()
                .expect("run garage");
            if out.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "garage did not come up: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
        let node_id = self.cli(&["node", "id", "-q"]);
        let node = node_id.trim().split('@').next().unwrap().to_string();
        self.cli(&["layout", "assign", &node[..16], "-z", "dc1", "-c", "1G"]);
        self.cli(&["layout", "apply", "--version", "1"]);
        let key: serde_json::Value =
            serde_json::from_str(&self.cli(&["json-api", "CreateKey", r#"{"name":"outpost"}"#])).unwrap();
        self.config.access_key = key["accessKeyId"].as_str().unwrap().into();
        self.config.secret_key = key["secretAccessKey"].as_str().unwrap().into();
        self.cli(&["bucket", "create", BUCKET]);
        self.cli(&["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "outpost"]);
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

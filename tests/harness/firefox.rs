//! Debian's Firefox ESR, driven over WebDriver BiDi, which Firefox serves
//! itself when started with `--remote-debugging-port` (no geckodriver).
//!
//! Only what the tests need: open and close tabs, navigate, evaluate
//! script with promises awaited. Preferences go in the profile's `user.js`;
//! by default the idle-worker timeout is shortened to 2 s, so a worker that
//! nothing keeps busy is stopped within seconds, as it is (after about
//! 30 s) for the people using the app.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_tungstenite::tokio::{connect_async, ConnectStream};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{Js, PATIENCE};

/// Firefox's own idle-worker timeout, shortened (ms); the extended one is
/// how long a worker with unfinished work may run past it.
pub const IDLE_TIMEOUT_MS: u32 = 2_000;
pub const IDLE_EXTENDED_TIMEOUT_MS: u32 = 10_000;

fn firefox_path() -> String {
    if let Ok(p) = std::env::var("OUTPOST_FIREFOX") {
        return p;
    }
    for p in ["/usr/bin/firefox-esr", "/usr/bin/firefox"] {
        if std::path::Path::new(p).is_file() {
            return p.into();
        }
    }
    panic!("Firefox not found (/usr/bin/firefox-esr): run ./scripts/setup.sh (installs Debian's firefox-esr), or set OUTPOST_FIREFOX");
}

pub struct Firefox {
    child: Child,
    profile: tempfile::TempDir,
    bidi: Mutex<Bidi>,
}

struct Bidi {
    ws: WebSocketStream<ConnectStream>,
    next_id: u64,
}

impl Bidi {
    /// Sends one command and waits for its answer (events are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let text = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::Text(text.into())).await.map_err(|e| format!("BiDi send: {e}"))?;
        loop {
            let msg = tokio::time::timeout(PATIENCE * 4, self.ws.next())
                .await
                .map_err(|_| format!("BiDi: no answer to {method} within {:?}", PATIENCE * 4))?
                .ok_or("BiDi: Firefox closed the connection")?
                .map_err(|e| format!("BiDi receive: {e}"))?;
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).map_err(|e| format!("BiDi: bad JSON: {e}"))?;
            if v["id"].as_u64() != Some(id) {
                continue; // an event, or the answer to nothing we wait for
            }
            return match v["type"].as_str() {
                Some("success") => Ok(v["result"].clone()),
                _ => Err(format!("{method}: {} {}", v["error"], v["message"])),
            };
        }
    }
}

impl Firefox {
    /// Firefox on a fresh profile, with the idle-worker timeout shortened.
    pub async fn launch() -> Firefox {
        Self::launch_with(&[]).await
    }

    /// With extra preferences, as `(name, JS literal)`.
    pub async fn launch_with(prefs: &[(&str, &str)]) -> Firefox {
        let profile = tempfile::Builder::new().prefix("outpost-firefox-").tempdir().unwrap();
        let mut user_js = String::new();
        let idle = IDLE_TIMEOUT_MS.to_string();
        let extended = IDLE_EXTENDED_TIMEOUT_MS.to_string();
        let defaults: [(&str, &str); 13] = [
            ("dom.serviceWorkers.idle_timeout", &idle),
            ("dom.serviceWorkers.idle_extended_timeout", &extended),
            ("browser.shell.checkDefaultBrowser", "false"),
            ("browser.startup.homepage_override.mstone", "\"ignore\""),
            ("datareporting.policy.dataSubmissionEnabled", "false"),
            ("toolkit.telemetry.reportingpolicy.firstRun", "false"),
            ("app.update.disabledForTesting", "true"),
            // This machine has no network beyond loopback: no probes that
            // could make Firefox decide it is offline.
            ("network.captive-portal-service.enabled", "false"),
            ("network.connectivity-service.enabled", "false"),
            ("network.manage-offline-status", "false"),
            ("network.proxy.type", "0"),
            ("browser.safebrowsing.update.enabled", "false"),
            // Test pages such as `/api/health` are JSON: shown as a plain
            // document of their origin, not in the privileged JSON viewer.
            ("devtools.jsonview.enabled", "false"),
        ];
        for (k, v) in defaults.iter().chain(prefs) {
            user_js.push_str(&format!("user_pref({k:?}, {v});\n"));
        }
        std::fs::write(profile.path().join("user.js"), user_js).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let path = firefox_path();
        let log = std::fs::File::create(profile.path().join("firefox.log")).unwrap();
        let child = Command::new(&path)
            .args(["--headless", "--no-remote", "--profile"])
            .arg(profile.path())
            .arg(format!("--remote-debugging-port={port}"))
            .arg("about:blank")
            .env("MOZ_HEADLESS", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
        let url = format!("ws://127.0.0.1:{port}/session");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let ws = loop {
            match connect_async(url.as_str()).await {
                Ok((ws, _)) => break ws,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "Firefox ({path}) did not serve WebDriver BiDi on {url} within {PATIENCE:?}: {e}; log: {}",
                    std::fs::read_to_string(profile.path().join("firefox.log")).unwrap_or_default()
                ),
            }
        };
        let mut bidi = Bidi { ws, next_id: 0 };
        bidi.call("session.new", json!({ "capabilities": {} })).await.expect("BiDi session.new");
        Firefox { child, profile, bidi: Mutex::new(bidi) }
    }

    /// What Firefox printed so far (with `devtools.console.stdout.content`
    /// set, the console of pages and workers too): for a failure's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("firefox.log")).unwrap_or_default()
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.bidi.lock().await.call(method, params).await
    }

    /// Opens a new tab at `url` and waits for it to load.
    pub async fn open(&self, url: &str) -> FirefoxTab<'_> {
        let created = self.call("browsingContext.create", json!({ "type": "tab" })).await.expect("new tab");
        let context = created["context"].as_str().expect("a context id").to_string();
        let tab = FirefoxTab { firefox: self, context };
        tab.goto(url).await;
        tab
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tab (a BiDi browsing context).
pub struct FirefoxTab<'a> {
    firefox: &'a Firefox,
    context: String,
}

impl FirefoxTab<'_> {
    pub async fn goto(&self, url: &str) {
        self.firefox
            .call("browsingContext.navigate", json!({ "context": self.context, "url": url, "wait": "complete" }))
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Closes the tab (its page is gone; the worker is left to the browser).
    pub async fn close(self) {
        self.firefox.call("browsingContext.close", json!({ "context": self.context })).await.expect("close the tab");
    }
}

impl Js for FirefoxTab<'_> {
    fn engine_log(&self) -> String {
        self.firefox.log()
    }

    async fn try_eval(&self, js: &str) -> Result<Value, String> {
        // The value crosses as JSON text (BiDi's own serialisation of
        // objects is a tree of typed nodes); a global eval takes scripts of
        // statements as well as expressions, as CDP's evaluate does.
        let source = serde_json::to_string(js).expect("a string serialises");
        let expression = format!("(async () => JSON.stringify(await (0, eval)({source})))()");
        let params = json!({
            "expression": expression, "target": { "context": self.context },
            "awaitPromise": true, "resultOwnership": "none",
        });
        let result = self.firefox.call("script.evaluate", params).await?;
        match result["type"].as_str() {
            Some("success") => match result["result"]["value"].as_str() {
                Some(text) => serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}")),
                None => Ok(Value::Null),
            },
            _ => Err(result["exceptionDetails"]["text"].as_str().unwrap_or("exception").to_string()),
        }
    }
}

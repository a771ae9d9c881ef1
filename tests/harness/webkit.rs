//! WebKitGTK (Debian's `webkit2gtk-driver`): MiniBrowser in automation mode
//! under its own Xvfb display, driven through WebKitWebDriver (classic
//! WebDriver over HTTP). Automation sessions are ephemeral, as Safari's
//! private windows are: what they store is gone when the session ends.
//!
//! One WebKitWebDriver serves one session, so each `WebKit` starts its own
//! display, driver and browser.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{Js, PATIENCE};

const DRIVER: &str = "/usr/bin/WebKitWebDriver";
const XVFB: &str = "/usr/bin/Xvfb";

fn minibrowser() -> String {
    if let Ok(p) = std::env::var("OUTPOST_MINIBROWSER") {
        return p;
    }
    for p in [
        "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
        "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
    ] {
        if std::path::Path::new(p).is_file() {
            return p.into();
        }
    }
    panic!("WebKitGTK's MiniBrowser not found: run ./scripts/setup.sh (installs Debian's webkit2gtk-driver), or set OUTPOST_MINIBROWSER");
}

pub struct WebKit {
    xvfb: Child,
    driver: Child,
    base: String,
    http: reqwest::Client,
    /// The first window, kept open (closing the last window ends the session).
    home: String,
}

impl WebKit {
    pub async fn launch() -> WebKit {
        for tool in [DRIVER, XVFB] {
            assert!(
                std::path::Path::new(tool).is_file(),
                "{tool} not found: run ./scripts/setup.sh (installs Debian's webkit2gtk-driver and xvfb)"
            );
        }
        let binary = minibrowser();
        // Xvfb picks a free display and writes its number on the fd given.
        let mut xvfb = Command::new(XVFB)
            .args(["-displayfd", "1", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {XVFB}: {e}"));
        let mut line = String::new();
        BufReader::new(xvfb.stdout.take().unwrap()).read_line(&mut line).expect("Xvfb says its display");
        let display = format!(":{}", line.trim());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {DRIVER}: {e}"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "MiniBrowser",
            "webkitgtk:browserOptions": { "binary": binary, "args": ["--automation"] },
        }}});
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let session = loop {
            match call(&http, "POST", &format!("{base}/session"), Some(&caps)).await {
                Ok(v) => break v["sessionId"].as_str().expect("a session id").to_string(),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("WebKitWebDriver on {base} gave no session within {PATIENCE:?}: {e}"),
            }
        };
        let base = format!("{base}/session/{session}");
        let mut webkit = WebKit { xvfb, driver, base, http, home: String::new() };
        webkit.send("POST", "/timeouts", Some(&json!({ "script": 300_000, "pageLoad": 60_000 }))).await.unwrap();
        webkit.home = webkit.send("GET", "/window", None).await.unwrap().as_str().unwrap().to_string();
        webkit
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        call(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    /// Opens a new window at `url`.
    pub async fn open(&self, url: &str) -> WebKitTab<'_> {
        // From the first window: the current one may have navigated to
        // another site (a new web process), which the driver can lose.
        self.send("POST", "/window", Some(&json!({ "handle": self.home }))).await.expect("the first window");
        let made = self.send("POST", "/window/new", Some(&json!({ "type": "tab" }))).await.expect("a new window");
        let tab = WebKitTab { webkit: self, handle: made["handle"].as_str().expect("a window handle").to_string() };
        tab.goto(url).await;
        tab
    }
}

impl Drop for WebKit {
    fn drop(&mut self) {
        // MiniBrowser goes with its display.
        for child in [&mut self.driver, &mut self.xvfb] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One WebDriver command: its `value`, or the error it answered.
async fn call(http: &reqwest::Client, method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
    let req = match method {
        "POST" => {
            http.post(url).header("content-type", "application/json").body(body.unwrap_or(&json!({})).to_string())
        }
        "DELETE" => http.delete(url),
        _ => http.get(url),
    };
    let res = req.send().await.map_err(|e| format!("WebDriver {method} {url}: {e}"))?;
    let text = res.text().await.map_err(|e| format!("WebDriver {method} {url}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("WebDriver: not JSON ({e}): {text}"))?;
    match v["value"].get("error") {
        Some(err) => Err(format!("{err}: {}", v["value"]["message"])),
        None => Ok(v["value"].clone()),
    }
}

/// One window of the session.
pub struct WebKitTab<'a> {
    webkit: &'a WebKit,
    handle: String,
}

impl WebKitTab<'_> {
    async fn focus(&self) -> Result<(), String> {
        self.webkit.send("POST", "/window", Some(&json!({ "handle": self.handle }))).await.map(drop)
    }

    pub async fn goto(&self, url: &str) {
        self.focus().await.expect("focus the window");
        self.webkit
            .send("POST", "/url", Some(&json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Closes the window (the session's first, blank window stays).
    pub async fn close(self) {
        self.focus().await.expect("focus the window");
        self.webkit.send("DELETE", "/window", None).await.expect("close the window");
        let home = json!({ "handle": self.webkit.home });
        self.webkit.send("POST", "/window", Some(&home)).await.expect("back to the first window");
    }
}

impl Js for WebKitTab<'_> {
    async fn try_eval(&self, js: &str) -> Result<Value, String> {
        self.focus().await?;
        // As for Firefox: a global eval (scripts of statements work), the
        // value crossing as JSON text.
        let source = serde_json::to_string(js).expect("a string serialises");
        let script = format!(
            "const done = arguments[arguments.length - 1]; \
             (async () => JSON.stringify(await (0, eval)({source})))().then( \
               (v) => done({{ ok: v === undefined ? 'null' : v }}), \
               (e) => done({{ err: String(e && e.message || e) }}));"
        );
        let v = self.webkit.send("POST", "/execute/async", Some(&json!({ "script": script, "args": [] }))).await?;
        match (v["ok"].as_str(), v["err"].as_str()) {
            (Some(text), _) => serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}")),
            (_, Some(err)) => Err(err.to_string()),
            _ => Err(format!("unexpected answer: {v}")),
        }
    }
}

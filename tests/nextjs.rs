//! The npm package inside a real Next.js app (`examples/nextjs`), whose own
//! route handlers are the API: nothing of the reference origin runs here.
//!
//! The test packs `outpost export --npm` with `npm pack`, installs the
//! example's locked dependencies from the registry (`npm ci`) and then that
//! tarball, builds the app (`next build`, which copies the worker into
//! `public/` first), and runs `next start`. Chromium uses the app through
//! its page, as a person would: log in, write notes, add an image. The
//! server is killed (the app's API unreachable: the page and its scripts
//! are then the worker's copies), and with nobody touching anything, once
//! it is started again, the notes arrive once and in order and the image is
//! stored. No sync event, no `flush()`.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{wait_until, Chromium, PATIENCE};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long the notes and the image may take to arrive once the server is
/// back: the worker's backoff after an outage is at most 32 s between
/// attempts, and the open page wakes it at its due time.
const DELIVERY: Duration = Duration::from_secs(60);

/// The whole test normally takes about a minute (install and build about
/// 40 s of it). Past this, something waits on a thing that will never
/// come (a CDP call or a child process with no timeout of its own): the
/// watchdog says at which step, stops the app's server and ends the test
/// process, rather than letting the run hang until CI gives up on it.
const WHOLE_TEST: Duration = Duration::from_secs(8 * 60);

/// The step the test is at, and the server's process id, for the watchdog.
static STEP: Mutex<&str> = Mutex::new("starting");
static SERVER_PID: AtomicU32 = AtomicU32::new(0);
static SERVER_LOG: Mutex<Option<PathBuf>> = Mutex::new(None);

fn step(what: &'static str) {
    println!("nextjs: {what}");
    *STEP.lock().unwrap() = what;
}

fn watchdog() {
    std::thread::spawn(move || {
        std::thread::sleep(WHOLE_TEST);
        let at = *STEP.lock().unwrap();
        let log = SERVER_LOG.lock().unwrap().clone();
        let server = log.and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
        // Written to stderr itself, not through `eprintln!`: the test
        // harness captures that (in this thread too) and the capture is lost
        // with the process, so a run killed here said nothing of where.
        let said = format!("nextjs: still not done after {WHOLE_TEST:?}, at the step \"{at}\"; the server said:\n{server}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), said.as_bytes());
        let pid = SERVER_PID.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        std::process::exit(101);
    });
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it ({e}); ./scripts/setup.sh installs Node.js and npm"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

fn npm(dir: &Path) -> Command {
    let mut c = Command::new("npm");
    c.current_dir(dir).env("NEXT_TELEMETRY_DISABLED", "1").args(["--no-audit", "--no-fund", "--no-update-notifier"]);
    c
}

/// Copies the example without what a build or a run leaves in it.
fn copy_example(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["node_modules", ".next", "data", "next-env.d.ts", "sw.js"].contains(&name.as_str())
            || (name.starts_with("outpost-sw-") && name.ends_with(".wasm"))
        {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_example(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The example, built once with the package as packed from this build.
struct NextApp {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    server: Option<Child>,
}

impl NextApp {
    fn build() -> NextApp {
        let tmp = tempfile::Builder::new().prefix("outpost-nextjs-").tempdir().unwrap();
        let pkg = tmp.path().join("package");
        run("outpost export --npm", Command::new(env!("CARGO_BIN_EXE_outpost")).arg("export").arg("--npm").arg(&pkg));
        let packed: Value = serde_json::from_str(&run("npm pack", npm(&pkg).args(["pack", "--json"]))).unwrap();
        let tarball = pkg.join(packed[0]["filename"].as_str().unwrap());
        println!("nextjs: package {} is {} bytes", tarball.display(), std::fs::metadata(&tarball).unwrap().len());
        let dir = tmp.path().join("app");
        copy_example(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nextjs"), &dir);
        let t = Instant::now();
        run(
            "npm ci (the example's locked dependencies, from the registry)",
            npm(&dir).args(["ci", "--prefer-offline"]),
        );
        run("npm install of the packed tarball", npm(&dir).args(["install", "--no-save"]).arg(&tarball));
        println!("nextjs: installed in {:.1} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let built = run("next build", npm(&dir).args(["run", "build"]));
        assert!(
            built.contains("outpost: copied ") && built.contains(" sw.js to public"),
            "prebuild did not copy the worker:\n{built}"
        );
        println!("nextjs: built in {:.1} s", t.elapsed().as_secs_f64());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = tmp.path().join("data");
        NextApp { _tmp: tmp, dir, data, port, server: None }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn start(&mut self) {
        // Appended: a failure shows both runs.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).unwrap();
        let child = Command::new(self.dir.join("node_modules/.bin/next"))
            .args(["start", "-H", "127.0.0.1", "-p", &self.port.to_string()])
            .current_dir(&self.dir)
            .env("NOTES_DATA", &self.data)
            .env("NEXT_TELEMETRY_DISABLED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("next start");
        SERVER_PID.store(child.id(), Ordering::SeqCst);
        self.server = Some(child);
        let port = self.port;
        wait_until("next start to answer", PATIENCE, || async move {
            (status_of(port, "/api/auth/me").await == Some(401)).then_some(())
        })
        .await;
    }

    /// The server killed outright, as a crash or a lost network would.
    fn kill(&mut self) {
        // `next start` is one process (next-server).
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the app stored (its db.json).
    fn stored(&self) -> Value {
        std::fs::read(self.data.join("db.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    fn note_texts(&self, user: &str) -> Vec<String> {
        self.stored()["notes"][user]
            .as_array()
            .map(|n| n.iter().map(|n| n["text"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for NextApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of a plain GET (no cookie), if the server answers.
async fn status_of(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Types into the page's input and submits its form, as a person would.
fn type_and_submit(selector: &str, text: &str) -> String {
    format!(
        "(() => {{ const i = document.querySelector({sel}); i.value = {text}; i.form.requestSubmit(); return true; }})()",
        sel = serde_json::to_string(selector).unwrap(),
        text = serde_json::to_string(text).unwrap()
    )
}

/// The page as a person sees it, in target/screenshots.
async fn screenshot(tab: &harness::Tab, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let params = chromiumoxide::page::ScreenshotParams::builder().full_page(true).build();
    let png = tab.page.screenshot(params).await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits for `js` to be truthy in the page; on a timeout, says what the
/// page shows.
async fn wait_for(tab: &harness::Tab, what: &str, js: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = tab.try_eval(js).await.ok().filter(|v| !v.is_null() && *v != false) {
            return v;
        }
        if Instant::now() > deadline {
            let shown = tab.try_eval("document.body.innerText").await;
            panic!("timed out after {PATIENCE:?} waiting for {what}; the page shows: {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nextjs_app_with_its_own_api_works_offline_through_the_npm_package() {
    watchdog();
    step("packing, installing and building the example");
    let mut app = NextApp::build();
    *SERVER_LOG.lock().unwrap() = Some(app.dir.join("server.log"));
    step("starting next");
    app.start().await;
    step("logging in and writing online");
    let chromium = Chromium::launch_with(&[("window-size", "1000,760")]).await;
    let tab = chromium.open(&app.url("/")).await;

    // Log in through the page.
    wait_for(&tab, "the login form", "!!document.querySelector('input[name=user]') && !!window.outpost").await;
    tab.eval(&type_and_submit("input[name=user]", "alice")).await;
    wait_for(&tab, "the notes page", "!!document.querySelector('input[name=text]')").await;
    tab.eval(&type_and_submit("input[name=text]", "written online")).await;
    wait_for(
        &tab,
        "the online note listed",
        "[...document.querySelectorAll('li:not(.queued)')].some((li) => li.textContent.includes('written online'))",
    )
    .await;
    assert_eq!(app.note_texts("alice"), ["written online"]);
    // Once more online, now through the worker: the page and its scripts
    // are kept for an offline start.
    step("reloading online");
    tab.reload().await;
    wait_for(
        &tab,
        "the notes page after a reload",
        "!!document.querySelector('input[name=text]') && document.querySelectorAll('li').length === 1",
    )
    .await;

    // The API unreachable.
    step("writing with the server down");
    app.kill();
    let down = Instant::now();
    for n in 1..=3 {
        tab.eval(&type_and_submit("input[name=text]", &format!("offline {n}"))).await;
        wait_for(&tab, "the note shown as waiting", &format!("document.querySelectorAll('li.queued').length === {n}"))
            .await;
    }
    let status = tab.eval("outpost.status()").await;
    assert_eq!(status["pending"], 3, "{status}");
    // An image, added offline through the page's file input.
    step("adding an image with the server down");
    let digest = tab
        .eval(
            "(async () => { const c = document.createElement('canvas'); c.width = 320; c.height = 200; \
             const g = c.getContext('2d'); const grad = g.createLinearGradient(0, 0, 320, 200); \
             grad.addColorStop(0, '#2456c7'); grad.addColorStop(1, '#f0b429'); g.fillStyle = grad; g.fillRect(0, 0, 320, 200); \
             const blob = await new Promise((res) => c.toBlob(res, 'image/png')); \
             const file = new File([blob], 'sky.png', { type: 'image/png' }); \
             const input = document.querySelector('input[type=file]'); const dt = new DataTransfer(); dt.items.add(file); \
             input.files = dt.files; input.dispatchEvent(new Event('change', { bubbles: true })); \
             const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()); \
             return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join(''); })()",
        )
        .await;
    let digest = digest.as_str().unwrap().to_string();
    wait_for(&tab, "the image kept on the device", "outpost.status().then((s) => s.uploads.length === 1)").await;

    // The page opened again with the server still down: it comes from the
    // worker, and so does the list, marked as the device's copy.
    step("reloading with the server down");
    tab.reload().await;
    let stale = wait_for(
        &tab,
        "the device's copy of the list, marked stale",
        "document.querySelector('[data-stale]')?.textContent",
    )
    .await;
    println!("nextjs: offline list: {stale}");
    let listed = tab.eval("[...document.querySelectorAll('li')].map((li) => li.firstChild.textContent)").await;
    assert_eq!(listed, serde_json::json!(["written online"]), "the list as last read online");
    let pending = wait_for(&tab, "the waiting banner", "document.querySelector('[data-pending]')?.textContent").await;
    assert!(pending.as_str().unwrap().starts_with("3 changes waiting"), "the 3 notes: {pending}");
    let images =
        wait_for(&tab, "the waiting image line", "document.querySelector('[data-uploads]')?.textContent").await;
    assert!(images.as_str().unwrap().starts_with("1 image kept"), "{images}");
    screenshot(&tab, "nextjs-offline").await;
    assert_eq!(app.note_texts("alice"), ["written online"], "nothing reached the stopped server");

    // Back, after an outage of some seconds; then nobody touches anything.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())).await;
    step("starting next again");
    app.start().await;
    step("waiting for the notes and the image to arrive");
    let back = Instant::now();
    let outage = back - down;
    let want = ["written online", "offline 1", "offline 2", "offline 3"];
    let notes = wait_until("the offline notes at the app", DELIVERY, || async {
        let n = app.note_texts("alice");
        (n.len() >= want.len()).then_some(n)
    })
    .await;
    let notes_in = back.elapsed();
    assert_eq!(notes, want, "once each, in order");
    let deadline = Instant::now() + DELIVERY;
    let asset = loop {
        let s = app.stored();
        if let Some(a) = s["assets"]["alice"].as_array().and_then(|a| a.first()).filter(|a| a["status"] == "uploaded") {
            break a.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {DELIVERY:?} waiting for the image stored by the app; the app has {}; the worker: {:?}; the server said:\n{}",
                s["assets"],
                tab.try_eval("outpost.status()").await,
                app.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let image_in = back.elapsed();
    let bytes = std::fs::read(app.data.join("blobs").join(asset["id"].as_str().unwrap())).unwrap();
    assert_eq!(format!("{:x}", Sha256::digest(&bytes)), digest, "the stored image is the one added offline");
    assert_eq!(asset["contentType"], "image/png");
    println!(
        "nextjs: outage {:.1} s; the 3 notes at the app {:.1} s and the image {:.1} s after it was back",
        outage.as_secs_f64(),
        notes_in.as_secs_f64(),
        image_in.as_secs_f64()
    );
    // The page shows it all, from the network again.
    step("checking the page shows what arrived");
    wait_for(
        &tab,
        "the page to list the delivered notes",
        "document.querySelectorAll('li:not(.queued)').length === 4 && !document.querySelector('[data-stale]')",
    )
    .await;
    wait_for(&tab, "the image shown", "document.querySelector('.images img')?.complete === true && document.querySelector('.images img').naturalWidth === 320").await;
    screenshot(&tab, "nextjs-delivered").await;
    let status = tab.eval("outpost.status()").await;
    assert_eq!(status["pending"], 0, "{status}");
    assert!(status["deadLetters"].as_array().unwrap().is_empty(), "{status}");
    assert_eq!(app.note_texts("alice"), want, "nothing sent twice");
    // Next.js marks a route handler's uncaught error with "⨯".
    assert!(!app.log().contains('⨯'), "the app's route handlers failed:\n{}", app.log());
}

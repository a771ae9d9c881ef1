//! The demo app, driven like a person would in Chromium: log in, chat, go
//! offline with the demo's switch, write and upload, come back. Screenshots
//! of the key moments go to target/screenshots/ for people to look at; each
//! is checked for the elements that must be on it.

mod harness;

use harness::{wait_until, Chromium, Origin, Tab, PATIENCE};
use outpost::{AppState, Bundle};
use serde_json::Value;

/// The element's text; empty while the page (or the element) is not there.
async fn text(tab: &Tab, id: &str) -> String {
    let js = format!("(document.getElementById('{id}') || {{}}).innerText || ''");
    tab.try_eval(&js).await.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

async fn wait_text(tab: &Tab, id: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let shown = text(tab, id).await;
        if shown.contains(want) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let page = tab.try_eval("document.body ? document.body.innerText.slice(0, 600) : '(no body)'").await;
            panic!("#{id} never showed {want:?} within {PATIENCE:?}; it shows {shown:?}; the page: {page:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn submit(tab: &Tab, input: &str, value: &str) {
    tab.eval(&format!(
        "(() => {{ const i = document.getElementById('{input}'); i.value = {value:?}; i.form.requestSubmit(); return true; }})()"
    ))
    .await;
}

async fn screenshot(tab: &Tab, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let params = chromiumoxide::page::ScreenshotParams::builder().full_page(true).build();
    let png = tab.page.screenshot(params).await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn messages(state: &AppState) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT content FROM chat_messages ORDER BY created_at, id")
        .fetch_all(&state.api.db.pool)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

/// The demo in a desktop-sized Chromium window, its worker in control.
async fn open_demo(origin: &Origin) -> (Chromium, Tab) {
    let chromium = Chromium::launch_with(&[("window-size", "1400,900")]).await;
    let tab = chromium.open(&origin.url("/")).await;
    let desktop =
        chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams::new(1400, 900, 1.0, false);
    tab.page.execute(desktop).await.expect("Emulation.setDeviceMetricsOverride");
    wait_text(&tab, "worker", "controlling this page").await;
    (chromium, tab)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_survives_an_offline_round_trip_with_messages_and_an_upload() {
    let (state, _data) =
        harness::sqlite_state_with(outpost::Settings { demo_switch: true, ..outpost::Settings::default() }).await;
    let origin = Origin::start(state.clone());
    let (mut chromium, tab) = open_demo(&origin).await;
    wait_text(&tab, "bundle", &Bundle::embedded().hash).await;

    // Log in, make a session, say hello.
    wait_until("the login form", PATIENCE, || async {
        (tab.eval("!document.getElementById('login').hidden").await == true).then_some(())
    })
    .await;
    submit(&tab, "login-name", "dana").await;
    wait_text(&tab, "user", "dana").await;
    submit(&tab, "session-title", "Trip to the coast").await;
    wait_text(&tab, "sessions", "Trip to the coast").await;
    submit(&tab, "message-text", "hello from the train").await;
    wait_text(&tab, "messages", "hello from the train").await;
    assert_eq!(text(&tab, "network").await, "online");
    assert_eq!(text(&tab, "outbox-summary").await, "Nothing waiting.");
    screenshot(&tab, "demo-online").await;

    // The switch: the origin now drops the app's requests, as a lost network does.
    tab.eval("document.getElementById('offline-switch').click(), true").await;
    wait_text(&tab, "network", "offline").await;
    submit(&tab, "message-text", "written in a tunnel").await;
    wait_text(&tab, "messages", "written in a tunnel").await;
    submit(&tab, "message-text", "still in the tunnel").await;
    wait_text(&tab, "outbox-summary", "2 writes waiting").await;
    wait_text(&tab, "queue", "next try").await;
    assert!(text(&tab, "messages").await.contains("queued"), "queued messages are marked");
    wait_text(&tab, "stale", "Offline: showing what this device stored").await;
    screenshot(&tab, "demo-offline-pending").await;

    // An upload while offline waits with its progress bar at 0.
    tab.eval(
        "(async () => { const c = document.createElement('canvas'); c.width = 96; c.height = 96; \
         const g = c.getContext('2d'); g.fillStyle = '#1f5fbf'; g.fillRect(0, 0, 96, 96); g.fillStyle = '#ffb000'; \
         g.beginPath(); g.arc(48, 48, 30, 0, 7); g.fill(); \
         const blob = await new Promise((r) => c.toBlob(r, 'image/png')); \
         const dt = new DataTransfer(); dt.items.add(new File([blob], 'sunset.png', { type: 'image/png' })); \
         const input = document.getElementById('file'); input.files = dt.files; \
         input.dispatchEvent(new Event('change')); return true; })()",
    )
    .await;
    wait_text(&tab, "uploads", "sunset.png").await;
    assert_eq!(tab.eval("document.querySelectorAll('#uploads progress').length").await, 1);
    screenshot(&tab, "demo-upload-waiting").await;

    // A message the origin will refuse on replay (over its 20,000 characters).
    let (session,): (String,) =
        sqlx::query_as("SELECT id FROM chat_sessions").fetch_one(&state.api.db.pool).await.unwrap();
    let long = tab
        .eval(&format!(
            "fetch('/api/chat/messages/batch', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json' }}, \
             body: JSON.stringify({{ messages: [{{ tempId: 'too-long', sessionId: '{session}', role: 'user', \
             content: 'x'.repeat(20001), createdAt: 1 }}] }}) }}).then((r) => r.status)"
        ))
        .await;
    assert_eq!(long, 202, "queued while the origin refuses everything");

    // Back online: the queue drains, the refused write becomes a dead letter.
    tab.eval("document.getElementById('offline-switch').click(), true").await;
    wait_text(&tab, "network", "online").await;
    wait_until("both tunnel messages at the origin", PATIENCE, || async {
        let m = messages(&state).await;
        (m.len() >= 3).then_some(())
    })
    .await;
    assert_eq!(messages(&state).await, ["hello from the train", "written in a tunnel", "still in the tunnel"]);
    // Nobody asks for a replay: the worker sends everything by itself.
    wait_until("the dead letter", PATIENCE, || async {
        let dead = text(&tab, "dead").await;
        (dead.contains("refused by the origin (HTTP") && dead.contains("Retry") && dead.contains("Discard"))
            .then_some(())
    })
    .await;
    wait_until("the upload to finish", PATIENCE * 2, || async {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT status FROM assets").fetch_all(&state.api.db.pool).await.unwrap();
        (rows.len() == 1 && rows[0].0 == "uploaded").then_some(())
    })
    .await;
    wait_until("the outbox and uploads to settle", PATIENCE, || async {
        let summary = text(&tab, "outbox-summary").await;
        let uploads: Value = tab.eval("document.querySelectorAll('#uploads li').length").await;
        (summary == "Nothing waiting." && uploads == 0).then_some(())
    })
    .await;
    wait_until("the thumbnail", PATIENCE, || async {
        let shown = tab
            .eval("[...document.querySelectorAll('#assets img')].some((i) => i.complete && i.naturalWidth === 96)")
            .await;
        (shown == true).then_some(())
    })
    .await;
    screenshot(&tab, "demo-dead-letter").await;

    // Discard clears it.
    tab.eval("[...document.querySelectorAll('#dead button')].find((b) => b.textContent === 'Discard').click(), true")
        .await;
    wait_text(&tab, "dead", "None.").await;

    // The server stops; a reload still opens the app and its data, from the device.
    let mut origin = origin;
    origin.stop();
    tab.reload().await;
    wait_text(&tab, "network", "origin unreachable").await;
    wait_text(&tab, "user", "dana").await;
    wait_text(&tab, "sessions", "Trip to the coast").await;
    wait_text(&tab, "stale", "Offline: showing what this device stored").await;
    wait_text(&tab, "messages", "still in the tunnel").await;
    screenshot(&tab, "demo-server-stopped").await;
    chromium.close().await;
}

/// A 20 s clip (VP8 WebM made by ffmpeg, a keyframe a second), uploaded in
/// the demo and kept on the device, plays and seeks to its middle while the
/// origin drops every request: the worker answers the `<video>`'s range
/// requests from the stored file. Prints the time from the seek to
/// `seeked` with the frame at the new position decoded (`readyState` ≥ 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_video_seeks_offline() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.webm");
    let made = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=20:size=320x240:rate=25"])
        .args(["-c:v", "libvpx", "-b:v", "400k", "-g", "25", "-an"])
        .arg(&clip)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg makes the test clip ({e}); run ./scripts/setup.sh"));
    assert!(made.success(), "ffmpeg could not make the clip");
    let bytes = std::fs::read(&clip).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);

    let (state, _data) =
        harness::sqlite_state_with(outpost::Settings { demo_switch: true, ..outpost::Settings::default() }).await;
    let origin = Origin::start(state.clone());
    let (mut chromium, tab) = open_demo(&origin).await;
    wait_until("the login form", PATIENCE, || async {
        (tab.eval("!document.getElementById('login').hidden").await == true).then_some(())
    })
    .await;
    submit(&tab, "login-name", "vera").await;
    wait_text(&tab, "user", "vera").await;
    tab.eval(&format!(
        "(() => {{ const b = Uint8Array.from(atob('{b64}'), (c) => c.charCodeAt(0)); \
         const dt = new DataTransfer(); dt.items.add(new File([b], 'coast.webm', {{ type: 'video/webm' }})); \
         const input = document.getElementById('file'); input.files = dt.files; \
         input.dispatchEvent(new Event('change')); return true; }})()"
    ))
    .await;
    wait_until("the clip to be uploaded", PATIENCE * 2, || async {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT status FROM assets").fetch_all(&state.api.db.pool).await.unwrap();
        (rows.len() == 1 && rows[0].0 == "uploaded").then_some(())
    })
    .await;
    // Listed from the origin (so the device's copy of the list has it).
    wait_text(&tab, "assets", "coast.webm · uploaded").await;
    // The network goes; the clip is played from the device.
    tab.eval("document.getElementById('offline-switch').click(), true").await;
    wait_text(&tab, "network", "offline").await;
    wait_until("the clip in the assets, offline", PATIENCE, || async {
        (tab.eval("!!document.querySelector('#assets video')").await == true).then_some(())
    })
    .await;
    let seek = tab
        .eval(
            "(async () => { const v = document.querySelector('#assets video'); if (!v) return { error: 'no video' }; \
             const state = (what) => ({ error: what, ready: v.readyState, network: v.networkState, \
               media: v.error && v.error.message, src: v.currentSrc }); \
             const within = (p, what) => Promise.race([p, new Promise((_, j) => setTimeout(() => j(what), 20000))]); \
             try { \
               if (v.readyState < 1) await within(new Promise((r, j) => { v.onloadedmetadata = r; \
                 v.onerror = () => j('media error'); }), 'no metadata in 20 s'); \
               const t = performance.now(); v.currentTime = 10; \
               await within(new Promise((r) => v.addEventListener('seeked', r, { once: true })), 'no seeked in 20 s'); \
               return { ms: performance.now() - t, at: v.currentTime, duration: v.duration, ready: v.readyState, error: null }; \
             } catch (e) { return state(String(e)); } })()",
        )
        .await;
    println!(
        "demo: offline seek to 10 s of a 20 s clip: frame ready after {:.0} ms ({seek})",
        seek["ms"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(seek["error"], Value::Null, "{seek}");
    assert!((seek["at"].as_f64().unwrap() - 10.0).abs() < 0.5, "{seek}");
    assert!((seek["duration"].as_f64().unwrap() - 20.0).abs() < 0.5, "{seek}");
    assert!(seek["ready"].as_u64().unwrap() >= 2, "a frame to show: {seek}");
    screenshot(&tab, "demo-video-offline").await;
    chromium.close().await;
}

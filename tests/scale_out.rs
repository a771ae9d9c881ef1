//! The origin as it runs at scale: two `outpost serve` processes on one
//! real PostgreSQL, reached through PgBouncer in transaction pooling mode,
//! and one Garage, behind a round-robin proxy. A browser logs in, queues
//! 200 writes and an upload while the proxy is down, and they replay
//! through it by themselves; one instance is stopped with SIGTERM in the
//! middle of the replay. Nothing is lost, nothing applies twice.

mod harness;

#[path = "harness/garage.rs"]
mod garage;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use harness::instance::{self, Instance};
use harness::scenes::{self, want, UPLOAD_BYTES};
use harness::{pg, pgbouncer, wait_until, Chromium};

const SESSION_KEYS: &str = "5e5510c0ffee5e5510c0ffee5e5510c0ffee5e5510c0ffee5e5510c0ffee5e55";
const WRITES: usize = 200;

/// The load balancer: each API request goes to the next instance (to the
/// other one when an instance does not take connections), `/<bucket>/…`
/// to Garage, so that the page, the API and the presigned URLs share one
/// origin. While it is down it drops every connection unanswered.
struct Balancer {
    backends: std::sync::Mutex<Vec<String>>,
    store: String,
    bucket_prefix: String,
    next: AtomicUsize,
    down: AtomicBool,
    /// API requests each backend answered.
    served: Vec<AtomicUsize>,
    http: reqwest::Client,
}

struct Dropped;

impl http_body::Body for Dropped {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other("the balancer is down"))))
    }
}

async fn balance(State(lb): State<Arc<Balancer>>, req: Request) -> Response {
    if lb.down.load(Ordering::SeqCst) {
        return Response::new(Body::new(Dropped));
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let to_store = path.starts_with(&lb.bucket_prefix);
    let first = lb.next.fetch_add(1, Ordering::SeqCst);
    let backends = lb.backends.lock().unwrap().clone();
    let tries = if to_store { 1 } else { backends.len() };
    for k in 0..tries {
        let (i, base) = if to_store {
            (usize::MAX, lb.store.clone())
        } else {
            let i = (first + k) % backends.len();
            (i, backends[i].clone())
        };
        let mut out = lb.http.request(parts.method.clone(), format!("http://{base}{path}")).body(body.clone());
        for (name, value) in &parts.headers {
            // The Host stays the balancer's: the store checks it in the
            // signature, the instances against their allow-list.
            if name != "content-length" && name != "connection" {
                out = out.header(name, value);
            }
        }
        match out.send().await {
            Ok(res) => {
                if to_store && !res.status().is_success() {
                    eprintln!(
                        "balancer: store answered {} to {} {}",
                        res.status(),
                        parts.method,
                        path.split('?').next().unwrap_or("")
                    );
                }
                if i != usize::MAX {
                    lb.served[i].fetch_add(1, Ordering::SeqCst);
                }
                let mut answer = Response::builder().status(res.status());
                // A HEAD's Content-Length is the object's size, which the
                // instances read (the body, empty, cannot carry it).
                let head = parts.method == axum::http::Method::HEAD;
                for (name, value) in res.headers() {
                    if name != "transfer-encoding" && name != "connection" && (head || name != "content-length") {
                        answer = answer.header(name, value);
                    }
                }
                let bytes = res.bytes().await.unwrap_or_default();
                return answer.body(Body::from(bytes)).unwrap();
            }
            // A stopped instance: the next one (the writes carry their
            // Idempotency-Key, so a retried one applies once).
            Err(e) => {
                if to_store {
                    eprintln!("balancer: store send failed: {e:?}");
                }
                continue;
            }
        }
    }
    Response::new(Body::new(Dropped))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_a_balancer_on_pgbouncer_and_garage_lose_nothing() {
    outpost::store::install_tls();
    let pg = tokio::task::spawn_blocking(pg::TestPostgres::start).await.unwrap();
    let bouncer = pgbouncer::PgBouncer::start(pg.port());
    let garage = tokio::task::spawn_blocking(garage::Garage::start).await.unwrap();
    let direct = pg.url();
    let through = bouncer.url(direct.rsplit('/').next().unwrap());

    // The balancer first: the instances reach the store through it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb_url = format!("http://{}", listener.local_addr().unwrap());
    let lb = Arc::new(Balancer {
        backends: Default::default(),
        store: garage.config.endpoint.trim_start_matches("http://").to_string(),
        bucket_prefix: format!("/{}/", garage.config.bucket),
        next: AtomicUsize::new(0),
        down: AtomicBool::new(false),
        served: (0..2).map(|_| AtomicUsize::new(0)).collect(),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(balance).with_state(lb.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = garage.config.clone();
    let (mut a, b) = tokio::task::spawn_blocking({
        let (through, direct, lb_url) = (through.clone(), direct.clone(), lb_url.clone());
        move || {
            let env = |url: &str| instance::env(&through, &direct, &config, url, SESSION_KEYS);
            let a = Instance::start(&env(&lb_url), &[]);
            let b = Instance::start(&env(&lb_url), &[]);
            (a, b)
        }
    })
    .await
    .unwrap();
    *lb.backends.lock().unwrap() = vec![a.addr.clone(), b.addr.clone()];

    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&format!("{lb_url}{}", scenes::PAGE)).await;
    let session = scenes::setup(&tab).await;
    // A cookie issued by one instance works on the other.
    for _ in 0..4 {
        assert_eq!(tab.eval("fetch('/api/auth/me').then((r) => r.status)").await, 200);
    }
    assert!(lb.served.iter().all(|n| n.load(Ordering::SeqCst) >= 2), "both instances answered the same session");

    lb.down.store(true, Ordering::SeqCst);
    scenes::queue_writes(&tab, &session, WRITES).await;
    let temp_id = scenes::queue_upload(&tab).await;
    assert!(temp_id.starts_with("local-") || !temp_id.is_empty());

    let pool = sqlx::PgPool::connect(&direct).await.unwrap();
    let stored = |pool: sqlx::PgPool, session: String| async move {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT content FROM chat_messages WHERE session_id = $1 ORDER BY created_at, id")
                .bind(session)
                .fetch_all(&pool)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.0).collect::<Vec<_>>()
    };
    assert!(stored(pool.clone(), session.clone()).await.is_empty());

    // The network comes back; nobody touches anything.
    lb.down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    wait_until("a quarter of the writes replayed", Duration::from_secs(90), || async {
        (stored(pool.clone(), session.clone()).await.len() >= WRITES / 4).then_some(())
    })
    .await;
    let mid = stored(pool.clone(), session.clone()).await.len();
    assert!(a.terminate(), "instance A drains and exits 0 on SIGTERM");
    eprintln!("instance A stopped with {mid} of {WRITES} stored");

    let started = Instant::now();
    let all = loop {
        let m = stored(pool.clone(), session.clone()).await;
        let up: Vec<(String,)> =
            sqlx::query_as("SELECT object_key FROM assets WHERE status = 'uploaded' AND size = $1")
                .bind(UPLOAD_BYTES as i64)
                .fetch_all(&pool)
                .await
                .unwrap();
        if m.len() >= WRITES && !up.is_empty() {
            break (m, up);
        }
        let waited = started.elapsed();
        if waited > Duration::from_secs(110) {
            let status = tab.try_eval("outpost.status()").await;
            eprintln!("after {waited:?}: {} writes and {} uploads stored; worker: {status:?}", m.len(), up.len());
        }
        assert!(waited < Duration::from_secs(120), "timed out waiting for every write and the upload");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    };
    eprintln!("replayed through the balancer in {:?}", back.elapsed());
    assert_eq!(all.0, want(WRITES), "200 writes, once each, in order");
    assert_eq!(all.1.len(), 1, "one asset");
    // Byte-identical in Garage.
    let presigner = outpost::store::Presigner::new(&garage.config).unwrap();
    let url = presigner.presign_get(&all.1[0].0, Duration::from_secs(60)).unwrap();
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let expected: Vec<u8> = (0..UPLOAD_BYTES).map(|k| ((k * 31 + (k >> 10)) & 255) as u8).collect();
    assert!(bytes[..] == expected[..], "the stored object is the file, byte for byte ({} bytes)", bytes.len());
    scenes::assert_clean(&tab, "scale-out").await;
    let served: Vec<usize> = lb.served.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    eprintln!("API requests answered per instance: {served:?}");
    chromium.close().await;
    drop(b);
    drop(bouncer);
}

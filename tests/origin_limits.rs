//! The origin's limits and guards, on SQLite: the `Host` allow-list, login
//! by name off the loopback, quotas, readiness, server-side revocation, the
//! bounded writer wait, `sync/init` coalescing under a herd, and a stalled
//! object store that must not stall anything else.

mod api_suite;
mod harness;

use std::time::{Duration, Instant};

use api_suite::{error_code, Client};
use axum::http::{Method, StatusCode};
use outpost::server::{HostPolicy, NameLogin};
use outpost::{AppState, Settings};
use serde_json::json;

async fn state_with(settings: Settings) -> (AppState, tempfile::TempDir) {
    harness::sqlite_state_with(settings).await
}

#[tokio::test]
async fn only_allowed_hosts_are_served() {
    let (state, _d) = state_with(Settings::default()).await;
    let c = Client::new(&state);
    for ok in ["127.0.0.1:8080", "localhost:3000", "[::1]:8080"] {
        assert_eq!(
            c.raw(Method::GET, "/api/health", None, vec![], &[("host", ok)]).await.status,
            StatusCode::OK,
            "{ok}"
        );
    }
    // A page on another name that DNS-rebinds to 127.0.0.1.
    let rebound = c.raw(Method::GET, "/api/sync/init", None, vec![], &[("host", "evil.example:8080")]).await;
    assert_eq!(error_code(&rebound, StatusCode::MISDIRECTED_REQUEST), "unknown_host");
    assert!(rebound.body["error"]["message"].as_str().unwrap().contains("--public-host"));
    let login = c
        .raw(
            Method::POST,
            "/api/auth/login",
            Some("application/json"),
            br#"{"user":"a"}"#.to_vec(),
            &[("host", "evil.example")],
        )
        .await;
    assert_eq!(login.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(!login.headers.contains_key("set-cookie"));
    assert_eq!(
        c.raw(Method::GET, "/sw.js", None, vec![], &[("host", "evil.example")]).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
    // The probes answer whatever the Host (a balancer may name the instance
    // by its address); they hold nothing of anyone.
    for probe in ["/api/health", "/api/ready"] {
        assert_eq!(c.raw(Method::GET, probe, None, vec![], &[("host", "10.1.2.3:8080")]).await.status, StatusCode::OK);
    }

    let public = state
        .with_settings(Settings { hosts: HostPolicy::Names(vec!["app.example.com".into()]), ..Settings::default() });
    let c = Client::new(&public);
    assert_eq!(c.raw(Method::GET, "/", None, vec![], &[("host", "app.example.com")]).await.status, StatusCode::OK);
    assert_eq!(
        c.raw(Method::GET, "/", None, vec![], &[("host", "other.example.com")]).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
}

#[tokio::test]
async fn name_login_can_be_turned_off() {
    let (state, _d) = state_with(Settings { name_login: NameLogin::Off, ..Settings::default() }).await;
    let r = Client::new(&state).post("/api/auth/login", json!({ "user": "alice" })).await;
    assert_eq!(error_code(&r, StatusCode::FORBIDDEN), "name_login_disabled");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("--allow-name-login"));
    assert!(!r.headers.contains_key("set-cookie"));
    // The default: from this machine only. A proxy on this machine that
    // forwards a client from elsewhere is refused.
    let (state, _d) = state_with(Settings::default()).await;
    let c = Client::new(&state);
    let login = |xff: &'static str| {
        let c = c.clone();
        async move {
            c.raw(
                Method::POST,
                "/api/auth/login",
                Some("application/json"),
                br#"{"user":"a"}"#.to_vec(),
                &[("x-forwarded-for", xff)],
            )
            .await
        }
    };
    assert_eq!(error_code(&login("203.0.113.9").await, StatusCode::FORBIDDEN), "name_login_disabled");
    assert_eq!(login("127.0.0.1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn quotas_refuse_with_a_clear_413() {
    let (state, _d) = state_with(Settings { quota_assets: 2, quota_bytes: 100, ..Settings::default() }).await;
    let alice = Client::login(&state, "alice").await;
    let put = |size: i64| json!({ "op": "put", "filename": "f.bin", "contentType": "application/octet-stream", "size": size });
    assert_eq!(alice.post("/api/assets/presign", put(60)).await.status, StatusCode::OK);
    let over = alice.post("/api/assets/presign", put(41)).await;
    assert_eq!(error_code(&over, StatusCode::PAYLOAD_TOO_LARGE), "quota_exceeded");
    assert!(over.body["error"]["message"].as_str().unwrap().contains("quota of 100 bytes"), "{}", over.body);
    assert_eq!(alice.post("/api/assets/presign", put(40)).await.status, StatusCode::OK);
    let third = alice.post("/api/assets/presign", put(1)).await;
    assert_eq!(error_code(&third, StatusCode::PAYLOAD_TOO_LARGE), "quota_exceeded");
    // Nothing was recorded for the refused ones; bob has his own quota.
    assert_eq!(alice.get("/api/assets").await.body.as_array().unwrap().len(), 2);
    let bob = Client::login(&state, "bob").await;
    assert_eq!(bob.post("/api/assets/presign", put(100)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn readiness_checks_the_database_and_the_store() {
    let (state, _d) = state_with(Settings::default()).await;
    let r = Client::new(&state).get("/api/ready").await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!({ "ready": true, "database": "ok", "store": "ok" })));
}

#[tokio::test]
async fn every_session_of_a_user_can_be_revoked_on_the_server() {
    let (state, _d) = state_with(Settings::default()).await;
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    assert_eq!(alice.get("/api/auth/me").await.status, StatusCode::OK);
    // What `outpost revoke-sessions --user alice` does (tests/cli.rs runs it).
    let later = outpost::db::now_ms() + 1;
    state
        .api
        .db
        .execute(outpost::db::query("UPDATE users SET sessions_not_before = $1 WHERE name = 'alice'").bind(later))
        .await
        .unwrap();
    for path in ["/api/auth/me", "/api/sync/init", "/api/projects"] {
        assert_eq!(alice.get(path).await.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(bob.get("/api/auth/me").await.status, StatusCode::OK, "bob keeps his session");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = Client::login(&state, "alice").await;
    assert_eq!(again.get("/api/auth/me").await.status, StatusCode::OK, "a new login works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_a_bounded_time_for_the_sqlite_writer() {
    let (state, _d) = state_with(Settings::default()).await;
    let alice = Client::login(&state, "alice").await;
    let turn = state.api.db.writer_turn().await.unwrap();
    let started = Instant::now();
    let r = alice.post("/api/projects", json!({ "name": "p" })).await;
    assert_eq!(error_code(&r, StatusCode::SERVICE_UNAVAILABLE), "busy");
    assert_eq!(r.headers["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_secs(9), "answered within the API's budget");
    drop(turn);
    assert_eq!(alice.post("/api/projects", json!({ "name": "p" })).await.status, StatusCode::CREATED);
    assert_eq!(alice.get("/api/projects").await.body.as_array().unwrap().len(), 1, "the refused one was not applied");
}

/// 200 identical `sync/init` at once (a login herd) are served by a couple
/// of database reads, and each still answers with the user's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_herd_shares_sync_init_reads() {
    for coalescing in [true, false] {
        let (state, _d) = state_with(Settings { sync_coalescing: coalescing, ..Settings::default() }).await;
        let alice = Client::login(&state, "alice").await;
        alice.post("/api/projects", json!({ "name": "p" })).await;
        let before = state.api.sync_flights.reads();
        let herd: Vec<_> = (0..200)
            .map(|_| {
                let alice = alice.clone();
                tokio::spawn(async move { alice.get("/api/sync/init").await })
            })
            .collect();
        for r in herd {
            let r = r.await.unwrap();
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body["projects"][0]["name"], "p");
        }
        let reads = state.api.sync_flights.reads() - before;
        eprintln!("coalescing {coalescing}: 200 sync/init -> {reads} database reads");
        if coalescing {
            assert!(reads <= 20, "200 requests made {reads} reads");
        } else {
            assert_eq!(reads, 200);
        }
    }
}

/// A store that accepts connections and never answers: the multipart
/// presign fails after its timeout (4 s here) with a clear 504, while writes that need
/// no store (message batches, on SQLite's single writer) go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_stalls_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let (real, _embedded) =
        outpost::store::start_embedded(&data.path().join("real-store"), "127.0.0.1:0".parse().unwrap(), &["*".into()])
            .await
            .unwrap();
    let stall = harness::StallProxy::start(&real.endpoint).await;
    let options = outpost::Options {
        s3: Some(outpost::store::S3Config { endpoint: stall.endpoint(), ..real.clone() }),
        store_timeout: Duration::from_secs(4),
        ..outpost::Options::embedded(data.path())
    };
    let state = AppState::open(options).await.unwrap();
    let alice = Client::login(&state, "alice").await;
    let session = alice.new_session("s").await;
    stall.stall(true);
    let presign = tokio::spawn({
        let alice = alice.clone();
        async move {
            let started = Instant::now();
            let r = alice
                .post(
                    "/api/assets/presign",
                    json!({ "op": "multipart", "filename": "big.bin", "contentType": "video/mp4", "size": 40 << 20 }),
                )
                .await;
            (r, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for i in 0..10 {
        let m = json!({ "messages": [{ "tempId": format!("t{i}"), "sessionId": session, "role": "user", "content": format!("m{i}"), "createdAt": 1 }] });
        let r = alice.post("/api/chat/messages/batch", m).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let writes = started.elapsed();
    assert!(!presign.is_finished(), "the 10 writes completed while the store call still hung ({writes:?})");
    let (r, took) = presign.await.unwrap();
    assert_eq!(error_code(&r, StatusCode::GATEWAY_TIMEOUT), "store_timeout");
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(10), "failed after its timeout: {took:?}");
    assert_eq!(alice.messages(&session).await.len(), 10);
    assert!(
        alice.get("/api/assets").await.body.as_array().unwrap().is_empty(),
        "no asset recorded for the failed presign"
    );
    // The readiness probe says which part is down.
    let ready = Client::new(&state).get("/api/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["database"], "ok");
    stall.stall(false);
    let r = alice
        .post(
            "/api/assets/presign",
            json!({ "op": "multipart", "filename": "big.bin", "contentType": "video/mp4", "size": 40 << 20 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The rollback policy (docs/operations.md): the previous release starts on
/// a database a newer release migrated. Here, a migration this build does
/// not know is recorded as applied, and the origin still opens the database
/// and serves.
#[tokio::test]
async fn a_database_migrated_by_a_newer_release_still_opens() {
    let data = tempfile::tempdir().unwrap();
    let state = AppState::open(outpost::Options::embedded(data.path())).await.unwrap();
    state
        .api
        .db
        .execute(outpost::db::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from a newer release', TRUE, x'00', 0)",
        ))
        .await
        .unwrap();
    drop(state);
    let state = AppState::open(outpost::Options::embedded(data.path())).await.expect("opens after a newer migration");
    assert_eq!(state.api.db.pending_migrations().await.unwrap(), 0);
    let alice = Client::login(&state, "alice").await;
    assert_eq!(alice.get("/api/sync/init").await.status, StatusCode::OK);
}

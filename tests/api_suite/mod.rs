//! The API contract, written once and run against each database backend.
//! Every case asserts on what the origin stored, not just on what it said.

#![allow(dead_code)]

/// One `#[tokio::test]` per case, each on a fresh state from
/// `$make(case_name).await -> (AppState, guard)`.
#[allow(unused_macros)]
macro_rules! api_cases {
    ($make:path) => {
        api_suite::api_cases!(@each $make;
            auth_round_trip,
            every_route_needs_a_valid_cookie,
            sessions_and_messages,
            batch_is_all_or_nothing,
            a_temp_id_is_stored_once_whatever_the_batch,
            users_see_only_their_own_data,
            sync_init_is_metadata_first,
            bad_input_is_a_clear_4xx,
            idempotency_key_replays_and_refuses_misuse,
            idempotency_under_concurrency,
            idempotency_leases_and_expiry,
            presigned_upload_round_trip,
            presign_refuses_bad_input,
            concurrent_batches_on_one_session_all_succeed,
            a_superseded_claim_cannot_complete,
            inbox_keeps_any_body_byte_for_byte,
            the_demo_switch_refuses_the_api_until_turned_off,
            writes_from_another_site_are_refused_and_stored_bodies_are_inert,
            a_logout_ends_the_session_on_the_server,
        );
    };
    (@each $make:path; $($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (state, _data) = $make(stringify!($case)).await;
            api_suite::$case(state).await;
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use api_cases;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use outpost::{app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

/// One logged-in (or not) client of the API.
#[derive(Clone)]
pub struct Client {
    app: Router,
    cookie: Option<String>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Client {
    pub fn new(state: &AppState) -> Client {
        outpost::store::install_tls();
        Client { app: app(state.clone()), cookie: None }
    }

    pub async fn login(state: &AppState, name: &str) -> Client {
        let mut c = Client::new(state);
        let r = c.post("/api/auth/login", json!({ "user": name })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let set = r.headers["set-cookie"].to_str().unwrap();
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        c.cookie = Some(set.split(';').next().unwrap().to_string());
        c
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(cookie) = &self.cookie {
            req = req.header("cookie", cookie);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self.app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, None, vec![], &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::POST, path, Some("application/json"), body.to_string().into_bytes(), &[]).await
    }

    pub async fn post_keyed(&self, path: &str, body: Value, key: &str) -> Reply {
        self.raw(
            Method::POST,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
            &[("idempotency-key", key)],
        )
        .await
    }

    pub async fn new_session(&self, title: &str) -> String {
        let r = self.post("/api/chat/sessions", json!({ "title": title })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub async fn messages(&self, session: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/chat/sessions/{session}/messages")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body.as_array().unwrap().clone()
    }
}

/// Asserts the contract's error shape and returns the code.
pub fn error_code(r: &Reply, status: StatusCode) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.body);
    r.body["error"]["code"].as_str().unwrap().to_string()
}

fn message(temp: &str, session: &str, content: &str, at: i64) -> Value {
    json!({ "tempId": temp, "sessionId": session, "role": "user", "content": content, "createdAt": at })
}

pub async fn auth_round_trip(state: AppState) {
    let anon = Client::new(&state);
    assert_eq!(error_code(&anon.get("/api/auth/me").await, StatusCode::UNAUTHORIZED), "unauthenticated");
    let alice = Client::login(&state, "alice").await;
    let me = alice.get("/api/auth/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["name"], "alice");
    // Logging in again as the same name is the same user.
    let again = Client::login(&state, "alice").await;
    assert_eq!(again.get("/api/auth/me").await.body["id"], me.body["id"]);
    let out = alice.post("/api/auth/logout", json!({})).await;
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

pub async fn every_route_needs_a_valid_cookie(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let cookie = alice.cookie.clone().unwrap();
    let mut forged = alice.clone();
    forged.cookie = Some(format!("{}x", cookie));
    let mut junk = alice.clone();
    junk.cookie = Some("outpost_session=v1.nobody.99999999999999.AAAA".into());
    for client in [Client::new(&state), forged, junk] {
        for path in ["/api/sync/init", "/api/chat/sessions", "/api/projects", "/api/auth/me"] {
            assert_eq!(error_code(&client.get(path).await, StatusCode::UNAUTHORIZED), "unauthenticated", "{path}");
        }
        let r = client.post("/api/chat/sessions", json!({ "title": "x" })).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert!(alice.get("/api/chat/sessions").await.body.as_array().unwrap().is_empty(), "nothing was stored");
}

pub async fn sessions_and_messages(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let s1 = alice.new_session("first").await;
    let chosen = "0190a4c4-0000-7000-8000-000000000001";
    let r = alice.post("/api/chat/sessions", json!({ "id": chosen, "title": "mine" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["id"], chosen);
    for field in ["createdAt", "updatedAt"] {
        assert!(r.body[field].is_i64(), "{field}: {}", r.body);
    }
    // The same client id twice is a conflict, and nothing changes.
    let dup = alice.post("/api/chat/sessions", json!({ "id": chosen, "title": "other" })).await;
    assert_eq!(error_code(&dup, StatusCode::CONFLICT), "already_exists");
    let list = alice.get("/api/chat/sessions").await.body;
    let titles: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 2);
    assert!(titles.contains(&"mine") && titles.contains(&"first"));

    let batch = json!({ "messages": [message("t1", &s1, "hello", 1000), message("t2", &s1, "world", 2000), message("t3", chosen, "other", 1500)] });
    let r = alice.post("/api/chat/messages/batch", batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mappings = r.body["mappings"].as_array().unwrap();
    assert_eq!(mappings.iter().map(|m| m["tempId"].as_str().unwrap()).collect::<Vec<_>>(), ["t1", "t2", "t3"]);
    let stored = alice.messages(&s1).await;
    assert_eq!(stored.iter().map(|m| m["content"].as_str().unwrap()).collect::<Vec<_>>(), ["hello", "world"]);
    assert_eq!(stored[0]["id"], mappings[0]["id"]);
    assert_eq!(stored[1]["id"], mappings[1]["id"]);
    assert_eq!(stored[0]["sessionId"], s1.as_str());
    assert_eq!(alice.messages(chosen).await.len(), 1);
}

pub async fn batch_is_all_or_nothing(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    let s = alice.new_session("s").await;
    let bobs = bob.new_session("b").await;
    let bad_batches = [
        // A session of another user: 404, for the whole batch.
        (
            json!({ "messages": [message("a", &s, "ok", 1), message("b", &bobs, "not yours", 2)] }),
            StatusCode::NOT_FOUND,
        ),
        // An unknown session.
        (
            json!({ "messages": [message("a", &s, "ok", 1), message("b", "0190a4c4-0000-7000-8000-0000000000ff", "x", 2)] }),
            StatusCode::NOT_FOUND,
        ),
        // A bad role, a duplicate temp id, a non-id session, an empty batch.
        (
            json!({ "messages": [message("a", &s, "ok", 1), { "tempId": "b", "sessionId": s, "role": "robot", "content": "x", "createdAt": 2 }] }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "messages": [message("a", &s, "ok", 1), message("a", &s, "again", 2)] }), StatusCode::BAD_REQUEST),
        (
            json!({ "messages": [message("a", &s, "ok", 1), message("b", "../etc/passwd", "x", 2)] }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "messages": [] }), StatusCode::BAD_REQUEST),
        // Wrong types, unknown fields.
        (
            json!({ "messages": [{ "tempId": 1, "sessionId": s, "role": "user", "content": "x", "createdAt": 1 }] }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "messages": [message("a", &s, "ok", 1)], "extra": true }), StatusCode::BAD_REQUEST),
    ];
    for (batch, status) in bad_batches {
        let r = alice.post("/api/chat/messages/batch", batch.clone()).await;
        error_code(&r, status);
        assert!(alice.messages(&s).await.is_empty(), "a refused batch stored rows: {batch}");
    }
    assert!(bob.messages(&bobs).await.is_empty());
}

/// A tempId names one message of its user: a batch that repeats tempIds
/// already stored (a merged replay, a resend after a lost answer, under
/// another Idempotency-Key) maps them to the stored messages and stores only
/// the new ones. Another user's tempIds are theirs.
pub async fn a_temp_id_is_stored_once_whatever_the_batch(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    let s = alice.new_session("s").await;
    let first =
        alice.post_keyed("/api/chat/messages/batch", json!({ "messages": [message("m1", &s, "one", 1)] }), "k-1").await;
    assert_eq!(first.status, StatusCode::OK);
    let merged = json!({ "messages": [message("m1", &s, "one", 1), message("m2", &s, "two", 2), message("m3", &s, "three", 3)] });
    let again = alice.post_keyed("/api/chat/messages/batch", merged, "k-merged").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let ids: Vec<&str> = again.body["mappings"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], first.body["mappings"][0]["id"].as_str().unwrap(), "m1 keeps its id");
    assert_eq!(ids.len(), 3);
    assert_eq!(alice.messages(&s).await.len(), 3, "m1 stored once");
    let b = bob.new_session("b").await;
    let bobs = bob.post("/api/chat/messages/batch", json!({ "messages": [message("m1", &b, "bob's", 1)] })).await;
    assert_eq!(bobs.status, StatusCode::OK);
    assert_ne!(bobs.body["mappings"][0]["id"], first.body["mappings"][0]["id"], "bob's m1 is his own");
}

pub async fn users_see_only_their_own_data(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    let s = alice.new_session("secret").await;
    alice.post("/api/chat/messages/batch", json!({ "messages": [message("t", &s, "private", 1)] })).await;
    let r = alice.post("/api/projects", json!({ "name": "alice's" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        error_code(&bob.get(&format!("/api/chat/sessions/{s}/messages")).await, StatusCode::NOT_FOUND),
        "not_found"
    );
    assert!(bob.get("/api/chat/sessions").await.body.as_array().unwrap().is_empty());
    assert!(bob.get("/api/projects").await.body.as_array().unwrap().is_empty());
    let init = bob.get("/api/sync/init").await.body;
    assert_eq!(init["user"]["name"], "bob");
    assert!(init["sessions"].as_array().unwrap().is_empty());
    assert!(init["projects"].as_array().unwrap().is_empty());
}

pub async fn sync_init_is_metadata_first(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    for i in 0..60 {
        alice.new_session(&format!("s{i}")).await;
    }
    alice.post("/api/projects", json!({ "name": "p" })).await;
    let init = alice.get("/api/sync/init").await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(init.body["user"]["name"], "alice");
    let sessions = init.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 50, "only the recent sessions");
    assert_eq!(sessions[0]["title"], "s59", "most recent first");
    assert_eq!(init.body["projects"].as_array().unwrap().len(), 1);
    assert!(init.body["assets"].is_array());
}

/// A request the API must refuse: method, path, content type, body, and
/// the status and error code it must answer with.
type BadCase = (Method, &'static str, Option<&'static str>, Vec<u8>, StatusCode, &'static str);

pub async fn bad_input_is_a_clear_4xx(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let cases: Vec<BadCase> = vec![
        (
            Method::POST,
            "/api/chat/sessions",
            Some("application/json"),
            b"{\"title\":".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            Some("application/json"),
            b"{\"title\": 5}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            Some("application/json"),
            b"{\"title\": \"\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            Some("application/json"),
            b"{\"title\": \"x\", \"admin\": true}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            Some("application/json"),
            b"{\"id\": \"42\", \"title\": \"x\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            Some("text/plain"),
            b"{\"title\": \"x\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            None,
            b"{\"title\": \"x\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/api/chat/sessions",
            Some("application/json"),
            vec![b' '; 2 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (Method::GET, "/api/chat/sessions/not-an-id/messages", None, vec![], StatusCode::BAD_REQUEST, "invalid_id"),
        (Method::GET, "/api/chat/sessions/..%2F..%2Fetc/messages", None, vec![], StatusCode::BAD_REQUEST, "invalid_id"),
        (
            Method::GET,
            "/api/chat/sessions/0190A4C4-0000-7000-8000-000000000001/messages",
            None,
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::GET,
            "/api/chat/sessions/0190a4c4-0000-7000-8000-000000000001/messages",
            None,
            vec![],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/auth/login",
            Some("application/json"),
            b"{\"user\": \"\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/auth/login",
            Some("application/json"),
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ];
    for (method, path, ct, body, status, code) in cases {
        let r = alice.raw(method.clone(), path, ct, body, &[]).await;
        assert_eq!(error_code(&r, status), code, "{method} {path}");
    }
    assert!(alice.get("/api/chat/sessions").await.body.as_array().unwrap().is_empty(), "bad input stored something");
    let bad_key = alice
        .raw(
            Method::POST,
            "/api/projects",
            Some("application/json"),
            br#"{"name":"p"}"#.to_vec(),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(error_code(&bad_key, StatusCode::BAD_REQUEST), "invalid_idempotency_key");
    assert!(alice.get("/api/projects").await.body.as_array().unwrap().is_empty());
}

pub async fn idempotency_key_replays_and_refuses_misuse(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    let first = alice.post_keyed("/api/projects", json!({ "name": "p" }), "key-1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = alice.post_keyed("/api/projects", json!({ "name": "p" }), "key-1").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "the stored response is replayed");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(alice.get("/api/projects").await.body.as_array().unwrap().len(), 1);
    // Same key, other body: 422, nothing stored.
    let other = alice.post_keyed("/api/projects", json!({ "name": "q" }), "key-1").await;
    assert_eq!(error_code(&other, StatusCode::UNPROCESSABLE_ENTITY), "idempotency_key_reused");
    // Same key on another route is another request too.
    let elsewhere = alice.post_keyed("/api/chat/sessions", json!({ "name": "p" }), "key-1").await;
    assert_eq!(elsewhere.status.as_u16() / 100, 4);
    assert_eq!(alice.get("/api/projects").await.body.as_array().unwrap().len(), 1);
    // Keys are per user.
    let bobs = bob.post_keyed("/api/projects", json!({ "name": "p" }), "key-1").await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert_ne!(bobs.body["id"], first.body["id"]);
    // A write that failed does not burn its key: a fixed retry goes through.
    let s = alice.new_session("s").await;
    let bad = json!({ "messages": [message("a", "0190a4c4-0000-7000-8000-0000000000ff", "x", 1)] });
    error_code(&alice.post_keyed("/api/chat/messages/batch", bad, "key-2").await, StatusCode::NOT_FOUND);
    let bad_again = json!({ "messages": [message("a", "0190a4c4-0000-7000-8000-0000000000ff", "x", 1)] });
    error_code(&alice.post_keyed("/api/chat/messages/batch", bad_again, "key-2").await, StatusCode::NOT_FOUND);
    let ok =
        alice.post_keyed("/api/chat/messages/batch", json!({ "messages": [message("a", &s, "x", 1)] }), "key-3").await;
    assert_eq!(ok.status, StatusCode::OK);
    let replay =
        alice.post_keyed("/api/chat/messages/batch", json!({ "messages": [message("a", &s, "x", 1)] }), "key-3").await;
    assert_eq!(replay.body, ok.body, "same server ids on replay");
    assert_eq!(alice.messages(&s).await.len(), 1);
}

pub async fn idempotency_under_concurrency(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let s = alice.new_session("s").await;
    let batch = json!({ "messages": [message("a", &s, "once", 1), message("b", &s, "only", 2)] });
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (c, b) = (alice.clone(), batch.clone());
        tasks.push(tokio::spawn(async move { c.post_keyed("/api/chat/messages/batch", b, "race-key").await }));
    }
    let mut ok_bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::OK => ok_bodies.push(r.body),
            StatusCode::CONFLICT => assert_eq!(r.body["error"]["code"], "request_in_progress"),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(!ok_bodies.is_empty());
    assert!(ok_bodies.windows(2).all(|w| w[0] == w[1]), "every success carries the same mappings");
    assert_eq!(alice.messages(&s).await.len(), 2, "exactly one write happened");
}

pub async fn idempotency_leases_and_expiry(state: AppState) {
    use outpost::server::idempotency::{claim, sweep, Claim, LEASE_MS};
    let db = &state.api.db;
    let ttl = 10_000_000;
    let t0 = 1_000_000;
    let fresh = |c: &Result<Claim, outpost::server::AppError>| matches!(c, Ok(Claim::Fresh { .. }));
    // A pending claim blocks repeats until its lease runs out (its server
    // died mid-write), then it can be taken over.
    assert!(fresh(&claim(db, "u", Some("k".into()), "fp", t0, ttl).await));
    let blocked = claim(db, "u", Some("k".into()), "fp", t0 + LEASE_MS - 1, ttl).await;
    assert!(matches!(blocked, Err(outpost::server::AppError::Conflict { .. })));
    let taken = claim(db, "u", Some("k".into()), "fp", t0 + LEASE_MS, ttl).await.unwrap();
    assert!(matches!(taken, Claim::Fresh { .. }));
    // Completed: replayed until the key expires, then forgotten.
    let mut tx = db.pool.begin().await.unwrap();
    taken.complete(&mut tx, StatusCode::CREATED, &json!({ "done": 1 })).await.unwrap();
    tx.commit().await.unwrap();
    let replay = claim(db, "u", Some("k".into()), "fp", t0 + LEASE_MS + 1, ttl).await.unwrap();
    assert!(matches!(replay, Claim::Replay(StatusCode::CREATED, ref b) if b == &json!({ "done": 1 })));
    assert!(fresh(&claim(db, "u", Some("k".into()), "other-fp", t0 + LEASE_MS + ttl, ttl).await));
    // The sweep removes what expired and keeps what did not.
    assert!(fresh(&claim(db, "u", Some("young".into()), "fp", t0 + 2 * ttl, ttl).await));
    let removed = sweep(db, t0 + 2 * ttl + LEASE_MS, ttl).await.unwrap();
    assert_eq!(removed, 1);
    let left: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM idempotency_keys").fetch_one(&db.pool).await.unwrap();
    assert_eq!(left.0, 1);
}

/// PUTs `bytes` to a presigned URL over real HTTP, as a browser would.
async fn put_object(presigned: &Value, bytes: &'static [u8]) -> u16 {
    let mut req = reqwest::Client::new().put(presigned["url"].as_str().unwrap()).body(bytes);
    for (k, v) in presigned["headers"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    req.send().await.unwrap().status().as_u16()
}

pub async fn presigned_upload_round_trip(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    let before = outpost::db::now_ms();
    let put = alice
        .post(
            "/api/assets/presign",
            json!({ "op": "put", "filename": "../../etc/passwd", "contentType": "text/plain", "size": 11 }),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["method"], "PUT");
    assert_eq!(put.body["headers"]["Content-Type"], "text/plain");
    let id = put.body["assetId"].as_str().unwrap().to_string();
    let expires = put.body["expiresAt"].as_i64().unwrap();
    assert!((before + 3_600_000..=before + 3_700_000).contains(&expires), "1 h expiry: {expires}");
    // The object key is made of ids: the filename cannot steer it.
    let url = put.body["url"].as_str().unwrap();
    assert!(url.contains(&format!("/assets/{id}?")) && !url.contains("etc"), "{url}");

    let missing = alice.post(&format!("/api/assets/{id}/complete"), json!({})).await;
    assert_eq!(error_code(&missing, StatusCode::UNPROCESSABLE_ENTITY), "object_missing");
    // The URL is bound to the declared length: the store refuses a body of
    // any other size, shorter or longer (a 11-byte asset cannot receive
    // gigabytes).
    assert_eq!(put_object(&put.body, b"short").await, 403);
    assert_eq!(put_object(&put.body, b"hello world, and a great deal more").await, 403);
    let wrong = alice.post(&format!("/api/assets/{id}/complete"), json!({})).await;
    assert_eq!(error_code(&wrong, StatusCode::UNPROCESSABLE_ENTITY), "object_missing");
    let pending = alice.post("/api/assets/presign", json!({ "op": "get", "assetId": id })).await;
    assert_eq!(error_code(&pending, StatusCode::CONFLICT), "not_uploaded");
    assert_eq!(alice.get(&format!("/api/assets/{id}")).await.body["status"], "pending");

    assert_eq!(put_object(&put.body, b"hello world").await, 200);
    let done = alice.post(&format!("/api/assets/{id}/complete"), json!({})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["status"], "uploaded");
    let again = alice.post(&format!("/api/assets/{id}/complete"), json!({})).await;
    assert_eq!(again.body, done.body, "completing twice is harmless");
    let meta = alice.get(&format!("/api/assets/{id}")).await.body;
    for (k, v) in [
        ("filename", json!("../../etc/passwd")),
        ("contentType", json!("text/plain")),
        ("size", json!(11)),
        ("status", json!("uploaded")),
    ] {
        assert_eq!(meta[k], v, "{k}");
    }
    assert!(meta.get("objectKey").is_none(), "the key stays on the server");
    assert_eq!(alice.get("/api/assets").await.body.as_array().unwrap().len(), 1);
    assert_eq!(alice.get("/api/sync/init").await.body["assets"][0]["id"], id.as_str());

    let get = alice.post("/api/assets/presign", json!({ "op": "get", "assetId": id })).await;
    assert_eq!(get.status, StatusCode::OK, "{}", get.body);
    assert_eq!(get.body["method"], "GET");
    let bytes = reqwest::get(get.body["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"hello world");

    // Bob sees none of it.
    assert_eq!(error_code(&bob.get(&format!("/api/assets/{id}")).await, StatusCode::NOT_FOUND), "not_found");
    error_code(&bob.post("/api/assets/presign", json!({ "op": "get", "assetId": id })).await, StatusCode::NOT_FOUND);
    error_code(&bob.post(&format!("/api/assets/{id}/complete"), json!({})).await, StatusCode::NOT_FOUND);
    assert!(bob.get("/api/assets").await.body.as_array().unwrap().is_empty());
    assert!(bob.get("/api/sync/init").await.body["assets"].as_array().unwrap().is_empty());
}

pub async fn presign_refuses_bad_input(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let bob = Client::login(&state, "bob").await;
    let bobs_project = bob.post("/api/projects", json!({ "name": "b" })).await.body["id"].clone();
    let put = |extra: Value| {
        let mut body = json!({ "op": "put", "filename": "a.png", "contentType": "image/png", "size": 10 });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (json!({ "op": "delete" }), StatusCode::BAD_REQUEST),
        (put(json!({ "size": 0 })), StatusCode::BAD_REQUEST),
        (put(json!({ "size": 6_000_000_000i64 })), StatusCode::BAD_REQUEST),
        (put(json!({ "size": "10" })), StatusCode::BAD_REQUEST),
        (put(json!({ "contentType": "nope" })), StatusCode::BAD_REQUEST),
        (put(json!({ "contentType": "image/png\r\nx: y" })), StatusCode::BAD_REQUEST),
        (put(json!({ "filename": "" })), StatusCode::BAD_REQUEST),
        (put(json!({ "projectId": "p1" })), StatusCode::BAD_REQUEST),
        (put(json!({ "projectId": bobs_project })), StatusCode::NOT_FOUND),
        (put(json!({ "assetId": "0190a4c4-0000-7000-8000-000000000001" })), StatusCode::BAD_REQUEST),
        (put(json!({ "bucket": "other" })), StatusCode::BAD_REQUEST),
        (json!({ "op": "put", "contentType": "image/png", "size": 10 }), StatusCode::BAD_REQUEST),
        (json!({ "op": "get", "assetId": "../x" }), StatusCode::BAD_REQUEST),
        (json!({ "op": "get", "assetId": "0190a4c4-0000-7000-8000-000000000001" }), StatusCode::NOT_FOUND),
    ];
    for (body, status) in cases {
        error_code(&alice.post("/api/assets/presign", body.clone()).await, status);
        assert!(alice.get("/api/assets").await.body.as_array().unwrap().is_empty(), "stored after {body}");
    }
    for path in ["/api/assets/nope", "/api/assets/nope/complete"] {
        let r = if path.ends_with("complete") { alice.post(path, json!({})).await } else { alice.get(path).await };
        assert_eq!(error_code(&r, StatusCode::BAD_REQUEST), "invalid_id");
    }
    // A key makes presign idempotent: one asset, the same answer.
    let a = alice.post_keyed("/api/assets/presign", put(json!({})), "up-1").await;
    let b = alice.post_keyed("/api/assets/presign", put(json!({})), "up-1").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b.body);
    assert_eq!(alice.get("/api/assets").await.body.as_array().unwrap().len(), 1);
}

pub async fn concurrent_batches_on_one_session_all_succeed(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let s = alice.new_session("busy").await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (c, s) = (alice.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let messages: Vec<Value> = (0..20).map(|i| message(&format!("t{t}-{i}"), &s, "x", i)).collect();
            c.post("/api/chat/messages/batch", json!({ "messages": messages })).await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(alice.messages(&s).await.len(), 16 * 20);
}

pub async fn a_superseded_claim_cannot_complete(state: AppState) {
    use outpost::server::idempotency::{claim, Claim, LEASE_MS};
    let db = &state.api.db;
    let ttl = 10_000_000;
    let slow = claim(db, "u", Some("k".into()), "fp", 1_000, ttl).await.unwrap();
    // The slow request's lease runs out; a retry takes the key over.
    let retry = claim(db, "u", Some("k".into()), "fp", 1_000 + LEASE_MS, ttl).await.unwrap();
    assert!(matches!(retry, Claim::Fresh { .. }));
    let mut tx = db.pool.begin().await.unwrap();
    let late = slow.complete(&mut tx, StatusCode::OK, &json!({ "slow": true })).await;
    assert!(matches!(late, Err(outpost::server::AppError::Conflict { .. })), "the superseded claim must not complete");
    drop(tx);
    slow.release(db).await; // must not free the retry's claim
    let blocked = claim(db, "u", Some("k".into()), "fp", 1_000 + LEASE_MS + 1, ttl).await;
    assert!(matches!(blocked, Err(outpost::server::AppError::Conflict { .. })), "the retry still holds the key");
    let mut tx = db.pool.begin().await.unwrap();
    retry.complete(&mut tx, StatusCode::OK, &json!({ "retry": true })).await.unwrap();
    tx.commit().await.unwrap();
    let replay = claim(db, "u", Some("k".into()), "fp", 1_000 + LEASE_MS + 2, ttl).await.unwrap();
    assert!(matches!(replay, Claim::Replay(_, ref b) if b == &json!({ "retry": true })));
}

pub async fn inbox_keeps_any_body_byte_for_byte(state: AppState) {
    use sha2::{Digest, Sha256};
    let alice = Client::login(&state, "alice").await;
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhello\r\n--b--\r\n";
    let sent: Vec<(&str, Vec<u8>)> = vec![
        ("application/octet-stream", binary.clone()),
        ("multipart/form-data; boundary=b", multipart.as_bytes().to_vec()),
        ("application/json", br#"{"x":1}"#.to_vec()),
    ];
    for (ct, body) in &sent {
        let r = alice.raw(Method::POST, "/api/inbox", Some(ct), body.clone(), &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["size"], body.len());
    }
    let list = alice.get("/api/inbox").await.body;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    for (item, (ct, body)) in list.iter().zip(&sent) {
        assert_eq!(item["contentType"], *ct);
        let hex: String = Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(item["sha256"], hex);
    }
    let id = list[1]["id"].as_str().unwrap();
    let back = alice.get(&format!("/api/inbox/{id}/body")).await;
    assert_eq!(back.body, Value::String(multipart.into()));
    assert_eq!(back.headers["content-type"], "multipart/form-data; boundary=b");
    // Empty and oversize bodies are refused, and nothing is stored.
    let r = alice.raw(Method::POST, "/api/inbox", Some("text/plain"), vec![], &[]).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("empty_body")));
    let r = alice.raw(Method::POST, "/api/inbox", None, vec![0; 8 * 1024 * 1024 + 1], &[]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    // Others see none of it.
    let bob = Client::login(&state, "bob").await;
    assert_eq!(bob.get("/api/inbox").await.body, json!([]));
    assert_eq!(bob.get(&format!("/api/inbox/{id}/body")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(alice.get("/api/inbox").await.body.as_array().unwrap().len(), 3);
}

pub async fn the_demo_switch_refuses_the_api_until_turned_off(state: AppState) {
    let state = state.with_settings(outpost::Settings { demo_switch: true, ..state.api.settings.clone() });
    let bob = Client::login(&state, "bob").await;
    let anonymous = Client::new(&state);
    assert_eq!(anonymous.post("/api/demo/network", json!({ "offline": true })).await.status, StatusCode::UNAUTHORIZED);
    let alice = Client::login(&state, "alice").await;
    // Refusing: the origin answers 503.
    let on = alice.post("/api/demo/network", json!({ "offline": true, "refuse": true })).await;
    assert_eq!((on.status, on.body.clone()), (StatusCode::OK, json!({ "offline": true, "refuse": true })));
    let refused = alice.get("/api/sync/init").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.body["error"]["code"], "demo_offline");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("Turn it off"));
    assert_eq!(alice.post("/api/projects", json!({ "name": "p" })).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(alice.get("/api/demo/network").await.body, json!({ "offline": true, "refuse": true }));
    // Alice's switch is hers: bob, the probes and a visitor are served.
    assert_eq!(bob.get("/api/sync/init").await.status, StatusCode::OK);
    assert_eq!(bob.get("/api/demo/network").await.body, json!({ "offline": false, "refuse": false }));
    assert_eq!(alice.get("/api/health").await.status, StatusCode::OK);
    assert_eq!(anonymous.get("/api/health").await.status, StatusCode::OK);
    // Offline (the default): no answer at all; the body fails before its
    // first byte, so the server closes the connection with nothing written
    // (the browser test sees the network error).
    let on = alice.post("/api/demo/network", json!({ "offline": true })).await;
    assert_eq!(on.body, json!({ "offline": true, "refuse": false }));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/projects")
        .header("cookie", alice.cookie.clone().unwrap())
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name":"q"}"#))
        .unwrap();
    let res = alice.app.clone().oneshot(req).await.unwrap();
    assert!(res.into_body().collect().await.is_err(), "a dropped request has no body to read");
    let off = alice.post("/api/demo/network", json!({ "offline": false })).await;
    assert_eq!((off.status, off.body), (StatusCode::OK, json!({ "offline": false, "refuse": false })));
    assert_eq!(alice.get("/api/sync/init").await.status, StatusCode::OK);
    // Nothing was written while it was on.
    assert_eq!(alice.get("/api/projects").await.body, json!([]));
}

pub async fn writes_from_another_site_are_refused_and_stored_bodies_are_inert(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    // The browser's marks of another site: refused, nothing stored.
    for marks in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "http://localhost:8080"), ("host", "127.0.0.1:8080")][..],
        &[("origin", "null"), ("host", "127.0.0.1:8080")][..],
    ] {
        let r = alice.raw(Method::POST, "/api/inbox", Some("image/svg+xml"), svg.clone(), marks).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("cross_site")),
            "{marks:?}"
        );
        let r = alice.raw(Method::POST, "/api/auth/logout", None, vec![], marks).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{marks:?}");
    }
    assert_eq!(alice.get("/api/inbox").await.body, json!([]));
    assert_eq!(alice.get("/api/auth/me").await.status, StatusCode::OK, "still logged in");
    // Its own pages (and the worker's replays) are same-origin; reads from anywhere are fine.
    let own = [("sec-fetch-site", "same-origin"), ("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")];
    let r = alice.raw(Method::POST, "/api/inbox", Some("image/svg+xml"), svg.clone(), &own).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cross_read = alice.raw(Method::GET, "/api/inbox", None, vec![], &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross_read.status, StatusCode::OK);
    // A stored SVG comes back as a sandboxed download, never as a page.
    let id = r.body["id"].as_str().unwrap();
    let back = alice.raw(Method::GET, &format!("/api/inbox/{id}/body"), None, vec![], &[]).await;
    assert_eq!(back.headers["content-type"], "image/svg+xml");
    assert_eq!(back.headers["x-content-type-options"], "nosniff");
    assert_eq!(back.headers["content-disposition"], "attachment");
    assert!(back.headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
}

pub async fn a_logout_ends_the_session_on_the_server(state: AppState) {
    let alice = Client::login(&state, "alice").await;
    let copy = Client { app: alice.app.clone(), cookie: alice.cookie.clone() };
    assert_eq!(copy.get("/api/auth/me").await.status, StatusCode::OK);
    let me = alice.get("/api/auth/me").await;
    assert_eq!(me.headers["outpost-user"], me.body["id"].as_str().unwrap(), "answers name their user");
    let out = alice.post("/api/auth/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    // The same cookie, kept by another tab or stolen, is no login now.
    let after = copy.get("/api/auth/me").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.headers.get("outpost-user").is_none(), "a 401 names nobody");
    assert_eq!(copy.post("/api/inbox", json!({ "x": 1 })).await.status, StatusCode::UNAUTHORIZED);
    // A new login is a new session.
    let again = Client::login(&state, "alice").await;
    assert_eq!(again.get("/api/auth/me").await.status, StatusCode::OK);
    // An expectation of another user is refused before anything is applied.
    let bob = Client::login(&state, "bob").await;
    let alice_id = again.get("/api/auth/me").await.body["id"].as_str().unwrap().to_string();
    let r = bob
        .raw(
            Method::POST,
            "/api/inbox",
            Some("text/plain"),
            b"for alice".to_vec(),
            &[("outpost-expect-user", &alice_id)],
        )
        .await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (StatusCode::PRECONDITION_FAILED, Some("user_mismatch")));
    assert_ne!(r.headers["outpost-user"], alice_id.as_str(), "names who is logged in");
    assert_eq!(bob.get("/api/inbox").await.body, json!([]));
}

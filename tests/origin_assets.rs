//! The origin serves the worker bundle, the page client and the demo with
//! the right types and caching; unknown API routes are JSON 404s.

mod harness;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use outpost::{app, Bundle};
use tower::ServiceExt;

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let (state, _data) = harness::sqlite_state().await;
    let res = app(state).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn serves_the_stamped_worker_script_uncached() {
    let bundle = Bundle::embedded();
    let (status, headers, body) = get("/sw.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(body, bundle.sw_js.to_vec());
}

#[tokio::test]
async fn serves_the_hashed_wasm_immutable() {
    let bundle = Bundle::embedded();
    let (status, headers, body) = get(&format!("/{}", bundle.wasm_file)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert!(headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    assert_eq!(body, bundle.wasm.to_vec());
    // Another hash is not this bundle's wasm.
    let (status, _, _) = get("/outpost-sw-0000000000000000.wasm").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn serves_the_page_client_and_demo() {
    let (status, headers, body) = get("/outpost.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(String::from_utf8(body).unwrap().contains("export class Outpost"));
    let (status, _, body) = get("/outpost.d.ts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(body).unwrap().contains("declare class Outpost"));
    let (status, headers, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(String::from_utf8(body).unwrap().contains("/app.js"));
}

#[tokio::test]
async fn unknown_paths_are_json_404s() {
    for path in ["/api/nope", "/nope.txt", "/api/"] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}");
        assert!(v["error"]["message"].is_string());
    }
}

//! The files a browser loads: the worker bundle, the page client, the demo.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{AppError, AppState};
use crate::bundle::{OUTPOST_D_TS, OUTPOST_JS};

const JS: &str = "text/javascript; charset=utf-8";
// Browsers revalidate sw.js themselves; every other mutable file should be
// revalidated too, so a new build is seen at once.
const REVALIDATE: &str = "no-cache";
const FOREVER: &str = "public, max-age=31536000, immutable";

/// The demo app, embedded so the binary runs from anywhere.
const STATIC: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../static/index.html")),
    ("app.js", JS, include_bytes!("../../static/app.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../static/style.css")),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { static_file("index.html") }))
        .route("/sw.js", get(sw_js))
        .route("/outpost.js", get(|| async { file(JS, REVALIDATE, OUTPOST_JS) }))
        .route(
            "/outpost.d.ts",
            get(|| async { file("application/typescript; charset=utf-8", REVALIDATE, OUTPOST_D_TS) }),
        )
        .route("/{file}", get(root_file))
}

async fn sw_js(State(state): State<AppState>) -> Response {
    file(JS, REVALIDATE, state.bundle.sw_js.clone())
}

async fn root_file(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if name == state.bundle.wasm_file {
        // The name carries the content hash, so it never changes.
        return file("application/wasm", FOREVER, state.bundle.wasm.clone());
    }
    static_file(&name)
}

fn static_file(name: &str) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, bytes)) => file(mime, REVALIDATE, *bytes),
        None => AppError::NotFound.into_response(),
    }
}

fn file(mime: &'static str, cache: &'static str, body: impl IntoResponse) -> Response {
    ([(CONTENT_TYPE, mime), (CACHE_CONTROL, cache)], body).into_response()
}

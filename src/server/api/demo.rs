//! The demo's "go offline" switch: while it is on, the origin answers every
//! other API request `503`, so a person can watch the worker queue writes
//! and serve stored reads without pulling a cable. Off by default; the
//! binary's `--no-demo-switch` removes the route altogether.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::server::extract::{JsonBody, User};
use crate::server::{AppError, AppState};

pub const PATH: &str = "/api/demo/network";

pub fn router() -> Router<AppState> {
    Router::new().route("/demo/network", get(read).post(set))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    offline: bool,
}

async fn read(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "offline": state.api.demo_offline.load(Ordering::SeqCst) }))
}

async fn set(
    State(state): State<AppState>,
    _user: User,
    body: JsonBody<Switch>,
) -> Result<Json<serde_json::Value>, AppError> {
    state.api.demo_offline.store(body.value.offline, Ordering::SeqCst);
    Ok(Json(json!({ "offline": body.value.offline })))
}

/// Refuses API requests while the switch is on.
pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if state.api.demo_offline.load(Ordering::SeqCst) && path.starts_with("/api/") && path != PATH {
        let body = json!({ "error": {
            "code": "demo_offline",
            "message": "The demo's \"go offline\" switch is on, so the origin refuses the app's requests. \
                        Turn it off to reconnect.",
        }});
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    next.run(req).await
}

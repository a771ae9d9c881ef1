//! The demo's "go offline" switch: while it is on, the origin drops every
//! other API request without answering, as a network that is gone does, so
//! a person can watch the worker queue writes and serve stored reads
//! without pulling a cable (and, like a real outage, for as long as they
//! like: no answer spends no retry). `{"offline": true, "refuse": true}`
//! makes it answer `503` instead, for an origin that is up and failing.
//! The switch is per user: it takes down the API for the user who turned it
//! on, and nobody else (nor `/api/health` and `/api/ready`, which are
//! outside it). Off unless `outpost serve --demo-switch` (what
//! `./scripts/demo.sh` passes).

use std::pin::Pin;
use std::task::{Context, Poll};

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
    /// Answer 503 instead of dropping the connection.
    #[serde(default)]
    refuse: bool,
}

/// The switch's state: 0 off, 1 dropping connections, 2 answering 503.
const OFF: u8 = 0;
const DROP: u8 = 1;
const REFUSE: u8 = 2;

fn state_json(mode: u8) -> serde_json::Value {
    json!({ "offline": mode != OFF, "refuse": mode == REFUSE })
}

fn mode_of(state: &AppState, user_id: &str) -> u8 {
    state.api.demo_offline.lock().expect("not poisoned").get(user_id).copied().unwrap_or(OFF)
}

async fn read(State(state): State<AppState>, user: User) -> Json<serde_json::Value> {
    Json(state_json(mode_of(&state, &user.id)))
}

async fn set(
    State(state): State<AppState>,
    user: User,
    body: JsonBody<Switch>,
) -> Result<Json<serde_json::Value>, AppError> {
    let mode = match (body.value.offline, body.value.refuse) {
        (false, _) => OFF,
        (true, false) => DROP,
        (true, true) => REFUSE,
    };
    let mut modes = state.api.demo_offline.lock().expect("not poisoned");
    if mode == OFF {
        modes.remove(&user.id);
    } else {
        modes.insert(user.id, mode);
    }
    Ok(Json(state_json(mode)))
}

/// Drops or refuses the API requests of a user whose switch is on.
pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let on = !state.api.demo_offline.lock().expect("not poisoned").is_empty();
    let mode = match crate::server::naming::session_user(&req, &state) {
        Some(user) if on => mode_of(&state, &user),
        _ => OFF,
    };
    if mode == OFF || !path.starts_with("/api/") || path == PATH {
        return next.run(req).await;
    }
    if mode == DROP {
        // A body that fails before its first byte makes the server close
        // the connection with nothing written: the browser sees no answer
        // at all (a network error), exactly as when the network is gone.
        return Response::new(axum::body::Body::new(Dropped));
    }
    let body = json!({ "error": {
        "code": "demo_offline",
        "message": "The demo's \"go offline\" switch is on, so the origin refuses the app's requests. \
                    Turn it off to reconnect.",
    }});
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// A response body that fails at once (see `gate`).
struct Dropped;

impl http_body::Body for Dropped {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("the demo switch drops this connection"))))
    }
}

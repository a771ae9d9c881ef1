//! The reference origin server: `app(state) -> Router`, so tests drive it
//! with `oneshot` and `outpost serve` binds it to a socket.

mod assets;
mod error;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};

use crate::Bundle;
pub use error::AppError;

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub bundle: Arc<Bundle>,
}

impl AppState {
    /// State serving the bundle embedded in this binary.
    pub fn new() -> Self {
        Self::with_bundle(Bundle::embedded())
    }

    pub fn with_bundle(bundle: Bundle) -> Self {
        AppState { bundle: Arc::new(bundle) }
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

/// The whole origin: the worker bundle, the demo, and the API.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "ok": true })) }))
        .fallback(|| async { AppError::NotFound });
    Router::new()
        .nest("/api", api)
        .merge(assets::router())
        .fallback(|| async { AppError::NotFound })
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

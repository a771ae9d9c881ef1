//! Outpost's origin side: the service-worker bundle this crate embeds, and
//! the reference origin server that serves it together with the demo and
//! the API.
//!
//! Mount it in an axum app with `outpost::app(outpost::AppState::new())`.

pub mod bundle;
pub mod server;

pub use bundle::Bundle;
pub use server::{app, AppState};

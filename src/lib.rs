//! Outpost's origin side: the service-worker bundle this crate embeds, and
//! the reference origin server that serves it together with the demo and
//! the API.
//!
//! Mount it in an axum app with `outpost::app(outpost::AppState::open(options).await?)`.

pub mod auth;
pub mod bundle;
pub mod db;
mod fsutil;
mod hex;
pub mod server;
pub mod store;

pub use bundle::Bundle;
pub use server::{api_app, app, AppState, Options, Settings};

//! Outpost's service worker.
//!
//! `core` is plain Rust with no browser types: it decides (routing, config,
//! and later backoff, the queue state machine, eviction). `web` is the thin
//! adapter that carries those decisions out with web-sys; it only exists on
//! wasm32, so `cargo test` on the host exercises the whole policy.

pub mod core;
pub mod heap;

#[cfg(target_arch = "wasm32")]
mod web;

pub use crate::core::{config::Config, config::ConfigError, route::Route};

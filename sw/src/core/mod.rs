//! The pure core: no I/O, no clock, no browser. Time and randomness come in as
//! arguments so every decision can be replayed in a host test.

pub mod backoff;
pub mod batch;
pub mod clock;
pub mod config;
pub mod content;
pub mod evict;
pub mod identity;
pub mod json;
pub mod outcome;
pub mod pattern;
pub mod protocol;
pub mod queue;
pub mod reads;
pub mod record;
pub mod route;
pub mod sort;
pub mod tempid;
pub mod text;
pub mod upload;
pub mod url;
pub mod warmup;
pub mod wire;

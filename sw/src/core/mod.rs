//! The pure core: no I/O, no clock, no browser. Time and randomness come in as
//! arguments so every decision can be replayed in a host test.

pub mod backoff;
pub mod config;
pub mod outcome;
pub mod pattern;
pub mod queue;
pub mod record;
pub mod route;
pub mod tempid;
pub mod url;

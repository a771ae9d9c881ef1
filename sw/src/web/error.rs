//! The worker's one error type. A JS exception or rejection (IndexedDB's
//! `DOMException`s, fetch's `TypeError`s, a refused Web Lock) is converted
//! once, here, into its name and message: plain strings that print, compare
//! and never hold a JS handle. It becomes a `JsValue` again only at the
//! `#[wasm_bindgen]` boundary (`From<Error> for JsValue`), as a JS `Error`
//! with the same name, so a page's `catch` sees what the browser said.

use std::fmt;

use crate::core::text::cat;
use wasm_bindgen::JsValue;

///
/// Boxed: a `Result` carries one pointer, so the many `?` on the worker's
/// async paths move a word, not two strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Parts>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The exception's `name` (`QuotaExceededError`, `TypeError`,
    /// `VersionError`…); `Error` when it had none.
    pub name: String,
    pub message: String,
}

impl std::ops::Deref for Error {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(name: &str, message: impl Into<String>) -> Error {
        Error::of(name.to_string(), message.into())
    }

    fn of(name: String, message: String) -> Error {
        Error(Box::new(Parts { name, message }))
    }

    /// The worker's own failure, not the browser's.
    pub fn worker(message: impl Into<String>) -> Error {
        Error::new("OutpostError", message)
    }

    /// The browser refused more data: its storage quota is full.
    pub fn is_quota(&self) -> bool {
        self.name == "QuotaExceededError"
    }

    /// Another message, the same name (context added on the way up).
    pub fn context(self, what: &str) -> Error {
        let mut e = self;
        e.0.message = cat!(what, ": ", e.0.message);
        e
    }

    /// `name: message` (`Display` writes the same).
    pub fn text(&self) -> String {
        cat!(self.name, ": ", self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl std::error::Error for Error {}

impl From<JsValue> for Error {
    /// Its `name` and `message` (the bootstrap's `outpostErrorParts`): a
    /// string is an `Error`'s message, an object without either its text.
    fn from(value: JsValue) -> Error {
        let parts = super::global::bootstrap::error_parts(&value);
        Error::of(parts.get(0).as_string().unwrap_or_default(), parts.get(1).as_string().unwrap_or_default())
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        super::global::bootstrap::new_error(&e.name, &e.message)
    }
}

impl From<crate::core::json::ParseError> for Error {
    fn from(e: crate::core::json::ParseError) -> Error {
        Error::new("SyntaxError", e.text())
    }
}

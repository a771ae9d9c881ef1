//! `Request` <-> `core::record::StoredRequest`.

use super::error::Result;
use super::global;
use js_sys::Uint8Array;
use wasm_bindgen::JsValue;
use web_sys::{Request, RequestCredentials};

use crate::core::record::{Credentials, StoredRequest};

/// Reads the whole request, body included, leaving `request` unread.
pub async fn capture(request: &Request) -> Result<StoredRequest> {
    let method = request.method();
    let body = if method == "GET" || method == "HEAD" {
        Vec::new()
    } else {
        let copy = global::copy(request)?;
        let buffer = crate::web::global::wait(global::array_buffer(&copy)?).await?;
        Uint8Array::new(&buffer).to_vec()
    };
    let headers = headers_of(request)?;
    let credentials = match request.credentials() {
        RequestCredentials::Omit => Credentials::Omit,
        RequestCredentials::Include => Credentials::Include,
        _ => Credentials::SameOrigin,
    };
    Ok(StoredRequest { method, url: request.url(), headers, body, credentials })
}

/// A request's headers, as the page set them (names as the browser gives
/// them, lowercase).
pub fn headers_of(request: &Request) -> Result<Vec<(String, String)>> {
    Ok(global::headers_of(&request.headers()))
}

/// How a built request is sent.
pub struct Send<'a> {
    /// Aborts the request when it fires (the write timeout).
    pub signal: &'a web_sys::AbortSignal,
    /// A replay has no page waiting for a redirect's target: it takes the
    /// redirect itself as the answer (an opaque redirect, status 0), so a
    /// login page's 200 can never pass for the origin accepting the write.
    pub replay: bool,
    /// The user the write was made for, sent as `Outpost-Expect-User` so
    /// the origin refuses it (412) under anyone else's session.
    pub expect_user: Option<&'a str>,
}

/// A request to send: the stored one, with `url` and `body` (possibly
/// rewritten) and the entry's Idempotency-Key.
pub fn build(stored: &StoredRequest, url: &str, body: &[u8], idempotency_key: &str, how: Send<'_>) -> Result<Request> {
    let headers = js_sys::Array::new();
    for (name, value) in &stored.headers {
        if !name.eq_ignore_ascii_case("idempotency-key") {
            global::pair(&headers, name, value);
        }
    }
    global::pair(&headers, "Idempotency-Key", idempotency_key);
    if let Some(user) = how.expect_user {
        global::pair(&headers, crate::core::identity::EXPECT_HEADER, user);
    }
    let body = (!body.is_empty()).then(|| JsValue::from(Uint8Array::from(body)));
    let credentials = match stored.credentials {
        Credentials::Omit => "omit",
        Credentials::SameOrigin => "same-origin",
        Credentials::Include => "include",
    };
    let send = global::Send {
        method: &stored.method,
        credentials,
        manual: how.replay,
        body: body.as_ref(),
        signal: Some(how.signal),
    };
    global::new_request(url, &headers, send)
}

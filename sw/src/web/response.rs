//! Building `Response`s.

use super::error::Result;
use web_sys::{Response, ResponseInit};

/// A JSON response, marked as made by the worker.
pub fn json(status: u16, body: &str) -> Result<Response> {
    let headers = super::global::headers();
    headers.set("Content-Type", "application/json")?;
    headers.set("Outpost-Source", "worker")?;
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    super::global::new_response(&body.into(), &init)
}

/// A response with `status`, `headers` and `body` as given.
pub fn build(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Response> {
    let h = super::global::headers();
    for (name, value) in headers {
        h.append(name, value)?;
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&h);
    // 204/205/304 may not have a body, even an empty one.
    if body.is_empty() {
        return super::global::new_response(&wasm_bindgen::JsValue::NULL, &init);
    }
    let copy = js_sys::Uint8Array::from(body);
    super::global::new_response(&copy, &init)
}

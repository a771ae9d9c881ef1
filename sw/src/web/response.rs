//! Building `Response`s.

use super::error::Result;
use super::global;
use web_sys::Response;

/// A JSON response, marked as made by the worker.
pub fn json(status: u16, body: &str) -> Result<Response> {
    json_queued(status, body, None)
}

/// A JSON response, marked as made by the worker, and with `Outpost-Queued:
/// <id>` for a write or an upload it keeps (`queued`).
pub fn json_queued(status: u16, body: &str, queued: Option<&str>) -> Result<Response> {
    let headers = js_sys::Array::new();
    global::pair(&headers, "Content-Type", "application/json");
    global::pair(&headers, "Outpost-Source", "worker");
    if let Some(id) = queued {
        global::pair(&headers, "Outpost-Queued", id);
    }
    global::new_response(status, &headers, &body.into())
}

/// A response with `status`, `headers` and `body` as given.
pub fn build(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Response> {
    let list = js_sys::Array::new();
    for (name, value) in headers {
        global::pair(&list, name, value);
    }
    // 204/205/304 may not have a body, even an empty one.
    let body = if body.is_empty() { wasm_bindgen::JsValue::NULL } else { js_sys::Uint8Array::from(body).into() };
    global::new_response(status, &list, &body)
}

//! Building `Response`s.

use wasm_bindgen::JsValue;
use web_sys::{Headers, Response, ResponseInit};

/// A JSON response, marked as made by the worker.
pub fn json(status: u16, body: &str) -> Result<Response, JsValue> {
    let headers = Headers::new()?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Outpost-Source", "worker")?;
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    Response::new_with_opt_str_and_init(Some(body), &init)
}

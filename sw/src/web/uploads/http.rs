//! The HTTP of uploads: calls to the origin's upload API (with the user's
//! cookie and expected user) and PUTs to the object store.

use crate::web::global::Whole;
use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, Response};

use super::Uploads;
use crate::core::clock::Heard;
use crate::core::text::cat;
use crate::core::upload::api::OriginCall;
use crate::web::clock::Part;
use crate::web::global::{self, Fetched};

impl Uploads {
    /// A same-origin API call with the user's cookie: what was heard, and
    /// the body (empty without an answer). `user`: the upload's user, sent
    /// as `Outpost-Expect-User` so the origin refuses the call (412) under
    /// anyone else's session.
    pub(super) async fn api(&self, call: &OriginCall, user: Option<&str>) -> (Heard, Vec<u8>) {
        let url = cat!(self.origin, call.path);
        let sent_at = self.identity.generation();
        let answer = global::fetch_within(
            |signal| {
                let headers = js_sys::Array::new();
                let body = call.body.as_deref().map(JsValue::from_str);
                if body.is_some() {
                    global::pair(&headers, "Content-Type", "application/json");
                }
                if let Some(k) = &call.idempotency_key {
                    global::pair(&headers, "Idempotency-Key", k);
                }
                if let Some(u) = user {
                    global::pair(&headers, crate::core::identity::EXPECT_HEADER, u);
                }
                let how = global::Send {
                    method: call.method.as_str(),
                    credentials: "same-origin",
                    manual: false,
                    body: body.as_ref(),
                    signal: Some(signal),
                };
                global::new_request(&url, &headers, how)
            },
            self.config.write_timeout_ms,
        )
        .whole()
        .await;
        let heard = answer.heard();
        if heard.is_hint() {
            // Writes waiting for the network may go too.
            self.clock.hint(Some(Part::Uploads));
        }
        let Fetched::Answer(r) = answer else { return (heard, Vec::new()) };
        // Named by the origin: another user (412) is learned, and the pass
        // stops before the next call.
        if let Err(e) = self.identity.observe(&r, sent_at).whole().await {
            global::log_error("could not record the user the origin named", &e);
        }
        (heard, global::body_bytes(&r).whole().await.unwrap_or_default())
    }
}

/// What the retry clock hears of a store PUT (no answer: `Nothing`).
pub(super) async fn answer_heard(answer: Option<Promise>) -> Heard {
    let status = async { Some(crate::web::global::wait(answer?).await.ok()?.unchecked_into::<Response>().status()) };
    status.whole().await.map_or(Heard::Nothing, Heard::Status)
}

/// Starts a PUT of `body` to the store (None: the request could not be made).
pub(super) fn start_put(url: &str, headers: &[(String, String)], body: &Blob) -> Option<Promise> {
    let list = js_sys::Array::new();
    for (k, v) in headers {
        global::pair(&list, k, v);
    }
    let how = global::Send { method: "PUT", credentials: "omit", manual: false, body: Some(body), signal: None };
    let request = global::new_request(url, &list, how).ok()?;
    Some(global::start_fetch(&request))
}

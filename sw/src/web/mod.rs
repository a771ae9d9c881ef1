//! The web side: carries out what `core` decides, with web-sys. It holds no
//! policy of its own; one module per browser concept.

mod db;
mod events;
mod global;
mod outbox;
mod request;
mod response;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::Request;

use crate::core::config::Config;
use crate::core::queue::{sync_end, SyncEnd, Trigger};
use crate::core::route::{route, Route};
use outbox::Outbox;

struct Inner {
    config: Rc<Config>,
    origin: String,
    version: String,
    outbox: RefCell<Option<Rc<Outbox>>>,
}

impl Inner {
    fn outbox(&self) -> Result<Rc<Outbox>, JsValue> {
        self.outbox.borrow().clone().ok_or_else(|| JsValue::from_str("outpost: the worker has not started"))
    }
}

/// One per worker start, made by the bootstrap (`sw.js`) once the wasm is
/// instantiated; `start()` must resolve before any other call.
#[wasm_bindgen]
pub struct Outpost {
    inner: Rc<Inner>,
}

fn promise<F>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
{
    wasm_bindgen_futures::future_to_promise(f)
}

fn to_js(value: &serde_json::Value) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(&value.to_string())
}

#[wasm_bindgen]
impl Outpost {
    /// `config_json` is the worker's JSON config (empty for defaults),
    /// `origin` the worker's `location.origin`, `version` the bundle hash the
    /// build stamped into `sw.js`.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str, origin: String, version: String) -> Result<Outpost, JsError> {
        console_error_panic_hook::set_once();
        let config = Config::from_json(config_json).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Outpost { inner: Rc::new(Inner { config: Rc::new(config), origin, version, outbox: RefCell::new(None) }) })
    }

    /// Opens IndexedDB and replays what an earlier worker left: starting is
    /// one of the replay triggers, for browsers without Background Sync.
    pub fn start(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            let outbox = Outbox::open(Rc::clone(&inner.config)).await?;
            *inner.outbox.borrow_mut() = Some(Rc::clone(&outbox));
            outbox.kick(Trigger::Scheduled);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Whether the fetch event should be answered by `handle`. Must stay
    /// synchronous: `respondWith` can only be called during dispatch.
    pub fn claims(&self, method: &str, url: &str) -> bool {
        handled(self.route(method, url))
    }

    /// Answers a request that `claims` accepted.
    pub fn handle(&self, request: Request) -> Promise {
        let inner = Rc::clone(&self.inner);
        let route = self.route(&request.method(), &request.url());
        promise(async move {
            match route {
                Route::Version => response::json(200, &version_body(&inner)).map(Into::into),
                Route::Write(_) => inner.outbox()?.send(request).await.map(Into::into),
                // Not claimed by this build (see `handled`); if the bootstrap
                // asks anyway, the request goes to the network untouched.
                Route::Passthrough | Route::Read(_) => global::fetch(&request).await.map(Into::into),
            }
        })
    }

    /// The Background Sync event for the outbox tag. Rejects while entries
    /// are left (so the browser fires it again later), except on its last
    /// chance, when a new registration takes over.
    #[wasm_bindgen(js_name = onSync)]
    pub fn on_sync(&self, last_chance: bool) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            let outbox = inner.outbox()?;
            let left = outbox.replay(Trigger::Signal).await?;
            match sync_end(left, last_chance) {
                SyncEnd::Done => Ok(JsValue::UNDEFINED),
                SyncEnd::AskAgain => Err(JsValue::from_str("outpost: writes are still pending")),
                SyncEnd::Reregister => {
                    global::register_sync(outbox::SYNC_TAG).await;
                    Ok(JsValue::UNDEFINED)
                }
            }
        })
    }

    /// A page's request through `outpost.js`: `{type: "outpost:status" |
    /// "outpost:flush" | "outpost:retry" | "outpost:discard", id?}`.
    pub fn message(&self, data: JsValue) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            let kind = Reflect::get(&data, &"type".into())?.as_string().unwrap_or_default();
            let id = Reflect::get(&data, &"id".into())?.as_string();
            let outbox = inner.outbox()?;
            let reply = match (kind.as_str(), id) {
                ("outpost:version", _) => serde_json::json!({ "version": inner.version }),
                ("outpost:status", _) => outbox.status().await?,
                ("outpost:flush", _) => {
                    outbox.replay(Trigger::Explicit).await?;
                    outbox.status().await?
                }
                ("outpost:online", _) => {
                    outbox.replay(Trigger::Signal).await?;
                    outbox.status().await?
                }
                ("outpost:retry", Some(id)) => serde_json::json!({ "ok": outbox.retry(&id).await? }),
                ("outpost:discard", Some(id)) => serde_json::json!({ "ok": outbox.discard(&id).await? }),
                _ => serde_json::json!({ "error": format!("outpost: unknown request {kind:?}") }),
            };
            to_js(&reply)
        })
    }

    /// The bundle hash this worker runs.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> String {
        self.inner.version.clone()
    }
}

impl Outpost {
    fn route(&self, method: &str, url: &str) -> Route {
        route(&self.inner.config, &self.inner.origin, method, url)
    }
}

/// The routes this build answers. Reads are recognised by the core but
/// still left to the network until their handler lands.
fn handled(route: Route) -> bool {
    matches!(route, Route::Version | Route::Write(_))
}

fn version_body(inner: &Inner) -> String {
    #[derive(serde::Serialize)]
    struct Version<'a> {
        version: &'a str,
        package: &'a str,
    }
    serde_json::to_string(&Version { version: &inner.version, package: env!("CARGO_PKG_VERSION") })
        .expect("plain strings serialise")
}

//! The web side: carries out what `core` decides, with web-sys. It holds no
//! policy of its own; each browser concept gets its own module as it
//! arrives (db, request conversion, cache, clients, storage estimate).

mod response;

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::Request;

use crate::core::config::Config;
use crate::core::route::{route, Route};

struct Inner {
    config: Config,
    origin: String,
    version: String,
}

/// One per worker start, made by the bootstrap (`sw.js`) once the wasm is
/// instantiated.
#[wasm_bindgen]
pub struct Outpost {
    inner: Rc<Inner>,
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
        Ok(Outpost { inner: Rc::new(Inner { config, origin, version }) })
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
        wasm_bindgen_futures::future_to_promise(async move {
            match route {
                Route::Version => response::json(200, &version_body(&inner)).map(Into::into),
                // Not claimed by this build (see `handled`); if the bootstrap
                // asks anyway, the request goes to the network untouched.
                Route::Passthrough | Route::Read(_) | Route::Write(_) => {
                    let global: web_sys::ServiceWorkerGlobalScope = js_sys::global().unchecked_into();
                    wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&request)).await
                }
            }
        })
    }

    /// The Background Sync event for the outbox tag. The outbox is not built
    /// yet, so there is nothing to replay.
    #[wasm_bindgen(js_name = onSync)]
    pub fn on_sync(&self, _last_chance: bool) -> Promise {
        Promise::resolve(&JsValue::UNDEFINED)
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

/// The routes this build answers. Reads and writes are recognised by the
/// core but still left to the network until their handlers land.
fn handled(route: Route) -> bool {
    matches!(route, Route::Version)
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

//! The worker's global scope. A service worker has no `Window`, so
//! everything is reached through `js_sys::global()`.

use super::error::{Error, Result};
use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
pub use super::task::{wait, Wait};
use web_sys::{Request, Response};

use crate::core::clock::Heard;
use crate::core::text::cat;

/// `fetch(request)` started: a promise of its `Response`.
pub fn start_fetch(request: &Request) -> Promise {
    shared::fetch(request)
}

pub async fn fetch(request: &Request) -> Result<Response> {
    Ok(wait(start_fetch(request)).await.map(JsCast::unchecked_into)?)
}

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Sets the start-up mark `name` of the bootstrap's `outpostTimings`
/// (`outpost:timings`), once: `performance.now()`, ms since the browser
/// started this worker.
pub fn mark(name: &str) {
    bootstrap::mark(name);
}

/// Functions the bootstrap (`shim/sw.js`) defines for the wasm: a few lines
/// of script each, where the same through `Reflect` cost the wasm about
/// 2.5 KB of lookups and checks.
pub(super) mod bootstrap {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = outpostMark)]
        pub fn mark(name: &str);
        /// `navigator.storage.estimate()` as `[usage, quota]`, or `null`
        /// where the browser does not tell.
        #[wasm_bindgen(js_name = outpostEstimate)]
        pub fn estimate() -> js_sys::Promise;
        /// Resolves once the Web Lock `name` is held (at once without the
        /// Web Locks API) with the function that releases it.
        #[wasm_bindgen(js_name = outpostLock)]
        pub fn lock(name: &str) -> js_sys::Promise;
        /// `new Request(url, {method, credentials, redirect, headers, body,
        /// signal})`, `headers` as `[name, value, …]`.
        #[wasm_bindgen(js_name = outpostNewRequest, catch)]
        pub fn new_request(
            url: &str,
            method: &str,
            credentials: &str,
            manual: bool,
            headers: &js_sys::Array,
            body: Option<&JsValue>,
            signal: Option<&web_sys::AbortSignal>,
        ) -> Result<web_sys::Request, JsValue>;
        /// `new Response(body, {status, headers})`, `headers` as `[name,
        /// value, …]`.
        #[wasm_bindgen(js_name = outpostNewResponse, catch)]
        pub fn new_response(status: u16, headers: &js_sys::Array, body: &JsValue)
            -> Result<web_sys::Response, JsValue>;
        /// `fetch(request)`, aborted through `controller` after `ms`.
        #[wasm_bindgen(js_name = outpostFetchWithin)]
        pub fn fetch_within(
            request: &web_sys::Request,
            controller: &web_sys::AbortController,
            ms: u32,
        ) -> js_sys::Promise;
        /// `crypto.randomUUID()`.
        #[wasm_bindgen(js_name = outpostUuid)]
        pub fn uuid() -> String;
        /// Posts `text` (JSON) as an object on the BroadcastChannel `name`.
        #[wasm_bindgen(js_name = outpostEmit)]
        pub fn emit(name: &str, text: &str);
        /// A thrown value as `[name, message]`.
        #[wasm_bindgen(js_name = outpostErrorParts)]
        pub fn error_parts(e: &JsValue) -> js_sys::Array;
        /// A JS `Error` named `name`.
        #[wasm_bindgen(js_name = outpostNewError)]
        pub fn new_error(name: &str, message: &str) -> JsValue;
        /// `[promise, resolve, reject]`.
        #[wasm_bindgen(js_name = outpostDeferred)]
        pub fn deferred() -> js_sys::Array;
        /// `promise.then((r) => r.clone())`.
        #[wasm_bindgen(js_name = outpostCloned)]
        pub fn cloned(promise: &js_sys::Promise) -> js_sys::Promise;
        /// Resolves after `ms` milliseconds.
        #[wasm_bindgen(js_name = outpostSleep)]
        pub fn sleep(ms: u32) -> js_sys::Promise;
        /// Opens the database `name` at `version`, creating the stores of
        /// `stores` it lacks; rejects with the browser's error.
        #[wasm_bindgen(js_name = outpostOpen)]
        pub fn open(name: &str, version: u32, stores: &js_sys::Array) -> js_sys::Promise;
        /// Asks for a Background Sync event with `tag` where the browser
        /// has Background Sync; never rejects.
        #[wasm_bindgen(js_name = outpostRegisterSync)]
        pub fn register_sync(tag: &str) -> js_sys::Promise;
        /// Settles when the transaction completes; rejects with its error
        /// (an `AbortError` when it has none) when it aborts.
        #[wasm_bindgen(js_name = outpostDone)]
        pub fn done(tx: &web_sys::IdbTransaction) -> js_sys::Promise;
        /// A transaction over the stores `names` (joined by `,`).
        #[wasm_bindgen(js_name = outpostTx, catch)]
        pub fn tx(db: &JsValue, names: &str, write: bool) -> Result<web_sys::IdbTransaction, JsValue>;
        /// A promise of the value under `key` in the store `name`.
        #[wasm_bindgen(js_name = outpostGet, catch)]
        pub fn get(tx: &web_sys::IdbTransaction, name: &str, key: &JsValue) -> Result<js_sys::Promise, JsValue>;
        /// A promise of the store's `[keys, values]`, in key order.
        #[wasm_bindgen(js_name = outpostAll, catch)]
        pub fn all(tx: &web_sys::IdbTransaction, name: &str) -> Result<js_sys::Promise, JsValue>;
        /// Makes `ops` (`[store, key, value, …]`, value undefined for a
        /// delete) in order; one that cannot be made aborts `tx`.
        #[wasm_bindgen(js_name = outpostOps, catch)]
        pub fn ops(tx: &web_sys::IdbTransaction, ops: &js_sys::Array) -> Result<(), JsValue>;
        /// Writes the cold-read table (`core::route::cold_reads`) where the
        /// next start's bootstrap reads it before the wasm loads, or with
        /// `None` deletes it; rejects if Cache Storage refuses.
        #[wasm_bindgen(js_name = outpostColdReads)]
        pub fn cold_reads(table: Option<String>) -> js_sys::Promise;
        /// Hands how `promise` settles to the wasm's `outpostSettled`, as
        /// `slot` (`task::wait`).
        #[wasm_bindgen(js_name = outpostWait)]
        pub fn wait(promise: &js_sys::Promise, slot: u32);
        /// Calls the wasm's `outpostRun` from a microtask (`task::run`).
        #[wasm_bindgen(js_name = outpostTick)]
        pub fn tick();
        /// `setTimeout` of the wasm's `outpostFired` (`clock`).
        #[wasm_bindgen(js_name = outpostTimer)]
        pub fn timer(ms: i32) -> i32;
    }
}

/// What several web types share, bound once: web-sys binds each type's
/// `arrayBuffer()`, `blob()`, `clone()` and each `Response` constructor on
/// its own, an import and an exception-catching wrapper in the wasm each.
pub(super) mod shared {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        /// A `Request`, a `Response` (the Body mixin) or a `Blob`.
        pub type Body;
        #[wasm_bindgen(method, catch, js_name = arrayBuffer)]
        pub fn array_buffer(this: &Body) -> Result<js_sys::Promise, JsValue>;
        /// A `Request`'s or a `Response`'s body as a `Blob`.
        #[wasm_bindgen(method, catch)]
        pub fn blob(this: &Body) -> Result<js_sys::Promise, JsValue>;
        /// A copy of a `Request` or `Response` with its own body; throws if
        /// the body was already read.
        #[wasm_bindgen(method, catch, js_name = clone)]
        pub fn copy(this: &Body) -> Result<Body, JsValue>;

        // Calls that cannot throw as the worker makes them: bound without
        // the wrapper that catches an exception, and without an error path
        // at each call.
        #[wasm_bindgen(js_name = AbortController)]
        pub type NewAbortController;
        #[wasm_bindgen(constructor, js_class = AbortController)]
        pub fn new() -> NewAbortController;
        /// `Headers.get(name)`: throws only for a name that is not a valid
        /// header name, and the worker's are constants.
        pub type HeaderList;
        #[wasm_bindgen(method, js_name = get)]
        pub fn get(this: &HeaderList, name: &str) -> Option<String>;
        /// A function the worker calls to settle something it made: a
        /// promise's `resolve` or `reject`, a Web Lock's release. These do
        /// not throw, so no exception wrapper (js_sys's `Function::call1`
        /// catches).
        pub type Settler;
        #[wasm_bindgen(method, js_name = call)]
        pub fn call(this: &Settler, this_arg: &JsValue, value: &JsValue);
        /// `clearTimeout(handle)`.
        #[wasm_bindgen(js_name = clearTimeout)]
        pub fn clear_timeout(handle: i32);
        /// `fetch(request)`: rejects, never throws, when it fails. The
        /// worker's global functions bound as such: `js_sys::global()`
        /// looks the global object up through four imports.
        #[wasm_bindgen(js_name = fetch)]
        pub fn fetch(request: &web_sys::Request) -> js_sys::Promise;
        /// `new Blob([part])`, `part` an `ArrayBuffer`.
        #[wasm_bindgen(js_name = Blob)]
        pub type NewBlob;
        #[wasm_bindgen(constructor, js_class = Blob)]
        pub fn new(parts: &js_sys::Array) -> NewBlob;
        /// `Blob.slice(start, end)`.
        #[wasm_bindgen(method, js_name = slice)]
        pub fn slice(this: &Body, start: f64, end: f64) -> web_sys::Blob;
    }
}

/// Calls `f`, a promise's `resolve` or `reject` or a lock's release, with
/// `value`.
pub fn settle(f: &Function, value: &JsValue) {
    f.unchecked_ref::<shared::Settler>().call(&JsValue::UNDEFINED, value);
}

/// `body`'s `arrayBuffer()`: a `Request`, `Response` or `Blob`.
pub fn array_buffer(body: &JsValue) -> Result<Promise> {
    Ok(body.unchecked_ref::<shared::Body>().array_buffer()?)
}

/// `body`'s `blob()`: a `Request` or `Response`.
pub fn blob(body: &JsValue) -> Result<Promise> {
    Ok(body.unchecked_ref::<shared::Body>().blob()?)
}

/// A copy of a `Request` or `Response` (`T`) with its own body.
pub fn copy<T: JsCast>(of: &T) -> Result<T> {
    Ok(of.unchecked_ref::<shared::Body>().copy()?.unchecked_into())
}

/// The header `name` (a constant) of a request's or response's `headers`.
pub fn header(headers: &web_sys::Headers, name: &str) -> Option<String> {
    headers.unchecked_ref::<shared::HeaderList>().get(name)
}

/// A Blob of the bytes of `buffer` (an `ArrayBuffer`).
pub fn blob_of(buffer: &JsValue) -> web_sys::Blob {
    shared::NewBlob::new(&js_sys::Array::of1(buffer)).unchecked_into()
}

/// `blob.slice(start, end)`.
pub fn slice(blob: &web_sys::Blob, start: u64, end: u64) -> web_sys::Blob {
    blob.unchecked_ref::<shared::Body>().slice(start as f64, end as f64)
}

/// How a request the worker makes is sent.
pub struct Send<'a> {
    pub method: &'a str,
    /// `"omit"`, `"same-origin"` or `"include"`.
    pub credentials: &'a str,
    /// Redirects are answered as they are (an opaque redirect), not followed.
    pub manual: bool,
    pub body: Option<&'a JsValue>,
    pub signal: Option<&'a web_sys::AbortSignal>,
}

/// A request to `url` with `headers` (`name, value, …`: see `pair`).
pub fn new_request(url: &str, headers: &js_sys::Array, how: Send<'_>) -> Result<Request> {
    Ok(bootstrap::new_request(url, how.method, how.credentials, how.manual, headers, how.body, how.signal)?)
}

/// A GET to `url` with the site's cookie, as a page's `fetch(url)` sends it.
pub fn get(url: &str, signal: Option<&web_sys::AbortSignal>) -> Result<Request> {
    let how = Send { method: "GET", credentials: "same-origin", manual: false, body: None, signal };
    new_request(url, &js_sys::Array::new(), how)
}

/// A response with `status`, `headers` (`name, value, …`) and `body` (a
/// string, a `Blob`, a buffer, or null).
pub fn new_response(status: u16, headers: &js_sys::Array, body: &JsValue) -> Result<Response> {
    Ok(bootstrap::new_response(status, headers, body)?)
}

/// Adds a header to a list for `new_request` or `new_response`.
pub fn pair(list: &js_sys::Array, name: &str, value: &str) {
    list.push(&name.into());
    list.push(&value.into());
}

/// A JS value as text, for messages: its JSON, or "undefined".
pub fn js_text(value: &JsValue) -> String {
    js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "undefined".into())
}

/// A draw in [0, 1) for backoff jitter.
pub fn random() -> f64 {
    js_sys::Math::random()
}

pub fn uuid() -> String {
    bootstrap::uuid()
}

/// Posts `text` (JSON) as an object on the BroadcastChannel `name` (the
/// bootstrap's `outpostEmit`, which keeps the channel).
pub fn emit(name: &str, text: &str) {
    bootstrap::emit(name, text);
}

/// Lets the next cold start answer network-first reads before the wasm is
/// ready (`Some(table)`), or stops it (`None`): see `Identity::allow_cold_reads`.
pub async fn cold_reads(table: Option<String>) -> Result<()> {
    wait(bootstrap::cold_reads(table)).await?;
    Ok(())
}

/// Asks for a Background Sync event, where the browser has Background Sync
/// (web-sys binds `SyncManager` only behind unstable flags, hence the
/// bootstrap's function). Elsewhere the other triggers carry the replay.
pub async fn register_sync(tag: &str) {
    // Never rejects: refusals (no permission, unsupported) change nothing,
    // the other triggers still replay.
    let _ = wait(bootstrap::register_sync(tag)).await;
}

/// Calls the wasm's `outpostFired` (the retry clock) after `ms`
/// milliseconds, while the worker stays alive.
pub fn set_timer(ms: u64) -> i32 {
    bootstrap::timer(ms.min(i32::MAX as u64) as i32)
}

pub fn clear_timeout(handle: i32) {
    shared::clear_timeout(handle);
}

pub fn log_error(context: &str, err: &Error) {
    web_sys::console::error_1(&cat!("outpost: ", context, ": ", err.text()).into());
}

/// Runs `work` while holding the Web Lock `name`, which every worker
/// instance of this origin shares (an old and a new worker overlap during
/// an update). Without the Web Locks API, runs it unguarded.
pub fn with_lock<F, A>(name: &str, work: F) -> impl std::future::Future<Output = Result<JsValue>> + '_
where
    F: std::future::Future<Output = Result<JsValue>> + Whole<A> + 'static,
{
    // Boxed before anything is awaited, so callers share `locked`'s code.
    locked(name, self::work(work))
}

/// A future of the worker's, boxed: the executor (`task::spawn`,
/// `task::promise`) is then compiled once, not once per async block, which
/// cost the wasm several KB.
pub type Work<T = Result<JsValue>> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// `work` boxed, without its drop code (see `Whole`: the caller's `F` must
/// be an `async` block's or fn's future).
pub fn work<T, F: std::future::Future<Output = T> + Whole<A> + 'static, A>(work: F) -> Work<T> {
    Box::pin(work.whole())
}

/// `.whole()`: our own async work (an `async fn`'s or an `async` block's
/// future), awaited without its drop code.
///
/// Such a future that has returned holds nothing: its arguments and what
/// it captured were dropped as its body ended. But the compiler cannot know
/// it has returned, so each place that awaits one calls drop code that
/// tells apart every point where it could have stopped, and so on down
/// every future it awaits: 6 KB of the bundle's gzip (docs/weight.md).
/// The worker drops no future before its end: tasks run until they return
/// (`spawn`, `boxed_promise`), nothing races or cancels a Rust future
/// (timeouts race promises in the bootstrap), and `.whole()` is only ever
/// awaited at once. So skipping the drop frees nothing that would have been
/// freed. The one exception is a `with_lock` whose lock the browser
/// refuses: its work is then dropped unstarted and what it captured (a few
/// counted references) is never freed.
///
/// Only for coroutines: a hand-written future (a `Box`; `task::Wait` has its own rule) keeps
/// what it owns until it is dropped, and would leak it. Every coroutine is
/// `!Unpin` and every hand-written future here is `Unpin`, so the second
/// impl below makes `.whole()` on an `Unpin` future ambiguous: it fails to
/// compile with "type annotations needed". The helpers that take a future
/// (`spawn`, `work`, `with_lock`, `web::promise`) ask for `Whole<A>` with
/// the caller's `A`, so the same check is made where they are called. A new
/// helper generic over a future must do the same: inside a function generic
/// over `F: Future`, `F: Unpin` is unknown, `Whole<()>` is picked, and the
/// check is silently off. Naming `A` (`Whole::<()>::whole(f)`) also gets
/// past it; nothing here does.
pub trait Whole<A>: std::future::Future + Sized {
    fn whole(self) -> Completes<Self> {
        Completes(std::mem::ManuallyDrop::new(self))
    }
}
impl<F: std::future::Future> Whole<()> for F {}
impl<F: std::future::Future + Unpin> Whole<u8> for F {}

pub struct Completes<F>(std::mem::ManuallyDrop<F>);

impl<F: std::future::Future> std::future::Future for Completes<F> {
    type Output = F::Output;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: a pinned `Completes` is never moved, so neither is the
        // future in it (structural pinning; there is no `Drop` to move it).
        // Pin's drop guarantee (a pinned value is dropped before its memory
        // is reused) is waived: the memory of a wrapped future is freed
        // without its drop. That is sound only because such a future is
        // freed after it returned or before it started, when nothing in it
        // is pinned; a suspended one is never dropped (see `Whole`).
        unsafe { self.map_unchecked_mut(|c| &mut *c.0) }.poll(cx)
    }
}

pub fn boxed_promise(work: Work) -> Promise {
    super::task::promise(work)
}

/// Runs `work` in the background.
pub fn spawn<F: std::future::Future<Output = ()> + Whole<A> + 'static, A>(work: F) {
    spawn_boxed(self::work(work));
}

fn spawn_boxed(work: Work<()>) {
    super::task::spawn(work);
}

pub async fn locked(name: &str, work: Work) -> Result<JsValue> {
    let release: Function = wait(bootstrap::lock(name)).await?.unchecked_into();
    let result = work.await;
    // Released whatever `work` ended with, so the next holder may go.
    settle(&release, &JsValue::UNDEFINED);
    result
}

/// A promise settled later by calling `resolve` or `reject` (the
/// bootstrap's `outpostDeferred`: no Rust closure for the executor).
pub struct Deferred {
    pub promise: Promise,
    pub resolve: Function,
    pub reject: Function,
}

pub fn deferred() -> Deferred {
    let parts = bootstrap::deferred();
    Deferred {
        promise: parts.get(0).unchecked_into(),
        resolve: parts.get(1).unchecked_into(),
        reject: parts.get(2).unchecked_into(),
    }
}

/// Waits `ms` milliseconds (while the worker stays alive).
pub async fn sleep(ms: u32) {
    let _ = wait(bootstrap::sleep(ms)).await;
}

/// Runs `f` once `promise` settles, fulfilled or rejected.
pub fn on_settled(promise: &Promise, f: impl FnOnce() + 'static) {
    let promise = promise.clone();
    spawn(async move {
        let _ = wait(promise).await;
        f()
    });
}

/// A promise of a clone of the `Response` `promise` resolves to (a
/// rejection passes through): several readers of one answer, each with its
/// own body. The bootstrap's `outpostCloned`: a line of script where Rust
/// closures for `then` cost the wasm about 1 KB.
pub fn cloned_response(promise: &Promise) -> Promise {
    bootstrap::cloned(promise)
}

/// How a fetch with a deadline ended.
pub enum Fetched {
    Answer(Response),
    /// No answer at all: offline, refused, reset (or the request could not
    /// even be made).
    Nothing,
    /// Sent, but not answered within the deadline (then aborted).
    TimedOut,
}

impl Fetched {
    /// What the retry clock hears of it.
    pub fn heard(&self) -> Heard {
        match self {
            Fetched::Answer(r) => Heard::Status(r.status()),
            Fetched::Nothing => Heard::Nothing,
            Fetched::TimedOut => Heard::TimedOut,
        }
    }

    pub fn response(&self) -> Option<&Response> {
        match self {
            Fetched::Answer(r) => Some(r),
            Fetched::Nothing | Fetched::TimedOut => None,
        }
    }
}

/// A fetch that is aborted after `timeout_ms`. `make` builds the request
/// (with the signal that aborts it) at once; what is awaited is the same
/// future for every caller, so the fetch and its timeout (the bootstrap's
/// `outpostFetchWithin`) are compiled once, not once per caller's `make`
/// (five callers: 1,671 B of wasm raw, 667 B gzip).
pub fn fetch_within(
    make: impl FnOnce(&web_sys::AbortSignal) -> Result<Request>,
    timeout_ms: u32,
) -> impl std::future::Future<Output = Fetched> {
    let controller: web_sys::AbortController = shared::NewAbortController::new().unchecked_into();
    let made = match make(&controller.signal()) {
        Ok(request) => Some((controller, request)),
        Err(e) => {
            log_error("a request could not be made", &e);
            None
        }
    };
    send_within(made, timeout_ms)
}

async fn send_within(made: Option<(web_sys::AbortController, Request)>, timeout_ms: u32) -> Fetched {
    let Some((controller, request)) = made else { return Fetched::Nothing };
    let result = wait(bootstrap::fetch_within(&request, &controller, timeout_ms)).await;
    match result {
        Ok(r) => Fetched::Answer(r.unchecked_into()),
        Err(_) if controller.signal().aborted() => Fetched::TimedOut,
        Err(_) => Fetched::Nothing,
    }
}

/// The end of a fetch raced against a timer.
pub enum Raced {
    Answer(Response),
    /// No answer: offline, refused, reset.
    Failed,
    /// The timer won; the fetch goes on and can still be awaited.
    Late(Promise),
}

/// Waits for a started fetch's answer, but at most `timeout_ms`.
pub async fn race(fetch: Promise, timeout_ms: u32) -> Raced {
    let timer = bootstrap::sleep(timeout_ms);
    let race = Promise::race(&js_sys::Array::of2(&fetch, &timer));
    match wait(race).await {
        // The timer resolves to `undefined`, a fetch to a `Response`.
        Ok(v) if !v.is_undefined() => Raced::Answer(v.unchecked_into()),
        Ok(_) => Raced::Late(fetch),
        Err(_) => Raced::Failed,
    }
}

/// Waits for a fetch the timer gave up on.
pub async fn answer_of(late: Promise) -> Option<Response> {
    wait(late).await.ok().map(JsCast::unchecked_into)
}

/// A response's whole body.
pub async fn body_bytes(response: &Response) -> Result<Vec<u8>> {
    let buffer = wait(array_buffer(response)?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Every header, as `(lowercase name, value)`, through `Array.from`
/// (js_sys's iterator protocol was about 1 KB of the wasm).
pub fn headers_of(headers: &web_sys::Headers) -> Vec<(String, String)> {
    let pairs = js_sys::Array::from(headers);
    let mut out = Vec::with_capacity(pairs.length() as usize);
    for i in 0..pairs.length() {
        let pair: js_sys::Array = pairs.get(i).unchecked_into();
        out.push((pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default()));
    }
    out
}

/// `navigator.storage.estimate()`: `(usage, quota)` in bytes, where the
/// browser tells.
pub async fn storage_estimate() -> Option<(f64, f64)> {
    let value: js_sys::Array = wait(bootstrap::estimate()).await.ok()?.dyn_into().ok()?;
    Some((value.get(0).as_f64()?, value.get(1).as_f64()?))
}

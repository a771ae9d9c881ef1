//! The worker's own small executor: tasks, promises of tasks, and promises
//! awaited, in place of wasm-bindgen-futures. That crate handed each
//! awaited promise two Rust closures behind an `Rc<RefCell<…>>`, made a
//! promise of a task through a Rust closure for the `Promise` executor, and
//! found `queueMicrotask` through a lookup of the global object; what it
//! compiled into the wasm, and the glue its closures and lookups needed,
//! weighed more than what the worker asks of it, which is this:
//!
//! - `spawn`: a task polled in a microtask, again each time it is woken,
//!   until it returns;
//! - `promise`: a task whose result settles a JS promise (the bootstrap's
//!   `outpostDeferred`);
//! - `wait`: a JS promise awaited. The bootstrap's `outpostWait` calls its
//!   `then` and hands the outcome to `outpostSettled`, which keeps it in a
//!   slot and wakes the task; the future is the slot's number, and polling
//!   it is one call. A `Wait` is awaited where it is made
//!   (`wait(p).await`), never kept or dropped before it returns, so it has
//!   no drop code either (about 15 B at each of some 40 places that await
//!   one). One dropped unsettled would keep its slot, and the value it
//!   settles with, for the rest of the worker's life; the promise itself is
//!   what may be held or dropped (`db::get_many` makes its requests first
//!   and waits for each after).
//!
//! The worker is one thread (wasm32 without atomics), and nothing here is
//! reentered: JS calls `outpostRun` and `outpostSettled` from microtasks
//! and promise reactions, never from inside a call the wasm made. Each
//! function takes what it changes out of its list before it polls, drops
//! or wakes anything (a dropped waker can drop a task, and with it a
//! `Wait`).

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::global::{bootstrap, Work};

/// A value only this thread touches (see the module's doc).
pub(super) struct Local<T>(UnsafeCell<T>);
// SAFETY: wasm32 without atomics has one thread.
unsafe impl<T> Sync for Local<T> {}

impl<T> Local<T> {
    pub const fn new(value: T) -> Local<T> {
        Local(UnsafeCell::new(value))
    }

    /// SAFETY: the caller holds no other reference from `get` while it
    /// uses this one (each use here is one statement or one `replace`).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        &mut *self.0.get()
    }
}

struct Task {
    /// `None` once it has returned.
    work: UnsafeCell<Option<Work<()>>>,
    /// In `QUEUE` already: a second wake before it runs changes nothing.
    queued: Cell<bool>,
}

/// Tasks woken since the last run.
static QUEUE: Local<Vec<Rc<Task>>> = Local::new(Vec::new());
/// A run is asked for (`outpostTick`) and has not started yet.
static SCHEDULED: Local<bool> = Local::new(false);

/// Runs `work` in the background, from a microtask on.
pub fn spawn(work: Work<()>) {
    let task = Rc::new(Task { work: UnsafeCell::new(Some(work)), queued: Cell::new(false) });
    enqueue(task);
}

/// A promise of `work`'s result: fulfilled with its value, or rejected with
/// its error as a JS `Error`.
pub fn promise(work: Work) -> Promise {
    let parts = bootstrap::deferred();
    let (resolve, reject): (js_sys::Function, js_sys::Function) =
        (parts.get(1).unchecked_into(), parts.get(2).unchecked_into());
    spawn(super::global::work(async move {
        match work.await {
            Ok(v) => super::global::settle(&resolve, &v),
            Err(e) => super::global::settle(&reject, &JsValue::from(e)),
        }
    }));
    parts.get(0).unchecked_into()
}

fn enqueue(task: Rc<Task>) {
    if task.queued.replace(true) {
        return;
    }
    // SAFETY: see `Local::get`.
    unsafe { QUEUE.get() }.push(task);
    if !std::mem::replace(unsafe { SCHEDULED.get() }, true) {
        bootstrap::tick();
    }
}

/// Polls every task woken so far, and those they wake, until none is left
/// (the bootstrap's `outpostTick` calls it from a microtask).
#[wasm_bindgen(js_name = outpostRun)]
pub fn run() {
    // SAFETY: see `Local::get`.
    unsafe { *SCHEDULED.get() = false };
    loop {
        let woken = std::mem::take(unsafe { QUEUE.get() });
        if woken.is_empty() {
            return;
        }
        for task in &woken {
            task.queued.set(false);
            let waker = waker(task);
            // SAFETY: only `run` touches a task's work, and `run` is not
            // reentered.
            let slot = unsafe { &mut *task.work.get() };
            if let Some(work) = slot.as_mut() {
                if work.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                    // Our futures hold nothing once returned (`Whole`):
                    // this frees the box.
                    *slot = None;
                }
            }
        }
    }
}

fn waker(task: &Rc<Task>) -> Waker {
    // SAFETY: the vtable's functions treat the pointer as the `Rc` it came
    // from, each count taken once and given back once.
    unsafe { Waker::from_raw(raw(Rc::clone(task))) }
}

fn raw(task: Rc<Task>) -> RawWaker {
    RawWaker::new(Rc::into_raw(task).cast(), &VTABLE)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(
    |p| {
        // SAFETY: `p` is a counted `Rc<Task>` (see `waker`).
        let task = std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(p.cast::<Task>()) });
        raw(Rc::clone(&task))
    },
    |p| enqueue(unsafe { Rc::from_raw(p.cast::<Task>()) }),
    |p| {
        let task = std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(p.cast::<Task>()) });
        enqueue(Rc::clone(&task))
    },
    |p| drop(unsafe { Rc::from_raw(p.cast::<Task>()) }),
);

/// A JS promise awaited (`wait`): the number of its slot.
pub struct Wait(u32);

enum Slot {
    Free,
    /// Not settled yet; the task to wake, once polled.
    Waiting(Option<Waker>),
    Done(Result<JsValue, JsValue>),
}

static SLOTS: Local<Vec<Slot>> = Local::new(Vec::new());

/// Slot `n` replaced by `with`; what it held.
fn swap(n: u32, with: Slot) -> Slot {
    // SAFETY: see `Local::get`.
    std::mem::replace(&mut unsafe { SLOTS.get() }[n as usize], with)
}

/// Awaits `promise`: its value, or what it was rejected with.
#[inline(never)]
pub fn wait(promise: Promise) -> Wait {
    // SAFETY: see `Local::get`.
    let slots = unsafe { SLOTS.get() };
    let n = match slots.iter().position(|s| matches!(s, Slot::Free)) {
        Some(n) => n,
        None => {
            slots.push(Slot::Free);
            slots.len() - 1
        }
    };
    slots[n] = Slot::Waiting(None);
    bootstrap::wait(&promise, n as u32);
    Wait(n as u32)
}

/// How the promise of `slot` settled (the bootstrap's `outpostWait`).
#[wasm_bindgen(js_name = outpostSettled)]
pub fn settled(slot: u32, fulfilled: bool, value: JsValue) {
    let outcome = if fulfilled { Ok(value) } else { Err(value) };
    if let Slot::Waiting(Some(task)) = swap(slot, Slot::Done(outcome)) {
        task.wake();
    }
}

impl Future for Wait {
    type Output = Result<JsValue, JsValue>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_slot(self.0, cx)
    }
}

#[inline(never)]
fn poll_slot(n: u32, cx: &mut Context<'_>) -> Poll<Result<JsValue, JsValue>> {
    match swap(n, Slot::Free) {
        // Taken: the slot stays free for the next `wait`.
        Slot::Done(outcome) => Poll::Ready(outcome),
        // Not yet: this task is the one to wake (the waker it replaces is
        // dropped after the list is let go).
        _ => {
            swap(n, Slot::Waiting(Some(cx.waker().clone())));
            Poll::Pending
        }
    }
}

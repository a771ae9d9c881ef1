//! The worker's one retry timer, shared by the outbox and the uploads. Each
//! part reports, after every pass, when it must wake next and whether it
//! waits for the network; the clock keeps a single `setTimeout` at the
//! earliest of those (and of a deferred hint), runs the parts when it fires,
//! and tells pages when that is (`{type: "wake", at}` on the channel), so
//! an open page can wake a worker the browser stopped meanwhile. What is
//! due, and how hints are spaced, is the core's (`core::clock`).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;

use super::events::Events;
use super::global;
use super::task::Local;
use crate::core::clock::{earliest, HintGate, Trigger, Wakes};
use crate::core::protocol::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Outbox = 0,
    Uploads = 1,
}

const PARTS: [Part; 2] = [Part::Outbox, Part::Uploads];

/// A pending `setTimeout` (the bootstrap's `outpostTimer`).
struct Timer {
    handle: i32,
    at: u64,
}

/// The clock the timer fires (`outpostFired`). A worker makes one `Outpost`,
/// so one clock; the timer reaches it through this instead of a Rust
/// closure handed to `setTimeout` (the last closure the wasm made: its
/// shims, its drop and the glue that keeps it cost more than this).
static CLOCK: Local<Option<Weak<Clock>>> = Local::new(None);

/// The retry timer fired (the bootstrap's `outpostTimer`).
#[wasm_bindgen(js_name = outpostFired)]
pub fn fired() {
    // SAFETY: one statement (see `Local::get`).
    let clock = unsafe { CLOCK.get() }.as_ref().and_then(Weak::upgrade);
    if let Some(clock) = clock {
        clock.fire();
    }
}

type Run = Box<dyn Fn(Part, Trigger)>;

pub struct Clock {
    wakes: RefCell<Wakes<2>>,
    gate: RefCell<HintGate>,
    timer: RefCell<Option<Timer>>,
    /// The wake last told to pages (None: not told yet in this worker).
    told: Cell<Option<Option<u64>>>,
    run: RefCell<Option<Run>>,
    events: Events,
}

impl Clock {
    pub fn new() -> Rc<Clock> {
        let clock = Rc::new(Clock {
            wakes: RefCell::new(Wakes::new()),
            gate: RefCell::new(HintGate::default()),
            timer: RefCell::new(None),
            told: Cell::new(None),
            run: RefCell::new(None),
            events: Events::new(),
        });
        // SAFETY: one statement (see `Local::get`).
        *unsafe { CLOCK.get() } = Some(Rc::downgrade(&clock));
        clock
    }

    /// What runs a part's pass (set once, when the parts exist).
    pub fn on_run(&self, run: Run) {
        *self.run.borrow_mut() = Some(run);
    }

    /// A pass of `part` begins (before it reads what it holds): pages are
    /// told to wake the worker soon, should it be stopped before it ends.
    pub fn begin(self: &Rc<Self>, part: Part) {
        self.wakes.borrow_mut().begin(part as usize, global::now_ms());
        self.tell();
    }

    /// After a pass: the part's next due time and whether it waits for the
    /// network (merged with items stored while the pass ran).
    pub fn report(self: &Rc<Self>, part: Part, at: Option<u64>, silent: bool) {
        self.wakes.borrow_mut().report(part as usize, at, silent);
        self.rearm();
        self.tell();
    }

    /// A new item of `part` is due at `at`: an earlier wake stays.
    pub fn due_by(self: &Rc<Self>, part: Part, at: u64, silent: bool) {
        self.wakes.borrow_mut().due_by(part as usize, at, silent);
        self.rearm();
        self.tell();
    }

    /// When the worker wakes next for a due item (None: nothing pending).
    pub fn next(&self) -> Option<u64> {
        self.wakes.borrow().next()
    }

    /// When pages are to wake the worker (`core::clock::Wakes::told`): the
    /// next due item, or soon while a pass runs.
    pub fn told(&self) -> Option<u64> {
        self.wakes.borrow().told()
    }

    /// The origin answered, or a page said the network is back: parts that
    /// wait for the network get a pass, spaced by the core's hint gate.
    /// `from`: the part whose own request answered, which goes on by itself.
    pub fn hint(self: &Rc<Self>, from: Option<Part>) {
        // On every answered read: nothing to do unless something waits.
        if !PARTS.iter().any(|p| self.wakes.borrow().silent(*p as usize)) {
            return;
        }
        let waiting = self.waiting(from);
        if waiting.is_empty() {
            return;
        }
        if self.gate.borrow_mut().hint(global::now_ms()) {
            self.run_parts(&waiting, Trigger::Hint);
        } else {
            self.rearm();
        }
    }

    fn waiting(&self, except: Option<Part>) -> Vec<Part> {
        let wakes = self.wakes.borrow();
        let mut parts = Vec::new();
        for p in PARTS {
            if wakes.silent(p as usize) && Some(p) != except {
                parts.push(p);
            }
        }
        parts
    }

    fn run_parts(&self, parts: &[Part], trigger: Trigger) {
        // A part that runs reports its next wake when its pass ends; until
        // then it asks for none, so the timer cannot fire again for it.
        for p in parts {
            self.wakes.borrow_mut().running(*p as usize);
        }
        if let Some(run) = &*self.run.borrow() {
            for p in parts {
                run(*p, trigger);
            }
        }
    }

    /// One timer, at the earliest due item or deferred hint.
    fn rearm(self: &Rc<Self>) {
        let at = earliest(&[self.next(), self.gate.borrow().deferred_at()]);
        if self.timer.borrow().as_ref().map(|t| t.at) == at {
            return;
        }
        if let Some(old) = self.timer.borrow_mut().take() {
            global::clear_timeout(old.handle);
        }
        let Some(at) = at else { return };
        let handle = global::set_timer(at.saturating_sub(global::now_ms()));
        *self.timer.borrow_mut() = Some(Timer { handle, at });
    }

    fn fire(self: &Rc<Self>) {
        self.timer.borrow_mut().take();
        let now = global::now_ms();
        if self.gate.borrow_mut().fire(now) {
            self.run_parts(&self.waiting(None), Trigger::Hint);
        }
        let mut due = Vec::new();
        for p in PARTS {
            if self.wakes.borrow().of(p as usize).is_some_and(|at| at <= now) {
                due.push(p);
            }
        }
        self.run_parts(&due, Trigger::Scheduled);
        self.rearm();
    }

    /// Tells pages the next wake, when it changed.
    fn tell(&self) {
        let next = self.told();
        if self.told.get() == Some(next) {
            return;
        }
        self.told.set(Some(next));
        self.events.emit(Event::Wake, crate::core::json::obj! { "at": next });
    }
}

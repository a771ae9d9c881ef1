//! One pass at a time for a part of the worker (the outbox, the uploads): a
//! trigger that arrives while a pass runs makes it go round once more, with
//! the strongest trigger seen meanwhile, and its caller waits for that.

use super::error::Result;
use std::cell::{Cell, RefCell};

use js_sys::Function;
use wasm_bindgen::JsValue;

use super::global::Work;
use crate::core::clock::Trigger;

#[derive(Default)]
pub struct Runner {
    running: Cell<bool>,
    again: Cell<Option<Trigger>>,
    /// Resolvers of callers waiting for the running pass to go round.
    waiting: RefCell<Vec<Function>>,
}

impl Runner {
    /// Runs `pass(trigger)`, or joins the pass already running.
    /// `pass` hands back a boxed future, so this is compiled once for both
    /// parts rather than once per part's closure.
    pub async fn run(&self, trigger: Trigger, pass: &dyn Fn(Trigger) -> Work<Result<()>>) -> Result<()> {
        if self.running.get() {
            self.again.set(Some(self.again.get().map_or(trigger, |t| t.max(trigger))));
            let done = super::global::deferred();
            self.waiting.borrow_mut().push(done.resolve);
            crate::web::global::wait(done.promise).await?;
            return Ok(());
        }
        self.running.set(true);
        let mut trigger = trigger;
        let result = loop {
            if let Err(e) = pass(trigger).await {
                break Err(e);
            }
            match self.again.take() {
                Some(t) => trigger = t,
                None => break Ok(()),
            }
        };
        self.again.set(None);
        self.running.set(false);
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for resolve in &waiting {
            super::global::settle(resolve, &JsValue::UNDEFINED);
        }
        result
    }
}

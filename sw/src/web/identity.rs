//! The current user, kept in memory and in IndexedDB (`meta` key `user`)
//! so a restarted worker still knows whose data it holds. What an answer
//! means is decided by `core::identity`.

use super::error::Result;
use super::global::Whole;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::web::db::Db;
use wasm_bindgen::JsValue;

use super::db;
use crate::core::identity::{self, Learned};
use crate::core::text::cat;

const KEY: &str = "user";
/// Set while a logout has not reached the origin yet.
const LOGOUT_KEY: &str = "logout-pending";

pub struct Identity {
    db: Rc<Db>,
    user: RefCell<Option<String>>,
    /// Whether any answer has ever said who is logged in (or that nobody
    /// is), in this worker or an earlier one.
    known: Cell<bool>,
    /// Bumped at every change: work started for one user can tell that the
    /// user changed before it finished.
    generation: Cell<u64>,
    /// Logins and logouts under way: replays and uploads stop before their
    /// next request, so nothing of one user goes with the next user's cookie.
    switching: Cell<u32>,
    /// Called after every change.
    listeners: RefCell<Vec<Box<dyn Fn()>>>,
    /// A logout was made without reaching the origin: the session cookie
    /// (HttpOnly, out of the worker's reach) is still the old user's, so
    /// nothing may go out before the logout does.
    logout_pending: Cell<bool>,
    /// This config's cold-read table (`core::route::cold_reads`), kept for
    /// the next start's bootstrap only while no logout is owed.
    cold_reads: String,
}

fn decode(stored: Option<String>) -> (bool, Option<String>) {
    // Stored as "u:<id>" for a user and "-" for nobody.
    let user = stored.as_deref().and_then(|s| s.strip_prefix("u:")).map(str::to_string);
    (stored.is_some(), user)
}

impl Identity {
    pub async fn load(db: Rc<Db>, cold_reads: String) -> Result<Identity> {
        // One transaction for both: a cold start waits for this before its
        // first answer.
        let [user, logout] = db::get_many(&db, db::META, [KEY, LOGOUT_KEY]).whole().await?;
        let (known, user) = decode(user.and_then(|v| v.as_string()));
        let logout_pending = logout.and_then(|v| v.as_string()).is_some();
        Ok(Identity {
            logout_pending: Cell::new(logout_pending),
            cold_reads,
            db,
            user: RefCell::new(user),
            known: Cell::new(known),
            generation: Cell::new(0),
            switching: Cell::new(0),
            listeners: RefCell::new(Vec::new()),
        })
    }

    pub fn current(&self) -> Option<String> {
        self.user.borrow().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Whether a login or logout is under way.
    pub fn switching(&self) -> bool {
        self.switching.get() > 0
    }

    pub fn begin_switch(&self) {
        self.switching.set(self.switching.get() + 1);
    }

    pub fn end_switch(&self) {
        self.switching.set(self.switching.get().saturating_sub(1));
    }

    pub fn on_change(&self, f: Box<dyn Fn()>) {
        self.listeners.borrow_mut().push(f);
    }

    /// Reads the user again from IndexedDB: another worker instance (an
    /// update rolling out) may have seen a login this one did not.
    /// A change this instance made while the read was under way is newer
    /// than what the read found: a pass that began reading just before a
    /// login was applied would otherwise put the previous user back.
    pub async fn reload(&self) -> Result<()> {
        let generation = self.generation.get();
        let (known, user) = decode(db::get(&self.db, db::META, KEY).whole().await?.and_then(|v| v.as_string()));
        if known && user != self.current() && self.generation.get() == generation {
            self.set(user);
        }
        Ok(())
    }

    fn set(&self, user: Option<String>) {
        self.known.set(true);
        self.user.replace(user);
        self.generation.set(self.generation.get() + 1);
        for f in self.listeners.borrow().iter() {
            f();
        }
    }

    /// Applies what an answer says; returns whether the user changed. The
    /// change takes effect in memory before it is written, so no request
    /// can go out for the old user meanwhile. `sent_at`: the generation when
    /// the answer's request went out. An answer to a request sent before the
    /// user last changed here speaks of the session as it was then (a read
    /// sent as bob, answered after alice logged in; a 401 to bob's upload
    /// call): it is not applied. A login's or logout's own answer passes the
    /// generation of now: it is the change.
    pub async fn apply(&self, learned: &Learned, sent_at: u64) -> Result<bool> {
        if self.generation.get() != sent_at {
            return Ok(false);
        }
        let first = !self.known.get() && *learned != Learned::Nothing;
        let next = identity::next(self.user.borrow().as_deref(), learned);
        if next.is_none() && !first {
            return Ok(false);
        }
        let to = next.clone().unwrap_or_else(|| self.current());
        let changed = next.is_some();
        if changed {
            self.set(to.clone());
        } else {
            self.known.set(true);
        }
        let value = match &to {
            Some(u) => cat!("u:", u),
            None => "-".into(),
        };
        db::put_all(&self.db, &[(db::META, KEY, JsValue::from_str(&value))]).whole().await?;
        Ok(changed)
    }

    /// Learns the user an answer names (`Outpost-User`), if it names one:
    /// the origin knows who is logged in better than any guess, including
    /// after a login this worker did not see (`sent_at` as for `apply`).
    pub async fn observe(&self, answer: &web_sys::Response, sent_at: u64) -> Result<()> {
        let named = super::global::header(&answer.headers(), identity::USER_HEADER);
        let learned = identity::from_header(named.as_deref());
        if learned != Learned::Nothing {
            self.apply(&learned, sent_at).whole().await?;
        }
        Ok(())
    }

    pub fn logout_pending(&self) -> bool {
        self.logout_pending.get()
    }

    /// Records whether a logout still has to reach the origin. The next
    /// start's bootstrap answers reads from the network before it could
    /// know (`allow_cold_reads`): that stops before the debt is written,
    /// and starts again only once it is cleared, so a debt on record never
    /// has the table beside it. Runs under the outbox lock (`auth`). Both
    /// are written whatever this instance believed: another instance may
    /// have paid or made a debt since.
    pub async fn set_logout_pending(&self, pending: bool) -> Result<()> {
        self.logout_pending.set(pending);
        if pending {
            if let Err(e) = super::global::cold_reads(None).whole().await {
                // Cache Storage refused a delete: the debt is still
                // written, and the next start deletes the table once its
                // wasm reads the debt, but that start's first reads may
                // have gone out with the table. Logged, as nothing else
                // can be done here.
                super::global::log_error("could not stop cold reads", &e);
            }
            db::put_all(&self.db, &[(db::META, LOGOUT_KEY, JsValue::from_str("1"))]).whole().await
        } else {
            db::delete_keys(&self.db, &[db::META], &[LOGOUT_KEY.to_string()]).whole().await?;
            // Without the table the next start only waits for its wasm.
            if let Err(e) = super::global::cold_reads(Some(self.cold_reads.clone())).whole().await {
                super::global::log_error("could not keep the cold-read table", &e);
            }
            Ok(())
        }
    }

    /// At each start, under the outbox lock: the table for the next cold
    /// start while no logout is owed, as IndexedDB says now (another
    /// worker instance may have logged out since this one loaded), and
    /// none while one is.
    pub async fn allow_cold_reads(&self) -> Result<()> {
        let owed = db::get(&self.db, db::META, LOGOUT_KEY).whole().await?.is_some();
        super::global::cold_reads((!owed).then(|| self.cold_reads.clone())).whole().await
    }
}

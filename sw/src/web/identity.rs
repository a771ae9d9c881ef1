//! The current user, kept in memory and in IndexedDB (`meta` key `user`)
//! so a restarted worker still knows whose data it holds. What an answer
//! means is decided by `core::identity`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rexie::Rexie;
use wasm_bindgen::JsValue;

use super::db;
use crate::core::identity::{self, Learned};

const KEY: &str = "user";

pub struct Identity {
    db: Rc<Rexie>,
    user: RefCell<Option<String>>,
    /// Whether any answer has ever said who is logged in (or that nobody
    /// is), in this worker or an earlier one.
    known: Cell<bool>,
}

/// A change of user.
pub struct Change {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Identity {
    pub async fn load(db: Rc<Rexie>) -> Result<Identity, JsValue> {
        // Stored as "u:<id>" for a user and "-" for nobody.
        let stored = db::get(&db, db::META, KEY).await?.and_then(|v| v.as_string());
        let user = stored.as_deref().and_then(|s| s.strip_prefix("u:")).map(str::to_string);
        Ok(Identity { db, user: RefCell::new(user), known: Cell::new(stored.is_some()) })
    }

    pub fn current(&self) -> Option<String> {
        self.user.borrow().clone()
    }

    pub fn known(&self) -> bool {
        self.known.get()
    }

    /// Applies what an answer says; returns the change, if any.
    pub async fn apply(&self, learned: &Learned) -> Result<Option<Change>, JsValue> {
        let first = !self.known.get() && *learned != Learned::Nothing;
        let next = identity::next(self.user.borrow().as_deref(), learned);
        if next.is_none() && !first {
            return Ok(None);
        }
        let to = next.clone().unwrap_or_else(|| self.current());
        let value = match &to {
            Some(u) => format!("u:{u}"),
            None => "-".into(),
        };
        db::put_all(&self.db, &[(db::META, KEY, JsValue::from_str(&value))]).await?;
        self.known.set(true);
        let from = self.user.replace(to.clone());
        Ok(next.map(|_| Change { from, to }))
    }
}

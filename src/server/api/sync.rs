//! The metadata-first login sync: everything a client needs to draw its
//! lists, in one round trip, without any blob.
//!
//! At login a user's tabs and devices ask for it at once (a thundering
//! herd). Identical requests of one user share database reads: one read
//! runs at a time per user, and a request that arrived before a read began
//! takes that read's answer instead of making its own. A request never gets
//! an answer read before it arrived, so a write acknowledged before it (by
//! any instance) is always in it. 200 at once cost two reads: the first,
//! and one for everyone who arrived while it ran.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{assets, chat, projects};
use crate::server::extract::User;
use crate::server::{AppError, AppState};

/// Sessions sent by `sync/init`: the most recently updated ones.
pub const RECENT_SESSIONS: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/sync/init", get(init))
}

/// The reads in flight, per user.
#[derive(Default)]
pub struct Flights {
    users: Mutex<HashMap<String, Arc<UserFlight>>>,
    /// Database reads made, for the tests and the benchmark.
    reads: AtomicU64,
}

#[derive(Default)]
struct UserFlight {
    /// Arrivals so far: each request takes the next number.
    arrivals: AtomicU64,
    /// The last answer, with the number of the last arrival before its read
    /// began. Locked for the whole of a read: one at a time.
    last: tokio::sync::Mutex<Option<(u64, Value)>>,
}

impl Flights {
    /// Database reads made so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    async fn get<F, Fut>(&self, user_id: &str, read: F) -> Result<Value, AppError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value, AppError>>,
    {
        let flight = Arc::clone(self.users.lock().expect("not poisoned").entry(user_id.to_string()).or_default());
        // Removes the user's entry (and its answer) when the last request
        // out is done, however it ends (a client that hangs up included).
        let guard = Leave { flights: self, user_id, flight: Some(flight) };
        let flight = guard.flight.as_ref().expect("set above");
        let ticket = flight.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        let result = {
            let mut last = flight.last.lock().await;
            match &*last {
                Some((covers, value)) if *covers >= ticket => Ok(value.clone()),
                _ => {
                    let covers = flight.arrivals.load(Ordering::SeqCst);
                    self.reads.fetch_add(1, Ordering::Relaxed);
                    let value = read().await;
                    *last = value.as_ref().ok().map(|v| (covers, v.clone()));
                    value
                }
            }
        };
        drop(guard);
        result
    }
}

struct Leave<'a> {
    flights: &'a Flights,
    user_id: &'a str,
    flight: Option<Arc<UserFlight>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut users = self.flights.users.lock().expect("not poisoned");
        // Our reference goes under the lock: then the map's is the last one
        // exactly when no request of this user is in flight.
        drop(self.flight.take());
        if users.get(self.user_id).is_some_and(|f| Arc::strong_count(f) == 1) {
            users.remove(self.user_id);
        }
    }
}

async fn init(State(state): State<AppState>, user: User) -> Result<Json<Value>, AppError> {
    let read = || read_init(&state, &user.id);
    if state.api.settings.sync_coalescing {
        Ok(Json(state.api.sync_flights.get(&user.id, read).await?))
    } else {
        state.api.sync_flights.reads.fetch_add(1, Ordering::Relaxed);
        Ok(Json(read().await?))
    }
}

async fn read_init(state: &AppState, user_id: &str) -> Result<Value, AppError> {
    let db = &state.api.db;
    let name: Option<(String,)> =
        db.fetch_optional(crate::db::query_as("SELECT name FROM users WHERE id = $1").bind(user_id)).await?;
    let (name,) = name.ok_or(AppError::Unauthenticated)?;
    let sessions = chat::sessions_of(db, user_id, RECENT_SESSIONS).await?;
    let projects = projects::projects_of(db, user_id).await?;
    let assets = assets::assets_of(db, user_id).await?;
    Ok(json!({
        "user": { "id": user_id, "name": name },
        "sessions": sessions,
        "projects": projects,
        "assets": assets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_herd_shares_reads_but_never_gets_an_answer_older_than_itself() {
        let flights = Arc::new(Flights::default());
        let version = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let read = |flights: Arc<Flights>, version: Arc<AtomicU64>, gate: Arc<tokio::sync::Semaphore>| async move {
            flights
                .get("u1", || async move {
                    // The read sees the version current when it begins.
                    let seen = version.load(Ordering::SeqCst);
                    gate.acquire().await.unwrap().forget();
                    Ok(json!(seen))
                })
                .await
                .unwrap()
        };
        // The first request starts a read and holds it open.
        let first = tokio::spawn(read(flights.clone(), version.clone(), gate.clone()));
        tokio::task::yield_now().await;
        while flights.reads() == 0 {
            tokio::task::yield_now().await;
        }
        // A write is acknowledged, then 50 more requests arrive.
        version.store(1, Ordering::SeqCst);
        let herd: Vec<_> =
            (0..50).map(|_| tokio::spawn(read(flights.clone(), version.clone(), gate.clone()))).collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(100);
        assert_eq!(first.await.unwrap(), json!(0));
        for h in herd {
            // Every later arrival sees the write.
            assert_eq!(h.await.unwrap(), json!(1));
        }
        assert_eq!(flights.reads(), 2, "one read, then one for all who came during it");
        assert!(flights.users.lock().unwrap().is_empty(), "nothing is kept once the herd is served");
    }
}

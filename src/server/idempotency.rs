//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header).
//!
//! A write with a key first *claims* it: a `pending` row with a lease,
//! committed on its own so that a concurrent repeat sees it (→ 409). The
//! write then runs in its own transaction, which also turns the row into
//! `done` with the response — so a crash can never apply a write without
//! recording its key. A failed write releases the claim. A `pending` row
//! whose lease ran out (its server died mid-write, so the write's
//! transaction never committed) may be claimed again.

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use super::AppError;
use crate::db::{is_unique_violation, Db};

pub const HEADER: &str = "idempotency-key";
/// How long a claim may stay pending before another request may take it.
pub const LEASE_MS: i64 = 60_000;

/// What a claim found.
pub enum Claim {
    /// No key was sent: just do the write.
    None,
    /// The key is ours: do the write, then `complete` in its transaction.
    /// `lease_until` identifies this claim: a claim taken over after its
    /// lease ran out must not complete (or release) the newcomer's.
    Fresh { user_id: String, key: String, lease_until: i64 },
    /// The key completed before: send this stored response again.
    Replay(StatusCode, serde_json::Value),
}

/// The request's fingerprint: method, path and body. The same key with
/// another fingerprint is a client bug (422).
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    crate::hex::encode(&h.finalize())
}

/// The key from the headers, checked: 1 to 255 visible ASCII characters.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(raw) = headers.get(HEADER) else { return Ok(None) };
    let key = raw
        .to_str()
        .ok()
        .map(|k| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| {
            AppError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
        })?;
    Ok(Some(key.to_string()))
}

/// A stored key's row: fingerprint, state, lease_until, status, body,
/// created_at, in the order `claim` selects them.
type StoredKey = (String, String, i64, Option<i32>, Option<String>, i64);

/// Claims `key` for `user_id`, or says why not.
pub async fn claim(
    db: &Db,
    user_id: &str,
    key: Option<String>,
    fingerprint: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<Claim, AppError> {
    let Some(key) = key else { return Ok(Claim::None) };
    // Two rounds at most: the second after clearing an expired or
    // abandoned row.
    for _ in 0..2 {
        let inserted = db
            .execute(
                crate::db::query(
                    "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, state, lease_until, created_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5)",
                )
                .bind(user_id)
                .bind(&key)
                .bind(fingerprint)
                .bind(now + LEASE_MS)
                .bind(now),
            )
            .await;
        match inserted {
            Ok(_) => return Ok(Claim::Fresh { user_id: user_id.into(), key, lease_until: now + LEASE_MS }),
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let row: Option<StoredKey> = db
            .fetch_optional(
                crate::db::query_as(
                    "SELECT fingerprint, state, lease_until, status, body, created_at FROM idempotency_keys \
             WHERE user_id = $1 AND idem_key = $2",
                )
                .bind(user_id)
                .bind(&key),
            )
            .await?;
        let Some((stored_fp, state, lease_until, status, body, created_at)) = row else {
            continue; // deleted in between: try to insert again
        };
        let expired = created_at + ttl_ms <= now;
        let abandoned = state == "pending" && lease_until <= now;
        if expired || abandoned {
            // Compare-and-delete, so two requests cannot both take it over.
            db.execute(crate::db::query(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND state = $3 AND lease_until = $4",
            )
            .bind(user_id)
            .bind(&key)
            .bind(&state)
            .bind(lease_until))
            .await?;
            continue;
        }
        if stored_fp != fingerprint {
            return Err(AppError::unprocessable(
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a new request.",
            ));
        }
        if state == "pending" {
            return Err(AppError::conflict(
                "request_in_progress",
                "A request with this Idempotency-Key is still being processed; retry later.",
            ));
        }
        let status = StatusCode::from_u16(status.unwrap_or(200) as u16).unwrap_or(StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(body.as_deref().unwrap_or("null")).unwrap_or_default();
        return Ok(Claim::Replay(status, body));
    }
    Err(AppError::conflict("request_in_progress", "The Idempotency-Key is contended; retry later."))
}

impl Claim {
    /// Records the response in the write's transaction.
    pub async fn complete(
        &self,
        tx: &mut Transaction<'static, Any>,
        status: StatusCode,
        body: &serde_json::Value,
    ) -> Result<(), AppError> {
        if let Claim::Fresh { user_id, key, lease_until } = self {
            let done = crate::db::query(
                "UPDATE idempotency_keys SET state = 'done', status = $1, body = $2 \
                 WHERE user_id = $3 AND idem_key = $4 AND state = 'pending' AND lease_until = $5",
            )
            .bind(status.as_u16() as i32)
            .bind(body.to_string())
            .bind(user_id)
            .bind(key)
            .bind(*lease_until)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() != 1 {
                // Our lease ran out and another request took the key over:
                // this write must not apply as well (the caller rolls back).
                return Err(AppError::conflict(
                    "request_in_progress",
                    "This request took too long and was superseded by a retry with the same Idempotency-Key.",
                ));
            }
        }
        Ok(())
    }

    /// Gives the key back after a failed write, so a retry can run.
    pub async fn release(&self, db: &Db) {
        if let Claim::Fresh { user_id, key, lease_until } = self {
            let released = db.execute(crate::db::query(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND state = 'pending' AND lease_until = $3",
            )
                .bind(user_id)
                .bind(key)
                .bind(*lease_until))
                .await;
            if let Err(e) = released {
                // The lease runs out by itself; only a retry within it waits.
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
        }
    }
}

/// Deletes completed keys older than `ttl_ms`.
pub async fn sweep(db: &Db, now: i64, ttl_ms: i64) -> Result<u64, sqlx::Error> {
    let done = db
        .execute(
            crate::db::query(
                "DELETE FROM idempotency_keys WHERE created_at <= $1 AND (state = 'done' OR lease_until <= $2)",
            )
            .bind(now - ttl_ms)
            .bind(now),
        )
        .await?;
    // Revoked sessions are kept only until their cookie would have expired.
    let revoked = db.execute(crate::db::query("DELETE FROM revoked_sessions WHERE expires_at <= $1").bind(now)).await?;
    Ok(done.rows_affected() + revoked.rows_affected())
}

//! What an answer from the origin means for a write.

/// The verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the origin has it; the entry may leave the queue.
    Delivered,
    /// Worth trying again later: no answer at all, 5xx, 408, 409, 425, 429.
    Retry,
    /// 401: the user's session is gone; 412: the origin says another user
    /// is logged in (`Outpost-Expect-User` did not match). The write waits,
    /// untouched, until its user logs in again; no retry is spent.
    Parked,
    /// The origin refused it for good (other 4xx, or an answer a retry
    /// cannot change); it goes to the dead letters at once.
    Refused,
}

/// Classifies an attempt; `status` is `None` when the network failed
/// before any answer (offline, reset, timeout).
pub fn classify(status: Option<u16>) -> Outcome {
    match status {
        None => Outcome::Retry,
        Some(200..=299) => Outcome::Delivered,
        // 409: the same Idempotency-Key is still in flight at the origin;
        // 425: too early. Both say "later", not "never".
        Some(408 | 409 | 425 | 429) => Outcome::Retry,
        Some(500..=599) => Outcome::Retry,
        Some(401 | 412) => Outcome::Parked,
        Some(_) => Outcome::Refused,
    }
}

/// Whether a first attempt that ended this way is queued (the page then
/// gets `202 queued`) rather than handed to the page as it is. A 409 on
/// the first attempt is the page's own conflict, so it is not queued.
pub fn queue_on_first_attempt(status: Option<u16>) -> bool {
    matches!(status, None | Some(408 | 429 | 500..=599))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_retry_rules() {
        assert_eq!(classify(None), Outcome::Retry);
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(Some(s)), Outcome::Delivered, "{s}");
        }
        for s in [408, 409, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(Some(s)), Outcome::Retry, "{s}");
        }
        assert_eq!(classify(Some(401)), Outcome::Parked);
        assert_eq!(classify(Some(412)), Outcome::Parked);
        for s in [400, 403, 404, 410, 413, 415, 422, 301, 304, 100] {
            assert_eq!(classify(Some(s)), Outcome::Refused, "{s}");
        }
    }

    #[test]
    fn what_gets_queued_on_the_first_attempt() {
        for s in [None, Some(500), Some(503), Some(408), Some(429)] {
            assert!(queue_on_first_attempt(s), "{s:?}");
        }
        for s in [Some(200), Some(201), Some(400), Some(404), Some(409), Some(422)] {
            assert!(!queue_on_first_attempt(s), "{s:?}");
        }
    }
}

//! Who is logged in, as far as the worker can tell.
//!
//! The session cookie is HttpOnly, so the worker cannot read it. It learns
//! the user from the answers of the origin's auth routes (`Config::auth`):
//! a 2xx from login or `me` (or a `user_in` read such as `sync/init`) names
//! the user by id; a 401 from `me`, those reads or a replay, and any
//! logout, say nobody is. Cached reads and queued writes are keyed by that
//! user: nothing of one user is served or replayed while another is.

/// The header an origin names the logged-in user with, on every
/// authenticated answer (the reference origin does).
pub const USER_HEADER: &str = "outpost-user";
/// The header the worker sends with replays and upload calls: the user the
/// request was made for. The origin refuses it (`412`) if that is not who
/// is logged in, before applying anything.
pub const EXPECT_HEADER: &str = "outpost-expect-user";

/// What an answer's `Outpost-User` header says: the user, when present.
pub fn from_header(value: Option<&str>) -> Learned {
    match value.map(str::trim_ascii) {
        Some(id) if !id.is_empty() => Learned::User(id.to_string()),
        _ => Learned::Nothing,
    }
}

/// What one answer says about the current user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    /// This user (their id) is logged in.
    User(String),
    /// Nobody is logged in.
    Nobody,
    /// The answer says nothing about it (a failed login, a 500, no answer).
    Nothing,
}

/// Which kind of route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Login,
    Logout,
    Me,
    /// A read route listed in `auth.userIn`.
    Data,
    /// A replayed write.
    Replay,
}

/// Reads an answer. `status` is None when the network gave no answer.
pub fn learn(source: Source, status: Option<u16>, body: &[u8]) -> Learned {
    match (source, status) {
        // Logging out ends the user's session in this browser even when the
        // origin cannot be reached: their cached data must not outlive the
        // click.
        (Source::Logout, _) => Learned::Nobody,
        (Source::Me | Source::Data | Source::Replay, Some(401)) => Learned::Nobody,
        (Source::Login | Source::Me | Source::Data, Some(200..=299)) => {
            user_id(body, source == Source::Me).map_or(Learned::Nothing, Learned::User)
        }
        _ => Learned::Nothing,
    }
}

/// `{"user": {"id": …}}`, `{"user": "…"}`, or (from `me`) `{"id": …}`.
/// Numeric ids are taken as their decimal text.
fn user_id(body: &[u8], top_level_id: bool) -> Option<String> {
    use super::json::{self, Value};
    let v = json::parse(body).ok()?;
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.as_str().to_string()),
        _ => None,
    };
    match v.get("user") {
        Some(user @ Value::Object(_)) => user.get("id").and_then(text),
        Some(user) => text(user),
        None if top_level_id => v.get("id").and_then(text),
        None => None,
    }
}

/// The user after an answer, if it changed.
pub fn next(current: Option<&str>, learned: &Learned) -> Option<Option<String>> {
    match learned {
        Learned::User(u) if current != Some(u.as_str()) => Some(Some(u.clone())),
        Learned::Nobody if current.is_some() => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origins_header_names_the_user() {
        assert_eq!(from_header(Some("u1")), Learned::User("u1".into()));
        assert_eq!(from_header(Some(" ")), Learned::Nothing);
        assert_eq!(from_header(None), Learned::Nothing);
    }

    #[test]
    fn login_and_me_name_the_user() {
        let login = br#"{"user": {"id": "0190-a", "name": "alice"}}"#;
        assert_eq!(learn(Source::Login, Some(200), login), Learned::User("0190-a".into()));
        assert_eq!(
            learn(Source::Me, Some(200), br#"{"id": "0190-a", "name": "alice"}"#),
            Learned::User("0190-a".into())
        );
        assert_eq!(learn(Source::Me, Some(200), br#"{"user": {"id": 42}}"#), Learned::User("42".into()));
        assert_eq!(learn(Source::Data, Some(200), br#"{"user": "bob", "sessions": []}"#), Learned::User("bob".into()));
        // Only `me` may name the user with a top-level id: a sync body's
        // own `id` field is not a user.
        assert_eq!(learn(Source::Data, Some(200), br#"{"id": "x"}"#), Learned::Nothing);
    }

    #[test]
    fn what_says_nobody_and_what_says_nothing() {
        assert_eq!(learn(Source::Logout, Some(200), b"{}"), Learned::Nobody);
        assert_eq!(learn(Source::Logout, None, b""), Learned::Nobody);
        assert_eq!(learn(Source::Me, Some(401), b""), Learned::Nobody);
        assert_eq!(learn(Source::Replay, Some(401), b""), Learned::Nobody);
        assert_eq!(learn(Source::Login, Some(401), b""), Learned::Nothing);
        assert_eq!(learn(Source::Login, Some(400), b"{}"), Learned::Nothing);
        assert_eq!(learn(Source::Me, Some(500), b""), Learned::Nothing);
        assert_eq!(learn(Source::Me, None, b""), Learned::Nothing);
        assert_eq!(learn(Source::Me, Some(200), b"not json"), Learned::Nothing);
        assert_eq!(learn(Source::Replay, Some(200), br#"{"user": {"id": "x"}}"#), Learned::Nothing);
    }

    #[test]
    fn changes_only_when_different() {
        let a = Learned::User("a".into());
        assert_eq!(next(None, &a), Some(Some("a".into())));
        assert_eq!(next(Some("a"), &a), None);
        assert_eq!(next(Some("b"), &a), Some(Some("a".into())));
        assert_eq!(next(Some("a"), &Learned::Nobody), Some(None));
        assert_eq!(next(None, &Learned::Nobody), None);
        assert_eq!(next(Some("a"), &Learned::Nothing), None);
    }
}

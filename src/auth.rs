//! Session cookies: `v1.<user id>.<expiry ms>.<HMAC-SHA256>`, signed with a
//! key kept under `--data`. Pure functions of the key and the time, so
//! expiry and tampering are tested without a clock.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "outpost_session";
/// How long a login lasts.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// The key that signs session cookies.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

/// The keys this origin accepts cookies from: the first signs new ones;
/// the others (keys rotated out) are still accepted, so a rotation logs
/// nobody out. Instances behind one load balancer must share them.
#[derive(Clone)]
pub struct SessionKeys {
    current: SessionKey,
    older: Vec<SessionKey>,
}

// Hand-written so no key ends up in a log through `{:?}`.
impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys({} keys, redacted)", self.len())
    }
}

impl SessionKeys {
    pub fn single(key: SessionKey) -> Self {
        SessionKeys { current: key, older: Vec::new() }
    }

    /// Keys written as 64 hex digits (`openssl rand -hex 32`), separated by
    /// commas, spaces or new lines; `#` starts a comment to the end of its
    /// line. The first key signs.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            for word in line.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()) {
                let bytes = crate::hex::decode(word).filter(|b| b.len() == 32).ok_or_else(|| {
                    format!(
                        "a session key must be 64 hex digits (openssl rand -hex 32); found {} characters",
                        word.len()
                    )
                })?;
                keys.push(SessionKey(bytes.try_into().expect("32 bytes")));
            }
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or("no session key given")?;
        Ok(SessionKeys { current, older: keys.collect() })
    }

    /// How many keys are accepted (the signing one included).
    pub fn len(&self) -> usize {
        1 + self.older.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// A cookie signed with the current key.
    pub fn issue(&self, user_id: &str, now_ms: i64) -> String {
        self.current.issue(user_id, now_ms)
    }

    /// The user id a cookie signed with any accepted key vouches for.
    pub fn verify(&self, value: &str, now_ms: i64) -> Result<String, CookieError> {
        let mut result = self.current.verify(value, now_ms);
        for key in &self.older {
            if result != Err(CookieError::BadSignature) {
                break;
            }
            result = key.verify(value, now_ms);
        }
        result
    }
}

/// When a cookie was issued: its expiry less the session lifetime.
pub fn issued_at(value: &str) -> Option<i64> {
    let expiry: i64 = value.rsplit_once('.')?.0.rsplit('.').next()?.parse().ok()?;
    Some(expiry - SESSION_TTL_MS)
}

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    Malformed,
    BadSignature,
    Expired,
}

impl SessionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionKey(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(SessionKey(bytes))
    }

    /// The key in `dir/session.key`, made on first use. Keeping it on disk
    /// keeps users logged in across restarts.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("session.key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => Ok(SessionKey(bytes.try_into().unwrap())),
            Ok(_) => anyhow::bail!("{} is not a 32-byte key; delete it to make a new one", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                crate::fsutil::write_private(&path, &key.0)?;
                Ok(key)
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length works");
        mac.update(payload.as_bytes());
        mac
    }

    /// The cookie value for `user_id`, valid until `now + SESSION_TTL_MS`.
    pub fn issue(&self, user_id: &str, now_ms: i64) -> String {
        let payload = format!("v1.{user_id}.{}", now_ms + SESSION_TTL_MS);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The user id a cookie value vouches for.
    pub fn verify(&self, value: &str, now_ms: i64) -> Result<String, CookieError> {
        let (payload, sig) = value.rsplit_once('.').ok_or(CookieError::Malformed)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(user), Some(expiry), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CookieError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| CookieError::Malformed)?;
        // verify_slice compares in constant time.
        self.mac(payload).verify_slice(&sig).map_err(|_| CookieError::BadSignature)?;
        let expiry: i64 = expiry.parse().map_err(|_| CookieError::Malformed)?;
        if expiry <= now_ms {
            return Err(CookieError::Expired);
        }
        Ok(user.to_string())
    }
}

/// What a revoked cookie is kept as: the SHA-256 of its value (the value
/// itself is a credential), and when it would have expired anyway.
pub fn revocation(value: &str) -> Option<(String, i64)> {
    use sha2::Digest;
    let expiry: i64 = value.rsplit_once('.')?.0.rsplit('.').next()?.parse().ok()?;
    let token = crate::hex::encode(&sha2::Sha256::digest(value.as_bytes()));
    Some((token, expiry))
}

/// The `Set-Cookie` value for a login.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", SESSION_TTL_MS / 1000)
}

/// The `Set-Cookie` value for a logout.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// Finds our cookie in a `Cookie` header.
pub fn find_cookie(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn issued_cookies_verify_until_they_expire() {
        let key = SessionKey::from_bytes([7; 32]);
        let cookie = key.issue("u1", NOW);
        assert_eq!(key.verify(&cookie, NOW), Ok("u1".into()));
        assert_eq!(key.verify(&cookie, NOW + SESSION_TTL_MS - 1), Ok("u1".into()));
        assert_eq!(key.verify(&cookie, NOW + SESSION_TTL_MS), Err(CookieError::Expired));
    }

    #[test]
    fn tampered_or_foreign_cookies_are_refused() {
        let key = SessionKey::from_bytes([7; 32]);
        let cookie = key.issue("u1", NOW);
        let forged = cookie.replacen("u1", "u2", 1);
        assert_eq!(key.verify(&forged, NOW), Err(CookieError::BadSignature));
        let other = SessionKey::from_bytes([8; 32]);
        assert_eq!(other.verify(&cookie, NOW), Err(CookieError::BadSignature));
        // A later expiry with the old signature is a forgery too.
        let (payload, sig) = cookie.rsplit_once('.').unwrap();
        let (head, _) = payload.rsplit_once('.').unwrap();
        assert_eq!(key.verify(&format!("{head}.9999999999999.{sig}"), NOW), Err(CookieError::BadSignature));
        for junk in ["", "v1", "v1.u1.5", "v2.u1.5.sig", "v1.u1.x.AAAA", "v1.a.b.c.d", "v1.u1.5.!!!"] {
            assert!(key.verify(junk, NOW).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn older_keys_are_accepted_and_the_first_signs() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let rotated = SessionKeys::parse(&format!("# new key first\n{b}\n{a} # the old one\n")).unwrap();
        assert_eq!(rotated.len(), 2);
        let old_only = SessionKeys::parse(&a).unwrap();
        let cookie = old_only.issue("u1", NOW);
        assert_eq!(rotated.verify(&cookie, NOW), Ok("u1".into()));
        let fresh = rotated.issue("u1", NOW);
        assert_eq!(SessionKeys::parse(&b).unwrap().verify(&fresh, NOW), Ok("u1".into()));
        assert_eq!(old_only.verify(&fresh, NOW), Err(CookieError::BadSignature));
        // An expired cookie stays expired under an older key too.
        assert_eq!(rotated.verify(&cookie, NOW + SESSION_TTL_MS), Err(CookieError::Expired));
        assert_eq!(issued_at(&cookie), Some(NOW));
        assert_eq!(SessionKeys::parse(&format!("{a},{b}")).unwrap().len(), 2);
        for bad in ["", "# nothing", "abc", &"zz".repeat(32), &"11".repeat(31)] {
            assert!(SessionKeys::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cookie_header_parsing() {
        assert_eq!(find_cookie("a=1; outpost_session=xyz; b=2"), Some("xyz"));
        assert_eq!(find_cookie("outpost_session_x=1"), None);
        assert_eq!(find_cookie(""), None);
    }

    #[test]
    fn key_file_is_made_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("outpost-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = SessionKey::load_or_create(&dir).unwrap();
        let b = SessionKey::load_or_create(&dir).unwrap();
        assert_eq!(a.0, b.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Temp ids: a page that works offline names what it creates with ids of
//! its own; once a queued write is delivered, the origin's answer maps
//! those temp ids to server ids, and later queued writes that still carry
//! a temp id are rewritten before they are sent.
//!
//! Only whole JSON string values and whole URL path segments are
//! rewritten, never substrings, so message text that happens to contain a
//! temp id is left alone.

use super::json::{self, Value};
use super::text::{cat, num};

/// Temp id → server id, sorted by temp id (a sorted `Vec` rather than a
/// `BTreeMap`: the same order and lookups for the few hundred pairs a user
/// has, with a fraction of the map's code in the wasm).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    map: Vec<(String, String)>,
}

impl IdMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, temp: &str) -> Option<&str> {
        let i = self.map.binary_search_by(|(k, _)| k.as_str().cmp(temp)).ok()?;
        Some(&self.map[i].1)
    }

    pub fn insert(&mut self, temp: impl Into<String>, id: impl Into<String>) {
        self.insert_owned(temp.into(), id.into());
    }

    // Out of line: one copy, whatever `insert` was given.
    #[inline(never)]
    fn insert_owned(&mut self, temp: String, id: String) {
        if temp != id {
            match self.map.binary_search_by(|(k, _)| k.cmp(&temp)) {
                Ok(i) => self.map[i].1 = id,
                Err(i) => self.map.insert(i, (temp, id)),
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a write must wait: it names (in its URL or body) one of
    /// `waiting`, temp ids whose server id is not known yet (an upload not
    /// yet presigned). Sent now, it would reach the origin with an id the
    /// origin has never seen.
    pub fn waits_for(&self, url: &str, body: &[u8], waiting: &[String]) -> bool {
        waiting.iter().any(|t| self.get(t).is_none() && (contains(url.as_bytes(), t) || contains(body, t)))
    }

    /// Learns the mappings of a delivered write's response body
    /// (`{"mappings": [{"tempId", "id"}]}`); returns the new pairs.
    pub fn learn_from_response(&mut self, body: &[u8]) -> Vec<(String, String)> {
        let Ok(value) = json::parse(body) else { return Vec::new() };
        let Some(mappings) = value.get("mappings").and_then(Value::as_array) else { return Vec::new() };
        let mut learned = Vec::new();
        for m in mappings {
            if let (Some(temp), Some(id)) =
                (m.get("tempId").and_then(Value::as_str), m.get("id").and_then(Value::as_str))
            {
                if temp != id {
                    self.insert(temp, id);
                    learned.push((temp.to_string(), id.to_string()));
                }
            }
        }
        learned
    }

    /// The body with every JSON string equal to a known temp id replaced,
    /// or `None` when nothing changes (or the body is not JSON).
    pub fn rewrite_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.map.is_empty() {
            return None;
        }
        let mut value = json::parse(body).ok()?;
        if !self.rewrite_value(&mut value) {
            return None;
        }
        Some(value.to_json().into_bytes())
    }

    fn rewrite_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => match self.get(s.as_str()) {
                Some(id) => {
                    *s = id.to_string();
                    true
                }
                None => false,
            },
            Value::Array(items) => {
                let mut changed = false;
                for v in items {
                    changed |= self.rewrite_value(v);
                }
                changed
            }
            Value::Object(fields) => {
                let mut changed = false;
                for v in fields.values_mut() {
                    changed |= self.rewrite_value(v);
                }
                changed
            }
            _ => false,
        }
    }

    /// The URL with every path segment equal to a known temp id replaced,
    /// or `None` when nothing changes.
    pub fn rewrite_url(&self, url: &str) -> Option<String> {
        if self.map.is_empty() {
            return None;
        }
        let parts = super::url::split(url)?;
        let mut changed = false;
        let mut out = String::from(parts.origin);
        for (i, seg) in super::text::split(parts.path, b'/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            match self.get(seg) {
                Some(id) => {
                    changed = true;
                    out.push_str(id);
                }
                None => out.push_str(seg),
            }
        }
        if !changed {
            return None;
        }
        if let Some(q) = parts.query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }
}

/// Where a learned temp id is kept: per user (length-prefixed, so no user
/// id can reach into another's keys), so one user's ids never rewrite
/// another's writes.
pub fn map_key(user: Option<&str>, temp: &str) -> String {
    match user {
        Some(u) => cat!(MAP_PREFIX, num(u.len() as u64), ":", u, ":", temp),
        None => cat!(MAP_PREFIX, "-:", temp),
    }
}

/// The temp id a map key holds for `user`; `None` when the key is another
/// user's (or not a map key). Keys of the previous build (`idmap:<temp>`,
/// nobody's in particular) are read for everyone until pruned.
pub fn temp_of<'a>(key: &'a str, user: Option<&str>) -> Option<&'a str> {
    if let Some(rest) = key.strip_prefix(MAP_PREFIX) {
        let mine = match user {
            Some(u) => cat!(num(u.len() as u64), ":", u, ":"),
            None => "-:".to_string(),
        };
        return rest.strip_prefix(mine.as_str());
    }
    key.strip_prefix(LEGACY_MAP_PREFIX)
}

/// Whether a map key is `user`'s (or of the previous build): what a prune
/// of that user's ids removes.
pub fn is_pruned_with(key: &str, user: Option<&str>) -> bool {
    temp_of(key, user).is_some()
}

/// The prefix of the per-user temp-id map's keys.
pub const MAP_PREFIX: &str = "idmap2:";
const LEGACY_MAP_PREFIX: &str = "idmap:";

fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keys_are_per_user() {
        let a = map_key(Some("alice"), "t1");
        assert_eq!(temp_of(&a, Some("alice")), Some("t1"));
        assert_eq!(temp_of(&a, Some("bob")), None);
        assert_eq!(temp_of(&a, None), None);
        // A user id cannot reach into another's keys.
        let tricky = map_key(Some("al"), "ice:t1");
        assert_eq!(temp_of(&tricky, Some("alice")), None);
        assert_eq!(temp_of(&map_key(None, "t2"), None), Some("t2"));
        assert_eq!(temp_of("idmap:t3", Some("anyone")), Some("t3"), "the previous build's keys");
        assert_eq!(temp_of("user", Some("u")), None);
    }

    fn map() -> IdMap {
        let mut m = IdMap::new();
        let learned =
            m.learn_from_response(br#"{"mappings":[{"tempId":"tmp-1","id":"srv-1"},{"tempId":"tmp-2","id":"srv-2"}]}"#);
        assert_eq!(learned.len(), 2);
        m
    }

    #[test]
    fn learns_from_batch_responses_only() {
        let mut m = IdMap::new();
        assert!(m.learn_from_response(b"not json").is_empty());
        assert!(m.learn_from_response(br#"{"id":"x"}"#).is_empty());
        assert!(m
            .learn_from_response(br#"{"mappings":[{"tempId":"same","id":"same"},{"tempId":5,"id":"x"}]}"#)
            .is_empty());
        assert!(m.is_empty());
        assert_eq!(map().get("tmp-2"), Some("srv-2"));
    }

    #[test]
    fn rewrites_whole_string_values_anywhere_in_the_body() {
        let body =
            br#"{"messages":[{"tempId":"tmp-9","sessionId":"tmp-1","content":"see tmp-1 above"}],"ref":["tmp-2",3]}"#;
        let out = map().rewrite_json(body).unwrap();
        let v = json::parse(&out).unwrap();
        assert_eq!(v["messages"][0]["sessionId"], "srv-1");
        assert_eq!(v["messages"][0]["tempId"], "tmp-9", "unknown temp ids stay");
        assert_eq!(v["messages"][0]["content"], "see tmp-1 above", "substrings stay");
        assert_eq!(v["ref"][0], "srv-2");
    }

    #[test]
    fn unchanged_bodies_are_left_byte_for_byte() {
        assert_eq!(map().rewrite_json(br#"{"a":"b"}"#), None);
        assert_eq!(map().rewrite_json(b"\x00\x01binary"), None);
        assert_eq!(IdMap::new().rewrite_json(br#"{"a":"tmp-1"}"#), None);
    }

    #[test]
    fn rewrites_path_segments() {
        let m = map();
        assert_eq!(
            m.rewrite_url("http://h:1/api/chat/sessions/tmp-1/messages?after=tmp-1").as_deref(),
            Some("http://h:1/api/chat/sessions/srv-1/messages?after=tmp-1")
        );
        assert_eq!(m.rewrite_url("http://h:1/api/chat/sessions/tmp-10"), None);
        assert_eq!(m.rewrite_url("http://h:1/api/x"), None);
    }

    #[test]
    fn writes_naming_an_unpresigned_upload_wait() {
        let waiting = vec!["local-1".to_string()];
        let mut ids = IdMap::new();
        assert!(ids.waits_for("http://h/api/projects", br#"{"cover":"local-1"}"#, &waiting));
        assert!(ids.waits_for("http://h/api/assets/local-1/tag", b"", &waiting));
        assert!(!ids.waits_for("http://h/api/projects", br#"{"cover":"local-2"}"#, &waiting));
        ids.insert("local-1", "srv-1");
        assert!(!ids.waits_for("http://h/api/projects", br#"{"cover":"local-1"}"#, &waiting), "rewritten instead");
    }
}

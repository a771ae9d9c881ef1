//! Batch routes: writes whose JSON body is a list of items (the reference
//! origin's `POST /api/chat/messages/batch {messages: [...]}`) can travel
//! together. On replay, queued writes to a batch route that sit next to
//! each other in their queue are merged into requests of at most
//! `batchMaxItems` items.
//!
//! Exactly-once holds per item because the origin stores each item once
//! whatever request carries it (the reference origin keys messages by
//! `(user, tempId)`, `api.md`), so a merged request may go under a fresh
//! Idempotency-Key, and a worker killed mid-batch sends items again without
//! storing them twice.

use super::json::{self, FieldError, Fields, Object, Value};

use super::config::Config;
use super::pattern::Pattern;
use super::record::{Entry, State};
use super::text::cat;

/// One batch route of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRoute {
    /// The write route (POST).
    pub path: Pattern,
    /// The body's one field: the array of items.
    pub items: String,
}

impl BatchRoute {
    /// The reference origin's message batches.
    pub fn messages() -> BatchRoute {
        BatchRoute {
            path: Pattern::builtin("/api/chat/messages/batch"),
            items: "messages".into(),
        }
    }

    /// One entry of the config's `batches`: `{path, items}`, both needed.
    pub fn read(value: &Value) -> Result<BatchRoute, FieldError> {
        let mut f = Fields::new(value, "batches[]")?;
        let (mut path, mut items) = (String::new(), String::new());
        f.string("path", &mut path)?;
        f.string("items", &mut items)?;
        f.finish()?;
        if path.is_empty() || items.is_empty() {
            return Err("each of `batches` needs `path` and `items`".into());
        }
        let path = Pattern::parse(&path).map_err(|e| cat!("`batches[].path`: ", e.text()))?;
        Ok(BatchRoute { path, items })
    }
}

/// The batch route a write to `path` goes to, if any.
pub fn route_of<'a>(config: &'a Config, method: &str, path: &str) -> Option<&'a BatchRoute> {
    (method == "POST").then(|| config.batches.iter().find(|b| b.path.matches(path))).flatten()
}

/// The items of a body that can be merged: a JSON object whose only field
/// is the route's array. Anything else goes alone.
pub fn items(route: &BatchRoute, body: &[u8]) -> Option<Vec<Value>> {
    let Value::Object(map) = json::parse(body).ok()? else { return None };
    if map.len() != 1 {
        return None;
    }
    match map.get(&route.items)? {
        Value::Array(items) if !items.is_empty() => Some(items.clone()),
        _ => None,
    }
}

/// One body holding `items`.
pub fn body(route: &BatchRoute, items: Vec<Value>) -> Vec<u8> {
    let mut map = Object::new();
    map.insert(route.items.clone(), Value::Array(items));
    Value::Object(map).to_json().into_bytes()
}

/// The run of queued writes that goes with the due entry `head` (indexes
/// into `entries`, head first): the entries right behind it in its queue,
/// for the same user, to the same URL with the same headers, each with a
/// mergeable body, while the items fit in `batchMaxItems`. `held(e)`: an
/// entry that may not go yet (it names an upload's temp id) ends the run.
/// A run of one is an ordinary attempt.
pub fn merge_run(config: &Config, entries: &[Entry], head: usize, held: impl Fn(&Entry) -> bool) -> Vec<usize> {
    let first = &entries[head];
    let path = super::url::split(&first.request.url).map(|p| p.path).unwrap_or("");
    let Some(route) = route_of(config, &first.request.method, path) else { return vec![head] };
    let Some(head_items) = items(route, &first.request.body) else { return vec![head] };
    let mut total = head_items.len();
    let mut run = vec![head];
    let same_queue = |e: &Entry| e.queue == first.queue && e.user == first.user;
    for (i, e) in entries.iter().enumerate().skip(head + 1) {
        if !same_queue(e) {
            continue; // other queues and users do not come between
        }
        if e.state != State::Pending || held(e) {
            break;
        }
        let alike = e.request.url == first.request.url
            && e.request.method == first.request.method
            && e.request.headers == first.request.headers
            && e.request.credentials == first.request.credentials;
        let Some(n) = alike.then(|| items(route, &e.request.body)).flatten().map(|v| v.len()) else { break };
        if total + n > config.batch_max_items as usize {
            break;
        }
        total += n;
        run.push(i);
    }
    run
}

/// The merged body of a run: each entry's items, in queue order. `bodies`
/// are the entries' bodies as they are sent (temp ids rewritten).
pub fn merged(route: &BatchRoute, bodies: &[&[u8]]) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    for b in bodies {
        all.append(&mut items(route, b)?);
    }
    Some(body(route, all))
}

/// Each write's share of the answer to a batch that merged them: every
/// top-level array as long as the batch (the reference origin's `mappings`,
/// in the batch's order) is cut at the writes' item `counts`; other fields
/// are copied. An answer with no such array goes whole to every write.
pub fn split(answer: &[u8], counts: &[usize]) -> Vec<Vec<u8>> {
    let mut total = 0;
    for n in counts {
        total += n;
    }
    let whole = || vec![answer.to_vec(); counts.len()];
    let Ok(Value::Object(map)) = json::parse(answer) else { return whole() };
    // The arrays with one item per write, cut into each write's share.
    // (Loops: the iterator chains were twice the code.)
    let mut cut: Vec<(&String, &Vec<Value>)> = Vec::new();
    for (k, v) in map.iter() {
        if let Some(a) = v.as_array().filter(|a| a.len() == total) {
            cut.push((k, a));
        }
    }
    if cut.is_empty() {
        return whole();
    }
    let (mut start, mut shares) = (0, Vec::with_capacity(counts.len()));
    for &n in counts {
        let mut share = map.clone();
        for (k, all) in &cut {
            share.insert((*k).clone(), Value::Array(all[start..start + n].to_vec()));
        }
        start += n;
        shares.push(Value::Object(share).to_json().into_bytes());
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{Credentials, StoredRequest};

    fn entry(id: u64, user: &str, url: &str, body: &str) -> Entry {
        let request = StoredRequest {
            method: "POST".into(),
            url: format!("http://h{url}"),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            credentials: Credentials::SameOrigin,
        };
        Entry {
            id,
            user: Some(user.into()),
            queue: "default".into(),
            idempotency_key: format!("k{id}"),
            created_at: id,
            retries: 0,
            next_at: 0,
            state: State::Pending,
            last_status: None,
            last_attempt_at: 0,
            request,
        }
    }

    fn message(n: usize) -> String {
        format!(r#"{{"messages":[{{"tempId":"t{n}","content":"m{n}"}}]}}"#)
    }

    const BATCH: &str = "/api/chat/messages/batch";

    #[test]
    fn adjacent_batch_writes_of_a_user_merge_up_to_the_limit() {
        let c = Config::default();
        let entries: Vec<Entry> = (0..40).map(|i| entry(i, "a", BATCH, &message(i as usize))).collect();
        let run = merge_run(&c, &entries, 0, |_| false);
        assert_eq!(run, (0..15).collect::<Vec<_>>(), "batchMaxItems (15) messages");
        let route = BatchRoute::messages();
        let bodies: Vec<&[u8]> = run.iter().map(|&i| &entries[i].request.body[..]).collect();
        let body = json::parse(&merged(&route, &bodies).unwrap()).unwrap();
        let temps: Vec<&str> =
            body["messages"].as_array().unwrap().iter().map(|m| m["tempId"].as_str().unwrap()).collect();
        assert_eq!(temps.len(), 15);
        assert_eq!((temps[0], temps[14]), ("t0", "t14"), "in queue order");
    }

    #[test]
    fn a_run_stops_at_anything_that_must_go_alone() {
        let c = Config::default();
        let mut entries = vec![
            entry(1, "a", BATCH, &message(1)),
            entry(2, "b", BATCH, &message(2)), // another user's: skipped over
            entry(3, "a", BATCH, &message(3)),
            entry(4, "a", "/api/projects", r#"{"name":"p"}"#), // another route: ends it
            entry(5, "a", BATCH, &message(5)),
        ];
        assert_eq!(merge_run(&c, &entries, 0, |_| false), [0, 2]);
        assert_eq!(merge_run(&c, &entries, 0, |e| e.id == 3), [0], "a write waiting for an upload's id");
        entries[2].request.body = br#"{"messages":[{"tempId":"x"}],"extra":1}"#.to_vec();
        assert_eq!(merge_run(&c, &entries, 0, |_| false), [0], "a body with other fields goes alone");
        assert_eq!(merge_run(&c, &entries, 3, |_| false), [3], "not a batch route");
        let big: String = format!(
            r#"{{"messages":[{}]}}"#,
            (0..15).map(|i| format!(r#"{{"tempId":"b{i}"}}"#)).collect::<Vec<_>>().join(",")
        );
        let full = vec![entry(1, "a", BATCH, &message(1)), entry(2, "a", BATCH, &big)];
        assert_eq!(merge_run(&c, &full, 0, |_| false), [0], "16 items would be over the limit");
        let none = Config::from_json(r#"{"batches": []}"#).unwrap();
        assert_eq!(merge_run(&none, &entries, 0, |_| false), [0], "no batch routes configured");
    }

    #[test]
    fn each_write_gets_its_own_share_of_the_answer() {
        let answer = br#"{"mappings":[{"tempId":"a","id":"1"},{"tempId":"b","id":"2"},{"tempId":"c","id":"3"}],"n":3}"#;
        let shares: Vec<Value> = split(answer, &[1, 2]).iter().map(|b| json::parse(b).unwrap()).collect();
        assert_eq!(
            shares[0],
            json::from_serde(serde_json::json!({ "mappings": [{"tempId": "a", "id": "1"}], "n": 3 }))
        );
        assert_eq!(shares[1]["mappings"].as_array().unwrap().len(), 2);
        assert_eq!(shares[1]["mappings"][1]["tempId"], "c");
        assert_eq!(split(br#"{"ok":true}"#, &[1, 1]), vec![br#"{"ok":true}"#.to_vec(); 2], "nothing to cut: whole");
        assert_eq!(split(b"not json", &[2]), vec![b"not json".to_vec()]);
    }

    #[test]
    fn only_an_object_with_the_items_array_is_mergeable() {
        let r = BatchRoute::messages();
        assert_eq!(items(&r, br#"{"messages":[1,2]}"#).map(|v| v.len()), Some(2));
        for odd in [&br#"{"messages":[]}"#[..], br#"{"messages":{}}"#, br#"[1]"#, b"not json", br#"{"other":[1]}"#] {
            assert_eq!(items(&r, odd), None, "{}", String::from_utf8_lossy(odd));
        }
    }
}

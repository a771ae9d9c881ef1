//! The upload steps as requests and answers, in the quinn-proto shape: the
//! core says which request to make next (`poll`), the adapter makes it and
//! hands the answer back (`on_origin`, `on_put`, `on_parts`), with `now` and
//! the jitter as parameters. Paths come from the config; answers are parsed
//! here into typed values, so the adapter never reads JSON fields.

use super::{after, next, part_done, part_range, presigned, Action, Phase, Upload};
use crate::core::clock::{Heard, Trigger};
use crate::core::config::Config;
use crate::core::json::{self, obj, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Which step an origin call is; its answer goes back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Presign,
    /// A fresh URL for an upload that has its asset id.
    Represign,
    /// Which parts the store holds.
    ListParts,
    /// URLs for the parts still missing.
    PartUrls,
    Complete,
}

/// A same-origin API call, made with the user's cookie and the upload's
/// user as `Outpost-Expect-User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginCall {
    pub step: Step,
    pub method: Method,
    pub path: String,
    /// A JSON body.
    pub body: Option<String>,
    pub idempotency_key: Option<String>,
}

/// One part to PUT: bytes `[start, end)` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPut {
    pub number: u32,
    pub url: String,
    pub start: u64,
    pub end: u64,
}

/// The next request for an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Origin(OriginCall),
    /// The whole file to the store.
    Put {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// Parts to the store, a few at a time (`on_parts` after each batch).
    Parts(Vec<PartPut>),
}

/// What an answer changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// The record changed; save it. `moved`: poll again at once; else the
    /// upload waits (backoff, the network, its user) or is dead.
    Saved { moved: bool },
    /// The origin gave the upload its id: the temp id maps to it, the file
    /// stays pinned until done; then as `Saved { moved: true }`.
    Presigned { asset_id: String },
    /// Make this call next, in the same step (nothing to save yet).
    Next(Call),
}

fn path(template: &str, asset_id: &str) -> String {
    crate::core::text::replace(template, "{id}", asset_id)
}

fn origin(step: Step, method: Method, path: String, body: Option<Value>) -> OriginCall {
    OriginCall { step, method, path, body: body.map(|b| b.to_json()), idempotency_key: None }
}

fn multipart(config: &Config, u: &Upload) -> bool {
    u.size > config.multipart_threshold_bytes
}

/// The request to make for `u` now, if one is due for `trigger`.
pub fn poll(config: &Config, u: &Upload, now: u64, trigger: Trigger) -> Option<Call> {
    let id = u.asset_id.clone().unwrap_or_default();
    Some(match next(config, u, now, trigger) {
        Action::Wait => return None,
        Action::Presign { multipart } => {
            let mut body = obj! {
                "op": if multipart { "multipart" } else { "put" },
                "filename": &u.filename, "contentType": &u.content_type, "size": u.size,
            };
            if let (Some(p), Some(o)) = (&u.project_id, body.as_object_mut()) {
                o.insert("projectId", p.into());
            }
            // The key makes a repeated presign answer the same asset.
            let call = origin(Step::Presign, Method::Post, config.presign_path.clone(), Some(body));
            Call::Origin(OriginCall { idempotency_key: Some(u.idempotency_key.clone()), ..call })
        }
        Action::Represign if multipart(config, u) => {
            Call::Origin(origin(Step::Represign, Method::Get, path(&config.parts_path, &id), None))
        }
        Action::Represign => {
            let body = obj! { "op": "put", "assetId": id };
            Call::Origin(origin(Step::Represign, Method::Post, config.presign_path.clone(), Some(body)))
        }
        Action::Put => match &u.phase {
            Phase::Put { url, headers, .. } => Call::Put { url: url.clone(), headers: headers.clone() },
            _ => return None,
        },
        // The record may lag the store (a worker killed after a part went):
        // the store's own list decides what is missing.
        Action::Parts => Call::Origin(origin(Step::ListParts, Method::Get, path(&config.parts_path, &id), None)),
        Action::Complete => {
            Call::Origin(origin(Step::Complete, Method::Post, path(&config.complete_path, &id), Some(obj! {})))
        }
    })
}

/// `POST presign` (`op: put`, or `op: get` for a download).
#[derive(Debug)]
struct PutAnswer {
    asset_id: Option<String>,
    url: String,
    headers: Vec<(String, String)>,
    expires_at: u64,
    issued_at: Option<u64>,
}

/// `POST presign` (`op: multipart`) and `GET …/parts`.
#[derive(Debug)]
struct PartsAnswer {
    asset_id: Option<String>,
    part_size: u64,
    part_count: u32,
    uploaded: Vec<u32>,
}

/// One part's URL of `POST …/parts` (`{parts: [{partNumber, url}]}`).
#[derive(Debug)]
struct PartUrl {
    part_number: u32,
    url: String,
}

// The answers' readers: fields the worker needs must be there with their
// type; optional ones may be absent or null; unknown ones are ignored (an
// origin may say more).

fn object(body: &[u8]) -> Option<Value> {
    json::parse(body).ok().filter(|v| v.as_object().is_some())
}

fn optional<T>(v: &Value, field: &str, read: impl Fn(&Value) -> Option<T>) -> Option<Option<T>> {
    match v.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(x) => read(x).map(Some),
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

fn number(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

impl PutAnswer {
    fn read(body: &[u8]) -> Option<PutAnswer> {
        let v = object(body)?;
        let headers = optional(&v, "headers", |h| {
            let mut pairs = Vec::new();
            for (k, v) in h.as_object()?.iter() {
                pairs.push((k.clone(), string(v)?));
            }
            Some(pairs)
        })?;
        Some(PutAnswer {
            asset_id: optional(&v, "assetId", string)?,
            url: string(v.get("url")?)?,
            headers: headers.unwrap_or_default(),
            expires_at: optional(&v, "expiresAt", Value::as_u64)?.unwrap_or(0),
            issued_at: optional(&v, "issuedAt", Value::as_u64)?,
        })
    }
}

impl PartsAnswer {
    fn read(body: &[u8]) -> Option<PartsAnswer> {
        let v = object(body)?;
        let uploaded = optional(&v, "uploaded", |u| {
            json::map_all(u.as_array()?, |p| p.get("partNumber").and_then(number).ok_or(())).ok()
        })?;
        Some(PartsAnswer {
            asset_id: optional(&v, "assetId", string)?,
            part_size: v.get("partSize")?.as_u64()?,
            part_count: number(v.get("partCount")?)?,
            uploaded: uploaded.unwrap_or_default(),
        })
    }
}

fn part_urls(body: &[u8]) -> Option<Vec<PartUrl>> {
    let v = object(body)?;
    let read = |p: &Value| Some(PartUrl { part_number: number(p.get("partNumber")?)?, url: string(p.get("url")?)? });
    json::map_all(v.get("parts")?.as_array()?, |p| read(p).ok_or(())).ok()
}

/// A presigned PUT's phase. The URL's lifetime as the origin counts it
/// (`expiresAt - issuedAt`) is placed on this device's clock, so a skewed
/// clock cannot make a fresh URL look expired.
fn put_phase(a: PutAnswer, now: u64) -> Phase {
    let ttl = a.expires_at.saturating_sub(a.issued_at.unwrap_or(now));
    Phase::Put { url: a.url, headers: a.headers, issued_at: now, expires_at: now + ttl }
}

fn parts_phase(a: &PartsAnswer) -> Phase {
    let done = a.uploaded.clone();
    Phase::Parts { part_size: a.part_size, part_count: a.part_count, done }
}

/// An origin call's answer: `heard` and its body. A 2xx whose body is not
/// what the step expects counts as a failed attempt (the backoff applies),
/// never as progress.
pub fn on_origin(
    config: &Config,
    u: &mut Upload,
    step: Step,
    heard: Heard,
    body: &[u8],
    now: u64,
    jitter: f64,
) -> Then {
    let ok = matches!(heard, Heard::Status(200..=299));
    let failed = |u: &mut Upload, heard| Then::Saved { moved: after(config, u, heard, now, jitter) };
    if !ok || step == Step::Complete {
        return failed(u, heard);
    }
    // A 2xx with an unusable body: as a server error, so it backs off.
    let garbled = Heard::Status(502);
    match step {
        Step::Presign if multipart(config, u) => match PartsAnswer::read(body) {
            Some(a) if a.asset_id.is_some() => {
                let asset_id = a.asset_id.clone().unwrap_or_default();
                presigned(u, asset_id.clone(), parts_phase(&a));
                Then::Presigned { asset_id }
            }
            _ => failed(u, garbled),
        },
        Step::Presign => match PutAnswer::read(body) {
            Some(a) if a.asset_id.is_some() => {
                let asset_id = a.asset_id.clone().unwrap_or_default();
                presigned(u, asset_id.clone(), put_phase(a, now));
                Then::Presigned { asset_id }
            }
            _ => failed(u, garbled),
        },
        Step::Represign => {
            let id = u.asset_id.clone().unwrap_or_default();
            let phase = if multipart(config, u) {
                PartsAnswer::read(body).map(|a| parts_phase(&a))
            } else {
                PutAnswer::read(body).map(|a| put_phase(a, now))
            };
            match phase {
                Some(phase) => {
                    presigned(u, id, phase);
                    Then::Saved { moved: true }
                }
                None => failed(u, garbled),
            }
        }
        Step::ListParts => {
            let Some(listed) = PartsAnswer::read(body) else { return failed(u, garbled) };
            for &p in &listed.uploaded {
                part_done(u, p);
            }
            match &u.phase {
                Phase::Parts { part_count, done, .. } => {
                    let missing = super::missing_parts(*part_count, done);
                    let id = u.asset_id.clone().unwrap_or_default();
                    let ask = obj! { "partNumbers": missing };
                    Then::Next(Call::Origin(origin(
                        Step::PartUrls,
                        Method::Post,
                        path(&config.parts_path, &id),
                        Some(ask),
                    )))
                }
                // Every part is there: complete next.
                _ => Then::Saved { moved: true },
            }
        }
        Step::PartUrls => {
            let (Phase::Parts { part_size, .. }, Some(urls)) = (&u.phase, part_urls(body)) else {
                return failed(u, garbled);
            };
            let mut puts = Vec::with_capacity(urls.len());
            for p in &urls {
                if let Some((start, end)) = part_range(p.part_number, *part_size, u.size) {
                    puts.push(PartPut { number: p.part_number, url: p.url.clone(), start, end });
                }
            }
            Then::Next(Call::Parts(puts))
        }
        Step::Complete => unreachable!("answered above"),
    }
}

/// The store's answer to the whole-file PUT.
pub fn on_put(config: &Config, u: &mut Upload, heard: Heard, now: u64, jitter: f64) -> bool {
    after(config, u, heard, now, jitter)
}

/// The store's answers to one batch of part PUTs. None: all went, send
/// the next batch; `Some(moved)`: the step ends here (a part failed, and
/// the first failure is what the retry clock hears).
pub fn on_parts(config: &Config, u: &mut Upload, sent: &[(u32, Heard)], now: u64, jitter: f64) -> Option<bool> {
    let mut failed = None;
    for &(n, heard) in sent {
        if matches!(heard, Heard::Status(200..=299)) {
            part_done(u, n);
        } else if failed.is_none() {
            failed = Some(heard);
        }
    }
    failed.map(|heard| after(config, u, heard, now, jitter))
}

/// A download of an asset that is not on the device: the presigned GET.
pub fn download(config: &Config, asset_id: &str) -> OriginCall {
    let body = obj! { "op": "get", "assetId": asset_id };
    origin(Step::Presign, Method::Post, config.presign_path.clone(), Some(body))
}

/// The URL of a presigned GET answer.
pub fn download_url(body: &[u8]) -> Option<String> {
    PutAnswer::read(body).map(|a| a.url)
}

#[cfg(test)]
mod tests {
    use super::super::{Meta, Upload};
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn upload(size: u64) -> Upload {
        let meta = Meta { filename: "a.bin".into(), content_type: "video/mp4".into(), size, project_id: None };
        Upload::new("local-1".into(), Some("u".into()), meta, "key-1".into(), 1_000)
    }

    fn origin_call(call: Option<Call>) -> OriginCall {
        match call {
            Some(Call::Origin(c)) => c,
            other => panic!("an origin call, not {other:?}"),
        }
    }

    fn ok(body: serde_json::Value) -> (Heard, Vec<u8>) {
        (Heard::Status(200), body.to_string().into_bytes())
    }

    #[test]
    fn a_single_put_upload_as_requests_and_answers() {
        let c = Config::default();
        let mut u = upload(10);
        let presign = origin_call(poll(&c, &u, 1_000, Trigger::Scheduled));
        assert_eq!((presign.method, presign.path.as_str()), (Method::Post, "/api/assets/presign"));
        assert_eq!(presign.idempotency_key.as_deref(), Some("key-1"));
        let body: serde_json::Value = serde_json::from_str(presign.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["op"], "put");
        let (heard, answer) = ok(serde_json::json!({
            "assetId": "a1", "url": "http://s3/put", "headers": {"content-type": "video/mp4"},
            "issuedAt": 500_000, "expiresAt": 500_000 + 3_600_000,
        }));
        assert_eq!(
            on_origin(&c, &mut u, Step::Presign, heard, &answer, 2_000, 0.5),
            Then::Presigned { asset_id: "a1".into() }
        );
        // The URL lives an hour from this device's now, whatever its clock says.
        assert!(matches!(&u.phase, Phase::Put { expires_at, .. } if *expires_at == 2_000 + 3_600_000));
        let Some(Call::Put { url, headers }) = poll(&c, &u, 2_000, Trigger::Scheduled) else { panic!() };
        assert_eq!((url.as_str(), headers), ("http://s3/put", vec![("content-type".into(), "video/mp4".into())]));
        assert!(on_put(&c, &mut u, Heard::Status(200), 3_000, 0.5));
        let complete = origin_call(poll(&c, &u, 3_000, Trigger::Scheduled));
        assert_eq!(complete.path, "/api/assets/a1/complete");
        let then = on_origin(&c, &mut u, Step::Complete, Heard::Status(200), b"{}", 4_000, 0.5);
        assert_eq!(then, Then::Saved { moved: true });
        assert!(u.is_done());
        assert_eq!(poll(&c, &u, 4_000, Trigger::Scheduled), None);
    }

    #[test]
    fn paths_come_from_the_config() {
        let c = Config::from_json(
            r#"{"presignPath": "/v2/files/sign", "partsPath": "/v2/files/{id}/parts", "completePath": "/v2/files/{id}/done",
                "multipartThresholdBytes": 5}"#,
        )
        .unwrap();
        let mut u = upload(12);
        assert_eq!(origin_call(poll(&c, &u, 1_000, Trigger::Scheduled)).path, "/v2/files/sign");
        let (heard, answer) = ok(serde_json::json!({ "assetId": "f9", "partSize": 5, "partCount": 3 }));
        on_origin(&c, &mut u, Step::Presign, heard, &answer, 1_000, 0.5);
        assert_eq!(origin_call(poll(&c, &u, 1_000, Trigger::Scheduled)).path, "/v2/files/f9/parts");
        u.phase = Phase::Complete;
        assert_eq!(origin_call(poll(&c, &u, 1_000, Trigger::Scheduled)).path, "/v2/files/f9/done");
    }

    #[test]
    fn parts_list_then_urls_then_puts_of_the_missing_ones() {
        let c = Config::default();
        let mut u = upload(20 * MIB);
        let (heard, answer) = ok(serde_json::json!({ "assetId": "m1", "partSize": 8 * MIB, "partCount": 3 }));
        on_origin(&c, &mut u, Step::Presign, heard, &answer, 1_000, 0.5);
        let list = origin_call(poll(&c, &u, 1_000, Trigger::Scheduled));
        assert_eq!(
            (list.step, list.method, list.path.as_str()),
            (Step::ListParts, Method::Get, "/api/assets/m1/parts")
        );
        // The store already has part 2 (a worker killed after it went).
        let (heard, answer) =
            ok(serde_json::json!({ "partSize": 8 * MIB, "partCount": 3, "uploaded": [{"partNumber": 2}] }));
        let Then::Next(Call::Origin(urls)) = on_origin(&c, &mut u, Step::ListParts, heard, &answer, 1_000, 0.5) else {
            panic!()
        };
        assert_eq!(urls.body.as_deref(), Some(r#"{"partNumbers":[1,3]}"#));
        let (heard, answer) = ok(serde_json::json!({ "parts": [
            {"partNumber": 1, "url": "http://s3/1"}, {"partNumber": 3, "url": "http://s3/3"},
        ]}));
        let Then::Next(Call::Parts(puts)) = on_origin(&c, &mut u, Step::PartUrls, heard, &answer, 1_000, 0.5) else {
            panic!()
        };
        assert_eq!(puts[0], PartPut { number: 1, url: "http://s3/1".into(), start: 0, end: 8 * MIB });
        assert_eq!((puts[1].start, puts[1].end), (16 * MIB, 20 * MIB), "the last part is short");
        // Part 3 fails: the step ends and the clock hears it.
        assert_eq!(on_parts(&c, &mut u, &[(1, Heard::Status(200)), (3, Heard::Status(503))], 2_000, 0.5), Some(false));
        assert_eq!(u.retries, 1);
        assert!(matches!(&u.phase, Phase::Parts { done, .. } if done == &[1, 2]));
        assert_eq!(on_parts(&c, &mut u, &[(3, Heard::Status(200))], 9_000, 0.5), None);
        assert_eq!(u.phase, Phase::Complete);
    }

    #[test]
    fn an_answer_that_is_not_what_the_step_expects_backs_off() {
        let c = Config::default();
        let mut u = upload(10);
        let then = on_origin(&c, &mut u, Step::Presign, Heard::Status(200), b"<html>proxy</html>", 1_000, 0.5);
        assert_eq!(then, Then::Saved { moved: false });
        assert_eq!((u.retries, u.phase.clone()), (1, Phase::Presign));
        assert!(u.next_at > 1_000);
    }

    #[test]
    fn a_download_asks_for_a_presigned_get() {
        let c = Config::default();
        let call = download(&c, "a7");
        assert_eq!((call.method, call.path.as_str()), (Method::Post, "/api/assets/presign"));
        assert_eq!(call.body.as_deref(), Some(r#"{"op":"get","assetId":"a7"}"#));
        assert_eq!(
            download_url(br#"{"url": "http://s3/get", "method": "GET", "expiresAt": 1}"#).as_deref(),
            Some("http://s3/get")
        );
        assert_eq!(download_url(b"nope"), None);
    }
}

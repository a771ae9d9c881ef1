//! The page client (`shim/outpost.js`, `shim/outpost.d.ts`) and the
//! bootstrap (`shim/sw.js`) repeat names and rules the wasm defines in
//! `outpost_sw::core`. Nothing else keeps the copies equal, so this test
//! reads the shipped files and holds each copy to the Rust one.

use std::collections::BTreeSet;
use std::process::Command;

use outpost_sw::core::protocol::{
    DeadLetter, Event, QueuedWrite, Request, Status, Storage, UploadState, UploadStatus, CHANNEL, REQUEST_PREFIX,
};

fn shim(name: &str) -> String {
    let path = format!("{}/shim/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The quoted strings between `start` and the next `end` in `text`.
fn quoted_between(text: &str, start: &str, end: &str) -> BTreeSet<String> {
    let from = text.find(start).unwrap_or_else(|| panic!("{start:?} not found"));
    let rest = &text[from + start.len()..];
    let block = &rest[..rest.find(end).unwrap_or_else(|| panic!("{end:?} not found after {start:?}"))];
    block.split('\'').skip(1).step_by(2).map(str::to_string).collect()
}

/// The field names of `interface name { … }` in the `.d.ts` (top level
/// only: nested object types are skipped).
fn interface_fields(dts: &str, name: &str) -> BTreeSet<String> {
    let start = format!("export interface {name} {{");
    let from = dts.find(&start).unwrap_or_else(|| panic!("{start:?} not in outpost.d.ts"));
    let mut depth = 0;
    let mut fields = BTreeSet::new();
    let mut comment = false;
    for line in dts[from + start.len()..].lines() {
        let t = line.trim();
        if t.starts_with("/*") {
            comment = !t.contains("*/");
            continue;
        }
        if comment {
            comment = !t.contains("*/");
            continue;
        }
        if depth == 0 && t.starts_with('}') {
            break;
        }
        if depth == 0 {
            if let Some((field, _)) = t.split_once(':') {
                fields.insert(field.trim_end_matches('?').to_string());
            }
        }
        depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
    }
    fields
}

fn keys(value: serde_json::Value) -> BTreeSet<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

fn names(events: &[Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.name().to_string()).collect()
}

#[test]
fn the_events_pages_can_listen_to_are_the_ones_the_worker_sends() {
    let js = shim("outpost.js");
    let dts = shim("outpost.d.ts");
    assert_eq!(quoted_between(&js, "const EVENTS = [", "];"), names(&Event::PUBLIC), "outpost.js EVENTS");
    assert_eq!(
        quoted_between(&dts, "export type OutpostEventName =", ";"),
        names(&Event::PUBLIC),
        "outpost.d.ts OutpostEventName"
    );
    assert!(js.contains(&format!("new BroadcastChannel('{CHANNEL}')")), "outpost.js listens on {CHANNEL:?}");
    assert!(
        js.contains(&format!("e.data.type === '{}'", Event::Wake.name())),
        "outpost.js acts on the worker's wake event"
    );
}

#[test]
fn every_request_the_page_client_asks_is_one_the_worker_answers() {
    let js = shim("outpost.js");
    assert!(js.contains(&format!("type: `{REQUEST_PREFIX}${{type}}`")), "ask() prefixes {REQUEST_PREFIX:?}");
    let asked: BTreeSet<String> =
        js.split("this.ask('").skip(1).map(|rest| rest[..rest.find('\'').unwrap()].to_string()).collect();
    let known: BTreeSet<String> = Request::NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(asked, known, "requests outpost.js sends vs the ones the worker parses");
}

#[test]
fn the_status_types_in_outpost_d_ts_are_the_ones_the_worker_answers() {
    let status = Status {
        user: Some("u".into()),
        pending: 1,
        parked: 0,
        queue: vec![QueuedWrite {
            id: "1".into(),
            method: "POST".into(),
            url: "/api/x".into(),
            retries: 0,
            next_at: 1,
            status: None,
            created_at: 1,
        }],
        dead_letters: vec![DeadLetter {
            id: "2".into(),
            method: Some("POST".into()),
            url: Some("/api/x".into()),
            status: Some(400),
            reason: "refused".into(),
            at: Some(2),
        }],
        uploads: vec![UploadStatus {
            asset_id: "local-1".into(),
            server_id: None,
            filename: "a.png".into(),
            size: 3,
            done: 0,
            state: UploadState::Pending,
            reason: None,
            retry_at: None,
        }],
        storage: Storage { usage: Some(1), quota: Some(2), budget: 3, blobs: 4 },
        next_wake_at: Some(5),
        worker_started_at: 6,
        worker_heap_bytes: 7,
        storage_error: Some("why".into()),
    };
    let value: serde_json::Value = serde_json::from_str(&status.to_json().to_json()).unwrap();
    let dts = shim("outpost.d.ts");
    assert_eq!(interface_fields(&dts, "Status"), keys(value.clone()), "Status");
    assert_eq!(interface_fields(&dts, "Upload"), keys(value["uploads"][0].clone()), "Upload");
    assert_eq!(interface_fields(&dts, "DeadLetter"), keys(value["deadLetters"][0].clone()), "DeadLetter");
    for state in [UploadState::Pending, UploadState::Dead] {
        let name = state.as_str();
        assert!(dts.contains(&format!("'{name}'")), "upload state {name}");
    }
}

/// `shim/sw.js` matches the app-shell patterns itself until the wasm is
/// ready: its `outpostMatches` runs (in Node) on the table the Rust matcher
/// is tested with (`sw/src/core/pattern_cases.json`).
#[test]
fn the_bootstraps_pattern_matcher_agrees_with_the_wasms() {
    let sw = shim("sw.js");
    let from = sw.find("function outpostMatches(").expect("outpostMatches in sw.js");
    let len = sw[from..].find("\n}\n").expect("the end of outpostMatches") + 2;
    let function = &sw[from..from + len];
    let cases = include_str!("../sw/src/core/pattern_cases.json");
    let script = format!(
        "{function}\nconst cases = {cases};\nconst wrong = cases.filter(([p, path, want]) => outpostMatches(p, path) !== want);\n\
         console.log(JSON.stringify({{ n: cases.length, wrong }}));"
    );
    let out = Command::new("node")
        .args(["-e", &script])
        .output()
        .unwrap_or_else(|e| panic!("node is needed to run sw.js's matcher ({e}); run ./scripts/setup.sh"));
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("node printed JSON");
    let cases: Vec<serde_json::Value> = serde_json::from_str(cases).unwrap();
    assert_eq!(result["n"], cases.len());
    assert_eq!(result["wrong"], serde_json::json!([]), "cases where sw.js and the wasm disagree");
}

/// `OutpostConfig` in the `.d.ts` lists the fields the worker's config
/// takes: the shipped sample (`shim/outpost.config.json`, which the core's
/// tests hold to `Config::default()`) spells out every one.
#[test]
fn the_config_type_in_outpost_d_ts_has_the_fields_the_worker_takes() {
    let sample: serde_json::Value = serde_json::from_str(&shim("outpost.config.json")).unwrap();
    let dts = shim("outpost.d.ts");
    assert_eq!(interface_fields(&dts, "OutpostConfig"), keys(sample.clone()), "OutpostConfig");
    let auth = dts.split("auth?: {").nth(1).and_then(|rest| rest.split('}').next()).expect("auth in OutpostConfig");
    let auth_fields: BTreeSet<String> = auth
        .split(';')
        .filter_map(|f| f.split_once(':'))
        .map(|(k, _)| k.trim().trim_end_matches('?').to_string())
        .collect();
    assert_eq!(auth_fields, keys(sample["auth"].clone()), "OutpostConfig.auth");
}

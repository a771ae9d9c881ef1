//! Events to pages, on the BroadcastChannel `outpost`.

use serde::Serialize;
use web_sys::BroadcastChannel;

pub const CHANNEL: &str = "outpost";

pub struct Events {
    channel: Option<BroadcastChannel>,
}

impl Events {
    pub fn new() -> Self {
        Events { channel: BroadcastChannel::new(CHANNEL).ok() }
    }

    /// Posts `{type, ...fields}`; a page that is not listening loses nothing.
    pub fn emit<T: Serialize>(&self, kind: &str, fields: &T) {
        let Some(channel) = &self.channel else { return };
        let mut value = serde_json::to_value(fields).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.insert("type".into(), kind.into());
        }
        if let Ok(js) = js_sys::JSON::parse(&value.to_string()) {
            let _ = channel.post_message(&js);
        }
    }
}

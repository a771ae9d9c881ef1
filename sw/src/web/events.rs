//! Events to pages, on the BroadcastChannel `core::protocol::CHANNEL`.

use serde::Serialize;
use web_sys::BroadcastChannel;

use crate::core::protocol::{Event, CHANNEL};

pub struct Events {
    channel: Option<BroadcastChannel>,
}

impl Events {
    pub fn new() -> Self {
        Events { channel: BroadcastChannel::new(CHANNEL).ok() }
    }

    /// Posts `{type, ...fields}`; a page that is not listening loses nothing.
    pub fn emit<T: Serialize>(&self, event: Event, fields: &T) {
        let Some(channel) = &self.channel else { return };
        let mut value = serde_json::to_value(fields).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.insert("type".into(), event.name().into());
        }
        if let Ok(js) = js_sys::JSON::parse(&value.to_string()) {
            let _ = channel.post_message(&js);
        }
    }
}

//! Events to pages, on the BroadcastChannel `core::protocol::CHANNEL`.

use web_sys::BroadcastChannel;

use crate::core::json::Value;
use crate::core::protocol::{Event, CHANNEL};

pub struct Events {
    channel: BroadcastChannel,
}

impl Events {
    pub fn new() -> Self {
        Events { channel: super::global::channel(CHANNEL) }
    }

    /// Posts `{type, ...fields}`; a page that is not listening loses nothing.
    pub fn emit(&self, event: Event, mut fields: Value) {
        if let Some(map) = fields.as_object_mut() {
            map.insert("type", event.name().into());
        }
        if let Ok(js) = js_sys::JSON::parse(&fields.to_json()) {
            let _ = self.channel.post_message(&js);
        }
    }
}

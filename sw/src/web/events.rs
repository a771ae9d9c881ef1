//! Events to pages, on the BroadcastChannel `core::protocol::CHANNEL`.

use crate::core::json::Value;
use crate::core::protocol::{Event, CHANNEL};

pub struct Events;

impl Events {
    pub fn new() -> Self {
        Events
    }

    /// Posts `{type, ...fields}`; a page that is not listening loses nothing.
    pub fn emit(&self, event: Event, mut fields: Value) {
        if let Some(map) = fields.as_object_mut() {
            map.insert("type", event.name().into());
        }
        super::global::emit(CHANNEL, &fields.to_json());
    }
}

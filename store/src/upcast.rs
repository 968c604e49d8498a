//! Schema evolution: rewrite the JSON of an old event version before deserialising it.
//!
//! Stored events are never rewritten (the log is append-only and hash-chained); instead each
//! read passes the payload through the upcasters registered for its (type, version).

use serde_json::Value;
use std::fmt;

/// The transformation one upcaster applies.
pub type UpcastFn = dyn Fn(Value) -> Value + Send + Sync;

/// Turns the payload of `event_type` at `from_version` into the payload of `to_version`.
pub struct Upcaster {
    event_type: String,
    from_version: String,
    to_version: String,
    transform: Box<UpcastFn>,
}

impl Upcaster {
    /// An upcaster for `event_type` from `from_version` to `to_version`.
    pub fn new(
        event_type: impl Into<String>,
        from_version: impl Into<String>,
        to_version: impl Into<String>,
        transform: impl Fn(Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            from_version: from_version.into(),
            to_version: to_version.into(),
            transform: Box::new(transform),
        }
    }
}

impl fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcaster")
            .field("event_type", &self.event_type)
            .field("from_version", &self.from_version)
            .field("to_version", &self.to_version)
            .finish_non_exhaustive()
    }
}

/// The registered upcasters; chains them (v1 → v2 → v3) until none applies.
#[derive(Debug, Default)]
pub struct Upcasters {
    chain: Vec<Upcaster>,
}

impl Upcasters {
    /// No upcasters: payloads are deserialised as stored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an upcaster.
    pub fn with(mut self, upcaster: Upcaster) -> Self {
        self.chain.push(upcaster);
        self
    }

    /// Whether a payload of `event_type`/`event_version` is upcast at all (most are current,
    /// and can then be decoded without copying them first).
    pub fn applies(&self, event_type: &str, event_version: &str) -> bool {
        self.chain
            .iter()
            .any(|u| u.event_type == event_type && u.from_version == event_version)
    }

    /// The payload of `event_type`/`event_version` brought to the newest known version.
    pub fn upcast(&self, event_type: &str, event_version: &str, mut payload: Value) -> Value {
        let mut version = event_version.to_owned();
        // Bounded so that a cycle in a misconfigured chain cannot loop forever.
        for _ in 0..=self.chain.len() {
            let Some(step) = self
                .chain
                .iter()
                .find(|u| u.event_type == event_type && u.from_version == version)
            else {
                break;
            };
            payload = (step.transform)(payload);
            version.clone_from(&step.to_version);
        }
        payload
    }
}

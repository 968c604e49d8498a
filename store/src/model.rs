//! The values the store hands out: command metadata, recorded events, outcomes, checkpoints.

use crate::error::StoreError;
use crate::upcast::Upcasters;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Who issued a command, on which authority, and under which client-chosen id.
///
/// Stored with every event the command produced (the `metadata` column), so the log answers
/// "who decided this" even for readers that do not understand the event payloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMetadata {
    /// Client-chosen id that makes a retried command apply exactly once. Required.
    pub command_id: String,
    /// Who issued the command.
    #[serde(default)]
    pub actor: Option<String>,
    /// Ties together the commands of one user action (e.g. a request id).
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The decision reference (case number, body, date, …) as free JSON; `null` when none.
    #[serde(default)]
    pub decision: Value,
}

impl CommandMetadata {
    /// Metadata with just a command id.
    pub fn new(command_id: impl Into<String>) -> Self {
        Self {
            command_id: command_id.into(),
            actor: None,
            correlation_id: None,
            decision: Value::Null,
        }
    }

    /// Sets the actor.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Sets the decision reference.
    pub fn with_decision(mut self, decision: Value) -> Self {
        self.decision = decision;
        self
    }

    /// The JSON object stored in the `metadata` column.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "command_id": self.command_id,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "decision": self.decision,
        })
    }

    /// Reads a stored `metadata` column; missing fields become empty rather than failing, so
    /// old or hand-written rows still load.
    pub fn from_json(value: &Value) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            command_id: text("command_id").unwrap_or_default(),
            actor: text("actor"),
            correlation_id: text("correlation_id"),
            decision: value.get("decision").cloned().unwrap_or(Value::Null),
        }
    }

    /// The string map cqrs-es puts in `EventEnvelope::metadata` (the decision as JSON text).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        map.insert("command_id".to_owned(), self.command_id.clone());
        if let Some(actor) = &self.actor {
            map.insert("actor".to_owned(), actor.clone());
        }
        if let Some(c) = &self.correlation_id {
            map.insert("correlation_id".to_owned(), c.clone());
        }
        if !self.decision.is_null() {
            map.insert("decision".to_owned(), self.decision.to_string());
        }
        map
    }

    /// Reads cqrs-es metadata (`execute_with_metadata`). Without a `command_id` key a fresh id is
    /// generated: such a command is still recorded, but a retry of it is not recognised.
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        let decision = map
            .get("decision")
            .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.clone())))
            .unwrap_or(Value::Null);
        Self {
            command_id: map
                .get("command_id")
                .cloned()
                .unwrap_or_else(|| format!("generated:{}", uuid::Uuid::new_v4())),
            actor: map.get("actor").cloned(),
            correlation_id: map.get("correlation_id").cloned(),
            decision,
        }
    }
}

/// A place in the global order of all events, to resume a catch-up read after.
///
/// Opaque to callers: store it (as its `Display` string or as JSON) and hand it back to
/// [`crate::Database::read_all_after`]. On PostgreSQL it is (writing transaction id, position);
/// on SQLite the transaction part is always 0.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Checkpoint {
    tx: i64,
    position: i64,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint { tx: 0, position: 0 };

    pub(crate) fn new(tx: i64, position: i64) -> Self {
        Self { tx, position }
    }

    pub(crate) fn tx(&self) -> i64 {
        self.tx
    }

    /// The global position of the event this checkpoint points at (0 for [`Checkpoint::START`]).
    pub fn position(&self) -> i64 {
        self.position
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tx, self.position)
    }
}

impl FromStr for Checkpoint {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::InvalidCheckpoint(s.to_owned());
        let (tx, position) = s.split_once('-').ok_or_else(bad)?;
        // Digits only, as `Display` writes them: `i64`'s parser also takes `+1` and `-0`, and a
        // token read in two spellings is not the one the server issued.
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<i64>().map_err(|_| bad())
        };
        Ok(Self {
            tx: number(tx)?,
            position: number(position)?,
        })
    }
}

/// One event as stored, untyped: what catch-up readers, audits and exports see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Where this event sits in the global order; resume after it with this.
    pub checkpoint: Checkpoint,
    /// Global position (unique, increasing with insertion; on PostgreSQL *reading* order is
    /// [`RecordedEvent::checkpoint`] order, see docs/adr/0001-global-ordering.md).
    pub position: i64,
    /// The stream (aggregate id).
    pub stream_id: String,
    /// 1-based version in the stream.
    pub stream_version: u64,
    /// Event type name (`DomainEvent::event_type`).
    pub event_type: String,
    /// Event schema version (`DomainEvent::event_version`) as stored.
    pub event_version: String,
    /// The event as stored, before upcasting.
    pub payload: Value,
    /// The metadata object (see [`CommandMetadata::to_json`]).
    pub metadata: Value,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Hash of the previous event in the stream.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
    /// On the first event of each command: how many events the command appended (the rest
    /// follow it in its stream). A restore writes a command whole or not at all by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_events: Option<u32>,
}

impl RecordedEvent {
    /// The metadata as a typed value.
    pub fn command_metadata(&self) -> CommandMetadata {
        CommandMetadata::from_json(&self.metadata)
    }

    /// Upcasts the payload to today's schema and deserialises it into `E`.
    pub fn decode<E: DeserializeOwned>(&self, upcasters: &Upcasters) -> Result<E, StoreError> {
        let decoded = if upcasters.applies(&self.event_type, &self.event_version) {
            let payload =
                upcasters.upcast(&self.event_type, &self.event_version, self.payload.clone());
            serde_json::from_value(payload)
        } else {
            // A current payload is decoded where it is, without a copy.
            E::deserialize(&self.payload)
        };
        decoded.map_err(|source| StoreError::Deserialization {
            stream: self.stream_id.clone(),
            version: self.stream_version,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            source,
        })
    }
}

/// An event as a catch-up reader (the projector) reads it: its place in the log, its type and
/// its payload as stored JSON text. The metadata and the hashes stay in the database (audits and
/// exports read [`RecordedEvent`]), and the payload is decoded from its text straight into the
/// event type, without building a [`Value`] tree first: a projector decodes every event once, and
/// the tree was a quarter of its CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct CatchUpEvent {
    /// Where this event sits in the global order; resume after it with this.
    pub checkpoint: Checkpoint,
    /// Global position (see [`RecordedEvent::position`]).
    pub position: i64,
    /// The stream (aggregate id).
    pub stream_id: String,
    /// 1-based version in the stream.
    pub stream_version: u64,
    /// Event type name.
    pub event_type: String,
    /// Event schema version as stored.
    pub event_version: String,
    /// The event as stored (JSON text), before upcasting.
    pub payload: String,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
}

impl CatchUpEvent {
    /// Upcasts the payload to today's schema and deserialises it into `E`, as
    /// [`RecordedEvent::decode`] does: only a payload an upcaster applies to is parsed into a
    /// [`Value`] first.
    pub fn decode<E: DeserializeOwned>(&self, upcasters: &Upcasters) -> Result<E, StoreError> {
        let decoded = if upcasters.applies(&self.event_type, &self.event_version) {
            serde_json::from_str(&self.payload).and_then(|payload| {
                serde_json::from_value(upcasters.upcast(
                    &self.event_type,
                    &self.event_version,
                    payload,
                ))
            })
        } else {
            serde_json::from_str(&self.payload)
        };
        decoded.map_err(|source| StoreError::Deserialization {
            stream: self.stream_id.clone(),
            version: self.stream_version,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            source,
        })
    }
}

/// A committed event: the stored record and the typed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<E> {
    /// The row as stored (global position, version, hash, …).
    pub record: RecordedEvent,
    /// The event, typed.
    pub event: E,
}

/// What a command did: the events it committed, with their positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<E> {
    /// The stream the command applied to.
    pub stream_id: String,
    /// The stream's version right after this command (unchanged if it produced no events).
    pub version: u64,
    /// The committed events, in stream order; empty if the command changed nothing.
    pub events: Vec<Committed<E>>,
    /// True when the command id had already been applied and this is the original outcome,
    /// replayed from the log; nothing new was written.
    pub duplicate: bool,
}

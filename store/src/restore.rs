//! Restoring a stream's events as `omorg export` wrote them: the same rows, hashes, command ids
//! and recorded times, into a database that does not hold them yet. That is how a trial on the
//! embedded SQLite file moves to PostgreSQL, and how a database is rebuilt from an export kept
//! elsewhere, without losing what the log is for: `verify` still holds, "as known on" still
//! answers what was believed then, and a command retried after the move is still recognised.
//!
//! Nothing is decided again: the rows are checked as `verify` checks them (every hash
//! recomputed, every link followed, versions without gaps) before any is written, and a stream
//! is written in one transaction, all or nothing. A stream the database already holds is
//! accepted only as the beginning of the exported one (a restore that stopped half-way, or one
//! run twice); any other history is refused, never overwritten.

use crate::db::{AppendBatch, AppendError, Database, NewEvent};
use crate::error::StoreError;
use crate::hash::{canonical_json, event_hash, HashInput, GENESIS_HASH};
use crate::model::RecordedEvent;
use thiserror::Error;

/// Why a stream was not restored.
#[derive(Debug, Error)]
pub enum RestoreError {
    /// The exported events are not an intact chain, or do not fit the database: nothing of the
    /// stream was written.
    #[error("{stream_id} at version {version}: {reason}")]
    Refused {
        /// The stream.
        stream_id: String,
        /// The first version concerned.
        version: u64,
        /// What is wrong, for the operator.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a restore did with one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The stream.
    pub stream_id: String,
    /// Events the database held already (the same ones).
    pub kept: u64,
    /// Events written now.
    pub written: u64,
}

impl Database {
    /// Restores one stream from its exported events (versions 1..n, in order). Checks the
    /// whole chain first, keeps what the database already holds of it when that is the same
    /// beginning, and writes the rest as the commands they were, in one transaction.
    #[tracing::instrument(name = "store.restore", skip(self, events), fields(events = events.len()))]
    pub async fn restore_stream(&self, events: &[RecordedEvent]) -> Result<Restored, RestoreError> {
        let Some(first) = events.first() else {
            return Err(StoreError::Corrupt("no events to restore".into()).into());
        };
        let stream_id = first.stream_id.clone();
        let refused = |version: u64, reason: String| RestoreError::Refused {
            stream_id: stream_id.clone(),
            version,
            reason,
        };
        let mut prev = GENESIS_HASH.to_owned();
        let mut texts = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let expected = i as u64 + 1;
            if e.stream_id != stream_id {
                return Err(refused(
                    expected,
                    format!("an event of {} is among them", e.stream_id),
                ));
            }
            if e.stream_version != expected {
                return Err(refused(
                    expected,
                    format!(
                        "version {} comes in its place: the export misses events or is out of order",
                        e.stream_version
                    ),
                ));
            }
            if e.prev_hash != prev {
                return Err(refused(
                    expected,
                    "the event does not link to the one before it".into(),
                ));
            }
            let (payload, metadata) = (canonical_json(&e.payload), canonical_json(&e.metadata));
            let hash = event_hash(&HashInput {
                stream_id: &e.stream_id,
                stream_version: e.stream_version,
                event_type: &e.event_type,
                event_version: &e.event_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at: &e.recorded_at,
                prev_hash: &e.prev_hash,
            });
            if hash != e.hash {
                return Err(refused(
                    expected,
                    "the event's content does not hash to its recorded hash: it was altered after \
                     it was exported (or stored)"
                        .into(),
                ));
            }
            prev = hash;
            texts.push((payload, metadata));
        }

        let held = self.stream_events(&stream_id, 1, u64::MAX >> 1).await?;
        if held.len() > events.len() {
            return Err(refused(
                events.len() as u64 + 1,
                format!(
                    "the database holds {} events of it, the export {}: it is further on here",
                    held.len(),
                    events.len()
                ),
            ));
        }
        if let Some(differs) = held.iter().zip(events).position(|(h, e)| h.hash != e.hash) {
            return Err(refused(
                differs as u64 + 1,
                "the database holds another history of this stream; it is never overwritten".into(),
            ));
        }
        let kept = held.len();

        // The rest, as the commands that wrote them: consecutive events with one command id
        // and one recorded time. The first of each carries the id (exactly once after the move).
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for i in kept..events.len() {
            if command_of(&events[i]).is_empty() {
                return Err(refused(
                    i as u64 + 1,
                    "the event's metadata names no command id".into(),
                ));
            }
            match groups.last_mut() {
                Some((start, end))
                    if command_of(&events[*start]) == command_of(&events[i])
                        && events[*start].recorded_at == events[i].recorded_at =>
                {
                    *end = i + 1
                }
                _ => groups.push((i, i + 1)),
            }
        }
        let rows: Vec<Vec<NewEvent>> = groups
            .iter()
            .map(|&(start, end)| {
                (start..end)
                    .map(|i| NewEvent {
                        version: events[i].stream_version,
                        event_type: events[i].event_type.clone(),
                        event_version: events[i].event_version.clone(),
                        payload: events[i].payload.clone(),
                        payload_text: texts[i].0.clone(),
                        prev_hash: events[i].prev_hash.clone(),
                        hash: events[i].hash.clone(),
                    })
                    .collect()
            })
            .collect();
        let batches: Vec<AppendBatch<'_>> = groups
            .iter()
            .zip(&rows)
            .map(|(&(start, _), rows)| AppendBatch {
                stream_id: &stream_id,
                command_id: command_of(&events[start]),
                events: rows,
                metadata: &texts[start].1,
                recorded_at: events[start].recorded_at,
            })
            .collect();
        match self.append_all(&batches).await {
            Ok(_) => {}
            Err(AppendError::UniqueViolation) => {
                return Err(refused(
                    kept as u64 + 1,
                    "a version or a command id of it is taken in this database (written \
                     meanwhile, or a command id used on another stream); nothing was written"
                        .into(),
                ))
            }
            Err(AppendError::Store(e)) => return Err(e.into()),
        }
        Ok(Restored {
            stream_id: stream_id.clone(),
            kept: kept as u64,
            written: (events.len() - kept) as u64,
        })
    }
}

/// The command id an event was written under, from its metadata (hashed with it, so it can be
/// trusted once the hash is checked).
fn command_of(e: &RecordedEvent) -> &str {
    e.metadata
        .get("command_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

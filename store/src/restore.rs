//! Restoring a stream's events as `omorg export` wrote them: the same rows, hashes, command ids
//! and recorded times, into a database that does not hold them yet. That is how a trial on the
//! embedded SQLite file moves to PostgreSQL, and how a database is rebuilt from an export kept
//! elsewhere, without losing what the log is for: `verify` still holds, "as known on" still
//! answers what was believed then, and a command retried after the move is still recognised.
//!
//! Nothing is decided again: the rows are checked as `verify` checks them (every hash
//! recomputed, every link followed, versions without gaps, every batch whole) before any is
//! written, and the whole file is written in one transaction, in the file's order (so the new
//! database's global order follows the old one's), all or nothing. A stream the database already
//! holds is accepted only as the beginning of the exported one (a file restored before, or an
//! export that has gone on since); any other history is refused, never overwritten.

use crate::db::{AppendBatch, AppendError, Database, NewEvent};
use crate::error::StoreError;
use crate::hash::{canonical_json, event_hash, HashInput, GENESIS_HASH};
use crate::model::RecordedEvent;
use thiserror::Error;

/// Why a file was not restored (nothing of it was written).
#[derive(Debug, Error)]
pub enum RestoreError {
    /// The exported events of a stream are not an intact chain, or do not fit the database.
    #[error("{stream_id} at version {version}: {reason}")]
    Refused {
        /// The stream.
        stream_id: String,
        /// The first version concerned.
        version: u64,
        /// What is wrong, for the operator.
        reason: String,
    },
    /// A version or a command id of the file was written to its stream by someone else while
    /// the restore ran (the file was checked against what the stream held before).
    #[error(
        "a version or a command id of the file was taken in this database while the restore ran \
         (another writer on the same timeline); run the restore again"
    )]
    Taken,
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
    /// Restores the exported `events` (one or more streams, each in version order, as
    /// `omorg export` writes them): checks every stream's chain, keeps what the database already
    /// holds of a stream when it is the same beginning, and writes the rest as the commands they
    /// were, in the file's order, in **one** transaction. Returns each stream's outcome, in the
    /// order the file first names it.
    #[tracing::instrument(name = "store.restore", skip(self, events), fields(events = events.len()))]
    pub async fn restore(&self, events: &[RecordedEvent]) -> Result<Vec<Restored>, RestoreError> {
        // Each stream's events, in the order the file first names it.
        let mut streams: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match streams.iter_mut().find(|(id, _)| *id == e.stream_id) {
                Some((_, at)) => at.push(i),
                None => streams.push((&e.stream_id, vec![i])),
            }
        }
        let mut texts: Vec<(String, String)> = vec![Default::default(); events.len()];
        let mut kept: Vec<(&str, usize)> = Vec::with_capacity(streams.len());
        for (stream_id, at) in &streams {
            check_chain(stream_id, at, events, &mut texts)?;
            kept.push((stream_id, self.held_prefix(stream_id, at, events).await?));
        }

        // The rest, in the file's order, as the commands that wrote them: consecutive events of
        // one stream with one command id and one recorded time. The first of each carries the
        // id (exactly once after the move).
        let held = |stream: &str| kept.iter().find(|(s, _)| *s == stream).map_or(0, |k| k.1);
        let cut = |e: &RecordedEvent, has: usize, of: u32| RestoreError::Refused {
            stream_id: e.stream_id.clone(),
            version: e.stream_version,
            reason: format!(
                "the file holds {has} of the {of} events of command {} from here: it is cut or \
                 reordered (a command is written whole or not at all)",
                command_of(e)
            ),
        };
        // (first, end, the size the first event gives): a command's events follow its first
        // in the file (they were written in one statement), `command_events` of them. An export
        // of an older omorg has no sizes: consecutive events of one stream with one command id
        // and one recorded time are one command then.
        let mut groups: Vec<(usize, usize, Option<u32>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if e.stream_version <= held(&e.stream_id) as u64 {
                continue;
            }
            if command_of(e).is_empty() {
                return Err(RestoreError::Refused {
                    stream_id: e.stream_id.clone(),
                    version: e.stream_version,
                    reason: "the event's metadata names no command id".into(),
                });
            }
            let continues = |start: usize, end: usize| {
                end == i
                    && events[start].stream_id == e.stream_id
                    && command_of(&events[start]) == command_of(e)
                    && events[start].recorded_at == e.recorded_at
            };
            match groups.last_mut() {
                Some((start, end, Some(n))) if *end - *start < *n as usize => {
                    if !continues(*start, *end) || e.command_events.is_some() {
                        return Err(cut(&events[*start], *end - *start, *n));
                    }
                    *end = i + 1;
                }
                Some((start, end, None))
                    if e.command_events.is_none() && continues(*start, *end) =>
                {
                    *end = i + 1
                }
                _ => groups.push((i, i + 1, e.command_events)),
            }
        }
        if let Some(&(start, end, Some(n))) = groups.last() {
            if end - start < n as usize {
                return Err(cut(&events[start], end - start, n));
            }
        }
        let rows: Vec<Vec<NewEvent>> = groups
            .iter()
            .map(|&(start, end, _)| {
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
            .map(|(&(start, _, _), rows)| AppendBatch {
                stream_id: &events[start].stream_id,
                command_id: command_of(&events[start]),
                events: rows,
                metadata: &texts[start].1,
                recorded_at: events[start].recorded_at,
            })
            .collect();
        match self.append_all(&batches).await {
            Ok(_) => {}
            Err(AppendError::UniqueViolation) => return Err(RestoreError::Taken),
            Err(AppendError::Store(e)) => return Err(e.into()),
        }
        Ok(streams
            .iter()
            .map(|(stream_id, at)| {
                let kept = held(stream_id);
                Restored {
                    stream_id: (*stream_id).to_owned(),
                    kept: kept as u64,
                    written: (at.len() - kept) as u64,
                }
            })
            .collect())
    }

    /// How many of a stream's exported events (`at`, indexes into `events`) the database holds
    /// already: all of its events must be the same beginning of the export's, or it is refused.
    async fn held_prefix(
        &self,
        stream_id: &str,
        at: &[usize],
        events: &[RecordedEvent],
    ) -> Result<usize, RestoreError> {
        let refused = |version: usize, reason: String| RestoreError::Refused {
            stream_id: stream_id.to_owned(),
            version: version as u64,
            reason,
        };
        let held = self.stream_events(stream_id, 1, u64::MAX >> 1).await?;
        // Another history first: a longer one that differs is not merely "further on".
        if let Some(differs) = held
            .iter()
            .zip(at)
            .position(|(h, &i)| h.hash != events[i].hash)
        {
            return Err(refused(
                differs + 1,
                "the database holds another history of this timeline; it is never overwritten"
                    .into(),
            ));
        }
        if held.len() > at.len() {
            return Err(refused(
                at.len() + 1,
                format!(
                    "the database holds {} events of it, the file the first {} of them: it is \
                     further on here (nothing to restore)",
                    held.len(),
                    at.len()
                ),
            ));
        }
        Ok(held.len())
    }
}

/// Checks one stream's exported events (`at`, indexes into `events`) as `verify` would: versions
/// 1..n without gaps, every link, every hash. Fills `texts` with their canonical payload and
/// metadata, as hashed and as they are stored.
fn check_chain(
    stream_id: &str,
    at: &[usize],
    events: &[RecordedEvent],
    texts: &mut [(String, String)],
) -> Result<(), RestoreError> {
    let refused = |version: u64, reason: String| RestoreError::Refused {
        stream_id: stream_id.to_owned(),
        version,
        reason,
    };
    let mut prev = GENESIS_HASH.to_owned();
    for (n, &i) in at.iter().enumerate() {
        let (e, expected) = (&events[i], n as u64 + 1);
        if e.stream_version != expected {
            return Err(refused(
                expected,
                format!(
                    "version {} comes in its place: the file misses events or is out of order",
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
                "the event's content does not hash to its recorded hash: it was altered after it \
                 was exported (or stored)"
                    .into(),
            ));
        }
        prev = hash;
        texts[i] = (payload, metadata);
    }
    Ok(())
}

/// The command id an event was written under, from its metadata (hashed with it, so it can be
/// trusted once the hash is checked).
fn command_of(e: &RecordedEvent) -> &str {
    e.metadata
        .get("command_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

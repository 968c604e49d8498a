//! Walks a stream's hash chain and names the first event that does not match.

use crate::db::Database;
use crate::error::StoreError;
use crate::hash::{canonical_json, event_hash, HashInput, GENESIS_HASH};
use serde::Serialize;

/// Events read per query while walking a chain, to bound memory on long streams.
const PAGE: u64 = 1000;

/// The result of [`Database::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The stream that was walked.
    pub stream_id: String,
    /// How many events were checked (up to and including the first break).
    pub events_checked: u64,
    /// Version and hash of the last event when the chain is intact: an auditor can record it
    /// outside the database to detect later truncation of the tail.
    pub head: Option<(u64, String)>,
    /// The first event that does not match, if any.
    pub first_break: Option<ChainBreak>,
}

impl Verification {
    /// True when every event matches its hash and the chain has no gap.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The first place where a stream's chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The stream.
    pub stream_id: String,
    /// The version of the event that does not match (for a missing event: the version that
    /// should be there).
    pub version: u64,
    /// What is wrong with it.
    pub kind: BreakKind,
}

/// What is wrong at a [`ChainBreak`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BreakKind {
    /// The event's content no longer hashes to its stored hash: it was edited in place.
    Altered,
    /// The event's `prev_hash` is not the hash of the event before it: the previous event was
    /// replaced wholesale (content and hash rewritten), or this one was re-chained. Against a
    /// recorded head: the event at the head has another hash than the one recorded.
    Relinked,
    /// The event hashes as stored, but its command columns (the command id and size the log
    /// keeps beside the hashed metadata, by which a retry is recognised) do not agree with its
    /// metadata or with the events around it: they were edited, so a retry could be answered
    /// with another command's events. `detail` says what disagrees.
    CommandAltered {
        /// What disagrees, for the auditor.
        detail: String,
    },
    /// The event with this version is absent: `found` is the version that came instead
    /// (deleted or out-of-sequence rows), or `None` when the stream ends before a head recorded
    /// earlier ([`Database::verify_against`]): its tail was deleted.
    Missing {
        /// The version found in its place, if any.
        found: Option<u64>,
    },
}

impl Database {
    /// Recomputes every hash of `stream_id` in version order and reports the first event that
    /// does not match. Reads only; safe to run on a live store.
    ///
    /// A deleted tail leaves an intact, shorter chain; to catch it, keep the `head` of a
    /// verification outside the database and pass it to [`Database::verify_against`].
    #[tracing::instrument(name = "store.verify", skip(self))]
    pub async fn verify(&self, stream_id: &str) -> Result<Verification, StoreError> {
        self.walk(stream_id, None).await
    }

    /// Like [`Database::verify`], and also checks that the stream still reaches `head` (the
    /// `(version, hash)` of an earlier verification) with the same hash there.
    #[tracing::instrument(name = "store.verify_against", skip(self, head))]
    pub async fn verify_against(
        &self,
        stream_id: &str,
        head: &(u64, String),
    ) -> Result<Verification, StoreError> {
        self.walk(stream_id, Some(head)).await
    }

    async fn walk(
        &self,
        stream_id: &str,
        head: Option<&(u64, String)>,
    ) -> Result<Verification, StoreError> {
        let mut checked = 0u64;
        let mut expected_version = 1u64;
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut head_hash_seen: Option<String> = None;
        // The command being walked: its id and how many of its events are still to come.
        let mut command: Option<Walked> = None;
        let broken = |version, kind, checked| Verification {
            stream_id: stream_id.to_owned(),
            events_checked: checked,
            head: None,
            first_break: Some(ChainBreak {
                stream_id: stream_id.to_owned(),
                version,
                kind,
            }),
        };
        loop {
            // Page by version from the last one seen, so a gap shows up as a jump.
            let from = expected_version;
            let page = self
                .stream_rows(stream_id, from, from.saturating_add(PAGE - 1).max(from))
                .await?;
            let page = if page.is_empty() {
                // A gap wider than a page: look for the next event at all.
                self.stream_rows(stream_id, from, i64::MAX as u64).await?
            } else {
                page
            };
            if page.is_empty() {
                break;
            }
            let (first, last) = (page[0].0, page[page.len() - 1].0);
            let columns = self.command_columns(stream_id, first, last).await?;
            for (n, (version, event)) in page.iter().enumerate() {
                checked += 1;
                if *version != expected_version {
                    let kind = BreakKind::Missing {
                        found: Some(*version),
                    };
                    return Ok(broken(expected_version, kind, checked));
                }
                // A row that no longer decodes (payload not JSON, a time that is not a time) was
                // edited in place: that is what verify is for, not a reason to fail.
                let Ok(event) = event else {
                    return Ok(broken(*version, BreakKind::Altered, checked));
                };
                if event.prev_hash != prev_hash {
                    return Ok(broken(event.stream_version, BreakKind::Relinked, checked));
                }
                let recomputed = event_hash(&HashInput {
                    stream_id: &event.stream_id,
                    stream_version: event.stream_version,
                    event_type: &event.event_type,
                    event_version: &event.event_version,
                    payload: &canonical_json(&event.payload),
                    metadata: &canonical_json(&event.metadata),
                    recorded_at: &event.recorded_at,
                    prev_hash: &event.prev_hash,
                });
                if recomputed != event.hash {
                    return Ok(broken(event.stream_version, BreakKind::Altered, checked));
                }
                let (id, size) = columns
                    .get(n)
                    .filter(|(v, _, _)| v == version)
                    .map(|(_, id, size)| (id.as_deref(), *size))
                    .unwrap_or_default();
                let at = event.stream_version;
                if let Err((version, detail)) =
                    follow_command(&mut command, &event.metadata, at, id, size)
                {
                    let kind = BreakKind::CommandAltered { detail };
                    return Ok(broken(version, kind, checked));
                }
                if head.is_some_and(|(v, _)| *v == event.stream_version) {
                    head_hash_seen = Some(event.hash.clone());
                }
                prev_hash.clone_from(&event.hash);
                expected_version += 1;
            }
        }
        let last = expected_version - 1;
        if let Some(Walked {
            id, left: missing, ..
        }) = command.filter(|c| c.left > 0)
        {
            // The stream ends inside a command: its last events were deleted.
            let detail = format!(
                "command {id} wrote {missing} more event(s) than the stream holds: its last \
                 events were deleted"
            );
            let kind = BreakKind::CommandAltered { detail };
            return Ok(broken(expected_version, kind, checked));
        }
        if let Some((head_version, head_hash)) = head {
            if last < *head_version {
                let kind = BreakKind::Missing { found: None };
                return Ok(broken(expected_version, kind, checked));
            }
            if head_hash_seen.as_deref() != Some(head_hash.as_str()) {
                // Every event checks out, yet the one at the recorded head has another hash: the
                // chain up to it was rewritten consistently.
                return Ok(broken(*head_version, BreakKind::Relinked, checked));
            }
        }
        Ok(Verification {
            stream_id: stream_id.to_owned(),
            events_checked: checked,
            head: (last > 0).then_some((last, prev_hash)),
            first_break: None,
        })
    }
}

/// The command being walked: its id, the version of its first event, and how many of its
/// events are still to come.
#[derive(Debug, Clone)]
struct Walked {
    id: String,
    first: u64,
    left: u64,
}

/// Checks the command columns of the event at `version` against its metadata and the command
/// being walked, and moves on. The first event of a command carries the metadata's command id
/// and the command's size; the others carry neither and the same metadata command id. A break
/// is reported at the row whose columns are wrong: for a size too small, the command's first.
fn follow_command(
    command: &mut Option<Walked>,
    metadata: &serde_json::Value,
    version: u64,
    id: Option<&str>,
    size: Option<i64>,
) -> Result<(), (u64, String)> {
    let said = metadata
        .get("command_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    match command.as_mut() {
        Some(current) if current.left > 0 => {
            if id.is_some() || size.is_some() {
                return Err((
                    version,
                    format!(
                        "the event is marked as the first of command {} ({} event(s)), but \
                         command {} has {} more event(s) to come",
                        id.unwrap_or("?"),
                        size.map_or("?".to_owned(), |n| n.to_string()),
                        current.id,
                        current.left
                    ),
                ));
            }
            if said != current.id {
                return Err((
                    version,
                    format!(
                        "the event's metadata names command {said}, but it stands inside \
                         command {}",
                        current.id
                    ),
                ));
            }
            current.left -= 1;
            Ok(())
        }
        previous => match (id, size) {
            (Some(id), Some(size)) if id == said && size >= 1 => {
                *command = Some(Walked {
                    id: id.to_owned(),
                    first: version,
                    left: size as u64 - 1,
                });
                Ok(())
            }
            (Some(id), Some(_)) if id != said => Err((
                version,
                format!(
                    "the log records command id {id} for the event, its metadata {said}: a \
                     retry of {id} would be answered with this command's events"
                ),
            )),
            // Unmarked, and of the command before it: that command's size was cut short.
            (None, None) if previous.as_ref().is_some_and(|p| p.id == said) => {
                let p = previous.as_ref().map_or(version, |p| p.first);
                Err((
                    p,
                    format!(
                        "the log records command {said} as ending before version {version}, \
                         which its metadata puts in that command too: the command's size was \
                         edited"
                    ),
                ))
            }
            (id, size) => Err((
                version,
                format!(
                    "the event starts command {said} but the log records {} for its command id \
                     and {} for its size",
                    id.map_or("nothing".to_owned(), |id| format!("`{id}`")),
                    size.map_or("nothing".to_owned(), |n| n.to_string()),
                ),
            )),
        },
    }
}

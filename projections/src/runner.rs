//! The projector as a background task of the server, and read-your-writes for queries.
//!
//! The server spawns one [`ProjectionRunner`]: it catches up at start, then shortly after a
//! command (commands arriving meanwhile are projected in the same round), at once when a reader
//! waits, and every poll interval. A query handler calls [`ProjectionRunner::sync_streams`]
//! first: it notes the newest event committed so far on the timelines it reads, wakes the runner
//! and waits until that event is projected, so a client always sees its own writes
//! ([`ProjectionRunner::sync`] waits for every timeline's). Several servers on one PostgreSQL
//! each run one; the projector's advisory lock makes them take turns, and each applies every
//! event once.

use crate::error::ProjectionError;
use crate::projector::{applied_up_to, log_head, streams_head_applied, Projector};
use omorg_store::Database;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How often the runner looks for new events when nobody wakes it (events written by another
/// server instance arrive this way).
pub const POLL: Duration = Duration::from_millis(500);

/// How long the runner lets commands gather after a command woke it, unless a reader is waiting
/// (`omorg serve --projector-gather-ms`). A round costs about ten statements however few events
/// it applies, and a batch of many events costs much less per event than a batch of one: under a
/// stream of commands, short rounds cost the server more than the commands themselves. Readers
/// through the API never wait for this ([`ProjectionRunner::sync`] wakes the runner at once);
/// readers of the tables through plain SQL see a command this much later.
pub const GATHER: Duration = Duration::from_millis(100);

/// Handle to the background projector.
#[derive(Clone)]
pub struct ProjectionRunner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProjectionRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("caught_up", &self.has_caught_up())
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: Database,
    /// Wakes the runner after a command (it then lets more gather for [`GATHER`]).
    wake: Notify,
    /// Wakes the runner at once: a reader is waiting.
    urgent: Notify,
    /// Bumped after every catch-up round, so that waiting readers re-check.
    rounds: watch::Sender<u64>,
    /// Tells the runner to stop (graceful shutdown).
    stop: watch::Sender<bool>,
    /// Set once the first round after start succeeded: the read models then hold every event
    /// committed before the server started (readiness; a replay after an upgrade can take long).
    caught_up: AtomicBool,
    /// The newest event committed when the runner started: what it must reach to be caught up.
    start_head: OnceLock<i64>,
}

impl Inner {
    /// Sets `caught_up` once every event committed before the runner started is projected (a
    /// round can stop short of them while a transaction elsewhere on the server is in flight).
    async fn note_if_caught_up(&self) {
        let start_head = match self.start_head.get() {
            Some(head) => *head,
            None => match log_head(&self.db).await {
                Ok(head) => *self.start_head.get_or_init(|| head),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the log head; readiness waits");
                    return;
                }
            },
        };
        match applied_up_to(&self.db, start_head).await {
            Ok(true) => {
                self.caught_up.store(true, Ordering::Release);
                tracing::info!("projections caught up with the event log");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the projector's checkpoint"),
        }
    }
}

impl ProjectionRunner {
    /// Spawns the runner on `db` (migrated), gathering commands for [`GATHER`]. It stops when
    /// [`ProjectionRunner::shutdown`] is called.
    pub fn spawn(db: Database) -> (Self, JoinHandle<()>) {
        Self::spawn_gathering(db, GATHER)
    }

    /// [`ProjectionRunner::spawn`], letting commands gather for `gather` after one wakes the
    /// runner.
    pub fn spawn_gathering(db: Database, gather: Duration) -> (Self, JoinHandle<()>) {
        let inner = Arc::new(Inner {
            db: db.clone(),
            wake: Notify::new(),
            urgent: Notify::new(),
            rounds: watch::channel(0).0,
            stop: watch::channel(false).0,
            caught_up: AtomicBool::new(false),
            start_head: OnceLock::new(),
        });
        let task_inner = inner.clone();
        let handle = tokio::spawn(async move {
            let mut projector = Projector::new(db);
            let mut stop = task_inner.stop.subscribe();
            if let Ok(head) = log_head(&task_inner.db).await {
                let _ = task_inner.start_head.set(head);
            }
            loop {
                match projector.catch_up(|_| {}).await {
                    Ok(_) if !task_inner.caught_up.load(Ordering::Acquire) => {
                        task_inner.note_if_caught_up().await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "projection round failed; retrying"),
                }
                task_inner.rounds.send_modify(|r| *r += 1);
                tokio::select! {
                    _ = task_inner.wake.notified() => {
                        tokio::select! {
                            _ = tokio::time::sleep(gather) => {}
                            _ = task_inner.urgent.notified() => {}
                            _ = stop.changed() => return,
                        }
                    }
                    _ = task_inner.urgent.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => return,
                }
            }
        });
        (Self { inner }, handle)
    }

    /// True once the runner has projected every event committed before it started (its first
    /// round succeeded). A server is not ready before: queries would wait and answer 503.
    pub fn has_caught_up(&self) -> bool {
        self.inner.caught_up.load(Ordering::Acquire)
    }

    /// Wakes the runner: new events were just committed.
    pub fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    /// Waits until every event committed before this call is projected, for up to `patience`.
    #[tracing::instrument(name = "projections.sync", skip(self))]
    pub async fn sync(&self, patience: Duration) -> Result<(), ProjectionError> {
        let head = log_head(&self.inner.db).await?;
        self.sync_to(head, patience).await
    }

    /// Waits, for up to `patience`, until the read models of the timelines `streams` hold every
    /// event of theirs committed before this call (and so every event before those in the
    /// log's order). Unlike [`ProjectionRunner::sync`] it does not wait for events of other
    /// timelines committed after them: a large import into one timeline does not hold up
    /// readers of another.
    #[tracing::instrument(name = "projections.sync_streams", skip(self))]
    pub async fn sync_streams(
        &self,
        streams: &[&str],
        patience: Duration,
    ) -> Result<(), ProjectionError> {
        let (head, applied) = streams_head_applied(&self.inner.db, streams).await?;
        if applied {
            return Ok(());
        }
        self.sync_to(head, patience).await
    }

    /// Waits until every event at or below global position `head` is projected.
    async fn sync_to(&self, head: i64, patience: Duration) -> Result<(), ProjectionError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut rounds = self.inner.rounds.subscribe();
        loop {
            if applied_up_to(&self.inner.db, head).await? {
                return Ok(());
            }
            self.inner.urgent.notify_one();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ProjectionError::Lagging {
                    head,
                    waited: patience,
                });
            }
            // Wake on the next round, but re-check at least every 50 ms: a round may finish
            // between our check and our subscription.
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(50)), rounds.changed()).await;
        }
    }

    /// Stops the runner after its current round.
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
    }
}

//! Group commit for PostgreSQL appends.
//!
//! Every append of a [`crate::Store`] on PostgreSQL goes through its [`Committer`], which owns a
//! few connections of its own (outside the pool). An append that finds one of them free takes it
//! and is written at once, alone, by the command's own task: no hand-over to another task, so a
//! lone client pays nothing for the committer. Appends that arrive while every connection is busy
//! wait in a queue, and whichever connection is released next is handed, with every append then
//! waiting (up to [`MAX_GROUP`]), to a task that writes them in **one** statement, i.e. one round
//! trip and one commit for the group. That is where the throughput under concurrent commands
//! comes from: the per-statement and per-commit work of PostgreSQL is shared by the group, while
//! each command still gets its answer only after its events are durably committed.
//!
//! A group is all or nothing in the database, but never for the commands: if the group
//! statement fails (a stream version taken by another process, a command id used twice, any
//! error at all), its commands are appended one by one, so each gets its own outcome, exactly as
//! if it had been alone. A retry of a command that did commit in a failed attempt is refused by
//! the unique keys and answered by the store with its original outcome.
//!
//! The connections are leased, never lost: a [`Lease`] gives its connection back when dropped,
//! also when the command's future is dropped mid-append (a client that hung up). The connection
//! is then closed, since its protocol state is unknown, and its slot is reopened on next use.
//! Whoever gives a connection back also serves the queue, so an append never waits for a
//! connection that nobody will release.

use crate::db::{pg_append, pg_append_group, AppendBatch, AppendError, NewEvent};
use crate::error::StoreError;
use crate::model::Checkpoint;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Most commands one group statement carries (each of at most `PG_VALUES_MAX_EVENTS` events).
const MAX_GROUP: usize = 16;

/// One command's append, owned so that it can wait in the queue; it comes back with the result.
#[derive(Debug)]
pub(crate) struct OwnedAppend {
    pub stream_id: String,
    pub command_id: String,
    pub events: Vec<NewEvent>,
    pub metadata: Value,
    /// `metadata` as canonical JSON text, as hashed and as stored.
    pub metadata_text: String,
    pub recorded_at: DateTime<Utc>,
}

impl OwnedAppend {
    /// The borrowed form the database functions take.
    pub fn view(&self) -> AppendBatch<'_> {
        AppendBatch {
            stream_id: &self.stream_id,
            command_id: &self.command_id,
            events: &self.events,
            metadata: &self.metadata_text,
            recorded_at: self.recorded_at,
        }
    }
}

/// The append given back with how it went.
pub(crate) type Reply = (OwnedAppend, Result<Vec<Checkpoint>, AppendError>);

/// A queued append and where its answer goes.
struct Job {
    append: OwnedAppend,
    reply: oneshot::Sender<Reply>,
}

/// The append connections of one store (and its clones).
#[derive(Debug)]
pub(crate) struct Committer {
    shared: Arc<Shared>,
}

/// What the committer and its leases share.
struct Shared {
    options: PgConnectOptions,
    state: Mutex<State>,
}

/// Free connections and waiting appends; at any time one of the two is empty.
struct State {
    /// Connections not in use; `None` is a slot whose connection is opened on first use.
    idle: Vec<Option<PgConnection>>,
    queue: VecDeque<Job>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Held only to move a connection or a job, never across an await: a panic cannot have
        // left the state half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The next group: the queue's first appends, up to [`MAX_GROUP`].
    fn next_group(&mut self) -> Vec<Job> {
        let n = self.queue.len().min(MAX_GROUP);
        self.queue.drain(..n).collect()
    }
}

impl Committer {
    /// A committer with `connections` (at least one) connections made with `options`, each
    /// opened on first use. Needs no runtime until the first append.
    pub fn new(options: PgConnectOptions, connections: usize) -> Self {
        let idle = (0..connections.max(1)).map(|_| None).collect();
        Self {
            shared: Arc::new(Shared {
                options,
                state: Mutex::new(State {
                    idle,
                    queue: VecDeque::new(),
                }),
            }),
        }
    }

    /// Appends one command's events and gives the append back with its result: at once on a
    /// free connection, else with the group written when the next connection is released.
    /// The error says that the outcome is unknown: the task writing the group was stopped (its
    /// runtime shut down) before it answered. A retry under the same command id is safe.
    pub async fn append(&self, append: OwnedAppend) -> Result<Reply, oneshot::error::RecvError> {
        // A free connection, or else a place in the queue.
        let taken = {
            let mut state = self.shared.state();
            match state.idle.pop() {
                Some(conn) => Ok((conn, append)),
                None => {
                    let (reply, answer) = oneshot::channel();
                    state.queue.push_back(Job { append, reply });
                    Err(answer)
                }
            }
        };
        let (conn, append) = match taken {
            Ok(taken) => taken,
            Err(answer) => return answer.await,
        };
        let mut lease = Lease::new(Arc::clone(&self.shared), conn);
        lease.clean = false;
        let result = append_alone(&mut lease.conn, &self.shared.options, &append).await;
        lease.clean = true;
        drop(lease);
        Ok((append, result))
    }
}

/// A connection taken from the committer. Dropping it gives the connection back, or, when
/// appends are waiting, hands it to a new task that writes them.
struct Lease {
    shared: Arc<Shared>,
    conn: Option<PgConnection>,
    /// False while a statement may be in flight: a lease dropped then (its future was dropped)
    /// closes the connection rather than reuse one whose protocol state is unknown.
    clean: bool,
}

impl Lease {
    fn new(shared: Arc<Shared>, conn: Option<PgConnection>) -> Self {
        Self {
            shared,
            conn,
            clean: true,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let conn = if self.clean { self.conn.take() } else { None };
        let jobs = {
            let mut state = self.shared.state();
            if state.queue.is_empty() {
                state.idle.push(conn);
                return;
            }
            state.next_group()
        };
        let lease = Lease::new(Arc::clone(&self.shared), conn);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(serve_queue(lease, jobs));
            }
            // No runtime to write them in: dropping the jobs tells their callers that the
            // outcome is unknown, and dropping the lease serves (or fails) the rest.
            Err(_) => drop((lease, jobs)),
        }
    }
}

/// Writes `jobs`, then every group that queued meanwhile, on the leased connection; the lease,
/// dropped at the end, gives the connection back.
async fn serve_queue(mut lease: Lease, mut jobs: Vec<Job>) {
    loop {
        lease.clean = false;
        write(&mut lease.conn, &lease.shared.options, jobs).await;
        lease.clean = true;
        jobs = lease.shared.state().next_group();
        if jobs.is_empty() {
            break;
        }
    }
}

/// Writes `jobs`: as one group when there are several small ones, else (or when the group
/// fails) one by one.
#[tracing::instrument(name = "store.group_commit", level = "debug", skip_all, fields(commands = jobs.len()))]
async fn write(conn: &mut Option<PgConnection>, options: &PgConnectOptions, jobs: Vec<Job>) {
    let (small, large): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|j| j.append.events.len() <= crate::db::PG_VALUES_MAX_EVENTS);
    let mut alone = large;
    if small.len() > 1 {
        let result = match connection(conn, options).await {
            Ok(c) => {
                let views: Vec<AppendBatch<'_>> = small.iter().map(|j| j.append.view()).collect();
                pg_append_group(c, &views).await
            }
            Err(e) => Err(AppendError::Store(e)),
        };
        match result {
            Ok(checkpoints) => {
                for (job, checkpoints) in small.into_iter().zip(checkpoints) {
                    let _ = job.reply.send((job.append, Ok(checkpoints)));
                }
            }
            Err(e) => {
                forget_if_broken(conn, &e);
                alone.extend(small);
            }
        }
    } else {
        alone.extend(small);
    }
    for job in alone {
        let result = append_alone(conn, options, &job.append).await;
        // The caller may have gone (its request was dropped): the append stands regardless.
        let _ = job.reply.send((job.append, result));
    }
}

/// Appends one command on `conn`, once more on a new connection if this one was lost (a
/// PostgreSQL restart, a terminated backend, a connection of a runtime that has shut down).
/// Safe even if the first attempt committed: its rows hold the version and the command id, so
/// the retry is refused and the store answers the original outcome.
async fn append_alone(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    append: &OwnedAppend,
) -> Result<Vec<Checkpoint>, AppendError> {
    let result = append_once(conn, options, append).await;
    if result.as_ref().is_err_and(lost_connection) {
        return append_once(conn, options, append).await;
    }
    result
}

/// One attempt of [`append_alone`]; drops the connection after an error that may have left it
/// unusable.
async fn append_once(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    append: &OwnedAppend,
) -> Result<Vec<Checkpoint>, AppendError> {
    let result = match connection(conn, options).await {
        Ok(c) => pg_append(&mut *c, &append.view()).await,
        Err(e) => Err(AppendError::Store(e)),
    };
    if let Err(e) = &result {
        forget_if_broken(conn, e);
    }
    result
}

/// The lease's connection, opened on first use and after a failure.
async fn connection<'c>(
    conn: &'c mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<&'c mut PgConnection, StoreError> {
    if conn.is_none() {
        *conn = Some(options.connect().await?);
    }
    conn.as_mut()
        .ok_or_else(|| StoreError::Corrupt("append connection missing".into()))
}

/// Drops the connection after any error but a unique violation (the usual refusal, after which
/// the connection is fine): the next append opens a new one. Errors are rare, and a connection
/// the server terminated reports that as a database error too (SQLSTATE 57P01), so only the
/// unique violation is trusted to leave the connection usable.
fn forget_if_broken(conn: &mut Option<PgConnection>, error: &AppendError) {
    if !matches!(error, AppendError::UniqueViolation) {
        *conn = None;
    }
}

/// Whether `error` says the connection was lost rather than the append refused: I/O or protocol
/// failures, or the server ending the session (SQLSTATE classes 08 and 57).
fn lost_connection(error: &AppendError) -> bool {
    match error {
        AppendError::Store(StoreError::Database(e)) => match e {
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
            _ => false,
        },
        _ => false,
    }
}

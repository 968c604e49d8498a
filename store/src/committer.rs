//! Group commit for PostgreSQL appends.
//!
//! Every append of a [`crate::Store`] on PostgreSQL goes through its [`Committer`]: a few worker
//! tasks, each with a connection of its own, take appends from one queue. An append that finds a
//! worker idle is written at once, alone, exactly as it would be without the committer. Appends
//! that arrive while every worker is busy wait in the queue, and the next worker to finish
//! takes all of them and writes them in **one** statement, i.e. one round trip and one commit
//! for the group. That is where the throughput under concurrent commands comes from: the
//! per-statement and per-commit work of PostgreSQL is shared by the group, while each command
//! still gets its answer only after its events are durably committed.
//!
//! A group is all or nothing in the database, but never for the commands: if the group
//! statement fails (a stream version taken by another process, a command id used twice, any
//! error at all), the worker appends the group's commands one by one, so each gets its own
//! outcome, exactly as if it had been alone. A retry of a command that did commit in a failed
//! attempt is refused by the unique keys and answered by the store with its original outcome.
//!
//! The workers own their connections (outside the pool), so an append pays neither a pool
//! acquire nor sqlx's ping when a connection goes back to the pool.

use crate::db::{pg_append, pg_append_group, AppendBatch, AppendError, NewEvent};
use crate::error::StoreError;
use crate::model::Checkpoint;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most commands one group statement carries (each of at most `PG_VALUES_MAX_EVENTS` events).
const MAX_GROUP: usize = 16;

/// One command's append, owned so that it can cross to a worker; it comes back with the result.
#[derive(Debug)]
pub(crate) struct OwnedAppend {
    pub stream_id: String,
    pub command_id: String,
    pub events: Vec<NewEvent>,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl OwnedAppend {
    /// The borrowed form the database functions take.
    pub fn view(&self) -> AppendBatch<'_> {
        AppendBatch {
            stream_id: &self.stream_id,
            command_id: &self.command_id,
            events: &self.events,
            metadata: &self.metadata,
            recorded_at: self.recorded_at,
        }
    }
}

/// What a worker sends back: the append (its rows) and how it went.
pub(crate) type Reply = (OwnedAppend, Result<Vec<Checkpoint>, AppendError>);

struct Job {
    append: OwnedAppend,
    reply: oneshot::Sender<Reply>,
}

/// The queue to a set of workers; dropping it (with the store) stops them.
#[derive(Debug)]
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("stream_id", &self.append.stream_id)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts `workers` workers (at least one) connecting with `options`. Must be called inside
    /// a tokio runtime; the workers live as long as the committer and that runtime.
    pub fn start(options: PgConnectOptions, workers: usize) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(Arc::clone(&rx), options.clone()));
        }
        Self { queue }
    }

    /// Whether the workers are gone (their runtime shut down): the store then starts new ones.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Queues `append`; the returned receiver yields it back with its result once written. Gives
    /// the append back if the workers are gone.
    pub fn submit(&self, append: OwnedAppend) -> Result<oneshot::Receiver<Reply>, OwnedAppend> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { append, reply })
            .map(|()| answer)
            .map_err(|e| e.0.append)
    }
}

/// A worker: takes the next append, and with it every append already waiting (up to
/// [`MAX_GROUP`]), writes them, answers each.
async fn work(
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    options: PgConnectOptions,
) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let jobs = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                break; // the store is gone
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        write(&mut conn, &options, jobs).await;
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
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
        let mut result = append_alone(conn, options, &job.append).await;
        if result.as_ref().is_err_and(lost_connection) {
            // The connection died (a PostgreSQL restart, a terminated backend): try once more on
            // a new one. Safe even if the first attempt committed: its rows hold the version and
            // the command id, so the retry is refused and the store answers the original outcome.
            result = append_alone(conn, options, &job.append).await;
        }
        // The caller may have gone (its request was dropped): the append stands regardless.
        let _ = job.reply.send((job.append, result));
    }
}

/// Appends one command on the worker's connection; drops the connection after an error that may
/// have left it unusable.
async fn append_alone(
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

/// The worker's connection, opened on first use and after a failure.
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

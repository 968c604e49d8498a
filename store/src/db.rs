//! The connected database (PostgreSQL or SQLite) and every SQL statement the store runs.
//!
//! All SQL lives here, one function per operation with one arm per backend, so that the two
//! dialects can be read side by side. Queries are checked at run time (`sqlx::query`), never at
//! compile time: building omorg must not need a database.

use crate::error::StoreError;
use crate::hash::canonical_time;
use crate::model::{CatchUpEvent, Checkpoint, RecordedEvent};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow,
};
use sqlx::{ConnectOptions, Connection, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// Default pool size; the bench and busy servers ask for more with
/// [`Database::connect_with_max_connections`].
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long [`Database::connect`] waits for its first PostgreSQL connection.
const PG_FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an SQLite writer waits for the single write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection pool to one of the supported databases, chosen by URL.
///
/// Cloning is cheap (pools are reference-counted). The variants are public so that later crates
/// (projections) can run their own SQL on the same pool.
#[derive(Debug, Clone)]
pub enum Database {
    /// PostgreSQL (production).
    Postgres(PgPool),
    /// SQLite, a file or in memory (the embedded default).
    Sqlite(SqlitePool),
}

/// Which database a [`Database`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Database {
    /// Connects to `postgres://…`/`postgresql://…` or `sqlite:…` (e.g. `sqlite://omorg.db`,
    /// `sqlite::memory:`). Does not migrate; call [`Database::migrate`].
    #[tracing::instrument(name = "store.connect", skip(url))]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_max_connections(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Like [`Database::connect`] with a pool of up to `max_connections` (an in-memory SQLite
    /// database always uses exactly one connection: each connection would see its own database).
    #[tracing::instrument(name = "store.connect", skip(url))]
    pub async fn connect_with_max_connections(
        url: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        Self::open(url, max_connections, false).await
    }

    /// Connects for reading only, for commands that must not change the database (an audit
    /// with a role that may only `SELECT`, or a file on read-only media): PostgreSQL sessions
    /// default to read-only transactions, and a SQLite file is opened read-only and never
    /// created ([`StoreError::NoSuchDatabase`] when missing). Call [`Database::check_schema`]
    /// instead of migrating.
    #[tracing::instrument(name = "store.connect_read_only", skip(url))]
    pub async fn connect_read_only(url: &str) -> Result<Self, StoreError> {
        Self::open(url, 2, true).await
    }

    async fn open(url: &str, max_connections: u32, read_only: bool) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // JIT off: every statement omorg runs is short, and when the planner overestimates
            // a query (fresh tables without statistics) JIT compilation alone cost ~200 ms.
            let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
            let options = if read_only {
                options.options([("default_transaction_read_only", "on")])
            } else {
                options
            };
            // One connection on its own first, with a short deadline: the pool retries a refused
            // connection until its acquire timeout (30 s) and then reports only "pool timed
            // out", whereas one attempt fails at once with the cause (connection refused, no
            // such host, authentication failed). A database that is not up yet therefore fails
            // the start instead of being waited for. The pool keeps its default acquire timeout:
            // under load, waiting for a busy connection is normal.
            match tokio::time::timeout(PG_FIRST_CONNECT_TIMEOUT, options.connect()).await {
                Ok(Ok(first)) => {
                    // Only a probe: the pool opens its own connections.
                    let _ = first.close().await;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    let reason = format!("no answer within {PG_FIRST_CONNECT_TIMEOUT:?}");
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, reason);
                    return Err(sqlx::Error::Io(e).into());
                }
            }
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                // No ping before every acquire: it is a round trip per statement outside a
                // transaction (~10 % of a command's cost through HTTP). A connection that died
                // fails its next statement instead, and sqlx then drops it from the pool.
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(!read_only)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = if read_only && !in_memory {
                let file = options.get_filename();
                if !file.exists() {
                    return Err(StoreError::NoSuchDatabase(file.display().to_string()));
                }
                // No journal mode set: that is a write, and the file keeps the mode it has.
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options.read_only(true))
                    .await?
            } else if in_memory {
                // One connection, kept forever: closing it would drop the database.
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await?
            } else {
                // WAL: readers do not block the writer nor each other.
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options.journal_mode(SqliteJournalMode::Wal))
                    .await?
            };
            Ok(Self::Sqlite(pool))
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the schema migrations (`migrations/postgres` or `migrations/sqlite`, embedded at
    /// compile time). Idempotent; safe to run from several instances at once on PostgreSQL.
    #[tracing::instrument(name = "store.migrate", skip(self))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
            Self::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Checks, without changing anything, that every migration of this build is applied: what
    /// a read-only connection does instead of [`Database::migrate`].
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let (migrator, applied) = match self {
            Self::Postgres(pool) => (
                sqlx::migrate!("../migrations/postgres"),
                sqlx::query_scalar::<_, i64>(
                    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(pool)
                .await,
            ),
            Self::Sqlite(pool) => (
                sqlx::migrate!("../migrations/sqlite"),
                sqlx::query_scalar::<_, i64>(
                    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(pool)
                .await,
            ),
        };
        let applied = match applied {
            Ok(applied) => applied,
            // No migrations table: not an omorg database, or one never migrated.
            Err(sqlx::Error::Database(e)) if is_missing_table(e.as_ref()) => {
                return Err(StoreError::SchemaMissing)
            }
            Err(e) => return Err(e.into()),
        };
        match migrator
            .iter()
            .find(|m| applied.binary_search(&m.version).is_err())
        {
            Some(m) => Err(StoreError::SchemaBehind {
                version: m.version,
                description: m.description.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// Up to `limit` events after `after` in the global order, oldest first.
    ///
    /// Never skips an event: on PostgreSQL it returns nothing at or beyond the oldest transaction
    /// still in flight (docs/adr/0001-global-ordering.md), so an event whose transaction commits
    /// late is still ahead of the checkpoint when it becomes visible. An empty result means
    /// "nothing more yet", not "end of log".
    #[tracing::instrument(name = "store.read_all_after", level = "debug", skip(self), fields(after = %after))]
    pub async fn read_all_after(
        &self,
        after: &Checkpoint,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Self::Postgres(pool) => {
                pg_read_all_after(&mut *pool.acquire().await?, after, limit).await
            }
            Self::Sqlite(pool) => {
                sqlite_read_all_after(&mut *pool.acquire().await?, after, limit).await
            }
        }
    }

    /// Whether this database could have issued `checkpoint`. SQLite has one writer at a time
    /// and issues every checkpoint as `0-<position>`: one with another transaction part was
    /// made by hand or by another database, and [`Database::read_all_after`] would read after
    /// its position alone, silently ignoring the rest. PostgreSQL's transaction ids start at 3,
    /// so its only checkpoint with transaction part 0 is the start, `0-0`: a `0-<position>`
    /// would read from the start, silently ignoring the position.
    pub fn could_have_issued(&self, checkpoint: &Checkpoint) -> bool {
        match self {
            Self::Postgres(_) => checkpoint.tx() != 0 || checkpoint.position() == 0,
            Self::Sqlite(_) => checkpoint.tx() == 0,
        }
    }

    /// Whether `checkpoint` is one this log issued: the start, or the checkpoint of an event it
    /// holds (a page's `next` always is, since events are never removed). A checkpoint beyond
    /// the log's end, mistyped or from another database, is not: a reader holding one would
    /// silently skip every event up to it.
    pub async fn issued(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
        if *checkpoint == Checkpoint::START {
            return Ok(true);
        }
        Ok(match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM events \
                     WHERE tx_id = ($1::bigint)::text::xid8 AND position = $2)",
                )
                .bind(checkpoint.tx())
                .bind(checkpoint.position())
                .fetch_one(pool)
                .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE position = ?1)")
                    .bind(checkpoint.position())
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// Events of one stream with `from <= version <= to`, in version order, as stored: the
    /// payload is not decoded into the domain's event, so an auditor can read a row that no
    /// longer decodes (see [`crate::Store::load_stream_range`] for decoded events).
    pub async fn stream_events(
        &self,
        stream_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stream_rows(stream_id, from, to)
            .await?
            .into_iter()
            .map(|(_, event)| event)
            .collect()
    }

    /// Like [`Database::stream_events`], but each row on its own: its version, and the event or
    /// why the row does not decode (a payload or metadata that is not JSON, a `recorded_at` that
    /// is not a time: only an edit behind the store's back leaves such a row, and `verify` must
    /// name it rather than fail).
    pub(crate) async fn stream_rows(
        &self,
        stream_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Result<RecordedEvent, StoreError>)>, StoreError> {
        let (from, to) = (to_i64(from)?, to_i64(to)?);
        match self {
            Self::Postgres(pool) => {
                let rows = sqlx::query(&format!(
                    "SELECT {PG_COLUMNS} FROM events WHERE stream_id = $1 \
                     AND stream_version BETWEEN $2 AND $3 ORDER BY stream_version"
                ))
                .bind(stream_id)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| Ok((to_u64(row.try_get("stream_version")?)?, pg_event(row))))
                    .collect()
            }
            Self::Sqlite(pool) => {
                let rows = sqlx::query(&format!(
                    "SELECT {SQLITE_COLUMNS} FROM events WHERE stream_id = ?1 \
                     AND stream_version BETWEEN ?2 AND ?3 ORDER BY stream_version"
                ))
                .bind(stream_id)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| Ok((to_u64(row.try_get("stream_version")?)?, sqlite_event(row))))
                    .collect()
            }
        }
    }

    /// The command columns of `stream_id`'s events `from..=to`: (version, command id, command
    /// size), which [`Database::verify`] checks against each event's hashed metadata.
    pub(crate) async fn command_columns(
        &self,
        stream_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Option<String>, Option<i64>)>, StoreError> {
        let (from, to) = (to_i64(from)?, to_i64(to)?);
        let rows: Vec<(i64, Option<String>, Option<i64>)> = match self {
            Self::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT stream_version, command_id, command_events::bigint FROM events \
                     WHERE stream_id = $1 AND stream_version BETWEEN $2 AND $3 \
                     ORDER BY stream_version",
                )
                .bind(stream_id)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT stream_version, command_id, command_events FROM events \
                     WHERE stream_id = ?1 AND stream_version BETWEEN ?2 AND ?3 \
                     ORDER BY stream_version",
                )
                .bind(stream_id)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?
            }
        };
        rows.into_iter()
            .map(|(v, id, n)| Ok((to_u64(v)?, id, n)))
            .collect()
    }

    /// Every stream that has events, in id order: what a verification of the whole log walks
    /// (from the log itself, not from a read model that could have lost a row).
    pub async fn stream_ids(&self) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT DISTINCT stream_id FROM events ORDER BY stream_id";
        Ok(match self {
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
        })
    }

    /// Appends one command's events atomically; the first carries the command id and size.
    ///
    /// PostgreSQL: one autocommit statement, i.e. one round trip and one commit. SQLite: one `BEGIN IMMEDIATE` transaction. Returns the (tx, position) of each
    /// event in order.
    pub(crate) async fn append(
        &self,
        batch: &AppendBatch<'_>,
    ) -> Result<Vec<Checkpoint>, AppendError> {
        match self {
            Self::Postgres(pool) => pg_append(pool, batch).await,
            Self::Sqlite(pool) => {
                // IMMEDIATE takes the write lock now, so two appends cannot both read and then
                // fail to upgrade (SQLITE_BUSY deadlock); writers queue on the busy timeout.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = sqlite_append(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Appends several commands' events, on different streams, in one transaction: all of them
    /// or, if any is refused (a unique key) or fails, none. Returns each command's checkpoints.
    /// For writes that must not be seen half done (an adoption and the scenario's record of it);
    /// a round trip per command and one for the commit, so not the path of ordinary commands.
    pub(crate) async fn append_all(
        &self,
        batches: &[AppendBatch<'_>],
    ) -> Result<Vec<Vec<Checkpoint>>, AppendError> {
        let mut out = Vec::with_capacity(batches.len());
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for batch in batches {
                    out.push(pg_append(&mut *tx, batch).await?);
                }
                tx.commit().await?;
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                for batch in batches {
                    out.push(sqlite_append(&mut tx, batch).await?);
                }
                tx.commit().await?;
            }
        }
        Ok(out)
    }

    /// The version range of the command `command_id` applied to `stream_id`, if it was.
    pub(crate) async fn find_command(
        &self,
        stream_id: &str,
        command_id: &str,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let row: Option<(i64, i32)> = match self {
            Self::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT stream_version, command_events FROM events \
                     WHERE stream_id = $1 AND command_id = $2",
                )
                .bind(stream_id)
                .bind(command_id)
                .fetch_optional(pool)
                .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT stream_version, command_events FROM events \
                     WHERE stream_id = ?1 AND command_id = ?2",
                )
                .bind(stream_id)
                .bind(command_id)
                .fetch_optional(pool)
                .await?
            }
        };
        row.map(|(first, count)| {
            let first = to_u64(first)?;
            let count = u64::try_from(count)
                .ok()
                .filter(|c| *c >= 1)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("command {command_id}: size {count}"))
                })?;
            Ok((first, first + count - 1))
        })
        .transpose()
    }

    /// The stream's snapshot, if any. The state is raw JSON; the caller decides whether it still
    /// deserialises.
    pub(crate) async fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<SnapshotRow>, StoreError> {
        match self {
            Self::Postgres(pool) => {
                let row: Option<(i64, String, Value)> = sqlx::query_as(
                    "SELECT stream_version, last_hash, state FROM snapshots WHERE stream_id = $1",
                )
                .bind(stream_id)
                .fetch_optional(pool)
                .await?;
                row.map(|(v, last_hash, state)| {
                    Ok(SnapshotRow {
                        version: to_u64(v)?,
                        last_hash,
                        state,
                    })
                })
                .transpose()
            }
            Self::Sqlite(pool) => {
                let row: Option<(i64, String, String)> = sqlx::query_as(
                    "SELECT stream_version, last_hash, state FROM snapshots WHERE stream_id = ?1",
                )
                .bind(stream_id)
                .fetch_optional(pool)
                .await?;
                row.map(|(v, last_hash, state)| {
                    Ok(SnapshotRow {
                        version: to_u64(v)?,
                        last_hash,
                        // Unparseable text is treated like a state that no longer deserialises.
                        state: serde_json::from_str(&state).unwrap_or(Value::Null),
                    })
                })
                .transpose()
            }
        }
    }

    /// Writes (or overwrites) the stream's one snapshot row, unless a newer one is there.
    pub(crate) async fn save_snapshot(
        &self,
        stream_id: &str,
        aggregate_type: &str,
        version: u64,
        last_hash: &str,
        state: &Value,
    ) -> Result<(), StoreError> {
        let version = to_i64(version)?;
        match self {
            Self::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO snapshots (stream_id, aggregate_type, stream_version, last_hash, \
                     state, taken_at) VALUES ($1, $2, $3, $4, $5::jsonb, now()) \
                     ON CONFLICT (stream_id) DO UPDATE SET aggregate_type = excluded.aggregate_type, \
                     stream_version = excluded.stream_version, last_hash = excluded.last_hash, \
                     state = excluded.state, taken_at = excluded.taken_at \
                     WHERE snapshots.stream_version <= excluded.stream_version",
                )
                .bind(stream_id)
                .bind(aggregate_type)
                .bind(version)
                .bind(last_hash)
                .bind(state.to_string())
                .execute(pool)
                .await?;
            }
            Self::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO snapshots (stream_id, aggregate_type, stream_version, last_hash, \
                     state, taken_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (stream_id) DO UPDATE SET aggregate_type = excluded.aggregate_type, \
                     stream_version = excluded.stream_version, last_hash = excluded.last_hash, \
                     state = excluded.state, taken_at = excluded.taken_at \
                     WHERE snapshots.stream_version <= excluded.stream_version",
                )
                .bind(stream_id)
                .bind(aggregate_type)
                .bind(version)
                .bind(last_hash)
                .bind(state.to_string())
                .bind(canonical_time(&Utc::now()))
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}

/// [`Database::read_all_after`] on a PostgreSQL connection the caller holds.
async fn pg_read_all_after(
    conn: &mut PgConnection,
    after: &Checkpoint,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    pg_after(conn, after, limit, PG_COLUMNS, pg_event).await
}

/// [`Database::read_all_after`] on an SQLite connection the caller holds.
async fn sqlite_read_all_after(
    conn: &mut SqliteConnection,
    after: &Checkpoint,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    sqlite_after(conn, after, limit, SQLITE_COLUMNS, sqlite_event).await
}

/// The next `limit` events after `after` in the global order, as a catch-up reader needs them
/// ([`CatchUpEvent`]), on a PostgreSQL connection the caller holds, e.g. inside its own
/// transaction: a projector reads its batch on the connection that writes it, saving a pool
/// round trip per batch.
pub async fn pg_catch_up_after(
    conn: &mut PgConnection,
    after: &Checkpoint,
    limit: u32,
) -> Result<Vec<CatchUpEvent>, StoreError> {
    pg_after(conn, after, limit, PG_CATCH_UP_COLUMNS, pg_catch_up_event).await
}

/// [`pg_catch_up_after`] on an SQLite connection the caller holds.
pub async fn sqlite_catch_up_after(
    conn: &mut SqliteConnection,
    after: &Checkpoint,
    limit: u32,
) -> Result<Vec<CatchUpEvent>, StoreError> {
    sqlite_after(
        conn,
        after,
        limit,
        SQLITE_CATCH_UP_COLUMNS,
        sqlite_catch_up_event,
    )
    .await
}

/// The global-order scan on PostgreSQL: (tx_id, position) above the checkpoint and only below
/// the oldest transaction still in flight (ADR 0001), each row read by `read`.
async fn pg_after<T>(
    conn: &mut PgConnection,
    after: &Checkpoint,
    limit: u32,
    columns: &str,
    read: fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM events \
         WHERE (tx_id, position) > (($1::bigint)::text::xid8, $2) \
           AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY tx_id, position LIMIT $3"
    ))
    .bind(after.tx())
    .bind(after.position())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter().map(read).collect()
}

/// The global-order scan on SQLite (one writer at a time: position order is commit order).
async fn sqlite_after<T>(
    conn: &mut SqliteConnection,
    after: &Checkpoint,
    limit: u32,
    columns: &str,
    read: fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
    ))
    .bind(after.position())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter().map(read).collect()
}

/// The size of a command, as stored with its first event.
/// Inserts one command's events on SQLite inside the caller's transaction; the first carries
/// the command id and size.
async fn sqlite_append(
    tx: &mut sqlx::SqliteConnection,
    batch: &AppendBatch<'_>,
) -> Result<Vec<Checkpoint>, AppendError> {
    let count = command_size(batch)?;
    let recorded_at = canonical_time(&batch.recorded_at);
    let mut out = Vec::with_capacity(batch.events.len());
    for (i, e) in batch.events.iter().enumerate() {
        // The command id and size go on the command's first event only.
        let (command_id, command_events) = if i == 0 {
            (Some(batch.command_id), Some(count))
        } else {
            (None, None)
        };
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO events (stream_id, stream_version, event_type, event_version, \
             payload, metadata, recorded_at, prev_hash, hash, command_id, command_events) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING position",
        )
        .bind(batch.stream_id)
        .bind(to_i64(e.version)?)
        .bind(&e.event_type)
        .bind(&e.event_version)
        .bind(&e.payload_text)
        .bind(batch.metadata)
        .bind(&recorded_at)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .bind(command_id)
        .bind(command_events)
        .fetch_one(&mut *tx)
        .await?;
        out.push(Checkpoint::new(0, position));
    }
    Ok(out)
}

fn command_size(batch: &AppendBatch<'_>) -> Result<i32, StoreError> {
    i32::try_from(batch.events.len())
        .map_err(|_| StoreError::Corrupt("more than 2^31 events in one command".into()))
}

/// Appends one command's events on PostgreSQL through `executor` (the pool, or a connection the
/// caller holds): one autocommit statement, i.e. one round trip and one commit.
pub(crate) async fn pg_append<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    batch: &AppendBatch<'_>,
) -> Result<Vec<Checkpoint>, AppendError> {
    let first = match batch.events.first() {
        Some(f) => to_i64(f.version)?,
        None => return Ok(Vec::new()),
    };
    let count = command_size(batch)?;
    let rows = if batch.events.len() <= PG_VALUES_MAX_EVENTS {
        // Small commands (the usual case): one multi-row VALUES, which PostgreSQL plans and
        // executes markedly cheaper than unnest over arrays.
        let mut query = sqlx::query(pg_append_values_sql(batch.events.len()))
            .bind(batch.stream_id)
            .bind(batch.metadata)
            .bind(batch.recorded_at)
            .bind(batch.command_id);
        for e in batch.events {
            query = query
                .bind(to_i64(e.version)?)
                .bind(&e.event_type)
                .bind(&e.event_version)
                .bind(&e.payload_text)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        query.fetch_all(executor).await?
    } else {
        let mut versions = Vec::with_capacity(batch.events.len());
        for e in batch.events {
            versions.push(to_i64(e.version)?);
        }
        let column =
            |f: fn(&NewEvent) -> String| -> Vec<String> { batch.events.iter().map(f).collect() };
        sqlx::query(PG_APPEND_UNNEST)
            .bind(batch.stream_id)
            .bind(versions)
            .bind(column(|e| e.event_type.clone()))
            .bind(column(|e| e.event_version.clone()))
            .bind(column(|e| e.payload_text.clone()))
            .bind(batch.metadata)
            .bind(batch.recorded_at)
            .bind(column(|e| e.prev_hash.clone()))
            .bind(column(|e| e.hash.clone()))
            .bind(batch.command_id)
            .bind(first)
            .bind(count)
            .fetch_all(executor)
            .await?
    };
    pg_checkpoints(&rows)
}

/// Appends several commands' events (on different streams, each of at most
/// [`PG_VALUES_MAX_EVENTS`] events) in one autocommit statement: one round trip and one commit
/// for all of them. All or nothing: a unique violation of any one refuses them all, and the
/// caller then appends them one by one to learn which. Returns each command's checkpoints.
pub(crate) async fn pg_append_group(
    conn: &mut PgConnection,
    batches: &[AppendBatch<'_>],
) -> Result<Vec<Vec<Checkpoint>>, AppendError> {
    let n: usize = batches.iter().map(|b| b.events.len()).sum();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let p = 1 + i * 11;
        rows.push(format!(
            "(${}, ${}, ${}, ${}, ${}::jsonb, ${}::jsonb, ${}, ${}, ${}, ${}, ${}::integer)",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 9,
            p + 10
        ));
    }
    let sql = format!(
        "INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, \
         metadata, recorded_at, prev_hash, hash, command_id, command_events) VALUES {} \
         RETURNING tx_id::text::bigint, position, stream_id, stream_version",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for batch in batches {
        let count = command_size(batch)?;
        for (i, e) in batch.events.iter().enumerate() {
            // The command id and size go on the command's first event only.
            let (command_id, command_events) = if i == 0 {
                (Some(batch.command_id), Some(count))
            } else {
                (None, None)
            };
            query = query
                .bind(batch.stream_id)
                .bind(to_i64(e.version)?)
                .bind(&e.event_type)
                .bind(&e.event_version)
                .bind(&e.payload_text)
                .bind(batch.metadata)
                .bind(batch.recorded_at)
                .bind(&e.prev_hash)
                .bind(&e.hash)
                .bind(command_id)
                .bind(command_events);
        }
    }
    let returned = query.fetch_all(&mut *conn).await?;
    let mut stored: HashMap<(String, i64), Checkpoint> = HashMap::with_capacity(returned.len());
    for row in &returned {
        let tx: i64 = row.try_get(0).map_err(StoreError::from)?;
        let position: i64 = row.try_get(1).map_err(StoreError::from)?;
        let stream: String = row.try_get(2).map_err(StoreError::from)?;
        let version: i64 = row.try_get(3).map_err(StoreError::from)?;
        stored.insert((stream, version), Checkpoint::new(tx, position));
    }
    batches
        .iter()
        .map(|b| {
            b.events
                .iter()
                .map(|e| {
                    let key = (b.stream_id.to_owned(), to_i64(e.version)?);
                    stored.get(&key).copied().ok_or_else(|| {
                        AppendError::Store(StoreError::Corrupt(format!(
                            "group append did not return {}@{}",
                            key.0, key.1
                        )))
                    })
                })
                .collect()
        })
        .collect()
}

/// Commands with up to this many events append with [`pg_append_values_sql`]; larger batches
/// bind arrays ([`PG_APPEND_UNNEST`]) to stay far below PostgreSQL's 65535 parameters.
pub(crate) const PG_VALUES_MAX_EVENTS: usize = 32;

/// The one-round-trip append on PostgreSQL for `n` events: a single autocommit INSERT, so there
/// is no BEGIN/COMMIT round trip. The first row carries the command id and size; a unique
/// violation (stream version taken, or command id used) refuses the whole statement.
/// Parameters: $1 stream, $2 metadata, $3 recorded_at, $4 command id, then six per event.
/// Built once per size: every append asks for one.
fn pg_append_values_sql(n: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=PG_VALUES_MAX_EVENTS)
            .map(build_append_values_sql)
            .collect()
    });
    all.get(n).map_or("", String::as_str)
}

fn build_append_values_sql(n: usize) -> String {
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let p = 5 + i * 6;
        let command = if i == 0 {
            format!("$4, {n}")
        } else {
            "NULL, NULL".to_owned()
        };
        rows.push(format!(
            "($1, ${}, ${}, ${}, ${}::jsonb, $2::jsonb, $3, ${}, ${}, {command})",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        ));
    }
    format!(
        "INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, \
         metadata, recorded_at, prev_hash, hash, command_id, command_events) VALUES {} \
         RETURNING tx_id::text::bigint, position, stream_version",
        rows.join(", ")
    )
}

/// The same append for large batches, with one array parameter per column;
/// `unnest` … `ORDER BY` makes positions follow stream versions.
const PG_APPEND_UNNEST: &str = "\
INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, metadata,
                    recorded_at, prev_hash, hash, command_id, command_events)
SELECT $1, u.v, u.t, u.ev, u.p::jsonb, $6::jsonb, $7, u.ph, u.h,
       CASE WHEN u.v = $11 THEN $10 END, CASE WHEN u.v = $11 THEN $12::integer END
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $8::text[], $9::text[])
     AS u(v, t, ev, p, ph, h)
ORDER BY u.v
RETURNING tx_id::text::bigint, position, stream_version";

/// Checkpoints of appended rows in stream-version order (RETURNING promises no order).
fn pg_checkpoints(rows: &[PgRow]) -> Result<Vec<Checkpoint>, AppendError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let version: i64 = r.try_get(2)?;
        out.push((version, Checkpoint::new(r.try_get(0)?, r.try_get(1)?)));
    }
    out.sort_unstable_by_key(|(version, _)| *version);
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

/// Every column of an event (the payload as text: see [`full_event`]).
const PG_COLUMNS: &str = "tx_id::text::bigint AS tx, position, stream_id, stream_version, \
    event_type, event_version, payload::text AS payload, metadata, recorded_at, prev_hash, hash, \
    command_events";

const SQLITE_COLUMNS: &str = "position, stream_id, stream_version, event_type, event_version, \
    payload, metadata, recorded_at, prev_hash, hash, command_events";

/// What [`CatchUpEvent`] holds: no metadata, no hashes, the payload as text.
const PG_CATCH_UP_COLUMNS: &str = "tx_id::text::bigint AS tx, position, stream_id, \
    stream_version, event_type, event_version, payload::text AS payload, recorded_at";

const SQLITE_CATCH_UP_COLUMNS: &str =
    "position, stream_id, stream_version, event_type, event_version, payload, recorded_at";

/// One event about to be appended, already hashed.
#[derive(Debug)]
pub(crate) struct NewEvent {
    pub version: u64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    /// `payload` as canonical JSON text, as hashed and as stored.
    pub payload_text: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One command's events and metadata, appended atomically.
#[derive(Debug)]
pub(crate) struct AppendBatch<'a> {
    pub stream_id: &'a str,
    pub command_id: &'a str,
    pub events: &'a [NewEvent],
    /// The command's metadata as canonical JSON text.
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// A stored snapshot.
#[derive(Debug)]
pub(crate) struct SnapshotRow {
    pub version: u64,
    pub last_hash: String,
    pub state: Value,
}

/// Why an append failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// A unique key refused it: the stream version is taken, or the command id was used.
    UniqueViolation,
    /// Anything else.
    Store(StoreError),
}

impl From<sqlx::Error> for AppendError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::UniqueViolation,
            _ => Self::Store(StoreError::Database(e)),
        }
    }
}

impl From<StoreError> for AppendError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn pg_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    full_event(
        pg_catch_up_event(row)?,
        row.try_get("metadata")?,
        (row.try_get("prev_hash")?, row.try_get("hash")?),
        row.try_get("command_events")?,
    )
}

fn pg_catch_up_event(row: &PgRow) -> Result<CatchUpEvent, StoreError> {
    let tx: i64 = row.try_get("tx")?;
    let position: i64 = row.try_get("position")?;
    Ok(CatchUpEvent {
        checkpoint: Checkpoint::new(tx, position),
        position,
        stream_id: row.try_get("stream_id")?,
        stream_version: to_u64(row.try_get("stream_version")?)?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

fn sqlite_catch_up_event(row: &SqliteRow) -> Result<CatchUpEvent, StoreError> {
    let position: i64 = row.try_get("position")?;
    let stream_id: String = row.try_get("stream_id")?;
    let stream_version = to_u64(row.try_get("stream_version")?)?;
    let recorded_at = sqlite_recorded_at(row, &stream_id, stream_version)?;
    Ok(CatchUpEvent {
        checkpoint: Checkpoint::new(0, position),
        position,
        stream_version,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        recorded_at,
        stream_id,
    })
}

/// The `recorded_at` of an SQLite row (RFC 3339 text).
fn sqlite_recorded_at(
    row: &SqliteRow,
    stream_id: &str,
    stream_version: u64,
) -> Result<DateTime<Utc>, StoreError> {
    let recorded_at: String = row.try_get("recorded_at")?;
    Ok(DateTime::parse_from_rfc3339(&recorded_at)
        .map_err(|e| {
            StoreError::Corrupt(format!("{stream_id}@{stream_version}: recorded_at: {e}"))
        })?
        .with_timezone(&Utc))
}

fn sqlite_event(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let base = sqlite_catch_up_event(row)?;
    let metadata: String = row.try_get("metadata")?;
    let metadata = parse_json(&metadata, &base, "metadata")?;
    full_event(
        base,
        metadata,
        (row.try_get("prev_hash")?, row.try_get("hash")?),
        row.try_get("command_events")?,
    )
}

/// The whole event: the catch-up reader's part of the row, its payload parsed, and the columns
/// only audits and exports read.
fn full_event(
    base: CatchUpEvent,
    metadata: Value,
    (prev_hash, hash): (String, String),
    command_events: Option<i32>,
) -> Result<RecordedEvent, StoreError> {
    let payload = parse_json(&base.payload, &base, "payload")?;
    Ok(RecordedEvent {
        checkpoint: base.checkpoint,
        position: base.position,
        stream_id: base.stream_id,
        stream_version: base.stream_version,
        event_type: base.event_type,
        event_version: base.event_version,
        payload,
        metadata,
        recorded_at: base.recorded_at,
        prev_hash,
        hash,
        command_events: command_events.and_then(|n| u32::try_from(n).ok()),
    })
}

/// A JSON column of `event`'s row, parsed; stored text that is not JSON is corruption, and so
/// is an object naming a member twice (only an edit behind the store's back writes one, on
/// SQLite's text columns): readers disagree on which of the two it holds (a JSON value keeps
/// the last, SQLite's `json_extract` the first), so the row cannot be trusted to say one thing.
fn parse_json(text: &str, event: &CatchUpEvent, column: &str) -> Result<Value, StoreError> {
    strict_json(text).map_err(|e| {
        StoreError::Corrupt(format!(
            "{}@{}: {column} is not JSON as omorg writes it: {e}",
            event.stream_id, event.stream_version
        ))
    })
}

/// JSON text as a value, refusing an object that names a member twice.
pub(crate) fn strict_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number};

    struct Strict;
    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Strict)
        }
    }
    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_unit<E: Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(Strict)? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut members = Map::new();
            while let Some(name) = map.next_key::<String>()? {
                let value = map.next_value_seed(Strict)?;
                if let Some(name) = members.insert(name.clone(), value).map(|_| name) {
                    return Err(A::Error::custom(format!("member `{name}` is given twice")));
                }
            }
            Ok(Value::Object(members))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("version {v} out of range")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative version {v}")))
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Whether a database error says a table does not exist (PostgreSQL 42P01; SQLite's message).
fn is_missing_table(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code().as_deref() == Some("42P01") || e.message().contains("no such table")
}

#[cfg(test)]
mod strict_json_tests {
    use super::strict_json;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_reads_and_refuses_a_member_given_twice() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,18446744073709551615,null,true,"x\u00e6"],"b":{}}"#,
            "[]",
            "\"s\"",
            "0",
        ] {
            let expected: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict_json(text).unwrap(), expected, "{text}");
        }
        assert_eq!(
            strict_json(r#"{"a":{"b":1}}"#).unwrap(),
            json!({"a": {"b": 1}})
        );
        for text in [r#"{"a":1,"a":2}"#, r#"[{"x":{"y":1,"y":1}}]"#] {
            let e = strict_json(text).unwrap_err().to_string();
            assert!(e.contains("is given twice"), "{text}: {e}");
        }
        assert!(strict_json("{} x").is_err());
    }
}

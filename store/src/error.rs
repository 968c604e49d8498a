//! What can go wrong in the store, in the caller's terms.
//!
//! The HTTP status each variant maps to is part of its documentation; the API layer follows it.

use thiserror::Error;

/// An error from the event store.
///
/// Variants are named for what happened to the caller's request, not for the SQL that failed.
/// Only [`StoreError::Conflict`] and [`StoreError::MissingCommandId`] are the client's to
/// resolve; everything else is a server fault (5xx) whose cause is logged, not echoed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer appended to the stream since this command loaded it (optimistic
    /// concurrency). Nothing was written; reload and retry. **HTTP 409.**
    #[error("stream {stream} changed concurrently: expected it at version {expected_version}")]
    Conflict {
        /// The stream that moved on.
        stream: String,
        /// The version this command was decided against.
        expected_version: u64,
    },

    /// A command arrived without a command id, so it could not be applied exactly once.
    /// **HTTP 400.**
    #[error("a command id is required")]
    MissingCommandId,

    /// Two linked commands named the same stream; a linked write takes one command per stream.
    /// A caller's bug. **HTTP 500.**
    #[error("linked commands must be on two streams, both were on {0}")]
    LinkedSameStream(String),

    /// A checkpoint string given by a client could not be parsed. **HTTP 400.**
    #[error("invalid checkpoint {0:?}")]
    InvalidCheckpoint(String),

    /// The database URL names no database this store supports. **Start-up failure (500).**
    #[error("unsupported database URL (expected postgres://… or sqlite:…): {0}")]
    UnsupportedUrl(String),

    /// The database failed or could not be reached. **HTTP 500** (503 may be used for a pool
    /// timeout).
    #[error("database error")]
    Database(#[from] sqlx::Error),

    /// Applying the schema migrations failed. **Start-up failure (500).**
    #[error("schema migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),

    /// An event or aggregate could not be serialised to JSON. **HTTP 500.**
    #[error("could not serialise {what}")]
    Serialization {
        /// What was being serialised.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A stored event could not be turned back into today's event type, even after upcasting:
    /// an upcaster is missing. **HTTP 500.**
    #[error("could not deserialise event {stream}@{version} ({event_type} v{event_version})")]
    Deserialization {
        /// Stream of the event.
        stream: String,
        /// Version of the event in its stream.
        version: u64,
        /// Stored event type.
        event_type: String,
        /// Stored event schema version.
        event_version: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A read-only connection named a SQLite file that does not exist (reading never creates
    /// one). **Start-up failure (500).**
    #[error("no database file at {0} (a command that only reads never creates one)")]
    NoSuchDatabase(String),

    /// The database holds no omorg schema at all. **Start-up failure (500).**
    #[error(
        "the database holds no omorg schema (is it the right one?); run `omorg migrate` or \
         start the server on it first"
    )]
    SchemaMissing,

    /// The database's schema is older than this build's and a read-only connection may not
    /// migrate it. **Start-up failure (500).**
    #[error(
        "the database schema is older than this omorg: migration {version} ({description}) is \
         not applied; run `omorg migrate` (or start the server) first"
    )]
    SchemaBehind {
        /// The first migration not applied.
        version: i64,
        /// Its description.
        description: String,
    },

    /// A stored row breaks an invariant the store relies on (e.g. a negative version).
    /// **HTTP 500.**
    #[error("corrupt event log: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The HTTP status the API layer answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Conflict { .. } => 409,
            Self::MissingCommandId | Self::InvalidCheckpoint(_) => 400,
            Self::UnsupportedUrl(_)
            | Self::Database(_)
            | Self::Migration(_)
            | Self::Serialization { .. }
            | Self::Deserialization { .. }
            | Self::Corrupt(_)
            | Self::LinkedSameStream(_)
            | Self::NoSuchDatabase(_)
            | Self::SchemaMissing
            | Self::SchemaBehind { .. } => 500,
        }
    }

    /// Converts into the error type cqrs-es's `EventStore` trait requires.
    pub(crate) fn into_aggregate_error<E: std::error::Error>(self) -> cqrs_es::AggregateError<E> {
        use cqrs_es::AggregateError;
        match self {
            Self::Conflict { .. } => AggregateError::AggregateConflict,
            Self::Database(e) => AggregateError::DatabaseConnectionError(Box::new(e)),
            e @ Self::Deserialization { .. } => AggregateError::DeserializationError(Box::new(e)),
            other => AggregateError::UnexpectedError(Box::new(other)),
        }
    }
}

/// The result of [`crate::Store::execute`] when it does not succeed: either the aggregate
/// refused the command, or the store failed.
#[derive(Debug, Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command (a domain rule). **HTTP 422** (or whatever status the
    /// domain error documents).
    #[error(transparent)]
    Rejected(E),
    /// The store failed; see [`StoreError`] for the status of each variant.
    #[error(transparent)]
    Store(#[from] StoreError),
}

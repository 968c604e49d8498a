//! What can go wrong while projecting or querying.

/// A projection or query failure. The API maps [`ProjectionError::UnknownTimeline`] and
/// [`ProjectionError::NotFound`] to 404, [`ProjectionError::InvalidQuery`] to 422,
/// [`ProjectionError::Lagging`] to 503, and the rest (not the client's fault) to 500.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event store failed (reading the log, decoding an event).
    #[error("event store: {0}")]
    Store(#[from] omorg_store::StoreError),
    /// A read-model statement failed.
    #[error("read model database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored checkpoint could not be read back.
    #[error("stored checkpoint {0:?} is not valid")]
    BadCheckpoint(String),
    /// Events committed before a catch-up started are still unreadable because a transaction
    /// stayed open on the server for longer than the caller would wait.
    #[error("projection lags behind the log: events up to position {head} still not readable after {waited:?} (a transaction is held open on the database server)")]
    Lagging {
        /// The position to reach.
        head: i64,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// No timeline with this id has been projected.
    #[error("unknown timeline {0}")]
    UnknownTimeline(String),
    /// The timeline exists but has never had this unit or service.
    #[error("no {what} {id} on timeline {timeline}")]
    NotFound {
        /// `unit` or `service`.
        what: &'static str,
        /// The id asked for.
        id: String,
        /// The timeline.
        timeline: String,
    },
    /// A query parameter is out of range (e.g. `from` after `to`).
    #[error("invalid {field}: {reason}")]
    InvalidQuery {
        /// The parameter.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

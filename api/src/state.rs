//! [`AppState`]: what every handler gets.

use crate::auth::AuthConfig;
use crate::queries::{Queries, DEFAULT_PATIENCE};
use crate::service::Omorg;
use omorg_projections::ProjectionRunner;
use std::sync::Arc;

/// Shared state of the HTTP server. Cheap to clone (pools and `Arc`s inside).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application layer (store, database).
    pub app: Omorg,
    /// The read side (projections, kept current by the server's projector).
    pub queries: Queries,
    /// Configured bearer tokens; an `Arc` because it is read-only and shared by every request.
    pub auth: Arc<AuthConfig>,
}

impl AppState {
    /// State for `app` with `auth`, spawning a projector on `app`'s database (detached: it
    /// runs until the runtime stops). Must be called inside a tokio runtime. `omorg serve` uses
    /// [`AppState::with_queries`] instead, to stop its projector on shutdown.
    pub fn new(app: Omorg, auth: AuthConfig) -> Self {
        let (runner, _task) = ProjectionRunner::spawn(app.db().clone());
        let queries = Queries::new(app.db().clone(), runner, DEFAULT_PATIENCE);
        Self::with_queries(app, auth, queries)
    }

    /// State for `app` with `auth`, answering queries with `queries`.
    pub fn with_queries(app: Omorg, auth: AuthConfig, queries: Queries) -> Self {
        Self {
            app,
            queries,
            auth: Arc::new(auth),
        }
    }
}

//! [`AppState`]: what every handler gets.

use crate::auth::AuthConfig;
use crate::queries::Queries;
use crate::service::Omorg;
use std::sync::Arc;

/// Shared state of the HTTP server. Cheap to clone (pools and `Arc`s inside).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application layer (store, database).
    pub app: Omorg,
    /// The read side (org charts, responsibilities).
    pub queries: Queries,
    /// Configured bearer tokens; an `Arc` because it is read-only and shared by every request.
    pub auth: Arc<AuthConfig>,
}

impl AppState {
    /// State for `app` with `auth`.
    pub fn new(app: Omorg, auth: AuthConfig) -> Self {
        Self {
            queries: Queries::new(app.clone()),
            app,
            auth: Arc::new(auth),
        }
    }
}

//! # omorg-e2e
//!
//! End-to-end tests: the real router served on a free port of 127.0.0.1, driven over HTTP with
//! `reqwest`, on a fresh database per test: PostgreSQL (from `OMORG_TEST_DATABASE_URL`, set by
//! `scripts/test`) and SQLite. [`on_both_backends!`] turns one async test body into one test
//! per backend.
//!
//! # Layout
//! - [`TestApp`]: a served app, its base URL and the tokens of every role.
//! - [`command`]: builds a command's JSON with a decision reference.
#![forbid(unsafe_code)]

use omorg_api::auth::AuthConfig;
use omorg_api::queries::Queries;
use omorg_api::{AppState, Omorg};
use omorg_projections::ProjectionRunner;
use omorg_store::testing::fresh_database;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;

pub use omorg_store::Backend;

/// The planner's token in every test app.
pub const PLANNER: &str = "planner-token-0001";
/// The auditor's token.
pub const AUDITOR: &str = "auditor-token-0001";
/// The reader's token.
pub const READER: &str = "reader-token-0001";
/// The admin's token.
pub const ADMIN: &str = "admin-token-0001";

/// A server on a free port with its own fresh database.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The application behind the server (for direct checks).
    pub app: Omorg,
    /// The database URL (to open another connection, e.g. for the CLI).
    pub database_url: String,
    /// A plain client.
    pub client: reqwest::Client,
    /// The server's read side (to stop its projector, e.g. before an `omorg rebuild`).
    pub queries: Queries,
    /// The server's projector and its task (the task is `None` for a stalled app, and once
    /// [`TestApp::stop_projector`] has stopped it).
    projector: Option<(ProjectionRunner, Mutex<Option<JoinHandle<()>>>)>,
}

impl TestApp {
    /// Serves the API on `backend` with tokens for every role.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, test_auth()).await
    }

    /// Serves the API on `backend` with the given authentication.
    pub async fn spawn_with(backend: Backend, auth: AuthConfig) -> Self {
        Self::serve(backend, auth, Some(PATIENCE)).await
    }

    /// Serves the API on `backend` with queries that wait at most `patience` for the projector
    /// (with [`TestApp::stop_projector`]: to see which queries wait for which events).
    pub async fn spawn_with_patience(backend: Backend, patience: Duration) -> Self {
        Self::serve(backend, test_auth(), Some(patience)).await
    }

    /// Serves the API on `backend` with a projector that is stopped before the first request,
    /// and a short patience: every query that needs an event projected answers 503.
    pub async fn spawn_stalled(backend: Backend) -> Self {
        Self::serve(backend, test_auth(), None).await
    }

    /// Serves the API; with a projector whose queries wait `patience`, or (`None`) a stalled
    /// one.
    async fn serve(backend: Backend, auth: AuthConfig, patience: Option<Duration>) -> Self {
        let (db, database_url) = fresh_database(backend).await;
        let app = Omorg::new(db.clone());
        let (runner, patience, projector) = match patience {
            Some(patience) => {
                let (runner, task) = ProjectionRunner::spawn(db.clone());
                let projector = (runner.clone(), Mutex::new(Some(task)));
                (runner, patience, Some(projector))
            }
            None => (stalled_runner(db.clone()), Duration::from_millis(200), None),
        };
        let queries = Queries::new(db, runner, patience);
        let router = omorg_api::app(AppState::with_queries(app.clone(), auth, queries.clone()));
        let listener = omorg_api::listen("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = axum::serve::Listener::local_addr(&listener).expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("server runs");
        });
        Self {
            base: format!("http://{addr}"),
            app,
            database_url,
            client: reqwest::Client::new(),
            queries,
            projector,
        }
    }

    /// Lets the projector apply every event committed so far, then stops it for good: events
    /// committed afterwards are never projected.
    pub async fn stop_projector(&self) {
        let (runner, task) = self.projector.as_ref().expect("a projecting app");
        runner
            .sync(PATIENCE)
            .await
            .expect("the projector catches up");
        runner.shutdown();
        let task = task.lock().expect("task lock").take();
        task.expect("the projector still runs")
            .await
            .expect("the projector stops cleanly");
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with a token; returns status and body text.
    pub async fn get(&self, token: &str, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    /// GET JSON with a token.
    pub async fn get_json(&self, token: &str, path: &str) -> (u16, Value) {
        let (status, text) = self.get(token, path).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST JSON with a token; returns status and the JSON body.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates timeline `id` as the planner and asserts it worked.
    pub async fn create_timeline(&self, id: &str) {
        let (status, body) = self
            .post(PLANNER, "/timelines", &json!({"id": id, "name": format!("Timeline {id}"), "effective_from": "2019-01-01"}))
            .await;
        assert_eq!(status, 201, "create {id}: {body}");
    }

    /// Posts one command as the planner.
    pub async fn command(&self, timeline: &str, command: &Value) -> (u16, Value) {
        self.post(PLANNER, &format!("/timelines/{timeline}/commands"), command)
            .await
    }
}

/// A projector handle whose task never runs: it is spawned on a runtime dropped at once, so
/// nothing is ever projected (the runner's own `shutdown` cannot promise that: it may be called
/// before the task starts listening).
fn stalled_runner(db: omorg_store::Database) -> ProjectionRunner {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (runner, _task) = rt.block_on(async { ProjectionRunner::spawn(db) });
        drop(rt);
        runner
    })
    .join()
    .expect("runner thread")
}

/// Tokens for every role.
fn test_auth() -> AuthConfig {
    AuthConfig::parse(&format!(
        "{PLANNER}:planner:planner@test,{AUDITOR}:auditor,{READER}:reader,{ADMIN}:admin"
    ))
    .expect("test tokens")
}

/// How long a test query waits for the projector: long, because on a PostgreSQL server shared
/// with concurrent tests another test's open transaction can hold back the catch-up reader.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A command's JSON: `action` (with its `type`) wrapped in a context with a decision reference.
pub fn command(id: &str, effective_from: &str, action: Value) -> Value {
    json!({
        "command_id": id,
        "effective_from": effective_from,
        "decision": {
            "case_number": format!("case/{id}"),
            "body": "Bystyret",
            "decision_date": "2019-06-19",
            "title": format!("Decision {id}")
        },
        "actor": "planner@test",
        "rationale": "e2e",
        "action": action
    })
}

/// Runs an async test body `fn(TestApp) -> impl Future` once on PostgreSQL and once on SQLite.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::TestApp::spawn($crate::Backend::Postgres).await).await;
                }
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::TestApp::spawn($crate::Backend::Sqlite).await).await;
                }
            }
        )*
    };
}

//! Prometheus metrics in the text exposition format, hand-rolled: a few counters do not justify
//! a metrics framework.
//!
//! Counters are process-wide statics: the commands counter is bumped by the application layer,
//! which the CLI shares with the server, and a process serves one app.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Commands accepted and refused since start.
#[derive(Debug, Default)]
pub struct CommandCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    events: AtomicU64,
}

impl CommandCounters {
    /// Counts an accepted store command that wrote `events` events.
    pub fn accepted(&self, events: usize) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
    }
    /// Counts a refused (or failed) store command.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// The process's command counters.
pub static COMMANDS: CommandCounters = CommandCounters {
    accepted: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    events: AtomicU64::new(0),
};

/// Requests by (method, route template, status). A std mutex: held only to bump a counter,
/// never across an await.
static REQUESTS: Mutex<BTreeMap<(String, String, u16), u64>> = Mutex::new(BTreeMap::new());

/// Middleware counting every request by its route *template* (so ids do not explode the label
/// set; unmatched paths count as `unmatched`).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let key = (method, route, response.status().as_u16());
    let mut map = REQUESTS.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_insert(0) += 1;
    response
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub fn render() -> String {
    let mut s = String::new();
    s.push_str("# HELP omorg_http_requests_total HTTP requests by method, route and status.\n");
    s.push_str("# TYPE omorg_http_requests_total counter\n");
    let map = REQUESTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for ((method, route, status), n) in map {
        let _ = writeln!(
            s,
            "omorg_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
            escape(&method),
            escape(&route)
        );
    }
    let c = &COMMANDS;
    for (name, help, value) in [
        (
            "omorg_commands_accepted_total",
            "Command requests accepted (a batch counts once).",
            &c.accepted,
        ),
        (
            "omorg_commands_refused_total",
            "Command requests refused or failed.",
            &c.refused,
        ),
        (
            "omorg_events_appended_total",
            "Events appended by accepted commands.",
            &c.events,
        ),
    ] {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    s
}

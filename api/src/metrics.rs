//! Prometheus metrics in the text exposition format, hand-rolled: a few counters do not justify
//! a metrics framework.
//!
//! Counters are process-wide statics: the commands counter is bumped by the application layer,
//! which the CLI shares with the server, and a process serves one app.

use axum::extract::MatchedPath;
use axum::http::Method;
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

/// Requests by (method, route template, status), in the order first seen. A std mutex: held
/// only to bump a counter, never across an await. A list, not a map: an API has a few dozen
/// series, a scan of them is cheaper than hashing, and a request of a series already seen
/// allocates nothing.
static REQUESTS: Mutex<Vec<RequestCount>> = Mutex::new(Vec::new());

/// One series of `omorg_http_requests_total`.
#[derive(Clone, Debug)]
struct RequestCount {
    method: Method,
    route: String,
    status: u16,
    count: u64,
}

/// Counts a request by its route *template* (so ids do not explode the label set; a request
/// that matched no route counts as `unmatched`). Called by [`crate::access`] for every request.
pub fn count_request(method: &Method, route: Option<&MatchedPath>, status: u16) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let mut series = REQUESTS.lock().unwrap_or_else(|p| p.into_inner());
    match series
        .iter_mut()
        .find(|s| s.status == status && s.method == *method && s.route == route)
    {
        Some(s) => s.count += 1,
        None => series.push(RequestCount {
            method: method.clone(),
            route: route.to_owned(),
            status,
            count: 1,
        }),
    }
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
    let mut series = REQUESTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    series.sort_by(|a, b| {
        (a.method.as_str(), &a.route, a.status).cmp(&(b.method.as_str(), &b.route, b.status))
    });
    for RequestCount {
        method,
        route,
        status,
        count: n,
    } in series
    {
        let _ = writeln!(
            s,
            "omorg_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
            escape(method.as_str()),
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

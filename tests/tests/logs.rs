//! The server's log: one line per request at `info`, inside the request's span, with the
//! status and the latency. (A file of its own: it installs the process's log subscriber.)

use omorg_e2e::{TestApp, READER};
use omorg_store::Backend;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_request_is_logged_once_at_info() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info,sqlx=warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, _) = app.get(READER, "/timelines/nope/org-chart").await;
    assert_eq!(status, 404);
    let (status, _) = app.get(READER, "/healthz").await;
    assert_eq!(status, 200);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("finished processing request"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    assert!(
        lines[0].contains("path=/timelines/nope/org-chart") && lines[0].contains("status=404"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("latency="), "{}", lines[0]);
    assert!(
        lines[1].contains("path=/healthz") && lines[1].contains("status=200"),
        "{}",
        lines[1]
    );
}

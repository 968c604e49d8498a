//! `omorg serve` as users run it: the real binary, on an SQLite file of its own, on a free port.
//! It loads the demo, answers over HTTP, logs each request, and exits 0 on SIGTERM; a database
//! holding the demo as an earlier release loaded it is served as it is, with a warning.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `omorg serve --demo --no-auth` on `db` and waits until it answers `/healthz`.
async fn serve(db: &Path, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args(["serve", "--demo", "--no-auth", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("omorg serve starts");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("omorg serve did not answer within 60 s");
}

/// Sends SIGTERM and returns the exit status and everything the server logged.
async fn stop(mut child: Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut log).await.expect("stderr");
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .expect("exit status");
    (status, log)
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("omorg_t_serve_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("omorg.db")
}

#[tokio::test]
async fn serve_loads_the_demo_answers_and_stops_cleanly() {
    let db = temp_db("fresh");
    let port = free_port();
    let child = serve(&db, port).await;
    let chart = reqwest::get(format!(
        "http://127.0.0.1:{port}/timelines/oslo/org-chart?as_of=2024-06-01&format=csv"
    ))
    .await
    .expect("request");
    assert_eq!(chart.status(), 200);
    assert!(chart.text().await.unwrap().contains("Bydel Gamle Oslo"));
    let (status, log) = stop(child).await;
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("demo data loaded"), "{log}");
    assert!(
        log.contains("finished processing request") && log.contains("status=200"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

#[tokio::test]
async fn serve_keeps_an_older_demo_and_says_so() {
    let db = temp_db("older");
    // An "earlier release": the Oslo timeline under the demo's command id, with another name.
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args(["serve", "--no-auth", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("omorg serve starts");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/timelines");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = client
            .post(&url)
            .json(&serde_json::json!({"id": "oslo", "name": "Oslo (older demo)", "command_id": "oslo-create"}))
            .send()
            .await;
        if let Ok(r) = sent {
            assert_eq!(r.status(), 201);
            break;
        }
        assert!(Instant::now() < deadline, "omorg serve did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = stop(child).await;
    assert!(status.success());

    let port = free_port();
    let child = serve(&db, port).await;
    let timeline: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/timelines/oslo"))
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
    assert_eq!(timeline["name"], "Oslo (older demo)", "{timeline}");
    let (status, log) = stop(child).await;
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("serving the demo data already in the database")
            && log.contains("fresh database"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

//! Runs every `curl` example of docs/api.md, in order, with the real `curl` through `sh`, against
//! a fresh server, checking the status given by the `# expect: NNN` comment before it. Keeps the
//! documentation true.

use omorg_e2e::{on_both_backends, TestApp, ADMIN};

/// One example: the expected status and the curl words.
#[derive(Debug)]
struct Example {
    expect: u16,
    line: String,
}

/// The `curl` lines inside ```sh blocks, each with the `# expect:` status before it.
fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut expect = None;
    for line in markdown.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(code) = t.strip_prefix("# expect:") {
            expect = Some(code.trim().parse().expect("a status after # expect:"));
        } else if t.starts_with("curl ") {
            let expect = expect
                .take()
                .unwrap_or_else(|| panic!("no # expect: before {t}"));
            out.push(Example {
                expect,
                line: t.to_owned(),
            });
        }
    }
    out
}

/// Runs the example with the real `curl`, through `sh` as a reader would paste it, with `OMORG`
/// and `TOKEN` set, and checks the status it got.
async fn replay(app: &TestApp, example: &Example, n: usize) {
    let body = std::env::temp_dir().join(format!("omorg_t_docs_{}_{n}", std::process::id()));
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} -o '{}' -w '%{{http_code}}'",
            example.line,
            body.display()
        ))
        .env("OMORG", &app.base)
        .env("TOKEN", ADMIN)
        .output()
        .await
        .expect("sh runs");
    let text = std::fs::read_to_string(&body).unwrap_or_default();
    let _ = std::fs::remove_file(&body);
    assert!(
        out.status.success(),
        "curl failed ({}; is curl installed? scripts/test installs it): {}\n{}",
        out.status,
        example.line,
        String::from_utf8_lossy(&out.stderr)
    );
    let status: u16 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("curl printed the status");
    assert_eq!(status, example.expect, "{}\n→ {text}", example.line);
}

async fn every_curl_example_in_api_md_works(app: TestApp) {
    let md = include_str!("../../docs/api.md");
    let examples = examples(md);
    assert!(
        examples.len() >= 20,
        "found only {} examples",
        examples.len()
    );
    for (n, e) in examples.iter().enumerate() {
        replay(&app, e, n).await;
    }
}

on_both_backends!(every_curl_example_in_api_md_works);

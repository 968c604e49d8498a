//! Runs every `curl` example of docs/api.md, in order, against a fresh server, checking the
//! status given by the `# expect: NNN` comment before it. Keeps the documentation true.

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

/// Splits a shell command line into words: single quotes literal, double quotes and bare words
/// expand `$VAR` from `vars`. Enough for the documented examples; anything else fails the test.
fn words(line: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let expand = |s: &str| {
        let mut s = s.to_owned();
        for (k, v) in vars {
            s = s.replace(&format!("${k}"), v);
        }
        assert!(!s.contains('$'), "unknown variable in {s}");
        s
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                let mut q = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    q.push(c);
                }
                cur.push_str(&expand(&q));
            }
            ' ' if in_word => {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            ' ' => {}
            '$' => {
                let mut var = String::from("$");
                for c in chars.by_ref() {
                    if c == ' ' {
                        break;
                    }
                    var.push(c);
                }
                cur.push_str(&expand(&var));
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

async fn replay(app: &TestApp, example: &Example) {
    let words = words(&example.line, &[("OMORG", &app.base), ("TOKEN", ADMIN)]);
    let mut method = reqwest::Method::GET;
    let mut url = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" => {}
            "-X" => method = it.next().expect("method").parse().expect("a method"),
            "-H" => {
                let h = it.next().expect("header");
                let (k, v) = h.split_once(':').expect("Name: value");
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "-d" => body = Some(it.next().expect("data").clone()),
            u if u.starts_with("http") => url = Some(u.to_owned()),
            other => panic!("the docs test does not understand curl option {other}"),
        }
    }
    let mut req = app.client.request(method, url.expect("a URL"));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
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
    for e in &examples {
        replay(&app, e).await;
    }
}

on_both_backends!(every_curl_example_in_api_md_works);

#[test]
fn the_word_splitter_handles_quotes_and_variables() {
    let w = words(
        r#"curl -s -X POST "$OMORG/t" -H 'A: b c' -d '{"x": "$y"}'"#,
        &[("OMORG", "http://h")],
    );
    assert_eq!(
        w,
        [
            "curl",
            "-s",
            "-X",
            "POST",
            "http://h/t",
            "-H",
            "A: b c",
            "-d",
            r#"{"x": "$y"}"#
        ]
    );
}

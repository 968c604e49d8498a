//! The `omorg` subcommands, run in-process on a fresh database of each backend.

mod common;

use clap::Parser;
use common::{import_file, omorg, omorg_binary, omorg_output, scratch, write_file};
use omorg_api::cli::auth_for;
use omorg_api::config::{Cli, Command};
use omorg_e2e::{on_both_backends, TestApp};

async fn cli_commands_work_and_fail_cleanly(app: TestApp) {
    // One directory per test database, so the two backends' runs never share files.
    let db_name = app
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or("db")
        .replace('.', "-");
    let dir = std::env::temp_dir().join(format!("omorg-cli-{db_name}"));
    std::fs::create_dir_all(&dir).unwrap();
    omorg(&app, &["migrate"]).await.expect("migrate");
    omorg(&app, &["demo"]).await.expect("demo");
    omorg(&app, &["demo"]).await.expect("demo again is a no-op");
    omorg(
        &app,
        &["org-chart", "--timeline", "oslo", "--as-of", "2024-01-01"],
    )
    .await
    .expect("org chart");
    // Arguments the API would refuse with 422 are usage errors naming the option.
    for date in ["0000-01-01"] {
        let e = omorg(&app, &["org-chart", "--timeline", "oslo", "--as-of", date])
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().starts_with("--as-of: "), "{e}");
        assert!(e.to_string().contains("outside the supported range"), "{e}");
    }
    for command in ["org-chart", "decisions", "export", "verify"] {
        let e = omorg(&app, &[command, "--timeline", ""]).await.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{command}: {e}");
        assert!(
            e.to_string().starts_with("--timeline \"\": "),
            "{command}: {e}"
        );
        assert!(!e.to_string().contains("not found"), "{command}: {e}");
    }
    omorg(&app, &["verify"]).await.expect("every chain intact");
    // A version the timeline has not reached is a usage error naming the option.
    let e = omorg(
        &app,
        &["org-chart", "--timeline", "oslo", "--known-version", "999"],
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().starts_with("--known-version: "), "{e}");
    // Against a head written down earlier: one the chain does not reach is a broken chain
    // (exit 3); a malformed one is a usage error (exit 2).
    let zeros = "0".repeat(64);
    for (version, hash, code) in [("99", zeros.as_str(), 3), ("1", "abc", 2)] {
        let args = [
            "verify",
            "--timeline",
            "oslo",
            "--head-version",
            version,
            "--head-hash",
            hash,
        ];
        let e = omorg(&app, &args).await.unwrap_err();
        assert_eq!(e.exit_code(), code, "{version} {hash}: {e}");
    }

    let out = dir.join("oslo.jsonl");
    omorg(
        &app,
        &[
            "export",
            "--timeline",
            "oslo",
            "--output",
            out.to_str().unwrap(),
        ],
    )
    .await
    .expect("export");
    let lines = std::fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["event_type"], "TimelineCreated");
    assert_eq!(first["stream_version"], 1);

    let yaml = dir.join("commands.yaml");
    std::fs::write(&yaml, "- command_id: cli-svc\n  effective_from: 2021-01-01\n  decision: {case_number: '21/1', body: Bystyret, decision_date: 2020-12-01, title: Ny tjeneste}\n  action: {type: RegisterService, service: frivilligsentral, name: Frivilligsentral}\n").unwrap();
    omorg(
        &app,
        &["import", yaml.to_str().unwrap(), "--timeline", "oslo"],
    )
    .await
    .expect("import yaml");
    omorg(
        &app,
        &["import", yaml.to_str().unwrap(), "--timeline", "oslo"],
    )
    .await
    .expect("re-import is a no-op");
    let csv = dir.join("services.csv");
    std::fs::write(&csv, "service,name,category\nlegevakt,Legevakt,emergency\n").unwrap();
    omorg(
        &app,
        &[
            "import",
            csv.to_str().unwrap(),
            "--timeline",
            "t-new",
            "--create",
            "New",
            "--effective-from",
            "2021-01-01",
            "--case-number",
            "21/2",
            "--body",
            "Bystyret",
            "--title",
            "Legevakt",
        ],
    )
    .await
    .expect("import csv");

    // Failures are errors with exit codes, never panics.
    let e = omorg(&app, &["org-chart", "--timeline", "nope"])
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("timeline nope not found"), "{e}");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "- {command_id: x, effective_from: 2021-01-01, decision: {case_number: a, body: b, decision_date: 2021-01-01, title: t}, action: {type: DissolveUnit, unit: ghost}}\n").unwrap();
    let e = omorg(
        &app,
        &["import", bad.to_str().unwrap(), "--timeline", "oslo"],
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("rule: unknown-unit"), "{e}");
    assert!(
        e.to_string()
            .contains("bad.yaml: command 0: unknown unit ghost"),
        "{e}"
    );
    let e = omorg(
        &app,
        &[
            "import",
            dir.join("missing.yaml").to_str().unwrap(),
            "--timeline",
            "oslo",
        ],
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    omorg(&app, &["rebuild"]).await.expect("rebuild");
    omorg(&app, &["decisions", "--timeline", "oslo", "--case", "21/1"])
        .await
        .expect("decisions");
    let e = omorg(&app, &["decisions", "--timeline", "nope"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timeline nope not found"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

on_both_backends!(cli_commands_work_and_fail_cleanly);

fn serve_args(argv: &[&str]) -> omorg_api::config::ServeArgs {
    let mut full = vec!["omorg", "serve"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full).expect("valid").command {
        Command::Serve(a) => a,
        _ => unreachable!(),
    }
}

#[test]
fn no_auth_only_on_loopback_and_tokens_otherwise() {
    assert!(auth_for(&serve_args(&["--no-auth"])).unwrap().is_disabled());
    // A host name resolving only to loopback addresses is loopback.
    assert!(
        auth_for(&serve_args(&["--no-auth", "--listen", "localhost:8080"]))
            .unwrap()
            .is_disabled()
    );
    let e = auth_for(&serve_args(&["--no-auth", "--listen", "0.0.0.0:8080"])).unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    let e = auth_for(&serve_args(&["--listen", "0.0.0.0:8080"])).unwrap_err();
    assert!(e.to_string().contains("OMORG_TOKENS"), "{e}");
    assert!(!auth_for(&serve_args(&[
        "--tokens",
        "long-enough-token:admin",
        "--listen",
        "0.0.0.0:8080"
    ]))
    .unwrap()
    .is_disabled());
    assert!(Cli::try_parse_from(["omorg", "serve", "--tokens", "long-enough-token:boss"]).is_err());
}

/// Logs written anywhere but a terminal (a file, a pipe, a journal) carry no colour codes.
#[tokio::test]
async fn logs_off_a_terminal_have_no_colour_codes() {
    let dir = std::env::temp_dir().join(format!("omorg-cli-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args(["--database-url", &url, "migrate"])
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("run omorg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("DEBUG"),
        "debug logs were written: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Import messages say what happened: a re-import wrote nothing, and a bad or refused row is
/// named by its file and line (a command list's entry by its file and index).
#[tokio::test]
async fn import_messages_name_the_file_and_line() {
    let dir = scratch("import-messages");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let csv = |name: &str, text: &str| write_file(&dir, name, text);
    let decision = [
        "--effective-from",
        "2021-01-01",
        "--case-number",
        "21/2",
        "--body",
        "Bystyret",
        "--title",
        "Legevakt",
    ];
    let import = |file: String| {
        let url = url.clone();
        async move {
            let options = [&["--timeline", "t", "--create", "T"][..], &decision].concat();
            import_file(&url, &file, &options).await
        }
    };

    let services = csv("services.csv", "service,name\nlegevakt,Legevakt\n");
    let (ok, stderr) = import(services.clone()).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("created timeline t"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "imported 1 command from {services} into t: 1 new event"
        )),
        "{stderr}"
    );
    let (ok, stderr) = import(services.clone()).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{services} was already imported into t (duplicate): nothing written"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("timeline t exists (named \"T\"): --create \"T\" creates nothing"),
        "{stderr}"
    );
    assert!(!stderr.contains("new event"), "{stderr}");
    // The same file with a row added: only that row is new.
    let more = csv(
        "more.csv",
        "service,name\nlegevakt,Legevakt\nsykehjem,Sykehjem\n",
    );
    let (ok, stderr) = import(more).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("1 new event (1 command was already applied)"),
        "{stderr}"
    );
    // Edited again (a row put first, so the earlier rows moved down a line) and imported by a
    // colleague: the rows already in are the same decisions, and only the new one is written.
    let reimport = |file: String, actor: &'static str| {
        let url = url.clone();
        async move {
            let options = [&["--timeline", "t", "--actor", actor][..], &decision].concat();
            import_file(&url, &file, &options).await
        }
    };
    let moved = csv(
        "moved.csv",
        "service,name\nbarnevern,Barnevern\nlegevakt,Legevakt\nsykehjem,Sykehjem\n",
    );
    let (ok, stderr) = reimport(moved.clone(), "colleague").await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("1 new event (2 commands were already applied)"),
        "{stderr}"
    );
    let (ok, stderr) = reimport(moved, "someone-else").await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("(duplicate): nothing written"), "{stderr}");
    // A row whose id is recorded for another change (the service renamed in the file) is still
    // refused, naming its line, and nothing of the file is written.
    let renamed = csv(
        "renamed.csv",
        "service,name\nakutt,Akutt\nlegevakt,Legevakten\n",
    );
    let (ok, stderr) = reimport(renamed.clone(), "colleague").await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains(&format!("{renamed}: line 3:")), "{stderr}");
    assert!(stderr.contains("command id"), "{stderr}");
    assert!(stderr.contains("it differs in its change"), "{stderr}");
    // The same row under another decision title says that the decision is what differs.
    let other_title = csv("other-title.csv", "service,name\nlegevakt,Legevakt\n");
    let (ok, stderr) = import_file(
        &url,
        &other_title,
        &[
            "--timeline",
            "t",
            "--effective-from",
            "2021-01-01",
            "--case-number",
            "21/2",
            "--body",
            "Bystyret",
            "--title",
            "Legevakt (endret)",
        ],
    )
    .await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("it differs in its decision"), "{stderr}");
    let (ok, stderr) = reimport(csv("akutt.csv", "service,name\nakutt,Akutt\n"), "colleague").await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("1 new event,"),
        "akutt was not written before: {stderr}"
    );

    let bad = csv(
        "bad-date.csv",
        "service,name,effective_from\nx,X,notadate\n",
    );
    let (ok, stderr) = import(bad.clone()).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "omorg: error: {bad}: line 2: column effective_from: \"notadate\" is not a date"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("decision_date"), "{stderr}");
    let bent = csv(
        "bent-date.csv",
        "service,name,effective_from\nx,X,2025-1-1\n",
    );
    let (ok, stderr) = import(bent.clone()).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "omorg: error: {bent}: line 2: column effective_from: \"2025-1-1\" is not a date written YYYY-MM-DD"
        )),
        "{stderr}"
    );

    let refused = csv(
        "refused.csv",
        "service,unit,areas\nlegevakt,nounit,030101\n",
    );
    let (ok, stderr) = import(refused.clone()).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("omorg: error: {refused}: line 2: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown unit nounit [rule: unknown-unit]"),
        "{stderr}"
    );
    assert!(!stderr.contains("command 0"), "{stderr}");
    // A refused import that was to create its timeline creates nothing either.
    let (ok, stderr) = omorg_binary(
        &[
            "--database-url",
            &url,
            "import",
            &refused,
            "--timeline",
            "t-new",
            "--create",
            "New",
            "--effective-from",
            "2021-01-01",
            "--case-number",
            "21/2",
            "--body",
            "Bystyret",
            "--title",
            "Legevakt",
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("omorg: error: {refused}: line 2: ")),
        "{stderr}"
    );
    let (ok, stderr) = omorg_binary(
        &["--database-url", &url, "export", "--timeline", "t-new"],
        &[],
    )
    .await;
    assert!(!ok, "the refused import left timeline t-new behind");
    assert!(stderr.contains("t-new not found"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The binary prints an out-of-range `--as-of` as an error, not an empty chart, and refuses a
/// date not written YYYY-MM-DD.
#[tokio::test]
async fn an_out_of_range_or_bent_date_is_an_error() {
    let dir = scratch("as-of");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let (ok, stderr) = omorg_binary(&["--database-url", &url, "demo"], &[]).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = omorg_binary(
        &[
            "--database-url",
            &url,
            "org-chart",
            "--timeline",
            "oslo",
            "--as-of",
            "0000-12-31",
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(stderr.starts_with("omorg: error: --as-of: "), "{stderr}");
    // A date not written YYYY-MM-DD is a usage error naming the form, on every date option,
    // instead of being read as the date chrono would make of it.
    for (args, option) in [
        (
            vec!["org-chart", "--timeline", "oslo", "--as-of", "2025-1-1"],
            "--as-of",
        ),
        (
            vec!["org-chart", "--timeline", "oslo", "--as-of", "+2025-01-01"],
            "--as-of",
        ),
        (
            vec![
                "import",
                "x.csv",
                "--timeline",
                "oslo",
                "--effective-from",
                " 2025-01-01",
            ],
            "--effective-from",
        ),
        (
            vec![
                "import",
                "x.csv",
                "--timeline",
                "oslo",
                "--decision-date",
                "2025-02-30",
            ],
            "--decision-date",
        ),
    ] {
        let mut argv = vec!["--database-url", url.as_str()];
        argv.extend(args);
        let out = omorg_output(&argv, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains(option), "{argv:?}: {stderr}");
        assert!(stderr.contains("YYYY-MM-DD"), "{argv:?}: {stderr}");
    }
    // Counts and versions are digits only, as the API reads them.
    for (args, option) in [
        (
            vec!["org-chart", "--timeline", "oslo", "--known-version", "+2"],
            "--known-version",
        ),
        (
            vec!["replay", "--timeline", "oslo", "--limit", "+1"],
            "--limit",
        ),
        (
            vec!["replay", "--timeline", "oslo", "--after-version", "+95"],
            "--after-version",
        ),
    ] {
        let mut argv = vec!["--database-url", url.as_str()];
        argv.extend(args);
        let out = omorg_output(&argv, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains(option), "{argv:?}: {stderr}");
        assert!(stderr.contains("digits only"), "{argv:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `OMORG_NO_AUTH` takes the usual spellings of a boolean, as `--no-auth` does without one.
#[tokio::test]
async fn no_auth_from_the_environment_takes_boolish_values() {
    let dir = scratch("no-auth");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    // On a non-loopback address the server refuses before serving, and the refusal tells
    // whether authentication was asked to be off.
    let serve = ["--database-url", &url, "serve", "--listen", "0.0.0.0:0"];
    for value in ["1", "yes", "true", "on"] {
        let (ok, stderr) = omorg_binary(&serve, &[("OMORG_NO_AUTH", value)]).await;
        assert!(!ok);
        assert!(
            stderr.contains("only allowed on a loopback address"),
            "{value}: {stderr}"
        );
    }
    for value in ["0", "no", "false", "off"] {
        let (ok, stderr) = omorg_binary(&serve, &[("OMORG_NO_AUTH", value)]).await;
        assert!(!ok);
        assert!(stderr.contains("no tokens configured"), "{value}: {stderr}");
    }
    let (ok, stderr) = omorg_binary(&serve, &[("OMORG_NO_AUTH", "maybe")]).await;
    assert!(!ok);
    assert!(
        stderr.contains("OMORG_NO_AUTH") || stderr.contains("--no-auth"),
        "{stderr}"
    );
    let mut flag = serve.to_vec();
    flag.push("--no-auth");
    let (ok, stderr) = omorg_binary(&flag, &[]).await;
    assert!(!ok);
    assert!(
        stderr.contains("only allowed on a loopback address"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An unreachable PostgreSQL fails at once with the cause, the password hidden.
#[tokio::test]
async fn an_unreachable_database_fails_fast_with_the_cause() {
    let (ok, stderr) = omorg_binary(
        &[
            "--database-url",
            "postgres://omorg:s3cret@127.0.0.1:1/x",
            "migrate",
        ],
        &[],
    )
    .await;
    assert!(!ok);
    // The first attempt's own cause, not the pool's "timed out" after retrying for 30 s (no
    // wall-clock bound here: the message tells which path failed).
    assert!(!stderr.contains("timed out"), "{stderr}");
    assert_eq!(
        stderr.to_lowercase().matches("connection refused").count(),
        1,
        "the cause, once: {stderr}"
    );
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// `omorg adopt` adopts a scenario as the API does: the parent then has the scenario's changes,
/// running it again writes nothing, and a refusal exits non-zero with its reason.
#[tokio::test]
async fn adopt_applies_a_scenario_to_its_parent() {
    let dir = scratch("adopt");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let omorg = |args: &[&str]| {
        let mut argv = vec!["--database-url", url.as_str()];
        argv.extend_from_slice(args);
        let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
        async move {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = omorg_output(&argv, &[]).await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    // The adopting decision's options, `changed` replacing some.
    let adopt = |timeline: &str, scenario: &str, changed: &[(&str, &str)]| {
        let mut argv = vec!["adopt", "--timeline", timeline, "--scenario", scenario];
        for (option, value) in [
            ("--case-number", "19/1"),
            ("--body", "Bystyret"),
            ("--decision-date", "2019-06-19"),
            ("--title", "Innbyggerservice valgt"),
            ("--rationale", "valgt"),
        ] {
            let value = changed
                .iter()
                .find(|(o, _)| *o == option)
                .map_or(value, |(_, v)| *v);
            argv.extend([option, value]);
        }
        for (option, value) in changed {
            if !argv.contains(option) {
                argv.extend([*option, *value]);
            }
        }
        omorg(&argv)
    };
    // The demo forks asker-alt-1 and asker-alt-2 from asker; each establishes a department
    // and moves the citizen service desk to it.
    let (code, _, stderr) = omorg(&["demo"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    // A scenario's decision log starts with what it inherited, each entry naming its timeline.
    let (code, log, stderr) = omorg(&["decisions", "--timeline", "asker-alt-1"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let versions: Vec<&str> = log
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(versions.first(), Some(&"asker@v1"), "{log}");
    assert!(versions.contains(&"v1"), "{log}");
    let chart = ["org-chart", "--timeline", "asker", "--as-of", "2020-06-01"];
    let (_, before, _) = omorg(&chart).await;
    assert!(!before.contains("Innbyggerservice"), "{before}");
    // The service points show under the unit that runs them: Heggedal's with the business
    // unit since the merger, Borgen's with the municipality.
    // Whether `point` is listed right under `unit` (its own points, not its children's).
    let runs = |chart: &str, unit: &str, point: &str| {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let mut lines = chart.lines().skip_while(|l| l.trim_start() != unit);
        let Some(header) = lines.next() else {
            return false;
        };
        let own = indent(header) + 2;
        lines
            .take_while(|l| indent(l) > indent(header))
            .any(|l| indent(l) == own && l.trim_start() == point)
    };
    let heggedal = "- point innbyggertorg-heggedal Innbyggertorg Heggedal (area 0220; library)";
    let borgen = "- point innbyggertorg-borgen Innbyggertorg Borgen (area 0220; library)";
    let (municipality, business) = (
        "Asker kommune [3025] (municipality) areas: 0220, 0627, 0628",
        "Innbyggertorg (business_unit)",
    );
    assert!(runs(&before, business, heggedal), "{before}");
    assert!(!runs(&before, municipality, heggedal), "{before}");
    assert!(runs(&before, municipality, borgen), "{before}");

    let (code, stdout, stderr) = adopt("asker", "asker-alt-1", &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout
            .starts_with("adopted scenario asker-alt-1 into asker: 2 new events, now at version "),
        "{stdout}"
    );
    assert!(stdout.contains("(adopt:asker-alt-1/2)"), "{stdout}");
    let (_, after, _) = omorg(&chart).await;
    assert!(after.contains("Innbyggerservice (department)"), "{after}");
    let (code, log, stderr) = omorg(&["decisions", "--timeline", "asker", "--case", "19/1"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.contains("Bystyret 19/1: Innbyggerservice valgt"),
        "{log}"
    );
    // A filter nothing matches says so (on standard error: the output stays empty).
    let (code, log, stderr) =
        omorg(&["decisions", "--timeline", "asker", "--case", "nosuch"]).await;
    assert_eq!((code, log.as_str()), (Some(0), ""), "{stderr}");
    assert!(stderr.contains("no decision of asker matches"), "{stderr}");

    // Again: a no-op.
    let version = stdout
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let (code, stdout, stderr) = adopt("asker", "asker-alt-1", &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        format!(
            "scenario asker-alt-1 was already adopted into asker (duplicate): nothing written, \
             the timeline stays at version {version}"
        )
    );

    // Refusals exit 1 with the reason: the other alternative no longer fits (the desk has
    // moved), a timeline that does not exist, a timeline that is not a scenario.
    for (timeline, scenario, reason) in [
        ("asker", "asker-alt-2", "change 3 of scenario asker-alt-2: "),
        ("nope", "asker-alt-1", "timeline nope not found"),
        (
            "oslo",
            "asker-alt-1",
            "was forked from asker, not from oslo [field: scenario]",
        ),
        ("asker", "oslo", "is not a scenario"),
        ("asker", "ghost", "scenario ghost not found"),
    ] {
        let (code, stdout, stderr) = adopt(timeline, scenario, &[("--case-number", "19/2")]).await;
        assert_eq!(code, Some(1), "{scenario} into {timeline}: {stderr}");
        assert!(stderr.starts_with("omorg: error: "), "{stderr}");
        assert!(
            stderr.contains(reason),
            "{scenario} into {timeline}: {stderr}"
        );
        assert!(stdout.is_empty(), "{stdout}");
    }
    let (_, _, stderr) = adopt("asker", "asker-alt-2", &[]).await;
    assert!(
        stderr.trim_end().ends_with("[rule: nothing-to-change]"),
        "{stderr}"
    );
    // Nothing of the refused alternative was written: one department, alternative 1's.
    let (_, unchanged, _) = omorg(&chart).await;
    assert_eq!(
        unchanged.matches("Innbyggerservice (department)").count(),
        1,
        "{unchanged}"
    );
    // Invalid options are usage errors naming the option.
    for (changed, message) in [
        (("--title", ""), "--title: must not be empty"),
        (("--decision-date", "0000-01-01"), "--decision-date: "),
        (("--command-id", " x"), "--command-id \" x\": "),
    ] {
        let (code, _, stderr) = adopt("asker", "asker-alt-2", &[changed]).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!("omorg: error: {message}")),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// after a first adoption the scenario's record of it is one of its versions,
/// so "change <index + 2>" names the wrong change of the scenario when a re-adoption is refused.
#[tokio::test]
async fn a_refused_readoption_names_the_scenarios_change() {
    let dir = scratch("review-readopt");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let omorg = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let mut argv = vec!["--database-url".to_owned(), url];
            argv.extend(args);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = omorg_output(&argv, &[]).await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let adopt = args(&[
        "adopt",
        "--timeline",
        "asker",
        "--scenario",
        "asker-alt-1",
        "--case-number",
        "19/1",
        "--body",
        "Bystyret",
        "--decision-date",
        "2019-06-19",
        "--title",
        "Valgt",
    ]);
    let (code, _, stderr) = omorg(args(&["demo"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = omorg(adopt.clone()).await;
    assert_eq!(code, Some(0), "{stderr}");
    // The scenario: 1 fork, 2-3 its changes, 4 the record of the adoption, 5 a new unit, which
    // the baseline meanwhile established itself.
    let establish = |id: &str| {
        format!("- command_id: {id}\n  effective_from: 2021-01-01\n  decision: {{case_number: '21/9', body: Bystyret, decision_date: 2020-12-01, title: Ny enhet}}\n  action: {{type: EstablishUnit, unit: review-x, name: X, kind: department, parent: asker}}\n")
    };
    for (timeline, id) in [("asker-alt-1", "alt-x"), ("asker", "base-x")] {
        let file = dir.join(format!("{id}.yaml"));
        std::fs::write(&file, establish(id)).unwrap();
        let (code, _, stderr) = omorg(args(&[
            "import",
            file.to_str().unwrap(),
            "--timeline",
            timeline,
        ]))
        .await;
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (code, _, stderr) = omorg(adopt).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("change 5 of scenario asker-alt-1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Stores a row whose payload is no timeline event, as a row stored before today's checks
/// could be: the projector cannot apply it and stops that timeline (`junk`) alone.
async fn store_unprojectable_event(db: &omorg_store::Database) {
    let sql = "INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, \
               metadata, recorded_at, prev_hash, hash, command_id, command_events) \
               VALUES ('junk', 1, 'UnitEstablished', '1', $1, '{}', $2, $3, $3, 'junk-1', 1)";
    let payload = r#"{"not": "a timeline event"}"#;
    let zeros = "0".repeat(64);
    match db {
        omorg_store::Database::Postgres(p) => sqlx::query(
            &sql.replace("$1", "$1::jsonb")
                .replace("'{}'", "'{}'::jsonb"),
        )
        .bind(payload)
        .bind(chrono::Utc::now())
        .bind(&zeros)
        .execute(p)
        .await
        .map(drop),
        omorg_store::Database::Sqlite(p) => sqlx::query(sql)
            .bind(payload)
            .bind("2026-12-03T12:00:00.000000Z")
            .bind(&zeros)
            .execute(p)
            .await
            .map(drop),
    }
    .expect("store the row");
}

/// A rebuild that could not project a timeline fails (exit 1) naming it and the event, instead
/// of reporting success over read models that queries then refuse; the others are rebuilt.
async fn a_rebuild_that_leaves_a_timeline_unprojected_fails(app: TestApp) {
    omorg(&app, &["demo"]).await.expect("demo");
    store_unprojectable_event(app.app.db()).await;
    let err = omorg(&app, &["rebuild"])
        .await
        .expect_err("a timeline was left unprojected");
    assert_eq!(err.exit_code(), 1, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("rebuild failed for 1 timeline(s)")
            && message.contains("junk stopped at version 1 (position "),
        "{message}"
    );
    omorg(
        &app,
        &["org-chart", "--timeline", "oslo", "--as-of", "2024-01-01"],
    )
    .await
    .expect("the other timelines were rebuilt");
    // Nothing on standard output claims success (a script reading it would believe it).
    let out = omorg_output(&["--database-url", &app.database_url, "rebuild"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

/// `verify` and `export` only read: they never migrate a database (here one whose newest
/// migration is not applied, as an older release left it), and say what to do instead.
async fn reading_commands_never_migrate(app: TestApp) {
    omorg(&app, &["demo"]).await.expect("demo");
    let (count, forget) = (
        "SELECT count(*) FROM _sqlx_migrations",
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    );
    let applied = |db: &omorg_store::Database| {
        let db = db.clone();
        async move {
            match &db {
                omorg_store::Database::Postgres(p) => {
                    sqlx::query_scalar::<_, i64>(count).fetch_one(p).await
                }
                omorg_store::Database::Sqlite(p) => {
                    sqlx::query_scalar::<_, i64>(count).fetch_one(p).await
                }
            }
            .expect("count")
        }
    };
    let all = applied(app.app.db()).await;
    match app.app.db() {
        omorg_store::Database::Postgres(p) => sqlx::query(forget).execute(p).await.map(drop),
        omorg_store::Database::Sqlite(p) => sqlx::query(forget).execute(p).await.map(drop),
    }
    .expect("forget the newest migration");
    for args in [
        &["verify"][..],
        &["verify", "--timeline", "oslo"],
        &["export", "--timeline", "oslo"],
    ] {
        let err = omorg(&app, args).await.expect_err("an older schema");
        assert_eq!(err.exit_code(), 1, "{err}");
        assert!(
            err.to_string().contains("older than this omorg")
                && err.to_string().contains("run `omorg migrate`"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(applied(app.app.db()).await, all - 1, "nothing was migrated");
}

on_both_backends!(
    a_rebuild_that_leaves_a_timeline_unprojected_fails,
    reading_commands_never_migrate
);

/// `verify` on a mistyped SQLite path says there is no database there (exit 2) instead of
/// creating an empty one and reporting nothing wrong.
#[tokio::test]
async fn verify_never_creates_a_database() {
    let dir = scratch("verify-missing");
    let missing = dir.join("omorgg.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [&["verify"][..], &["export", "--timeline", "oslo"]] {
        let mut argv = vec!["--database-url", url.as_str()];
        argv.extend_from_slice(args);
        let out = omorg_output(&argv, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("no database file at"), "{stderr}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An auditor's PostgreSQL role that may only SELECT can verify and export (neither migrates
/// nor writes), and `verify` prints what a break means rather than a debug dump.
#[tokio::test]
async fn a_select_only_role_can_verify_and_export() {
    use sqlx::postgres::PgConnectOptions;
    use std::str::FromStr;
    let app = TestApp::spawn(omorg_store::Backend::Postgres).await;
    omorg(&app, &["demo"]).await.expect("demo");
    let omorg_store::Database::Postgres(pool) = app.app.db() else {
        unreachable!("a PostgreSQL app")
    };
    let role = format!("omorg_t_auditor_{}", std::process::id());
    for sql in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(&sql).execute(pool).await.expect(&sql);
    }
    let options = PgConnectOptions::from_str(&app.database_url).unwrap();
    let host = options.get_host();
    let url = format!(
        "postgres://{role}@{}/{}{}",
        if host.starts_with('/') { "" } else { host },
        options.get_database().unwrap_or_default(),
        if host.starts_with('/') {
            format!("?host={host}&port={}", options.get_port())
        } else {
            format!("?port={}", options.get_port())
        }
    );
    let dir = scratch("auditor");
    let file = dir.join("oslo.jsonl");
    let outcome = async {
        let out = omorg_output(&["--database-url", &url, "verify"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("oslo: intact ("), "{stdout}");
        let out = omorg_output(
            &[
                "--database-url",
                &url,
                "export",
                "--timeline",
                "oslo",
                "-o",
                file.to_str().unwrap(),
            ],
            &[],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::read_to_string(&file).unwrap().lines().count() > 50);
        // A head that was never the chain's: what it means, in words.
        let out = omorg_output(
            &[
                "--database-url",
                &url,
                "verify",
                "--timeline",
                "oslo",
                "--head-version",
                "3",
                "--head-hash",
                &"ab".repeat(32),
            ],
            &[],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(3), "{stdout}");
        assert!(
            stdout.contains("oslo: BROKEN at version 3: the event there does not have the hash given (--head-hash)"),
            "{stdout}"
        );
        assert!(!stdout.contains('{'), "no debug dump: {stdout}");
    };
    outcome.await;
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(&sql).execute(pool).await.expect(&sql);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A command file (YAML) establishing municipality `unit` under `command_id`.
fn establishing(command_id: &str, unit: &str) -> String {
    format!(
        "- command_id: {command_id}\n  effective_from: 2025-01-01\n  decision: {{case_number: '25/1', body: Bystyret, decision_date: 2024-12-01, title: T}}\n  action: {{type: EstablishUnit, unit: {unit}, name: {unit}, kind: municipality}}\n"
    )
}

/// The actor of an import: `$USER` when set, `omorg-cli` when it is empty (a service account,
/// a container), and an explicit empty `--actor` is an invocation error naming it.
#[tokio::test]
async fn an_empty_user_falls_back_and_an_empty_actor_is_named() {
    let dir = scratch("actor");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let file = dir.join("c.yaml");
    std::fs::write(&file, establishing("a1", "k")).unwrap();
    let import = |actor: Option<&'static str>| {
        let (url, file) = (url.clone(), file.clone());
        async move {
            let mut argv = vec![
                "--database-url".to_owned(),
                url,
                "import".to_owned(),
                file.display().to_string(),
                "--timeline".to_owned(),
                "k".to_owned(),
                "--create".to_owned(),
                "K".to_owned(),
            ];
            if let Some(a) = actor {
                argv.extend(["--actor".to_owned(), a.to_owned()]);
            }
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            omorg_output(&argv, &[("USER", "")]).await
        }
    };
    let out = import(Some("")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--actor must not be empty"), "{stderr}");
    let out = import(None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = omorg_output(&["--database-url", &url, "export", "--timeline", "k"], &[]).await;
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains(r#""actor":"omorg-cli""#), "{log}");
    // The timeline `--create` starts begins with the file's history, not on the import's day.
    let created: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        created["payload"]["effective_from"], "2025-01-01",
        "{created}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The (stream, version, hash) of every event of an `omorg export`, in file order.
fn chain_of(export: &str) -> Vec<(String, u64, String)> {
    export
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("an event per line");
            (
                e["stream_id"].as_str().unwrap().to_owned(),
                e["stream_version"].as_u64().unwrap(),
                e["hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A trial on the SQLite file moves to another database with `export --all` and `restore`:
/// the same events, hashes and recorded times (so `verify` holds and the demo's commands are
/// still recognised as applied), idempotently; an altered line or a scenario without its parent
/// is refused with nothing of that timeline written.
async fn restore_moves_a_database_with_its_history(app: TestApp) {
    let dir = scratch(&format!("restore-{}", app.app.db().backend() as u8));
    let source = format!("sqlite://{}", dir.join("trial.db").display());
    let (ok, stderr) = omorg_binary(&["--database-url", &source, "demo"], &[]).await;
    assert!(ok, "{stderr}");
    let file = dir.join("all.jsonl");
    let path = file.to_str().unwrap();
    let (ok, stderr) = omorg_binary(
        &["--database-url", &source, "export", "--all", "-o", path],
        &[],
    )
    .await;
    assert!(ok, "{stderr}");
    let exported = std::fs::read_to_string(&file).unwrap();

    // An altered event, and a scenario whose parent is not here: refused, nothing written.
    let altered = dir.join("altered.jsonl");
    std::fs::write(&altered, exported.replacen("Bydel Alna", "Bydel Alma", 1)).unwrap();
    let err = omorg(&app, &["restore", altered.to_str().unwrap()])
        .await
        .expect_err("an altered export");
    assert!(
        err.to_string()
            .contains("does not hash to its recorded hash"),
        "{err}"
    );
    let orphan = dir.join("orphan.jsonl");
    let lines: Vec<&str> = exported
        .lines()
        .filter(|l| l.contains(r#""stream_id":"asker-alt-1""#))
        .collect();
    std::fs::write(&orphan, lines.join("\n")).unwrap();
    let err = omorg(&app, &["restore", orphan.to_str().unwrap()])
        .await
        .expect_err("a scenario without its parent");
    assert!(err.to_string().contains("restore asker first"), "{err}");
    let (_, list) = app.get_json(omorg_e2e::READER, "/timelines").await;
    assert_eq!(list, serde_json::json!([]), "nothing was written");

    omorg(&app, &["restore", path]).await.expect("restore");
    omorg(&app, &["restore", path])
        .await
        .expect("a second restore keeps what is there");
    omorg(&app, &["verify"]).await.expect("every chain intact");
    let again = dir.join("again.jsonl");
    omorg(&app, &["export", "--all", "-o", again.to_str().unwrap()])
        .await
        .expect("export");
    let restored = std::fs::read_to_string(&again).unwrap();
    assert_eq!(chain_of(&restored), chain_of(&exported));
    for (a, b) in restored.lines().zip(exported.lines()) {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert_eq!(a["recorded_at"], b["recorded_at"]);
        assert_eq!(a["metadata"], b["metadata"]);
    }
    // A file cut inside a command (here oslo's demo batch, one command of 95 events) is
    // refused whole: a resent batch would otherwise be answered as applied with events missing.
    let cut = dir.join("cut.jsonl");
    let lines: Vec<&str> = exported.lines().collect();
    std::fs::write(&cut, lines[..50].join("\n")).unwrap();
    let other = format!("sqlite://{}", dir.join("cut.db").display());
    let cut = cut.to_str().unwrap();
    let (ok, stderr) = omorg_binary(&["--database-url", &other, "restore", cut], &[]).await;
    assert!(!ok);
    assert!(
        stderr.contains("oslo at version 2: the file holds 49 of the 95 events of command")
            && stderr.contains("nothing was written"),
        "{stderr}"
    );
    // The restore names each head, to check against the source's `omorg verify`.
    let out = omorg_output(
        &["--database-url", &source, "verify", "--timeline", "asker"],
        &[],
    )
    .await;
    let verified = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = verified
        .split("head: ")
        .nth(1)
        .unwrap()
        .trim_end_matches([')', '\n']);
    let out = omorg_output(&["--database-url", &other, "restore", path], &[]).await;
    let restored_heads = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        restored_heads.contains(&format!("asker: 25 events restored; head: {head}")),
        "{restored_heads}\n{head}"
    );

    // The demo's commands are recognised as applied: loading it again writes nothing.
    omorg(&app, &["demo"]).await.expect("demo is a no-op");
    let after = dir.join("after.jsonl");
    omorg(&app, &["export", "--all", "-o", after.to_str().unwrap()])
        .await
        .expect("export");
    assert_eq!(
        chain_of(&std::fs::read_to_string(&after).unwrap()),
        chain_of(&exported)
    );

    // A database with another history of a timeline keeps it: the restore is refused.
    let other = format!("sqlite://{}", dir.join("other.db").display());
    let yaml = dir.join("oslo.yaml");
    std::fs::write(&yaml, establishing("o1", "oslo")).unwrap();
    let yaml = yaml.to_str().unwrap();
    let import = [
        "--database-url",
        &other,
        "import",
        yaml,
        "--timeline",
        "oslo",
    ];
    let (ok, stderr) = omorg_binary(&[&import[..], &["--create", "Oslo"]].concat(), &[]).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = omorg_binary(&["--database-url", &other, "restore", path], &[]).await;
    assert!(!ok);
    assert!(
        stderr.contains("oslo at version 1: the database holds another history of this timeline"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

on_both_backends!(restore_moves_a_database_with_its_history);

/// `omorg replay` prints the history step by step with what each step changed, pages through
/// long histories itself, and stops at `--limit`.
async fn replay_prints_each_step_and_its_changes(app: TestApp) {
    omorg(&app, &["demo"]).await.expect("demo");
    let out = omorg_output(
        &[
            "--database-url",
            &app.database_url,
            "replay",
            "--timeline",
            "asker",
        ],
        &[],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with('v')).count(),
        25,
        "{text}"
    );
    // The merger: on 2020-01-01 the three municipalities go, the new Asker comes, and their
    // citizen service desks pass to it.
    let merger = text
        .split("\nv")
        .find(|s| s.contains("UnitsMerged"))
        .expect("the merger step");
    assert!(
        merger.contains("Stortinget Innst. 386 S (2016–2017)"),
        "{merger}"
    );
    assert!(merger.contains("  on 2020-01-01:"), "{merger}");
    assert!(merger.contains("- kommune-0627 Røyken kommune"), "{merger}");
    assert!(
        merger.contains("+ asker Asker kommune (municipality)"),
        "{merger}"
    );
    // A unit that changes says what changed, in plain words (no debug quoting).
    assert!(!text.contains("(\""), "{text}");
    assert!(!text.lines().any(|l| l.ends_with(" changed")), "{text}");
    assert!(
        merger.contains("citizen-service-desk in 0627 Røyken: Røyken kommune (kommune-0627) -> Asker kommune (asker)"),
        "{merger}"
    );
    // Opening an innbyggertorg shows the service point, with who runs it and what it offers.
    assert!(
        text.contains("    + point innbyggertorg-saetre Innbyggertorg Sætre (asker-innbyggertorg; citizen-service-desk, library)"),
        "{text}"
    );
    // Handing Heggedal's innbyggertorg to the business unit says who ran it and who runs it.
    assert!(
        text.contains("    ~ point innbyggertorg-heggedal Innbyggertorg Heggedal (asker; library) -> Innbyggertorg Heggedal (asker-innbyggertorg; library)"),
        "{text}"
    );
    let out = omorg_output(
        &[
            "--database-url",
            &app.database_url,
            "replay",
            "--timeline",
            "asker",
            "--after-version",
            "20",
            "--limit",
            "2",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a step per line"))
        .collect();
    let versions: Vec<_> = lines.iter().map(|s| s["stream_version"].clone()).collect();
    assert_eq!(versions, [21, 22]);
}

on_both_backends!(replay_prints_each_step_and_its_changes);

/// A reader that stops reading (`omorg replay | head -1`) ends the command quietly with the
/// shell's status for it, never a panic or an error message.
#[tokio::test]
async fn a_closed_output_pipe_ends_quietly() {
    let dir = scratch("pipe");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let (ok, stderr) = omorg_binary(&["--database-url", &url, "demo"], &[]).await;
    assert!(ok, "{stderr}");
    for args in [
        &["replay", "--timeline", "oslo"][..],
        &["export", "--all"],
        &["verify"],
    ] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
            .args(["--database-url", &url])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run omorg");
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A responsibility split over several CSV rows, imported again with its rows swapped and the
/// areas of a cell in another order: the same decisions, so nothing is written (a row's derived
/// id depends on the rows before it, so the rows are found by what they say).
#[tokio::test]
async fn a_split_responsibility_reordered_is_already_imported() {
    let dir = scratch("split-reordered");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let file = |name: &str, text: &str| write_file(&dir, name, text);
    let import = |path: String| {
        let url = url.clone();
        async move {
            let options = [
                "--timeline",
                "t",
                "--create",
                "T",
                "--effective-from",
                "2025-02-01",
                "--case-number",
                "25/3",
                "--body",
                "Bystyret",
                "--title",
                "Ansvar",
            ];
            import_file(&url, &path, &options).await
        }
    };
    for (name, text) in [
        (
            "units.csv",
            "unit,name,kind,areas\nb1,B1,district,999901=A;999902=B;999903=C;999905=E\n",
        ),
        ("services.csv", "service,name\nhc,Hjemmetjenester\n"),
        (
            "resp.csv",
            "service,unit,areas\nhc,b1,999901;999902\nhc,b1,999905\n",
        ),
    ] {
        let (ok, stderr) = import(file(name, text)).await;
        assert!(ok, "{name}: {stderr}");
    }
    let swapped = file(
        "swapped.csv",
        "service,unit,areas\nhc,b1,999905\nhc,b1,999902;999901\n",
    );
    let (ok, stderr) = import(swapped).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("(duplicate): nothing written"), "{stderr}");
    // A new area in a row put first: only it is written.
    let more = file(
        "more.csv",
        "service,unit,areas\nhc,b1,999903\nhc,b1,999901;999902\nhc,b1,999905\n",
    );
    let (ok, stderr) = import(more).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("1 new event (2 commands were already applied)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `omorg verify` walks every stream of the log, not the timelines of the read models: a
/// timeline whose read-model row is gone is still checked, the command columns are checked
/// against the hashed metadata (an edit there would answer a retry with another command's
/// events), and the run ends with a count.
async fn verify_walks_the_log_and_checks_command_columns(app: TestApp) {
    omorg(&app, &["demo"]).await.expect("demo");
    let db = app.app.db();
    let run = |sql: &'static str| async move {
        match db {
            omorg_store::Database::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.map(|_| ())
            }
            omorg_store::Database::Sqlite(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.map(|_| ())
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let verify = || async {
        let out = omorg_output(&["--database-url", &app.database_url, "verify"], &[]).await;
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = verify().await;
    assert_eq!(code, Some(0), "{stdout}");
    let streams = stdout.lines().filter(|l| l.contains(": intact (")).count();
    assert!(streams >= 2, "{stdout}");
    assert!(
        stdout.ends_with(&format!("{streams} stream(s) checked, 0 broken\n")),
        "{stdout}"
    );
    // The read model loses Asker's row: the log still has its stream.
    run("DELETE FROM timelines WHERE timeline_id = 'asker'").await;
    let (code, stdout) = verify().await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("asker: intact ("), "{stdout}");
    // An edited command id: the chain's hashes hold, the command columns do not.
    let tamper = match db {
        omorg_store::Database::Postgres(_) => {
            "ALTER TABLE events DISABLE TRIGGER USER; \
             UPDATE events SET command_id = 'someone-else' WHERE stream_id = 'oslo' AND stream_version = 2; \
             ALTER TABLE events ENABLE TRIGGER USER;"
        }
        omorg_store::Database::Sqlite(_) => {
            "DROP TRIGGER events_no_update; \
             UPDATE events SET command_id = 'someone-else' WHERE stream_id = 'oslo' AND stream_version = 2;"
        }
    };
    run(tamper).await;
    let (code, stdout) = verify().await;
    assert_eq!(code, Some(3), "{stdout}");
    assert!(
        stdout.contains("oslo: BROKEN at version 2: the log's command id or size for the event was edited: the log records command id someone-else"),
        "{stdout}"
    );
    assert!(stdout.contains(", 1 broken\n"), "{stdout}");
    // An export copies the log as it is, and says the chain is broken.
    let out = omorg_output(
        &["--database-url", &app.database_url, "export", "--all"],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: oslo: the chain is broken at version 2")
            && !stderr.contains("asker"),
        "{stderr}"
    );
}

on_both_backends!(verify_walks_the_log_and_checks_command_columns);

/// `import` and `restore` of a file that cannot be read say so before the database is opened:
/// a mistyped path leaves no new, empty database behind.
#[tokio::test]
async fn an_unreadable_input_file_creates_no_database() {
    let dir = scratch("unreadable-input");
    let db = dir.join("omorg.db");
    let url = format!("sqlite://{}", db.display());
    let missing = dir.join("no-such-file.jsonl");
    let bad_json = write_file(&dir, "bad.jsonl", "{not json\n");
    let bad_yaml = write_file(&dir, "bad.yaml", "- [unclosed\n");
    let latin1 = dir.join("latin1.csv");
    std::fs::write(
        &latin1,
        b"unit,name,kind\nb,Bydel Gr\xfcnerl\xf8kka,district\n",
    )
    .unwrap();
    let empty = write_file(&dir, "empty.jsonl", "");
    for args in [
        vec!["restore", missing.to_str().unwrap()],
        vec!["import", missing.to_str().unwrap(), "--timeline", "oslo"],
        vec!["restore", dir.to_str().unwrap()],
        vec!["restore", &bad_json],
        vec!["restore", &empty],
        vec!["import", &bad_yaml, "--timeline", "oslo"],
        vec!["import", latin1.to_str().unwrap(), "--timeline", "oslo"],
    ] {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend(&args);
        let out = omorg_output(&all, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

/// Re-chains `events` (each stream's `prev_hash` and `hash` recomputed in order), as someone
/// who knows the hash scheme could: the chain is then intact whatever was changed.
fn rechained(mut events: Vec<omorg_store::RecordedEvent>) -> String {
    use omorg_store::hash::{canonical_json, event_hash, HashInput, GENESIS_HASH};
    let mut heads: std::collections::HashMap<String, String> = Default::default();
    let mut out = String::new();
    for e in &mut events {
        let prev = heads
            .get(&e.stream_id)
            .cloned()
            .unwrap_or_else(|| GENESIS_HASH.to_owned());
        e.prev_hash = prev;
        e.hash = event_hash(&HashInput {
            stream_id: &e.stream_id,
            stream_version: e.stream_version,
            event_type: &e.event_type,
            event_version: &e.event_version,
            payload: &canonical_json(&e.payload),
            metadata: &canonical_json(&e.metadata),
            recorded_at: &e.recorded_at,
            prev_hash: &e.prev_hash,
        });
        heads.insert(e.stream_id.clone(), e.hash.clone());
        out.push_str(&serde_json::to_string(e).unwrap());
        out.push('\n');
    }
    out
}

/// A restore takes only what omorg writes: an intact chain is not enough, since anyone who
/// knows the hash scheme can compute one over anything. Each forgery is refused naming the
/// event, and nothing is written.
#[tokio::test]
async fn restore_refuses_chains_omorg_could_not_have_written() {
    let dir = scratch("restore-forged");
    let source = format!("sqlite://{}", dir.join("trial.db").display());
    let (ok, stderr) = omorg_binary(&["--database-url", &source, "demo"], &[]).await;
    assert!(ok, "{stderr}");
    let file = dir.join("oslo.jsonl");
    let path = file.to_str().unwrap();
    let (ok, stderr) = omorg_binary(
        &[
            "--database-url",
            &source,
            "export",
            "--timeline",
            "oslo",
            "-o",
            path,
        ],
        &[],
    )
    .await;
    assert!(ok, "{stderr}");
    let events: Vec<omorg_store::RecordedEvent> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Untouched, re-chained: the same file, restored.
    assert_eq!(
        rechained(events.clone()),
        std::fs::read_to_string(&file).unwrap()
    );
    type Forge = fn(&mut Vec<omorg_store::RecordedEvent>);
    let forgeries: [(&str, Forge, &str); 7] = [
        (
            "versioned",
            |e| e[3].event_version = "7".into(),
            "oslo@4 is a",
        ),
        (
            "extra",
            |e| e[3].payload["change"]["smuggled"] = "x".into(),
            "oslo@4: its payload holds payload.change.smuggled",
        ),
        (
            "twice",
            |e| {
                // The second command of the timeline under the first one's id.
                let starts: Vec<usize> = (0..e.len())
                    .filter(|&i| e[i].command_events.is_some())
                    .collect();
                let first = e[starts[0]].metadata["command_id"].clone();
                e[starts[1]].metadata["command_id"] = first;
            },
            "starts a second command under the id",
        ),
        (
            "bogus",
            |e| e[3].payload["change"]["type"] = "Bogus".into(),
            "oslo@4 is not a timeline event omorg can read",
        ),
        (
            "retyped",
            |e| e[3].event_type = "UnitRenamed".into(),
            "oslo@4 says it is a UnitRenamed, but its payload is a",
        ),
        (
            "headless",
            |e| {
                e.remove(0);
                for (i, ev) in e.iter_mut().enumerate() {
                    ev.stream_version = i as u64 + 1;
                }
            },
            "oslo@1 is the timeline's first event, but a",
        ),
        (
            "backdated",
            |e| e[5].recorded_at = e[4].recorded_at - chrono::Duration::days(400),
            "oslo@6 is recorded at",
        ),
    ];
    for (name, forge, says) in forgeries {
        let mut forged = events.clone();
        forge(&mut forged);
        let forged_file = dir.join(format!("{name}.jsonl"));
        std::fs::write(&forged_file, rechained(forged)).unwrap();
        let target = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
        let out = omorg_output(
            &[
                "--database-url",
                &target,
                "restore",
                forged_file.to_str().unwrap(),
            ],
            &[],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(stderr.contains("nothing was written"), "{name}: {stderr}");
        let out = omorg_output(&["--database-url", &target, "export", "--all"], &[]).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{name}");
    }
}

/// A units sheet sorted by name (districts above their municipality, a department above its
/// district) imports as it is, on a real database; a cycle is still refused naming a line.
#[tokio::test]
async fn a_units_sheet_in_any_order_imports() {
    let dir = scratch("import-unit-order");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let options = [
        "--timeline",
        "t",
        "--create",
        "T",
        "--effective-from",
        "2021-01-01",
        "--case-number",
        "21/1",
        "--body",
        "Bystyret",
        "--title",
        "Organisering",
    ];
    let sorted = write_file(
        &dir,
        "units.csv",
        "unit,name,kind,parent,areas\n\
         alna-helse,Alna helse,department,alna,\n\
         alna,Bydel Alna,district,oslo,030112=Alna\n\
         oslo,Oslo kommune,municipality,,030116=Sentrum\n",
    );
    let (ok, stderr) = import_file(&url, &sorted, &options).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("imported 3 commands"), "{stderr}");
    let cycle = write_file(
        &dir,
        "cycle.csv",
        "unit,name,kind,parent\na,A,department,b\nb,B,department,a\n",
    );
    let existing = [&options[..2], &options[4..]].concat();
    let (ok, stderr) = import_file(&url, &cycle, &existing).await;
    assert!(!ok);
    assert!(
        stderr.contains("cycle.csv: line 2: unknown unit b"),
        "{stderr}"
    );
    // A new area without its name: said in the sheet's terms.
    let unnamed = write_file(
        &dir,
        "unnamed.csv",
        "unit,name,kind,parent,areas\nny,Ny,district,oslo,999903\n",
    );
    let (ok, stderr) = import_file(&url, &unnamed, &existing).await;
    assert!(!ok);
    assert!(
        stderr.contains("unnamed.csv: line 2: ")
            && stderr.contains("(column areas: write a new area as code=Name"),
        "{stderr}"
    );
}

/// A CLI command that writes leaves the read models current: reporting's plain SQL sees the
/// demo (and an import) as soon as the command has finished, with no server running.
async fn plain_sql_sees_what_a_cli_command_wrote(app: TestApp) {
    omorg(&app, &["demo"]).await.expect("demo");
    let db = app.app.db().clone();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            match &db {
                omorg_store::Database::Postgres(pool) => {
                    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
                }
                omorg_store::Database::Sqlite(pool) => {
                    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
                }
            }
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    let sql = "SELECT count(*) FROM current_responsibilities WHERE timeline_id = 'oslo'";
    assert!(
        count(sql).await > 0,
        "the demo's responsibilities are in the read models"
    );
    let dir = scratch(&format!(
        "sql-after-import-{}",
        app.app.db().backend() as u8
    ));
    let file = write_file(
        &dir,
        "services.csv",
        "service,name,category\nlegevakt,Legevakt,health\n",
    );
    omorg(
        &app,
        &[
            "import",
            &file,
            "--timeline",
            "oslo",
            "--effective-from",
            "2026-01-01",
            "--case-number",
            "26/1",
            "--body",
            "Bystyret",
            "--title",
            "Legevakt",
        ],
    )
    .await
    .expect("import");
    let sql = "SELECT count(*) FROM service_versions \
               WHERE timeline_id = 'oslo' AND service_code = 'legevakt'";
    assert_eq!(count(sql).await, 1);
}

on_both_backends!(plain_sql_sees_what_a_cli_command_wrote);

/// `import --create` records the timeline's creation under the decision the file begins with
/// (not a placeholder), and an empty file is said to hold nothing rather than reported as a
/// duplicate.
#[tokio::test]
async fn import_create_takes_the_files_decision_and_an_empty_file_is_said() {
    let dir = scratch("import-create-decision");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let file = write_file(&dir, "services.csv", "service,name\nlegevakt,Legevakt\n");
    let options = [
        "--timeline",
        "t",
        "--create",
        "T",
        "--effective-from",
        "2021-01-01",
        "--case-number",
        "21/7",
        "--body",
        "Bystyret",
        "--title",
        "Legevakt",
    ];
    let (ok, stderr) = import_file(&url, &file, &options).await;
    assert!(ok, "{stderr}");
    let out = omorg_output(&["--database-url", &url, "export", "--timeline", "t"], &[]).await;
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("an event"),
    )
    .unwrap();
    assert_eq!(first["event_type"], "TimelineCreated", "{first}");
    assert_eq!(
        first["payload"]["decision"]["case_number"], "21/7",
        "{first}"
    );
    assert_eq!(first["payload"]["decision"]["body"], "Bystyret", "{first}");
    for (name, text) in [("empty.json", "[]"), ("header.csv", "service,name\n")] {
        let empty = write_file(&dir, name, text);
        let (ok, stderr) = import_file(&url, &empty, &options[..2]).await;
        assert!(!ok, "{name}");
        assert!(stderr.contains("holds no commands"), "{name}: {stderr}");
    }
}

//! `omorg import` on the files planners bring: spreadsheets' CSVs (with misspelt, unknown or
//! repeated columns, repeated or split rows, a legacy encoding) and JSON/YAML command files (with
//! a byte order mark, or members an import file does not have). A refused file is named with
//! where and why, exits non-zero, and writes nothing.

mod common;

use common::{omorg, scratch};
use omorg_e2e::{on_both_backends, TestApp, READER};
use std::path::Path;

/// The real binary with `args` and nothing else from the environment.
async fn omorg_binary(args: &[&str]) -> (bool, String) {
    common::omorg_binary(args, &[]).await
}

/// Writes `bytes` to `name` in `dir`; returns the path as text.
fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The options every CSV import of these tests takes (a CSV's decision and date).
const CSV_OPTIONS: [&str; 8] = [
    "--effective-from",
    "2020-01-01",
    "--case-number",
    "20/1",
    "--body",
    "Bystyret",
    "--title",
    "Import",
];

/// `omorg import FILE --timeline TIMELINE --create T` (and the CSV options) on `url`.
async fn import(url: &str, file: &str, timeline: &str) -> (bool, String) {
    let mut args = vec![
        "--database-url",
        url,
        "import",
        file,
        "--timeline",
        timeline,
        "--create",
        "T",
    ];
    if file.ends_with(".csv") {
        args.extend_from_slice(&CSV_OPTIONS);
    }
    omorg_binary(&args).await
}

/// Asserts that `timeline` was never created: a refused import writes nothing (a file refused
/// before the database is opened does not even create the database).
async fn assert_absent(url: &str, timeline: &str) {
    let (ok, stderr) =
        omorg_binary(&["--database-url", url, "export", "--timeline", timeline]).await;
    assert!(!ok, "the refused import left timeline {timeline} behind");
    assert!(
        stderr.contains(&format!("{timeline} not found")) || stderr.contains("no database file"),
        "{stderr}"
    );
}

/// A CSV column its table does not take (misspelt or unknown), or one given twice, is refused
/// naming the file, the column and the columns the table takes; nothing is written. Before,
/// `efective_from` was dropped and the rows took the `--effective-from` date, `parrent` left the
/// unit without a parent, and of `unit,…,unit` the last won.
#[tokio::test]
async fn unknown_misspelt_or_repeated_csv_columns_are_refused() {
    let dir = scratch("columns");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let takes = "a units table takes unit, name, kind, code, parent, areas, effective_from";
    for (i, (header, row, column)) in [
        (
            "unit,name,kind,efective_from",
            "b1,B1,district,2024-01-01",
            "column \"efective_from\" is not a column of this table (did you mean effective_from?)",
        ),
        (
            "unit,name,kind,parrent",
            "b1,B1,district,oslo",
            "column \"parrent\" is not a column of this table (did you mean parent?)",
        ),
        (
            "unit,name,kind,colour",
            "b1,B1,district,red",
            "column \"colour\" is not a column of this table: ",
        ),
        (
            "unit,name,kind,unit",
            "b1,B1,district,b2",
            "column unit is given twice (columns 1 and 4)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = write(
            &dir,
            &format!("units-{i}.csv"),
            format!("{header}\n{row}\n"),
        );
        let timeline = format!("t{i}");
        let (ok, stderr) = import(&url, &file, &timeline).await;
        assert!(!ok, "{header}: {stderr}");
        assert!(
            stderr.contains(&format!("omorg: error: {file}: line 1: {column}")),
            "{stderr}"
        );
        assert!(stderr.contains(takes), "{stderr}");
        assert_absent(&url, &timeline).await;
    }
    // The same table with the columns spelt right imports.
    let file = write(
        &dir,
        "units-ok.csv",
        "unit,name,kind,effective_from\nb1,B1,district,2024-01-01\n",
    );
    let (ok, stderr) = import(&url, &file, "ok").await;
    assert!(ok, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A JSON or YAML import file is a list of commands or `{commands: [...]}`: another top-level
/// member (here `timeline`, which looks as if it chose the timeline) is refused, not ignored.
#[tokio::test]
async fn unknown_top_level_members_of_a_command_file_are_refused() {
    let dir = scratch("members");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let command = r#"{"command_id": "c1", "effective_from": "2020-01-01", "decision": {"case_number": "20/1", "body": "Bystyret", "decision_date": "2020-01-01", "title": "T"}, "action": {"type": "RegisterService", "service": "hc", "name": "Home care"}}"#;
    for (name, text) in [
        (
            "extra.json",
            format!(r#"{{"commands": [{command}], "timeline": "other"}}"#),
        ),
        (
            "extra.yaml",
            format!("commands:\n  - {command}\ntimeline: other\n"),
        ),
    ] {
        let file = write(&dir, name, text);
        let (ok, stderr) = import(&url, &file, "t").await;
        assert!(!ok, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "omorg: error: {file}: unknown top-level member `timeline`"
            )),
            "{stderr}"
        );
        assert_absent(&url, "t").await;
        assert_absent(&url, "other").await;
    }
    let file = write(
        &dir,
        "plain.json",
        format!(r#"{{"commands": [{command}]}}"#),
    );
    let (ok, stderr) = import(&url, &file, "t").await;
    assert!(ok, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A UTF-8 byte order mark at the start of a JSON or YAML file (as Notepad and Excel write it)
/// is taken off, as it already was for CSV.
#[tokio::test]
async fn a_byte_order_mark_is_accepted() {
    let dir = scratch("bom");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    let command = |id: &str| {
        format!(
            r#"{{"command_id": "{id}", "effective_from": "2020-01-01", "decision": {{"case_number": "20/1", "body": "Bystyret", "decision_date": "2020-01-01", "title": "T"}}, "action": {{"type": "RegisterService", "service": "{id}", "name": "Tjeneste"}}}}"#
        )
    };
    for (i, (name, text)) in [
        ("bom.json", format!("\u{feff}[{}]", command("s-json"))),
        ("bom.yaml", format!("\u{feff}- {}\n", command("s-yaml"))),
        (
            "bom.csv",
            "\u{feff}service,name\ns-csv,Tjeneste\n".to_owned(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = write(&dir, name, text);
        let (ok, stderr) = import(&url, &file, &format!("t{i}")).await;
        assert!(ok, "{name}: {stderr}");
        assert!(stderr.contains("1 new event,"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file in Windows-1252/Latin-1 (a spreadsheet's "CSV" on an older Windows) is named with
/// the line and byte offset of the first byte that is not UTF-8, and how to fix it.
#[tokio::test]
async fn a_file_that_is_not_utf8_names_the_line_and_byte() {
    let dir = scratch("latin1");
    let url = format!("sqlite://{}", dir.join("omorg.db").display());
    // "Bydel Grünerløkka" in Windows-1252: ü is 0xFC, ø 0xF8.
    let file = write(
        &dir,
        "units.csv",
        b"unit,name,kind\ngrunerlokka,Bydel Gr\xfcnerl\xf8kka,district\n",
    );
    let (ok, stderr) = import(&url, &file, "t").await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "omorg: error: {file}: not UTF-8: line 2, byte offset 35 (counting from 0): byte \
             0xFC after \"grunerlokka,Bydel Gr\" is not valid UTF-8"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("Windows-1252") && stderr.contains("save it as UTF-8"),
        "{stderr}"
    );
    assert!(!stderr.contains("stream did not contain"), "{stderr}");
    assert_absent(&url, "t").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One service's areas for one unit may come in separate rows: both apply (one command each),
/// and re-importing the file is a no-op. An identical row, or an area given to two units, is
/// refused naming both lines, not as a command id "already used for a different command"
/// (the ids the import makes up were the same for both rows).
async fn split_and_repeated_responsibility_rows(app: TestApp) {
    let db = app
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or("db")
        .replace('.', "-");
    let dir = scratch(&format!("rows-{db}"));
    let import = |file: String, create: bool| {
        let mut args = vec!["import".to_owned(), file, "--timeline".into(), "t".into()];
        if create {
            args.extend(["--create".into(), "T".into()]);
        }
        args.extend(CSV_OPTIONS.iter().map(|s| (*s).to_owned()));
        args
    };
    let run_import = |args: Vec<String>| async {
        let args = args;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        omorg(&app, &refs).await
    };
    let units = write(
        &dir,
        "units.csv",
        "unit,name,kind,parent,areas\noslo,Oslo,municipality,,\nb1,Bydel 1,district,oslo,123401=A;123402=B;123403=C\nb2,Bydel 2,district,oslo,123404=D\n",
    );
    run_import(import(units, true)).await.expect("units");
    let services = write(&dir, "services.csv", "service,name\nhc,Hjemmetjenester\n");
    run_import(import(services, false)).await.expect("services");

    let split = write(
        &dir,
        "split.csv",
        "service,unit,areas\nhc,b1,123401\nhc,b1,123402\n",
    );
    run_import(import(split.clone(), false))
        .await
        .expect("split rows both apply");
    run_import(import(split, false))
        .await
        .expect("re-importing the split rows is a no-op");
    let (status, csv) = app
        .get(
            READER,
            "/timelines/t/responsibilities?as_of=2020-01-01&format=csv",
        )
        .await;
    assert_eq!(status, 200, "{csv}");
    for area in ["123401", "123402"] {
        assert!(
            csv.lines()
                .any(|l| l.contains("hc") && l.contains("b1") && l.contains(area)),
            "{area}: {csv}"
        );
    }
    let (_, before) = app.get_json(READER, "/timelines/t").await;

    for (name, text, expected) in [
        (
            "identical.csv",
            "service,unit,areas\nhc,b1,123403\nhc,b1,123403\n",
            "line 3: service hc in area 123403: line 2 already assigns it to b1",
        ),
        (
            "conflict.csv",
            "service,unit,areas\nhc,b1,123403\nhc,b2,123403;123404\n",
            "line 3: service hc in area 123403: line 2 assigns it to b1, and one unit is \
             responsible for a service in an area",
        ),
    ] {
        let file = write(&dir, name, text);
        let e = run_import(import(file.clone(), false)).await.unwrap_err();
        assert_eq!(e.exit_code(), 1, "{e}");
        let e = e.to_string();
        assert!(e.starts_with(&format!("{file}: {expected}")), "{e}");
        assert!(!e.contains("command id"), "{e}");
    }
    let (_, after) = app.get_json(READER, "/timelines/t").await;
    assert_eq!(before, after, "a refused file wrote nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

on_both_backends!(split_and_repeated_responsibility_rows);

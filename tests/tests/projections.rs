//! The read side over HTTP, answered from the projections: the scripted history of issue 4
//! (home care centralised 2025-01-01, Grorud and Stovner merged 2026-01-01, then the merge
//! revoked and Grorud merged with Alna instead), read-your-writes, both recorded axes, every
//! projection route with exact content, CSV, 404/422/503, and `omorg rebuild` via the binary.
//! Each test runs on PostgreSQL and on SQLite.

use omorg_e2e::{command, on_both_backends, Backend, TestApp, AUDITOR, PLANNER, READER};
use serde_json::{json, Value};

/// A command with its own decision (case number, decision date).
fn decided(id: &str, eff: &str, case: &str, decided_on: &str, action: Value) -> Value {
    json!({
        "command_id": id,
        "effective_from": eff,
        "decision": {"case_number": case, "body": "Bystyret", "decision_date": decided_on, "title": format!("Sak {case}")},
        "actor": "planner@test",
        "action": action
    })
}

fn district(id: &str, name: &str, area: &str, area_name: &str) -> Value {
    json!({"type": "EstablishUnit", "unit": id, "name": name, "kind": "district", "parent": "oslo",
           "areas": [{"code": area, "name": area_name}]})
}

fn merge(id: &str, name: &str, a: &str, b: &str) -> Value {
    json!({"type": "MergeUnits", "sources": [a, b],
           "successor": {"type": "new", "unit": id, "name": name, "kind": "district", "parent": "oslo"}})
}

/// Timeline `oslo` at version 10: the municipality, Grorud, Stovner and Alna with their areas,
/// Helseetaten, and home care run by each district (2020-01-01, case 19/1).
async fn seed(app: &TestApp) {
    app.create_timeline("oslo").await;
    let c = |id: &str, action: Value| decided(id, "2020-01-01", "19/1", "2019-06-19", action);
    let batch = json!({"commands": [
        c("c1", json!({"type": "EstablishUnit", "unit": "oslo", "code": "0301", "name": "Oslo kommune", "kind": "municipality"})),
        c("c2", district("grorud", "Bydel Grorud", "030110", "Grorud")),
        c("c3", district("stovner", "Bydel Stovner", "030111", "Stovner")),
        c("c4", district("alna", "Bydel Alna", "030112", "Alna")),
        c("c5", json!({"type": "EstablishUnit", "unit": "helseetaten", "name": "Helseetaten", "kind": "central_agency", "parent": "oslo"})),
        c("c6", json!({"type": "RegisterService", "service": "home-care", "name": "Hjemmetjenester", "category": "home care"})),
        c("a0", json!({"type": "AssignResponsibility", "service": "home-care", "unit": "grorud", "areas": ["030110"]})),
        c("a1", json!({"type": "AssignResponsibility", "service": "home-care", "unit": "stovner", "areas": ["030111"]})),
        c("a2", json!({"type": "AssignResponsibility", "service": "home-care", "unit": "alna", "areas": ["030112"]})),
    ]});
    let (status, body) = app.post(PLANNER, "/timelines/oslo/batch", &batch).await;
    assert_eq!((status, &body["version"]), (200, &json!(10)), "{body}");
}

/// Runs one command and asserts the timeline's new version.
async fn must(app: &TestApp, command: Value, version: u64) {
    let (status, body) = app.command("oslo", &command).await;
    assert_eq!((status, &body["version"]), (200, &json!(version)), "{body}");
}

async fn centralise(app: &TestApp) {
    must(
        app,
        decided(
            "cz",
            "2025-01-01",
            "24/200",
            "2024-06-19",
            json!({"type": "CentraliseService", "service": "home-care", "agency": "helseetaten"}),
        ),
        11,
    )
    .await;
}

async fn first_merge(app: &TestApp) {
    must(
        app,
        decided(
            "m1",
            "2026-01-01",
            "25/100",
            "2025-06-18",
            merge(
                "grorud-stovner",
                "Bydel Grorud og Stovner",
                "grorud",
                "stovner",
            ),
        ),
        12,
    )
    .await;
}

/// The correction: 25/100 revoked, Grorud merged with Alna instead (versions 13 and 14).
async fn correction(app: &TestApp) {
    must(
        app,
        decided(
            "rv",
            "2025-10-01",
            "25/150",
            "2025-10-01",
            json!({"type": "RevokeDecision", "case_number": "25/100"}),
        ),
        13,
    )
    .await;
    must(
        app,
        decided(
            "m2",
            "2026-01-01",
            "25/151",
            "2025-10-01",
            merge("grorud-alna", "Bydel Grorud og Alna", "grorud", "alna"),
        ),
        14,
    )
    .await;
}

/// The whole scripted history (14 events).
async fn scripted(app: &TestApp) {
    seed(app).await;
    centralise(app).await;
    first_merge(app).await;
    correction(app).await;
}

/// `area=unit` for every row of a responsibilities answer.
fn matrix(v: &Value) -> Vec<String> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["area"].as_str().unwrap(),
                r["unit"].as_str().unwrap()
            )
        })
        .collect()
}

/// The ids of the municipality's children in an org chart answer.
fn districts(v: &Value) -> Vec<String> {
    assert_eq!(v["units"].as_array().map(Vec::len), Some(1), "{v}");
    v["units"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn ok(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get_json(READER, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn assert_problem(status: u16, body: &Value, expected: u16, field: Option<&str>) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected, "{body}");
    if let Some(f) = field {
        assert_eq!(body["field"], f, "{body}");
    }
}

async fn reads_see_their_own_writes(app: TestApp) {
    seed(&app).await;
    // Each query right after a command sees it: no sleeping, no polling.
    let r = ok(&app, "/timelines/oslo/responsibilities?as_of=2025-06-01").await;
    assert_eq!(
        matrix(&r),
        ["030110=grorud", "030111=stovner", "030112=alna"]
    );
    assert_eq!(r["known_version"], 10);
    centralise(&app).await;
    let r = ok(&app, "/timelines/oslo/responsibilities?as_of=2025-06-01").await;
    assert_eq!(
        matrix(&r),
        [
            "030110=helseetaten",
            "030111=helseetaten",
            "030112=helseetaten"
        ]
    );
    assert_eq!(r["known_version"], 11);
    first_merge(&app).await;
    let chart = ok(&app, "/timelines/oslo/org-chart?as_of=2026-06-01").await;
    assert_eq!(districts(&chart), ["alna", "grorud-stovner", "helseetaten"]);
    let gs = &chart["units"][0]["children"][1];
    assert_eq!(
        gs["areas"],
        json!([{"code": "030110", "name": "Grorud"}, {"code": "030111", "name": "Stovner"}])
    );
    assert_eq!(chart["units"][0]["children"][2]["responsibilities"], 3);
    // A freshly created timeline is there at once, in the list and in queries.
    app.create_timeline("fresh").await;
    let list = ok(&app, "/timelines").await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let chart = ok(&app, "/timelines/fresh/org-chart").await;
    assert_eq!(
        (&chart["units"], &chart["known_version"]),
        (&json!([]), &json!(1))
    );
}

async fn both_recorded_axes_before_and_after_the_correction(app: TestApp) {
    seed(&app).await;
    centralise(&app).await;
    first_merge(&app).await;
    let log = ok(&app, "/timelines/oslo/decisions?case_number=25/100").await;
    let merge_recorded = log["decisions"][0]["recorded_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{log}"))
        .to_owned();
    correction(&app).await;

    let now = ok(&app, "/timelines/oslo/org-chart?as_of=2026-06-01").await;
    assert_eq!(districts(&now), ["grorud-alna", "helseetaten", "stovner"]);
    assert_eq!(now["known_version"], 14);
    // As the timeline stood after event 12 (the first merge) and after event 11.
    let v12 = ok(
        &app,
        "/timelines/oslo/org-chart?as_of=2026-06-01&known_version=12",
    )
    .await;
    assert_eq!(districts(&v12), ["alna", "grorud-stovner", "helseetaten"]);
    assert_eq!(v12["known_version"], 12);
    let v11 = ok(
        &app,
        "/timelines/oslo/org-chart?as_of=2026-06-01&known_version=11",
    )
    .await;
    assert_eq!(
        districts(&v11),
        ["alna", "grorud", "helseetaten", "stovner"]
    );
    // The same by recorded instant: the first merge's own instant (inclusive).
    let at = ok(
        &app,
        &format!("/timelines/oslo/org-chart?as_of=2026-06-01&known_at={merge_recorded}"),
    )
    .await;
    assert_eq!(districts(&at), ["alna", "grorud-stovner", "helseetaten"]);
    assert_eq!(at["known_version"], 12);
    let r = ok(
        &app,
        &format!("/timelines/oslo/responsibilities?as_of=2026-06-01&known_at={merge_recorded}&format=csv"),
    )
    .await;
    assert_eq!(
        r,
        Value::String(
            "service,service_name,area,area_name,unit,unit_name\n\
             home-care,Hjemmetjenester,030110,Grorud,helseetaten,Helseetaten\n\
             home-care,Hjemmetjenester,030111,Stovner,helseetaten,Helseetaten\n\
             home-care,Hjemmetjenester,030112,Alna,helseetaten,Helseetaten\n"
                .into()
        )
    );
    // A date means the end of that day: long before anything was recorded, nothing was known;
    // on today's date, everything is.
    let past = ok(
        &app,
        "/timelines/oslo/org-chart?as_of=2026-06-01&known_at=2000-01-01",
    )
    .await;
    assert_eq!(
        (&past["units"], &past["known_version"]),
        (&json!([]), &json!(0))
    );
    let today = chrono::Utc::now().date_naive();
    let known_today = ok(
        &app,
        &format!("/timelines/oslo/org-chart?as_of=2026-06-01&known_at={today}"),
    )
    .await;
    assert_eq!(
        districts(&known_today),
        ["grorud-alna", "helseetaten", "stovner"]
    );
    // The last day the API accepts, and its last instant, are in the future too: everything
    // is known (on SQLite, the bound one microsecond later, in year 10000, once saw nothing).
    for known_at in ["9999-12-31", "9999-12-31T23:59:59.999999Z"] {
        for route in ["org-chart", "responsibilities"] {
            let path = format!("/timelines/oslo/{route}?as_of=2026-06-01");
            let (all, at_end) = (
                ok(&app, &path).await,
                ok(&app, &format!("{path}&known_at={known_at}")).await,
            );
            assert_eq!(at_end, all, "{route} known_at={known_at}");
            assert_eq!(at_end["known_version"], 14, "{route} known_at={known_at}");
        }
    }
    // Both axes at once is ambiguous.
    let (status, body) = app
        .get_json(
            READER,
            "/timelines/oslo/org-chart?known_at=2025-01-01&known_version=3",
        )
        .await;
    assert_problem(status, &body, 422, Some("known_at"));
    let (status, body) = app
        .get_json(
            READER,
            "/timelines/oslo/responsibilities?known_at=yesterday",
        )
        .await;
    assert_problem(status, &body, 422, Some("known_at"));
}

async fn histories_decisions_changes_and_feed(app: TestApp) {
    scripted(&app).await;
    // Unit history: one version, ended by the merge in force, lineage both ways.
    let h = ok(&app, "/timelines/oslo/units/grorud/history").await;
    assert_eq!(h["unit"], "grorud");
    assert_eq!(h["versions"].as_array().map(Vec::len), Some(1), "{h}");
    assert_eq!(
        (
            &h["versions"][0]["name"],
            &h["versions"][0]["effective_from"],
            &h["versions"][0]["effective_to"]
        ),
        (
            &json!("Bydel Grorud"),
            &json!("2020-01-01"),
            &json!("2026-01-01")
        )
    );
    assert_eq!(
        h["successors"],
        json!([{"kind": "merged_into", "from_id": "grorud", "to_id": "grorud-alna", "effective_on": "2026-01-01", "command_id": "m2", "case_number": "25/151"}])
    );
    assert_eq!(h["predecessors"], json!([]));
    let h = ok(&app, "/timelines/oslo/units/grorud-alna/history").await;
    let preds: Vec<&str> = h["predecessors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["from_id"].as_str().unwrap())
        .collect();
    assert_eq!(preds, ["alna", "grorud"]);
    assert_eq!(h["versions"][0]["areas"], json!(["030110", "030112"]));

    // Service history: names, then who ran it where.
    let s = ok(&app, "/timelines/oslo/services/home-care/history").await;
    assert_eq!(
        s["versions"],
        json!([{"effective_from": "2020-01-01", "effective_to": null, "name": "Hjemmetjenester", "category": "home care"}])
    );
    let grorud: Vec<(String, String, Value)> = s["responsibilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["area_code"] == "030110")
        .map(|r| {
            (
                r["unit_id"].as_str().unwrap().to_owned(),
                r["effective_from"].as_str().unwrap().to_owned(),
                r["effective_to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        grorud,
        [
            ("grorud".into(), "2020-01-01".into(), json!("2025-01-01")),
            ("helseetaten".into(), "2025-01-01".into(), Value::Null)
        ]
    );
    let (_, csv) = app
        .get(
            READER,
            "/timelines/oslo/services/home-care/history?format=csv",
        )
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "service,area,unit,effective_from,effective_to,recorded_from"
    );
    assert!(
        lines[1].starts_with("home-care,030110,grorud,2020-01-01,2025-01-01,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 7, "{csv}");

    // Decision log: the revoked merge stays, marked; filters combine.
    let d = ok(&app, "/timelines/oslo/decisions?case_number=25/100").await;
    let e = &d["decisions"];
    assert_eq!(e.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(
        (
            &e[0]["event_type"],
            &e[0]["command_id"],
            &e[0]["effective_from"]
        ),
        (&json!("UnitsMerged"), &json!("m1"), &json!("2026-01-01"))
    );
    assert!(e[0]["revoked_at"].is_string(), "{d}");
    let d = ok(
        &app,
        "/timelines/oslo/decisions?body=Bystyret&decided_from=2024-01-01&decided_to=2025-09-30",
    )
    .await;
    let cases: Vec<&str> = d["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["case_number"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["24/200", "25/100"]);
    assert!(d["decisions"][0]["revoked_at"].is_null());
    let (_, csv) = app
        .get(
            READER,
            "/timelines/oslo/decisions?case_number=25/151&format=csv",
        )
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "stream_version,case_number,body,decision_date,title,event_type,command_id,effective_from,recorded_at,revoked_at,inherited_from"
    );
    assert!(
        lines[1].starts_with("14,25/151,Bystyret,2025-10-01,Sak 25/151,UnitsMerged,m2,2026-01-01,")
            && lines[1].ends_with(",,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");

    // Changes between two dates: what takes effect in (from, to], and the net difference.
    let c = ok(
        &app,
        "/timelines/oslo/changes?from=2025-06-01&to=2026-06-01",
    )
    .await;
    assert_eq!(c["timeline"], "oslo");
    let ids: Vec<&str> = c["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m2"]);
    assert_eq!(c["units_added"], json!(["grorud-alna"]));
    assert_eq!(c["units_removed"], json!(["alna", "grorud"]));
    assert_eq!(c["responsibilities_after"], json!([]));
    let c = ok(
        &app,
        "/timelines/oslo/changes?from=2024-06-01&to=2025-06-01",
    )
    .await;
    let after: Vec<String> = c["responsibilities_after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["area_code"].as_str().unwrap(),
                r["unit_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        after,
        [
            "030110=helseetaten",
            "030111=helseetaten",
            "030112=helseetaten"
        ]
    );

    // The change feed, paged: 5, then the other 9; every event exactly once, in order.
    let p1 = ok(&app, "/timelines/oslo/change-feed?limit=5").await;
    let v1: Vec<i64> = p1["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_i64().unwrap())
        .collect();
    assert_eq!(v1, [1, 2, 3, 4, 5]);
    assert_eq!(p1["next"], p1["entries"][4]["position"]);
    let p2 = ok(
        &app,
        &format!(
            "/timelines/oslo/change-feed?after_position={}&limit=100",
            p1["next"]
        ),
    )
    .await;
    let v2: Vec<i64> = p2["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_i64().unwrap())
        .collect();
    assert_eq!(v2, (6..=14).collect::<Vec<_>>());
    assert_eq!(p2["entries"][8]["event_type"], "UnitsMerged");
    let p3 = ok(
        &app,
        &format!("/timelines/oslo/change-feed?after_position={}", p2["next"]),
    )
    .await;
    assert_eq!((&p3["entries"], &p3["next"]), (&json!([]), &p2["next"]));
    let (_, csv) = app
        .get(READER, "/timelines/oslo/change-feed?limit=1&format=csv")
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "position,stream_version,event_type,command_id,case_number,effective_from,summary"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains(",1,TimelineCreated,create:oslo,"),
        "{csv}"
    );
}

async fn compare_a_scenario_with_its_baseline(app: TestApp) {
    seed(&app).await;
    // The scenario forks before the centralisation and merges nothing.
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines/oslo/fork",
            &json!({"id": "alt", "name": "Keep home care local", "version": 10}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    centralise(&app).await;
    first_merge(&app).await;
    correction(&app).await;
    // The scenario's one change of its own, later than every date compared below but the last.
    let (status, body) = app
        .command(
            "alt",
            &command(
                "alt-rename",
                "2027-01-01",
                json!({"type": "RenameUnit", "unit": "grorud", "name": "Bydel Grorud (alt)"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let same = ok(&app, "/compare?a=oslo&b=alt&as_of=2024-06-01").await;
    assert_eq!(
        (&same["responsibilities"], &same["units"]),
        (&json!([]), &json!([]))
    );
    // Both sides as known at an instant before any of it was recorded: nothing differs then.
    let then = ok(
        &app,
        "/compare?a=oslo&b=alt&as_of=2026-06-01&known_at=2000-01-01",
    )
    .await;
    assert_eq!(
        (&then["responsibilities"], &then["units"]),
        (&json!([]), &json!([]))
    );
    let c = ok(&app, "/compare?a=oslo&b=alt&as_of=2026-06-01").await;
    assert_ne!(c["responsibilities"], json!([]), "{c}");
    assert_eq!(
        (&c["a"], &c["b"], &c["as_of"]),
        (&json!("oslo"), &json!("alt"), &json!("2026-06-01"))
    );
    let rows: Vec<String> = c["responsibilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}: {} | {}",
                r["service_code"].as_str().unwrap(),
                r["area_code"].as_str().unwrap(),
                r["a_unit_id"].as_str().unwrap_or("-"),
                r["b_unit_id"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "home-care 030110: helseetaten | grorud",
            "home-care 030111: helseetaten | stovner",
            "home-care 030112: helseetaten | alna",
        ]
    );
    let units: Vec<(String, bool, bool)> = c["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["unit_id"].as_str().unwrap().to_owned(),
                u["a"].is_object(),
                u["b"].is_object(),
            )
        })
        .collect();
    assert_eq!(
        units,
        [
            ("alna".to_owned(), false, true),
            ("grorud".to_owned(), false, true),
            ("grorud-alna".to_owned(), true, false),
        ]
    );
    // Against the baseline as it stood at the fork, only what the scenario itself changed shows.
    let own = ok(
        &app,
        "/compare?a=oslo&a_known_version=10&b=alt&as_of=2027-06-01",
    )
    .await;
    assert_eq!(own["responsibilities"], json!([]), "{own}");
    let renamed: Vec<String> = own["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{}: {} | {}", u["unit_id"], u["a"]["name"], u["b"]["name"]))
        .collect();
    assert_eq!(
        renamed,
        [r#""grorud": "Bydel Grorud" | "Bydel Grorud (alt)""#]
    );
    // The same with the sides the other way round, and the scenario read at its fork.
    let none = ok(
        &app,
        "/compare?a=alt&b=oslo&a_known_version=1&b_known_version=10&as_of=2027-06-01",
    )
    .await;
    assert_eq!(
        (&none["responsibilities"], &none["units"]),
        (&json!([]), &json!([])),
        "{none}"
    );
    for (query, field) in [
        ("a=oslo&b=alt&a_known_version=15", "a_known_version"),
        ("a=oslo&b=alt&b_known_version=x", "b_known_version"),
        ("a=oslo&b=alt&known_version=10", "known_version"),
    ] {
        let (status, body) = app.get_json(READER, &format!("/compare?{query}")).await;
        assert_problem(status, &body, 422, Some(field));
    }
}

/// `inherited_from@version event_type command_id [revoked]` for each entry of a decision log
/// (`-` for the timeline's own entries; no command id for the timeline-starting events, whose ids
/// the server derives).
fn log_lines(v: &Value) -> Vec<String> {
    v["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|d| {
            let kind = d["event_type"].as_str().unwrap();
            let id = match kind {
                "TimelineCreated" | "TimelineForked" => "",
                _ => d["command_id"].as_str().unwrap(),
            };
            let revoked = if d["revoked_at"].is_null() {
                ""
            } else {
                " revoked"
            };
            format!(
                "{}@{} {kind} {id}{revoked}",
                d["inherited_from"].as_str().unwrap_or("-"),
                d["stream_version"]
            )
        })
        .collect()
}

/// A scenario's decision log starts with what it inherited: the parent's decisions up to the
/// fork (revoked only where the revocation came before the fork, or in the scenario itself), and
/// for a scenario of a scenario every ancestor's; the changes between two dates include them.
async fn a_scenario_shows_the_decisions_it_inherited(app: TestApp) {
    seed(&app).await;
    centralise(&app).await;
    first_merge(&app).await;
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines/oslo/fork",
            &json!({"id": "alt", "name": "Alternative"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The baseline revokes 25/100 after the fork: that is not the scenario's history.
    correction(&app).await;
    // The scenario revokes the centralisation it inherited.
    let (status, body) = app
        .command(
            "alt",
            &decided(
                "alt-rv",
                "2024-12-01",
                "24/300",
                "2024-11-01",
                json!({"type": "RevokeDecision", "case_number": "24/200"}),
            ),
        )
        .await;
    assert_eq!((status, &body["version"]), (200, &json!(2)), "{body}");
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines/alt/fork",
            &json!({"id": "alt2", "name": "Alternative 2"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let oslo = log_lines(&ok(&app, "/timelines/oslo/decisions").await);
    assert_eq!(oslo.len(), 14, "{oslo:?}");
    assert_eq!(oslo[10], "-@11 ServiceCentralised cz", "{oslo:?}");
    assert_eq!(oslo[11], "-@12 UnitsMerged m1 revoked", "{oslo:?}");
    // What the scenario inherited: the baseline up to version 12, as it stood at the fork, with
    // the scenario's own revocation of the centralisation.
    let inherited: Vec<String> = oslo[..12]
        .iter()
        .map(|l| {
            let l = l.replacen("-@", "oslo@", 1);
            match l.as_str() {
                "oslo@11 ServiceCentralised cz" => format!("{l} revoked"),
                "oslo@12 UnitsMerged m1 revoked" => "oslo@12 UnitsMerged m1".to_owned(),
                _ => l,
            }
        })
        .collect();
    let mut expected = inherited.clone();
    expected.extend([
        "-@1 TimelineForked ".to_owned(),
        "-@2 DecisionRevoked alt-rv".to_owned(),
    ]);
    let alt = log_lines(&ok(&app, "/timelines/alt/decisions").await);
    assert_eq!(alt, expected);
    // The baseline's own log is untouched by the scenario's revocation.
    assert_eq!(oslo[10], "-@11 ServiceCentralised cz");

    let mut expected = inherited;
    expected.extend([
        "alt@1 TimelineForked ".to_owned(),
        "alt@2 DecisionRevoked alt-rv".to_owned(),
        "-@1 TimelineForked ".to_owned(),
    ]);
    let alt2 = log_lines(&ok(&app, "/timelines/alt2/decisions").await);
    assert_eq!(alt2, expected);
    // The CSV names the timeline that recorded each entry, in its last column.
    let (status, csv) = app.get(READER, "/timelines/alt/decisions?format=csv").await;
    assert_eq!(status, 200, "{csv}");
    let ends: Vec<&str> = csv.lines().map(|l| l.rsplit(',').next().unwrap()).collect();
    let mut expected = vec!["inherited_from"];
    expected.extend(["oslo"; 12]);
    expected.extend(["", ""]);
    assert_eq!(ends, expected, "{csv}");
    // Filters apply to inherited entries too.
    let merged = log_lines(&ok(&app, "/timelines/alt2/decisions?case_number=25/100").await);
    assert_eq!(merged, ["oslo@12 UnitsMerged m1"]);

    // The decisions taking effect between two dates include the inherited ones in force.
    let changes = ok(&app, "/timelines/alt/changes?from=2024-12-31&to=2026-01-01").await;
    let taking_effect: Vec<String> = changes["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{} {}", d["inherited_from"], d["command_id"]))
        .collect();
    assert_eq!(taking_effect, [r#""oslo" "m1""#]);
    // "As known at" counts the scenario's own events only.
    let chart = ok(
        &app,
        "/timelines/alt/org-chart?as_of=2026-06-01&known_at=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(chart["known_version"], 2, "{chart}");
}

async fn bad_queries_are_422_and_unknown_timelines_404(app: TestApp) {
    scripted(&app).await;
    for (path, field) in [
        (
            "/timelines/oslo/decisions?decided_from=last-year",
            "decided_from",
        ),
        (
            "/timelines/oslo/decisions?decided_from=2026-01-01&decided_to=2025-01-01",
            "decided_from",
        ),
        (
            "/timelines/oslo/changes?from=2026-01-01&to=2025-01-01",
            "from",
        ),
        ("/timelines/oslo/changes?from=2025-01-01", "to"),
        (
            "/timelines/oslo/changes?from=2025-13-01&to=2026-01-01",
            "from",
        ),
        ("/timelines/oslo/units/gh%01ost/history", "unit"),
        ("/timelines/oslo/services/gh%01ost/history", "code"),
        ("/timelines/oslo/change-feed?limit=0", "limit"),
        (
            "/timelines/oslo/change-feed?after_position=-1",
            "after_position",
        ),
        ("/timelines/oslo/decisions?format=dot", "format"),
        ("/compare?b=oslo", "a"),
        ("/compare?a=oslo&b=oslo&as_of=soon", "as_of"),
        // Dates are YYYY-MM-DD exactly, numbers digits only: chrono and Rust would read these.
        ("/timelines/oslo/org-chart?as_of=2025-1-1", "as_of"),
        ("/timelines/oslo/org-chart?as_of=%2B2025-01-01", "as_of"),
        ("/timelines/oslo/org-chart?as_of=%202025-01-01", "as_of"),
        ("/timelines/oslo/org-chart?known_at=2025-1-1", "known_at"),
        (
            "/timelines/oslo/org-chart?known_at=0001-01-01T00:00:00%2B01:00",
            "known_at",
        ),
        ("/timelines/oslo/change-feed?limit=%2B1", "limit"),
        (
            "/timelines/oslo/change-feed?after_position=%2B0",
            "after_position",
        ),
        ("/compare?a=oslo&b=oslo&known_at=soon", "known_at"),
        ("/compare?a=oslo&b=oslo&known_version=3", "known_version"),
    ] {
        let (status, body) = app.get_json(READER, path).await;
        assert_problem(status, &body, 422, Some(field));
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{path}: {body}"
        );
    }
    // An instant out of range once in UTC says which UTC time it is, not a bare date.
    let (_, body) = app
        .get_json(
            READER,
            "/timelines/oslo/org-chart?known_at=0001-01-01T00:00:00%2B01:00",
        )
        .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("0000-12-31T23:00:00Z in UTC")),
        "{body}"
    );
    // A unit or service the timeline never had is unknown, like an unknown timeline.
    for (path, detail) in [
        (
            "/timelines/oslo/units/ghost/history",
            "unit ghost not found",
        ),
        (
            "/timelines/oslo/services/ghost/history",
            "service ghost not found",
        ),
    ] {
        let (status, body) = app.get_json(READER, path).await;
        assert_problem(status, &body, 404, None);
        assert_eq!(body["detail"], detail, "{path}");
    }
    for path in [
        "/timelines/nope/units/grorud/history",
        "/timelines/nope/services/home-care/history",
        "/timelines/nope/decisions",
        "/timelines/nope/changes?from=2025-01-01&to=2026-01-01",
        "/timelines/nope/change-feed",
        "/compare?a=oslo&b=nope",
        "/compare?a=nope&b=oslo",
    ] {
        let (status, body) = app.get_json(READER, path).await;
        assert_problem(status, &body, 404, None);
        assert_eq!(body["detail"], "timeline nope not found", "{path}");
    }
    // Every projection route is open to readers and closed to strangers.
    let (status, _) = app
        .get_json("not-a-token", "/timelines/oslo/decisions")
        .await;
    assert_eq!(status, 401);
}

async fn a_lagging_projector_answers_503_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_stalled(backend).await;
    app.create_timeline("oslo").await;
    for path in [
        "/timelines/oslo/org-chart",
        "/timelines/oslo/responsibilities",
        "/timelines/oslo/decisions",
        "/timelines/oslo/change-feed",
    ] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(READER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 503, "{path}");
        assert_eq!(r.headers()["retry-after"], "1", "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["type"], "urn:omorg:problem:projection-lagging",
            "{body}"
        );
    }
    // Writes and the store-backed routes are unaffected.
    let (status, t) = app.get_json(READER, "/timelines/oslo").await;
    assert_eq!((status, &t["version"]), (200, &json!(1)));
    // The server is alive but not ready: its projector never caught up with the log.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"], "urn:omorg:problem:projection-catching-up",
        "{body}"
    );
}

async fn omorg_rebuild_via_the_binary_gives_the_same_answers(app: TestApp) {
    scripted(&app).await;
    let paths = [
        "/timelines/oslo/org-chart?as_of=2026-06-01",
        "/timelines/oslo/org-chart?as_of=2026-06-01&known_version=12",
        "/timelines/oslo/responsibilities?as_of=2025-06-01&format=csv",
        "/timelines/oslo/units/grorud/history",
        "/timelines/oslo/decisions",
        "/timelines/oslo/changes?from=2025-06-01&to=2026-06-01",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(ok(&app, p).await);
    }
    // Stop the server's projector so that the rebuild alone applies every event; queries still
    // answer, because everything is projected once the rebuild is done.
    app.queries.shutdown();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args(["--database-url", &app.database_url, "rebuild"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run omorg");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout, "rebuilt the read models from 14 events\n");
    // Not a terminal: plain progress lines instead of a bar.
    assert!(
        stderr.starts_with("rebuilding the read models from the event log"),
        "{stderr}"
    );
    assert!(stderr.contains("rebuild: 14 events applied"), "{stderr}");
    for (p, b) in paths.iter().zip(&before) {
        assert_eq!(&ok(&app, p).await, b, "{p}");
    }
    // The other projection commands of the binary, caught up first.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args([
            "--database-url",
            &app.database_url,
            "decisions",
            "--timeline",
            "oslo",
            "--case",
            "25/100",
        ])
        .output()
        .await
        .expect("run omorg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("v12   2025-06-18 Bystyret 25/100: Sak 25/100 (UnitsMerged, effective 2026-01-01) [revoked "), "{stdout}");
    // A failure is a clear message and a non-zero exit.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args([
            "--database-url",
            "sqlite:///nonexistent-dir/x/omorg.db",
            "rebuild",
        ])
        .output()
        .await
        .expect("run omorg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("omorg: error: cannot open database"),
        "{stderr}"
    );
}

/// A stored event that can never be projected (a raw row whose payload is not a timeline event,
/// as one written before the store validated) stops only its own timeline: queries on it answer
/// 500 `projection-failed` naming the event, and other timelines keep answering, including their
/// newer writes.
async fn a_poison_event_fails_its_timeline_loudly_and_no_other(app: TestApp) {
    seed(&app).await;
    let zeros = "0".repeat(64);
    let insert = "INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at, prev_hash, hash, command_id, command_events) \
                  VALUES ('junk', 1, 'TimelineCreated', '1', $1, '{}', $2, $3, $3, 'junk-1', 1)";
    match app.app.db() {
        omorg_store::Database::Postgres(p) => sqlx::query(
            &insert
                .replace("$1", "$1::jsonb")
                .replace("'{}'", "'{}'::jsonb")
                .replace("$2", "now()")
                .replace("$3", "$2"),
        )
        .bind(r#"{"not": "a timeline event"}"#)
        .bind(&zeros)
        .execute(p)
        .await
        .map(|_| ()),
        omorg_store::Database::Sqlite(p) => sqlx::query(insert)
            .bind(r#"{"not": "a timeline event"}"#)
            .bind("2026-11-23T12:00:00.000000Z")
            .bind(&zeros)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .expect("raw insert");
    // A command on oslo after the junk event: read-your-writes must still hold for oslo.
    let (status, body) = app
        .command(
            "oslo",
            &command(
                "after-junk",
                "2027-01-01",
                json!({"type": "RenameUnit", "unit": "grorud", "name": "Bydel Grorud (ny)"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let chart = ok(&app, "/timelines/oslo/org-chart?as_of=2027-06-01").await;
    assert!(chart.to_string().contains("Bydel Grorud (ny)"), "{chart}");
    let (status, body) = app.get_json(READER, "/timelines/junk/org-chart").await;
    assert_problem(status, &body, 500, None);
    assert_eq!(
        body["type"], "urn:omorg:problem:projection-failed",
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("event 1"),
        "{body}"
    );
    let (status, body) = app.get_json(READER, "/compare?a=oslo&b=junk").await;
    assert_eq!(
        (status, &body["type"]),
        (500, &json!("urn:omorg:problem:projection-failed")),
        "{body}"
    );
    // The auditor still reads the row as stored, and verify names it.
    let (status, page) = app.get_json(AUDITOR, "/timelines/junk/events").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["events"][0]["payload"],
        json!({"not": "a timeline event"}),
        "{page}"
    );
    let (status, report) = app.get_json(AUDITOR, "/timelines/junk/verify").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["first_break"]["version"], 1, "{report}");
}

on_both_backends!(
    a_poison_event_fails_its_timeline_loudly_and_no_other,
    reads_see_their_own_writes,
    both_recorded_axes_before_and_after_the_correction,
    histories_decisions_changes_and_feed,
    compare_a_scenario_with_its_baseline,
    a_scenario_shows_the_decisions_it_inherited,
    bad_queries_are_422_and_unknown_timelines_404,
    omorg_rebuild_via_the_binary_gives_the_same_answers,
);

mod lagging {
    use omorg_e2e::Backend;

    #[tokio::test]
    async fn postgres() {
        super::a_lagging_projector_answers_503_with_retry_after(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn sqlite() {
        super::a_lagging_projector_answers_503_with_retry_after(Backend::Sqlite).await;
    }
}

/// A query waits only for the events of the timelines it reads: with the projector stopped
/// after a command on one timeline, queries on another answer at once from what is projected,
/// while queries on the first (alone, or beside the other in `/compare`) answer 503.
async fn a_query_waits_only_for_its_own_timelines(backend: Backend) {
    let app = TestApp::spawn_with_patience(backend, std::time::Duration::from_millis(500)).await;
    app.create_timeline("oslo").await;
    app.create_timeline("asker").await;
    for (t, unit) in [("oslo", "grorud"), ("asker", "heggedal")] {
        let (status, body) = app
            .command(
                t,
                &command(
                    &format!("{t}-1"),
                    "2020-01-01",
                    json!({"type": "EstablishUnit", "unit": unit, "name": unit, "kind": "district"}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app.stop_projector().await;
    // Committed after the projector stopped: never projected.
    let (status, body) = app
        .command(
            "oslo",
            &command(
                "oslo-2",
                "2021-01-01",
                json!({"type": "RenameUnit", "unit": "grorud", "name": "Bydel Grorud"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for path in [
        "/timelines/asker/org-chart",
        "/timelines/asker/responsibilities",
        "/timelines/asker/decisions",
        "/timelines/asker/change-feed",
    ] {
        let (status, body) = app.get_json(READER, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, chart) = app.get_json(READER, "/timelines/asker/org-chart").await;
    assert_eq!(chart["units"][0]["id"], "heggedal", "{chart}");
    for path in [
        "/timelines/oslo/org-chart",
        "/timelines/oslo/decisions",
        "/compare?a=oslo&b=asker",
        "/compare?a=asker&b=oslo",
    ] {
        let (status, body) = app.get_json(READER, path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(
            body["type"], "urn:omorg:problem:projection-lagging",
            "{path}: {body}"
        );
    }
}

mod own_timelines {
    use omorg_e2e::Backend;

    #[tokio::test]
    async fn postgres() {
        super::a_query_waits_only_for_its_own_timelines(Backend::Postgres).await;
    }

    #[tokio::test]
    async fn sqlite() {
        super::a_query_waits_only_for_its_own_timelines(Backend::Sqlite).await;
    }
}

/// forks at an earlier parent version, nested, revocations before/after, and a rebuild.
async fn inherited_decisions_at_earlier_fork_versions_and_after_a_rebuild(app: TestApp) {
    scripted(&app).await;
    let fork = |parent: &'static str, id: &'static str, version: u64| {
        let app = &app;
        async move {
            let (status, body) = app
                .post(
                    PLANNER,
                    &format!("/timelines/{parent}/fork"),
                    &json!({"id": id, "name": id, "version": version}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    // Before the baseline's revocation of 25/100 (v13): m1 in force in the scenario.
    fork("oslo", "early", 12).await;
    // After it: m1 revoked.
    fork("oslo", "late", 13).await;
    // The scenario revokes the centralisation it inherited.
    let (status, body) = app
        .command(
            "early",
            &decided(
                "early-rv",
                "2024-12-01",
                "24/300",
                "2024-11-01",
                json!({"type": "RevokeDecision", "case_number": "24/200"}),
            ),
        )
        .await;
    assert_eq!((status, &body["version"]), (200, &json!(2)), "{body}");
    fork("early", "early-a", 1).await;
    fork("early", "early-b", 2).await;
    let early = log_lines(&ok(&app, "/timelines/early/decisions").await);
    assert_eq!(
        early[10], "oslo@11 ServiceCentralised cz revoked",
        "{early:?}"
    );
    assert_eq!(early[11], "oslo@12 UnitsMerged m1", "{early:?}");
    assert_eq!(early.len(), 14, "{early:?}");
    let late = log_lines(&ok(&app, "/timelines/late/decisions").await);
    assert_eq!(late[11], "oslo@12 UnitsMerged m1 revoked", "{late:?}");
    assert_eq!(late[12], "oslo@13 DecisionRevoked rv", "{late:?}");
    assert_eq!(late.len(), 14, "{late:?}");
    let a = log_lines(&ok(&app, "/timelines/early-a/decisions").await);
    assert_eq!(a[10], "oslo@11 ServiceCentralised cz", "{a:?}");
    assert_eq!(a[11], "oslo@12 UnitsMerged m1", "{a:?}");
    assert_eq!(
        a[12..],
        ["early@1 TimelineForked ", "-@1 TimelineForked "],
        "{a:?}"
    );
    let b = log_lines(&ok(&app, "/timelines/early-b/decisions").await);
    assert_eq!(b[10], "oslo@11 ServiceCentralised cz revoked", "{b:?}");
    assert_eq!(
        b[12..],
        [
            "early@1 TimelineForked ",
            "early@2 DecisionRevoked early-rv",
            "-@1 TimelineForked "
        ],
        "{b:?}"
    );
    // early-a revokes the centralisation itself; early is untouched.
    let (status, body) = app
        .command(
            "early-a",
            &decided(
                "a-rv",
                "2024-12-01",
                "24/301",
                "2024-11-01",
                json!({"type": "RevokeDecision", "case_number": "24/200"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let a = log_lines(&ok(&app, "/timelines/early-a/decisions").await);
    assert_eq!(a[10], "oslo@11 ServiceCentralised cz revoked", "{a:?}");
    let b2 = log_lines(&ok(&app, "/timelines/early-b/decisions").await);
    assert_eq!(b, b2);

    let dump = |app: &TestApp| {
        let db = app.app.db().clone();
        async move {
            let sql = "SELECT timeline_id || '|' || coalesce(inherited_from, '-') || '|' || inherited_depth || '|' || stream_version || '|' || position || '|' || command_id || '|' || coalesce(CAST(revoked_at AS text), '-') || '|' || coalesce(CAST(revoked_by_version AS text), '-') FROM decisions ORDER BY timeline_id, inherited_depth, stream_version";
            let rows: Vec<(String,)> = match &db {
                omorg_store::Database::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
                omorg_store::Database::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
            }
            .expect("dump");
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>()
        }
    };
    let paths = [
        "/timelines/early/decisions",
        "/timelines/late/decisions",
        "/timelines/early-a/decisions",
        "/timelines/early-b/decisions",
        "/timelines",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(ok(&app, p).await);
    }
    let rows_before = dump(&app).await;
    app.queries.shutdown();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"))
        .args(["--database-url", &app.database_url, "rebuild"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run omorg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows_before, dump(&app).await);
    for (p, b) in paths.iter().zip(&before) {
        assert_eq!(&ok(&app, p).await, b, "{p}");
    }
}

on_both_backends!(inherited_decisions_at_earlier_fork_versions_and_after_a_rebuild);

/// On SQLite a row edited behind the store's back so that its payload is no longer JSON cannot be
/// shown as stored: the auditor's page names the row (500 `event-unreadable`) instead of a bare
/// internal error, and verify names it too.
#[tokio::test]
async fn a_row_that_is_not_json_is_named_on_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    seed(&app).await;
    let omorg_store::Database::Sqlite(p) = app.app.db() else {
        unreachable!()
    };
    sqlx::query("INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at, prev_hash, hash, command_id, command_events) \
                 VALUES ('junk', 1, 'TimelineCreated', '1', 'not json', '{}', '2026-11-23T12:00:00.000000Z', $1, $1, 'junk-1', 1)")
        .bind("0".repeat(64))
        .execute(p)
        .await
        .expect("raw insert");
    let (status, report) = app.get_json(AUDITOR, "/timelines/junk/verify").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["first_break"]["version"], 1, "{report}");
    for path in ["/timelines/junk/events", "/events"] {
        let (status, body) = app.get_json(AUDITOR, path).await;
        assert_eq!(
            (status, &body["type"]),
            (500, &json!("urn:omorg:problem:event-unreadable")),
            "{path}: {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("junk@1") && detail.contains("verify"),
            "{body}"
        );
    }
}

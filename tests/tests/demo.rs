//! The demo data set loads through the application, twice without harm, and answers the
//! questions it is there for, over HTTP, on both backends.

use omorg_e2e::{on_both_backends, TestApp, AUDITOR, PLANNER, READER};

async fn demo_loads_idempotently_and_answers(app: TestApp) {
    let first = omorg_api::demo::load(&app.app).await.expect("demo loads");
    let second = omorg_api::demo::load(&app.app)
        .await
        .expect("demo loads again");
    // A second load changes nothing, and says so.
    assert!(first.starts_with("demo loaded: "), "{first}");
    assert_eq!(
        second,
        first.replacen("demo loaded: ", "demo already loaded, nothing written: ", 1),
        "a second load changes nothing"
    );

    let (status, list) = app.get_json(READER, "/timelines").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, omorg_api::demo::TIMELINES);

    // Oslo: 15 districts with codes 030101–030115 under the municipality.
    let (_, chart) = app
        .get_json(READER, "/timelines/oslo/org-chart?as_of=2024-06-01")
        .await;
    let oslo = &chart["units"][0];
    assert_eq!(oslo["code"], "0301");
    let mut codes: Vec<&str> = oslo["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["kind"] == "district")
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    let expected: Vec<String> = (1..=15).map(|i| format!("0301{i:02}")).collect();
    assert_eq!(codes, expected);

    // The baseline keeps home care in the districts; the planning scenario moves it to
    // Helseetaten from 2027-01-01, and /compare shows exactly that difference.
    let (_, csv) = app
        .get(
            READER,
            "/timelines/oslo/responsibilities?as_of=2027-01-01&format=csv",
        )
        .await;
    assert!(
        csv.contains("home-care,Hjemmetjenester,030101,Gamle Oslo,gamle-oslo,Bydel Gamle Oslo"),
        "{csv}"
    );
    let (_, csv) = app
        .get(
            READER,
            "/timelines/oslo-home-care-central/responsibilities?as_of=2027-01-01&format=csv",
        )
        .await;
    assert!(
        csv.contains("home-care,Hjemmetjenester,030101,Gamle Oslo,helseetaten,Helseetaten"),
        "{csv}"
    );
    let (status, diff) = app
        .get_json(
            READER,
            "/compare?a=oslo&b=oslo-home-care-central&as_of=2027-01-01",
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    let moved: Vec<_> = diff["responsibilities"]
        .as_array()
        .expect("responsibilities")
        .iter()
        .map(|r| {
            (
                r["service_code"].as_str().unwrap(),
                r["b_unit_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(moved.len(), 15, "{diff}");
    assert!(
        moved.iter().all(|m| *m == ("home-care", "helseetaten")),
        "{diff}"
    );

    // Asker: three municipalities in 2019, one (3025) in 2020, renumbered 3203 in 2024.
    let (_, y2019) = app
        .get_json(READER, "/timelines/asker/org-chart?as_of=2019-12-31")
        .await;
    assert_eq!(y2019["units"].as_array().unwrap().len(), 3);
    let (_, y2020) = app
        .get_json(READER, "/timelines/asker/org-chart?as_of=2020-01-01")
        .await;
    assert_eq!(y2020["units"][0]["code"], "3025");
    let (_, y2024) = app
        .get_json(READER, "/timelines/asker/org-chart?as_of=2024-01-01")
        .await;
    assert_eq!(y2024["units"][0]["code"], "3203");
    // …on the authority of the Storting's 2022 decision to divide Viken.
    let (_, log) = app
        .get_json(
            READER,
            "/timelines/asker/decisions?case_number=Prop.%20113%20LS%20(2021%E2%80%932022)",
        )
        .await;
    let entries = log["decisions"].as_array().expect("decisions");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["decision_date"], "2022-06-14", "{log}");
    // The merger rests on the Storting's decision of 2017-06-08.
    let (_, log) = app
        .get_json(
            READER,
            "/timelines/asker/decisions?case_number=Innst.%20386%20S%20(2016%E2%80%932017)",
        )
        .await;
    let entries = log["decisions"].as_array().expect("decisions");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(
        (&entries[0]["body"], &entries[0]["decision_date"]),
        (
            &serde_json::json!("Stortinget"),
            &serde_json::json!("2017-06-08")
        ),
        "{log}"
    );

    // The two scenarios put the citizen service desk under different parents.
    let (_, alt1) = app
        .get_json(
            READER,
            "/timelines/asker-alt-1/responsibilities?as_of=2021-01-01",
        )
        .await;
    let (_, alt2) = app
        .get_json(
            READER,
            "/timelines/asker-alt-2/responsibilities?as_of=2021-01-01",
        )
        .await;
    let desk = |v: &serde_json::Value| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == "citizen-service-desk")
            .map(|r| r["unit"].as_str().unwrap().to_owned())
    };
    assert_eq!(desk(&alt1).as_deref(), Some("asker-alt-1-innbyggerservice"));
    assert_eq!(desk(&alt2).as_deref(), Some("asker-alt-2-innbyggerservice"));

    for t in omorg_api::demo::TIMELINES {
        let (status, v) = app
            .get_json(AUDITOR, &format!("/timelines/{t}/verify"))
            .await;
        assert_eq!(
            (status, &v["intact"]),
            (200, &serde_json::json!(true)),
            "{t}: {v}"
        );
    }
}

/// A database that holds a demo timeline as an earlier release wrote it (here: another name under
/// the demo's command id) is not rewritten; loading says why and what to do.
async fn an_older_demo_is_reported_not_rewritten(app: TestApp) {
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines",
            &serde_json::json!({"id": "oslo", "name": "Oslo (an older demo)", "command_id": "oslo-create"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let err = omorg_api::demo::load(&app.app)
        .await
        .expect_err("an older demo is not silently kept");
    let problem = err.problem();
    assert_eq!(problem.status, 409);
    assert_eq!(problem.rule.as_deref(), Some("timeline-already-started"));
    assert!(
        problem.detail.contains("fresh database"),
        "{}",
        problem.detail
    );
    let (_, timeline) = app.get_json(READER, "/timelines/oslo").await;
    assert_eq!(timeline["name"], "Oslo (an older demo)", "{timeline}");
}

on_both_backends!(
    an_older_demo_is_reported_not_rewritten,
    demo_loads_idempotently_and_answers
);

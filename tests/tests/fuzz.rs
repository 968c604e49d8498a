//! Regressions found by fuzzing the API (schemathesis and hand-made inputs, see
//! docs/fuzzing.md): each bad input answers a 4xx problem document naming the field — never a
//! 500, a non-problem body, or a half-applied change. Each test runs on PostgreSQL and SQLite.

use omorg_e2e::{command, on_both_backends, TestApp, ADMIN, AUDITOR, PLANNER, READER};
use serde_json::{json, Value};

/// A timeline `oslo` with one unit, so that queries have something to answer.
async fn seeded(app: &TestApp) {
    app.create_timeline("oslo").await;
    let (status, body) = app
        .command(
            "oslo",
            &command(
                "seed-1",
                "2020-01-01",
                json!({"type": "EstablishUnit", "unit": "oslo", "name": "Oslo kommune", "kind": "municipality"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A raw GET: status, content type and body text.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ct = content_type(&r);
    (status, ct, r.text().await.expect("body"))
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Asserts a problem document with `status` and, when given, `field`.
fn assert_problem(status: u16, ct: &str, body: &str, expected: u16, field: Option<&str>) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(ct, "application/problem+json", "{body}");
    let v: Value = serde_json::from_str(body).expect("problem JSON");
    assert_eq!(v["status"], expected, "{body}");
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{body}");
    }
}

async fn version(app: &TestApp, timeline: &str) -> u64 {
    let (status, t) = app
        .get_json(READER, &format!("/timelines/{timeline}"))
        .await;
    assert_eq!(status, 200, "{t}");
    t["version"].as_u64().expect("version")
}

async fn nul_characters_are_422_not_500(app: TestApp) {
    seeded(&app).await;
    // PostgreSQL cannot store or compare U+0000 in text: these were 500s there.
    for (path, field) in [
        ("/timelines/a%00b/org-chart", "id"),
        ("/timelines/a%00b/responsibilities", "id"),
        ("/timelines/oslo/units/a%00b/history", "unit"),
        ("/timelines/oslo/services/a%00/history", "code"),
        ("/timelines/oslo/decisions?case_number=a%00b", "case_number"),
        ("/timelines/oslo/decisions?body=%00", "body"),
        ("/compare?a=a%00&b=oslo", "a"),
    ] {
        let (status, ct, body) = raw_get(&app, path).await;
        assert_problem(status, &ct, &body, 422, Some(field));
    }
    // In a JSON body, the field is the JSON path; nothing is written.
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines",
            &json!({"id": "nul", "name": "n\u{0}"}),
        )
        .await;
    assert_eq!((status, &body["field"]), (422, &json!("name")), "{body}");
    let (status, body) = app
        .command(
            "oslo",
            &command(
                "nul-1",
                "2021-01-01",
                json!({"type": "RenameUnit", "unit": "oslo", "name": "O\u{0}slo"}),
            ),
        )
        .await;
    assert_eq!(
        (status, &body["field"]),
        (422, &json!("action.name")),
        "{body}"
    );
    let (status, body) = app.get_json(READER, "/timelines/nul").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(version(&app, "oslo").await, 2);
}

async fn dates_outside_years_1_to_9999_are_422(app: TestApp) {
    seeded(&app).await;
    for (path, field) in [
        ("/timelines/oslo/org-chart?as_of=-262143-01-01", "as_of"),
        ("/timelines/oslo/org-chart?as_of=0000-12-31", "as_of"),
        (
            "/timelines/oslo/org-chart?known_at=-262143-01-01",
            "known_at",
        ),
        (
            "/timelines/oslo/responsibilities?known_at=0000-01-01T00:00:00Z",
            "known_at",
        ),
        (
            "/timelines/oslo/changes?from=-0001-01-01&to=2020-01-01",
            "from",
        ),
        (
            "/timelines/oslo/decisions?decided_from=-4714-01-01",
            "decided_from",
        ),
    ] {
        let (status, ct, body) = raw_get(&app, path).await;
        assert_problem(status, &ct, &body, 422, Some(field));
    }
    // A command dated before PostgreSQL's first date used to be stored, then stop the
    // projector for good (every query 503). Now it is refused and nothing is written.
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines",
            &json!({"id": "ancient", "name": "n", "effective_from": "-4714-01-01"}),
        )
        .await;
    assert_eq!(
        (status, &body["field"]),
        (422, &json!("effective_from")),
        "{body}"
    );
    let mut cmd = command(
        "far-1",
        "2021-01-01",
        json!({"type": "RenameUnit", "unit": "oslo", "name": "Oslo"}),
    );
    cmd["decision"]["decision_date"] = json!("+10000-01-01");
    let (status, body) = app.command("oslo", &cmd).await;
    assert_eq!(
        (status, &body["field"]),
        (422, &json!("decision.decision_date")),
        "{body}"
    );
    assert_eq!(version(&app, "oslo").await, 2);
    // The read side still answers.
    let (status, chart) = app
        .get_json(READER, "/timelines/oslo/org-chart?as_of=9999-12-31")
        .await;
    assert_eq!(status, 200, "{chart}");
    assert_eq!(chart["units"][0]["id"], "oslo");
}

async fn an_oversized_body_is_413(app: TestApp) {
    seeded(&app).await;
    let mut cmd = command(
        "big-1",
        "2021-01-01",
        json!({"type": "RenameUnit", "unit": "oslo", "name": "Oslo"}),
    );
    cmd["rationale"] = json!("x".repeat(17 * 1024 * 1024));
    let r = app
        .client
        .post(format!("{}/timelines/oslo/commands", app.base))
        .bearer_auth(PLANNER)
        .header("content-type", "application/json")
        .body(cmd.to_string())
        .send()
        .await
        .expect("request");
    let (status, ct) = (r.status().as_u16(), content_type(&r));
    assert_problem(status, &ct, &r.text().await.expect("body"), 413, None);
    assert_eq!(version(&app, "oslo").await, 2);
}

/// A request target or header block over the limits is a problem document naming the size
/// and the limit, on any route (hyper's own refusal, far above, has no body); just under them
/// the request goes on to its route.
async fn an_oversized_target_or_header_block_is_a_problem_document(app: TestApp) {
    seeded(&app).await;
    let long = |n: usize| {
        format!(
            "/timelines/oslo/org-chart?as_of=2021-01-01&x={}",
            "a".repeat(n)
        )
    };
    let (status, ct, body) = raw_get(&app, &long(17 * 1024)).await;
    assert_problem(status, &ct, &body, 414, None);
    assert!(body.contains("16384"), "{body}");
    // Just under: the route answers (the unknown parameter is its 400).
    let (status, ct, body) = raw_get(&app, &long(15 * 1024)).await;
    assert_problem(status, &ct, &body, 400, Some("x"));
    // On a command, before anything is read or written.
    let r = app
        .client
        .post(format!(
            "{}/timelines/oslo/commands?x={}",
            app.base,
            "a".repeat(17 * 1024)
        ))
        .bearer_auth(PLANNER)
        .header("content-type", "application/json")
        .body(
            command(
                "long-1",
                "2021-01-01",
                json!({"type": "RenameUnit", "unit": "oslo", "name": "Oslo L"}),
            )
            .to_string(),
        )
        .send()
        .await
        .expect("request");
    let (status, ct) = (r.status().as_u16(), content_type(&r));
    assert_problem(status, &ct, &r.text().await.expect("body"), 414, None);
    assert_eq!(version(&app, "oslo").await, 2);
    // Headers: one large one, then many that add up.
    for headers in [
        vec![("x-big".to_owned(), "b".repeat(65 * 1024))],
        (0..40)
            .map(|i| (format!("x-part-{i}"), "c".repeat(2 * 1024)))
            .collect(),
    ] {
        let mut request = app
            .client
            .get(format!("{}/timelines/oslo", app.base))
            .bearer_auth(READER);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let r = request.send().await.expect("request");
        let (status, ct) = (r.status().as_u16(), content_type(&r));
        let body = r.text().await.expect("body");
        assert_problem(status, &ct, &body, 431, None);
        assert!(body.contains("65536"), "{body}");
    }
    let r = app
        .client
        .get(format!("{}/timelines/oslo", app.base))
        .bearer_auth(READER)
        .header("x-big", "b".repeat(60 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
}

async fn malformed_paths_and_methods_are_problem_documents(app: TestApp) {
    seeded(&app).await;
    // Not UTF-8 in a path segment: was axum's text/plain 400.
    for (path, field) in [
        ("/timelines/%FF", "id"),
        ("/timelines/%FF/org-chart", "id"),
        ("/timelines/oslo/units/%C3/history", "unit"),
    ] {
        let (status, ct, body) = raw_get(&app, path).await;
        assert_problem(status, &ct, &body, 400, Some(field));
    }
    // A known route with another method: was an empty 405.
    let r = app
        .client
        .delete(format!("{}/timelines/oslo", app.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("request");
    let (status, ct) = (r.status().as_u16(), content_type(&r));
    let allow = r
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(allow.contains("GET"), "{allow}");
    assert_problem(status, &ct, &r.text().await.expect("body"), 405, None);
    // Dot segments and encoded slashes never escape the route.
    let (status, ct, body) = raw_get(&app, "/timelines/..%2F..%2Fetc").await;
    assert_problem(status, &ct, &body, 404, None);
}

async fn a_batch_whose_50th_command_is_invalid_writes_nothing(app: TestApp) {
    seeded(&app).await;
    let good = |i: usize| {
        command(
            &format!("b50-{i}"),
            "2021-01-01",
            json!({"type": "RegisterService", "service": format!("svc-{i}"), "name": format!("S {i}")}),
        )
    };
    let mut commands: Vec<Value> = (0..49).map(good).collect();
    commands.push(command(
        "b50-49",
        "2021-01-01",
        json!({"type": "DissolveUnit", "unit": "ghost"}),
    ));
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines/oslo/batch",
            &json!({"commands": commands}),
        )
        .await;
    assert_eq!((status, &body["index"]), (409, &json!(49)), "{body}");
    // A NUL in the 50th: 422 naming the command and the field.
    commands[49] = good(49);
    commands[49]["action"]["name"] = json!("S\u{0}");
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines/oslo/batch",
            &json!({"commands": commands}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["index"], 49, "{body}");
    assert_eq!(body["field"], "commands[49].action.name", "{body}");
    // An out-of-range date in the 50th.
    commands[49] = good(49);
    commands[49]["effective_from"] = json!("-0001-01-01");
    let (status, body) = app
        .post(
            PLANNER,
            "/timelines/oslo/batch",
            &json!({"commands": commands}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["index"], 49, "{body}");
    assert_eq!(body["field"], "commands[49].effective_from", "{body}");
    assert_eq!(version(&app, "oslo").await, 2);
    let (status, log) = app
        .get_json(AUDITOR, "/timelines/oslo/events?limit=1000")
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["events"].as_array().map(Vec::len), Some(2));
}

async fn concurrent_identical_commands_apply_once(app: TestApp) {
    seeded(&app).await;
    let cmd = command(
        "same-1",
        "2021-01-01",
        json!({"type": "RegisterService", "service": "library", "name": "Bibliotek"}),
    );
    let answers = futures_join_all((0..12).map(|_| app.command("oslo", &cmd))).await;
    let mut fresh = 0;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        if body["duplicate"] == false {
            fresh += 1;
        }
        assert_eq!(body["version"], 3, "{body}");
    }
    assert_eq!(fresh, 1, "{answers:?}");
    assert_eq!(version(&app, "oslo").await, 3);
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

async fn openapi_tells_the_truth_about_media_types(app: TestApp) {
    let (status, doc) = app.get_json(READER, "/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            for (code, response) in responses {
                let Ok(n) = code.parse::<u16>() else { continue };
                if n >= 400 {
                    let content = response["content"].as_object();
                    let types: Vec<&String> =
                        content.map(|c| c.keys().collect()).unwrap_or_default();
                    assert_eq!(
                        types,
                        ["application/problem+json"],
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }
    let chart = &doc["paths"]["/timelines/{id}/org-chart"]["get"]["responses"]["200"]["content"];
    for media in [
        "application/json",
        "text/csv",
        "text/vnd.graphviz",
        "text/plain",
    ] {
        assert!(chart[media].is_object(), "org-chart lacks {media}: {chart}");
    }
    let feed = &doc["paths"]["/timelines/{id}/change-feed"]["get"]["responses"]["200"]["content"];
    assert!(feed["text/csv"].is_object(), "{feed}");
    // Statuses the server really answers are documented.
    for (path, method, code) in [
        ("/timelines/{id}", "get", "422"),
        ("/timelines/{id}/events", "get", "422"),
        ("/timelines/{id}/verify", "get", "422"),
        ("/timelines/{id}/fork", "post", "400"),
        ("/timelines/{id}/commands", "post", "413"),
        ("/timelines/{id}/commands", "post", "414"),
        ("/healthz", "get", "431"),
        ("/events", "get", "422"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"][code].is_object(),
            "{method} {path} does not document {code}"
        );
    }
    // Bodies that have a concrete type say so.
    let command = &doc["paths"]["/timelines/{id}/commands"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert!(command["$ref"].is_string(), "{command}");
    let verify = &doc["paths"]["/timelines/{id}/verify"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert!(verify["$ref"].is_string(), "{verify}");
}

/// An id that breaks the id rules (too long, a control character, surrounding spaces) can never
/// name anything: every route answers 422 naming the path parameter, never 404 on some and 422
/// on others; and the description documents that 422.
async fn malformed_path_ids_are_422_on_every_route(app: TestApp) {
    seeded(&app).await;
    let long = "x".repeat(121);
    let (_, doc) = app.get_json(READER, "/openapi.json").await;
    for bad in [long.as_str(), "a%01b", "%20padded"] {
        for (path, template, method, field) in [
            (format!("/timelines/{bad}"), "/timelines/{id}", "get", "id"),
            (
                format!("/timelines/{bad}/org-chart"),
                "/timelines/{id}/org-chart",
                "get",
                "id",
            ),
            (
                format!("/timelines/{bad}/responsibilities"),
                "/timelines/{id}/responsibilities",
                "get",
                "id",
            ),
            (
                format!("/timelines/oslo/units/{bad}/history"),
                "/timelines/{id}/units/{unit}/history",
                "get",
                "unit",
            ),
            (
                format!("/timelines/oslo/services/{bad}/history"),
                "/timelines/{id}/services/{code}/history",
                "get",
                "code",
            ),
            (
                format!("/timelines/{bad}/decisions"),
                "/timelines/{id}/decisions",
                "get",
                "id",
            ),
            (
                format!("/timelines/{bad}/changes?from=2020-01-01&to=2021-01-01"),
                "/timelines/{id}/changes",
                "get",
                "id",
            ),
            (
                format!("/timelines/{bad}/change-feed"),
                "/timelines/{id}/change-feed",
                "get",
                "id",
            ),
            (
                format!("/timelines/{bad}/events"),
                "/timelines/{id}/events",
                "get",
                "id",
            ),
            (
                format!("/timelines/{bad}/verify"),
                "/timelines/{id}/verify",
                "get",
                "id",
            ),
        ] {
            let (status, ct, body) = raw_get(&app, &path).await;
            assert_problem(status, &ct, &body, 422, Some(field));
            assert!(
                doc["paths"][template][method]["responses"]["422"].is_object(),
                "{method} {template} does not document 422"
            );
        }
        for (path, template) in [
            (
                format!("/timelines/{bad}/commands"),
                "/timelines/{id}/commands",
            ),
            (format!("/timelines/{bad}/batch"), "/timelines/{id}/batch"),
            (format!("/timelines/{bad}/fork"), "/timelines/{id}/fork"),
        ] {
            let r = app
                .client
                .post(format!("{}{path}", app.base))
                .bearer_auth(ADMIN)
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            let (status, ct) = (r.status().as_u16(), content_type(&r));
            assert_problem(status, &ct, &r.text().await.expect("body"), 422, Some("id"));
            assert!(
                doc["paths"][template]["post"]["responses"]["422"].is_object(),
                "post {template} does not document 422"
            );
        }
    }
    // A well-formed id that names nothing is still 404.
    let (status, ct, body) = raw_get(&app, "/timelines/nobody/org-chart").await;
    assert_problem(status, &ct, &body, 404, None);
    let (status, ct, body) = raw_get(&app, "/timelines/oslo/units/nobody/history").await;
    assert_eq!(status, 404, "{ct} {body}");
}

/// Versions and positions are stored as signed 64-bit integers: a page after one beyond that
/// is 422 naming the parameter (it was an empty page whose `next` named a version that cannot
/// exist); the largest storable one is an empty page.
async fn paging_beyond_the_largest_stored_number_is_422(app: TestApp) {
    seeded(&app).await;
    for name in ["events?after_version", "change-feed?after_position"] {
        // The last is beyond u64 too: still "too large", not "not a number".
        for after in [
            "9223372036854775808",
            "18446744073709551615",
            "99999999999999999999",
        ] {
            let (status, ct, body) =
                raw_get(&app, &format!("/timelines/oslo/{name}={after}")).await;
            let field = name.split_once('?').unwrap().1;
            assert_problem(status, &ct, &body, 422, Some(field));
            assert!(body.contains("at most 9223372036854775807"), "{body}");
        }
        // The largest stored number is read; it is beyond this timeline's end, which is said.
        let (status, ct, body) =
            raw_get(&app, &format!("/timelines/oslo/{name}=9223372036854775807")).await;
        let field = name.split_once('?').unwrap().1;
        assert_problem(status, &ct, &body, 422, Some(field));
        assert!(!body.contains("at most"), "{body}");
    }
}

/// On SQLite every checkpoint of the global log is `0-<position>`: one with another
/// transaction part was not issued by this server, and reading after its position alone would
/// answer a question the client did not ask, so it is 422 naming `after`. PostgreSQL issues
/// checkpoints with a transaction part, and takes them.
async fn a_checkpoint_the_database_could_not_issue_is_422(app: TestApp) {
    seeded(&app).await;
    let (status, page) = app.get_json(AUDITOR, "/events?limit=1").await;
    assert_eq!(status, 200, "{page}");
    let issued = page["next"].as_str().expect("next").to_owned();
    let (tx, position) = issued.split_once('-').expect("<tx>-<position>");
    let (status, page) = app
        .get_json(AUDITOR, &format!("/events?after={issued}"))
        .await;
    assert_eq!(status, 200, "{page}");
    let other_tx: u64 = tx.parse::<u64>().unwrap() + 7;
    let far_tx: u64 = tx.parse::<u64>().unwrap() + 1_000_000_000_000;
    match app.app.db().backend() {
        omorg_e2e::Backend::Sqlite => {
            assert_eq!(tx, "0", "{issued}");
            let (status, ct, body) =
                raw_get(&app, &format!("/events?after={other_tx}-{position}")).await;
            assert_problem(status, &ct, &body, 422, Some("after"));
            assert!(body.contains("0-<position>"), "{body}");
            // Beyond the log's end (mistyped, or from another database): not "nothing new".
            let (status, ct, body) = raw_get(&app, "/events?after=0-999999").await;
            assert_problem(status, &ct, &body, 422, Some("after"));
            assert!(body.contains("beyond the end"), "{body}");
        }
        omorg_e2e::Backend::Postgres => {
            // A SQLite-style checkpoint: PostgreSQL never issues one (its transaction ids start
            // at 3), and it would read from the start, ignoring the position.
            // (Not the issued position: the first page is empty, its next 0-0, while other tests
            // on the server hold transactions open.)
            let (status, ct, body) = raw_get(&app, "/events?after=0-1").await;
            assert_problem(status, &ct, &body, 422, Some("after"));
            let (status, page) = app.get_json(AUDITOR, "/events?after=0-0&limit=1").await;
            assert_eq!(status, 200, "{page}");
            // Beyond the log's end: a transaction no event of it has.
            let (status, ct, body) =
                raw_get(&app, &format!("/events?after={far_tx}-{position}")).await;
            assert_problem(status, &ct, &body, 422, Some("after"));
            assert!(body.contains("beyond the end"), "{body}");
        }
    }
    // Cursors of one timeline beyond its end: 422 naming them; at its end, an empty page.
    // Said alike on both routes.
    for path in [
        "/timelines/oslo/events?after_version=99",
        "/timelines/oslo/replay?after_version=99",
    ] {
        let (_, _, body) = raw_get(&app, path).await;
        let last = version(&app, "oslo").await;
        assert!(
            body.contains(&format!("oslo has {last} events, not 99")),
            "{path}: {body}"
        );
    }
    for (path, field) in [
        ("/timelines/oslo/events?after_version=99", "after_version"),
        ("/timelines/oslo/replay?after_version=99", "after_version"),
        (
            "/timelines/oslo/change-feed?after_position=999999999",
            "after_position",
        ),
    ] {
        let (status, ct, body) = raw_get(&app, path).await;
        assert_problem(status, &ct, &body, 422, Some(field));
    }
    let last = version(&app, "oslo").await;
    for path in [
        format!("/timelines/oslo/events?after_version={last}"),
        format!("/timelines/oslo/replay?after_version={last}"),
    ] {
        let (status, page) = app.get_json(AUDITOR, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
    }
    // A malformed checkpoint stays a 400.
    let (status, ct, body) = raw_get(&app, "/events?after=x-1").await;
    assert_problem(status, &ct, &body, 400, None);
}

on_both_backends!(
    paging_beyond_the_largest_stored_number_is_422,
    a_checkpoint_the_database_could_not_issue_is_422,
    malformed_path_ids_are_422_on_every_route,
    nul_characters_are_422_not_500,
    dates_outside_years_1_to_9999_are_422,
    an_oversized_body_is_413,
    an_oversized_target_or_header_block_is_a_problem_document,
    malformed_paths_and_methods_are_problem_documents,
    a_batch_whose_50th_command_is_invalid_writes_nothing,
    concurrent_identical_commands_apply_once,
    openapi_tells_the_truth_about_media_types,
);

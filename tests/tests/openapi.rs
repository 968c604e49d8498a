//! The OpenAPI description tells the truth about commands: every kind of action the server
//! accepts is described with its fields (the domain's own types), the demo's real commands
//! validate against it, the server accepts the shape of every described action, and the shapes
//! it refuses are refused by the description too.

use omorg_e2e::{command, on_both_backends, TestApp, PLANNER, READER};
use serde_json::{json, Value};

/// A validator for `components.schemas.<name>` of the served description.
async fn validator(app: &TestApp, name: &str) -> jsonschema::Validator {
    let (status, doc) = app.get_json(READER, "/openapi.json").await;
    assert_eq!(status, 200);
    let root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("the description compiles as JSON Schema")
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{instance}\nis not valid: {errors:#?}");
}

/// One action of every kind the command endpoint accepts, on the units `seeded` creates.
fn one_of_each() -> Vec<Value> {
    vec![
        json!({"type": "EstablishUnit", "unit": "alna", "code": "030112", "name": "Bydel Alna", "kind": "district", "parent": "oslo", "areas": [{"code": "030112", "name": "Alna"}], "attributes": {"orgnr": "974778726"}}),
        json!({"type": "RenameUnit", "unit": "alna", "name": "Bydel Alna (ny)"}),
        json!({"type": "MoveUnit", "unit": "alna", "new_parent": "grorud"}),
        json!({"type": "RegisterService", "service": "home-care", "name": "Hjemmetjenester", "category": "helse"}),
        json!({"type": "AssignResponsibility", "service": "home-care", "unit": "alna", "areas": ["030112"]}),
        json!({"type": "CentraliseService", "service": "home-care", "agency": "helseetaten"}),
        json!({"type": "DecentraliseService", "service": "home-care"}),
        json!({"type": "TransferResponsibility", "service": "home-care", "from": "alna", "to": "helseetaten"}),
        json!({"type": "WithdrawResponsibility", "service": "home-care", "unit": "helseetaten", "areas": ["030112"]}),
        json!({"type": "OpenServicePoint", "point": "alna-torg", "name": "Alna innbyggertorg", "unit": "alna", "area": "030112", "services": ["home-care"]}),
        json!({"type": "SetServicePointServices", "point": "alna-torg", "services": []}),
        json!({"type": "TransferServicePoint", "point": "alna-torg", "from": "alna", "to": "grorud"}),
        json!({"type": "CloseServicePoint", "point": "alna-torg"}),
        json!({"type": "TransferArea", "area": "030112", "from": "alna", "to": "stovner"}),
        json!({"type": "SplitUnit", "source": "stovner", "parts": [
            {"target": {"type": "source"}, "areas": ["030111"]},
            {"target": {"type": "new", "unit": "alna-2", "name": "Bydel Alna", "kind": "district", "parent": "oslo"}, "areas": ["030112"]}
        ]}),
        json!({"type": "MergeUnits", "sources": ["stovner", "alna-2"], "successor": {"type": "new", "unit": "stovner-alna", "name": "Bydel Stovner og Alna", "kind": "district", "parent": "oslo"}}),
        json!({"type": "MergeUnits", "sources": ["stovner-alna", "grorud"], "successor": {"type": "existing", "unit": "grorud"}}),
        json!({"type": "RetireService", "service": "home-care"}),
        json!({"type": "DissolveUnit", "unit": "helseetaten"}),
        json!({"type": "RevokeDecision", "case_number": "case/a1", "command_ids": ["a1"]}),
    ]
}

async fn seeded(app: &TestApp) {
    app.create_timeline("oslo").await;
    for (i, action) in [
        json!({"type": "EstablishUnit", "unit": "oslo", "name": "Oslo kommune", "kind": "municipality"}),
        json!({"type": "EstablishUnit", "unit": "grorud", "name": "Bydel Grorud", "kind": "district", "parent": "oslo", "areas": [{"code": "030110", "name": "Grorud"}]}),
        json!({"type": "EstablishUnit", "unit": "stovner", "name": "Bydel Stovner", "kind": "district", "parent": "oslo", "areas": [{"code": "030111", "name": "Stovner"}]}),
        json!({"type": "EstablishUnit", "unit": "helseetaten", "name": "Helseetaten", "kind": "central_agency", "parent": "oslo"}),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = app
            .command("oslo", &command(&format!("seed-{i}"), "2020-01-01", action))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Every described action kind is one the server takes: one sample of each validates against
/// the description and is accepted, in order, on a small Oslo.
async fn every_action_kind_is_described_and_accepted(app: TestApp) {
    seeded(&app).await;
    let v = validator(&app, "Command").await;
    let samples = one_of_each();
    let (_, doc) = app.get_json(READER, "/openapi.json").await;
    let described: std::collections::BTreeSet<String> = doc["components"]["schemas"]
        ["CommandAction"]["oneOf"]
        .as_array()
        .expect("CommandAction is a oneOf")
        .iter()
        .map(|variant| {
            variant["allOf"][1]["properties"]["type"]["enum"][0]
                .as_str()
                .expect("each variant names its type")
                .to_owned()
        })
        .collect();
    let sampled: std::collections::BTreeSet<String> = samples
        .iter()
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(described, sampled, "one sample per described action kind");
    for (i, action) in samples.into_iter().enumerate() {
        let body = command(&format!("a{i}"), "2021-01-01", action);
        assert_valid(&v, &body);
        let (status, answer) = app.command("oslo", &body).await;
        assert_eq!(status, 200, "{body}\nanswered {status}: {answer}");
    }
}

/// The demo's real commands (Oslo's districts, the Asker merger) fit the description.
async fn the_demo_commands_fit_the_description(app: TestApp) {
    let v = validator(&app, "Command").await;
    let commands = omorg_api::demo::oslo_commands()
        .unwrap()
        .into_iter()
        .chain(omorg_api::demo::asker_commands().unwrap());
    let mut n = 0;
    for c in commands {
        let json = serde_json::to_value(&c).unwrap();
        if matches!(json["action"]["type"].as_str(), Some("CreateTimeline")) {
            continue; // timelines are started with POST /timelines
        }
        assert_valid(&v, &json);
        n += 1;
    }
    assert!(n > 50, "only {n} demo commands");
}

/// Shapes the server refuses are refused by the description too.
async fn refused_shapes_are_not_described(app: TestApp) {
    seeded(&app).await;
    let v = validator(&app, "Command").await;
    let bad = [
        json!({"unit": "oslo", "name": "no type"}),
        json!({"type": "PaintUnit", "unit": "oslo"}),
        json!({"type": "CreateTimeline", "name": "not here"}),
        json!({"type": "RenameUnit"}),
        json!({"type": "RenameUnit", "unit": "bad\u{1}id", "name": "x"}),
        json!({"type": "RenameUnit", "unit": " padded", "name": "x"}),
        json!({"type": "RenameUnit", "unit": "x".repeat(121), "name": "x"}),
        json!({"type": "EstablishUnit", "unit": "u", "name": "U", "kind": "kingdom"}),
    ];
    for (i, action) in bad.into_iter().enumerate() {
        let body = command(&format!("bad-{i}"), "2021-01-01", action);
        assert!(!v.is_valid(&body), "described but refused: {body}");
        let (status, answer) = app.command("oslo", &body).await;
        assert!(
            status == 400 || status == 422,
            "{body}\nanswered {status}: {answer}"
        );
    }
    // The pattern's length limit is the domain's: 120 characters pass.
    let long = command(
        "long",
        "2021-01-01",
        json!({"type": "RenameUnit", "unit": "x".repeat(120), "name": "x"}),
    );
    assert_valid(&v, &long);
    let (status, _) = app.post(PLANNER, "/timelines/oslo/commands", &long).await;
    assert_eq!(
        status, 409,
        "a well-formed id of an unknown unit is a rule refusal"
    );
}

/// The statuses the server answers to unknown and malformed ids are the ones the description
/// lists for the route.
async fn error_statuses_are_described(app: TestApp) {
    seeded(&app).await;
    let (_, doc) = app.get_json(READER, "/openapi.json").await;
    for (template, path, expected) in [
        ("/timelines/{id}", "/timelines/nope", 404),
        (
            "/timelines/{id}/org-chart",
            "/timelines/nope/org-chart",
            404,
        ),
        (
            "/timelines/{id}/units/{unit}/history",
            "/timelines/oslo/units/nope/history",
            404,
        ),
        (
            "/timelines/{id}/units/{unit}/history",
            "/timelines/oslo/units/%20x/history",
            422,
        ),
        (
            "/timelines/{id}/services/{code}/history",
            "/timelines/oslo/services/nope/history",
            404,
        ),
        (
            "/timelines/{id}/org-chart",
            "/timelines/oslo/org-chart?as_of=yesterday",
            422,
        ),
    ] {
        let (status, body) = app.get_json(READER, path).await;
        assert_eq!(status, expected, "{path}: {body}");
        let documented = &doc["paths"][template]["get"]["responses"][expected.to_string()];
        assert!(
            documented.is_object(),
            "{template} answers {expected} ({path}) but does not describe it"
        );
    }
}

on_both_backends!(
    every_action_kind_is_described_and_accepted,
    the_demo_commands_fit_the_description,
    refused_shapes_are_not_described,
    error_statuses_are_described,
);

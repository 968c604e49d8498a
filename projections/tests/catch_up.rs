//! The projector reads events as [`CatchUpEvent`]s: payload text decoded straight into the event
//! type, where audits read [`RecordedEvent`]s through a `serde_json::Value`. Both readings must
//! give the same event, for any event the domain produces, and an old event version must still
//! go through its upcaster.

use chrono::Utc;
use omorg_domain::testing::{build, ops};
use omorg_domain::TimelineEvent;
use omorg_store::{CatchUpEvent, RecordedEvent, StoreError, Upcaster, Upcasters};
use proptest::prelude::*;
use serde_json::{json, Value};

fn catch_up(version: u64, event_version: &str, payload: String) -> CatchUpEvent {
    CatchUpEvent {
        checkpoint: format!("1-{version}").parse().unwrap(),
        position: version as i64,
        stream_id: "t".into(),
        stream_version: version,
        event_type: "TimelineEvent".into(),
        event_version: event_version.into(),
        payload,
        recorded_at: Utc::now(),
    }
}

fn recorded(version: u64, payload: Value) -> RecordedEvent {
    RecordedEvent {
        checkpoint: format!("1-{version}").parse().unwrap(),
        position: version as i64,
        stream_id: "t".into(),
        stream_version: version,
        event_type: "TimelineEvent".into(),
        event_version: "1".into(),
        payload,
        metadata: json!({}),
        recorded_at: Utc::now(),
        prev_hash: String::new(),
        hash: String::new(),
        command_events: Some(1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn both_readings_give_the_event(ops in ops()) {
        let (_, events) = build(&ops)?;
        let none = Upcasters::new();
        for (i, event) in events.iter().enumerate() {
            let v = i as u64 + 1;
            // PostgreSQL gives jsonb back with its own key order and spacing: decode that form
            // too, not only serde's.
            let value = serde_json::to_value(event).unwrap();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let lean: TimelineEvent = catch_up(v, "1", serde_json::to_string(event).unwrap())
                .decode(&none)
                .unwrap();
            let spaced: TimelineEvent = catch_up(v, "1", pretty).decode(&none).unwrap();
            let full: TimelineEvent = recorded(v, value).decode(&none).unwrap();
            prop_assert_eq!(&lean, event);
            prop_assert_eq!(&spaced, event);
            prop_assert_eq!(&full, event);
        }
    }
}

#[test]
fn an_old_version_goes_through_its_upcaster() {
    // A `Renamed` event of schema version 0 called the field `title`; version 1 calls it `name`.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Renamed {
        name: String,
    }
    let upcasters = Upcasters::new().with(Upcaster::new("TimelineEvent", "0", "1", |mut v| {
        if let Some(title) = v.get_mut("title").map(Value::take) {
            v["name"] = title;
        }
        v
    }));
    let old = catch_up(1, "0", r#"{"title": "Bydel Alna"}"#.into());
    assert_eq!(
        old.decode::<Renamed>(&upcasters).unwrap(),
        Renamed {
            name: "Bydel Alna".into()
        }
    );
    // Without the upcaster the old payload does not decode, and the error names the event.
    let err = old.decode::<Renamed>(&Upcasters::new()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Deserialization { stream, version: 1, event_version, .. }
            if stream == "t" && event_version == "0"),
        "{err:?}"
    );
}

#[test]
fn a_payload_that_is_not_json_is_a_deserialization_error() {
    let bad = catch_up(7, "1", "{not json".into());
    let err = bad.decode::<TimelineEvent>(&Upcasters::new()).unwrap_err();
    assert!(
        matches!(err, StoreError::Deserialization { version: 7, .. }),
        "{err:?}"
    );
}

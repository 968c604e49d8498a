//! The projector's fast path (apply in place, compare only touched entities) and its slow path
//! (replay, compare everything) must believe the same history after every event of any history.

use omorg_domain::testing::{build, ops};
use omorg_domain::{Timeline, TimelineEvent};
use omorg_projections::advance::Projected;
use omorg_projections::history::{Entities, HistoryDiff, SegmentChange};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn apply_all(events: &[TimelineEvent]) -> Timeline {
    let mut t = Timeline::default();
    for e in events {
        <Timeline as cqrs_es::Aggregate>::apply(&mut t, e.clone());
    }
    t
}

/// Segment changes as a set of (kind, key, from, opened?) strings, to check both paths report
/// the same row changes.
fn rows(diff: &HistoryDiff) -> BTreeSet<String> {
    fn add<K: std::fmt::Debug, V: std::fmt::Debug>(
        out: &mut BTreeSet<String>,
        kind: &str,
        cs: &[SegmentChange<K, V>],
    ) {
        for c in cs {
            out.insert(match c {
                SegmentChange::Closed { key, from } => format!("{kind} close {key:?} {from}"),
                SegmentChange::Opened { key, segment } => {
                    format!("{kind} open {key:?} {segment:?}")
                }
            });
        }
    }
    let mut out = BTreeSet::new();
    add(&mut out, "unit", &diff.units);
    add(&mut out, "area", &diff.areas);
    add(&mut out, "service", &diff.services);
    add(&mut out, "resp", &diff.responsibilities);
    add(&mut out, "point", &diff.points);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_full_recomputation(ops in ops()) {
        let (_, events) = build(&ops)?;
        let mut incremental = Projected::new(Timeline::default());
        for (i, e) in events.iter().enumerate() {
            let before = incremental.histories.clone();
            let diff = incremental.advance(e.clone());
            let full = Projected::new(apply_all(&events[..=i]));
            prop_assert_eq!(&incremental.histories, &full.histories, "after event {} ({})", i, e.change.type_name());
            prop_assert_eq!(&incremental.head, &full.head, "head after event {}", i);
            // The diff reported is exactly the difference between the two believed histories.
            let mut slow = Projected { histories: before, ..Projected::new(Timeline::default()) };
            let tail: Vec<_> = full.timeline.states_on_or_after(chrono::NaiveDate::MIN).iter().map(|(d, s)| (*d, Entities::of(s))).collect();
            let expected = slow.histories.rewrite(chrono::NaiveDate::MIN, &tail);
            prop_assert_eq!(rows(&diff), rows(&expected), "diff of event {}", i);
        }
    }
}

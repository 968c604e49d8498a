//! Effective histories as segments, and how an event rewrites them. Pure: no IO.
//!
//! For every entity (a unit, an area, a service, a (service, area) responsibility, a service
//! point) the projector keeps the history believed now: a list of segments `[from, to)` with the
//! entity's value. These mirror the read-model rows whose `recorded_to` is open. An event that
//! takes effect on date D can only change the history from D on, so the projector recomputes the
//! states from D, rebuilds each entity's tail, and reports which segments disappeared (their rows
//! get `recorded_to`) and which appeared (new rows). Segments left untouched keep their rows, so a
//! query "as known on R" sees exactly what was believed on R.

use chrono::NaiveDate;
use omorg_domain::{AreaCode, OrgState, ServiceCode, ServicePointId, UnitId, UnitKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A period `[from, to)` during which an entity had one value; `to = None` means "still".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment<V> {
    /// First effective day.
    pub from: NaiveDate,
    /// First effective day it no longer holds.
    pub to: Option<NaiveDate>,
    /// The value during the period.
    pub value: V,
}

/// What a unit looks like during a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitValue {
    /// Official code.
    pub code: Option<String>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: UnitKind,
    /// Parent unit.
    pub parent: Option<UnitId>,
    /// Areas held, sorted.
    pub areas: Vec<AreaCode>,
    /// Free attributes.
    pub attributes: BTreeMap<String, String>,
}

/// What an area looks like during a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaValue {
    /// Name.
    pub name: String,
    /// Holding unit.
    pub holder: Option<UnitId>,
    /// Area it was carved from.
    pub carved_from: Option<AreaCode>,
}

/// What a service looks like during a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceValue {
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
}

/// What a service point looks like during a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointValue {
    /// Name.
    pub name: String,
    /// Running unit.
    pub unit: UnitId,
    /// Area it is in.
    pub area: Option<AreaCode>,
    /// Services offered, sorted.
    pub services: Vec<ServiceCode>,
}

/// Every entity that exists on one date, keyed, with its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entities {
    /// Live units.
    pub units: BTreeMap<UnitId, UnitValue>,
    /// Active areas.
    pub areas: BTreeMap<AreaCode, AreaValue>,
    /// Active services.
    pub services: BTreeMap<ServiceCode, ServiceValue>,
    /// Responsibilities.
    pub responsibilities: BTreeMap<(ServiceCode, AreaCode), UnitId>,
    /// Open service points.
    pub points: BTreeMap<ServicePointId, PointValue>,
}

impl Entities {
    /// Extracts the entities of a state.
    pub fn of(state: &OrgState) -> Self {
        let mut held: BTreeMap<&UnitId, Vec<AreaCode>> = BTreeMap::new();
        for a in state.areas.values().filter(|a| a.is_active()) {
            if let Some(h) = &a.holder {
                held.entry(h).or_default().push(a.code.clone());
            }
        }
        Entities {
            units: state
                .live_units()
                .map(|u| {
                    (
                        u.id.clone(),
                        UnitValue {
                            code: u.code.clone(),
                            name: u.name.clone(),
                            kind: u.kind,
                            parent: u.parent.clone(),
                            areas: held.get(&u.id).cloned().unwrap_or_default(),
                            attributes: u.attributes.clone(),
                        },
                    )
                })
                .collect(),
            areas: state
                .areas
                .values()
                .filter(|a| a.is_active())
                .map(|a| {
                    (
                        a.code.clone(),
                        AreaValue {
                            name: a.name.clone(),
                            holder: a.holder.clone(),
                            carved_from: a.carved_from.clone(),
                        },
                    )
                })
                .collect(),
            services: state
                .services
                .values()
                .filter(|s| s.is_active())
                .map(|s| {
                    (
                        s.code.clone(),
                        ServiceValue {
                            name: s.name.clone(),
                            category: s.category.clone(),
                        },
                    )
                })
                .collect(),
            responsibilities: state
                .responsibility_rows()
                .map(|(s, a, u)| ((s.clone(), a.clone()), u.clone()))
                .collect(),
            points: state
                .service_points
                .values()
                .filter(|p| p.is_open())
                .map(|p| {
                    (
                        p.id.clone(),
                        PointValue {
                            name: p.name.clone(),
                            unit: p.unit.clone(),
                            area: p.area.clone(),
                            services: p.services.iter().cloned().collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// The value of one unit in a state (`None` unless live).
pub fn unit_value(s: &OrgState, id: &UnitId) -> Option<UnitValue> {
    let u = s.units.get(id).filter(|u| u.is_live())?;
    Some(UnitValue {
        code: u.code.clone(),
        name: u.name.clone(),
        kind: u.kind,
        parent: u.parent.clone(),
        areas: s.areas_of(id),
        attributes: u.attributes.clone(),
    })
}

/// The value of one area in a state (`None` unless active).
pub fn area_value(s: &OrgState, code: &AreaCode) -> Option<AreaValue> {
    let a = s.areas.get(code).filter(|a| a.is_active())?;
    Some(AreaValue {
        name: a.name.clone(),
        holder: a.holder.clone(),
        carved_from: a.carved_from.clone(),
    })
}

/// The value of one service in a state (`None` unless active).
pub fn service_value(s: &OrgState, code: &ServiceCode) -> Option<ServiceValue> {
    let x = s.services.get(code).filter(|x| x.is_active())?;
    Some(ServiceValue {
        name: x.name.clone(),
        category: x.category.clone(),
    })
}

/// The value of one service point in a state (`None` unless open).
pub fn point_value(s: &OrgState, id: &ServicePointId) -> Option<PointValue> {
    let p = s.service_points.get(id).filter(|p| p.is_open())?;
    Some(PointValue {
        name: p.name.clone(),
        unit: p.unit.clone(),
        area: p.area.clone(),
        services: p.services.iter().cloned().collect(),
    })
}

/// A change to the believed history of one entity kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentChange<K, V> {
    /// The segment of `key` starting `from` is no longer believed (its row gets `recorded_to`).
    Closed {
        /// The entity.
        key: K,
        /// The segment's start, which identifies its open row.
        from: NaiveDate,
    },
    /// A new segment is believed (a new row).
    Opened {
        /// The entity.
        key: K,
        /// The segment.
        segment: Segment<V>,
    },
}

/// The believed histories of one entity kind.
pub type History<K, V> = BTreeMap<K, Vec<Segment<V>>>;

/// Rewrites `history` from `d` on with the values in `tail` (dates ascending, the first being
/// `d`; each value holds until the next date), returning the segment changes.
pub fn rewrite<K, V>(
    history: &mut History<K, V>,
    d: NaiveDate,
    tail: &[(NaiveDate, &BTreeMap<K, V>)],
) -> Vec<SegmentChange<K, V>>
where
    K: Ord + Clone,
    V: PartialEq + Clone,
{
    let mut keys: BTreeSet<K> = BTreeSet::new();
    for (k, segs) in history.iter() {
        if segs.last().is_some_and(|s| s.to.is_none_or(|t| t > d)) {
            keys.insert(k.clone());
        }
    }
    for (_, m) in tail {
        keys.extend(m.keys().cloned());
    }
    let mut out = Vec::new();
    for key in keys {
        let values: Vec<(NaiveDate, Option<&V>)> =
            tail.iter().map(|(date, m)| (*date, m.get(&key))).collect();
        rewrite_one(history, key, d, &values, &mut out);
    }
    out
}

/// Rewrites only `keys`, each with the single value `value_of` gives it from `d` on: the fast
/// path for a change that takes effect after everything else.
pub fn rewrite_keys<K, V>(
    history: &mut History<K, V>,
    d: NaiveDate,
    keys: impl IntoIterator<Item = K>,
    value_of: impl Fn(&K) -> Option<V>,
) -> Vec<SegmentChange<K, V>>
where
    K: Ord + Clone,
    V: PartialEq + Clone,
{
    let mut out = Vec::new();
    for key in keys {
        let v = value_of(&key);
        rewrite_one(history, key, d, &[(d, v.as_ref())], &mut out);
    }
    out
}

/// Rewrites one key's history from `d` on with `values` (see [`rewrite`]).
///
/// A key's segments are sorted by `from` and never overlap, so those that begin before `d` stay
/// as they are, but for the last of them, which may run past `d` and is cut there. Only the rest
/// is rebuilt and compared: a change costs what it touches, not the length of the key's history
/// (copying and comparing the whole history made a batch of thousands of changes to one unit
/// cubic in their number).
fn rewrite_one<K, V>(
    history: &mut History<K, V>,
    key: K,
    d: NaiveDate,
    values: &[(NaiveDate, Option<&V>)],
    out: &mut Vec<SegmentChange<K, V>>,
) where
    K: Ord + Clone,
    V: PartialEq + Clone,
{
    let old = history.get(&key).map(Vec::as_slice).unwrap_or_default();
    let before_d = old.partition_point(|s| s.from < d);
    // The first segment that may change: the last one beginning before `d`, if any.
    let first = before_d.saturating_sub(1);
    let mut tail: Vec<Segment<V>> = Vec::new();
    if let Some(last) = before_d.checked_sub(1).and_then(|i| old.get(i)) {
        let mut kept = last.clone();
        if kept.to.is_none_or(|t| t > d) {
            kept.to = Some(d);
        }
        tail.push(kept);
    }
    for (i, (date, v)) in values.iter().enumerate() {
        let until = values.get(i + 1).map(|(n, _)| *n);
        if let Some(v) = v {
            push_coalesced(
                &mut tail,
                Segment {
                    from: *date,
                    to: until,
                    value: (*v).clone(),
                },
            );
        }
    }
    let old_tail = old.get(first..).unwrap_or_default();
    if tail.as_slice() == old_tail {
        return;
    }
    // Both lists are sorted by `from`, which is unique within each.
    let holds = |list: &[Segment<V>], s: &Segment<V>| {
        list.binary_search_by(|x| x.from.cmp(&s.from))
            .is_ok_and(|i| list[i] == *s)
    };
    for s in old_tail {
        if !holds(&tail, s) {
            out.push(SegmentChange::Closed {
                key: key.clone(),
                from: s.from,
            });
        }
    }
    for s in &tail {
        if !holds(old_tail, s) {
            out.push(SegmentChange::Opened {
                key: key.clone(),
                segment: s.clone(),
            });
        }
    }
    match history.get_mut(&key) {
        Some(list) => {
            list.truncate(first);
            list.extend(tail);
            if list.is_empty() {
                history.remove(&key);
            }
        }
        None if !tail.is_empty() => {
            history.insert(key, tail);
        }
        None => {}
    }
}

/// Appends a segment, merging it into the previous one when it continues it with the same value.
fn push_coalesced<V: PartialEq>(list: &mut Vec<Segment<V>>, seg: Segment<V>) {
    if let Some(last) = list.last_mut() {
        if last.to == Some(seg.from) && last.value == seg.value {
            last.to = seg.to;
            return;
        }
    }
    list.push(seg);
}

/// The believed histories of every entity kind of one timeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histories {
    /// Units.
    pub units: History<UnitId, UnitValue>,
    /// Areas.
    pub areas: History<AreaCode, AreaValue>,
    /// Services.
    pub services: History<ServiceCode, ServiceValue>,
    /// Responsibilities.
    pub responsibilities: History<(ServiceCode, AreaCode), UnitId>,
    /// Service points.
    pub points: History<ServicePointId, PointValue>,
}

/// Segment changes of every kind produced by one rewrite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryDiff {
    /// Units.
    pub units: Vec<SegmentChange<UnitId, UnitValue>>,
    /// Areas.
    pub areas: Vec<SegmentChange<AreaCode, AreaValue>>,
    /// Services.
    pub services: Vec<SegmentChange<ServiceCode, ServiceValue>>,
    /// Responsibilities.
    pub responsibilities: Vec<SegmentChange<(ServiceCode, AreaCode), UnitId>>,
    /// Service points.
    pub points: Vec<SegmentChange<ServicePointId, PointValue>>,
}

impl HistoryDiff {
    /// Number of segment changes.
    pub fn len(&self) -> usize {
        self.units.len()
            + self.areas.len()
            + self.services.len()
            + self.responsibilities.len()
            + self.points.len()
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Histories {
    /// Rewrites every kind from `d` on with the states in `tail` (see [`rewrite`]).
    pub fn rewrite(&mut self, d: NaiveDate, tail: &[(NaiveDate, Entities)]) -> HistoryDiff {
        macro_rules! kind {
            ($field:ident) => {{
                let t: Vec<_> = tail.iter().map(|(date, e)| (*date, &e.$field)).collect();
                rewrite(&mut self.$field, d, &t)
            }};
        }
        HistoryDiff {
            units: kind!(units),
            areas: kind!(areas),
            services: kind!(services),
            responsibilities: kind!(responsibilities),
            points: kind!(points),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(day as u64)
    }

    /// The value of `key` on each day 0..40, read off a history.
    fn timeline_of(h: &History<u8, u8>, key: u8) -> Vec<Option<u8>> {
        (0..40)
            .map(|day| {
                h.get(&key).and_then(|segs| {
                    segs.iter()
                        .find(|s| s.from <= d(day) && s.to.is_none_or(|t| t > d(day)))
                        .map(|s| s.value)
                })
            })
            .collect()
    }

    /// A long history rewritten at its end, step by step (a batch of renames of one unit): each
    /// step closes only the open segment and opens its cut copy and the new one; everything
    /// before stays, and the whole history reads as written.
    #[test]
    fn a_long_history_rewritten_at_its_end_keeps_its_past() {
        let mut h: History<u8, u32> = BTreeMap::new();
        for day in 0..2000u32 {
            let date = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Days::new(day as u64);
            let changes = rewrite_keys(&mut h, date, [0u8], |_| Some(day));
            let expected = if day == 0 { 1 } else { 3 };
            assert_eq!(changes.len(), expected, "day {day}: {changes:?}");
            if day > 0 {
                assert!(matches!(&changes[0], SegmentChange::Closed { from, .. }
                    if *from + chrono::Days::new(1) == date));
            }
        }
        let segments = &h[&0];
        assert_eq!(segments.len(), 2000);
        for (i, s) in segments.iter().enumerate() {
            assert_eq!(s.value, i as u32);
            assert_eq!(s.to, segments.get(i + 1).map(|n| n.from));
        }
    }

    proptest! {
        /// After any sequence of rewrites the history answers each day with the value of the last
        /// rewrite covering it; segments never overlap and adjacent equal segments are merged; and
        /// replaying the reported changes on the old segment set gives the new one.
        #[test]
        fn rewrites_keep_a_faithful_history(
            steps in proptest::collection::vec(
                (0u32..30, proptest::collection::vec((0u32..10, proptest::collection::btree_map(0u8..3, 0u8..3, 0..3)), 0..3)),
                1..12,
            )
        ) {
            let mut h: History<u8, u8> = BTreeMap::new();
            let mut truth: BTreeMap<u8, Vec<Option<u8>>> = BTreeMap::new();
            for (start, later) in steps {
                let mut dates: Vec<(NaiveDate, BTreeMap<u8, u8>)> = vec![(d(start), BTreeMap::new())];
                let mut day = start;
                for (gap, m) in later {
                    if let Some(last) = dates.last_mut() {
                        if gap == 0 { last.1 = m; continue; }
                    }
                    day += gap;
                    dates.push((d(day), m));
                }
                if let Some(first) = dates.first_mut() {
                    if first.1.is_empty() { first.1.insert(0, start as u8 % 3); }
                }
                let tail: Vec<_> = dates.iter().map(|(x, m)| (*x, m)).collect();
                let before = h.clone();
                let changes = rewrite(&mut h, d(start), &tail);
                // Replaying the changes on the old rows gives the new rows.
                let mut rows: BTreeSet<(u8, NaiveDate, Option<NaiveDate>, u8)> = before
                    .iter()
                    .flat_map(|(k, ss)| ss.iter().map(move |s| (*k, s.from, s.to, s.value)))
                    .collect();
                for c in &changes {
                    match c {
                        SegmentChange::Closed { key, from } => {
                            let row = rows.iter().find(|r| r.0 == *key && r.1 == *from).cloned();
                            prop_assert!(row.is_some(), "closed a segment that was not open");
                            if let Some(r) = row { rows.remove(&r); }
                        }
                        SegmentChange::Opened { key, segment } => {
                            rows.insert((*key, segment.from, segment.to, segment.value));
                        }
                    }
                }
                let expected: BTreeSet<_> = h
                    .iter()
                    .flat_map(|(k, ss)| ss.iter().map(move |s| (*k, s.from, s.to, s.value)))
                    .collect();
                prop_assert_eq!(rows, expected);
                // The truth, day by day.
                for key in 0u8..3 {
                    let t = truth.entry(key).or_insert_with(|| vec![None; 40]);
                    for (day, slot) in t.iter_mut().enumerate() {
                        let day = day as u32;
                        if d(day) < d(start) { continue; }
                        let idx = dates.iter().rposition(|(x, _)| *x <= d(day));
                        *slot = idx.and_then(|i| dates[i].1.get(&key).copied());
                    }
                    prop_assert_eq!(&timeline_of(&h, key), &*t);
                }
                for segs in h.values() {
                    for w in segs.windows(2) {
                        prop_assert!(w[0].to.is_some_and(|t| t <= w[1].from), "overlap");
                        prop_assert!(!(w[0].to == Some(w[1].from) && w[0].value == w[1].value), "not coalesced");
                    }
                }
            }
        }
    }
}

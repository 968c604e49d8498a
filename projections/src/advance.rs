//! One timeline's projection in memory, and how each event advances it. Pure: no IO.
//!
//! [`Projected::new`] computes the believed history from scratch (a replay with a snapshot of
//! every entity on every change date): simple and obviously right, used when a timeline is first
//! seen. [`Projected::advance`] takes one event and returns the segment changes to write. An event
//! that takes effect on or after every change already in force (the usual case) is applied to the
//! head state in place and only the entities it can touch are compared ([`Touched`]); anything
//! else (an earlier effective date, a revocation, a fork) rewrites history from the first date it
//! can change, from a replay. A property test holds the two paths to the same result.

use crate::history::{
    area_value, point_value, rewrite_keys, service_value, unit_value, Entities, Histories,
    HistoryDiff,
};
use crate::touched::Touched;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use omorg_domain::{Change, OrgState, Timeline, TimelineEvent};

/// What the projector remembers about one timeline.
#[derive(Debug, Clone)]
pub struct Projected {
    /// The aggregate, with every event projected so far.
    pub timeline: Timeline,
    /// The state after every change in force.
    pub head: OrgState,
    /// The latest effective date in force.
    pub last_date: Option<NaiveDate>,
    /// The believed effective histories (mirroring the open rows).
    pub histories: Histories,
}

impl Projected {
    /// The projection of `timeline`, computed from scratch.
    pub fn new(timeline: Timeline) -> Self {
        let mut p = Projected {
            timeline,
            head: OrgState::default(),
            last_date: None,
            histories: Histories::default(),
        };
        p.recompute_from(NaiveDate::MIN);
        p
    }

    /// Rewrites history from `d` on from a replay, and resets the head.
    fn recompute_from(&mut self, d: NaiveDate) -> HistoryDiff {
        let states = self.timeline.states_on_or_after(d);
        let tail: Vec<(NaiveDate, Entities)> = states
            .iter()
            .map(|(date, s)| (*date, Entities::of(s)))
            .collect();
        self.last_date = self.timeline.change_dates().last().copied();
        if let Some((_, last)) = states.into_iter().last() {
            self.head = last;
        }
        self.histories.rewrite(d, &tail)
    }

    /// Applies one event; returns how the believed history changed.
    pub fn advance(&mut self, event: TimelineEvent) -> HistoryDiff {
        let d = event.context.effective_from;
        let fast = event.change.is_org_change() && self.last_date.is_none_or(|l| d >= l);
        if fast {
            let mut touched = Touched::before(&event.change, &self.head);
            let applied = self.head.apply_change(d, &event.change);
            self.timeline.apply(event);
            if applied.is_err() {
                // Stored events were valid when recorded; should a rule have changed since,
                // the replay decides (it skips the change), as `Timeline::state_at` does.
                return self.recompute_from(d);
            }
            self.last_date = Some(d);
            touched.after(&self.head);
            let (h, s) = (&mut self.histories, &self.head);
            return HistoryDiff {
                units: rewrite_keys(&mut h.units, d, touched.units, |k| unit_value(s, k)),
                areas: rewrite_keys(&mut h.areas, d, touched.areas, |k| area_value(s, k)),
                services: rewrite_keys(&mut h.services, d, touched.services, |k| {
                    service_value(s, k)
                }),
                responsibilities: rewrite_keys(
                    &mut h.responsibilities,
                    d,
                    touched.pairs,
                    |(svc, area)| s.responsible(svc, area).cloned(),
                ),
                points: rewrite_keys(&mut h.points, d, touched.points, |k| point_value(s, k)),
            };
        }
        let from = match &event.change {
            // Nothing in the organisation changes.
            Change::TimelineCreated(_) | Change::ScenarioAdopted(_) => None,
            Change::TimelineForked(_) => Some(NaiveDate::MIN),
            Change::DecisionRevoked(r) => self
                .timeline
                .records()
                .iter()
                .filter(|x| r.revoked.contains(&x.event.context.command_id))
                .map(|x| x.event.context.effective_from)
                .min(),
            _ => Some(d),
        };
        self.timeline.apply(event);
        match from {
            None => HistoryDiff::default(),
            Some(d) => self.recompute_from(d),
        }
    }
}

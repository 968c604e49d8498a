//! Which entities a change can touch, so that an event taking effect after everything else is
//! projected by looking at those entities only, not at the whole organisation.
//!
//! The sets are a superset: an entity listed but unchanged costs one comparison and writes
//! nothing. Missing one would be a bug, which is why a property test compares this fast path with
//! a full recomputation on random histories (`tests/fast_path.rs`).

use omorg_domain::*;
use std::collections::BTreeSet;

/// Entity keys a change may have altered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Units.
    pub units: BTreeSet<UnitId>,
    /// Areas.
    pub areas: BTreeSet<AreaCode>,
    /// Services.
    pub services: BTreeSet<ServiceCode>,
    /// Every pair of these services.
    pub pair_services: BTreeSet<ServiceCode>,
    /// These pairs.
    pub pairs: BTreeSet<(ServiceCode, AreaCode)>,
    /// Service points.
    pub points: BTreeSet<ServicePointId>,
    /// A merge, split or area transfer: children, areas, responsibilities and points of the
    /// units involved move, so those are looked up (a scan of the state, worth it for these
    /// rare changes only).
    structural: bool,
}

impl Touched {
    /// What `change` can touch, read off the state *before* it is applied; call
    /// [`Touched::after`] with the state after it too.
    pub fn before(change: &Change, s: &OrgState) -> Self {
        let mut t = Touched::default();
        t.mentioned(change);
        t.around(s);
        t
    }

    /// Adds what can only be seen in the state after the change (pairs that appeared).
    pub fn after(&mut self, s: &OrgState) {
        self.around(s);
    }

    /// Everything named in the change itself.
    fn mentioned(&mut self, change: &Change) {
        let unit_def = |t: &mut Touched, d: &UnitDef| {
            t.units.insert(d.unit.clone());
            t.areas.extend(d.areas.iter().map(|a| a.code.clone()));
        };
        match change {
            Change::TimelineCreated(_)
            | Change::TimelineForked(_)
            | Change::DecisionRevoked(_)
            | Change::ScenarioAdopted(_) => {}
            Change::UnitEstablished(d) => unit_def(self, d),
            Change::UnitRenamed(r) => {
                self.units.insert(r.unit.clone());
            }
            Change::UnitMoved(m) => {
                self.units.insert(m.unit.clone());
            }
            Change::UnitDissolved(d) => {
                self.units.insert(d.unit.clone());
            }
            Change::UnitsMerged(m) => {
                self.structural = true;
                self.units.extend(m.sources.iter().cloned());
                match &m.successor {
                    Successor::Existing { unit } => {
                        self.units.insert(unit.clone());
                    }
                    Successor::New(d) => unit_def(self, d),
                }
            }
            Change::UnitSplit(sp) => {
                self.structural = true;
                self.units.insert(sp.source.clone());
                for p in &sp.parts {
                    match &p.target {
                        PartTarget::Source => {}
                        PartTarget::Existing { unit } => {
                            self.units.insert(unit.clone());
                        }
                        PartTarget::New(d) => unit_def(self, d),
                    }
                    self.areas.extend(p.areas.iter().cloned());
                    for c in &p.carved_areas {
                        self.areas.insert(c.code.clone());
                        self.areas.extend(c.carved_from.iter().cloned());
                    }
                    self.units.extend(p.children.iter().cloned());
                }
            }
            Change::AreaTransferred(a) => {
                self.structural = true;
                self.areas.insert(a.area.clone());
                self.units.insert(a.from.clone());
                self.units.insert(a.to.clone());
            }
            Change::ServiceRegistered(s) => {
                self.services.insert(s.service.clone());
            }
            Change::ServiceRetired(s) => {
                self.services.insert(s.service.clone());
                self.pair_services.insert(s.service.clone());
            }
            Change::ResponsibilityAssigned(a) => {
                self.pair_services.insert(a.service.clone());
            }
            Change::ResponsibilityTransferred(r) => {
                self.pair_services.insert(r.service.clone());
            }
            Change::ResponsibilityWithdrawn(w) => {
                self.pair_services.insert(w.service.clone());
            }
            Change::ServiceCentralised(c) => {
                self.pair_services.insert(c.service.clone());
            }
            Change::ServiceDecentralised(d) => {
                self.pair_services.insert(d.service.clone());
            }
            Change::ServicePointOpened(p) => {
                self.points.insert(p.point.clone());
            }
            Change::ServicePointClosed(p) => {
                self.points.insert(p.point.clone());
            }
            Change::ServicePointServicesSet(p) => {
                self.points.insert(p.point.clone());
            }
            Change::ServicePointTransferred(p) => {
                self.points.insert(p.point.clone());
            }
        }
    }

    /// What hangs off the touched entities in state `s`: the holders of touched areas (their
    /// `areas` lists change), the pairs of touched services, the points offering a touched
    /// service; and for structural changes the children, areas, responsibilities and points of
    /// the touched units.
    fn around(&mut self, s: &OrgState) {
        if self.structural {
            let units = self.units.clone();
            for u in s.units.values() {
                if u.parent.as_ref().is_some_and(|p| units.contains(p)) {
                    self.units.insert(u.id.clone());
                }
            }
            for a in s.areas.values() {
                if a.holder.as_ref().is_some_and(|h| units.contains(h)) {
                    self.areas.insert(a.code.clone());
                }
            }
            for p in s.service_points.values() {
                if units.contains(&p.unit) {
                    self.points.insert(p.id.clone());
                }
            }
        }
        // Holders of touched areas hold them in their `areas` list.
        for a in &self.areas {
            if let Some(h) = s.areas.get(a).and_then(|x| x.holder.clone()) {
                self.units.insert(h);
            }
        }
        if self.structural {
            for (svc, area, unit) in s.responsibility_rows() {
                if self.units.contains(unit) || self.areas.contains(area) {
                    self.pairs.insert((svc.clone(), area.clone()));
                }
            }
        }
        for svc in &self.pair_services {
            if let Some(m) = s.responsibilities.get(svc) {
                self.pairs
                    .extend(m.keys().map(|a| (svc.clone(), a.clone())));
            }
        }
        for svc in &self.services {
            for p in s.service_points.values() {
                if p.services.contains(svc) {
                    self.points.insert(p.id.clone());
                }
            }
        }
    }
}

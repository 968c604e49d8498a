//! The rules: how each [`Change`] alters an [`OrgState`], and when it is refused.
//!
//! [`OrgState::apply_change`] checks a change against the state on its effective date and, if it is
//! allowed, applies it. Each arm checks everything before it mutates anything, so a refusal leaves
//! the state as it was (the timeline also works on a copy, so this is belt and braces).

use crate::change::*;
use crate::error::DomainError;
use crate::ids::{AreaCode, ServiceCode, UnitId};
use crate::model::*;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// Longest accepted name or title.
pub const MAX_NAME_LEN: usize = 300;

/// The earliest and latest dates accepted anywhere: what both databases (and the ISO format)
/// can store. A date outside them would be stored as an event no read model can hold.
pub const MIN_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(d) => d,
    None => panic!("year 1 is a valid date"),
};
/// See [`MIN_DATE`].
pub const MAX_DATE: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(d) => d,
    None => panic!("year 9999 is a valid date"),
};

pub(crate) fn check_date(field: &str, d: NaiveDate) -> Result<(), DomainError> {
    if d < MIN_DATE || d > MAX_DATE {
        return Err(DomainError::invalid(
            field,
            format!("{d} is outside the years 1 to 9999"),
        ));
    }
    Ok(())
}

pub(crate) fn check_text(field: &str, s: &str) -> Result<(), DomainError> {
    if s.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if s.contains('\0') {
        // PostgreSQL text cannot hold NUL; refusing it here keeps every stored event storable
        // in every read model.
        return Err(DomainError::invalid(
            field,
            "must not contain the NUL character",
        ));
    }
    if s.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = s.chars().find(|c| is_bidi_control(*c)) {
        // An embedding, override or isolate makes a name display in another order than it is
        // stored ("Trojan Source"): an org chart or a CSV could show one unit's name as
        // another's. Names never need them; the marks U+200E/U+200F stay allowed.
        return Err(DomainError::invalid(
            field,
            format!(
                "must not contain the bidirectional control character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// A text that others search and compare by (a case number, a deciding body, an actor, a name or
/// a code): surrounding whitespace would make " 2019/123" a different case from "2019/123". Checked on
/// new commands only, never on replay, so that history recorded before the rule still loads.
pub(crate) fn check_trimmed(field: &str, s: &str) -> Result<(), DomainError> {
    // Only blank is left to `check_text` ("must not be empty"), which says it better.
    if s.trim() != s && !s.trim().is_empty() {
        return Err(DomainError::invalid(
            field,
            "must not begin or end with whitespace",
        ));
    }
    Ok(())
}

/// Checks the names and codes a new change gives (units, areas, services, service points) with
/// [`check_trimmed`]: "Bydel Alna " or a code "030101 " would read as another name or code than
/// the one meant. New commands only, like [`check_trimmed`].
pub(crate) fn check_trimmed_change(change: &Change) -> Result<(), DomainError> {
    fn unit(field: &str, def: &UnitDef) -> Result<(), DomainError> {
        check_trimmed(&format!("{field}.name"), &def.name)?;
        if let Some(code) = &def.code {
            check_trimmed(&format!("{field}.code"), code)?;
        }
        for (i, a) in def.areas.iter().enumerate() {
            check_trimmed(&format!("{field}.areas[{i}].name"), &a.name)?;
        }
        Ok(())
    }
    match change {
        Change::UnitEstablished(def) => unit("action", def),
        Change::UnitRenamed(r) => {
            if let Some(name) = &r.name {
                check_trimmed("action.name", name)?;
            }
            if let Some(code) = &r.code {
                check_trimmed("action.code", code)?;
            }
            Ok(())
        }
        Change::UnitsMerged(m) => match &m.successor {
            Successor::New(def) => unit("action.successor", def),
            Successor::Existing { .. } => Ok(()),
        },
        Change::UnitSplit(s) => {
            for (i, p) in s.parts.iter().enumerate() {
                if let PartTarget::New(def) = &p.target {
                    unit(&format!("action.parts[{i}].target"), def)?;
                }
                for (j, c) in p.carved_areas.iter().enumerate() {
                    check_trimmed(
                        &format!("action.parts[{i}].carved_areas[{j}].name"),
                        &c.name,
                    )?;
                }
            }
            Ok(())
        }
        Change::ServiceRegistered(s) => check_trimmed("action.name", &s.name),
        Change::ServicePointOpened(p) => check_trimmed("action.name", &p.name),
        _ => Ok(()),
    }
}

/// The Unicode bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Free text that may be empty, but must be storable (no NUL).
pub(crate) fn check_free_text(field: &str, s: &str) -> Result<(), DomainError> {
    if s.contains('\0') {
        return Err(DomainError::invalid(
            field,
            "must not contain the NUL character",
        ));
    }
    Ok(())
}

fn no_duplicates<T: Ord + std::fmt::Display>(field: &str, items: &[T]) -> Result<(), DomainError> {
    let mut seen = BTreeSet::new();
    for i in items {
        if !seen.insert(i) {
            return Err(DomainError::invalid(field, format!("{i} is listed twice")));
        }
    }
    Ok(())
}

impl OrgState {
    /// The unit, if it exists and is live.
    pub fn live_unit(&self, id: &UnitId) -> Result<&Unit, DomainError> {
        match self.units.get(id) {
            None => Err(DomainError::UnknownUnit { unit: id.clone() }),
            Some(u) => match u.dissolved_on {
                Some(d) => Err(DomainError::UnitDissolved {
                    unit: id.clone(),
                    dissolved_on: d,
                }),
                None => Ok(u),
            },
        }
    }

    fn active_area(&self, code: &AreaCode) -> Result<&Area, DomainError> {
        match self.areas.get(code) {
            None => Err(DomainError::UnknownArea { area: code.clone() }),
            Some(a) => match a.retired_on {
                Some(d) => Err(DomainError::AreaRetired {
                    area: code.clone(),
                    retired_on: d,
                }),
                None => Ok(a),
            },
        }
    }

    fn active_service(&self, code: &ServiceCode) -> Result<&Service, DomainError> {
        match self.services.get(code) {
            None => Err(DomainError::UnknownService {
                service: code.clone(),
            }),
            Some(s) => match s.retired_on {
                Some(d) => Err(DomainError::ServiceRetired {
                    service: code.clone(),
                    retired_on: d,
                }),
                None => Ok(s),
            },
        }
    }

    fn open_point(&self, id: &crate::ids::ServicePointId) -> Result<&ServicePoint, DomainError> {
        match self.service_points.get(id) {
            None => Err(DomainError::UnknownServicePoint { point: id.clone() }),
            Some(p) => match p.closed_on {
                Some(d) => Err(DomainError::ServicePointClosed {
                    point: id.clone(),
                    closed_on: d,
                }),
                None => Ok(p),
            },
        }
    }

    fn check_code_free(&self, code: &str, except: &[&UnitId]) -> Result<(), DomainError> {
        match self
            .live_units()
            .find(|u| !except.contains(&&u.id) && u.code.as_deref() == Some(code))
        {
            Some(u) => Err(DomainError::DuplicateCode {
                code: code.to_string(),
                holder: u.id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks a new unit (without touching the state). `allow_areas` is false for split parts,
    /// whose areas come from the split itself.
    fn check_new_unit(
        &self,
        def: &UnitDef,
        field: &str,
        allow_areas: bool,
    ) -> Result<(), DomainError> {
        self.check_new_unit_replacing(def, field, allow_areas, &[])
    }

    /// [`Self::check_new_unit`] for a unit that replaces `replaced` on the same date (a merge's
    /// new successor): their codes pass on to it.
    fn check_new_unit_replacing(
        &self,
        def: &UnitDef,
        field: &str,
        allow_areas: bool,
        replaced: &[UnitId],
    ) -> Result<(), DomainError> {
        check_text(&format!("{field}.name"), &def.name)?;
        for (k, v) in &def.attributes {
            check_text(&format!("{field}.attributes"), k)?;
            check_free_text(&format!("{field}.attributes.{k}"), v)?;
        }
        if self.units.contains_key(&def.unit) {
            return Err(DomainError::DuplicateUnit {
                unit: def.unit.clone(),
            });
        }
        if let Some(code) = &def.code {
            check_text(&format!("{field}.code"), code)?;
            let mut except: Vec<&UnitId> = replaced.iter().collect();
            except.push(&def.unit);
            self.check_code_free(code, &except)?;
        }
        if let Some(p) = &def.parent {
            self.live_unit(p)?;
        }
        if !allow_areas && !def.areas.is_empty() {
            return Err(DomainError::invalid(
                &format!("{field}.areas"),
                "a split part gets its areas from the part's `areas`, not from the new unit",
            ));
        }
        let codes: Vec<_> = def.areas.iter().map(|a| a.code.clone()).collect();
        no_duplicates(&format!("{field}.areas"), &codes)?;
        for (i, a) in def.areas.iter().enumerate() {
            if a.carved_from.is_some() {
                return Err(DomainError::invalid(
                    &format!("{field}.areas[{i}].carved_from"),
                    "areas are carved only when a unit is split",
                ));
            }
            match self.areas.get(&a.code) {
                Some(existing) => {
                    self.active_area(&a.code)?;
                    if existing.holder.is_some() {
                        return Err(DomainError::AreaHeldByOther {
                            area: a.code.clone(),
                            holder: existing.holder.clone(),
                            assumed: None,
                        });
                    }
                }
                None => check_text(&format!("{field}.areas[{i}].name"), &a.name)?,
            }
        }
        Ok(())
    }

    /// Establishes a unit already checked by [`Self::check_new_unit`].
    fn establish(&mut self, date: NaiveDate, def: &UnitDef) {
        for a in &def.areas {
            self.areas
                .entry(a.code.clone())
                .and_modify(|e| e.holder = Some(def.unit.clone()))
                .or_insert_with(|| Area {
                    code: a.code.clone(),
                    name: a.name.clone(),
                    holder: Some(def.unit.clone()),
                    carved_from: None,
                    defined_on: date,
                    retired_on: None,
                });
        }
        self.units.insert(
            def.unit.clone(),
            Unit {
                id: def.unit.clone(),
                code: def.code.clone(),
                name: def.name.clone(),
                kind: def.kind,
                parent: def.parent.clone(),
                attributes: def.attributes.clone(),
                established_on: date,
                dissolved_on: None,
                succeeded_by: Vec::new(),
            },
        );
    }

    /// Moves every responsibility `from` holds in `area` (or in every area when `None`) to `to`.
    fn move_responsibilities(&mut self, from: &UnitId, to: &UnitId, area: Option<&AreaCode>) {
        for areas in self.responsibilities.values_mut() {
            for (a, u) in areas.iter_mut() {
                if u == from && area.is_none_or(|x| x == a) {
                    *u = to.clone();
                }
            }
        }
    }

    fn cycle_check(&self, unit: &UnitId) -> Result<(), DomainError> {
        if self.has_cycle() {
            let parent = self
                .units
                .get(unit)
                .and_then(|u| u.parent.clone())
                .unwrap_or_else(|| unit.clone());
            return Err(DomainError::Cycle {
                unit: unit.clone(),
                parent,
            });
        }
        Ok(())
    }

    /// Why `change`, valid or not, would leave this organisation as it is: a rename to the
    /// names it has, a move under the parent it has, a service point given the services it
    /// offers. A new command that changes nothing is refused (as a transfer of nothing is),
    /// so that the decision log and replay hold only changes. Checked for the new command
    /// only, never for a recorded one: those stand as recorded.
    pub fn no_op(&self, change: &Change) -> Option<String> {
        match change {
            Change::UnitRenamed(r) => {
                let u = self.units.get(&r.unit).filter(|u| u.is_live())?;
                if r.name.is_none() && r.code.is_none() {
                    return None; // malformed: the rename's own check says so
                }
                let same_name = r.name.as_ref().is_none_or(|n| *n == u.name);
                let same_code = r.code.as_ref().is_none_or(|c| u.code.as_ref() == Some(c));
                (same_name && same_code).then(|| match (&r.name, &r.code) {
                    (Some(n), None) => format!("unit {} is already named {n:?}", r.unit),
                    (None, Some(c)) => format!("unit {} already has code {c}", r.unit),
                    _ => format!("unit {} already has that name and code", r.unit),
                })
            }
            Change::UnitMoved(m) => {
                let u = self.units.get(&m.unit).filter(|u| u.is_live())?;
                (u.parent == m.new_parent).then(|| match &m.new_parent {
                    Some(p) => format!("unit {} is already under {p}", m.unit),
                    None => format!("unit {} already has no parent", m.unit),
                })
            }
            Change::ServicePointTransferred(t) => {
                if t.from == t.to {
                    return None; // malformed: the transfer's own check says so (422)
                }
                let p = self.service_points.get(&t.point).filter(|p| p.is_open())?;
                (p.unit == t.to)
                    .then(|| format!("service point {} is already run by {}", t.point, t.to))
            }
            Change::ServicePointServicesSet(s) => {
                let p = self.service_points.get(&s.point).filter(|p| p.is_open())?;
                let services: BTreeSet<&ServiceCode> = s.services.iter().collect();
                (p.services.iter().collect::<BTreeSet<_>>() == services).then(|| {
                    format!(
                        "service point {} already offers exactly these services",
                        s.point
                    )
                })
            }
            _ => None,
        }
    }

    /// Checks `change` against this state on `date` and applies it if allowed.
    ///
    /// Atomic: a refused change leaves the state exactly as it was, so callers can apply changes
    /// in place without keeping a copy (a property test holds this). Timeline-level changes
    /// (creation, fork, revocation) leave the organisation as it is.
    pub fn apply_change(&mut self, date: NaiveDate, change: &Change) -> Result<(), DomainError> {
        match change {
            Change::TimelineCreated(_)
            | Change::TimelineForked(_)
            | Change::DecisionRevoked(_)
            | Change::ScenarioAdopted(_) => Ok(()),
            Change::UnitEstablished(def) => {
                self.check_new_unit(def, "action", true)?;
                self.establish(date, def);
                Ok(())
            }
            Change::UnitRenamed(r) => self.rename(r),
            Change::UnitMoved(m) => self.move_unit(m),
            Change::UnitDissolved(d) => self.dissolve(date, d),
            // Merges and splits can only tell a cycle after moving children, so they work on a
            // copy (they are rare; every other arm checks everything before it mutates).
            Change::UnitsMerged(m) => self.on_copy(|next| next.merge(date, m)),
            Change::UnitSplit(s) => self.on_copy(|next| next.split(date, s)),
            Change::AreaTransferred(t) => self.transfer_area(t),
            Change::ServiceRegistered(s) => {
                check_text("action.name", &s.name)?;
                check_free_text("action.category", &s.category)?;
                if self.services.contains_key(&s.service) {
                    return Err(DomainError::DuplicateService {
                        service: s.service.clone(),
                    });
                }
                self.services.insert(
                    s.service.clone(),
                    Service {
                        code: s.service.clone(),
                        name: s.name.clone(),
                        category: s.category.clone(),
                        registered_on: date,
                        retired_on: None,
                    },
                );
                Ok(())
            }
            Change::ServiceRetired(r) => {
                self.active_service(&r.service)?;
                if let Some(s) = self.services.get_mut(&r.service) {
                    s.retired_on = Some(date);
                }
                self.responsibilities.remove(&r.service);
                for p in self.service_points.values_mut() {
                    p.services.remove(&r.service);
                }
                Ok(())
            }
            Change::ResponsibilityAssigned(a) => self.assign(a),
            Change::ResponsibilityTransferred(t) => self.transfer_responsibility(t),
            Change::ResponsibilityWithdrawn(w) => self.withdraw(w),
            Change::ServiceCentralised(c) => self.centralise(c),
            Change::ServiceDecentralised(d) => self.decentralise(d),
            Change::ServicePointOpened(p) => self.open_point_change(date, p),
            Change::ServicePointClosed(c) => {
                self.open_point(&c.point)?;
                if let Some(p) = self.service_points.get_mut(&c.point) {
                    p.closed_on = Some(date);
                }
                Ok(())
            }
            Change::ServicePointServicesSet(s) => {
                self.open_point(&s.point)?;
                self.check_services("action.services", &s.services)?;
                if let Some(p) = self.service_points.get_mut(&s.point) {
                    p.services = s.services.iter().cloned().collect();
                }
                Ok(())
            }
            Change::ServicePointTransferred(t) => self.transfer_point(t),
        }
    }

    fn on_copy(
        &mut self,
        f: impl FnOnce(&mut OrgState) -> Result<(), DomainError>,
    ) -> Result<(), DomainError> {
        let mut next = self.clone();
        f(&mut next)?;
        *self = next;
        Ok(())
    }

    fn check_services(&self, field: &str, services: &[ServiceCode]) -> Result<(), DomainError> {
        no_duplicates(field, services)?;
        for s in services {
            self.active_service(s)?;
        }
        Ok(())
    }

    fn rename(&mut self, r: &Rename) -> Result<(), DomainError> {
        self.live_unit(&r.unit)?;
        if r.name.is_none() && r.code.is_none() {
            return Err(DomainError::invalid(
                "action",
                "give a new name, a new code, or both",
            ));
        }
        if let Some(n) = &r.name {
            check_text("action.name", n)?;
        }
        if let Some(c) = &r.code {
            check_text("action.code", c)?;
            self.check_code_free(c, &[&r.unit])?;
        }
        if let Some(u) = self.units.get_mut(&r.unit) {
            if let Some(n) = &r.name {
                u.name = n.clone();
            }
            if let Some(c) = &r.code {
                u.code = Some(c.clone());
            }
        }
        Ok(())
    }

    fn move_unit(&mut self, m: &Move) -> Result<(), DomainError> {
        self.live_unit(&m.unit)?;
        if let Some(p) = &m.new_parent {
            self.live_unit(p)?;
            if p == &m.unit || self.ancestors(p).contains(&m.unit) {
                return Err(DomainError::Cycle {
                    unit: m.unit.clone(),
                    parent: p.clone(),
                });
            }
        }
        if let Some(u) = self.units.get_mut(&m.unit) {
            u.parent = m.new_parent.clone();
        }
        Ok(())
    }

    fn dissolve(&mut self, date: NaiveDate, d: &Dissolve) -> Result<(), DomainError> {
        self.live_unit(&d.unit)?;
        let children = self.children_of(&d.unit);
        if !children.is_empty() {
            return Err(DomainError::UnitHasChildren {
                unit: d.unit.clone(),
                children,
            });
        }
        let areas = self.areas_of(&d.unit);
        if !areas.is_empty() {
            return Err(DomainError::UnitHoldsAreas {
                unit: d.unit.clone(),
                areas,
            });
        }
        if let Some((service, area)) = self.responsibilities_of(&d.unit).into_iter().next() {
            return Err(DomainError::PairLeftWithoutResponsible {
                service,
                area,
                unit: d.unit.clone(),
            });
        }
        let points = self.points_of(&d.unit);
        if !points.is_empty() {
            return Err(DomainError::UnitRunsServicePoints {
                unit: d.unit.clone(),
                points,
            });
        }
        if let Some(u) = self.units.get_mut(&d.unit) {
            u.dissolved_on = Some(date);
        }
        Ok(())
    }

    fn merge(&mut self, date: NaiveDate, m: &Merge) -> Result<(), DomainError> {
        if m.sources.is_empty() {
            return Err(DomainError::invalid(
                "action.sources",
                "name at least one unit",
            ));
        }
        no_duplicates("action.sources", &m.sources)?;
        let successor = match &m.successor {
            Successor::Existing { unit } => {
                self.live_unit(unit)?;
                unit.clone()
            }
            Successor::New(def) => {
                // A source's code may pass on to the new unit (a municipality keeping its
                // number, a district its code), since the source ends with this merge.
                self.check_new_unit_replacing(def, "action.successor", true, &m.sources)?;
                if def.parent.as_ref().is_some_and(|p| m.sources.contains(p)) {
                    return Err(DomainError::invalid(
                        "action.successor.parent",
                        "the successor's parent cannot be one of the merged units",
                    ));
                }
                def.unit.clone()
            }
        };
        let absorbed: Vec<UnitId> = m
            .sources
            .iter()
            .filter(|s| **s != successor)
            .cloned()
            .collect();
        if absorbed.is_empty() {
            return Err(DomainError::invalid(
                "action.sources",
                format!("merging {successor} into itself changes nothing"),
            ));
        }
        for s in &absorbed {
            self.live_unit(s)?;
        }
        // A municipality is merged into a municipality (a municipal merger), never into one of
        // its own units: a district absorbing it would stand at the root, holding the whole
        // municipality and every central agency.
        let successor_kind = match &m.successor {
            Successor::Existing { unit } => self.live_unit(unit)?.kind,
            Successor::New(def) => def.kind,
        };
        if successor_kind != UnitKind::Municipality {
            let municipality = absorbed.iter().find(|s| {
                self.units
                    .get(*s)
                    .is_some_and(|u| u.kind == UnitKind::Municipality)
            });
            if let Some(municipality) = municipality {
                return Err(DomainError::WrongUnitKind {
                    unit: successor.clone(),
                    kind: successor_kind,
                    expected: format!("municipality to absorb the municipality {municipality}"),
                });
            }
        }
        // Checks done; from here on only mutation (and the final cycle check).
        if let Successor::New(def) = &m.successor {
            self.establish(date, def);
        }
        let absorbed_set: BTreeSet<&UnitId> = absorbed.iter().collect();
        // If the successor sat under a merged unit, lift it to the nearest ancestor that survives.
        let mut lifted = self.units.get(&successor).and_then(|u| u.parent.clone());
        while let Some(p) = lifted.clone().filter(|p| absorbed_set.contains(p)) {
            lifted = self.units.get(&p).and_then(|u| u.parent.clone());
        }
        if let Some(u) = self.units.get_mut(&successor) {
            u.parent = lifted;
        }
        for s in &absorbed {
            for child in self.children_of(s) {
                if child != successor {
                    if let Some(c) = self.units.get_mut(&child) {
                        c.parent = Some(successor.clone());
                    }
                }
            }
            for a in self.areas.values_mut() {
                if a.holder.as_ref() == Some(s) {
                    a.holder = Some(successor.clone());
                }
            }
            self.move_responsibilities(s, &successor, None);
            for p in self.service_points.values_mut() {
                if &p.unit == s && p.is_open() {
                    p.unit = successor.clone();
                }
            }
            if let Some(u) = self.units.get_mut(s) {
                u.dissolved_on = Some(date);
                u.succeeded_by = vec![successor.clone()];
            }
        }
        self.cycle_check(&successor)
    }

    fn split(&mut self, date: NaiveDate, s: &Split) -> Result<(), DomainError> {
        self.live_unit(&s.source)?;
        if !s.parts.iter().any(|p| p.target != PartTarget::Source) {
            return Err(DomainError::invalid(
                "action.parts",
                "name at least one part other than the source itself",
            ));
        }
        if s.parts
            .iter()
            .filter(|p| p.target == PartTarget::Source)
            .count()
            > 1
        {
            return Err(DomainError::invalid(
                "action.parts",
                "the source can continue as one part only",
            ));
        }
        let mut targets: Vec<UnitId> = Vec::new();
        for (i, p) in s.parts.iter().enumerate() {
            let field = format!("action.parts[{i}].target");
            let id = match &p.target {
                PartTarget::Source => s.source.clone(),
                PartTarget::Existing { unit } => {
                    self.live_unit(unit)?;
                    if unit == &s.source {
                        return Err(DomainError::invalid(
                            &field,
                            "use {\"type\": \"source\"} for the part the source keeps",
                        ));
                    }
                    unit.clone()
                }
                PartTarget::New(def) => {
                    self.check_new_unit(def, &field, false)?;
                    def.unit.clone()
                }
            };
            targets.push(id);
        }
        no_duplicates("action.parts", &targets)?;
        let continues = s.parts.iter().any(|p| p.target == PartTarget::Source);
        let held: BTreeSet<AreaCode> = self.areas_of(&s.source).into_iter().collect();

        // Which part gets each whole area, each carved area, each child.
        let mut whole: BTreeMap<AreaCode, UnitId> = BTreeMap::new();
        let mut carved: BTreeMap<AreaCode, (AreaDef, UnitId)> = BTreeMap::new();
        let mut children: BTreeMap<UnitId, UnitId> = BTreeMap::new();
        let live_children: BTreeSet<UnitId> = self.children_of(&s.source).into_iter().collect();
        for (i, (p, t)) in s.parts.iter().zip(&targets).enumerate() {
            for a in &p.areas {
                if !held.contains(a) {
                    self.active_area(a)?;
                    return Err(DomainError::AreaHeldByOther {
                        area: a.clone(),
                        holder: self.areas.get(a).and_then(|x| x.holder.clone()),
                        assumed: Some(s.source.clone()),
                    });
                }
                if whole.insert(a.clone(), t.clone()).is_some() {
                    return Err(DomainError::invalid(
                        &format!("action.parts[{i}].areas"),
                        format!("area {a} is given to more than one part"),
                    ));
                }
            }
            for (j, c) in p.carved_areas.iter().enumerate() {
                let field = format!("action.parts[{i}].carved_areas[{j}]");
                check_text(&format!("{field}.name"), &c.name)?;
                let Some(from) = &c.carved_from else {
                    return Err(DomainError::invalid(
                        &format!("{field}.carved_from"),
                        "name the source area this one is carved from",
                    ));
                };
                if !held.contains(from) {
                    return Err(DomainError::AreaHeldByOther {
                        area: from.clone(),
                        holder: self.areas.get(from).and_then(|x| x.holder.clone()),
                        assumed: Some(s.source.clone()),
                    });
                }
                if self.areas.contains_key(&c.code) || carved.contains_key(&c.code) {
                    return Err(DomainError::DuplicateArea {
                        area: c.code.clone(),
                    });
                }
                carved.insert(c.code.clone(), (c.clone(), t.clone()));
            }
            for c in &p.children {
                if !live_children.contains(c) {
                    return Err(DomainError::invalid(
                        &format!("action.parts[{i}].children"),
                        format!("{c} is not a child unit of {}", s.source),
                    ));
                }
                if children.insert(c.clone(), t.clone()).is_some() {
                    return Err(DomainError::invalid(
                        &format!("action.parts[{i}].children"),
                        format!("child {c} is given to more than one part"),
                    ));
                }
            }
        }
        let divided: BTreeSet<AreaCode> = carved
            .values()
            .filter_map(|(d, _)| d.carved_from.clone())
            .collect();
        if let Some(a) = divided.iter().find(|a| whole.contains_key(*a)) {
            return Err(DomainError::invalid(
                "action.parts",
                format!("area {a} cannot be both given whole and divided"),
            ));
        }
        if !continues {
            if let Some(a) = held
                .iter()
                .find(|a| !whole.contains_key(*a) && !divided.contains(*a))
            {
                return Err(DomainError::invalid(
                    "action.parts",
                    format!(
                        "area {a} of {} is given to no part, and the source does not continue",
                        s.source
                    ),
                ));
            }
            if let Some(c) = live_children.iter().find(|c| !children.contains_key(*c)) {
                return Err(DomainError::invalid(
                    "action.parts",
                    format!("child unit {c} of {} is given to no part, and the source does not continue", s.source),
                ));
            }
            if let Some((service, area)) = self
                .responsibilities_of(&s.source)
                .into_iter()
                .find(|(_, a)| !held.contains(a))
            {
                return Err(DomainError::PairLeftWithoutResponsible {
                    service,
                    area,
                    unit: s.source.clone(),
                });
            }
        }

        // Checks done; mutate.
        for p in &s.parts {
            if let PartTarget::New(def) = &p.target {
                self.establish(date, def);
            }
        }
        for (a, t) in &whole {
            if let Some(area) = self.areas.get_mut(a) {
                area.holder = Some(t.clone());
            }
            self.move_responsibilities(&s.source, t, Some(a));
        }
        for d in &divided {
            let pieces: Vec<(AreaCode, UnitId)> = carved
                .iter()
                .filter(|(_, (def, _))| def.carved_from.as_ref() == Some(d))
                .map(|(code, (_, t))| (code.clone(), t.clone()))
                .collect();
            for areas in self.responsibilities.values_mut() {
                if let Some(u) = areas.remove(d) {
                    for (code, t) in &pieces {
                        let holder = if u == s.source { t.clone() } else { u.clone() };
                        areas.insert(code.clone(), holder);
                    }
                }
            }
            if let Some(area) = self.areas.get_mut(d) {
                area.holder = None;
                area.retired_on = Some(date);
            }
        }
        for (code, (def, t)) in &carved {
            self.areas.insert(
                code.clone(),
                Area {
                    code: code.clone(),
                    name: def.name.clone(),
                    holder: Some(t.clone()),
                    carved_from: def.carved_from.clone(),
                    defined_on: date,
                    retired_on: None,
                },
            );
        }
        for (c, t) in &children {
            if let Some(u) = self.units.get_mut(c) {
                u.parent = Some(t.clone());
            }
        }
        let fallback = targets
            .iter()
            .zip(&s.parts)
            .find(|(_, p)| p.target != PartTarget::Source)
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| s.source.clone());
        for p in self.service_points.values_mut() {
            if p.unit != s.source || !p.is_open() {
                continue;
            }
            let by_area = p.area.as_ref().and_then(|a| {
                whole.get(a).cloned().or_else(|| {
                    carved
                        .values()
                        .find(|(def, _)| def.carved_from.as_ref() == Some(a))
                        .map(|(_, t)| t.clone())
                })
            });
            p.unit = match by_area {
                Some(t) => t,
                None if continues => s.source.clone(),
                None => fallback.clone(),
            };
        }
        if !continues {
            if let Some(u) = self.units.get_mut(&s.source) {
                u.dissolved_on = Some(date);
                u.succeeded_by = targets.clone();
            }
        }
        for t in &targets {
            self.cycle_check(t)?;
        }
        Ok(())
    }

    fn transfer_area(&mut self, t: &AreaTransfer) -> Result<(), DomainError> {
        self.live_unit(&t.from)?;
        self.live_unit(&t.to)?;
        if t.from == t.to {
            return Err(DomainError::invalid(
                "action.to",
                "the receiving unit must differ from the giving unit",
            ));
        }
        let area = self.active_area(&t.area)?;
        if area.holder.as_ref() != Some(&t.from) {
            return Err(DomainError::AreaHeldByOther {
                area: t.area.clone(),
                holder: area.holder.clone(),
                assumed: Some(t.from.clone()),
            });
        }
        if let Some(a) = self.areas.get_mut(&t.area) {
            a.holder = Some(t.to.clone());
        }
        self.move_responsibilities(&t.from, &t.to, Some(&t.area));
        Ok(())
    }

    fn transfer_point(&mut self, t: &ServicePointTransfer) -> Result<(), DomainError> {
        let runner = self.open_point(&t.point)?.unit.clone();
        self.live_unit(&t.to)?;
        if t.from == t.to {
            return Err(DomainError::invalid(
                "action.to",
                "the receiving unit must differ from the giving unit",
            ));
        }
        if runner != t.from {
            return Err(DomainError::ServicePointRunByOther {
                point: t.point.clone(),
                runner,
                assumed: t.from.clone(),
            });
        }
        if let Some(p) = self.service_points.get_mut(&t.point) {
            p.unit = t.to.clone();
        }
        Ok(())
    }

    fn assign(&mut self, a: &Assignment) -> Result<(), DomainError> {
        self.active_service(&a.service)?;
        self.live_unit(&a.unit)?;
        if a.areas.is_empty() {
            return Err(DomainError::invalid(
                "action.areas",
                "name at least one area",
            ));
        }
        no_duplicates("action.areas", &a.areas)?;
        for area in &a.areas {
            self.active_area(area)?;
            if let Some(holder) = self.responsible(&a.service, area) {
                return Err(DomainError::PairAlreadyHeld {
                    service: a.service.clone(),
                    area: area.clone(),
                    holder: holder.clone(),
                });
            }
        }
        let m = self.responsibilities.entry(a.service.clone()).or_default();
        for area in &a.areas {
            m.insert(area.clone(), a.unit.clone());
        }
        Ok(())
    }

    /// The areas a change about `service` held by `unit` covers: the listed ones (each checked to be
    /// held by `unit`), or all of them.
    fn held_areas(
        &self,
        service: &ServiceCode,
        unit: &UnitId,
        areas: &Option<Vec<AreaCode>>,
    ) -> Result<Vec<AreaCode>, DomainError> {
        match areas {
            Some(list) => {
                if list.is_empty() {
                    return Err(DomainError::invalid(
                        "action.areas",
                        "name at least one area, or leave it out for all",
                    ));
                }
                no_duplicates("action.areas", list)?;
                for a in list {
                    self.active_area(a)?;
                    if self.responsible(service, a) != Some(unit) {
                        return Err(DomainError::NotResponsible {
                            unit: unit.clone(),
                            service: service.clone(),
                            area: a.clone(),
                        });
                    }
                }
                Ok(list.clone())
            }
            None => {
                let all: Vec<AreaCode> = self
                    .responsibilities
                    .get(service)
                    .map(|m| {
                        m.iter()
                            .filter(|(_, u)| *u == unit)
                            .map(|(a, _)| a.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                if all.is_empty() {
                    return Err(DomainError::NothingToChange {
                        reason: format!("{unit} is not responsible for {service} in any area"),
                    });
                }
                Ok(all)
            }
        }
    }

    fn transfer_responsibility(&mut self, t: &ResponsibilityTransfer) -> Result<(), DomainError> {
        self.active_service(&t.service)?;
        self.live_unit(&t.from)?;
        self.live_unit(&t.to)?;
        if t.from == t.to {
            return Err(DomainError::invalid(
                "action.to",
                "the receiving unit must differ from the giving unit",
            ));
        }
        let areas = self.held_areas(&t.service, &t.from, &t.areas)?;
        let m = self.responsibilities.entry(t.service.clone()).or_default();
        for a in areas {
            m.insert(a, t.to.clone());
        }
        Ok(())
    }

    fn withdraw(&mut self, w: &Withdrawal) -> Result<(), DomainError> {
        self.active_service(&w.service)?;
        self.live_unit(&w.unit)?;
        let areas = self.held_areas(&w.service, &w.unit, &w.areas)?;
        if let Some(m) = self.responsibilities.get_mut(&w.service) {
            for a in areas {
                m.remove(&a);
            }
            if m.is_empty() {
                self.responsibilities.remove(&w.service);
            }
        }
        Ok(())
    }

    fn centralise(&mut self, c: &Centralisation) -> Result<(), DomainError> {
        self.active_service(&c.service)?;
        let agency = self.live_unit(&c.agency)?;
        if !matches!(
            agency.kind,
            UnitKind::CentralAgency | UnitKind::MunicipalEnterprise
        ) {
            return Err(DomainError::WrongUnitKind {
                unit: c.agency.clone(),
                kind: agency.kind,
                expected: "central_agency or municipal_enterprise".into(),
            });
        }
        let districts: BTreeSet<UnitId> = self
            .live_units()
            .filter(|u| u.kind == UnitKind::District)
            .map(|u| u.id.clone())
            .collect();
        let moved: Vec<AreaCode> = self
            .responsibilities
            .get(&c.service)
            .map(|m| {
                m.iter()
                    .filter(|(_, u)| districts.contains(*u))
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .unwrap_or_default();
        if moved.is_empty() {
            return Err(DomainError::NothingToChange {
                reason: format!("no district is responsible for {}", c.service),
            });
        }
        let m = self.responsibilities.entry(c.service.clone()).or_default();
        for a in moved {
            m.insert(a, c.agency.clone());
        }
        Ok(())
    }

    fn decentralise(&mut self, d: &Decentralisation) -> Result<(), DomainError> {
        self.active_service(&d.service)?;
        if let Some(a) = &d.agency {
            self.live_unit(a)?;
        }
        let mut moves: Vec<(AreaCode, UnitId)> = Vec::new();
        if let Some(m) = self.responsibilities.get(&d.service) {
            for (area, holder) in m {
                let holder_is_district = self
                    .units
                    .get(holder)
                    .is_some_and(|u| u.kind == UnitKind::District);
                let giving = match &d.agency {
                    Some(a) => a == holder,
                    None => !holder_is_district,
                };
                if !giving {
                    continue;
                }
                let district = self
                    .areas
                    .get(area)
                    .and_then(|a| a.holder.as_ref())
                    .and_then(|h| self.units.get(h))
                    .filter(|u| u.is_live() && u.kind == UnitKind::District && &u.id != holder);
                if let Some(u) = district {
                    moves.push((area.clone(), u.id.clone()));
                }
            }
        }
        if moves.is_empty() {
            return Err(DomainError::NothingToChange {
                reason: format!(
                    "no area where {} is held outside its district has a district to take it back",
                    d.service
                ),
            });
        }
        let m = self.responsibilities.entry(d.service.clone()).or_default();
        for (a, u) in moves {
            m.insert(a, u);
        }
        Ok(())
    }

    fn open_point_change(
        &mut self,
        date: NaiveDate,
        p: &ServicePointDef,
    ) -> Result<(), DomainError> {
        check_text("action.name", &p.name)?;
        if self.service_points.contains_key(&p.point) {
            return Err(DomainError::DuplicateServicePoint {
                point: p.point.clone(),
            });
        }
        self.live_unit(&p.unit)?;
        if let Some(a) = &p.area {
            self.active_area(a)?;
        }
        self.check_services("action.services", &p.services)?;
        self.service_points.insert(
            p.point.clone(),
            ServicePoint {
                id: p.point.clone(),
                name: p.name.clone(),
                unit: p.unit.clone(),
                area: p.area.clone(),
                services: p.services.iter().cloned().collect(),
                opened_on: date,
                closed_on: None,
            },
        );
        Ok(())
    }
}

//! The demo data set, as real commands with decision references: Oslo's districts and agencies,
//! with a planning scenario that moves home care to a central agency, and the merger of Asker,
//! Røyken and Hurum into the new Asker with its local centres, plus two scenarios for organising
//! Innbyggerservice.
//!
//! A reference names a real decision only where the sources give one (the Storting's merger and
//! county decisions); a register baseline cites its register, and whatever the demo models
//! without a decision behind it cites [`modelled`], so that an auditor reading the decision log
//! never mistakes an illustration for a decision.
//!
//! The facts live in `data/` (sources and licences in `data/SOURCES.md`) and are compiled into
//! the binary, so the product never reads anything outside its repository at run time. Every
//! command id is fixed, so loading the demo twice is a no-op the second time.

use crate::error::ApiError;
use crate::service::{CreateTimelineRequest, ForkRequest, Omorg};
use chrono::NaiveDate;
use omorg_domain::{
    Action, AreaCode, AreaDef, Assignment, Centralisation, ChangeContext, CommandId, DecisionRef,
    Merge, Rename, ServiceCode, ServiceDef, ServicePointDef, ServicePointId, ServicePointTransfer,
    Successor, TimelineCommand, TimelineId, UnitDef, UnitId, UnitKind,
};
use serde::Deserialize;
use std::collections::BTreeMap;

const OSLO_DISTRICTS: &str = include_str!("../../data/oslo_districts_2020.csv");
const OSLO_UNITS: &str = include_str!("../../data/oslo_units_orgnr.csv");
const ASKER: &str = include_str!("../../data/asker_merger_2020.yaml");

/// The actor recorded on demo commands.
const ACTOR: &str = "omorg-demo";

/// Timeline ids the demo writes, in the order it creates them.
pub const TIMELINES: [&str; 5] = [
    "oslo",
    "oslo-home-care-central",
    "asker",
    "asker-alt-1",
    "asker-alt-2",
];

fn bad(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("embedded demo data {what}: {e}").into())
}

fn date(s: &str) -> Result<NaiveDate, ApiError> {
    s.parse().map_err(|e| bad("date", e))
}

/// A lowercase ASCII slug of a Norwegian name (`Bydel Søndre Nordstrand` → `bydel-sondre-nordstrand`).
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' => s.push(c),
            'æ' => s.push_str("ae"),
            'ø' => s.push('o'),
            'å' => s.push('a'),
            'ü' => s.push('u'),
            _ if !s.ends_with('-') && !s.is_empty() => s.push('-'),
            _ => {}
        }
    }
    s.trim_end_matches('-').to_owned()
}

macro_rules! id {
    ($ty:ident, $s:expr) => {
        $ty::new($s).map_err(|e| bad(concat!("id ", stringify!($ty)), e))?
    };
}

/// Builds commands sharing a decision and an effective date, numbering their ids.
struct Batch {
    prefix: String,
    n: usize,
    commands: Vec<TimelineCommand>,
}

impl Batch {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            n: 0,
            commands: Vec::new(),
        }
    }

    fn push(
        &mut self,
        effective_from: NaiveDate,
        decision: &DecisionRef,
        rationale: &str,
        action: Action,
    ) -> Result<(), ApiError> {
        self.n += 1;
        let command_id = id!(CommandId, format!("{}-{:03}", self.prefix, self.n));
        self.commands.push(TimelineCommand {
            context: ChangeContext {
                command_id,
                effective_from,
                decision: decision.clone(),
                actor: ACTOR.into(),
                rationale: rationale.into(),
            },
            action,
        });
        Ok(())
    }
}

fn decision(case: &str, body: &str, on: &str, title: &str) -> Result<DecisionRef, ApiError> {
    Ok(DecisionRef {
        case_number: case.into(),
        body: body.into(),
        decision_date: date(on)?,
        title: title.into(),
        link: None,
    })
}

/// The reference of a command the demo models with no decision in its sources behind it (which
/// unit runs which service, opening dates): it says so in its title, under a case number no
/// real archive uses.
fn modelled(on: &str, what: &str) -> Result<DecisionRef, ApiError> {
    decision(
        "omorg-demo",
        "omorg (modellert)",
        on,
        &format!("Modellert for demoen, ikke et vedtak: {what}"),
    )
}

fn unit(
    id: &str,
    code: Option<&str>,
    name: &str,
    kind: UnitKind,
    parent: Option<&str>,
    areas: Vec<AreaDef>,
    attributes: &[(&str, &str)],
) -> Result<Action, ApiError> {
    Ok(Action::EstablishUnit(UnitDef {
        unit: id!(UnitId, id),
        code: code.map(str::to_owned),
        name: name.into(),
        kind,
        parent: match parent {
            Some(p) => Some(id!(UnitId, p)),
            None => None,
        },
        areas,
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }))
}

fn area(code: &str, name: &str) -> Result<AreaDef, ApiError> {
    Ok(AreaDef {
        code: id!(AreaCode, code),
        name: name.into(),
        carved_from: None,
    })
}

fn service(code: &str, name: &str, category: &str) -> Result<Action, ApiError> {
    Ok(Action::RegisterService(ServiceDef {
        service: id!(ServiceCode, code),
        name: name.into(),
        category: category.into(),
    }))
}

fn assign(service: &str, unit: &str, areas: &[String]) -> Result<Action, ApiError> {
    Ok(Action::AssignResponsibility(Assignment {
        service: id!(ServiceCode, service),
        unit: id!(UnitId, unit),
        areas: areas
            .iter()
            .map(|a| AreaCode::new(a.as_str()).map_err(|e| bad("area", e)))
            .collect::<Result<_, _>>()?,
    }))
}

#[derive(Debug, Deserialize)]
struct DistrictRow {
    code: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct UnitRow {
    name: String,
    orgnr: String,
    kind: String,
}

/// The Oslo baseline: the municipality (holding Sentrum and Marka), its 15 districts with their
/// official codes and areas, its central agencies and municipal enterprises, and five services
/// run by the districts or agencies.
pub fn oslo_commands() -> Result<Vec<TimelineCommand>, ApiError> {
    let districts: Vec<DistrictRow> = csv::Reader::from_reader(OSLO_DISTRICTS.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| bad("oslo_districts_2020.csv", e))?;
    let units: Vec<UnitRow> = csv::Reader::from_reader(OSLO_UNITS.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| bad("oslo_units_orgnr.csv", e))?;
    let orgnr: BTreeMap<&str, &str> = units
        .iter()
        .map(|u| (u.name.as_str(), u.orgnr.as_str()))
        .collect();
    let on = date("2020-01-01")?;
    let klass = decision(
        "SSB KLASS 103",
        "Statistisk sentralbyrå",
        "2020-01-01",
        "Bydelsinndeling 2020: Oslos bydeler (registerutgangspunkt, ikke et vedtak)",
    )?;
    let why = "register baseline: Oslo's district classification valid from 2020-01-01";
    let mut b = Batch::new("oslo");
    let (city, district_rows): (Vec<_>, Vec<_>) = districts
        .iter()
        .partition(|d| d.code == "030116" || d.code == "030117");
    let city_areas = city
        .iter()
        .map(|d| area(&d.code, &d.name))
        .collect::<Result<_, _>>()?;
    b.push(
        on,
        &klass,
        why,
        unit(
            "oslo",
            Some("0301"),
            "Oslo kommune",
            UnitKind::Municipality,
            None,
            city_areas,
            &[],
        )?,
    )?;
    let mut district_ids = Vec::new();
    for d in &district_rows {
        let name = format!("Bydel {}", d.name);
        let id = slug(&d.name);
        let nr = orgnr.get(name.as_str()).copied().unwrap_or("");
        let attrs: &[(&str, &str)] = if nr.is_empty() { &[] } else { &[("orgnr", nr)] };
        b.push(
            on,
            &klass,
            why,
            unit(
                &id,
                Some(&d.code),
                &name,
                UnitKind::District,
                Some("oslo"),
                vec![area(&d.code, &d.name)?],
                attrs,
            )?,
        )?;
        district_ids.push((id, d.code.clone()));
    }
    let register = decision(
        "Enhetsregisteret",
        "Brønnøysundregistrene",
        "2020-01-01",
        "Oslo kommunes etater og kommunale foretak (registeropplysninger, ikke et vedtak)",
    )?;
    for u in units.iter() {
        let kind = match u.kind.as_str() {
            "etat" => UnitKind::CentralAgency,
            "kommunalt_foretak" => UnitKind::MunicipalEnterprise,
            _ => continue,
        };
        b.push(
            on,
            &register,
            "register baseline",
            unit(
                &slug(&u.name),
                None,
                &u.name,
                kind,
                Some("oslo"),
                vec![],
                &[("orgnr", &u.orgnr)],
            )?,
        )?;
    }
    let services = modelled("2020-01-01", "tjenester og ansvar i Oslo")?;
    for (code, name, category) in [
        ("home-care", "Hjemmetjenester", "home care"),
        ("health-station", "Helsestasjon", "health station"),
        ("library", "Bibliotek", "library"),
        (
            "building-permit-guidance",
            "Byggesaksveiledning",
            "building-permit guidance",
        ),
        (
            "citizen-service-desk",
            "Innbyggerservice / servicetorg",
            "citizen service desk",
        ),
    ] {
        b.push(
            on,
            &services,
            "services modelled in the demo",
            service(code, name, category)?,
        )?;
    }
    let all_district_areas: Vec<String> = district_ids.iter().map(|(_, c)| c.clone()).collect();
    let mut city_wide = all_district_areas.clone();
    city_wide.extend(["030116".to_owned(), "030117".to_owned()]);
    for (id, code) in &district_ids {
        for s in ["home-care", "health-station", "citizen-service-desk"] {
            b.push(
                on,
                &services,
                "each district serves its own area",
                assign(s, id, std::slice::from_ref(code))?,
            )?;
        }
    }
    b.push(
        on,
        &services,
        "Deichman runs the city's libraries",
        assign("library", "deichman-bibliotek", &all_district_areas)?,
    )?;
    b.push(
        on,
        &services,
        "PBE guides building applicants city-wide",
        assign(
            "building-permit-guidance",
            "plan-og-bygningsetaten",
            &city_wide,
        )?,
    )?;
    Ok(b.commands)
}

/// The scenario a planner in Oslo would model first (DESIGN.md's "move home care from the
/// districts to a central agency"): home care centralised to Helseetaten. It is the kind of
/// change the city government's 2024 review of the division of tasks between the districts and
/// the city (*Bydelsprosjektet*) weighs, not a decision, so it lives in a scenario forked from
/// the baseline, never in the baseline itself.
fn oslo_home_care_scenario() -> Result<Vec<TimelineCommand>, ApiError> {
    let proposal = decision(
        "omorg-demo",
        "Bystyret (planlagt)",
        "2026-06-17",
        "Illustrativt forslag, ikke et vedtak: hjemmetjenester flyttes fra bydelene til \
         Helseetaten (en endring av typen Bydelsprosjektet vurderer)",
    )?;
    let mut b = Batch::new("oslo-home-care-central");
    b.push(
        date("2027-01-01")?,
        &proposal,
        "illustrative: one outcome the review of the division of tasks between the districts \
         and the city (Bydelsprosjektet, 2024) could lead to",
        Action::CentraliseService(Centralisation {
            service: id!(ServiceCode, "home-care"),
            agency: id!(UnitId, "helseetaten"),
        }),
    )?;
    Ok(b.commands)
}

#[derive(Debug, Deserialize)]
struct AskerFacts {
    merger: MergerFacts,
    renumbering: Vec<RenumberFacts>,
    local_centres: Vec<String>,
    existing_citizen_centres: Vec<String>,
    first_to_open: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct MergerFacts {
    effective_from: NaiveDate,
    sources: Vec<CodeName>,
    successor: CodeName,
}

#[derive(Debug, Deserialize)]
struct CodeName {
    code: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RenumberFacts {
    effective_from: NaiveDate,
    to: String,
    reason: String,
}

/// Which former municipality each local centre lies in (geography; see data/SOURCES.md).
fn former_municipality(centre: &str) -> &'static str {
    match centre {
        "Slemmestad" | "Spikkestad" => "0627",
        "Sætre" | "Tofte" => "0628",
        _ => "0220",
    }
}

/// The Asker baseline: Asker, Røyken and Hurum with their citizen service desks and libraries,
/// old Asker's two innbyggertorg, the 2020 merger into the new Asker (3025), its Innbyggertorg
/// business unit and the citizen centres in the seven local centres (the three the report would
/// open first, and the head office, in 2020; the others a year later), and the 2024 renumbering
/// to 3203.
pub fn asker_commands() -> Result<Vec<TimelineCommand>, ApiError> {
    let facts: AskerFacts =
        serde_yaml::from_str(ASKER).map_err(|e| bad("asker_merger_2020.yaml", e))?;
    let before = date("2019-01-01")?;
    let klass = decision(
        "SSB KLASS 131",
        "Statistisk sentralbyrå",
        "2019-01-01",
        "Kommuneinndeling: Asker, Røyken og Hurum (registerutgangspunkt, ikke et vedtak)",
    )?;
    let services = modelled("2019-01-01", "tjenester og ansvar i Asker, Røyken og Hurum")?;
    let mut b = Batch::new("asker");
    let old_id = |code: &str| format!("kommune-{code}");
    for m in &facts.merger.sources {
        b.push(
            before,
            &klass,
            "register baseline",
            unit(
                &old_id(&m.code),
                Some(&m.code),
                &format!("{} kommune", m.name),
                UnitKind::Municipality,
                None,
                vec![area(&m.code, &m.name)?],
                &[],
            )?,
        )?;
    }
    for (code, name, category) in [
        (
            "citizen-service-desk",
            "Innbyggerservice / servicetorg",
            "citizen service desk",
        ),
        ("library", "Bibliotek", "library"),
    ] {
        b.push(
            before,
            &services,
            "services modelled in the demo",
            service(code, name, category)?,
        )?;
    }
    for m in &facts.merger.sources {
        for s in ["citizen-service-desk", "library"] {
            b.push(
                before,
                &services,
                "each municipality serves its own area",
                assign(s, &old_id(&m.code), std::slice::from_ref(&m.code))?,
            )?;
        }
    }
    // The report describes the two as existing (under Kulturarena Asker); when they opened and
    // what each offers is not in the sources, so the reference says it is modelled.
    let existing = modelled(
        "2019-01-01",
        "Asker kommunes innbyggertorg i Heggedal og på Borgen, som utredningsrapporten beskriver",
    )?;
    for centre in &facts.existing_citizen_centres {
        b.push(
            before,
            &existing,
            "innbyggertorg already run by old Asker (Kulturarena Asker)",
            Action::OpenServicePoint(ServicePointDef {
                point: id!(ServicePointId, format!("innbyggertorg-{}", slug(centre))),
                name: format!("Innbyggertorg {centre}"),
                unit: id!(UnitId, old_id("0220")),
                area: Some(id!(AreaCode, "0220")),
                services: vec![id!(ServiceCode, "library")],
            }),
        )?;
    }
    let merger_on = facts.merger.effective_from;
    // The Storting decided the merger in its vote on the municipal structure (data/SOURCES.md);
    // the joint committee the facts name only prepared it.
    let merger = decision(
        "Innst. 386 S (2016–2017)",
        "Stortinget",
        "2017-06-08",
        "Endringer i kommunestrukturen (Prop. 96 S (2016–2017)): Asker, Røyken og Hurum slås \
         sammen til nye Asker kommune",
    )?;
    b.push(
        merger_on,
        &merger,
        "kommunereformen: the three municipalities become the new Asker",
        Action::MergeUnits(Merge {
            sources: facts
                .merger
                .sources
                .iter()
                .map(|m| UnitId::new(old_id(&m.code)).map_err(|e| bad("unit", e)))
                .collect::<Result<_, _>>()?,
            successor: Successor::New(UnitDef {
                unit: id!(UnitId, "asker"),
                code: Some(facts.merger.successor.code.clone()),
                name: format!("{} kommune", facts.merger.successor.name),
                kind: UnitKind::Municipality,
                parent: None,
                areas: vec![],
                attributes: BTreeMap::new(),
            }),
        }),
    )?;
    // The report feeds a political case on administrative organisation and innbyggertorg in the
    // spring of 2018 whose number and date the sources do not give.
    let organisation = modelled(
        "2018-06-01",
        "nye Askers administrative organisering og innbyggertorg (politisk sak våren 2018; \
         saksnummer og dato ikke i kildene)",
    )?;
    b.push(
        merger_on,
        &organisation,
        "the new municipality's organisation",
        unit(
            "asker-administrasjon",
            None,
            "Administrasjon og ledelse",
            UnitKind::ServiceArea,
            Some("asker"),
            vec![],
            &[],
        )?,
    )?;
    b.push(
        merger_on,
        &organisation,
        "one business unit runs the citizen centres",
        unit(
            "asker-innbyggertorg",
            None,
            "Innbyggertorg",
            UnitKind::BusinessUnit,
            Some("asker"),
            vec![],
            &[],
        )?,
    )?;
    // The report proposes an innbyggertorg in each of the seven local centres, every one with a
    // book offer, a staffed Innbyggerservice in at least three (one the head office, in Asker
    // sentrum), and to start where the municipal centre feels farthest away. The dates, and
    // which centres get the staffed desk, are the demo's reading of that.
    let placement = modelled(
        "2018-06-01",
        "innbyggertorg i de sju lokalsentrene etter utredningsrapporten og konseptpresentasjonen \
         for fellesnemnda 2018-02-16; datoer og bemannet Innbyggerservice modellert",
    )?;
    let later = date("2021-01-01")?;
    for centre in &facts.local_centres {
        if facts.existing_citizen_centres.contains(centre) {
            continue;
        }
        let staffed = centre == "Asker sentrum" || facts.first_to_open.contains(centre);
        let mut offers = vec![id!(ServiceCode, "library")];
        if staffed {
            offers.insert(0, id!(ServiceCode, "citizen-service-desk"));
        }
        b.push(
            if staffed { merger_on } else { later },
            &placement,
            if staffed {
                "an innbyggertorg with a staffed Innbyggerservice, opened first"
            } else {
                "an innbyggertorg in every local centre"
            },
            Action::OpenServicePoint(ServicePointDef {
                point: id!(ServicePointId, format!("innbyggertorg-{}", slug(centre))),
                name: format!("Innbyggertorg {centre}"),
                unit: id!(UnitId, "asker-innbyggertorg"),
                area: Some(id!(AreaCode, former_municipality(centre))),
                services: offers,
            }),
        )?;
    }
    // "Alle de 7 innbyggertorgene tilhører én virksomhet": the local centre whose innbyggertorg
    // old Asker already ran (Heggedal) is handed to the business unit with the merger; the
    // merger gave it to the new municipality. Borgen is not a local centre and stays.
    for centre in &facts.existing_citizen_centres {
        if !facts.local_centres.contains(centre) {
            continue;
        }
        b.push(
            merger_on,
            &placement,
            "the local centre's existing innbyggertorg joins the business unit",
            Action::TransferServicePoint(ServicePointTransfer {
                point: id!(ServicePointId, format!("innbyggertorg-{}", slug(centre))),
                from: id!(UnitId, "asker"),
                to: id!(UnitId, "asker-innbyggertorg"),
            }),
        )?;
    }
    for r in &facts.renumbering {
        // The 2024 number follows from the division of Viken, which the Storting decided on
        // 2022-06-14 (Prop. 113 LS (2021–2022)); see data/SOURCES.md.
        let d = decision(
            "Prop. 113 LS (2021–2022)",
            "Stortinget",
            "2022-06-14",
            &format!(
                "Deling av Viken, nytt kommunenummer for Asker: {}",
                r.reason
            ),
        )?;
        b.push(
            r.effective_from,
            &d,
            &r.reason,
            Action::RenameUnit(Rename {
                unit: id!(UnitId, "asker"),
                name: None,
                code: Some(r.to.clone()),
            }),
        )?;
    }
    Ok(b.commands)
}

/// The alternatives as the sources give them: in the working group's report, presented to the
/// joint committee on 2018-02-16 (a presentation, not a decision, which the title says).
fn alternatives_presented(what: &str) -> Result<DecisionRef, ApiError> {
    decision(
        "Konseptpresentasjon innbyggertorg",
        "Nye Asker fellesnemnda",
        "2018-02-16",
        &format!("Utredningsarbeid innbyggertorgene i nye Asker: {what}"),
    )
}

/// The two Innbyggerservice alternatives of the seed report, as commands on a scenario: a
/// department "Innbyggerservice" under `parent`, taking over the citizen service desk.
fn alternative(n: u8, parent: &str) -> Result<Vec<TimelineCommand>, ApiError> {
    let report = alternatives_presented(&format!(
        "organisering av Innbyggerservice, alternativ {n} (forslag, ikke vedtatt)"
    ))?;
    let on = date("2020-01-01")?;
    let mut b = Batch::new(&format!("asker-alt-{n}"));
    let dept = format!("asker-alt-{n}-innbyggerservice");
    b.push(
        on,
        &report,
        "Servicetorg becomes Innbyggerservice",
        unit(
            &dept,
            None,
            "Innbyggerservice",
            UnitKind::Department,
            Some(parent),
            vec![],
            &[],
        )?,
    )?;
    b.push(
        on,
        &report,
        "the department answers for the citizen service desk everywhere",
        Action::TransferResponsibility(omorg_domain::ResponsibilityTransfer {
            service: id!(ServiceCode, "citizen-service-desk"),
            from: id!(UnitId, "asker"),
            to: id!(UnitId, dept.as_str()),
            areas: None,
        }),
    )?;
    Ok(b.commands)
}

/// A planning scenario of the demo, forked from a baseline as the demo leaves it.
struct Scenario {
    id: String,
    name: String,
    from: NaiveDate,
    decision: DecisionRef,
    commands: Vec<TimelineCommand>,
}

/// The scenarios forked from the demo's baseline `timeline`.
fn scenarios(timeline: &str) -> Result<Vec<Scenario>, ApiError> {
    Ok(match timeline {
        "oslo" => vec![Scenario {
            id: "oslo-home-care-central".into(),
            name: "Hjemmetjenester under Helseetaten".into(),
            from: date("2027-01-01")?,
            decision: modelled(
                "2026-06-17",
                "planscenario: hjemmetjenester fra bydelene til en sentral etat",
            )?,
            commands: oslo_home_care_scenario()?,
        }],
        "asker" => [(1u8, "asker-innbyggertorg"), (2, "asker-administrasjon")]
            .into_iter()
            .map(|(alt, parent)| {
                Ok(Scenario {
                    id: format!("asker-alt-{alt}"),
                    name: format!("Innbyggerservice, alternativ {alt}"),
                    from: date("2020-01-01")?,
                    decision: alternatives_presented("alternative organiseringer")?,
                    commands: alternative(alt, parent)?,
                })
            })
            .collect::<Result<_, ApiError>>()?,
        _ => Vec::new(),
    })
}

/// A command id of the demo already used for a different command, or a demo timeline that exists
/// under another request, means the database holds the demo as an earlier release wrote it (its facts or references have been corrected since). The
/// stored history is never rewritten, so say so and how to get the current demo.
fn older_demo(e: ApiError) -> ApiError {
    match e {
        ApiError::Refused {
            source: source @ omorg_domain::DomainError::CommandIdReused { .. },
            ..
        } => ApiError::Conflict {
            rule: "command-id-reused",
            detail: format!(
                "{source}: this database holds the demo as an earlier omorg release loaded it, \
                 and a stored history is never rewritten; load the demo into a fresh database \
                 (e.g. remove omorg.db) to get the current one"
            ),
        },
        ApiError::Conflict {
            rule: rule @ "timeline-already-started",
            detail,
        } => ApiError::Conflict {
            rule,
            detail: format!(
                "{detail}: this database holds the demo as an earlier omorg release loaded it, \
                 and a stored history is never rewritten; load the demo into a fresh database \
                 (e.g. remove omorg.db) to get the current one"
            ),
        },
        other => other,
    }
}

/// Loads the demo into `app`: creates the timelines (if missing), applies every command (a
/// no-op when already applied), and forks the two Asker scenarios. Returns a one-line report.
#[tracing::instrument(name = "demo.load", skip(app))]
pub async fn load(app: &Omorg) -> Result<String, ApiError> {
    let mut report = Vec::new();
    // Whether anything was written: a second load finds everything applied, and says so.
    let mut wrote = false;
    for (id, name, created, commands) in [
        ("oslo", "Oslo kommune", "2020-01-01", oslo_commands()?),
        (
            "asker",
            "Asker kommune (nye Asker fra 2020)",
            "2019-01-01",
            asker_commands()?,
        ),
    ] {
        let create = CreateTimelineRequest {
            id: Some(id!(TimelineId, id)),
            name: name.into(),
            description: "omorg demo: see data/SOURCES.md".into(),
            command_id: Some(id!(CommandId, format!("{id}-create"))),
            effective_from: Some(date(created)?),
            decision: Some(decision(
                "omorg-demo",
                "omorg",
                created,
                &format!("Demo timeline {name}"),
            )?),
            rationale: String::new(),
        };
        let (_, created) = app
            .create_timeline(create, ACTOR)
            .await
            .map_err(older_demo)?;
        let n = commands.len() as u64;
        let result = app
            .execute(id, commands, true, ACTOR)
            .await
            .map_err(older_demo)?;
        wrote |= !created.duplicate || !result.duplicate;
        report.push(format!("{id}: {n} commands, version {}", result.version));
        // The scenarios fork from the baseline as the demo leaves it: creation + commands.
        for scenario in scenarios(id)? {
            let fork = ForkRequest {
                id: Some(id!(TimelineId, scenario.id.as_str())),
                name: scenario.name,
                version: Some(n + 1),
                command_id: Some(id!(CommandId, format!("{}-fork", scenario.id))),
                effective_from: Some(scenario.from),
                decision: Some(scenario.decision),
                rationale: String::new(),
            };
            let (_, forked) = app.fork(id, fork, ACTOR).await.map_err(older_demo)?;
            let result = app
                .execute(&scenario.id, scenario.commands, true, ACTOR)
                .await
                .map_err(older_demo)?;
            wrote |= !forked.duplicate || !result.duplicate;
            report.push(format!("{}: version {}", scenario.id, result.version));
        }
    }
    Ok(if wrote {
        format!("demo loaded: {}", report.join("; "))
    } else {
        format!(
            "demo already loaded, nothing written: {}",
            report.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use omorg_domain::Timeline;

    fn replay(commands: Vec<TimelineCommand>) -> Timeline {
        let mut t = Timeline::default();
        let create = TimelineCommand {
            context: commands[0].context.clone(),
            action: Action::CreateTimeline(omorg_domain::TimelineDef {
                name: "t".into(),
                description: String::new(),
            }),
        };
        let mut all = vec![create];
        all[0].context.command_id = CommandId::new("create").unwrap();
        all.extend(commands);
        for c in all {
            let id = c.context.command_id.clone();
            let e = t.decide(c).unwrap_or_else(|e| panic!("{id}: {e}")).unwrap();
            cqrs_es::Aggregate::apply(&mut t, e);
        }
        t
    }

    #[test]
    fn slugs_are_ascii() {
        assert_eq!(slug("Bydel Søndre Nordstrand"), "bydel-sondre-nordstrand");
        assert_eq!(
            slug("Origo - digitaliseringsenhet"),
            "origo-digitaliseringsenhet"
        );
        assert_eq!(slug("Sætre"), "saetre");
    }

    #[test]
    fn oslo_has_fifteen_districts_and_home_care_moves_only_in_the_scenario() {
        let hc = ServiceCode::new("home-care").unwrap();
        let gamle_oslo = AreaCode::new("030101").unwrap();
        let t = replay(oslo_commands().unwrap());
        let s = t.state_at(NaiveDate::from_ymd_opt(2027, 6, 1).unwrap());
        let districts: Vec<_> = s
            .live_units()
            .filter(|u| u.kind == UnitKind::District)
            .collect();
        assert_eq!(districts.len(), 15);
        assert!(districts
            .iter()
            .any(|u| u.code.as_deref() == Some("030115")));
        // The baseline holds no illustrative decision: the districts keep home care.
        assert_eq!(
            s.responsible(&hc, &gamle_oslo).unwrap().as_str(),
            "gamle-oslo"
        );
        let mut commands = oslo_commands().unwrap();
        commands.extend(oslo_home_care_scenario().unwrap());
        let t = replay(commands);
        let at = |y, m, d| t.state_at(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(
            at(2026, 12, 31)
                .responsible(&hc, &gamle_oslo)
                .unwrap()
                .as_str(),
            "gamle-oslo"
        );
        assert_eq!(
            at(2027, 1, 1)
                .responsible(&hc, &gamle_oslo)
                .unwrap()
                .as_str(),
            "helseetaten"
        );
    }

    #[test]
    fn only_register_and_storting_references_name_a_real_authority() {
        // Every reference is a register baseline, a decision the sources give, a proposal the
        // title calls one, or says it is modelled: an illustration never passes for a decision.
        let mut all = oslo_commands().unwrap();
        all.extend(asker_commands().unwrap());
        for s in ["oslo", "asker"] {
            for scenario in scenarios(s).unwrap() {
                all.push(TimelineCommand {
                    context: ChangeContext {
                        decision: scenario.decision,
                        ..all[0].context.clone()
                    },
                    action: all[0].action.clone(),
                });
                all.extend(scenario.commands);
            }
        }
        for c in &all {
            let d = &c.context.decision;
            let ok = match d.case_number.as_str() {
                "SSB KLASS 103" | "SSB KLASS 131" | "Enhetsregisteret" => {
                    d.title.contains("ikke et vedtak")
                }
                "Innst. 386 S (2016–2017)" | "Prop. 113 LS (2021–2022)" => {
                    d.body == "Stortinget"
                }
                "Konseptpresentasjon innbyggertorg" => d.decision_date.to_string() == "2018-02-16",
                "omorg-demo" => d.title.contains("ikke et vedtak"),
                _ => false,
            };
            assert!(ok, "{}: {d:?}", c.context.command_id);
        }
    }

    #[test]
    fn asker_merges_in_2020_and_is_renumbered_in_2024() {
        let t = replay(asker_commands().unwrap());
        let s = t.state_at(NaiveDate::from_ymd_opt(2019, 12, 31).unwrap());
        assert_eq!(
            s.live_units()
                .filter(|u| u.kind == UnitKind::Municipality)
                .count(),
            3
        );
        let s = t.state_at(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap());
        let asker = &s.units[&UnitId::new("asker").unwrap()];
        assert_eq!(asker.code.as_deref(), Some("3025"));
        assert_eq!(s.areas_of(&asker.id).len(), 3);
        // Old Asker's two, the head office and the three the report would open first…
        let open = |s: &omorg_domain::OrgState| {
            let mut v: Vec<_> = s
                .service_points
                .values()
                .filter(|p| p.is_open())
                .map(|p| p.name.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            open(&s),
            [
                "Innbyggertorg Asker sentrum",
                "Innbyggertorg Borgen",
                "Innbyggertorg Heggedal",
                "Innbyggertorg Spikkestad",
                "Innbyggertorg Sætre",
                "Innbyggertorg Tofte"
            ]
        );
        // …and a year later all seven local centres and Borgen.
        let s2021 = t.state_at(NaiveDate::from_ymd_opt(2021, 1, 1).unwrap());
        assert_eq!(open(&s2021).len(), 8);
        // The seven local centres' innbyggertorg are one business unit's, Heggedal (old
        // Asker's) handed over with the merger; Borgen stays with the municipality.
        let runner = |s: &omorg_domain::OrgState, point: &str| {
            s.service_points[&ServicePointId::new(point).unwrap()]
                .unit
                .to_string()
        };
        let before = t.state_at(NaiveDate::from_ymd_opt(2019, 12, 31).unwrap());
        assert_eq!(runner(&before, "innbyggertorg-heggedal"), "kommune-0220");
        assert_eq!(runner(&s, "innbyggertorg-heggedal"), "asker-innbyggertorg");
        assert_eq!(runner(&s, "innbyggertorg-borgen"), "asker");
        assert_eq!(
            s2021
                .points_of(&UnitId::new("asker-innbyggertorg").unwrap())
                .len(),
            7
        );
        let s = t.state_at(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        assert_eq!(
            s.units[&UnitId::new("asker").unwrap()].code.as_deref(),
            Some("3203")
        );
    }
}

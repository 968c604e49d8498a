//! Text renderings of query answers: CSV for tables, Graphviz DOT and Mermaid for org charts.
//! Every CSV goes through one writer, which keeps user text from running as a spreadsheet
//! formula ([`neutralised`]).

use crate::queries::{DecisionLog, FeedPage, OrgChart, Responsibilities, ServiceHistory, UnitNode};
use std::borrow::Cow;
use std::fmt::Write;

/// An output format of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON (the default).
    #[default]
    Json,
    /// CSV with a header row.
    Csv,
    /// Graphviz DOT (org charts only).
    Dot,
    /// Mermaid flowchart (org charts only).
    Mermaid,
}

impl Format {
    /// The media type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Dot => "text/vnd.graphviz; charset=utf-8",
            Self::Mermaid => "text/plain; charset=utf-8",
        }
    }
}

/// Visits every node depth-first with its parent id and depth.
fn walk<'a>(
    nodes: &'a [UnitNode],
    parent: Option<&'a str>,
    depth: usize,
    out: &mut Vec<(&'a UnitNode, Option<&'a str>, usize)>,
) {
    for n in nodes {
        out.push((n, parent, depth));
        walk(&n.children, Some(&n.id), depth + 1, out);
    }
}

fn flatten(chart: &OrgChart) -> Vec<(&UnitNode, Option<&str>, usize)> {
    let mut out = Vec::new();
    walk(&chart.units, None, 0, &mut out);
    out
}

/// A CSV cell: text that came from a user (a name, a title, an id, a case number) or a value
/// the system produced (a date, a count, a version, an event type, a unit kind).
enum Cell<'a> {
    User(&'a str),
    System(Cow<'a, str>),
}

fn user(s: &str) -> Cell<'_> {
    Cell::User(s)
}

fn sys<'a>(s: impl Into<Cow<'a, str>>) -> Cell<'a> {
    Cell::System(s.into())
}

/// User text as a spreadsheet will show it, not run it.
///
/// A cell starting with `=`, `+`, `-`, `@`, TAB or CR is taken for a formula by spreadsheet
/// programs, so a unit named `=HYPERLINK(…)` in an exported org chart would run when a planner
/// opens the file (OWASP "CSV Injection"). Such a cell gets a leading `'`, which spreadsheets
/// read as "text" and do not show. Values the system produces never start that way (dates,
/// counts, versions, fixed names) and are written as they are.
pub fn neutralised(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A CSV table with a header row, in which every user cell is [`neutralised`]: the one
/// writer of every CSV the API and the CLI produce.
struct Table(csv::Writer<Vec<u8>>);

impl Table {
    fn new(header: &[&str]) -> Result<Self, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header)?;
        Ok(Self(w))
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), csv::Error> {
        for cell in cells {
            let text = match cell {
                Cell::User(s) => neutralised(s),
                Cell::System(s) => Cow::Borrowed(s.as_ref()),
            };
            self.0.write_field(text.as_bytes())?;
        }
        // Ends the record the fields above started.
        self.0.write_record(None::<&[u8]>)
    }

    fn finish(self) -> Result<String, csv::Error> {
        let bytes = self
            .0
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        // Every field written was a Rust string, so the bytes are UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The org chart as CSV: one row per unit, depth-first, with its parent and areas.
pub fn org_chart_csv(chart: &OrgChart) -> Result<String, csv::Error> {
    let mut t = Table::new(&[
        "id",
        "code",
        "name",
        "kind",
        "parent",
        "depth",
        "areas",
        "responsibilities",
        "service_points",
    ])?;
    for (n, parent, depth) in flatten(chart) {
        let areas: Vec<&str> = n.areas.iter().map(|a| a.code.as_str()).collect();
        let points: Vec<&str> = n.service_points.iter().map(|p| p.id.as_str()).collect();
        t.row(&[
            user(&n.id),
            user(n.code.as_deref().unwrap_or("")),
            user(&n.name),
            sys(n.kind.as_str()),
            user(parent.unwrap_or("")),
            sys(depth.to_string()),
            user(&areas.join(";")),
            sys(n.responsibilities.to_string()),
            user(&points.join(";")),
        ])?;
    }
    t.finish()
}

/// The responsibility matrix as CSV.
pub fn responsibilities_csv(r: &Responsibilities) -> Result<String, csv::Error> {
    let mut t = Table::new(&[
        "service",
        "service_name",
        "area",
        "area_name",
        "unit",
        "unit_name",
    ])?;
    for row in &r.rows {
        t.row(&[
            user(&row.service),
            user(&row.service_name),
            user(&row.area),
            user(&row.area_name),
            user(&row.unit),
            user(&row.unit_name),
        ])?;
    }
    t.finish()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A service's responsibility versions as CSV (one row per area and period).
pub fn service_history_csv(h: &ServiceHistory) -> Result<String, csv::Error> {
    let mut t = Table::new(&[
        "service",
        "area",
        "unit",
        "effective_from",
        "effective_to",
        "recorded_from",
    ])?;
    for r in &h.responsibilities {
        t.row(&[
            user(&r.service_code),
            user(&r.area_code),
            user(&r.unit_id),
            sys(r.effective_from.to_string()),
            sys(opt(&r.effective_to)),
            sys(r.recorded_from.to_rfc3339()),
        ])?;
    }
    t.finish()
}

/// The decision log as CSV.
pub fn decisions_csv(log: &DecisionLog) -> Result<String, csv::Error> {
    let mut t = Table::new(&[
        "stream_version",
        "case_number",
        "body",
        "decision_date",
        "title",
        "event_type",
        "command_id",
        "effective_from",
        "recorded_at",
        "revoked_at",
        "inherited_from",
    ])?;
    for d in &log.decisions {
        t.row(&[
            sys(d.stream_version.to_string()),
            user(&d.case_number),
            user(&d.body),
            sys(d.decision_date.to_string()),
            user(&d.title),
            sys(d.event_type.as_str()),
            user(&d.command_id),
            sys(d.effective_from.to_string()),
            sys(d.recorded_at.to_rfc3339()),
            sys(opt(&d.revoked_at.map(|t| t.to_rfc3339()))),
            user(d.inherited_from.as_deref().unwrap_or_default()),
        ])?;
    }
    t.finish()
}

/// A page of the change feed as CSV.
pub fn change_feed_csv(page: &FeedPage) -> Result<String, csv::Error> {
    let mut t = Table::new(&[
        "position",
        "stream_version",
        "event_type",
        "command_id",
        "case_number",
        "effective_from",
        "summary",
    ])?;
    for e in &page.entries {
        t.row(&[
            sys(e.position.to_string()),
            sys(e.stream_version.to_string()),
            sys(e.event_type.as_str()),
            user(&e.command_id),
            user(&e.case_number),
            sys(e.effective_from.to_string()),
            // Written by the system, but it starts with a user's id or name ("=x renamed …").
            user(&e.summary),
        ])?;
    }
    t.finish()
}

/// A DOT string literal. Line breaks become DOT's `\n` escape and other control characters
/// spaces: a name is one value, and a raw line break would end up in the file as is.
fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Mermaid label: line breaks as `<br/>`, other control characters as spaces, so that each
/// node stays on its line of the flowchart; and as text, not markup: `"` ends the label, `#…;`
/// is an entity and `<…>` HTML (with the default HTML labels), so those characters are written
/// as entity codes.
fn mermaid_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\r' | '\n' => {
                // `\r\n` is one break.
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br/>");
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The org chart as a Graphviz digraph (parent → child).
pub fn org_chart_dot(chart: &OrgChart) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "digraph {} {{",
        dot_quote(&format!("{} {}", chart.timeline, chart.as_of))
    );
    let _ = writeln!(s, "  rankdir=LR;\n  node [shape=box];");
    for (n, parent, _) in flatten(chart) {
        let label = match &n.code {
            Some(code) => format!("{}\n{} ({code})", n.name, n.kind),
            None => format!("{}\n{}", n.name, n.kind),
        };
        let _ = writeln!(s, "  {} [label={}];", dot_quote(&n.id), dot_quote(&label));
        if let Some(p) = parent {
            let _ = writeln!(s, "  {} -> {};", dot_quote(p), dot_quote(&n.id));
        }
        // Service points (an innbyggertorg) hang off the unit that runs them, drawn apart from
        // the units; their node ids are prefixed so they cannot meet a unit's.
        for point in &n.service_points {
            let id = format!("point:{}", point.id);
            let label = format!("{}\n{}", point.name, point.services.join(", "));
            let _ = writeln!(
                s,
                "  {} [label={}, shape=note];\n  {} -> {} [style=dashed];",
                dot_quote(&id),
                dot_quote(&label),
                dot_quote(&n.id),
                dot_quote(&id)
            );
        }
    }
    s.push_str("}\n");
    s
}

/// The org chart as a Mermaid flowchart. Node ids are positional (`u0`, `u1`, …) because
/// Mermaid ids cannot hold arbitrary characters; labels carry the names.
pub fn org_chart_mermaid(chart: &OrgChart) -> String {
    let nodes = flatten(chart);
    let index: std::collections::HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (n, _, _))| (n.id.as_str(), i))
        .collect();
    let mut s = String::from("flowchart TD\n");
    let mut points = 0;
    for (i, (n, parent, _)) in nodes.iter().enumerate() {
        let label = mermaid_label(&n.name);
        let _ = writeln!(s, "  u{i}[\"{label}\"]");
        if let Some(p) = parent.and_then(|p| index.get(p)) {
            let _ = writeln!(s, "  u{p} --> u{i}");
        }
        // Service points hang off the unit that runs them, with a dotted link and a rounded
        // node (`p0`, `p1`, …).
        for point in &n.service_points {
            let label = mermaid_label(&format!("{}\n{}", point.name, point.services.join(", ")));
            let _ = writeln!(s, "  p{points}([\"{label}\"])\n  u{i} -.-> p{points}");
            points += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::AreaRef;

    fn chart() -> OrgChart {
        let leaf = UnitNode {
            id: "gamle-oslo".into(),
            code: Some("030101".into()),
            name: "Bydel \"Gamle\" Oslo".into(),
            kind: "district".into(),
            areas: vec![AreaRef {
                code: "030101".into(),
                name: "Gamle Oslo".into(),
            }],
            responsibilities: 2,
            service_points: vec![],
            children: vec![],
        };
        OrgChart {
            timeline: "oslo".into(),
            as_of: "2025-01-01".parse().expect("date"),
            known_version: 3,
            units: vec![UnitNode {
                id: "oslo".into(),
                code: Some("0301".into()),
                name: "Oslo kommune".into(),
                kind: "municipality".into(),
                areas: vec![],
                responsibilities: 0,
                service_points: vec![],
                children: vec![leaf],
            }],
        }
    }

    #[test]
    fn renders_every_format_with_edges_and_escapes() {
        let c = chart();
        let csv = org_chart_csv(&c).unwrap();
        assert!(csv
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("gamle-oslo,030101,\"Bydel \"\"Gamle\"\" Oslo\",district,oslo,1,030101"));
        let dot = org_chart_dot(&c);
        assert!(dot.contains("\"oslo\" -> \"gamle-oslo\";") && dot.contains("\\\"Gamle\\\""));
        let mermaid = org_chart_mermaid(&c);
        assert!(mermaid.contains("u0 --> u1") && mermaid.contains("#quot;Gamle#quot;"));
    }

    #[test]
    fn service_points_hang_off_the_unit_that_runs_them() {
        let mut c = chart();
        c.units[0].children[0].service_points = vec![crate::queries::PointNode {
            id: "torget".into(),
            name: "Innbyggertorg \"Torget\"".into(),
            area: Some("030101".into()),
            services: vec!["library".into(), "citizen-service-desk".into()],
        }];
        let dot = org_chart_dot(&c);
        assert!(
            dot.contains("\"point:torget\" [label=\"Innbyggertorg \\\"Torget\\\"\\nlibrary, citizen-service-desk\", shape=note];"),
            "{dot}"
        );
        assert!(
            dot.contains("\"gamle-oslo\" -> \"point:torget\" [style=dashed];"),
            "{dot}"
        );
        let mermaid = org_chart_mermaid(&c);
        assert!(
            mermaid.contains(
                "p0([\"Innbyggertorg #quot;Torget#quot;<br/>library, citizen-service-desk\"])"
            ),
            "{mermaid}"
        );
        assert!(mermaid.contains("u1 -.-> p0"), "{mermaid}");
    }

    #[test]
    fn mermaid_labels_are_text_not_markup() {
        let mut c = chart();
        c.units[0].children[0].name = "<b>Bydel</b> #35; A & B".into();
        let mermaid = org_chart_mermaid(&c);
        assert!(
            mermaid.contains("#lt;b#gt;Bydel#lt;/b#gt; #35;35; A #amp; B"),
            "{mermaid}"
        );
        assert!(!mermaid.contains("<b>"), "{mermaid}");
    }

    #[test]
    fn line_breaks_in_names_stay_inside_their_labels() {
        let mut c = chart();
        c.units[0].children[0].name = "Bydel\nGamle\r\nOslo\u{7}".into();
        let dot = org_chart_dot(&c);
        assert!(
            dot.contains("\"Bydel\\nGamle\\nOslo \\ndistrict (030101)\""),
            "{dot}"
        );
        // Every statement on a line of its own: the raw breaks did not reach the file.
        assert!(
            dot.lines()
                .all(|l| l.ends_with(';') || l.ends_with('{') || l == "}"),
            "{dot}"
        );
        let mermaid = org_chart_mermaid(&c);
        assert!(
            mermaid.contains("u1[\"Bydel<br/>Gamle<br/>Oslo \"]"),
            "{mermaid}"
        );
        assert_eq!(mermaid.lines().count(), 4, "{mermaid}");
    }

    /// Parses CSV text into its rows (the header included).
    fn cells(csv: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    const FORMULAS: [(&str, &str); 6] = [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
    ];

    #[test]
    fn user_text_that_a_spreadsheet_would_run_is_quoted_in_the_org_chart() {
        let mut c = chart();
        let leaf = c.units[0].children[0].clone();
        c.units[0].children = FORMULAS
            .iter()
            .enumerate()
            .map(|(i, (name, _))| UnitNode {
                id: format!("u{i}"),
                name: (*name).into(),
                ..leaf.clone()
            })
            .collect();
        c.units[0].children[0].id = "=id".into();
        c.units[0].children[0].code = Some("-0301".into());
        let rows = cells(&org_chart_csv(&c).unwrap());
        // The header and the root, a normal name, unchanged.
        assert_eq!(rows[0][2], "name");
        assert_eq!(
            rows[1][..4],
            ["oslo", "0301", "Oslo kommune", "municipality"]
        );
        for (row, (_, shown)) in rows[2..].iter().zip(FORMULAS) {
            assert_eq!(row[2], shown, "{row:?}");
            // System values as they are; the parent, a normal id, too.
            assert_eq!(row[3..6], ["district", "oslo", "1"], "{row:?}");
        }
        assert_eq!(rows[2][..2], ["'=id", "'-0301"]);
    }

    #[test]
    fn user_text_that_a_spreadsheet_would_run_is_quoted_in_the_decision_log() {
        let at: chrono::DateTime<chrono::Utc> = "2025-01-02T03:04:05Z".parse().unwrap();
        let row = |case: &str, title: &str| omorg_projections::queries::DecisionRow {
            stream_version: 2,
            inherited_from: None,
            command_id: format!("{case}-cmd"),
            event_type: "UnitRenamed".into(),
            case_number: case.into(),
            body: "Bystyret".into(),
            decision_date: "2024-12-01".parse().unwrap(),
            title: title.into(),
            link: None,
            actor: "a".into(),
            rationale: String::new(),
            effective_from: "2025-01-01".parse().unwrap(),
            recorded_at: at,
            revoked_at: None,
        };
        let mut decisions = vec![row("25/1", "Bydelsreformen")];
        decisions.extend(FORMULAS.iter().map(|(text, _)| row(text, text)));
        let log = DecisionLog {
            timeline: "oslo".into(),
            decisions,
        };
        let rows = cells(&decisions_csv(&log).unwrap());
        assert_eq!(
            rows[1],
            [
                "2",
                "25/1",
                "Bystyret",
                "2024-12-01",
                "Bydelsreformen",
                "UnitRenamed",
                "25/1-cmd",
                "2025-01-01",
                "2025-01-02T03:04:05+00:00",
                "",
                ""
            ]
        );
        for (row, (text, shown)) in rows[2..].iter().zip(FORMULAS) {
            assert_eq!(
                (row[1].as_str(), row[4].as_str()),
                (shown, shown),
                "{row:?}"
            );
            assert_eq!(row[6], format!("'{text}-cmd"), "{row:?}");
            assert_eq!((row[0].as_str(), row[3].as_str()), ("2", "2024-12-01"));
        }
    }

    #[test]
    fn user_text_that_a_spreadsheet_would_run_is_quoted_in_every_other_table() {
        let (evil, shown) = ("=1+1", "'=1+1");
        let r = Responsibilities {
            timeline: "oslo".into(),
            as_of: "2025-01-01".parse().unwrap(),
            known_version: 1,
            rows: vec![crate::queries::ResponsibilityRow {
                service: evil.into(),
                service_name: evil.into(),
                area: evil.into(),
                area_name: evil.into(),
                unit: evil.into(),
                unit_name: "Helseetaten".into(),
            }],
        };
        let rows = cells(&responsibilities_csv(&r).unwrap());
        assert_eq!(rows[1], [shown, shown, shown, shown, shown, "Helseetaten"]);

        let at: chrono::DateTime<chrono::Utc> = "2025-01-02T03:04:05Z".parse().unwrap();
        let h = ServiceHistory {
            timeline: "oslo".into(),
            service: evil.into(),
            versions: vec![],
            responsibilities: vec![omorg_projections::queries::ResponsibilityVersion {
                service_code: evil.into(),
                area_code: "030101".into(),
                unit_id: evil.into(),
                effective_from: "2025-01-01".parse().unwrap(),
                effective_to: None,
                recorded_from: at,
                recorded_to: None,
            }],
        };
        let rows = cells(&service_history_csv(&h).unwrap());
        assert_eq!(
            rows[1],
            [
                shown,
                "030101",
                shown,
                "2025-01-01",
                "",
                "2025-01-02T03:04:05+00:00"
            ]
        );

        let page = FeedPage {
            timeline: "oslo".into(),
            entries: vec![omorg_projections::queries::FeedEntry {
                position: 7,
                stream_version: 3,
                event_type: "UnitDissolved".into(),
                command_id: evil.into(),
                case_number: evil.into(),
                effective_from: "2025-01-01".parse().unwrap(),
                recorded_at: at,
                summary: format!("{evil} dissolved"),
            }],
            next: 7,
        };
        let rows = cells(&change_feed_csv(&page).unwrap());
        assert_eq!(
            rows[1],
            [
                "7",
                "3",
                "UnitDissolved",
                shown,
                shown,
                "2025-01-01",
                "'=1+1 dissolved"
            ]
        );
    }
}

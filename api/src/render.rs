//! Text renderings of query answers: CSV for tables, Graphviz DOT and Mermaid for org charts.

use crate::queries::{DecisionLog, FeedPage, OrgChart, Responsibilities, ServiceHistory, UnitNode};
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

/// The org chart as CSV: one row per unit, depth-first, with its parent and areas.
pub fn org_chart_csv(chart: &OrgChart) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
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
        w.write_record([
            n.id.as_str(),
            n.code.as_deref().unwrap_or(""),
            n.name.as_str(),
            n.kind.as_str(),
            parent.unwrap_or(""),
            &depth.to_string(),
            &areas.join(";"),
            &n.responsibilities.to_string(),
            &points.join(";"),
        ])?;
    }
    into_string(w)
}

/// The responsibility matrix as CSV.
pub fn responsibilities_csv(r: &Responsibilities) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "service",
        "service_name",
        "area",
        "area_name",
        "unit",
        "unit_name",
    ])?;
    for row in &r.rows {
        w.write_record([
            &row.service,
            &row.service_name,
            &row.area,
            &row.area_name,
            &row.unit,
            &row.unit_name,
        ])?;
    }
    into_string(w)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A service's responsibility versions as CSV (one row per area and period).
pub fn service_history_csv(h: &ServiceHistory) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "service",
        "area",
        "unit",
        "effective_from",
        "effective_to",
        "recorded_from",
    ])?;
    for r in &h.responsibilities {
        w.write_record([
            &r.service_code,
            &r.area_code,
            &r.unit_id,
            &r.effective_from.to_string(),
            &opt(&r.effective_to),
            &r.recorded_from.to_rfc3339(),
        ])?;
    }
    into_string(w)
}

/// The decision log as CSV.
pub fn decisions_csv(log: &DecisionLog) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
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
    ])?;
    for d in &log.decisions {
        w.write_record([
            &d.stream_version.to_string(),
            &d.case_number,
            &d.body,
            &d.decision_date.to_string(),
            &d.title,
            &d.event_type,
            &d.command_id,
            &d.effective_from.to_string(),
            &d.recorded_at.to_rfc3339(),
            &opt(&d.revoked_at.map(|t| t.to_rfc3339())),
        ])?;
    }
    into_string(w)
}

/// A page of the change feed as CSV.
pub fn change_feed_csv(page: &FeedPage) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "position",
        "stream_version",
        "event_type",
        "command_id",
        "case_number",
        "effective_from",
        "summary",
    ])?;
    for e in &page.entries {
        w.write_record([
            &e.position.to_string(),
            &e.stream_version.to_string(),
            &e.event_type,
            &e.command_id,
            &e.case_number,
            &e.effective_from.to_string(),
            &e.summary,
        ])?;
    }
    into_string(w)
}

fn into_string(w: csv::Writer<Vec<u8>>) -> Result<String, csv::Error> {
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    // Every field written was a Rust string, so the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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

/// A Mermaid label: quotes as `#quot;`, line breaks as `<br/>`, other control characters as
/// spaces, so that each node stays on its line of the flowchart.
fn mermaid_label(s: &str) -> String {
    s.replace("\r\n", "<br/>")
        .chars()
        .fold(String::with_capacity(s.len()), |mut out, c| {
            match c {
                '"' => out.push_str("#quot;"),
                '\n' | '\r' => out.push_str("<br/>"),
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
            out
        })
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
    for (i, (n, parent, _)) in nodes.iter().enumerate() {
        let label = mermaid_label(&n.name);
        let _ = writeln!(s, "  u{i}[\"{label}\"]");
        if let Some(p) = parent.and_then(|p| index.get(p)) {
            let _ = writeln!(s, "  u{p} --> u{i}");
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
}

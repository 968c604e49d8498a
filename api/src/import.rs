//! Reading import files into commands.
//!
//! Files are UTF-8 ([`decode`] names the first byte that is not); a leading byte order mark is
//! taken off.
//!
//! - `.yaml`/`.yml`/`.json`: a list of commands (or `{commands: [...]}`, with no other member) in
//!   the API's JSON shape; a command without `actor` gets the importer's.
//! - `.csv`: a table recognised by its header, which may hold only that table's columns, each
//!   once (an unnamed column only while empty):
//!   - units: `unit,name,kind[,code,parent,areas,effective_from]` (`areas`: `code=name;…`),
//!   - services: `service,name[,category,effective_from]`,
//!   - responsibilities: `service,unit,areas[,effective_from]` (`areas`: `code;code`).
//!
//!   Each row becomes one command whose id is derived from the timeline, the table kind and the
//!   row's key, so re-importing the same file is a no-op. A unit, a service, or a service and
//!   area is given in one row (a repeat is refused naming both lines); one unit's areas of a
//!   service may be split across rows, each further row's key adding its first area. The
//!   decision comes from the `--case-number/--body/--title` options.

use crate::cli::{invalid_argument, CliError};
use crate::config::ImportArgs;
use crate::error::{batch_command_from_value, command_from_value};
use crate::ApiError;
use omorg_domain::TimelineCommand;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// An import file read into commands.
#[derive(Debug)]
pub struct ImportFile {
    /// The commands, in file order.
    pub commands: Vec<TimelineCommand>,
    /// Where each command is in the file, for messages about it.
    pub origins: Vec<Origin>,
}

/// Where a command is in its import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A CSV row, by its line (the header is line 1).
    Line(u64),
    /// An entry of a YAML/JSON command list, by its 0-based index (as the API's batches).
    Index(usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Index(i) => write!(f, "command {i}"),
        }
    }
}

/// An import file's bytes as text: UTF-8, or an error naming the line and byte offset of the
/// first byte that is not, with what the file probably is instead.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, CliError> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let file = path.display();
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return CliError::Input(format!(
                "{file}: not UTF-8: the file is in UTF-16 (it starts with a UTF-16 byte order \
                 mark); save it as UTF-8 (in Excel: \"CSV UTF-8\") and import it again"
            ));
        }
        let offset = e.utf8_error().valid_up_to();
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // The valid text just before the byte, to find it by: at most 30 characters.
        let prefix = String::from_utf8_lossy(&before[line_start..]);
        let skip = prefix.chars().count().saturating_sub(30);
        let after: String = prefix.chars().skip(skip).collect();
        let context = if after.is_empty() {
            "at the start of the line".to_owned()
        } else {
            format!("after {after:?}")
        };
        CliError::Input(format!(
            "{file}: not UTF-8: line {line}, byte offset {offset} (counting from 0): byte \
             0x{:02X} {context} is not valid UTF-8; the file is probably in Windows-1252 or \
             Latin-1 (ISO-8859-1), as older spreadsheets save it: save it as UTF-8 (in Excel: \
             \"CSV UTF-8\") and import it again",
            bytes[offset]
        ))
    })
}

/// Parses an import file (by extension) into commands, in file order. A UTF-8 byte order mark
/// at the start (as Windows editors write it) is taken off.
pub fn parse_file(path: &Path, text: &str, args: &ImportArgs) -> Result<ImportFile, CliError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let values = match ext.as_str() {
        "json" => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| CliError::Input(format!("{}: not valid JSON: {e}", path.display())))?;
            command_list(path, v)?
        }
        "yaml" | "yml" => {
            let v: Value = serde_yaml::from_str(text)
                .map_err(|e| CliError::Input(format!("{}: not valid YAML: {e}", path.display())))?;
            command_list(path, v)?
        }
        "csv" => csv_commands(path, text, args)?,
        other => {
            return Err(CliError::Usage(format!(
                "{}: unknown file type {other:?} (expected .yaml, .yml, .json or .csv)",
                path.display()
            )))
        }
    };
    let mut file = ImportFile {
        commands: Vec::with_capacity(values.len()),
        origins: Vec::with_capacity(values.len()),
    };
    for (origin, mut v) in values {
        if let Some(o) = v.as_object_mut() {
            o.entry("actor").or_insert_with(|| json!(args.actor));
        }
        let command = match origin {
            // The index is already in the error (as the API reports a batch's command).
            Origin::Index(i) => batch_command_from_value(v, i)
                .map_err(|e| CliError::Input(format!("{}: {}", path.display(), detail(&e)))),
            Origin::Line(_) => command_from_value(v).map_err(|e| {
                CliError::Input(format!("{}: {origin}: {}", path.display(), detail(&e)))
            }),
        }?;
        file.commands.push(command);
        file.origins.push(origin);
    }
    Ok(file)
}

/// A problem's detail and field, on one line.
fn detail(e: &ApiError) -> String {
    let p = e.problem();
    let field = p
        .field
        .map(|f| format!(" [field: {f}]"))
        .unwrap_or_default();
    format!("{}{field}", p.detail)
}

fn command_list(path: &Path, v: Value) -> Result<Vec<(Origin, Value)>, CliError> {
    let items = match v {
        Value::Array(items) => Some(items),
        Value::Object(mut o) => match o.remove("commands") {
            Some(Value::Array(items)) => {
                // Refused, never ignored, as the API refuses a member a request does not have:
                // a dropped member would change what the import does (`timeline` would not
                // choose the timeline). A null is taken as absent, as in the API.
                if let Some((member, _)) = o.iter().find(|(_, v)| !v.is_null()) {
                    return Err(CliError::Input(format!(
                        "{}: unknown top-level member `{member}`: an import file is a list of \
                         commands or {{commands: [...]}} and nothing else (the timeline is \
                         chosen with --timeline, the actor with --actor or each command's \
                         `actor`) [field: {member}]",
                        path.display()
                    )));
                }
                Some(items)
            }
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| {
        CliError::Input(format!(
            "{}: expected a list of commands or {{commands: [...]}}",
            path.display()
        ))
    })?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Origin::Index(i), v))
        .collect())
}

fn csv_commands(
    path: &Path,
    text: &str,
    args: &ImportArgs,
) -> Result<Vec<(Origin, Value)>, CliError> {
    let file = path.display();
    for (option, date) in [
        ("--effective-from", args.effective_from),
        ("--decision-date", args.decision_date),
    ] {
        if let Some(d) = date {
            crate::service::check_date_range(option, d).map_err(|e| invalid_argument(option, e))?;
        }
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| CliError::Input(format!("{file}: CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let has = |h: &str| headers.iter().any(|x| x == h);
    let kind = if has("unit") && has("kind") {
        "units"
    } else if has("service") && has("unit") && has("areas") {
        "responsibilities"
    } else if has("service") && has("name") {
        "services"
    } else {
        // The two usual slips from a spreadsheet, said as such.
        let hint = if headers.len() == 1 && headers[0].contains(';') {
            " (the columns are separated by `;`: save the sheet as comma-separated CSV; `;` \
             separates the areas inside a cell)"
        } else if headers.iter().any(|h| {
            let lower = h.to_lowercase();
            lower != *h && ["unit", "service", "name", "kind", "areas"].contains(&lower.as_str())
        }) {
            " (column names are lower case: `unit`, not `Unit`)"
        } else {
            ""
        };
        return Err(CliError::Input(format!(
            "{file}: unrecognised CSV header {headers:?}: expected units (unit,name,kind,…), services \
             (service,name,…) or responsibilities (service,unit,areas,…){hint}"
        )));
    };
    check_header(&file.to_string(), kind, &headers)?;
    let decision = |effective: &str| -> Result<Value, CliError> {
        let need = |o: &Option<String>, name: &str| {
            o.clone().ok_or_else(|| {
                CliError::Usage(format!(
                    "importing a CSV needs --{name} (the decision behind it)"
                ))
            })
        };
        Ok(json!({
            "case_number": need(&args.case_number, "case-number")?,
            "body": need(&args.body, "body")?,
            "title": need(&args.title, "title")?,
            "decision_date": args.decision_date.map_or_else(|| effective.to_owned(), |d| d.to_string()),
        }))
    };
    let mut out = Vec::new();
    // The line each unit, service, and service and area was first given on, to name both lines
    // of a repeat; and how many rows each assignment (service, unit, date) has had.
    let mut units_seen: HashMap<String, u64> = HashMap::new();
    let mut services_seen: HashMap<String, u64> = HashMap::new();
    let mut pairs_seen: HashMap<(String, String), (u64, String)> = HashMap::new();
    // Each responsibility row's pair (service, unit, date) and its smallest area, by its place
    // in `out`: the ids of a pair given in several rows are settled once all rows are read.
    let mut assignment_rows: Vec<(usize, Pair, Option<String>)> = Vec::new();
    // The line a record starts on, from its byte offset: the reader's own line count is one
    // short after a CRLF header (what Excel writes) and after blank lines, and the line is in
    // the rationale, which is kept with the event. A quoted cell may span lines.
    let line_starts: Vec<usize> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_of = |position: Option<&csv::Position>, fallback: u64| {
        position.map_or(fallback, |p| {
            // The reader's offset can stand on the line end before the record (the `\n` of a
            // CRLF, blank lines): a record starts at the first byte that is not one.
            let mut byte = usize::try_from(p.byte()).unwrap_or(usize::MAX);
            while matches!(text.as_bytes().get(byte), Some(b'\r' | b'\n')) {
                byte += 1;
            }
            line_starts.partition_point(|&nl| nl < byte) as u64 + 1
        })
    };
    for (i, record) in reader.records().enumerate() {
        let fallback = i as u64 + 2;
        let record = record.map_err(|e| {
            let line = line_of(e.position(), fallback);
            CliError::Input(format!("{file}: line {line}: {e}"))
        })?;
        let line = line_of(record.position(), fallback);
        // A column without a name (a trailing comma) may only be empty: its value would be lost.
        for (i, (h, v)) in headers.iter().zip(record.iter().map(str::trim)).enumerate() {
            if h.is_empty() && !v.is_empty() {
                return Err(CliError::Input(format!(
                    "{file}: line {line}: column {} has no name in the header (line 1) but \
                     holds {v:?}: name it, or delete the column",
                    i + 1
                )));
            }
        }
        let row: HashMap<&str, &str> = headers
            .iter()
            .map(String::as_str)
            .zip(record.iter().map(str::trim))
            .filter(|(h, v)| !h.is_empty() && !v.is_empty())
            .collect();
        let get = |k: &str| {
            row.get(k)
                .copied()
                .ok_or_else(|| CliError::Input(format!("{file}: line {line}: column {k} is empty")))
        };
        let effective = match (row.get("effective_from"), args.effective_from) {
            (Some(d), _) => {
                // Checked here, where the cell is known: the command would only name its
                // JSON fields (and the decision date, a copy of this one).
                let bad = |reason: String| {
                    CliError::Input(format!(
                        "{file}: line {line}: column effective_from: {reason}"
                    ))
                };
                let date = omorg_domain::date::parse_date(d).map_err(|e| bad(e.to_string()))?;
                crate::service::check_date_range("effective_from", date).map_err(|e| match e {
                    ApiError::Invalid { reason, .. } => bad(reason),
                    other => other.into(),
                })?;
                // The text as written, not reformatted: it is part of the command id.
                (*d).to_owned()
            }
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(CliError::Usage(format!(
                    "{file}: line {line}: no effective_from column value and no --effective-from"
                )))
            }
        };
        let split = |s: &str| -> Vec<String> {
            s.split(';')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let (key, action) = match kind {
            "units" => {
                let unit = get("unit")?;
                if let Some(first) = units_seen.insert(unit.to_owned(), line) {
                    return Err(CliError::Input(format!(
                        "{file}: line {line}: unit {unit} is already established on line \
                         {first}: a unit takes one row (remove one of the two)"
                    )));
                }
                let kind = get("kind")?;
                if serde_json::from_value::<omorg_domain::UnitKind>(json!(kind)).is_err() {
                    return Err(CliError::Input(format!(
                        "{file}: line {line}: column kind: unknown kind {kind:?}: one of \
                         municipality, district, central_agency, municipal_enterprise, \
                         service_area, business_unit, department, service_centre"
                    )));
                }
                let mut a = Map::new();
                a.insert("type".into(), json!("EstablishUnit"));
                a.insert("unit".into(), json!(get("unit")?));
                a.insert("name".into(), json!(get("name")?));
                a.insert("kind".into(), json!(get("kind")?));
                for k in ["code", "parent"] {
                    if let Some(v) = row.get(k) {
                        a.insert(k.into(), json!(v));
                    }
                }
                let areas: Vec<Value> = row
                    .get("areas")
                    .map(|s| split(s))
                    .unwrap_or_default()
                    .iter()
                    .map(|x| match x.split_once('=') {
                        Some((code, name)) => json!({"code": code, "name": name}),
                        None => json!({"code": x}),
                    })
                    .collect();
                a.insert("areas".into(), Value::Array(areas));
                (get("unit")?.to_owned(), Value::Object(a))
            }
            "services" => (
                {
                    let service = get("service")?;
                    if let Some(first) = services_seen.insert(service.to_owned(), line) {
                        return Err(CliError::Input(format!(
                            "{file}: line {line}: service {service} is already registered on \
                             line {first}: a service takes one row (remove one of the two)"
                        )));
                    }
                    service.to_owned()
                },
                json!({"type": "RegisterService", "service": get("service")?, "name": get("name")?,
                       "category": row.get("category").copied().unwrap_or("")}),
            ),
            _ => {
                let (service, unit) = (get("service")?, get("unit")?);
                let areas = split(get("areas")?);
                for area in &areas {
                    let pair = (service.to_owned(), area.clone());
                    if let Some((first, holder)) = pairs_seen.get(&pair) {
                        let what = if *first == line {
                            "the row lists it twice".to_owned()
                        } else if *holder == unit {
                            format!("line {first} already assigns it to {unit}")
                        } else {
                            format!(
                                "line {first} assigns it to {holder}, and one unit is \
                                 responsible for a service in an area"
                            )
                        };
                        return Err(CliError::Input(format!(
                            "{file}: line {line}: service {service} in area {area}: {what} (a \
                             service and area take one row)"
                        )));
                    }
                    pairs_seen.insert(pair, (line, unit.to_owned()));
                }
                // The id of the whole assignment; when the pair takes several rows, each row's
                // is told apart by its smallest area afterwards (no other row of the file has
                // it), so it does not depend on the order of the rows or of a cell's areas.
                assignment_rows.push((
                    out.len(),
                    (service.to_owned(), unit.to_owned(), effective.clone()),
                    areas.iter().min().cloned(),
                ));
                (
                    format!("{service}@{unit}"),
                    json!({"type": "AssignResponsibility", "service": service,
                           "unit": unit, "areas": areas}),
                )
            }
        };
        out.push((
            Origin::Line(line),
            json!({
                // Long unit or service ids could make it too long for an id: shortened then.
                "command_id": crate::service::shortened(
                    &format!("import:{}:{kind}:{key}:{effective}", args.timeline),
                    omorg_domain::MAX_ID_LEN,
                ),
                "effective_from": effective,
                "decision": decision(&effective)?,
                "actor": args.actor,
                "rationale": format!("imported from CSV line {line}"),
                "action": action,
            }),
        ));
    }
    if kind == "units" {
        out = parents_first(out);
    }
    let mut rows_of: HashMap<&Pair, usize> = HashMap::new();
    for (_, pair, _) in &assignment_rows {
        *rows_of.entry(pair).or_default() += 1;
    }
    for (at, pair, area) in &assignment_rows {
        let (Some(area), Some(2..)) = (area, rows_of.get(pair)) else {
            continue;
        };
        let (service, unit, effective) = pair;
        out[*at].1["command_id"] = json!(crate::service::shortened(
            &format!(
                "import:{}:responsibilities:{service}@{unit}+{area}:{effective}",
                args.timeline
            ),
            omorg_domain::MAX_ID_LEN,
        ));
    }
    Ok(out)
}

/// Unit rows with every unit after its parent when the parent is in the file too, and
/// otherwise in the file's order: a spreadsheet sorted by name (or by code) lists districts
/// before their municipality, and each row is decided against the units of the rows before it.
/// A parent that never comes (a cycle, a unit naming itself) leaves its rows at the end, in
/// order, for the domain to refuse naming their lines.
fn parents_first(rows: Vec<(Origin, Value)>) -> Vec<(Origin, Value)> {
    let unit = |row: &(Origin, Value)| row.1["action"]["unit"].as_str().map(str::to_owned);
    let in_file: std::collections::HashSet<String> = rows.iter().filter_map(unit).collect();
    let mut placed = std::collections::HashSet::new();
    let (mut out, mut pending) = (Vec::with_capacity(rows.len()), rows);
    loop {
        let waiting = pending.len();
        let mut rest = Vec::new();
        for row in pending {
            let parent = row.1["action"]["parent"].as_str();
            if parent.is_none_or(|p| !in_file.contains(p) || placed.contains(p)) {
                placed.extend(unit(&row));
                out.push(row);
            } else {
                rest.push(row);
            }
        }
        pending = rest;
        if pending.is_empty() || pending.len() == waiting {
            out.extend(pending);
            return out;
        }
    }
}

/// A responsibility row's service, unit and effective date.
type Pair = (String, String, String);

/// The columns each CSV table takes, required first.
fn columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "units" => &[
            "unit",
            "name",
            "kind",
            "code",
            "parent",
            "areas",
            "effective_from",
        ],
        "services" => &["service", "name", "category", "effective_from"],
        _ => &["service", "unit", "areas", "effective_from"],
    }
}

/// Refuses a header column the table does not take, or one given twice: either would be
/// dropped, and change what the import does (a misspelt `effective_from` would take the
/// `--effective-from` date instead, a misspelt `parent` leave the unit without one). A column
/// without a name is allowed, as long as its cells are empty (checked per row).
fn check_header(file: &str, kind: &str, headers: &[String]) -> Result<(), CliError> {
    let accepted = columns(kind);
    let takes = format!("a {kind} table takes {}", accepted.join(", "));
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        if let Some(first) = headers[..i].iter().position(|x| x == h) {
            return Err(CliError::Input(format!(
                "{file}: line 1: column {h} is given twice (columns {} and {}): {takes}, each \
                 once",
                first + 1,
                i + 1
            )));
        }
        if !accepted.contains(&h.as_str()) {
            let hint = accepted
                .iter()
                .find(|a| edit_distance(a, h) <= 2)
                .map(|a| format!(" (did you mean {a}?)"))
                .unwrap_or_default();
            return Err(CliError::Input(format!(
                "{file}: line 1: column {h:?} is not a column of this table{hint}: {takes}"
            )));
        }
    }
    Ok(())
}

/// The Levenshtein distance between two short strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use clap::Parser;

    fn args(extra: &[&str]) -> ImportArgs {
        let mut argv = vec!["omorg", "import", "x.csv", "--timeline", "t"];
        argv.extend_from_slice(extra);
        match crate::config::Cli::parse_from(argv).command {
            crate::config::Command::Import(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn csv_tables_become_commands_with_stable_ids() {
        let a = csv_args();
        let units = "unit,name,kind,code,parent,areas\noslo,Oslo,municipality,0301,,\ngamle-oslo,Bydel Gamle Oslo,district,030101,oslo,030101=Gamle Oslo\n";
        let f = parse_file(Path::new("u.csv"), units, &a).unwrap();
        assert_eq!(f.origins, [Origin::Line(2), Origin::Line(3)]);
        let c = f.commands;
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[1].context.command_id.as_str(),
            "import:t:units:gamle-oslo:2020-01-01"
        );
        let resp = "service,unit,areas\nhome-care,gamle-oslo,030101;030102\n";
        let c = parse_file(Path::new("r.csv"), resp, &a).unwrap().commands;
        assert!(
            matches!(&c[0].action, omorg_domain::Action::AssignResponsibility(x) if x.areas.len() == 2)
        );
    }

    #[test]
    fn rows_are_named_by_the_line_they_start_on_whatever_the_line_ends() {
        let a = csv_args();
        for (text, lines) in [
            (
                "unit,name,kind\r\na,A,district\r\nb,B,district\r\n",
                vec![2, 3],
            ),
            (
                "unit,name,kind\n\n\na,A,district\n\nb,B,district\n",
                vec![4, 6],
            ),
            (
                "unit,name,kind\r\n\r\na,\"A\r\nA\",district\r\nb,B,district",
                vec![3, 5],
            ),
        ] {
            let f = parse_file(Path::new("u.csv"), text, &a).unwrap();
            let want: Vec<Origin> = lines.into_iter().map(Origin::Line).collect();
            assert_eq!(f.origins, want, "{text:?}");
        }
        // An error names the line of the row, CRLF or not.
        let e = parse_file(
            Path::new("u.csv"),
            "unit,name,kind,effective_from\r\na,A,district,2025-01-01\r\nb,B,district,2025-02-30\r\n",
            &a,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("u.csv: line 3: "), "{e}");
    }

    #[test]
    fn a_spreadsheets_header_slips_are_named() {
        let a = csv_args();
        for (text, says) in [
            ("unit;name;kind\na;A;district\n", "separated by `;`"),
            (
                "Unit,Name,Kind\na,A,district\n",
                "lower case: `unit`, not `Unit`",
            ),
        ] {
            let e = parse_file(Path::new("u.csv"), text, &a)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("unrecognised CSV header") && e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn unit_rows_come_after_their_parents() {
        let a = csv_args();
        // Sorted by name: the districts first, a department before its district.
        let units = "unit,name,kind,parent\n\
            alna-helse,Alna helse,department,alna\n\
            alna,Bydel Alna,district,oslo\n\
            frogner,Bydel Frogner,district,oslo\n\
            oslo,Oslo kommune,municipality,\n\
            self,Self,department,self\n";
        let f = parse_file(Path::new("u.csv"), units, &a).unwrap();
        let order: Vec<String> = f
            .commands
            .iter()
            .map(|c| {
                c.context
                    .command_id
                    .as_str()
                    .split(':')
                    .nth(3)
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(order, ["oslo", "alna", "frogner", "alna-helse", "self"]);
        // Each keeps its line, for errors.
        assert_eq!(
            f.origins,
            [
                Origin::Line(5),
                Origin::Line(3),
                Origin::Line(4),
                Origin::Line(2),
                Origin::Line(6)
            ]
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let a = args(&[]);
        let e = parse_file(Path::new("u.csv"), "service,name\nhc,Home care\n", &a).unwrap_err();
        assert!(e.to_string().contains("--effective-from"), "{e}");
        let e = parse_file(Path::new("c.yaml"), "- {command_id: x}\n", &a).unwrap_err();
        assert!(e.to_string().contains("action"), "{e}");
        let e = parse_file(Path::new("c.txt"), "", &a).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse_file(Path::new("c.json"), "{", &a).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        // A misspelt member is named, not dropped (here it would widen the transfer).
        let yaml = "- command_id: t1\n  effective_from: 2025-01-01\n  actor: me\n  \
                    decision: {case_number: '1', body: B, decision_date: 2025-01-01, title: T}\n  \
                    action: {type: TransferResponsibility, service: hc, from: a, to: b, area: ['0301']}\n";
        let e = parse_file(Path::new("c.yaml"), yaml, &a).unwrap_err();
        assert!(e.to_string().contains("unknown field `action.area`"), "{e}");
        assert_eq!(e.exit_code(), 1);
    }

    /// A bad date cell names the file, the line and the column, not the command's JSON fields.
    #[test]
    fn a_bad_effective_date_names_its_line_and_column() {
        let a = args(&["--case-number", "1/1", "--body", "Bystyret", "--title", "T"]);
        for cell in ["notadate", "+10000-01-01"] {
            let csv = format!("service,name,effective_from\nhc,Home care,2020-01-01\nx,X,{cell}\n");
            let e = parse_file(Path::new("s.csv"), &csv, &a).unwrap_err();
            let e = e.to_string();
            assert!(
                e.starts_with("s.csv: line 3: column effective_from: "),
                "{e}"
            );
            assert!(e.contains(cell) && !e.contains("decision_date"), "{e}");
        }
    }

    /// A quoted cell that spans lines does not shift the line numbers of the rows after it.
    #[test]
    fn lines_are_counted_across_multi_line_cells() {
        let a = args(&["--case-number", "1/1", "--body", "Bystyret", "--title", "T"]);
        let csv = "service,name,effective_from\nhc,\"Home\ncare\",2020-01-01\nx,X,notadate\n";
        let e = parse_file(Path::new("s.csv"), csv, &a)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.csv: line 4: column effective_from: "),
            "{e}"
        );
    }

    /// The CSV date options are checked as the API checks dates, naming the option.
    #[test]
    fn out_of_range_date_options_name_the_option() {
        let csv = "service,name\nhc,Home care\n";
        for (option, other) in [
            ("--effective-from", "--decision-date"),
            ("--decision-date", "--effective-from"),
        ] {
            let a = args(&[
                option,
                "0000-01-01",
                other,
                "2020-01-01",
                "--case-number",
                "1/1",
                "--body",
                "B",
                "--title",
                "T",
            ]);
            let e = parse_file(Path::new("s.csv"), csv, &a).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().starts_with(&format!("{option}: ")), "{e}");
        }
    }

    /// Malformed entries of a command list name the file and the entry's index.
    #[test]
    fn list_errors_name_the_file_and_index() {
        let a = args(&[]);
        let e = parse_file(Path::new("c.yaml"), "- {command_id: x}\n", &a).unwrap_err();
        assert!(e.to_string().starts_with("c.yaml: command 0: "), "{e}");
        let e = parse_file(Path::new("c.yaml"), "42\n", &a).unwrap_err();
        assert!(e.to_string().starts_with("c.yaml: expected a list"), "{e}");
    }

    /// The CSVs the API and the CLI write are reports, not import tables: none is recognised by
    /// its header, so the `'` they put before a cell a spreadsheet would run as a formula
    /// (`render::neutralised`) never comes back as part of an imported name. Making one of them
    /// importable means taking that `'` off again here.
    #[test]
    fn exported_csvs_are_not_import_tables() {
        use crate::queries::{DecisionLog, FeedPage, OrgChart, Responsibilities, ServiceHistory};
        use crate::render;
        let a = csv_args();
        let as_of: NaiveDate = "2020-01-01".parse().unwrap();
        let exported = [
            render::org_chart_csv(&OrgChart {
                timeline: "t".into(),
                as_of,
                known_version: 1,
                units: vec![],
            }),
            render::responsibilities_csv(&Responsibilities {
                timeline: "t".into(),
                as_of,
                known_version: 1,
                rows: vec![],
            }),
            render::service_history_csv(&ServiceHistory {
                timeline: "t".into(),
                service: "s".into(),
                versions: vec![],
                responsibilities: vec![],
            }),
            render::decisions_csv(&DecisionLog {
                timeline: "t".into(),
                decisions: vec![],
            }),
            render::change_feed_csv(&FeedPage {
                timeline: "t".into(),
                entries: vec![],
                next: 0,
            }),
        ];
        for csv in exported {
            let csv = csv.unwrap();
            let e = parse_file(Path::new("export.csv"), &csv, &a).unwrap_err();
            assert!(
                e.to_string().contains("unrecognised CSV header"),
                "{csv}: {e}"
            );
        }
    }
    /// The options of a CSV import: a decision and an effective date for its rows.
    fn csv_args() -> ImportArgs {
        args(&[
            "--effective-from",
            "2020-01-01",
            "--case-number",
            "1/1",
            "--body",
            "Bystyret",
            "--title",
            "T",
        ])
    }

    /// A column the table does not take, or one given twice, is refused naming the file, the
    /// column and the columns the table takes: dropped, it would change what the import does.
    #[test]
    fn unknown_or_repeated_columns_are_refused() {
        let a = csv_args();
        let units = "unit, name, kind, code, parent, areas, effective_from";
        for (header, column, reason) in [
            (
                "unit,name,kind,efective_from",
                "\"efective_from\"",
                "(did you mean effective_from?)",
            ),
            (
                "unit,name,kind,parrent",
                "\"parrent\"",
                "(did you mean parent?)",
            ),
            (
                "unit,name,kind,colour",
                "\"colour\"",
                "is not a column of this table",
            ),
            (
                "unit,name,kind,unit",
                "unit",
                "is given twice (columns 1 and 4)",
            ),
        ] {
            let csv = format!("{header}\nb1,B1,district,x\n");
            let e = parse_file(Path::new("u.csv"), &csv, &a).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{e}");
            let e = e.to_string();
            assert!(
                e.starts_with(&format!("u.csv: line 1: column {column} ")),
                "{e}"
            );
            assert!(e.contains(reason), "{e}");
            assert!(e.contains(&format!("a units table takes {units}")), "{e}");
        }
        let e = parse_file(Path::new("s.csv"), "service,name,colour\nhc,H,red\n", &a)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a services table takes service, name, category, effective_from"),
            "{e}"
        );
        let e = parse_file(
            Path::new("r.csv"),
            "service,unit,areas,are\nhc,b1,1,2\n",
            &a,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a responsibilities table takes service, unit, areas, effective_from"),
            "{e}"
        );
    }

    /// A column without a name (a trailing comma) is fine while empty, refused when it holds a
    /// value, which would be lost.
    #[test]
    fn an_unnamed_column_must_be_empty() {
        let a = csv_args();
        let f = parse_file(Path::new("s.csv"), "service,name,\nhc,Home care,\n", &a).unwrap();
        assert_eq!(f.commands.len(), 1);
        let e = parse_file(Path::new("s.csv"), "service,name,\nhc,Home care,x\n", &a)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.csv: line 2: column 3 has no name in the header"),
            "{e}"
        );
    }

    /// A JSON/YAML file is a list of commands or `{commands: [...]}`: another top-level member is
    /// refused (a null one is absent, as in the API), not ignored.
    #[test]
    fn unknown_top_level_members_are_refused() {
        let a = args(&[]);
        let e = parse_file(
            Path::new("c.json"),
            r#"{"commands": [], "timeline": "other"}"#,
            &a,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .starts_with("c.json: unknown top-level member `timeline`"),
            "{e}"
        );
        let e = parse_file(Path::new("c.yaml"), "commands: []\nactor: x\n", &a).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.yaml: unknown top-level member `actor`"),
            "{e}"
        );
        for (name, text) in [
            ("c.json", r#"{"commands": [], "timeline": null}"#),
            ("c.json", r#"{"commands": []}"#),
            ("c.json", "[]"),
        ] {
            assert!(parse_file(Path::new(name), text, &a).is_ok(), "{text}");
        }
    }

    /// A UTF-8 byte order mark at the start, as Windows editors write it, is taken off.
    #[test]
    fn a_byte_order_mark_is_accepted() {
        let a = csv_args();
        let command = r#"{"command_id": "c1", "effective_from": "2020-01-01", "decision": {"case_number": "1", "body": "B", "decision_date": "2020-01-01", "title": "T"}, "action": {"type": "RegisterService", "service": "hc", "name": "H"}}"#;
        for (name, text) in [
            ("c.json", format!("\u{feff}[{command}]")),
            ("c.yaml", format!("\u{feff}- {command}\n")),
            ("c.yml", format!("\u{feff}commands:\n  - {command}\n")),
            ("s.csv", "\u{feff}service,name\nhc,H\n".to_owned()),
        ] {
            let f = parse_file(Path::new(name), &text, &a).unwrap();
            assert_eq!(f.commands.len(), 1, "{name}");
        }
    }

    /// A file that is not UTF-8 is named with the line and byte offset of the first bad byte,
    /// and what it probably is.
    #[test]
    fn a_file_that_is_not_utf8_names_the_line_and_byte() {
        let p = Path::new("u.csv");
        assert_eq!(decode(p, b"a,b\n".to_vec()).unwrap(), "a,b\n");
        // "Grünerløkka" in Windows-1252: ü is 0xFC.
        let latin1 = b"unit,name,kind\nb1,Gr\xfcnerl\xf8kka,district\n".to_vec();
        let e = decode(p, latin1).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        let e = e.to_string();
        assert!(
            e.starts_with("u.csv: not UTF-8: line 2, byte offset 20 (counting from 0): byte 0xFC after \"b1,Gr\""),
            "{e}"
        );
        assert!(
            e.contains("Windows-1252") && e.contains("save it as UTF-8"),
            "{e}"
        );
        let e = decode(p, vec![0xFF, 0xFE, b'a', 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("UTF-16"), "{e}");
        let e = decode(p, vec![b'a', b'\n', 0xE6]).unwrap_err().to_string();
        assert!(
            e.contains("line 2, byte offset 2 ") && e.contains("at the start of the line"),
            "{e}"
        );
    }

    /// Identical rows, or rows that give the same unit, service, or service and area again, are
    /// refused naming both lines: they are not different command ids' business.
    /// A row whose ids are long still gets a valid command id (at most 120 characters), the
    /// same on every import, and rows that differ only after the first 100 characters do not
    /// share one.
    #[test]
    fn long_ids_still_make_valid_command_ids() {
        let a = csv_args();
        let long = |c: char| format!("{}{c}", "s".repeat(110));
        let csv = format!(
            "service,unit,areas\n{},{},123401\n{},{},123401\n",
            long('a'),
            "u".repeat(110),
            long('b'),
            "u".repeat(110)
        );
        let ids = |csv: &str| -> Vec<String> {
            parse_file(Path::new("r.csv"), csv, &a)
                .unwrap()
                .commands
                .iter()
                .map(|c| c.context.command_id.as_str().to_owned())
                .collect()
        };
        let first = ids(&csv);
        assert_eq!(first.len(), 2);
        assert!(
            first.iter().all(|id| id.chars().count() <= 120),
            "{first:?}"
        );
        assert_ne!(first[0], first[1]);
        assert_eq!(ids(&csv), first, "stable across imports");
    }

    #[test]
    fn repeated_rows_name_both_lines() {
        let a = csv_args();
        for (name, csv, expected) in [
            (
                "r.csv",
                "service,unit,areas\nhc,b1,123401\nhc,b1,123401\n",
                "r.csv: line 3: service hc in area 123401: line 2 already assigns it to b1",
            ),
            (
                "r.csv",
                "service,unit,areas\nhc,b1,123401;123402\nhc,b2,123402\n",
                "r.csv: line 3: service hc in area 123402: line 2 assigns it to b1",
            ),
            (
                "r.csv",
                "service,unit,areas\nhc,b1,123401;123401\n",
                "r.csv: line 2: service hc in area 123401: the row lists it twice",
            ),
            (
                "u.csv",
                "unit,name,kind\nb1,B1,district\nb1,B1,district\n",
                "u.csv: line 3: unit b1 is already established on line 2",
            ),
            (
                "s.csv",
                "service,name\nhc,H\nhc,Home care\n",
                "s.csv: line 3: service hc is already registered on line 2",
            ),
        ] {
            let e = parse_file(Path::new(name), csv, &a).unwrap_err();
            assert_eq!(e.exit_code(), 1);
            assert!(e.to_string().starts_with(expected), "{e}");
            assert!(!e.to_string().contains("command id"), "{e}");
        }
    }

    /// Areas of one assignment may come in separate rows: each is a command of its own, told
    /// apart by its smallest area, so that neither the rows' order nor a cell's changes an id.
    /// (Rows imported before under the id of the whole assignment are found by what they say:
    /// `omorg import` leaves them out.)
    #[test]
    fn an_assignment_split_across_rows_is_one_command_per_row() {
        let a = csv_args();
        let ids = |csv: &str| -> Vec<String> {
            let f = parse_file(Path::new("r.csv"), csv, &a).unwrap();
            let mut ids: Vec<String> = f
                .commands
                .iter()
                .map(|c| c.context.command_id.as_str().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let split = ids("service,unit,areas\nhc,b1,123401\nhc,b1,123402;123403\nhc,b2,123404\n");
        assert_eq!(
            split,
            [
                "import:t:responsibilities:hc@b1+123401:2020-01-01",
                "import:t:responsibilities:hc@b1+123402:2020-01-01",
                "import:t:responsibilities:hc@b2:2020-01-01",
            ]
        );
        let reordered =
            ids("service,unit,areas\nhc,b2,123404\nhc,b1,123403;123402\nhc,b1,123401\n");
        assert_eq!(split, reordered);
    }
}

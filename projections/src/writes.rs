//! The projector's row writes for one batch, gathered and applied at its end in a few
//! statements.
//!
//! Applying an event used to cost a round trip per row (close the old version, insert the new
//! ones, the decision, the feed entry). Under a steady stream of commands those round trips were
//! most of the projector's cost, and the projector shares the machine with the server. Here a
//! batch's writes are gathered in memory and sent as one `UPDATE … FROM UNNEST` and one
//! `INSERT … SELECT FROM UNNEST` per table on PostgreSQL (SQLite, in process, runs them one by
//! one: it has no round trips to save).
//!
//! Two rules keep the result identical to writing row by row:
//! - a close of a version inserted earlier in the same batch closes it in memory, so every
//!   version is written once, already closed if the batch closed it;
//! - closes go before inserts, because a batch may close a stored open version and open a new
//!   one with the same key and start (the open-version indexes are unique).
//!
//! Statements that read or change rows outside these tables' inserts (revocations, which update
//! decisions the buffer may still hold) call [`Pending::flush`] first.

use crate::error::ProjectionError;
use crate::sql::{Ts, Tx};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One column value of a buffered row.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Text, nullable.
    Text(Option<String>),
    /// JSON (`jsonb` on PostgreSQL, text on SQLite).
    Json(Value),
    /// A date, nullable.
    Date(Option<NaiveDate>),
    /// A recorded instant, nullable.
    Ts(Option<DateTime<Utc>>),
    /// An integer, nullable.
    Int(Option<i64>),
}

impl Cell {
    /// Non-null text.
    pub fn text(s: impl Into<String>) -> Self {
        Self::Text(Some(s.into()))
    }
}

/// A row to insert: its table, its columns in that table's fixed order, and, for a bitemporal
/// version, what identifies it for a later close in the same batch.
struct Insert {
    table: &'static str,
    columns: &'static [&'static str],
    cells: Vec<Cell>,
    /// Index of the `recorded_to` cell (then `recorded_to_version` follows), for versions.
    recorded_to: Option<usize>,
}

/// A close of a stored open version: `recorded_to`/`recorded_to_version` set where the key
/// columns and `effective_from` match and the version is still open.
struct Close {
    timeline: String,
    keys: Vec<String>,
    from: NaiveDate,
    at: DateTime<Utc>,
    version: i64,
}

/// The key columns of each bitemporal table (after `timeline_id`).
fn key_columns(table: &str) -> &'static [&'static str] {
    match table {
        "unit_versions" => &["unit_id"],
        "area_versions" => &["area_code"],
        "service_versions" => &["service_code"],
        "responsibility_versions" => &["service_code", "area_code"],
        "service_point_versions" => &["point_id"],
        _ => &[],
    }
}

/// A batch's row writes, not yet sent.
#[derive(Default)]
pub struct Pending {
    inserts: Vec<Insert>,
    /// Open versions inserted in this batch: (table, timeline, keys, from) → index in `inserts`.
    open: HashMap<(&'static str, String, Vec<String>, NaiveDate), usize>,
    /// Closes of stored versions, by table.
    closes: BTreeMap<&'static str, Vec<Close>>,
}

impl Pending {
    /// Buffers a plain row (decision, change-feed entry).
    pub fn insert(
        &mut self,
        table: &'static str,
        columns: &'static [&'static str],
        cells: Vec<Cell>,
    ) {
        debug_assert_eq!(columns.len(), cells.len());
        self.inserts.push(Insert {
            table,
            columns,
            cells,
            recorded_to: None,
        });
    }

    /// Buffers a new open version of a bitemporal table. `cells` are the table's own columns
    /// (`columns`), which must end with `effective_from, effective_to, recorded_from,
    /// recorded_from_version`; the buffer adds `recorded_to, recorded_to_version`.
    pub fn open_version(
        &mut self,
        table: &'static str,
        columns: &'static [&'static str],
        timeline: &str,
        keys: Vec<String>,
        from: NaiveDate,
        mut cells: Vec<Cell>,
    ) {
        debug_assert_eq!(columns.len(), cells.len() + 2);
        let recorded_to = cells.len();
        cells.push(Cell::Ts(None));
        cells.push(Cell::Int(None));
        self.open
            .insert((table, timeline.to_owned(), keys, from), self.inserts.len());
        self.inserts.push(Insert {
            table,
            columns,
            cells,
            recorded_to: Some(recorded_to),
        });
    }

    /// Closes the open version of `keys` starting `from`: in memory if this batch inserted it,
    /// else by an update at flush time.
    pub fn close_version(
        &mut self,
        table: &'static str,
        timeline: &str,
        keys: Vec<String>,
        from: NaiveDate,
        at: DateTime<Utc>,
        version: i64,
    ) {
        let id = (table, timeline.to_owned(), keys, from);
        if let Some(i) = self.open.remove(&id) {
            let row = &mut self.inserts[i];
            let c = row.recorded_to.expect("versions have recorded_to");
            row.cells[c] = Cell::Ts(Some(at));
            row.cells[c + 1] = Cell::Int(Some(version));
            return;
        }
        let (_, timeline, keys, from) = id;
        self.closes.entry(table).or_default().push(Close {
            timeline,
            keys,
            from,
            at,
            version,
        });
    }

    /// Sends everything buffered: closes first, then inserts, grouped by table.
    pub async fn flush(&mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        let closes = std::mem::take(&mut self.closes);
        let inserts = std::mem::take(&mut self.inserts);
        self.open.clear();
        for (table, rows) in closes {
            flush_closes(tx, table, rows).await?;
        }
        // Group by table, keeping each table's rows in order.
        let mut by_table: Vec<TableRows> = Vec::new();
        for row in inserts {
            match by_table.iter_mut().find(|(t, _, _)| *t == row.table) {
                Some((_, _, rows)) => rows.push(row.cells),
                None => by_table.push((row.table, row.columns, vec![row.cells])),
            }
        }
        for (table, columns, rows) in by_table {
            flush_inserts(tx, table, columns, rows).await?;
        }
        Ok(())
    }
}

/// A table, its columns, and the rows to insert into it.
type TableRows = (&'static str, &'static [&'static str], Vec<Vec<Cell>>);

/// PostgreSQL array type of each cell kind.
fn pg_array_type(cell: &Cell) -> &'static str {
    match cell {
        Cell::Text(_) => "text[]",
        Cell::Json(_) => "jsonb[]",
        Cell::Date(_) => "date[]",
        Cell::Ts(_) => "timestamptz[]",
        Cell::Int(_) => "int8[]",
    }
}

async fn flush_inserts(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Cell>>,
) -> Result<(), ProjectionError> {
    let names = columns.join(", ");
    match tx {
        Tx::Pg(t) => {
            let types: Vec<String> = rows[0]
                .iter()
                .enumerate()
                .map(|(i, c)| format!("${}::{}", i + 1, pg_array_type(c)))
                .collect();
            let sql = format!(
                "INSERT INTO {table} ({names}) SELECT * FROM UNNEST({})",
                types.join(", ")
            );
            // Each column's values are moved out of the rows (taken, not cloned): the rows are
            // not needed once bound.
            let mut rows = rows;
            let mut q = sqlx::query(&sql);
            for col in 0..columns.len() {
                q = match &rows[0][col] {
                    Cell::Text(_) => q.bind(column(&mut rows, col, |c| match c {
                        Cell::Text(v) => v.take(),
                        _ => None,
                    })),
                    Cell::Json(_) => q.bind(column(&mut rows, col, |c| match c {
                        Cell::Json(v) => std::mem::take(v),
                        _ => Value::Null,
                    })),
                    Cell::Date(_) => q.bind(column(&mut rows, col, |c| match c {
                        Cell::Date(v) => *v,
                        _ => None,
                    })),
                    Cell::Ts(_) => q.bind(column(&mut rows, col, |c| match c {
                        Cell::Ts(v) => *v,
                        _ => None,
                    })),
                    Cell::Int(_) => q.bind(column(&mut rows, col, |c| match c {
                        Cell::Int(v) => *v,
                        _ => None,
                    })),
                };
            }
            q.execute(&mut **t).await?;
        }
        Tx::Lite(t) => {
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {table} ({names}) VALUES ({})",
                marks.join(", ")
            );
            for row in rows {
                let mut q = sqlx::query(&sql);
                for cell in row {
                    q = match cell {
                        Cell::Text(v) => q.bind(v),
                        Cell::Json(v) => q.bind(v.to_string()),
                        Cell::Date(v) => q.bind(v),
                        Cell::Ts(v) => q.bind(v.map(Ts)),
                        Cell::Int(v) => q.bind(v),
                    };
                }
                q.execute(&mut **t).await?;
            }
        }
    }
    Ok(())
}

/// Column `col` of every row, through `take` (which may move the value out of the cell).
fn column<T>(rows: &mut [Vec<Cell>], col: usize, take: impl Fn(&mut Cell) -> T) -> Vec<T> {
    rows.iter_mut().map(|r| take(&mut r[col])).collect()
}

async fn flush_closes(tx: &mut Tx, table: &str, rows: Vec<Close>) -> Result<(), ProjectionError> {
    let keys = key_columns(table);
    match tx {
        Tx::Pg(t) => {
            // c(timeline_id, k…, effective_from, at, v)
            let n = keys.len();
            let mut arrays = vec!["$1::text[]".to_owned()];
            arrays.extend((0..n).map(|i| format!("${}::text[]", i + 2)));
            arrays.push(format!("${}::date[]", n + 2));
            arrays.push(format!("${}::timestamptz[]", n + 3));
            arrays.push(format!("${}::int8[]", n + 4));
            let mut matches = vec!["x.timeline_id = c.timeline_id".to_owned()];
            matches.extend(keys.iter().map(|k| format!("x.{k} = c.{k}")));
            let sql = format!(
                "UPDATE {table} AS x SET recorded_to = c.at, recorded_to_version = c.v \
                 FROM UNNEST({}) AS c(timeline_id, {}, effective_from, at, v) \
                 WHERE {} AND x.effective_from = c.effective_from AND x.recorded_to IS NULL",
                arrays.join(", "),
                keys.join(", "),
                matches.join(" AND ")
            );
            let mut q =
                sqlx::query(&sql).bind(rows.iter().map(|r| r.timeline.clone()).collect::<Vec<_>>());
            for i in 0..n {
                q = q.bind(rows.iter().map(|r| r.keys[i].clone()).collect::<Vec<_>>());
            }
            q.bind(rows.iter().map(|r| r.from).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
                .execute(&mut **t)
                .await?;
        }
        Tx::Lite(t) => {
            let matches: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{k} = ?{}", i + 4))
                .collect();
            let sql = format!(
                "UPDATE {table} SET recorded_to = ?1, recorded_to_version = ?2 \
                 WHERE timeline_id = ?3 AND {} AND effective_from = ?{} AND recorded_to IS NULL",
                matches.join(" AND "),
                keys.len() + 4
            );
            for r in rows {
                let mut q = sqlx::query(&sql)
                    .bind(Ts(r.at))
                    .bind(r.version)
                    .bind(r.timeline);
                for k in r.keys {
                    q = q.bind(k);
                }
                q.bind(r.from).execute(&mut **t).await?;
            }
        }
    }
    Ok(())
}

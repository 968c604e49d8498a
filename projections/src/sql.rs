//! One SQL text for both databases.
//!
//! Statements are written once, in PostgreSQL's `$1` style; [`lite`] turns them into SQLite's `?1`.
//! The [`exec!`] and [`fetch!`] macros run a statement on whichever backend the transaction or
//! pool is, binding the same arguments, and [`RowExt`] reads columns from either kind of row.
//! Timestamps go through [`Ts`], which is `timestamptz` on PostgreSQL and fixed-width RFC 3339
//! text on SQLite, so that SQLite compares them correctly as text.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, PgTypeInfo};
use sqlx::sqlite::{SqliteRow, SqliteTypeInfo};
use sqlx::{Postgres, Row, Sqlite};

/// Rewrites `$1`… placeholders as SQLite's `?1`….
pub fn lite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// A recorded-time instant, stored as `timestamptz` (PostgreSQL) or fixed-width text (SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    /// The SQLite text form: always microseconds and `Z`, so text order is time order.
    pub fn text(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl sqlx::Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}
impl<'q> sqlx::Encode<'q, Postgres> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as sqlx::Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}
impl sqlx::Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
}
impl<'q> sqlx::Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <String as sqlx::Encode<'q, Sqlite>>::encode(self.text(), buf)
    }
}

/// Reads columns the same way from a PostgreSQL or an SQLite row.
pub trait RowExt {
    /// A text column.
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column.
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A date column.
    fn date(&self, col: &str) -> Result<NaiveDate, sqlx::Error>;
    /// A nullable date column.
    fn opt_date(&self, col: &str) -> Result<Option<NaiveDate>, sqlx::Error>;
    /// A timestamp column.
    fn ts(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error>;
    /// A nullable timestamp column.
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error>;
    /// A JSON column (`jsonb` on PostgreSQL, text on SQLite).
    fn json(&self, col: &str) -> Result<Value, sqlx::Error>;
    /// A boolean column.
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error>;
    /// The text column at `index`: for queries returning many rows, where finding each column
    /// by name (a hash lookup per column per row) showed in profiles.
    fn text_at(&self, index: usize) -> Result<String, sqlx::Error>;
    /// The nullable text column at `index`.
    fn opt_text_at(&self, index: usize) -> Result<Option<String>, sqlx::Error>;
    /// The text column at `index`, borrowed from the row (nothing allocated).
    fn str_at(&self, index: usize) -> Result<&str, sqlx::Error>;
}

/// The [`RowExt`] accessors that read the same way on both backends (sqlx decodes these types
/// natively on each); timestamps and JSON differ, because SQLite stores them as text.
macro_rules! same_on_both_backends {
    () => {
        fn text_at(&self, index: usize) -> Result<String, sqlx::Error> {
            self.try_get(index)
        }
        fn str_at(&self, index: usize) -> Result<&str, sqlx::Error> {
            self.try_get(index)
        }
        fn opt_text_at(&self, index: usize) -> Result<Option<String>, sqlx::Error> {
            self.try_get(index)
        }
        fn text(&self, col: &str) -> Result<String, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
            self.try_get(col)
        }
        fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
            self.try_get(col)
        }
        fn date(&self, col: &str) -> Result<NaiveDate, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_date(&self, col: &str) -> Result<Option<NaiveDate>, sqlx::Error> {
            self.try_get(col)
        }
        fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
            self.try_get(col)
        }
    };
}

impl RowExt for PgRow {
    same_on_both_backends!();
    fn ts(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        self.try_get(col)
    }
    fn json(&self, col: &str) -> Result<Value, sqlx::Error> {
        self.try_get(col)
    }
}

fn parse_ts(col: &str, s: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::ColumnDecode {
            index: col.to_string(),
            source: Box::new(e),
        })
}

impl RowExt for SqliteRow {
    same_on_both_backends!();
    fn ts(&self, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        let s: String = self.try_get(col)?;
        parse_ts(col, &s)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let s: Option<String> = self.try_get(col)?;
        s.map(|s| parse_ts(col, &s)).transpose()
    }
    fn json(&self, col: &str) -> Result<Value, sqlx::Error> {
        let s: String = self.try_get(col)?;
        serde_json::from_str(&s).map_err(|e| sqlx::Error::ColumnDecode {
            index: col.to_string(),
            source: Box::new(e),
        })
    }
}

/// A transaction on either backend.
pub enum Tx {
    /// PostgreSQL.
    Pg(sqlx::Transaction<'static, Postgres>),
    /// SQLite.
    Lite(sqlx::Transaction<'static, Sqlite>),
}

/// Runs a statement in a [`Tx`], binding the arguments; evaluates to `Result<u64 rows, sqlx::Error>`.
#[macro_export]
macro_rules! exec {
    ($tx:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::sql::Tx::Pg(t) => sqlx::query($sql)$(.bind($arg))*.execute(&mut **t).await.map(|r| r.rows_affected()),
            $crate::sql::Tx::Lite(t) => sqlx::query(&$crate::sql::lite($sql))$(.bind($arg))*.execute(&mut **t).await.map(|r| r.rows_affected()),
        }
    };
}

/// Fetches all rows of a query on a [`omorg_store::Database`] and maps each with a function that
/// is generic over [`RowExt`]; evaluates to `Result<Vec<T>, sqlx::Error>`.
#[macro_export]
macro_rules! fetch {
    ($db:expr, $map:path, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $db {
            omorg_store::Database::Postgres(pool) => {
                let rows = sqlx::query($sql)$(.bind($arg))*.fetch_all(pool).await?;
                rows.iter().map(|r| $map(r)).collect::<Result<Vec<_>, sqlx::Error>>()
            }
            omorg_store::Database::Sqlite(pool) => {
                let rows = sqlx::query(&$crate::sql::lite($sql))$(.bind($arg))*.fetch_all(pool).await?;
                rows.iter().map(|r| $map(r)).collect::<Result<Vec<_>, sqlx::Error>>()
            }
        }
    };
}

/// Runs a query on a [`omorg_store::Database`] and hands each row, as it arrives, to a function
/// generic over [`RowExt`] that folds it into `$acc` (`fn(&mut Acc, &R) -> Result<(), sqlx::Error>`).
/// For answers of many rows: nothing waits for the last row before the first is decoded, and no
/// vector of rows is built. Evaluates to `Result<(), sqlx::Error>`.
#[macro_export]
macro_rules! fold_rows {
    ($db:expr, $fold:path, $acc:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $db {
            omorg_store::Database::Postgres(pool) => {
                let mut rows = sqlx::query($sql)$(.bind($arg))*.fetch(pool);
                $crate::fold_rows!(@each rows, $fold, $acc)
            }
            omorg_store::Database::Sqlite(pool) => {
                let sql = $crate::sql::lite($sql);
                let mut rows = sqlx::query(&sql)$(.bind($arg))*.fetch(pool);
                $crate::fold_rows!(@each rows, $fold, $acc)
            }
        }
    };
    // The loop both backends share: stop at the first row the fold refuses.
    (@each $rows:ident, $fold:path, $acc:expr) => {{
        let mut done = Ok(());
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut $rows).await? {
            if let Err(e) = $fold($acc, &row) {
                done = Err(e);
                break;
            }
        }
        done
    }};
}

/// Fetches rows inside a [`Tx`] (see [`fetch!`]).
#[macro_export]
macro_rules! fetch_tx {
    ($tx:expr, $map:path, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::sql::Tx::Pg(t) => {
                let rows = sqlx::query($sql)$(.bind($arg))*.fetch_all(&mut **t).await?;
                rows.iter().map(|r| $map(r)).collect::<Result<Vec<_>, sqlx::Error>>()
            }
            $crate::sql::Tx::Lite(t) => {
                let rows = sqlx::query(&$crate::sql::lite($sql))$(.bind($arg))*.fetch_all(&mut **t).await?;
                rows.iter().map(|r| $map(r)).collect::<Result<Vec<_>, sqlx::Error>>()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_sqlite_style() {
        assert_eq!(
            lite("a = $1 AND b = $12 AND c = '$'"),
            "a = ?1 AND b = ?12 AND c = '$'"
        );
    }

    #[test]
    fn timestamp_text_orders_like_time() {
        let a = Ts("2026-01-01T12:00:00.5Z".parse().unwrap());
        let b = Ts("2026-01-01T12:00:00.123Z".parse().unwrap());
        assert!(b < a);
        assert!(b.text() < a.text());
        assert_eq!(a.text(), "2026-01-01T12:00:00.500000Z");
    }
}

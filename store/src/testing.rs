//! Test helpers: a fresh, migrated database per test, on either backend.
//!
//! These panic instead of returning errors: they are for tests, where a missing database is a
//! setup failure that must fail loudly, never a reason to skip.

use crate::db::{Backend, Database};

/// The variable `scripts/test` sets to a PostgreSQL server URL.
pub const TEST_DATABASE_ENV: &str = "OMORG_TEST_DATABASE_URL";

/// Pool size for test databases: small, because many tests run at once on one server.
const TEST_POOL_SIZE: u32 = 5;

/// Creates an empty database `omorg_t_<uuid>` on the server named by
/// `OMORG_TEST_DATABASE_URL` and returns its URL.
///
/// # Panics
/// When the variable is missing (run the suite with `scripts/test`) or the server refuses.
pub async fn fresh_postgres_url() -> String {
    let server = std::env::var(TEST_DATABASE_ENV).unwrap_or_else(|_| {
        panic!(
            "{TEST_DATABASE_ENV} is not set: run the tests with scripts/test, which starts \
             PostgreSQL and sets it (or set it to a postgres:// URL yourself)"
        )
    });
    let name = format!("omorg_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {TEST_DATABASE_ENV}={server}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = sqlx::Connection::close(admin).await;
    with_database_name(&server, &name)
}

/// A URL for a new SQLite file in the temporary directory.
pub fn fresh_sqlite_url() -> String {
    let path =
        std::env::temp_dir().join(format!("omorg_t_{}.sqlite", uuid::Uuid::new_v4().simple()));
    format!("sqlite://{}", path.display())
}

/// A fresh, migrated database of the given backend, and its URL (to open more pools on it).
///
/// # Panics
/// See [`fresh_postgres_url`]; also when connecting or migrating fails.
pub async fn fresh_database(backend: Backend) -> (Database, String) {
    let url = match backend {
        Backend::Postgres => fresh_postgres_url().await,
        Backend::Sqlite => fresh_sqlite_url(),
    };
    let db = Database::connect_with_max_connections(&url, TEST_POOL_SIZE)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    db.migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot migrate {url}: {e:?}"));
    (db, url)
}

/// `url` with its database name (the path) replaced by `name`, keeping any query string.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database_name("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database_name("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database_name("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}

//! A small aggregate for the store's tests (the store must not depend on the domain), and raw
//! SQL helpers for tests that tamper with the database behind the store's back.
#![allow(dead_code)]

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use omorg_store::{Database, Store, StoreConfig};
use serde::{Deserialize, Serialize};

/// A bank-ledger-like aggregate: easy to check (the balance is the sum of the events).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub owner: Option<String>,
    pub balance: i64,
    pub entries: u64,
}

#[derive(Debug, Clone)]
pub enum LedgerCommand {
    Open {
        owner: String,
    },
    Deposit {
        amount: i64,
    },
    DepositMany {
        amounts: Vec<i64>,
    },
    Withdraw {
        amount: i64,
    },
    /// Changes nothing.
    Touch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LedgerEvent {
    Opened {
        owner: String,
    },
    /// Version 2: version 1 called the field `sum` (see the upcaster test).
    Deposited {
        amount: i64,
    },
    Withdrawn {
        amount: i64,
    },
}

impl DomainEvent for LedgerEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Opened { .. } => "Opened",
            Self::Deposited { .. } => "Deposited",
            Self::Withdrawn { .. } => "Withdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::Deposited { .. } => "2",
            _ => "1",
        }
        .to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    #[error("the ledger is already open")]
    AlreadyOpen,
    #[error("the ledger is not open")]
    NotOpen,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("a deposit must be positive")]
    NotPositive,
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "ledger";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = LedgerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: LedgerCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), LedgerError> {
        match command {
            LedgerCommand::Open { owner } => {
                if self.owner.is_some() {
                    return Err(LedgerError::AlreadyOpen);
                }
                sink.write(LedgerEvent::Opened { owner }, self).await;
            }
            LedgerCommand::Deposit { amount } => {
                self.require_open()?;
                sink.write(LedgerEvent::Deposited { amount }, self).await;
            }
            LedgerCommand::DepositMany { amounts } => {
                self.require_open()?;
                // Checked as it goes, so a bad amount fails after earlier ones were written
                // (the store must then drop the half-changed aggregate).
                for amount in amounts {
                    if amount <= 0 {
                        return Err(LedgerError::NotPositive);
                    }
                    sink.write(LedgerEvent::Deposited { amount }, self).await;
                }
            }
            LedgerCommand::Withdraw { amount } => {
                self.require_open()?;
                if amount > self.balance {
                    return Err(LedgerError::InsufficientFunds);
                }
                sink.write(LedgerEvent::Withdrawn { amount }, self).await;
            }
            LedgerCommand::Touch => {}
        }
        Ok(())
    }

    fn apply(&mut self, event: LedgerEvent) {
        self.entries += 1;
        match event {
            LedgerEvent::Opened { owner } => self.owner = Some(owner),
            LedgerEvent::Deposited { amount } => self.balance += amount,
            LedgerEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

impl Ledger {
    fn require_open(&self) -> Result<(), LedgerError> {
        self.owner.as_ref().map(|_| ()).ok_or(LedgerError::NotOpen)
    }

    /// The state a full replay of `events` gives.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a LedgerEvent>) -> Self {
        let mut ledger = Self::default();
        for e in events {
            ledger.apply(e.clone());
        }
        ledger
    }
}

/// The ledger as an earlier release wrote it: `Deposited { sum }` at event version 1.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OldLedger {
    pub balance: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OldLedgerEvent {
    Opened { owner: String },
    Deposited { sum: i64 },
}

impl DomainEvent for OldLedgerEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Opened { .. } => "Opened",
            Self::Deposited { .. } => "Deposited",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for OldLedger {
    const TYPE: &'static str = "ledger";
    type Command = OldLedgerEvent;
    type Event = OldLedgerEvent;
    type Error = LedgerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: OldLedgerEvent,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), LedgerError> {
        sink.write(command, self).await;
        Ok(())
    }

    fn apply(&mut self, event: OldLedgerEvent) {
        if let OldLedgerEvent::Deposited { sum } = event {
            self.balance += sum;
        }
    }
}

/// An aggregate whose events carry arbitrary JSON, to test what the databases do to it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Notebook {
    pub notes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NoteEvent {
    Noted { value: serde_json::Value },
}

impl DomainEvent for NoteEvent {
    fn event_type(&self) -> String {
        "Noted".to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Notebook {
    const TYPE: &'static str = "notebook";
    type Command = serde_json::Value;
    type Event = NoteEvent;
    type Error = LedgerError;
    type Services = ();

    async fn handle(
        &mut self,
        value: serde_json::Value,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), LedgerError> {
        sink.write(NoteEvent::Noted { value }, self).await;
        Ok(())
    }

    fn apply(&mut self, _event: NoteEvent) {
        self.notes += 1;
    }
}

/// A ledger store with default settings.
pub fn ledger_store(db: &Database) -> Store<Ledger> {
    Store::new(db.clone(), ())
}

/// A ledger store with the given snapshot interval.
pub fn ledger_store_with(db: &Database, snapshot_every: u64) -> Store<Ledger> {
    Store::new(db.clone(), ()).with_config(StoreConfig {
        snapshot_every,
        ..StoreConfig::default()
    })
}

/// Runs one or more statements (no parameters) directly on the database.
pub async fn exec(db: &Database, sql: &str) -> Result<(), sqlx::Error> {
    match db {
        Database::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        Database::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
    }
}

/// A single integer from a query.
pub async fn scalar(db: &Database, sql: &str) -> i64 {
    match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `dml` with the append-only triggers out of the way (what an attacker with database
/// access could do), then puts them back.
pub async fn tamper(db: &Database, dml: &str) {
    let sql = match db {
        Database::Postgres(_) => format!(
            "ALTER TABLE events DISABLE TRIGGER USER; {dml}; ALTER TABLE events ENABLE TRIGGER USER;"
        ),
        Database::Sqlite(_) => format!(
            "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; {dml}; \
             CREATE TRIGGER events_no_update BEFORE UPDATE ON events \
             BEGIN SELECT RAISE(ABORT, 'append-only'); END; \
             CREATE TRIGGER events_no_delete BEFORE DELETE ON events \
             BEGIN SELECT RAISE(ABORT, 'append-only'); END;"
        ),
    };
    exec(db, &sql)
        .await
        .unwrap_or_else(|e| panic!("tamper {dml}: {e}"));
}

/// Runs each listed async test function against PostgreSQL and against SQLite, as
/// `<name>::postgres` and `<name>::sqlite`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(omorg_store::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(omorg_store::Backend::Sqlite).await
                }
            }
        )*
    };
}

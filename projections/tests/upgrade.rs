//! Upgrading a database whose read models an earlier release projected. Migration
//! 20260201000006 gives a scenario's decision log the decisions it inherited; a scenario forked
//! before the upgrade has to get them too, so the migration empties the read models and the
//! projector replays the log. Without that, the projector would carry on from the old checkpoint
//! and the scenario's log would stay without its history (here: without the timeline at all).

mod common;

use common::*;
use omorg_domain::*;
use omorg_projections::queries::{self, DecisionFilter};
use omorg_projections::Projector;
use omorg_store::testing::{fresh_postgres_url, fresh_sqlite_url};
use omorg_store::{Backend, CommandMetadata, Database, Store};
use sqlx::migrate::Migrator;

/// The first migration of the release that added inherited decisions.
const INHERITED_DECISIONS: i64 = 20260201000006;

/// Runs the migrations older than [`INHERITED_DECISIONS`]: the schema an earlier release left.
async fn migrate_as_before(db: &Database) {
    fn older(mut m: Migrator) -> Migrator {
        m.migrations = m
            .migrations
            .iter()
            .filter(|x| x.version < INHERITED_DECISIONS)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        m
    }
    match db {
        Database::Postgres(pool) => older(sqlx::migrate!("../migrations/postgres"))
            .run(pool)
            .await
            .unwrap(),
        Database::Sqlite(pool) => older(sqlx::migrate!("../migrations/sqlite"))
            .run(pool)
            .await
            .unwrap(),
    }
}

async fn inherited_decisions_after_an_upgrade(backend: Backend) {
    let url = match backend {
        Backend::Postgres => fresh_postgres_url().await,
        Backend::Sqlite => fresh_sqlite_url(),
    };
    let db = Database::connect_with_max_connections(&url, 5)
        .await
        .unwrap();
    migrate_as_before(&db).await;
    let store: Store<Timeline> = Store::new(db.clone(), ());
    let create = Action::CreateTimeline(TimelineDef {
        name: "Oslo kommune".into(),
        description: String::new(),
    });
    for c in [
        cmd("c0", "2020-01-01", "20/1", create),
        cmd(
            "c1",
            "2020-01-01",
            "20/1",
            unit("oslo", "Oslo kommune", UnitKind::Municipality, None, None),
        ),
    ] {
        run(&store, c).await;
    }
    let base: Vec<TimelineEvent> = store
        .load_stream(T)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.event)
        .collect();
    let fork = cmd(
        "f0",
        "2024-01-01",
        "24/1",
        Action::ForkTimeline(Fork {
            name: "Alternativ".into(),
            parent: TimelineId::new(T).unwrap(),
            parent_version: 2,
            base,
        }),
    );
    let out = store
        .execute("alt", fork, CommandMetadata::new("f0".to_owned()))
        .await
        .unwrap();
    let head = out.events.last().unwrap().record.checkpoint;
    // The earlier release had projected all of it: its checkpoint is at the head.
    let sql = "INSERT INTO projection_checkpoints (projector, checkpoint, position, rebuilding, updated_at) \
               VALUES ($1, $2, $3, false, CURRENT_TIMESTAMP)";
    match &db {
        Database::Postgres(p) => sqlx::query(sql)
            .bind(omorg_projections::projector::PROJECTOR)
            .bind(head.to_string())
            .bind(head.position())
            .execute(p)
            .await
            .map(drop),
        Database::Sqlite(p) => sqlx::query(&omorg_projections::sql::lite(sql))
            .bind(omorg_projections::projector::PROJECTOR)
            .bind(head.to_string())
            .bind(head.position())
            .execute(p)
            .await
            .map(drop),
    }
    .unwrap();

    db.migrate().await.unwrap();
    let mut projector = Projector::new(db.clone());
    projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    let log = queries::decision_log(&db, "alt", &DecisionFilter::default())
        .await
        .unwrap();
    let lines: Vec<String> = log
        .iter()
        .map(|d| {
            format!(
                "{}@{} {}",
                d.inherited_from.as_deref().unwrap_or("-"),
                d.stream_version,
                d.command_id
            )
        })
        .collect();
    assert_eq!(lines, ["oslo@1 c0", "oslo@2 c1", "-@1 f0"]);
}

#[tokio::test]
async fn postgres() {
    inherited_decisions_after_an_upgrade(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite() {
    inherited_decisions_after_an_upgrade(Backend::Sqlite).await;
}

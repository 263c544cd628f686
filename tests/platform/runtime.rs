//! The shared runtime against the real things: SQLite's mode, Postgres, and
//! the README's configuration table.

use chorus_runtime::{
    config::{VARIABLES, markdown_table},
    db::Options,
};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{admin_url, skip_postgres};

/// The row `PRAGMA <name>` answers.
async fn pragma(db: &sea_orm::DatabaseConnection, name: &str) -> sea_orm::QueryResult {
    let statement = Statement::from_string(db.get_database_backend(), format!("PRAGMA {name}"));
    db.query_one_raw(statement).await.expect("pragma").expect("a row")
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_and_creates_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/nested/x.db?mode=rwc", dir.path().display());
    let db = chorus_runtime::db::connect(&url).await.expect("connects");
    let mode: String = pragma(&db, "journal_mode").await.try_get_by_index(0).expect("text");
    assert_eq!(mode, "wal");
    assert!(dir.path().join("nested/x.db").exists());
}

#[tokio::test]
async fn sqlite_fsyncs_every_commit_only_when_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (durable, expected) in [(false, 1), (true, 2)] {
        let url = format!("sqlite://{}/{durable}.db?mode=rwc", dir.path().display());
        let db = chorus_runtime::db::open(&url, Options { durable, ..Options::default() }).await.expect("connects");
        // 1 is NORMAL, 2 is FULL.
        let mode: i32 = pragma(&db, "synchronous").await.try_get_by_index(0).expect("number");
        assert_eq!(mode, expected, "durable: {durable}");
    }
}

#[tokio::test]
async fn postgres_waits_for_fsync_only_when_durable() {
    if skip_postgres() {
        return;
    }
    // Read only: a session setting, on the admin database.
    for (durable, expected) in [(false, "off"), (true, "on")] {
        let db = chorus_runtime::db::open(&admin_url(), Options { durable, ..Options::default() }).await.expect("connects");
        let statement = Statement::from_string(db.get_database_backend(), "SHOW synchronous_commit");
        let row = db.query_one_raw(statement).await.expect("show").expect("a row");
        let mode: String = row.try_get_by_index(0).expect("text");
        assert_eq!(mode, expected, "durable: {durable}");
    }
}

#[tokio::test]
async fn a_postgres_pool_is_as_large_as_the_option_says_or_the_cores() {
    if skip_postgres() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(2);
    for (pool, expected) in [(Some(3), 3), (None, cores)] {
        let db = chorus_runtime::db::open(&admin_url(), Options { pool, ..Options::default() }).await.expect("connects");
        let max = db.get_postgres_connection_pool().options().get_max_connections();
        assert_eq!(max as usize, expected, "pool: {pool:?}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    if skip_postgres() {
        return;
    }
    let port = chorus_runtime::nats_server::free_port().expect("port");
    let url = format!("postgres://chorus:secret@127.0.0.1:{port}/nothing");
    let err = chorus_runtime::db::connect(&url).await.expect_err("nothing listens there");
    let text = err.to_string();
    assert!(text.contains("cannot open database"), "{text}");
    assert!(!text.contains("secret"), "password leaked: {text}");
}

#[test]
fn the_readmes_configuration_table_is_the_one_the_code_reads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let table = markdown_table();
    assert!(readme.contains(&table), "README's configuration table must be, as written in runtime/src/config/variables.rs:\n{table}");
    assert_eq!(table.lines().count(), VARIABLES.len() + 2);
}

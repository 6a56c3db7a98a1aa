//! The metadata store: connection, pragmas, migrations.

use slipway_core::testing::TestDb;
use slipway_core::{Backend, Db, DbOptions, Migration, on_both_backends};
use sqlx::Row;

const V1: Migration = Migration {
    version: 1,
    name: "widgets",
    sqlite: "CREATE TABLE widgets (id BIGINT PRIMARY KEY, name TEXT NOT NULL);",
    postgres: "CREATE TABLE widgets (id BIGINT PRIMARY KEY, name TEXT NOT NULL);",
};
const V2: Migration = Migration {
    version: 2,
    name: "widget colour",
    sqlite: "ALTER TABLE widgets ADD COLUMN colour TEXT; CREATE INDEX widgets_colour ON widgets (colour);",
    postgres: "ALTER TABLE widgets ADD COLUMN colour TEXT; CREATE INDEX widgets_colour ON widgets (colour);",
};

async fn migrations_apply_once_in_order(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.db.migrate("test", &[V1]).await.unwrap();
    sqlx::query("INSERT INTO widgets (id, name) VALUES (1, 'a')")
        .execute(t.db.pool())
        .await
        .unwrap();
    // Running again (a restart) changes nothing; adding V2 applies only V2.
    t.db.migrate("test", &[V1]).await.unwrap();
    t.db.migrate("test", &[V1, V2]).await.unwrap();
    let row = sqlx::query("SELECT name, colour FROM widgets WHERE id = 1")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("name").unwrap(), "a");
    assert_eq!(row.try_get::<Option<String>, _>("colour").unwrap(), None);
    let n: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM slipway_migrations WHERE component = 'test'")
            .fetch_one(t.db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    assert_eq!(n, 2);
}

async fn an_edited_migration_is_refused(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.db.migrate("test", &[V1]).await.unwrap();
    let edited = Migration {
        sqlite: "CREATE TABLE other (x BIGINT);",
        postgres: "CREATE TABLE other (x BIGINT);",
        ..V1
    };
    let err = t.db.migrate("test", &[edited]).await.unwrap_err().to_string();
    assert!(err.contains("edited after it was applied"), "{err}");
}

async fn a_newer_database_is_refused(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.db.migrate("test", &[V1, V2]).await.unwrap();
    let err = t.db.migrate("test", &[V1]).await.unwrap_err().to_string();
    assert!(err.contains("newer Slipway"), "{err}");
}

async fn a_failing_migration_changes_nothing(backend: Backend) {
    let t = TestDb::new(backend).await;
    let broken = Migration {
        version: 1,
        name: "broken",
        sqlite: "CREATE TABLE half (x BIGINT); THIS IS NOT SQL;",
        postgres: "CREATE TABLE half (x BIGINT); THIS IS NOT SQL;",
    };
    let err = t.db.migrate("test", &[broken]).await.unwrap_err().to_string();
    assert!(err.contains("broken"), "{err}");
    // The table created before the error was rolled back with it.
    assert!(sqlx::query("SELECT x FROM half").fetch_all(t.db.pool()).await.is_err());
    // And the fixed migration then applies.
    t.db.migrate("test", &[V1]).await.unwrap();
}

async fn concurrent_migrators_agree(backend: Backend) {
    let t = TestDb::new(backend).await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = t.url.clone();
        handles.push(tokio::spawn(async move {
            let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
            db.migrate("test", &[V1, V2]).await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM slipway_migrations")
        .fetch_one(t.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(n, 2);
}

async fn ping_answers(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.db.ping().await.unwrap();
    assert_eq!(t.db.backend(), backend);
}

on_both_backends!(
    migrations_apply_once_in_order,
    an_edited_migration_is_refused,
    a_newer_database_is_refused,
    a_failing_migration_changes_nothing,
    concurrent_migrators_agree,
    ping_answers,
);

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let t = TestDb::new(Backend::Sqlite).await;
    let mut conn = t.db.pool().acquire().await.unwrap();
    let mode: String =
        sqlx::query("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 =
        sqlx::query("PRAGMA foreign_keys").fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap();
    assert_eq!(fk, 1);
    let busy: i64 =
        sqlx::query("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap();
    assert!(busy >= 1000, "busy_timeout {busy}");
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error() {
    let options =
        DbOptions { acquire_timeout: std::time::Duration::from_secs(2), ..DbOptions::default() };
    let err = Db::connect("postgres://nobody:pw@127.0.0.1:1/none", &options).await.unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("pw@"), "the password leaked: {text}");
    // Why, not only that the pool timed out; and "try again", not a server bug.
    assert!(text.contains("Connection refused"), "{text}");
    assert_eq!(err.code().http_status(), 503, "{text}");
}

#[tokio::test]
async fn a_nul_in_text_is_bad_input_on_postgres_not_a_server_error() {
    let t = TestDb::new(Backend::Postgres).await;
    let e = sqlx::query("SELECT $1::text AS t")
        .bind("a\0b")
        .fetch_one(t.db.pool())
        .await
        .map(|_| ())
        .map_err(slipway_core::Error::from)
        .unwrap_err();
    assert_eq!(e.code().http_status(), 400, "{e}");
    assert!(e.to_string().contains("NUL character"), "{e}");
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["mysql://h/db", "sqlite:", "nonsense"] {
        let err = Db::connect(url, &DbOptions::default()).await.unwrap_err();
        assert_eq!(err.code().http_status(), 400, "{url}: {err}");
    }
}

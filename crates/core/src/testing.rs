//! Test helpers shared by every crate's tests: a fresh database on either backend and a fresh
//! blob store on a folder or on S3-compatible storage.
//!
//! SQLite needs nothing. PostgreSQL tests read `SLIPWAY_TEST_DATABASE_URL` (a database the
//! tests may create schemas in) and fail, loudly, when it is unset: `scripts/test` starts a
//! PostgreSQL and sets it. S3 tests read `SLIPWAY_TEST_S3_URL` (`s3://bucket`) and
//! `SLIPWAY_TEST_S3_ENDPOINT`, with credentials in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.

use sqlx::{Connection, Executor};

use crate::{Backend, BlobStore, BlobStoreOptions, Db, DbOptions, S3Options};

/// A database for one test; SQLite's file lives as long as this value.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let (url, dir) = test_db_url(backend).await;
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("connecting to the test database");
        TestDb { db, url, _dir: dir }
    }
}

/// The URL of a fresh, empty database on `backend` (a SQLite file in a new temporary folder, or
/// a new schema in the PostgreSQL test database), and the folder to keep alive.
pub async fn test_db_url(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("creating a temporary folder");
            let url = format!("sqlite:{}", dir.path().join("slipway.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let base = postgres_test_url();
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("connecting to SLIPWAY_TEST_DATABASE_URL: {e}"));
            let schema = format!("t_{}", crate::new_id());
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .await
                .expect("creating a schema");
            let _ = conn.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            (format!("{base}{sep}options=-c%20search_path%3D{schema}"), None)
        }
    }
}

/// `SLIPWAY_TEST_DATABASE_URL`, or a panic that says how to get one.
pub fn postgres_test_url() -> String {
    std::env::var("SLIPWAY_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "PostgreSQL tests need SLIPWAY_TEST_DATABASE_URL=postgres://…; `scripts/test` starts \
             a PostgreSQL and sets it (or filter them out: cargo nextest run -E 'not test(/postgres/)')"
        )
    })
}

/// Where a test's blobs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobBackend {
    Local,
    S3,
}

/// A blob store for one test; the local folder lives as long as this value.
pub struct TestBlobs {
    pub store: BlobStore,
    pub location: String,
    pub s3: S3Options,
    pub dir: Option<tempfile::TempDir>,
}

impl TestBlobs {
    pub fn new(backend: BlobBackend) -> TestBlobs {
        TestBlobs::with_options(backend, BlobStoreOptions::default())
    }

    pub fn with_options(backend: BlobBackend, mut options: BlobStoreOptions) -> TestBlobs {
        let (location, s3, dir) = test_blob_location(backend);
        options.s3 = s3.clone();
        let store = BlobStore::open(&location, options).expect("opening the test blob store");
        TestBlobs { store, location, s3, dir }
    }
}

/// A fresh blob store location on `backend`: a new temporary folder, or a new prefix in the S3
/// test bucket.
pub fn test_blob_location(backend: BlobBackend) -> (String, S3Options, Option<tempfile::TempDir>) {
    match backend {
        BlobBackend::Local => {
            let dir = tempfile::tempdir().expect("creating a temporary folder");
            (dir.path().join("blobs").display().to_string(), S3Options::default(), Some(dir))
        }
        BlobBackend::S3 => {
            let bucket = std::env::var("SLIPWAY_TEST_S3_URL").unwrap_or_else(|_| {
                panic!(
                    "S3 tests need SLIPWAY_TEST_S3_URL=s3://bucket and SLIPWAY_TEST_S3_ENDPOINT; \
                     `scripts/test` starts an S3-compatible server and sets them"
                )
            });
            let endpoint = std::env::var("SLIPWAY_TEST_S3_ENDPOINT").ok();
            let s3 = S3Options { endpoint, ..S3Options::default() };
            (format!("{}/t-{}", bucket.trim_end_matches('/'), crate::new_id()), s3, None)
        }
    }
}

/// Runs each named `async fn(Backend)` as two tests, `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// Runs each named `async fn(BlobBackend)` as two tests, `NAME::local` and `NAME::s3`.
#[macro_export]
macro_rules! on_both_blob_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name($crate::testing::BlobBackend::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$name($crate::testing::BlobBackend::S3).await
            }
        }
    )*};
}

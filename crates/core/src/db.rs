//! The metadata store: one [`Db`] handle over SQLite or PostgreSQL, and the migrations runner.
//!
//! Stage crates write portable SQL (`$1` placeholders, `BIGINT`, `TEXT`, `DOUBLE PRECISION`) and
//! run it through [`Db::pool`]. Where the two backends differ, the difference is asked for with
//! [`Db::backend`] in the one place that needs it (e.g. `FOR UPDATE SKIP LOCKED`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::error::{Error, Result};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens. SQLite serialises writers anyway; readers benefit.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before getting a "busy, retry" error.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a locked database before giving up.
    pub sqlite_busy_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A handle on the metadata store; cheap to clone, shared by every stage.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    display_url: String,
}

/// One versioned schema change of one component. `version`s of a component start at 1 and
/// increase by one; an applied migration is never edited (its checksum is checked at start).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Db {
    /// Opens the store at `url`: `sqlite:PATH` (the file and its folder are created) or
    /// `postgres://user:pass@host:port/db` (also `postgresql://`).
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, sqlx_url) = parse_url(url)?;
        let connect = AnyConnectOptions::from_str(&sqlx_url).map_err(|e| {
            Error::InvalidDatabaseUrl { url: redact_url(url), reason: e.to_string() }
        })?;
        let busy_ms = options.sqlite_busy_timeout.as_millis();
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; NORMAL sync in WAL mode loses
                    // nothing on a process crash (only on power loss, the last commits).
                    // LIKE is case-sensitive, as on PostgreSQL.
                    let pragmas = format!(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
                         PRAGMA case_sensitive_like = ON;"
                    );
                    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas))).await?;
                    Ok(())
                })
            });
        }
        let pool = match pool_options.connect_with(connect.clone()).await {
            Ok(pool) => pool,
            Err(e @ sqlx::Error::Configuration(_)) => {
                return Err(Error::InvalidDatabaseUrl {
                    url: redact_url(url),
                    reason: e.to_string(),
                });
            }
            // The pool retried until its timeout and says only that: one more attempt, alone,
            // says why ("Connection refused", "password authentication failed").
            Err(sqlx::Error::PoolTimedOut) => {
                let once = sqlx::AnyConnection::connect_with(&connect);
                return Err(match tokio::time::timeout(Duration::from_secs(5), once).await {
                    Ok(Err(e)) => {
                        Error::Unreachable { url: redact_url(url), reason: e.to_string() }
                    }
                    _ => Error::Unreachable {
                        url: redact_url(url),
                        reason: format!(
                            "no connection within {} s",
                            options.acquire_timeout.as_secs_f64()
                        ),
                    },
                });
            }
            Err(e) => return Err(Error::Db(e)),
        };
        Ok(Db { pool, backend, display_url: redact_url(url) })
    }

    /// The connection pool, for running a stage's SQL.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with any password replaced by `***`, for logs and `doctor`.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so that concurrent writers queue on the busy timeout instead of
    /// failing with "database is locked" when a read would later have to become a write.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Checks that the store answers a query.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Closes every connection; pending work finishes first.
    pub async fn close(&self) {
        self.pool.close().await
    }

    /// Brings `component`'s schema up to date, applying each missing migration in its own
    /// transaction. Safe to run from several processes at once.
    pub async fn migrate(&self, component: &str, migrations: &[Migration]) -> Result<()> {
        for (i, m) in migrations.iter().enumerate() {
            if m.version as usize != i + 1 {
                return Err(migration_error(component, m, "versions must run 1, 2, 3, … in order"));
            }
        }
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS slipway_migrations (\
             component TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at BIGINT NOT NULL, \
             PRIMARY KEY (component, version))";
        // `IF NOT EXISTS` is not safe against a concurrent creator on PostgreSQL (the loser
        // gets "relation already exists" or a unique violation on the catalog), so there the
        // table is created under the same advisory lock the migrations take.
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7368201)").execute(&mut *tx).await?;
        }
        tx.execute(CREATE).await?;
        tx.commit().await?;

        let mut applied_now = Vec::new();
        for m in migrations {
            let script = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let checksum = blake3::hash(script.as_bytes()).to_hex().to_string();
            // On SQLite the write lock is taken up front, so the check below cannot go stale.
            let mut tx = self.begin_write().await?;
            if self.backend == Backend::Postgres {
                // Serialise concurrent migrators (several replicas starting together).
                sqlx::query("SELECT pg_advisory_xact_lock(7368201)").execute(&mut *tx).await?;
            }
            let applied = sqlx::query(
                "SELECT checksum FROM slipway_migrations WHERE component = $1 AND version = $2",
            )
            .bind(component)
            .bind(m.version as i64)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = applied {
                let stored: String = row.try_get("checksum")?;
                if stored != checksum {
                    return Err(migration_error(
                        component,
                        m,
                        "was edited after it was applied (checksums differ); add a new migration instead",
                    ));
                }
                continue;
            }
            tracing::debug!(target: "core::db", component, version = m.version, name = m.name, "applying migration");
            tx.execute(sqlx::raw_sql(script))
                .await
                .map_err(|e| migration_error(component, m, &e.to_string()))?;
            sqlx::query(
                "INSERT INTO slipway_migrations (component, version, name, checksum, applied_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(component)
            .bind(m.version as i64)
            .bind(m.name)
            .bind(&checksum)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            applied_now.push(m.version);
        }
        if let (Some(first), Some(last)) = (applied_now.first(), applied_now.last()) {
            // One line per component whose schema changed, not one per migration.
            tracing::info!(target: "core::db", component, "schema migrated (versions {first} to {last})");
        }

        let newest: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM slipway_migrations WHERE component = $1")
                .bind(component)
                .fetch_one(&self.pool)
                .await?
                .try_get("v")?;
        if let Some(newest) = newest
            && newest as usize > migrations.len()
        {
            return Err(Error::Migration {
                component: component.to_string(),
                version: newest as u32,
                name: String::new(),
                reason: "the database was migrated by a newer Slipway; upgrade this binary"
                    .to_string(),
            });
        }
        Ok(())
    }
}

fn migration_error(component: &str, m: &Migration, reason: &str) -> Error {
    Error::Migration {
        component: component.to_string(),
        version: m.version,
        name: m.name.to_string(),
        reason: reason.to_string(),
    }
}

/// Turns Slipway's URL into sqlx's, and says which backend it names.
fn parse_url(url: &str) -> Result<(Backend, String)> {
    let bad =
        |reason: &str| Error::InvalidDatabaseUrl { url: redact_url(url), reason: reason.into() };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(bad("expected sqlite:PATH or postgres://…"));
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        return Err(bad("the SQLite path is empty"));
    }
    if path == ":memory:" {
        return Ok((Backend::Sqlite, "sqlite::memory:".to_string()));
    }
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| bad(&format!("cannot create folder {}: {e}", parent.display())))?;
    }
    let mut sqlx_url = format!("sqlite://{path}?mode=rwc");
    if let Some(q) = query {
        sqlx_url.push('&');
        sqlx_url.push_str(q);
    }
    Ok((Backend::Sqlite, sqlx_url))
}

/// Hides the password of a URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_backends() {
        let check = |url: &str| match parse_url(url) {
            Ok((b, u)) => format!("{} {u}", b.as_str()),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(check("sqlite::memory:"), "sqlite sqlite::memory:");
        assert_eq!(check("postgres://a:b@h/db"), "postgres postgres://a:b@h/db");
        assert_eq!(check("postgresql://h/db"), "postgres postgresql://h/db");
        assert!(check("mysql://h/db").starts_with("error: invalid database URL"));
        assert!(check("sqlite:").starts_with("error:"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/dir/x.db");
        assert_eq!(
            check(&format!("sqlite:{}", file.display())),
            format!("sqlite sqlite://{}?mode=rwc", file.display())
        );
        assert!(file.parent().unwrap().is_dir());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:x.db"), "sqlite:x.db");
    }
}

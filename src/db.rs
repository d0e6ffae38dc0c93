//! The database: SQLite by default, PostgreSQL when the URL says so.
//!
//! Queries go through one `AnyPool` with `$1` placeholders, which both databases
//! accept, so every SQL text serves both. Migrations and the session store need the
//! typed pool of the backend, which sits beside it on the same database.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Any, AnyPool, Connection, Transaction};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::memo::Memo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The app's database handles.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    pub sessions: Sessions,
}

pub type Tx = Transaction<'static, Any>;

impl Db {
    /// Connects, creating a missing SQLite file, and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        install_default_drivers();

        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, max_connections).await
        } else if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, max_connections).await
        } else {
            anyhow::bail!(
                "DATABASE_URL must start with sqlite: or postgres://, got '{}'",
                redact(url)
            )
        }
    }

    async fn connect_sqlite(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("reading the SQLite URL '{url}'"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let typed = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the SQLite database '{url}'"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&typed)
            .await
            .context("migrating the SQLite database")?;

        let store = SqliteStore::new(typed);
        store
            .migrate()
            .await
            .context("creating the session table")?;

        // The file now exists and is in WAL mode, which persists in the file.
        let pool = any_pool(url, max_connections).await?;
        Ok(Db {
            pool,
            backend: Backend::Sqlite,
            sessions: Sessions::Sqlite(store),
        })
    }

    async fn connect_postgres(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        let typed: PgPool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::migrate!("migrations/postgres")
            .run(&typed)
            .await
            .context("migrating the PostgreSQL database")?;

        let store = PostgresStore::new(typed);
        store
            .migrate()
            .await
            .context("creating the session table")?;

        let pool = any_pool(url, max_connections).await?;
        Ok(Db {
            pool,
            backend: Backend::Postgres,
            sessions: Sessions::Postgres(store),
        })
    }

    pub async fn begin(&self) -> sqlx::Result<Tx> {
        self.pool.begin().await
    }

    /// Takes the database-wide writer lock for a sequence inside `tx`.
    ///
    /// Cursors are row ids; a poller that has read id 7 never looks below it again, so
    /// ids must become visible in increasing order. SQLite has one writer at a time
    /// already; PostgreSQL hands out ids before commit, so writers of one sequence
    /// queue on an advisory lock held until commit.
    pub async fn lock_sequence(&self, tx: &mut Tx, key: i64) -> sqlx::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(key)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

async fn any_pool(url: &str, max_connections: u32) -> anyhow::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("connecting to '{}'", redact(url)))
}

/// A database connection that holds a sequence's writer lock until released.
///
/// On PostgreSQL this is a session-level advisory lock, held across the commit and
/// the publish that follows it, so that instances publish a sequence's ids in the
/// order they were committed. SQLite serves one instance, whose in-process lock does
/// the same.
pub struct SequenceLock {
    pub conn: PoolConnection<Any>,
    key: Option<i64>,
}

impl Db {
    /// Waits for the writer lock of sequence `key`.
    pub async fn lock_sequence_session(&self, key: i64) -> sqlx::Result<SequenceLock> {
        let mut conn = self.pool.acquire().await?;
        if self.backend != Backend::Postgres {
            return Ok(SequenceLock { conn, key: None });
        }
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(SequenceLock {
            conn,
            key: Some(key),
        })
    }
}

impl SequenceLock {
    /// Releases the lock. Should that fail, the connection is closed instead, which
    /// releases it too, rather than returning to the pool still holding it.
    pub async fn release(mut self) {
        let Some(key) = self.key else {
            return;
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *self.conn)
            .await;
        if let Err(error) = unlocked {
            tracing::warn!(%error, "advisory unlock failed; closing the connection");
            let _ = self.conn.detach().close().await;
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The session store of whichever database the app runs on, so sessions live beside
/// the users and survive restarts and are shared by several instances.
#[derive(Clone, Debug)]
pub enum Sessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(store) => store.create(record).await,
            Sessions::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(store) => store.save(record).await,
            Sessions::Postgres(store) => store.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Sessions::Sqlite(store) => store.load(id).await,
            Sessions::Postgres(store) => store.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(store) => store.delete(id).await,
            Sessions::Postgres(store) => store.delete(id).await,
        }
    }
}

/// The session store with recently read sessions kept in memory; see [`Memo`].
#[derive(Clone, Debug)]
pub struct CachedSessions {
    inner: Sessions,
    memo: Memo<Id, Record>,
}

impl CachedSessions {
    pub fn new(inner: Sessions, fresh_for: Duration) -> Self {
        CachedSessions {
            inner,
            memo: Memo::new(fresh_for, SESSIONS_KEPT),
        }
    }
}

/// Sessions kept in memory at most; a few hundred bytes each.
const SESSIONS_KEPT: usize = 100_000;

#[async_trait::async_trait]
impl SessionStore for CachedSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.inner.create(record).await?;
        self.memo.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(record).await?;
        self.memo.insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = tower_sessions::cookie::time::OffsetDateTime::now_utc();
        if let Some(record) = self.memo.get(id).filter(|r| r.expiry_date > now) {
            return Ok(Some(record));
        }
        let record = self.inner.load(id).await?;
        match &record {
            Some(record) => self.memo.insert(*id, record.clone()),
            None => self.memo.remove(id),
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.memo.remove(id);
        self.inner.delete(id).await
    }
}

impl Sessions {
    /// Deletes expired sessions every `period` until the task is dropped.
    pub async fn delete_expired_every(self, period: Duration) {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let result = match &self {
                Sessions::Sqlite(store) => store.delete_expired().await,
                Sessions::Postgres(store) => store.delete_expired().await,
            };
            if let Err(error) = result {
                tracing::warn!(%error, "deleting expired sessions failed");
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("sqlite://switchyard.db"), "sqlite://switchyard.db");
    }
}

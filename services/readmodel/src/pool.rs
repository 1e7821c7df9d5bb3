//! Connections to a read-model database: opening the pool the URL names, and running a
//! statement on it. Everything else about a read model is written once on top of this,
//! generic over the [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use eventline_core::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

use crate::backend::{Args, Backend};
use crate::dialect::Dialect;
use crate::error::ReadModelError;

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$pool` bound to whichever pool this database has: the body is generic
/// code, written once for every backend.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            $crate::pool::Pool::Sqlite($pool) => $body,
            $crate::pool::Pool::Postgres($pool) => $body,
            $crate::pool::Pool::MySql($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A connection pool to one read-model database; its kind decides the dialect spoken.
#[derive(Debug, Clone)]
pub struct ReadModelDb {
    pub(crate) pool: Pool,
}

pub(crate) fn database_error(
    dialect: Dialect,
    action: impl Into<String>,
) -> impl FnOnce(sqlx::Error) -> ReadModelError {
    let action = action.into();
    move |source| ReadModelError::Database {
        database: dialect.name(),
        action,
        source,
    }
}

impl ReadModelDb {
    /// Connects by URL; the scheme picks the database: `sqlite://PATH`,
    /// `postgres://USER:PASSWORD@HOST/DB`, `mysql://USER:PASSWORD@HOST/DB` (MySQL or MariaDB).
    pub async fn connect(url: &str) -> Result<Self, ReadModelError> {
        Self::connect_with_pool_size(url, 8).await
    }

    /// [`ReadModelDb::connect`] with a pool of up to `pool_size` connections.
    pub async fn connect_with_pool_size(url: &str, pool_size: u32) -> Result<Self, ReadModelError> {
        let scheme = url.split(':').next().unwrap_or_default();
        let parse = |dialect: Dialect| database_error(dialect, "parsing the URL");
        match scheme {
            "sqlite" => {
                let options =
                    SqliteConnectOptions::from_str(url).map_err(parse(Dialect::Sqlite))?;
                Self::open_sqlite_with(options).await
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url).map_err(parse(Dialect::Postgres))?;
                Ok(Self {
                    pool: Pool::Postgres(server_pool(options, pool_size).await?),
                })
            }
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb:", "mysql:", 1);
                let options = MySqlConnectOptions::from_str(&url).map_err(parse(Dialect::MySql))?;
                // Timestamps are exchanged in UTC whatever the server's time zone.
                let options = options.timezone(Some("+00:00".to_owned()));
                Ok(Self {
                    pool: Pool::MySql(server_pool(options, pool_size).await?),
                })
            }
            other => Err(ReadModelError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    /// Opens (creating if needed) a SQLite read model at `path`.
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<Self, ReadModelError> {
        Self::open_sqlite_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_sqlite_with(options: SqliteConnectOptions) -> Result<Self, ReadModelError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The checkpoint lives in the same file and transaction, so a lost tail after a
            // power cut loses both together and is simply projected again.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(database_error(Dialect::Sqlite, "connecting"))?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
        }
    }

    /// Checks that the database answers; used by `/readyz`.
    pub async fn ping(&self) -> Result<(), ReadModelError> {
        with_pool!(self, pool => execute_on(pool, "SELECT 1".to_owned(), &[], "pinging").await)
            .map(drop)
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}

/// A pool to a database server (PostgreSQL, MySQL), bounded and with an acquire timeout.
async fn server_pool<DB: Backend>(
    options: <DB::Connection as sqlx::Connection>::Options,
    pool_size: u32,
) -> Result<sqlx::Pool<DB>, ReadModelError> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(database_error(DB::DIALECT, "connecting"))
}

/// Runs `sql` with `binds` on a connection of its own; returns the rows it affected.
pub(crate) async fn execute_on<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    sql: String,
    binds: &[&Value],
    action: &str,
) -> Result<u64, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut conn = pool
        .acquire()
        .await
        .map_err(database_error(DB::DIALECT, action))?;
    execute_in::<DB>(&mut conn, sql, binds, action).await
}

/// Runs `sql` with `binds` on `conn`; returns the rows it affected.
pub(crate) async fn execute_in<DB: Backend>(
    conn: &mut DB::Connection,
    sql: String,
    binds: &[&Value],
    action: &str,
) -> Result<u64, ReadModelError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Args<DB>: IntoArguments<DB>,
{
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in binds {
        query = DB::bind(query, value);
    }
    query
        .execute(&mut *conn)
        .await
        .map(|result| DB::rows_affected(&result))
        .map_err(database_error(DB::DIALECT, action))
}

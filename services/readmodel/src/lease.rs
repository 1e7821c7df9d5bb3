//! Leases: at most one holder of a name at a time, across processes, so that only one relay
//! (or other singleton) is active per store.
//!
//! PostgreSQL: a session advisory lock (scoped to the database); MySQL/MariaDB: `GET_LOCK` on a
//! name qualified by the database. The lock lives on a
//! connection of its own, taken out of the pool: dropping the [`Lease`] closes that connection
//! and the database releases the lock; if the connection dies, the database releases it too, and
//! [`Lease::check`] fails, so the holder stops before anyone else can start. SQLite read models
//! serve one node only; their lease is held by that process alone.

use sqlx::{Connection, MySqlConnection, PgConnection};

use crate::error::ReadModelError;
use crate::pool::{Pool, ReadModelDb};

/// A held lease; released when dropped.
#[derive(Debug)]
pub struct Lease {
    name: String,
    holder: Holder,
}

#[derive(Debug)]
enum Holder {
    Local,
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

/// A stable 64-bit key for an advisory lock name (FNV-1a).
fn lock_key(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn failed(database: &'static str, action: &str) -> impl FnOnce(sqlx::Error) -> ReadModelError {
    let action = action.to_owned();
    move |source| ReadModelError::Database {
        database,
        action,
        source,
    }
}

impl ReadModelDb {
    /// Takes the lease `name` if nobody holds it; `None` if somebody does.
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, ReadModelError> {
        let action = format!("taking the lease {name}");
        let holder = match &self.pool {
            Pool::Sqlite(_) => Some(Holder::Local),
            Pool::Postgres(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(failed("postgres", &action))?
                    .detach();
                let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(lock_key(name))
                    .fetch_one(&mut conn)
                    .await
                    .map_err(failed("postgres", &action))?;
                taken.then_some(Holder::Postgres(conn))
            }
            Pool::MySql(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(failed("mysql", &action))?
                    .detach();
                // MySQL lock names are server-wide, so they are qualified with the database,
                // and at most 64 characters long (MySQL 5.7+), so the qualified name is hashed.
                let taken: Option<i64> = sqlx::query_scalar(
                    "SELECT GET_LOCK(CONCAT('eventline:', MD5(CONCAT(DATABASE(), ':', ?))), 0)",
                )
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .map_err(failed("mysql", &action))?;
                (taken == Some(1)).then_some(Holder::MySql(conn))
            }
        };
        Ok(holder.map(|holder| Lease {
            name: name.to_owned(),
            holder,
        }))
    }
}

impl Lease {
    /// The name leased.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fails if the connection that holds the lock is gone (then the lock is gone too).
    pub async fn check(&mut self) -> Result<(), ReadModelError> {
        let action = format!("checking the lease {}", self.name);
        match &mut self.holder {
            Holder::Local => Ok(()),
            Holder::Postgres(conn) => conn.ping().await.map_err(failed("postgres", &action)),
            Holder::MySql(conn) => conn.ping().await.map_err(failed("mysql", &action)),
        }
    }
}

/// The lease of a singleton loop (the relay, a processor): taken when it is free, checked
/// before each unit of work (a batch), dropped when its connection is gone. A holder whose
/// lease is lost notices at its next check; the batch in flight may still overlap with a new
/// holder's first one, so the work done under a lease must tolerate being done twice (the
/// relay's consumers deduplicate; a processor's reactions are idempotent).
#[derive(Debug)]
pub struct LeaseKeeper {
    name: String,
    held: Option<Lease>,
}

impl LeaseKeeper {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            held: None,
        }
    }

    /// Whether this process holds the lease now: the lease it holds is checked, or taken if
    /// nobody holds it. `Err` means a held lease was lost (or the database is unreachable);
    /// the caller stops working and asks again later.
    pub async fn hold(&mut self, db: &ReadModelDb) -> Result<bool, ReadModelError> {
        if let Some(lease) = self.held.as_mut() {
            return match lease.check().await {
                Ok(()) => Ok(true),
                Err(error) => {
                    self.held = None;
                    Err(error)
                }
            };
        }
        self.held = db.try_lease(&self.name).await?;
        if self.held.is_some() {
            tracing::info!(lease = %self.name, "lease taken; this instance is the active one");
        }
        Ok(self.held.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("eventline-relay"), lock_key("eventline-relay"));
        assert_ne!(lock_key("eventline-relay"), lock_key("eventline-relay-2"));
    }
}

//! Test helpers shared by the crates' integration tests.
//!
//! Each test owns its data: [`TestDatabase::postgres`] and [`TestDatabase::mysql`] create a
//! uniquely named database and drop it when the guard is dropped, so tests run in parallel and
//! repeated runs never see each other's rows. PostgreSQL and MariaDB are required (started by
//! `scripts/test-services.sh`); a test that cannot reach one fails with a message saying so,
//! it is never silently skipped.

use sqlx::{AssertSqlSafe, Connection, MySqlConnection, PgConnection};

/// Where the tests' PostgreSQL is: `EVENTLINE_TEST_POSTGRES_URL`, or the local server.
pub fn postgres_admin_url() -> String {
    std::env::var("EVENTLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Where the tests' MySQL-protocol server (MariaDB here) is: `EVENTLINE_TEST_MYSQL_URL`, or
/// the local server.
pub fn mysql_admin_url() -> String {
    std::env::var("EVENTLINE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Postgres,
    MySql,
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
    server: Server,
}

/// `server_url` (any database URL) with its database replaced by `name`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base.rfind('/') {
        Some(i) if i >= scheme_end => &base[..i],
        _ => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

impl TestDatabase {
    /// Creates a fresh, empty PostgreSQL database.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("eventline_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url} ({e}). The tests need it: run \
                 ./scripts/test.sh, which starts it, or set EVENTLINE_TEST_POSTGRES_URL"
            )
        });
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        Self {
            url: database_url(&admin_url, &name),
            name,
            admin_url,
            server: Server::Postgres,
        }
    }

    /// Creates a fresh, empty MySQL/MariaDB database.
    pub async fn mysql() -> Self {
        let admin_url = mysql_admin_url();
        let name = format!("eventline_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = MySqlConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "MariaDB/MySQL is not reachable at {admin_url} ({e}). The tests need it: run \
                 ./scripts/test.sh, which starts it, or set EVENTLINE_TEST_MYSQL_URL"
                )
            });
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut admin)
        .await
        .expect("create the test database");
        let _ = admin.close().await;
        Self {
            url: database_url(&admin_url, &name),
            name,
            admin_url,
            server: Server::MySql,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name, server) = (self.admin_url.clone(), self.name.clone(), self.server);
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread with a
        // runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                match server {
                    Server::Postgres => {
                        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                            let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await;
                        }
                    }
                    Server::MySql => {
                        if let Ok(mut admin) = MySqlConnection::connect(&admin_url).await {
                            let sql = format!("DROP DATABASE IF EXISTS {name}");
                            let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await;
                        }
                    }
                }
            });
        });
        let _ = dropped.join();
    }
}

/// The MongoDB URI for tests, from `EVENTLINE_TEST_MONGODB_URI`. Without it, prints one line
/// saying the test is skipped and why, and returns `None`.
pub fn mongodb_uri(test: &str) -> Option<String> {
    match std::env::var("EVENTLINE_TEST_MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            println!(
                "skipped {test}, because EVENTLINE_TEST_MONGODB_URI is not set (no MongoDB \
                 server can be installed on this machine; point it at a mongod to run it)"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://h:5432", "t1"),
            "postgres://h:5432/t1"
        );
    }
}

/// The shared Kafka-protocol broker the tests use (`EVENTLINE_TEST_KAFKA_BROKERS`, set by
/// scripts/test-services.sh; default `127.0.0.1:9092`). Tests keep apart by topic prefix and
/// consumer group, never by sharing names.
pub fn kafka_brokers() -> String {
    std::env::var("EVENTLINE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A name no other test (or earlier run) uses, for topic prefixes and consumer groups.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A Kafka-protocol broker (Tansu, in memory) of one test's own, so that the test can pause
/// it without disturbing the others. Killed on drop.
#[derive(Debug)]
pub struct PrivateBroker {
    child: std::process::Child,
    pub brokers: String,
}

impl PrivateBroker {
    /// Starts one, or prints why the test is skipped and returns `None` when the Tansu binary
    /// is unknown (`EVENTLINE_TEST_TANSU`, exported by scripts/test-services.sh).
    pub async fn start(test: &str) -> Option<Self> {
        let Ok(tansu) = std::env::var("EVENTLINE_TEST_TANSU") else {
            println!(
                "{test}: skipped, because EVENTLINE_TEST_TANSU is not set (the Tansu broker \
                 binary; scripts/test.sh sets it)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = std::process::Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the Tansu broker");
        let brokers = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&brokers).await.is_ok() {
                return Some(Self { child, brokers });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the private Tansu broker did not listen on {brokers} within 10 s");
    }

    /// Freezes the broker (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event of `store`, once a reader sees at least `count` of them.
///
/// A PostgreSQL store shows readers only what committed below the cluster's oldest running
/// transaction (its gap-safety horizon); a transaction another test keeps open, in any
/// database of the server, holds that back for a while. Tests that count events wait here
/// instead of reading once. Panics after 60 s, saying how many it saw.
pub async fn events_once_visible(
    store: &dyn eventline_core::EventStore,
    count: usize,
) -> Vec<eventline_core::Envelope> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let events = store
            .read_all(eventline_core::Position::START, 1_000_000)
            .await
            .expect("read the store");
        if events.len() >= count {
            return events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} events became visible within 60 s",
            events.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

use std::borrow::Cow;
use std::fmt::Write;

use eventline_core::{Column, ColumnType, Index, Table};

/// The SQL differences between the databases a read model can live in.
///
/// Everything a projector or query service sends is rendered here; callers never write SQL
/// per database. Identifiers come from projections' static table declarations and are
/// checked by [`Dialect::check_identifier`] before any SQL is built from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    /// MySQL 8 and MariaDB 10.5+.
    MySql,
}

/// How a read locks the row it reads, until its transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    None,
    Shared,
    Exclusive,
}

impl Dialect {
    /// A short name for logs, errors and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// Only lowercase ASCII letters, digits and underscores, starting with a letter: such
    /// names need no quoting rules of their own in any dialect.
    pub fn check_identifier(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
            && name.len() <= 63
    }

    /// The `n`-th (1-based) bind placeholder.
    fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite | Dialect::MySql => "?".to_owned(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!("\"{ident}\""),
            Dialect::MySql => format!("`{ident}`"),
        }
    }

    fn column_type(self, ty: ColumnType, indexed: bool) -> Cow<'static, str> {
        let name = match (self, ty) {
            (Dialect::Sqlite, ColumnType::BigInt | ColumnType::Boolean) => "INTEGER",
            // SQLite keeps a decimal as an integer scaled by 10^scale: exact and ordered.
            (Dialect::Sqlite, ColumnType::Decimal { .. }) => "INTEGER",
            (Dialect::Sqlite, ColumnType::Double) => "REAL",
            (
                Dialect::Sqlite,
                ColumnType::Text
                | ColumnType::Timestamp
                | ColumnType::Json
                | ColumnType::Uuid
                | ColumnType::Date,
            ) => "TEXT",
            (Dialect::Sqlite, ColumnType::Bytes) => "BLOB",
            (Dialect::Postgres | Dialect::MySql, ColumnType::BigInt) => "BIGINT",
            (Dialect::Postgres | Dialect::MySql, ColumnType::Boolean) => "BOOLEAN",
            (Dialect::Postgres | Dialect::MySql, ColumnType::Date) => "DATE",
            (Dialect::Postgres, ColumnType::Decimal { precision, scale }) => {
                return Cow::Owned(format!("NUMERIC({precision},{scale})"));
            }
            (Dialect::MySql, ColumnType::Decimal { precision, scale }) => {
                return Cow::Owned(format!("DECIMAL({precision},{scale})"));
            }
            (Dialect::Postgres, ColumnType::Text) => "TEXT",
            (Dialect::Postgres, ColumnType::Timestamp) => "TIMESTAMPTZ",
            (Dialect::Postgres, ColumnType::Double) => "DOUBLE PRECISION",
            (Dialect::Postgres, ColumnType::Json) => "JSONB",
            (Dialect::Postgres, ColumnType::Uuid) => "UUID",
            (Dialect::Postgres, ColumnType::Bytes) => "BYTEA",
            // 191 characters of utf8mb4 fit InnoDB's index key limit everywhere.
            (Dialect::MySql, ColumnType::Text) if indexed => "VARCHAR(191)",
            (Dialect::MySql, ColumnType::Text) => "LONGTEXT",
            (Dialect::MySql, ColumnType::Timestamp) => "DATETIME(6)",
            (Dialect::MySql, ColumnType::Double) => "DOUBLE",
            (Dialect::MySql, ColumnType::Json) => "JSON",
            // Lowercase hyphenated text, which orders like PostgreSQL's uuid.
            (Dialect::MySql, ColumnType::Uuid) => "CHAR(36)",
            (Dialect::MySql, ColumnType::Bytes) => "LONGBLOB",
        };
        Cow::Borrowed(name)
    }

    /// `CREATE TABLE IF NOT EXISTS` and its indexes, one statement each.
    pub fn create_table(self, table: &Table) -> Vec<String> {
        // MySQL has no CREATE INDEX IF NOT EXISTS; indexes go inside the table.
        let mut statements = vec![self.table_ddl(table, self == Dialect::MySql)];
        if self != Dialect::MySql {
            for index in &table.indexes {
                statements.push(self.create_index(table, index));
            }
        }
        statements
    }

    /// `CREATE TABLE IF NOT EXISTS` with the primary key only: the secondary indexes are
    /// built after a bulk load ([`Dialect::create_index`]). Column types are those of the
    /// indexed table (MySQL indexes only bounded text).
    pub fn create_table_without_indexes(self, table: &Table) -> String {
        self.table_ddl(table, false)
    }

    fn table_ddl(self, table: &Table, inline_indexes: bool) -> String {
        let indexed = |column: &str| {
            table.primary_key.contains(&column)
                || table.indexes.iter().any(|i| i.columns.contains(&column))
        };
        let mut ddl = format!("CREATE TABLE IF NOT EXISTS {} (", self.quote(table.name));
        for column in &table.columns {
            let _ = write!(
                ddl,
                "{} {}{}, ",
                self.quote(column.name),
                self.column_type(column.ty, indexed(column.name)),
                if column.nullable { "" } else { " NOT NULL" }
            );
        }
        let _ = write!(ddl, "PRIMARY KEY ({})", self.list(table.primary_key));
        if inline_indexes {
            for index in &table.indexes {
                let _ = write!(
                    ddl,
                    ", INDEX {} ({})",
                    self.quote(index.name),
                    self.list(index.columns)
                );
            }
        }
        ddl.push(')');
        if self == Dialect::MySql {
            ddl.push_str(" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
        }
        ddl
    }

    /// Adds a (nullable) column to an existing table.
    pub fn add_column(self, table: &Table, column: &Column) -> String {
        let indexed = table
            .indexes
            .iter()
            .any(|i| i.columns.contains(&column.name));
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.quote(table.name),
            self.quote(column.name),
            self.column_type(column.ty, indexed)
        )
    }

    /// Creates an index of an existing table.
    pub fn create_index(self, table: &Table, index: &Index) -> String {
        match self {
            Dialect::MySql => format!(
                "ALTER TABLE {} ADD INDEX {} ({})",
                self.quote(table.name),
                self.quote(index.name),
                self.list(index.columns)
            ),
            Dialect::Sqlite | Dialect::Postgres => format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                self.quote(index.name),
                self.quote(table.name),
                self.list(index.columns)
            ),
        }
    }

    fn list(self, columns: &[&str]) -> String {
        columns
            .iter()
            .map(|c| self.quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Insert a row, or overwrite its non-key columns when the primary key exists.
    pub fn upsert(self, table: &Table, columns: &[&str]) -> String {
        self.insert_or(table, columns, 1, true)
    }

    /// [`Dialect::upsert`] of `rows` rows in one statement (their keys must differ).
    pub fn upsert_rows(self, table: &Table, columns: &[&str], rows: usize) -> String {
        self.insert_or(table, columns, rows, true)
    }

    /// Insert a row unless one with the same primary key exists.
    pub fn insert_if_absent(self, table: &Table, columns: &[&str]) -> String {
        self.insert_or(table, columns, 1, false)
    }

    fn insert_or(self, table: &Table, columns: &[&str], rows: usize, overwrite: bool) -> String {
        let width = columns.len();
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let placeholders: Vec<String> = (1..=width)
                    .map(|n| self.placeholder(row * width + n))
                    .collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        let non_key: Vec<&&str> = columns
            .iter()
            .filter(|c| overwrite && !table.primary_key.contains(c))
            .collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.quote(table.name),
            self.list(columns),
            values.join(", ")
        );
        if self == Dialect::MySql {
            let updates: Vec<String> = if non_key.is_empty() {
                // "Do nothing": assign a key column to itself.
                let key = self.quote(table.primary_key[0]);
                vec![format!("{key} = {key}")]
            } else {
                non_key
                    .iter()
                    .map(|c| format!("{q} = VALUES({q})", q = self.quote(c)))
                    .collect()
            };
            return format!("{insert} ON DUPLICATE KEY UPDATE {}", updates.join(", "));
        }
        let on_conflict = if non_key.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            let updates: Vec<String> = non_key
                .iter()
                .map(|c| format!("{q} = excluded.{q}", q = self.quote(c)))
                .collect();
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        format!(
            "{insert} ON CONFLICT ({}) {on_conflict}",
            self.list(table.primary_key)
        )
    }

    /// The `n`-th placeholder cast to `column`'s type (`$3::BIGINT`).
    fn typed_placeholder(self, table: &Table, column: &str, n: usize) -> String {
        let ty = table
            .column(column)
            .map_or(Cow::Borrowed("TEXT"), |c| self.column_type(c.ty, false));
        format!("{}::{ty}", self.placeholder(n))
    }

    /// PostgreSQL only: [`Dialect::upsert`] of any number of rows given as one array per
    /// column (`unnest($1::bigint[], $2::text[], ...)`): one statement text whatever the row
    /// count, and one bind per column instead of one per value.
    pub fn upsert_arrays(self, table: &Table, columns: &[&str]) -> String {
        debug_assert_eq!(self, Dialect::Postgres);
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}[]", self.typed_placeholder(table, c, i + 1)))
            .collect();
        let single = self.insert_or(table, columns, 1, true);
        let values = format!(
            "VALUES ({})",
            (1..=columns.len())
                .map(|n| self.placeholder(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
        single.replacen(
            &values,
            &format!("SELECT * FROM unnest({})", arrays.join(", ")),
            1,
        )
    }

    /// PostgreSQL only: set `set` columns of the rows found by their `key` columns, the values
    /// given as one array per column: keys first, then the set columns.
    pub fn update_arrays(self, table: &Table, set: &[&str], key: &[&str]) -> String {
        debug_assert_eq!(self, Dialect::Postgres);
        let columns: Vec<&str> = key.iter().chain(set).copied().collect();
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}[]", self.typed_placeholder(table, c, i + 1)))
            .collect();
        let assignments: Vec<String> = set
            .iter()
            .map(|c| format!("{q} = v.{q}", q = self.quote(c)))
            .collect();
        let matches: Vec<String> = key
            .iter()
            .map(|c| {
                format!(
                    "{t}.{q} = v.{q}",
                    t = self.quote(table.name),
                    q = self.quote(c)
                )
            })
            .collect();
        format!(
            "UPDATE {} SET {} FROM unnest({}) AS v ({}) WHERE {}",
            self.quote(table.name),
            assignments.join(", "),
            arrays.join(", "),
            self.list(&columns),
            matches.join(" AND ")
        )
    }

    /// The applied versions of `streams` streams of one projection (`projection` is bound
    /// first, then the stream ids).
    pub fn select_stream_versions(self, streams: usize) -> String {
        let ids: Vec<String> = (2..streams + 2).map(|n| self.placeholder(n)).collect();
        format!(
            "SELECT {}, {} FROM {} WHERE {} = {} AND {} IN ({})",
            self.quote("stream_id"),
            self.quote("version"),
            self.quote("eventline_stream_versions"),
            self.quote("projection"),
            self.placeholder(1),
            self.quote("stream_id"),
            ids.join(", ")
        )
    }

    /// Reads a Kafka partition's next offset for a projection, locking its row until the
    /// transaction ends, so two projector instances never apply one partition's batches at
    /// the same time (during a consumer-group rebalance both may hold it briefly).
    pub fn partition_offset_for_update(self) -> String {
        let lock = match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        };
        format!(
            "SELECT {} FROM {} WHERE {} = {} AND {} = {} AND {} = {}{lock}",
            self.quote("next_offset"),
            self.quote("eventline_kafka_offsets"),
            self.quote("projection"),
            self.placeholder(1),
            self.quote("topic"),
            self.placeholder(2),
            self.quote("kafka_partition"),
            self.placeholder(3),
        )
    }

    /// Reads a projection's checkpoint and its cut-over mark, locking the row as `lock`
    /// says until the transaction ends. A batch from the store takes it exclusively, so two
    /// projector instances never apply the same batch; a Kafka partition's batch shares it
    /// with the other partitions' batches; a cut-over takes it exclusively and so waits for
    /// every batch in flight and holds off the next (SQLite's write lock does all of this).
    pub fn checkpoint_select(self, lock: RowLock) -> String {
        let lock = match (self, lock) {
            (Dialect::Sqlite, _) | (_, RowLock::None) => "",
            (Dialect::Postgres | Dialect::MySql, RowLock::Exclusive) => " FOR UPDATE",
            (Dialect::Postgres, RowLock::Shared) => " FOR SHARE",
            (Dialect::MySql, RowLock::Shared) => " LOCK IN SHARE MODE",
        };
        format!(
            "SELECT {}, {}, {} FROM {} WHERE {} = {}{lock}",
            self.quote("commit_position"),
            self.quote("event_position"),
            self.quote("cut_over_by"),
            self.quote("eventline_checkpoints"),
            self.quote("projection"),
            self.placeholder(1)
        )
    }

    /// Renames tables `(from, to)` in one statement where the database can (MySQL's
    /// `RENAME TABLE` is atomic over all its pairs), else one statement each (PostgreSQL and
    /// SQLite run them inside one transaction).
    pub fn rename_tables(self, pairs: &[(&str, &str)]) -> Vec<String> {
        match self {
            Dialect::MySql => vec![format!(
                "RENAME TABLE {}",
                pairs
                    .iter()
                    .map(|(from, to)| format!("{} TO {}", self.quote(from), self.quote(to)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
            Dialect::Postgres | Dialect::Sqlite => pairs
                .iter()
                .map(|(from, to)| {
                    format!(
                        "ALTER TABLE {} RENAME TO {}",
                        self.quote(from),
                        self.quote(to)
                    )
                })
                .collect(),
        }
    }

    /// Sets `column` to NULL in the row whose `key` column matches (a literal NULL: bound
    /// NULLs carry a type in PostgreSQL).
    pub fn set_null(self, table: &str, column: &str, key: &str) -> String {
        format!(
            "UPDATE {} SET {} = NULL WHERE {} = {}",
            self.quote(table),
            self.quote(column),
            self.quote(key),
            self.placeholder(1)
        )
    }

    /// Drops a table if it exists.
    pub fn drop_table(self, table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", self.quote(table))
    }

    /// Moves every row of `table` kept under the bookkeeping key `from` to the key `to`.
    pub fn rekey(self, table: &str) -> String {
        format!(
            "UPDATE {} SET {} = {} WHERE {} = {}",
            self.quote(table),
            self.quote("projection"),
            self.placeholder(1),
            self.quote("projection"),
            self.placeholder(2)
        )
    }

    /// Deletes every row of `table` kept under one bookkeeping key.
    pub fn delete_key(self, table: &str) -> String {
        format!(
            "DELETE FROM {} WHERE {} = {}",
            self.quote(table),
            self.quote("projection"),
            self.placeholder(1)
        )
    }

    /// Set `set` columns of the row matching all `key` columns.
    pub fn update(self, table: &str, set: &[&str], key: &[&str]) -> String {
        let mut n = 0;
        let mut next = || {
            n += 1;
            self.placeholder(n)
        };
        let set: Vec<String> = set
            .iter()
            .map(|c| format!("{} = {}", self.quote(c), next()))
            .collect();
        let key: Vec<String> = key
            .iter()
            .map(|c| format!("{} = {}", self.quote(c), next()))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.quote(table),
            set.join(", "),
            key.join(" AND ")
        )
    }

    /// Delete the row matching all `key` columns.
    pub fn delete(self, table: &str, key: &[&str]) -> String {
        let key: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = {}", self.quote(c), self.placeholder(i + 1)))
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            self.quote(table),
            key.join(" AND ")
        )
    }

    /// `SELECT` of all columns with equality filters, an optional keyset lower bound on the
    /// ordering columns, ordered by them, limited.
    /// Columns of `table` where `filters` are equal, ordered by `order_by` (all ascending, or
    /// all descending), after (or, descending, before) the keyset bound when `after`.
    pub fn select(
        self,
        table: &Table,
        filters: &[&str],
        order_by: &[&str],
        after: bool,
        descending: bool,
    ) -> String {
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let mut n = 0;
        let mut next = || {
            n += 1;
            self.placeholder(n)
        };
        let mut conditions: Vec<String> = filters
            .iter()
            .map(|c| format!("{} = {}", self.quote(c), next()))
            .collect();
        if after {
            let bounds: Vec<String> = order_by.iter().map(|_| next()).collect();
            conditions.push(format!(
                "({}) {} ({})",
                self.list(order_by),
                if descending { "<" } else { ">" },
                bounds.join(", ")
            ));
        }
        let mut sql = format!(
            "SELECT {} FROM {}",
            self.list(&columns),
            self.quote(table.name)
        );
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        let order: Vec<String> = order_by
            .iter()
            .map(|c| {
                if descending {
                    format!("{} DESC", self.quote(c))
                } else {
                    self.quote(c)
                }
            })
            .collect();
        let _ = write!(sql, " ORDER BY {} LIMIT {}", order.join(", "), next());
        sql
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An accounts table with an index, for tests of SQL rendering and write plans.
    pub(crate) fn accounts() -> Table {
        Table {
            name: "accounts",
            columns: vec![
                Column::new("id", ColumnType::Text),
                Column::new("holder", ColumnType::Text),
                Column::new("balance", ColumnType::BigInt),
                Column::nullable("closed_at", ColumnType::Timestamp),
            ],
            primary_key: &["id"],
            indexes: vec![Index {
                name: "accounts_holder",
                columns: &["holder", "id"],
            }],
        }
    }

    #[test]
    fn renders_sqlite_ddl() {
        assert_eq!(
            Dialect::Sqlite.create_table(&accounts()),
            [
                "CREATE TABLE IF NOT EXISTS \"accounts\" (\"id\" TEXT NOT NULL, \"holder\" TEXT NOT NULL, \
                 \"balance\" INTEGER NOT NULL, \"closed_at\" TEXT, PRIMARY KEY (\"id\"))",
                "CREATE INDEX IF NOT EXISTS \"accounts_holder\" ON \"accounts\" (\"holder\", \"id\")",
            ]
        );
    }

    #[test]
    fn renders_upsert_update_delete() {
        let d = Dialect::Sqlite;
        assert_eq!(
            d.upsert(&accounts(), &["id", "balance"]),
            "INSERT INTO \"accounts\" (\"id\", \"balance\") VALUES (?, ?) ON CONFLICT (\"id\") \
             DO UPDATE SET \"balance\" = excluded.\"balance\""
        );
        assert_eq!(
            d.upsert(&accounts(), &["id"]),
            "INSERT INTO \"accounts\" (\"id\") VALUES (?) ON CONFLICT (\"id\") DO NOTHING"
        );
        assert_eq!(
            d.update("accounts", &["balance"], &["id"]),
            "UPDATE \"accounts\" SET \"balance\" = ? WHERE \"id\" = ?"
        );
        assert_eq!(
            d.delete("accounts", &["id"]),
            "DELETE FROM \"accounts\" WHERE \"id\" = ?"
        );
    }

    #[test]
    fn renders_keyset_select() {
        assert_eq!(
            Dialect::Sqlite.select(&accounts(), &["holder"], &["id"], true, false),
            "SELECT \"id\", \"holder\", \"balance\", \"closed_at\" FROM \"accounts\" \
             WHERE \"holder\" = ? AND (\"id\") > (?) ORDER BY \"id\" LIMIT ?"
        );
        assert_eq!(
            Dialect::Sqlite.select(&accounts(), &[], &["balance", "id"], true, true),
            "SELECT \"id\", \"holder\", \"balance\", \"closed_at\" FROM \"accounts\" \
             WHERE (\"balance\", \"id\") < (?, ?) ORDER BY \"balance\" DESC, \"id\" DESC LIMIT ?"
        );
    }

    #[test]
    fn renders_postgres_with_numbered_placeholders_and_native_types() {
        let d = Dialect::Postgres;
        assert_eq!(
            d.create_table(&accounts())[0],
            "CREATE TABLE IF NOT EXISTS \"accounts\" (\"id\" TEXT NOT NULL, \"holder\" TEXT NOT NULL, \
             \"balance\" BIGINT NOT NULL, \"closed_at\" TIMESTAMPTZ, PRIMARY KEY (\"id\"))"
        );
        assert_eq!(
            d.update("accounts", &["balance", "holder"], &["id"]),
            "UPDATE \"accounts\" SET \"balance\" = $1, \"holder\" = $2 WHERE \"id\" = $3"
        );
        assert_eq!(
            d.select(&accounts(), &["holder"], &["id"], true, false),
            "SELECT \"id\", \"holder\", \"balance\", \"closed_at\" FROM \"accounts\" \
             WHERE \"holder\" = $1 AND (\"id\") > ($2) ORDER BY \"id\" LIMIT $3"
        );
    }

    #[test]
    fn renders_mysql_with_inline_indexes_and_duplicate_key_updates() {
        let d = Dialect::MySql;
        assert_eq!(
            d.create_table(&accounts()),
            [
                "CREATE TABLE IF NOT EXISTS `accounts` (`id` VARCHAR(191) NOT NULL, \
              `holder` VARCHAR(191) NOT NULL, `balance` BIGINT NOT NULL, `closed_at` DATETIME(6), \
              PRIMARY KEY (`id`), INDEX `accounts_holder` (`holder`, `id`)) \
              CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ]
        );
        assert_eq!(
            d.upsert(&accounts(), &["id", "balance"]),
            "INSERT INTO `accounts` (`id`, `balance`) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE `balance` = VALUES(`balance`)"
        );
        assert_eq!(
            d.upsert(&accounts(), &["id"]),
            "INSERT INTO `accounts` (`id`) VALUES (?) ON DUPLICATE KEY UPDATE `id` = `id`"
        );
        assert!(
            d.checkpoint_select(RowLock::Exclusive)
                .ends_with(" FOR UPDATE")
        );
        assert!(
            d.checkpoint_select(RowLock::Shared)
                .ends_with(" LOCK IN SHARE MODE")
        );
        assert_eq!(
            d.rename_tables(&[("a", "a__previous"), ("a__r1", "a")]),
            ["RENAME TABLE `a` TO `a__previous`, `a__r1` TO `a`"]
        );
        assert!(d.partition_offset_for_update().ends_with(" FOR UPDATE"));
    }

    #[test]
    fn renders_postgres_updates_from_arrays() {
        assert_eq!(
            Dialect::Postgres.update_arrays(&accounts(), &["balance"], &["id"]),
            "UPDATE \"accounts\" SET \"balance\" = v.\"balance\" FROM unnest($1::TEXT[], \
             $2::BIGINT[]) AS v (\"id\", \"balance\") WHERE \"accounts\".\"id\" = v.\"id\""
        );
    }

    #[test]
    fn renders_postgres_upserts_from_arrays() {
        assert_eq!(
            Dialect::Postgres.upsert_arrays(&accounts(), &["id", "balance"]),
            "INSERT INTO \"accounts\" (\"id\", \"balance\") SELECT * FROM unnest($1::TEXT[], \
             $2::BIGINT[]) ON CONFLICT (\"id\") DO UPDATE SET \"balance\" = excluded.\"balance\""
        );
    }

    #[test]
    fn renders_multi_row_upserts_and_stream_version_lookups() {
        assert_eq!(
            Dialect::Postgres.upsert_rows(&accounts(), &["id", "balance"], 2),
            "INSERT INTO \"accounts\" (\"id\", \"balance\") VALUES ($1, $2), ($3, $4) \
             ON CONFLICT (\"id\") DO UPDATE SET \"balance\" = excluded.\"balance\""
        );
        assert_eq!(
            Dialect::Postgres.select_stream_versions(2),
            "SELECT \"stream_id\", \"version\" FROM \"eventline_stream_versions\" \
             WHERE \"projection\" = $1 AND \"stream_id\" IN ($2, $3)"
        );
        assert_eq!(
            Dialect::MySql.upsert_rows(&accounts(), &["id", "balance"], 2),
            "INSERT INTO `accounts` (`id`, `balance`) VALUES (?, ?), (?, ?) \
             ON DUPLICATE KEY UPDATE `balance` = VALUES(`balance`)"
        );
    }

    #[test]
    fn renders_every_column_type_for_each_database() {
        let table = Table {
            name: "kinds",
            columns: vec![
                Column::new("flag", ColumnType::Boolean),
                Column::new("ratio", ColumnType::Double),
                Column::new("price", ColumnType::decimal(12, 2)),
                Column::new("doc", ColumnType::Json),
                Column::new("id", ColumnType::Uuid),
                Column::new("day", ColumnType::Date),
                Column::new("blob", ColumnType::Bytes),
            ],
            primary_key: &["id"],
            indexes: vec![],
        };
        let types = |d: Dialect| -> Vec<String> {
            table
                .columns
                .iter()
                .map(|c| d.column_type(c.ty, false).into_owned())
                .collect()
        };
        assert_eq!(
            types(Dialect::Sqlite),
            ["INTEGER", "REAL", "INTEGER", "TEXT", "TEXT", "TEXT", "BLOB"]
        );
        assert_eq!(
            types(Dialect::Postgres),
            [
                "BOOLEAN",
                "DOUBLE PRECISION",
                "NUMERIC(12,2)",
                "JSONB",
                "UUID",
                "DATE",
                "BYTEA"
            ]
        );
        assert_eq!(
            types(Dialect::MySql),
            [
                "BOOLEAN",
                "DOUBLE",
                "DECIMAL(12,2)",
                "JSON",
                "CHAR(36)",
                "DATE",
                "LONGBLOB"
            ]
        );
        assert_eq!(
            Dialect::Postgres.upsert_arrays(&table, &["id", "price"]),
            "INSERT INTO \"kinds\" (\"id\", \"price\") SELECT * FROM unnest($1::UUID[], \
             $2::NUMERIC(12,2)[]) ON CONFLICT (\"id\") DO UPDATE SET \"price\" = excluded.\"price\""
        );
    }

    #[test]
    fn identifiers_are_restricted() {
        assert!(Dialect::check_identifier("accounts__v2"));
        for bad in ["", "Accounts", "1x", "a-b", "a\"b", "a b"] {
            assert!(!Dialect::check_identifier(bad), "{bad:?}");
        }
    }
}

use std::fmt::Write;

use eventline_core::{ColumnType, Table};

/// The SQL differences between the databases a read model can live in.
///
/// Everything a projector or query service sends is rendered here; callers never write SQL
/// per database. Identifiers come from projections' static table declarations and are
/// checked by [`Dialect::check_identifier`] before any SQL is built from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
}

impl Dialect {
    /// A short name for logs, errors and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
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
    fn placeholder(self, _n: usize) -> &'static str {
        match self {
            Dialect::Sqlite => "?",
        }
    }

    fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{ident}\""),
        }
    }

    fn column_type(self, ty: ColumnType, _indexed: bool) -> &'static str {
        match (self, ty) {
            (Dialect::Sqlite, ColumnType::BigInt) => "INTEGER",
            (Dialect::Sqlite, ColumnType::Text | ColumnType::Timestamp) => "TEXT",
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` and its indexes, one statement each.
    pub fn create_table(self, table: &Table) -> Vec<String> {
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
        let _ = write!(ddl, "PRIMARY KEY ({}))", self.list(table.primary_key));
        let mut statements = vec![ddl];
        for index in &table.indexes {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                self.quote(index.name),
                self.quote(table.name),
                self.list(index.columns)
            ));
        }
        statements
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
        let placeholders: Vec<&str> = (1..=columns.len()).map(|n| self.placeholder(n)).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !table.primary_key.contains(c))
            .map(|c| format!("{q} = excluded.{q}", q = self.quote(c)))
            .collect();
        let on_conflict = if updates.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}",
            self.quote(table.name),
            self.list(columns),
            placeholders.join(", "),
            self.list(table.primary_key),
            on_conflict
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
    pub fn select(self, table: &Table, filters: &[&str], order_by: &[&str], after: bool) -> String {
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
            let bounds: Vec<&str> = order_by.iter().map(|_| next()).collect();
            conditions.push(format!(
                "({}) > ({})",
                self.list(order_by),
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
        let _ = write!(sql, " ORDER BY {} LIMIT {}", self.list(order_by), next());
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventline_core::{Column, Index};

    fn accounts() -> Table {
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
            Dialect::Sqlite.select(&accounts(), &["holder"], &["id"], true),
            "SELECT \"id\", \"holder\", \"balance\", \"closed_at\" FROM \"accounts\" \
             WHERE \"holder\" = ? AND (\"id\") > (?) ORDER BY \"id\" LIMIT ?"
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

//! Read-model schema migrations, per database.
//!
//! Each table's declaration is recorded, as canonical text, in `eventline_table_definitions`
//! when Eventline creates the table. When a projection's declaration changes, the difference is
//! applied if it is additive (new nullable columns, new indexes: `ALTER TABLE ... ADD COLUMN`,
//! `CREATE INDEX`, rendered for each database); any other change (a column removed or retyped,
//! a new `NOT NULL` column, a different primary key or index) is refused with an error that
//! names the table and what changed, because existing rows cannot be rewritten from nothing:
//! such a read model is rebuilt by replaying the events into new tables.

use std::borrow::Cow;

use eventline_core::{Column, ColumnType, Index, Table};

/// The canonical text of a table declaration; equal texts mean equal tables.
pub(crate) fn definition(table: &Table) -> String {
    let columns: Vec<String> = table.columns.iter().map(column_text).collect();
    let indexes: Vec<String> = table.indexes.iter().map(index_text).collect();
    format!(
        "columns {}; primary key {}; indexes {}",
        columns.join(", "),
        table.primary_key.join(","),
        indexes.join(", ")
    )
}

/// A column type as recorded. The first three are the texts recorded since the beginning,
/// so old definitions still compare equal to unchanged declarations.
fn type_text(ty: ColumnType) -> Cow<'static, str> {
    Cow::Borrowed(match ty {
        ColumnType::BigInt => "bigint",
        ColumnType::Text => "text",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Boolean => "boolean",
        ColumnType::Double => "double",
        // No space inside: the recorded column list is split at ", ".
        ColumnType::Decimal { precision, scale } => {
            return Cow::Owned(format!("decimal({precision},{scale})"));
        }
        ColumnType::Json => "json",
        ColumnType::Uuid => "uuid",
        ColumnType::Date => "date",
        ColumnType::Bytes => "bytes",
    })
}

fn column_text(column: &Column) -> String {
    format!(
        "{} {}{}",
        column.name,
        type_text(column.ty),
        if column.nullable { " null" } else { "" }
    )
}

fn index_text(index: &Index) -> String {
    format!("{}({})", index.name, index.columns.join(","))
}

/// Parsed back from [`definition`]: column texts, primary key, index texts.
struct Recorded<'a> {
    columns: Vec<&'a str>,
    primary_key: &'a str,
    indexes: Vec<&'a str>,
}

fn list<'a>(part: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let rest = part.strip_prefix(prefix)?;
    Some(if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(", ").collect()
    })
}

fn parse(recorded: &str) -> Option<Recorded<'_>> {
    let mut parts = recorded.split("; ");
    let columns = list(parts.next()?, "columns ")?;
    let primary_key = parts.next()?.strip_prefix("primary key ")?;
    let indexes = list(parts.next()?, "indexes ")?;
    Some(Recorded {
        columns,
        primary_key,
        indexes,
    })
}

/// What turns the recorded table into the declared one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Migration<'t> {
    pub(crate) add_columns: Vec<&'t Column>,
    pub(crate) add_indexes: Vec<&'t Index>,
}

/// The additive steps from `recorded` to `table`, or why there are none.
pub(crate) fn plan<'t>(recorded: &str, table: &'t Table) -> Result<Migration<'t>, String> {
    let old =
        parse(recorded).ok_or_else(|| format!("unreadable recorded definition {recorded:?}"))?;
    let mut problems = Vec::new();
    if old.primary_key != table.primary_key.join(",") {
        problems.push(format!(
            "primary key ({}) became ({})",
            old.primary_key,
            table.primary_key.join(",")
        ));
    }
    let declared: Vec<String> = table.columns.iter().map(column_text).collect();
    for column in &old.columns {
        let name = column.split(' ').next().unwrap_or_default();
        match table.column(name) {
            None => problems.push(format!("column {name} was removed")),
            Some(now) if column_text(now) != *column => {
                problems.push(format!("column {column:?} became {:?}", column_text(now)));
            }
            Some(_) => {}
        }
    }
    let mut add_columns = Vec::new();
    for (column, text) in table.columns.iter().zip(&declared) {
        let known = old
            .columns
            .iter()
            .any(|c| c.split(' ').next() == Some(column.name));
        if known {
            continue;
        }
        if column.nullable {
            add_columns.push(column);
        } else {
            problems.push(format!(
                "new column {text:?} is NOT NULL (existing rows have no value)"
            ));
        }
    }
    let mut add_indexes = Vec::new();
    for index in &old.indexes {
        if !table.indexes.iter().any(|i| index_text(i) == *index) {
            problems.push(format!("index {index} was removed or changed"));
        }
    }
    for index in &table.indexes {
        if !old.indexes.contains(&index_text(index).as_str()) {
            add_indexes.push(index);
        }
    }
    if problems.is_empty() {
        Ok(Migration {
            add_columns,
            add_indexes,
        })
    } else {
        Err(format!(
            "changed in a way no migration can apply ({}); replay the projection into new tables",
            problems.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::tests::accounts;

    #[test]
    fn additive_changes_are_planned() {
        let old = accounts();
        let mut new = accounts();
        new.columns.push(Column::nullable("note", ColumnType::Text));
        new.indexes.push(Index {
            name: "accounts_balance",
            columns: &["balance"],
        });
        let migration = plan(&definition(&old), &new).expect("additive");
        assert_eq!(migration.add_columns, vec![&new.columns[4]]);
        assert_eq!(migration.add_indexes, vec![&new.indexes[1]]);
        assert_eq!(
            plan(&definition(&new), &new).expect("same"),
            Migration {
                add_columns: vec![],
                add_indexes: vec![]
            }
        );
    }

    #[test]
    fn definitions_recorded_before_the_new_types_still_read_back() {
        // As recorded when only bigint, text and timestamp existed.
        let recorded = "columns id text, holder text, balance bigint, closed_at timestamp null; \
                        primary key id; indexes accounts_holder(holder,id)";
        assert_eq!(definition(&accounts()), recorded);
        let mut new = accounts();
        new.columns
            .push(Column::nullable("rate", ColumnType::decimal(9, 4)));
        new.columns.push(Column::nullable("doc", ColumnType::Json));
        let migration = plan(recorded, &new).expect("additive");
        assert_eq!(migration.add_columns.len(), 2);
        assert!(definition(&new).contains("rate decimal(9,4) null, doc json null"));
        let mut rescaled = new.clone();
        rescaled.columns[4] = Column::nullable("rate", ColumnType::decimal(9, 2));
        let refused = plan(&definition(&new), &rescaled).expect_err("refused");
        assert!(
            refused.contains("\"rate decimal(9,4) null\" became \"rate decimal(9,2) null\""),
            "{refused}"
        );
    }

    #[test]
    fn other_changes_are_refused_with_the_reason() {
        let old = accounts();
        let mut retyped = accounts();
        retyped.columns[2] = Column::new("balance", ColumnType::Text);
        retyped.columns.push(Column::new("owner", ColumnType::Text));
        let refused = plan(&definition(&old), &retyped).expect_err("refused");
        assert!(
            refused.contains("column \"balance bigint\" became \"balance text\""),
            "{refused}"
        );
        assert!(
            refused.contains("new column \"owner text\" is NOT NULL"),
            "{refused}"
        );
        assert!(refused.contains("replay the projection"), "{refused}");
        let mut removed = accounts();
        removed.columns.remove(3);
        removed.indexes.clear();
        let refused = plan(&definition(&old), &removed).expect_err("refused");
        assert!(
            refused.contains("column closed_at was removed"),
            "{refused}"
        );
        assert!(
            refused.contains("index accounts_holder(holder,id) was removed"),
            "{refused}"
        );
    }
}

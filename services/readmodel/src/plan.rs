//! Write combining: the row changes of a whole batch, reduced to at most one pending write
//! per row, so that a batch costs a few multi-row statements instead of one statement per
//! change.
//!
//! Changes to one row merge when the result is the same as applying them one by one: an
//! upsert or update after an upsert is one upsert with the columns merged (later values win),
//! an update after an update is one update, and a delete after an upsert or delete is a
//! delete. Changes that cannot merge without losing a check (an upsert after an update must
//! still fail when the row is missing) make the caller flush what is pending first.

use std::collections::HashMap;

use eventline_core::{RowOp, Table, Value};

use crate::error::ReadModelError;

/// Column values, in the order the projection gave them.
pub(crate) type Columns = Vec<(&'static str, Value)>;

/// The one pending write of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Insert or overwrite these columns (the key columns among them).
    Upsert(Columns),
    /// Set these columns of the row with this key, which must exist.
    Update { key: Columns, set: Columns },
    /// Delete the row with this key if it exists.
    Delete(Columns),
}

/// The pending writes of one table, in first-touch order, and where each key's write is.
#[derive(Debug)]
struct TableWrites {
    table: &'static str,
    writes: Vec<Pending>,
    by_key: HashMap<Vec<Value>, usize>,
}

/// The pending writes of one batch, per table.
#[derive(Debug, Default)]
pub(crate) struct WritePlan {
    tables: Vec<TableWrites>,
    writes: usize,
}

/// Whether [`WritePlan::add`] took the change, or the plan must be flushed first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    Merged,
    FlushFirst,
}

fn merge(into: &mut Columns, from: &[(&'static str, Value)]) {
    for (column, value) in from {
        match into.iter_mut().find(|(c, _)| c == column) {
            Some((_, existing)) => existing.clone_from(value),
            None => into.push((column, value.clone())),
        }
    }
}

/// The primary-key values of `columns`, in key order.
fn key_of(table: &Table, columns: &[(&'static str, Value)]) -> Result<Vec<Value>, ReadModelError> {
    table
        .primary_key
        .iter()
        .map(|k| {
            columns
                .iter()
                .find(|(c, _)| c == k)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| ReadModelError::Schema {
                    table: table.name.to_owned(),
                    reason: format!("a row change without key column {k:?}"),
                })
        })
        .collect()
}

impl WritePlan {
    pub(crate) fn is_empty(&self) -> bool {
        self.writes == 0
    }

    /// Adds `op` (on `table`, its declaration); [`Added::FlushFirst`] leaves the plan as it was.
    pub(crate) fn add(&mut self, table: &Table, op: &RowOp) -> Result<Added, ReadModelError> {
        let key = match op {
            RowOp::Upsert { row, .. } => key_of(table, row)?,
            RowOp::Update { key, .. } | RowOp::Delete { key, .. } => key_of(table, key)?,
        };
        let index = match self.tables.iter().position(|t| t.table == table.name) {
            Some(index) => index,
            None => {
                self.tables.push(TableWrites {
                    table: table.name,
                    writes: Vec::new(),
                    by_key: HashMap::new(),
                });
                self.tables.len() - 1
            }
        };
        let TableWrites { writes, by_key, .. } = &mut self.tables[index];
        let Some(&at) = by_key.get(&key) else {
            by_key.insert(key, writes.len());
            writes.push(match op {
                RowOp::Upsert { row, .. } => Pending::Upsert(row.clone()),
                RowOp::Update { key, set, .. } => Pending::Update {
                    key: key.clone(),
                    set: set.clone(),
                },
                RowOp::Delete { key, .. } => Pending::Delete(key.clone()),
            });
            self.writes += 1;
            return Ok(Added::Merged);
        };
        let pending = &mut writes[at];
        match (&mut *pending, op) {
            (Pending::Upsert(row), RowOp::Upsert { row: more, .. })
            | (Pending::Upsert(row), RowOp::Update { set: more, .. }) => merge(row, more),
            (Pending::Update { set, .. }, RowOp::Update { set: more, .. }) => merge(set, more),
            (Pending::Upsert(_) | Pending::Delete(_), RowOp::Delete { key, .. }) => {
                *pending = Pending::Delete(key.clone());
            }
            _ => return Ok(Added::FlushFirst),
        }
        Ok(Added::Merged)
    }

    /// The pending writes, table by table, and empties the plan.
    pub(crate) fn take(&mut self) -> Vec<(&'static str, Vec<Pending>)> {
        self.writes = 0;
        std::mem::take(&mut self.tables)
            .into_iter()
            .map(|t| (t.table, t.writes))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::tests::accounts;

    fn id(v: &str) -> Columns {
        vec![("id", Value::from(v))]
    }

    fn upsert(v: &str, balance: i64) -> RowOp {
        RowOp::Upsert {
            table: "accounts",
            row: vec![
                ("id", Value::from(v)),
                ("balance", Value::Int(balance)),
                ("holder", Value::from("Ada")),
            ],
        }
    }

    fn update(v: &str, balance: i64) -> RowOp {
        RowOp::Update {
            table: "accounts",
            key: id(v),
            set: vec![("balance", Value::Int(balance))],
        }
    }

    #[test]
    fn changes_to_one_row_merge_into_one_write() {
        let table = accounts();
        let mut plan = WritePlan::default();
        for op in [
            upsert("a", 1),
            update("a", 2),
            update("a", 3),
            update("b", 7),
            update("b", 8),
        ] {
            assert_eq!(plan.add(&table, &op).expect("add"), Added::Merged);
        }
        let writes = plan.take();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].1,
            vec![
                Pending::Upsert(vec![
                    ("id", Value::from("a")),
                    ("balance", Value::Int(3)),
                    ("holder", Value::from("Ada")),
                ]),
                Pending::Update {
                    key: id("b"),
                    set: vec![("balance", Value::Int(8))]
                },
            ]
        );
        assert!(plan.is_empty());
    }

    #[test]
    fn changes_that_would_lose_a_check_ask_for_a_flush() {
        let table = accounts();
        let mut plan = WritePlan::default();
        plan.add(&table, &update("a", 1)).expect("add");
        // The update must still fail if "a" is missing, so the upsert cannot absorb it.
        assert_eq!(
            plan.add(&table, &upsert("a", 2)).expect("add"),
            Added::FlushFirst
        );
        let delete = RowOp::Delete {
            table: "accounts",
            key: id("a"),
        };
        assert_eq!(plan.add(&table, &delete).expect("add"), Added::FlushFirst);
        assert_eq!(plan.take()[0].1.len(), 1, "the plan is unchanged");

        plan.add(&table, &upsert("a", 1)).expect("add");
        assert_eq!(plan.add(&table, &delete).expect("add"), Added::Merged);
        assert_eq!(
            plan.add(&table, &update("a", 3)).expect("add"),
            Added::FlushFirst
        );
    }

    #[test]
    fn a_change_without_its_key_is_a_schema_error() {
        let op = RowOp::Upsert {
            table: "accounts",
            row: vec![("balance", Value::Int(1))],
        };
        assert!(matches!(
            WritePlan::default().add(&accounts(), &op),
            Err(ReadModelError::Schema { .. })
        ));
    }
}

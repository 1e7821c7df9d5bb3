//! Content digests of a read model: what a replay is checked against before anyone trusts it.
//!
//! A table's digest is its row count and an order-independent checksum of its rows (the sum,
//! wrapping, of a 64-bit FNV-1a hash of each row's canonical JSON: columns sorted by name,
//! each value in its type's canonical form (see [`crate::Row`]), the keys of JSON documents
//! sorted at every level, whatever order the database keeps them in (PostgreSQL's `jsonb`
//! and MySQL reorder them, SQLite and MariaDB do not)). Rows read the same from SQLite,
//! PostgreSQL and MySQL, and collation does not matter, so digests of one model in two
//! database types are equal exactly when their contents are.

use eventline_core::{Projection, Table, Value};

use crate::db::Schema;
use crate::error::ReadModelError;
use crate::pool::ReadModelDb;

/// The digest of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub table: &'static str,
    pub rows: u64,
    pub checksum: u64,
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ReadModelDb {
    /// The digest of every table of `projection`'s live read model, and of its applied
    /// stream versions (which say which events the model reflects), in declaration order.
    pub async fn digest(
        &self,
        projection: &dyn Projection,
    ) -> Result<Vec<TableDigest>, ReadModelError> {
        let tables = projection.tables();
        self.digest_of(tables.iter().collect(), projection.name())
            .await
    }

    /// [`ReadModelDb::digest`] of the version of the read model `schema` describes (a
    /// replay's new version before its cut-over, say). Tables are named as declared, so the
    /// digests compare with the live model's.
    pub async fn digest_schema(&self, schema: &Schema) -> Result<Vec<TableDigest>, ReadModelError> {
        let tables = schema
            .own_tables
            .iter()
            .map(|name| schema.table(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut digests = self.digest_of(tables, schema.projection).await?;
        for (digest, name) in digests.iter_mut().zip(&schema.own_tables) {
            digest.table = name;
        }
        Ok(digests)
    }

    async fn digest_of(
        &self,
        tables: Vec<&Table>,
        bookkeeping_key: &'static str,
    ) -> Result<Vec<TableDigest>, ReadModelError> {
        let mut digests = Vec::new();
        for table in tables {
            digests.push(self.table_digest(table, vec![], &[]).await?);
        }
        let versions = crate::db::stream_versions_table();
        let mut streams = self
            .table_digest(
                &versions,
                vec![("projection", Value::from(bookkeeping_key))],
                // The key says which version the rows belong to, not what they are.
                &["projection"],
            )
            .await?;
        streams.table = "eventline_stream_versions";
        digests.push(streams);
        Ok(digests)
    }

    async fn table_digest(
        &self,
        table: &Table,
        filters: Vec<(&'static str, Value)>,
        ignore: &[&str],
    ) -> Result<TableDigest, ReadModelError> {
        let mut digest = TableDigest {
            table: table.name,
            rows: 0,
            checksum: 0,
        };
        let mut after = None;
        loop {
            let (page, next) = self
                .page_by_key(table, filters.clone(), after.take(), 5_000)
                .await?;
            for row in &page {
                let mut row = row.clone();
                for column in ignore {
                    row.remove(*column);
                }
                let mut text = String::new();
                canonical_json(&serde_json::Value::Object(row), &mut text);
                digest.rows += 1;
                digest.checksum = digest.checksum.wrapping_add(fnv1a(text.as_bytes()));
            }
            match next {
                Some(next) => after = Some(next),
                None => return Ok(digest),
            }
        }
    }
}

/// Writes `value` as JSON with the keys of every object sorted, and zero as `0` or `0.0`
/// whatever its sign: one text for one value, whichever database it was read from.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value as Json;
    match value {
        Json::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(key.clone()).to_string());
                out.push(':');
                canonical_json(value, out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Json::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => out.push_str("0.0"),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{canonical_json, fnv1a};
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let text = |value: serde_json::Value| {
            let mut out = String::new();
            canonical_json(&value, &mut out);
            out
        };
        assert_eq!(
            text(json!({"b": {"z": 1, "a": [-0.0, "é"]}, "a": null})),
            r#"{"a":null,"b":{"a":[0.0,"é"],"z":1}}"#
        );
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

//! Eventline's own tables in every read-model database: checkpoints, dead letters, stream
//! versions, Kafka offsets, replays and recorded table definitions.

use eventline_core::{Column, ColumnType, Table};

/// Where the projector's progress is kept, in the read model's own database.
pub(crate) const CHECKPOINTS: &str = "eventline_checkpoints";
/// Events a projection could not apply, kept with the reason.
pub(crate) const DEAD_LETTERS: &str = "eventline_dead_letters";
/// The last version of each stream a projection has applied: how redelivered events are
/// recognised whatever order streams arrive in (Kafka partitions are not globally ordered).
pub(crate) const STREAM_VERSIONS: &str = "eventline_stream_versions";
/// The next offset of each Kafka partition a projection consumes, written with the batch.
pub(crate) const KAFKA_OFFSETS: &str = "eventline_kafka_offsets";

pub(crate) fn checkpoints_table() -> Table {
    Table {
        name: CHECKPOINTS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("commit_position", ColumnType::BigInt),
            Column::new("event_position", ColumnType::BigInt),
            Column::new("updated_at", ColumnType::Timestamp),
            // Set while a cut-over that cannot be one transaction (MySQL's DDL commits)
            // swaps the projection's tables: batches wait until it is clear again.
            Column::nullable("cut_over_by", ColumnType::Text),
        ],
        primary_key: &["projection"],
        indexes: vec![],
    }
}

/// Which replay built (or is building) each projection's live tables.
pub(crate) const REPLAYS: &str = "eventline_replays";
/// Where each table's declaration is recorded.
pub(crate) const DEFINITIONS: &str = "eventline_table_definitions";

/// Which replay built (or is building) a projection's tables in this database.
pub(crate) fn replays_table() -> Table {
    Table {
        name: REPLAYS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("request_id", ColumnType::Text),
            Column::new("status", ColumnType::Text),
            Column::new("started_at", ColumnType::Timestamp),
            Column::nullable("finished_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection"],
        indexes: vec![],
    }
}

/// Where each table's declaration is recorded, for migrations (see [`crate::migrate`]).
pub(crate) fn definitions_table() -> Table {
    Table {
        name: DEFINITIONS,
        columns: vec![
            Column::new("table_name", ColumnType::Text),
            Column::new("projection", ColumnType::Text),
            Column::new("definition", ColumnType::Text),
            Column::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: &["table_name"],
        indexes: vec![],
    }
}

pub(crate) fn stream_versions_table() -> Table {
    Table {
        name: STREAM_VERSIONS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("stream_id", ColumnType::Text),
            Column::new("version", ColumnType::BigInt),
        ],
        primary_key: &["projection", "stream_id"],
        indexes: vec![],
    }
}

pub(crate) fn kafka_offsets_table() -> Table {
    Table {
        name: KAFKA_OFFSETS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("topic", ColumnType::Text),
            Column::new("kafka_partition", ColumnType::BigInt),
            Column::new("next_offset", ColumnType::BigInt),
            Column::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection", "topic", "kafka_partition"],
        indexes: vec![],
    }
}

pub(crate) fn dead_letters_table() -> Table {
    Table {
        name: DEAD_LETTERS,
        columns: vec![
            Column::new("projection", ColumnType::Text),
            Column::new("event_position", ColumnType::BigInt),
            Column::new("commit_position", ColumnType::BigInt),
            Column::new("stream_id", ColumnType::Text),
            Column::new("version", ColumnType::BigInt),
            Column::new("event_type", ColumnType::Text),
            Column::new("payload", ColumnType::Text),
            Column::new("error", ColumnType::Text),
            Column::new("failed_at", ColumnType::Timestamp),
        ],
        primary_key: &["projection", "event_position"],
        indexes: vec![],
    }
}

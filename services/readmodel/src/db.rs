//! What a read model keeps besides its rows, and how batches of events reach them: one
//! concept per file below.

mod batch;
mod bookkeeping;
mod checkpoint;
mod dead_letters;
mod flush;
mod partition_offsets;
mod replay_claim;
mod rows;
mod schema;
mod stream_versions;

pub(crate) use batch::apply_in;
pub use batch::{BatchOutcome, BatchSource, ProjectedEvent};
pub(crate) use bookkeeping::{
    CHECKPOINTS, DEAD_LETTERS, DEFINITIONS, REPLAYS, STREAM_VERSIONS, checkpoints_table,
    definitions_table, stream_versions_table,
};
pub(crate) use checkpoint::{CheckpointRow, checkpoint_in};
pub use partition_offsets::PartitionOffset;
pub use replay_claim::ReplayClaim;
pub use schema::Schema;
pub(crate) use schema::check_table;

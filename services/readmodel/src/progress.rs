use eventline_core::{Envelope, Projection, ProjectionError, RowOp, Table};

/// The bookkeeping of a loop that keeps no tables of its own (the relay, a processor): a
/// projection named `.0` with no tables, so that its checkpoint, lease and dead letters live
/// in the read-model database like any projection's.
#[derive(Debug, Clone, Copy)]
pub struct ProgressOnly(pub &'static str);

impl Projection for ProgressOnly {
    fn name(&self) -> &'static str {
        self.0
    }
    fn tables(&self) -> Vec<Table> {
        Vec::new()
    }
    fn stream_types(&self) -> &'static [&'static str] {
        &[]
    }
    fn apply(&self, _event: &Envelope) -> Result<Vec<RowOp>, ProjectionError> {
        Ok(Vec::new())
    }
}

//! Replay claims: which replay builds a projection's next version in this database.

use chrono::Utc;
use eventline_core::{Position, Value};

use super::Schema;
use super::bookkeeping::REPLAYS;
use super::rows::initialise_row;
use crate::error::ReadModelError;
use crate::pool::{ReadModelDb, execute_on, with_pool};

/// What [`ReadModelDb::claim_replay`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayClaim {
    /// The replay starts, or continues after this position (after an interruption).
    Resumed(Position),
    /// The same replay was interrupted in the middle of a cut-over (MySQL only): finish it
    /// with [`ReadModelDb::finish_interrupted_cut_over`].
    CuttingOver,
    /// The same replay has already finished.
    Finished,
}

impl ReadModelDb {
    /// Claims `live`'s projection in this database for the replay `request_id`, which builds
    /// the new version `version` (see [`ReadModelDb::ensure_version_schema`]). One replay
    /// at a time: a replay that has not finished keeps the projection until it does (after
    /// a crash, the same request resumes from its checkpoint); a finished one makes way
    /// for the next request.
    pub async fn claim_replay(
        &self,
        live: &Schema,
        version: &Schema,
        request_id: &str,
    ) -> Result<ReplayClaim, ReadModelError> {
        let projection = live.projection;
        let table = live.table(REPLAYS)?;
        let claimed = self
            .get(table, vec![("projection", Value::from(projection))])
            .await?;
        if let Some(row) = claimed {
            let owner = row["request_id"].as_str().unwrap_or_default();
            let status = row["status"].as_str().unwrap_or_default();
            return match (owner == request_id, status) {
                (true, "finished") => Ok(ReplayClaim::Finished),
                (true, "cutting_over") => Ok(ReplayClaim::CuttingOver),
                (true, _) => Ok(ReplayClaim::Resumed(
                    self.checkpoint(version.projection).await?,
                )),
                (false, "finished") => {
                    // The next replay takes over, unless another one just did.
                    let sql = self.dialect().update(
                        REPLAYS,
                        &["request_id", "status", "started_at"],
                        &["projection", "request_id", "status"],
                    );
                    let binds = [
                        Value::from(request_id),
                        Value::from("running"),
                        Value::Timestamp(Utc::now()),
                        Value::from(projection),
                        Value::from(owner),
                        Value::from("finished"),
                    ];
                    with_pool!(self, pool => execute_on(pool, sql, &binds.iter().collect::<Vec<_>>(), "claiming the replay").await)?;
                    Box::pin(self.claim_replay(live, version, request_id)).await
                }
                (false, _) => Err(ReadModelError::Occupied {
                    projection: projection.to_owned(),
                    by: format!("replay {owner:?} ({status})"),
                }),
            };
        }
        let row = vec![
            ("projection", Value::from(projection)),
            ("request_id", Value::from(request_id)),
            ("status", Value::from("running")),
            ("started_at", Value::Timestamp(Utc::now())),
        ];
        with_pool!(self, pool => initialise_row(pool, table, &row).await)?;
        // Two replays racing for the same projection: the row says who won.
        Box::pin(self.claim_replay(live, version, request_id)).await
    }
}

-- Snapshots of aggregate state: only a cache (see eventline_core::snapshot).
CREATE TABLE IF NOT EXISTS eventline_snapshots (
    stream_id TEXT        NOT NULL PRIMARY KEY,
    version   BIGINT      NOT NULL,
    format    INTEGER     NOT NULL,
    state     JSONB       NOT NULL,
    taken_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

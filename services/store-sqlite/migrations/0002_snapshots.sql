-- Snapshots of aggregate state: only a cache (see eventline_core::snapshot).
CREATE TABLE IF NOT EXISTS eventline_snapshots (
    stream_id TEXT    NOT NULL PRIMARY KEY,
    version   INTEGER NOT NULL,
    format    INTEGER NOT NULL,
    state     TEXT    NOT NULL,
    taken_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The event log. `position` numbers events store-wide; `tx_id` is the writing transaction,
-- which orders commits (see the crate documentation for why readers follow (tx_id, position)).
-- Two indexes only, both needed: the primary key decides optimistic concurrency and serves
-- stream reads; (tx_id, position) serves readers of the whole log.
CREATE TABLE IF NOT EXISTS eventline_events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY,
    tx_id          XID8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id      TEXT        NOT NULL,
    stream_type    TEXT        NOT NULL,
    version        BIGINT      NOT NULL CHECK (version > 0),
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        JSONB       NOT NULL,
    metadata       JSONB       NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT eventline_events_stream_version PRIMARY KEY (stream_id, version)
);

CREATE UNIQUE INDEX IF NOT EXISTS eventline_events_read_order
    ON eventline_events (tx_id, position);

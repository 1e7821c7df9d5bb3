-- Group commit: the appends of one batch in one statement (one round trip, one commit), each
-- with its own expected-version check and its own outcome. The caller guarantees that no two
-- appends of a batch are for the same stream. Arrays hold one element per event:
-- p_append is the event's append (its index in the batch), p_expected that append's expected
-- version, p_version the version the event takes (expected + 1, + 2, ...).
--
-- An append is inserted only if its stream is at the expected version (the event at that
-- version exists, or the expected version is 0); ON CONFLICT DO NOTHING turns a race with a
-- concurrent writer into "not inserted" for that row instead of an error that would abort the
-- whole batch. An append that got only some of its events in (it lost a race for a later
-- version) has them taken out again before the commit, so every append is all or nothing.
-- Rows are inserted in (stream, version) order, whatever the order of the batch: batches in
-- flight at the same time then wait for one another's rows in a single direction.
-- Returned: one row per stored append (index, position of its last event, transaction id);
-- an append without a row was not stored (its stream is not at the expected version).
CREATE OR REPLACE FUNCTION eventline_append_batch(
    p_append         INT4[],
    p_stream_id      TEXT[],
    p_stream_type    TEXT[],
    p_expected       INT8[],
    p_version        INT8[],
    p_event_type     TEXT[],
    p_schema_version INT4[],
    p_payload        TEXT[],
    p_metadata       TEXT[])
RETURNS TABLE (stored_append INT4, stored_last_position INT8, stored_commit INT8)
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted_append   INT4[];
    inserted_position INT8[];
    commit_id         INT8;
    partial           INT4[];
BEGIN
    WITH batch AS (
        SELECT *
        FROM unnest(p_append, p_stream_id, p_stream_type, p_expected, p_version, p_event_type,
                    p_schema_version, p_payload, p_metadata)
             WITH ORDINALITY AS b(append_index, stream_id, stream_type, expected, version,
                                  event_type, schema_version, payload, metadata, ord)
    ), inserted AS (
        INSERT INTO eventline_events AS e
            (stream_id, stream_type, version, event_type, schema_version, payload, metadata)
        SELECT b.stream_id, b.stream_type, b.version, b.event_type, b.schema_version,
               b.payload::jsonb, b.metadata::jsonb
        FROM batch b
        WHERE b.expected = 0
           OR EXISTS (SELECT 1 FROM eventline_events x
                      WHERE x.stream_id = b.stream_id AND x.version = b.expected)
        -- One global order for the rows every batch inserts, so that two batches racing for
        -- the same streams wait for each other in one direction only (never a deadlock).
        ORDER BY b.stream_id, b.version
        ON CONFLICT (stream_id, version) DO NOTHING
        RETURNING e.stream_id, e.version, e.position, e.tx_id
    )
    SELECT array_agg(b.append_index), array_agg(i.position), max(i.tx_id::text::int8)
      INTO inserted_append, inserted_position, commit_id
    FROM inserted i
    JOIN batch b ON b.stream_id = i.stream_id AND b.version = i.version;

    IF inserted_append IS NULL THEN
        RETURN;
    END IF;

    SELECT array_agg(w.append_index) INTO partial
    FROM (SELECT a.append_index, count(*) AS events
          FROM unnest(p_append) AS a(append_index) GROUP BY a.append_index) w
    JOIN (SELECT a.append_index, count(*) AS events
          FROM unnest(inserted_append) AS a(append_index) GROUP BY a.append_index) g
      ON g.append_index = w.append_index
    WHERE g.events < w.events;

    IF partial IS NOT NULL THEN
        DELETE FROM eventline_events e
        WHERE e.tx_id = commit_id::text::xid8
          AND e.position IN (SELECT i.pos
                             FROM unnest(inserted_append, inserted_position) AS i(app, pos)
                             WHERE i.app = ANY (partial));
    END IF;

    RETURN QUERY
        SELECT i.app, max(i.pos), commit_id
        FROM unnest(inserted_append, inserted_position) AS i(app, pos)
        WHERE partial IS NULL OR NOT (i.app = ANY (partial))
        GROUP BY i.app;
END
$fn$;

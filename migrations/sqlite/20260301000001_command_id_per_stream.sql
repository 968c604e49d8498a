-- A command id is unique within its stream (a timeline), no longer across the whole log: a
-- planner applies one prepared change set, under the same ids, to two alternative scenarios, and
-- a batch's commands were already remembered per timeline (ADR 0002, amended). A retry still
-- goes to the stream it was sent to, where this index finds it. Only the index changes; no row
-- of the log is touched.
CREATE UNIQUE INDEX events_stream_command_key ON events (stream_id, command_id)
    WHERE command_id IS NOT NULL;
DROP INDEX events_command_id_key;

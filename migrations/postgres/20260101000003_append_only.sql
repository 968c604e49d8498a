-- Append-only: the database itself refuses to change history. UPDATE, DELETE and TRUNCATE on
-- events raise an error whatever the client. (A superuser can still disable the
-- trigger; the hash chain and verify() catch what is changed that way.)
CREATE FUNCTION omorg_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'omorg: % on % refused: the event log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION omorg_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION omorg_refuse_change();

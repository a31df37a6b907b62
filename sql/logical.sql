--
-- logical.sql - what a booking database installs to drive seatcast with
-- --source logical (SPEC section 7)
--
-- Installs, in the current schema:
--   seatcast_seat_state         view (event_id, available_seats,
--                               seat_capacity, version) read by seatcast
--                               when it starts on an empty registry and
--                               when its slot is new
--   seatcast_revoked_tokens     table of revoked JWT ids (jti)
--   publication "seatcast"      of events, bookings, seatcast_revoked_tokens
--
-- and no trigger: seatcast reads the database's own change stream through
-- a logical replication slot (output plugin pgoutput), so the booking
-- transactions carry nothing extra.
--
-- Apply after the booking schema (sql/schema.sql for the reference one):
--     psql -v ON_ERROR_STOP=1 -d booking -f sql/logical.sql
-- The file is one transaction and idempotent: apply it again at any time.
--
-- The server needs, in postgresql.conf (a restart is needed for the first):
--     wal_level = logical
--     max_replication_slots, max_wal_senders >= one per seatcast instance
--     max_slot_wal_keep_size = 10GB   (bound the WAL a lost instance holds)
-- and seatcast's role needs REPLICATION and read access:
--     CREATE ROLE seatcast LOGIN REPLICATION;
--     GRANT SELECT ON events, bookings, seatcast_revoked_tokens,
--                     seatcast_seat_state TO seatcast;
-- (a publication is read with the privileges of the replicating role:
-- pgoutput needs SELECT on each published table.)
--
-- HOW CHANGES MAP TO MESSAGES
--
-- pgoutput sends each transaction once, at its commit, in commit order.
-- seatcast keeps the changes of one transaction together and publishes
-- them at its commit:
--   bookings INSERT with status 'confirmed'      labels the next change of
--                                                that event booking_created
--   bookings UPDATE whose new status is          labels it booking_cancelled
--     'cancelled'
--   events INSERT or UPDATE                      the event's new counts, as
--                                                the label above or else
--                                                seat_update
--   events DELETE                                unsubscribed
--   seatcast_revoked_tokens INSERT               close 1008 Token revoked
-- The label is decided from the new booking row, and only takes effect when
-- the same transaction then changes the event's row (as the triggers of
-- schema.sql do): so an UPDATE of a booking that was already cancelled,
-- which moves no seat, sends nothing.  That is why the default replica
-- identity (the primary key) is enough for every table: seatcast never
-- needs a booking's old row, and an event DELETE carries its id.  The
-- file checks that each published table has one.
--
-- TRUNCATE is not reported (as with notify.sql).
--
-- ADAPTING IT TO ANOTHER SCHEMA
--
-- seatcast reads the columns by name: events(id, available_seats,
-- seat_capacity, version), bookings(event_id, status),
-- seatcast_revoked_tokens(jti).  version must grow by one with every change
-- of the seat columns (schema.sql's events_maintain_seats does it).  Edit the
-- view to map your columns, and the table and column lists of the
-- publication.
--
-- The publication name: change 'seatcast' below and give seatcast the same
-- --publication.
--
-- MOVING FROM notify.sql
--
-- This file leaves notify.sql's triggers alone (they are harmless to
-- --source logical but keep costing the booking transactions).  Once every
-- seatcast instance runs with --source logical, remove them with:
--     DROP TRIGGER IF EXISTS seatcast_events_insert ON events;
--     DROP TRIGGER IF EXISTS seatcast_events_update ON events;
--     DROP TRIGGER IF EXISTS seatcast_events_delete ON events;
--     DROP TRIGGER IF EXISTS seatcast_bookings_enter ON bookings;
--     DROP TRIGGER IF EXISTS seatcast_bookings_leave ON bookings;
--     DROP TRIGGER IF EXISTS seatcast_bookings_notify ON bookings;
--     DROP TRIGGER IF EXISTS seatcast_revoked_notify
--         ON seatcast_revoked_tokens;
--
-- SLOTS
--
-- Each seatcast instance owns one slot (--slot, default seatcast_HOST_PORT).
-- A slot keeps the WAL its reader has not confirmed: bound it with
-- max_slot_wal_keep_size, watch seatcast_slot_lag_bytes in /metrics, and
-- drop the slot of an instance that is gone for good:
--     SELECT pg_drop_replication_slot('seatcast_oldhost_3000');
--

BEGIN;

CREATE OR REPLACE VIEW seatcast_seat_state AS
    SELECT id AS event_id, available_seats, seat_capacity, version
      FROM events;

--
-- Revoked tokens (the same table as notify.sql's).  seatcast closes
-- connections using a revoked jti and refuses it later; rows may be deleted
-- once expires_at has passed (seatcast_purge_revoked_tokens()).
--
CREATE TABLE IF NOT EXISTS seatcast_revoked_tokens (
    jti        text PRIMARY KEY
        CONSTRAINT seatcast_revoked_tokens_jti_check
        CHECK (octet_length(jti) BETWEEN 1 AND 128 AND jti ~ '^[ -~]+$'),
    revoked_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);

CREATE OR REPLACE FUNCTION seatcast_purge_revoked_tokens() RETURNS bigint
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
    WITH gone AS (
        DELETE FROM seatcast_revoked_tokens WHERE expires_at < now()
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

--
-- Every published table needs a replica identity that carries its key, or
-- PostgreSQL refuses its UPDATEs and DELETEs once it is published.
--
DO $$
DECLARE
    t text;
    ident "char";
BEGIN
    FOREACH t IN ARRAY ARRAY['events', 'bookings', 'seatcast_revoked_tokens']
    LOOP
        SELECT c.relreplident INTO ident
          FROM pg_class c
         WHERE c.oid = to_regclass(t);
        IF NOT FOUND OR ident IS NULL THEN
            RAISE EXCEPTION 'seatcast: table % does not exist', t
                USING HINT = 'Apply the booking schema (sql/schema.sql) first.';
        END IF;
        IF ident = 'n' OR (ident = 'd' AND NOT EXISTS (
                SELECT 1 FROM pg_index i
                 WHERE i.indrelid = to_regclass(t) AND i.indisprimary)) THEN
            RAISE EXCEPTION 'seatcast: table % has no replica identity', t
                USING HINT = 'Give it a primary key, or ALTER TABLE ... '
                             'REPLICA IDENTITY USING INDEX.';
        END IF;
    END LOOP;
END;
$$;

--
-- The publication: created, or its table list set back to ours.  From
-- PostgreSQL 15 on, only the columns seatcast reads are published (and the
-- keys, which updates and deletes need): the server's WAL sender then
-- decodes and sends less for every booking (names, timestamps, user ids
-- stay home).
--
DO $$
DECLARE
    tables text := CASE WHEN current_setting('server_version_num')::int
                             >= 150000
        THEN 'events (id, available_seats, seat_capacity, version), '
             'bookings (id, event_id, status), seatcast_revoked_tokens'
        ELSE 'events, bookings, seatcast_revoked_tokens' END;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'seatcast') THEN
        EXECUTE 'ALTER PUBLICATION seatcast SET TABLE ' || tables;
        ALTER PUBLICATION seatcast
            SET (publish = 'insert, update, delete, truncate');
    ELSE
        EXECUTE 'CREATE PUBLICATION seatcast FOR TABLE ' || tables;
    END IF;
END;
$$;

COMMIT;

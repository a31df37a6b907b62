--
-- notify.sql - what a booking database installs to drive seatcast
--
-- Installs, in the current schema:
--   seatcast_channel()          the NOTIFY channel ('seatcast')
--   seatcast_queue_limit()      queue fill above which notifications are shed
--   seatcast_seat_state         view (event_id, available_seats,
--                               seat_capacity, version) read by seatcast
--                               at start and after every reconnect
--   seatcast_revoked_tokens     table of revoked JWT ids (jti)
--   triggers on events, bookings and seatcast_revoked_tokens that NOTIFY
--   one small JSON object per change (PROTOCOL.md section 7):
--     {"type" : "booking_created", "eventId" : 12, "availableSeats" : 44,
--      "seatCapacity" : 100, "version" : 17, "ts" : 1731321000000}
--   type is booking_created, booking_cancelled, seat_update or
--   event_deleted (eventId, version and ts only); token_revoked carries
--   {"type" : "token_revoked", "jti" : "...", "ts" : ...} instead.
--
-- Apply after the booking schema (sql/schema.sql for the reference one):
--     psql -v ON_ERROR_STOP=1 -d booking -f sql/notify.sql
-- The file is one transaction and idempotent: apply it again after editing
-- it, or after an upgrade.  Give seatcast's role what it reads:
--     GRANT SELECT ON seatcast_seat_state, seatcast_revoked_tokens TO seatcast;
--
-- ADAPTING IT TO ANOTHER SCHEMA
--
-- The file expects, as in sql/schema.sql:
--   events(id bigint, available_seats int, seat_capacity int, version bigint)
--   bookings(event_id bigint, seats int, status text 'confirmed'|'cancelled')
-- and that something (a trigger, in schema.sql) keeps events.available_seats
-- current when bookings change.  To fit another schema, edit:
--   1. the view seatcast_seat_state: map your table and columns onto
--      (event_id, available_seats, seat_capacity, version);
--   2. seatcast_events_notify(): the key (NEW.id / OLD.id, OLD.version) and
--      the WHEN clause of trigger seatcast_events_update (the two seat
--      columns);
--   3. seatcast_booking_held(): which rows hold seats (status, seats), and
--      the column names event_id in seatcast_bookings_notify();
--   4. the table names in the CREATE TRIGGER statements.
-- Requirements on the booking side:
--   - version must grow by one with every change of the seat columns (the
--     BEFORE UPDATE trigger events_maintain_seats of schema.sql does it;
--     copy it if your events table has no such counter, and add the column
--     with ALTER TABLE events ADD COLUMN version bigint NOT NULL DEFAULT 0);
--   - the seat change caused by a booking must be made immediately (not in
--     a deferred trigger) and before seatcast_bookings_notify runs: AFTER
--     ROW triggers of one table run in the order of their names, and
--     "seatcast_..." sorts after schema.sql's "bookings_adjust_seats".  A
--     BEFORE ROW trigger or an AFTER ROW trigger whose name sorts earlier
--     is fine.  If your application updates events itself in a separate
--     statement after the INSERT, the booking_created sent for the INSERT
--     repeats the previous version (seatcast ignores it) and the update is
--     reported as seat_update: counts stay right, the booking_* label is
--     lost.
--
-- The channel: change the string in seatcast_channel() (lowercase, as
-- LISTEN folds unquoted names) and give seatcast the same --channel.
--
-- NOTES
--
-- One change, one notification.  A booking changes events.available_seats
-- from inside bookings' trigger, which fires the events trigger too.  Two
-- statement-level triggers on bookings count, in the transaction-local
-- setting seatcast.in_booking, the bookings statements in progress (BEFORE
-- STATEMENT adds one, AFTER STATEMENT, which runs after every row trigger,
-- removes it; an error rolls the setting back with the statement).  While
-- it is non-zero the events trigger stays silent and the bookings row
-- trigger reports the change itself with its own type: booking_created
-- (a confirmed booking inserted), booking_cancelled (confirmed ->
-- cancelled), seat_update (re-confirmation, change of seats, delete, move
-- to another event).  Any other change of the seat columns (an UPDATE of
-- events, a new event, a change of capacity, or one made by a trigger of
-- another table) is a seat_update from the events trigger.  This was
-- chosen over pg_trigger_depth(), which would also silence events updates
-- made by unrelated triggers.  Multi-row statements work: PostgreSQL runs
-- all AFTER ROW triggers of one row before those of the next, so each
-- notification carries the seats right after its own row.
--
-- Never failing a booking.  Every notification is sent inside an EXCEPTION
-- block: an error (bad channel, payload over 8000 bytes, a broken view) is
-- a WARNING and the booking commits.  The one failure a trigger cannot
-- catch is a full NOTIFY queue, which PostgreSQL reports at COMMIT; so
-- when the queue is fuller than seatcast_queue_limit() (default 90%, of
-- 8 GB) notifications are dropped with a WARNING instead.  A lost
-- notification is repaired by the event's next change, or by seatcast's
-- resynchronisation from the view when it reconnects.
--
-- ts.  Commit time is not known inside a transaction; ts is
-- clock_timestamp() when the trigger runs, in epoch milliseconds, which
-- for a booking transaction is within milliseconds of its commit (now()
-- would be the transaction's start).  seatcast uses it only to measure
-- commit-to-socket latency.
--
-- Payloads are json_build_object() output: valid JSON, keys as above,
-- about 150 bytes.  NOTIFY drops identical payloads within a transaction;
-- ours differ by version (token_revoked by jti).  Every function pins the search_path it was
-- created with, so that the triggers work whatever the booking
-- application's search_path is.  TRUNCATE fires no row trigger and is not
-- reported.
--

BEGIN;

--
-- The NOTIFY channel: the one place to change it.
--
CREATE OR REPLACE FUNCTION seatcast_channel() RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$ SELECT 'seatcast'::text $$;

--
-- Fraction of the NOTIFY queue (pg_notification_queue_usage()) above which
-- notifications are dropped with a warning rather than risking a failed
-- COMMIT.
--
CREATE OR REPLACE FUNCTION seatcast_queue_limit() RETURNS double precision
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$ SELECT 0.9::double precision $$;

--
-- What seatcast reads at start and after each reconnect.
--
CREATE OR REPLACE VIEW seatcast_seat_state AS
    SELECT id AS event_id, available_seats, seat_capacity, version
      FROM events;

--
-- Revoked tokens.  seatcast closes connections using a revoked jti and
-- refuses it later; rows may be deleted once expires_at has passed
-- (seatcast_purge_revoked_tokens()).  jti is limited to what seatcast
-- accepts (1 to 128 printable ASCII characters), so that a revocation
-- seatcast could not apply fails here instead of being lost.
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
-- Epoch milliseconds of the moment the trigger runs (see NOTES, ts).
--
CREATE OR REPLACE FUNCTION seatcast_now_ms() RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

--
-- Queues one payload, or raises when it must not be queued.  Unguarded:
-- call it only from a function with an EXCEPTION block.
--
CREATE OR REPLACE FUNCTION seatcast_queue(payload json) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    usage double precision := pg_notification_queue_usage();
BEGIN
    IF usage >= seatcast_queue_limit() THEN
        RAISE EXCEPTION '%', format('NOTIFY queue is %s%% full (limit %s%%)',
                round((usage * 100)::numeric, 1),
                round((seatcast_queue_limit() * 100)::numeric, 1))
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    PERFORM pg_notify(seatcast_channel(), payload::text);
END;
$$;

--
-- Sends one payload; never raises.  Returns whether it was queued.
--
CREATE OR REPLACE FUNCTION seatcast_notify(payload json) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM seatcast_queue(payload);
    RETURN true;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'seatcast: notification not sent: %', SQLERRM
        USING DETAIL = 'payload: ' || coalesce(payload::text, 'NULL'),
              HINT = 'The change itself was committed; seatcast catches up '
                     'with the next change of this event.';
    RETURN false;
END;
$$;

--
-- Sends kind with the current seats of event e, as seatcast_seat_state
-- shows them now (after the change, since the caller is an AFTER trigger).
-- An event that no longer exists is skipped.  Never raises.
--
CREATE OR REPLACE FUNCTION seatcast_notify_seats(kind text, e bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    st record;
BEGIN
    SELECT s.available_seats, s.seat_capacity, s.version INTO st
      FROM seatcast_seat_state s WHERE s.event_id = e;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM seatcast_queue(json_build_object(
        'type', kind,
        'eventId', e,
        'availableSeats', st.available_seats,
        'seatCapacity', st.seat_capacity,
        'version', st.version,
        'ts', seatcast_now_ms()));
    RETURN true;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'seatcast: % notification for event % not sent: %',
        kind, e, SQLERRM
        USING HINT = 'The change itself was committed; seatcast catches up '
                     'with the next change of this event.';
    RETURN false;
END;
$$;

--
-- Number of bookings statements in progress in this transaction (NOTES).
--
CREATE OR REPLACE FUNCTION seatcast_in_booking() RETURNS integer
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$
    SELECT coalesce(nullif(current_setting('seatcast.in_booking', true), ''),
                    '0')::integer
$$;

CREATE OR REPLACE FUNCTION seatcast_bookings_enter() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM set_config('seatcast.in_booking',
                       (seatcast_in_booking() + 1)::text, true);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION seatcast_bookings_leave() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM set_config('seatcast.in_booking',
                       greatest(seatcast_in_booking() - 1, 0)::text, true);
    RETURN NULL;
END;
$$;

--
-- Seats a booking row holds: its seats when confirmed, else none.  Must
-- match the rule of the trigger that maintains available_seats.
--
CREATE OR REPLACE FUNCTION seatcast_booking_held(status text, seats integer)
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
    SELECT CASE WHEN status = 'confirmed' THEN coalesce(seats, 0) ELSE 0 END
$$;

--
-- events: a new event and any seat change not made by a bookings statement
-- are seat_update; a deleted event is event_deleted with the version after
-- its last one, so that seatcast, which skips versions already applied,
-- never mistakes it for an old state.
--
CREATE OR REPLACE FUNCTION seatcast_events_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM seatcast_notify(json_build_object(
            'type', 'event_deleted',
            'eventId', OLD.id,
            'version', OLD.version + 1,
            'ts', seatcast_now_ms()));
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND seatcast_in_booking() > 0 THEN
        -- the bookings row trigger reports this change with its own type
        RETURN NULL;
    END IF;
    PERFORM seatcast_notify_seats('seat_update', NEW.id);
    RETURN NULL;
END;
$$;

--
-- bookings: one notification per row whose held seats change.
--
CREATE OR REPLACE FUNCTION seatcast_bookings_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    old_held integer := 0;
    new_held integer := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_held := seatcast_booking_held(OLD.status, OLD.seats);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_held := seatcast_booking_held(NEW.status, NEW.seats);
    END IF;

    IF TG_OP = 'INSERT' THEN
        IF new_held > 0 THEN
            PERFORM seatcast_notify_seats('booking_created', NEW.event_id);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF old_held > 0 THEN
            PERFORM seatcast_notify_seats('seat_update', OLD.event_id);
        END IF;
    ELSIF OLD.event_id IS DISTINCT FROM NEW.event_id THEN
        -- moved to another event: both counts changed
        IF old_held > 0 THEN
            PERFORM seatcast_notify_seats('seat_update', OLD.event_id);
        END IF;
        IF new_held > 0 THEN
            PERFORM seatcast_notify_seats('seat_update', NEW.event_id);
        END IF;
    ELSIF old_held <> new_held THEN
        IF old_held > 0 AND new_held = 0 THEN
            PERFORM seatcast_notify_seats('booking_cancelled', NEW.event_id);
        ELSE
            PERFORM seatcast_notify_seats('seat_update', NEW.event_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION seatcast_revoked_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM seatcast_notify(json_build_object(
        'type', 'token_revoked',
        'jti', NEW.jti,
        'ts', seatcast_now_ms()));
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS seatcast_events_insert ON events;
CREATE TRIGGER seatcast_events_insert
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION seatcast_events_notify();

DROP TRIGGER IF EXISTS seatcast_events_update ON events;
CREATE TRIGGER seatcast_events_update
    AFTER UPDATE ON events
    FOR EACH ROW
    WHEN (OLD.available_seats IS DISTINCT FROM NEW.available_seats
          OR OLD.seat_capacity IS DISTINCT FROM NEW.seat_capacity)
    EXECUTE FUNCTION seatcast_events_notify();

DROP TRIGGER IF EXISTS seatcast_events_delete ON events;
CREATE TRIGGER seatcast_events_delete
    AFTER DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION seatcast_events_notify();

DROP TRIGGER IF EXISTS seatcast_bookings_enter ON bookings;
CREATE TRIGGER seatcast_bookings_enter
    BEFORE INSERT OR UPDATE OR DELETE ON bookings
    FOR EACH STATEMENT EXECUTE FUNCTION seatcast_bookings_enter();

DROP TRIGGER IF EXISTS seatcast_bookings_leave ON bookings;
CREATE TRIGGER seatcast_bookings_leave
    AFTER INSERT OR UPDATE OR DELETE ON bookings
    FOR EACH STATEMENT EXECUTE FUNCTION seatcast_bookings_leave();

DROP TRIGGER IF EXISTS seatcast_bookings_notify ON bookings;
CREATE TRIGGER seatcast_bookings_notify
    AFTER INSERT OR UPDATE OR DELETE ON bookings
    FOR EACH ROW EXECUTE FUNCTION seatcast_bookings_notify();

DROP TRIGGER IF EXISTS seatcast_revoked_notify ON seatcast_revoked_tokens;
CREATE TRIGGER seatcast_revoked_notify
    AFTER INSERT ON seatcast_revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION seatcast_revoked_notify();

COMMIT;

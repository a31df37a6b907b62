--
-- schema.sql - seatcast's reference booking schema (PROTOCOL.md section 7)
--
-- Two tables: events, whose available_seats is the number seatcast pushes
-- to browsers, and bookings, one row per reservation.  A booking is made by
-- inserting a row (event_id, user_id, seats) and cancelled by setting its
-- status to 'cancelled'.  The triggers below keep events.available_seats
-- equal to seat_capacity minus the seats of confirmed bookings, under any
-- concurrency, and refuse a booking that does not fit.
--
-- This file knows nothing of seatcast's notifications: apply it first, then
-- sql/notify.sql.  Both may be applied again at any time (idempotent).
--
--     psql -v ON_ERROR_STOP=1 -d booking -f sql/schema.sql
--     psql -v ON_ERROR_STOP=1 -d booking -f sql/notify.sql
--
-- NOTES
--
-- Concurrency.  Every change of available_seats is a single UPDATE of the
-- event row, so bookings of one event serialise on that row's lock.  A
-- booking takes seats with
--     UPDATE events SET available_seats = available_seats - n
--      WHERE id = e AND available_seats >= n
-- Under READ COMMITTED a second session waits for the row lock and then
-- re-evaluates the WHERE clause against the committed row, so two sessions
-- can never both take the last seat.  Under REPEATABLE READ or SERIALIZABLE
-- the loser gets a serialization failure (40001) and must retry, as usual.
--
-- Errors.  A booking that does not fit fails with SQLSTATE 23514
-- (check_violation) and a message such as
--     not enough seats for event 12: 1 requested, 0 available
-- and changes nothing.  Shrinking seat_capacity below the seats already
-- booked fails the same way.
--
-- version.  events.version belongs to the triggers: it grows by exactly one
-- with every change of available_seats or seat_capacity and cannot be set by
-- hand (an UPDATE that writes it is overridden).  seatcast uses it to
-- ignore a state it has already applied.
--
-- Seat maintenance runs in AFTER ROW triggers on bookings, so that it sees
-- the row as finally stored (after every BEFORE trigger) and so that
-- notify.sql's trigger, whose name sorts after "bookings_", reads the event
-- after the change.  TRUNCATE bookings bypasses row triggers: do not.
--

CREATE TABLE IF NOT EXISTS events (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    starts_at       timestamptz,
    seat_capacity   integer NOT NULL
        CONSTRAINT events_seat_capacity_check CHECK (seat_capacity >= 0),
    available_seats integer NOT NULL,
    version         bigint NOT NULL DEFAULT 0,
    CONSTRAINT events_available_seats_check
        CHECK (available_seats >= 0 AND available_seats <= seat_capacity)
);

CREATE TABLE IF NOT EXISTS bookings (
    id           bigserial PRIMARY KEY,
    event_id     bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL,
    seats        integer NOT NULL DEFAULT 1
        CONSTRAINT bookings_seats_check CHECK (seats > 0),
    status       text NOT NULL DEFAULT 'confirmed'
        CONSTRAINT bookings_status_check
        CHECK (status IN ('confirmed', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz
);

CREATE INDEX IF NOT EXISTS bookings_event_id_idx ON bookings (event_id);
CREATE INDEX IF NOT EXISTS bookings_user_id_idx ON bookings (user_id);

--
-- events: available_seats defaults to seat_capacity on insert; a change of
-- seat_capacity moves available_seats by the same amount (unless the same
-- UPDATE sets available_seats itself); version counts seat changes.
--
CREATE OR REPLACE FUNCTION events_maintain_seats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    booked bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.available_seats IS NULL THEN
            NEW.available_seats := NEW.seat_capacity;
        END IF;
        IF NEW.version IS NULL THEN
            NEW.version := 0;
        END IF;
        RETURN NEW;
    END IF;

    -- UPDATE
    IF NEW.seat_capacity IS DISTINCT FROM OLD.seat_capacity
       AND NEW.available_seats IS NOT DISTINCT FROM OLD.available_seats
       AND NEW.seat_capacity IS NOT NULL THEN
        booked := OLD.seat_capacity - OLD.available_seats;
        IF NEW.seat_capacity < booked THEN
            RAISE EXCEPTION
                'cannot set capacity of event % to %: % seats are booked',
                OLD.id, NEW.seat_capacity, booked
                USING ERRCODE = 'check_violation',
                      HINT = 'Cancel bookings first, or keep a larger '
                             'capacity.';
        END IF;
        NEW.available_seats := NEW.seat_capacity - booked;
    END IF;

    -- version is the triggers' own counter: one step per seat change
    IF NEW.available_seats IS DISTINCT FROM OLD.available_seats
       OR NEW.seat_capacity IS DISTINCT FROM OLD.seat_capacity THEN
        NEW.version := OLD.version + 1;
    ELSE
        NEW.version := OLD.version;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS events_maintain_seats ON events;
CREATE TRIGGER events_maintain_seats
    BEFORE INSERT OR UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_maintain_seats();

--
-- Takes n seats of event e under the event's row lock, or fails with
-- check_violation when fewer are left.  A missing event is left to the
-- foreign key, which reports it in its own words.
--
CREATE OR REPLACE FUNCTION events_take_seats(e bigint, n integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    avail integer;
BEGIN
    UPDATE events SET available_seats = available_seats - n
     WHERE id = e AND available_seats >= n;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT available_seats INTO avail FROM events WHERE id = e;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', e
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RAISE EXCEPTION 'not enough seats for event %: % requested, % available',
        e, n, avail
        USING ERRCODE = 'check_violation';
END;
$$;

--
-- Gives n seats back to event e.  The event may already be gone (ON DELETE
-- CASCADE deletes its bookings after the event row): nothing to do then.
--
CREATE OR REPLACE FUNCTION events_release_seats(e bigint, n integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE events SET available_seats = available_seats + n WHERE id = e;
END;
$$;

--
-- bookings: the seats a row holds are its seats when confirmed, else 0.
-- Every change moves available_seats by the difference, so that insert,
-- cancel, re-confirm, delete, a change of seats and even moving a booking
-- to another event are all one rule.
--
CREATE OR REPLACE FUNCTION bookings_adjust_seats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_held integer := 0;
    new_held integer := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'confirmed' THEN
        old_held := OLD.seats;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'confirmed' THEN
        new_held := NEW.seats;
    END IF;

    IF TG_OP = 'UPDATE' AND OLD.event_id IS DISTINCT FROM NEW.event_id THEN
        IF old_held > 0 THEN
            PERFORM events_release_seats(OLD.event_id, old_held);
        END IF;
        IF new_held > 0 THEN
            PERFORM events_take_seats(NEW.event_id, new_held);
        END IF;
    ELSIF new_held > old_held THEN
        PERFORM events_take_seats(
            CASE WHEN TG_OP = 'INSERT' THEN NEW.event_id ELSE OLD.event_id END,
            new_held - old_held);
    ELSIF new_held < old_held THEN
        PERFORM events_release_seats(OLD.event_id, old_held - new_held);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS bookings_adjust_seats ON bookings;
CREATE TRIGGER bookings_adjust_seats
    AFTER INSERT OR UPDATE OR DELETE ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_adjust_seats();

--
-- cancelled_at follows status: stamped when a booking is cancelled, cleared
-- when it is confirmed again (unless the statement sets it itself).
--
CREATE OR REPLACE FUNCTION bookings_stamp_cancel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'cancelled' AND NEW.cancelled_at IS NULL
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'cancelled') THEN
        NEW.cancelled_at := now();
    ELSIF TG_OP = 'UPDATE' AND NEW.status = 'confirmed'
          AND OLD.status = 'cancelled'
          AND NEW.cancelled_at IS NOT DISTINCT FROM OLD.cancelled_at THEN
        NEW.cancelled_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS bookings_stamp_cancel ON bookings;
CREATE TRIGGER bookings_stamp_cancel
    BEFORE INSERT OR UPDATE ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_stamp_cancel();

-- Sample events for `make demo` (applied after sql/schema.sql and
-- sql/notify.sql).  Idempotent: running the demo twice keeps four events.
INSERT INTO events (id, name, starts_at, seat_capacity)
VALUES (1, 'Opening night: The Tempest', now() + interval '7 days', 120),
       (2, 'Jazz at the Harbour', now() + interval '9 days', 80),
       (3, 'City Marathon Grandstand', now() + interval '14 days', 300),
       (4, 'Chamber Music Matinee', now() + interval '21 days', 40)
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('events', 'id'),
              greatest((SELECT max(id) FROM events), 1));

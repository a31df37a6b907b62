/*
 * lg_selftest.c - checks of the loadgen's own parsers (loadgen --self-test)
 *
 * A bench whose client misreads frames would report the server's loss as
 * its own, or hide it: so bench-smoke first runs these table-driven cases
 * of lg_ws.c (RFC 6455 5.2 lengths, refused frames, every split of a
 * stream of frames, the JSON fields, the upgrade response) and of the
 * onsale's accounting (lg_onsale.c) over messages from a server that sends
 * every booking and from one that merges them.  Prints each failure on
 * stderr; returns the number of failures.
 */
#include "lg_selftest.h"

#include <stdio.h>
#include <string.h>

#include "lg_onsale.h"
#include "lg_ws.h"

static void
check(int *fails, int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "loadgen self-test: FAIL %s\n", what);
        (*fails)++;
    }
}

/* Writes an unmasked server frame of opcode op and payload length len
 * (filled with 'x') using the length form `form` (7, 16 or 64). */
static size_t
server_frame(uint8_t *out, uint8_t op, size_t len, int form)
{
    size_t h = 2;

    out[0] = (uint8_t)(0x80 | op);
    if (form == 7) {
        out[1] = (uint8_t)len;
    } else if (form == 16) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        }
        h = 10;
    }
    memset(out + h, 'x', len);
    return h + len;
}

static void
check_lengths(int *fails)
{
    static uint8_t buf[LG_WS_FRAME_MAX + 64];
    struct lg_frame f;
    size_t n;

    n = server_frame(buf, LG_WS_OP_TEXT, 125, 7);
    check(fails, lg_ws_frame_parse(buf, n, &f) == (long)n && f.len == 125,
          "7-bit length");
    n = server_frame(buf, LG_WS_OP_TEXT, 300, 16);
    check(fails,
          lg_ws_frame_parse(buf, n, &f) == (long)n && f.len == 300 &&
              f.payload == buf + 4 && f.fin,
          "16-bit length");
    n = server_frame(buf, LG_WS_OP_TEXT, 100, 16);
    check(fails, lg_ws_frame_parse(buf, n, &f) == LG_E_PROTO,
          "16-bit form for 100 bytes is refused");
    n = server_frame(buf, LG_WS_OP_TEXT, 300, 64);
    check(fails, lg_ws_frame_parse(buf, n, &f) == LG_E_PROTO,
          "64-bit form for 300 bytes is refused");
    n = server_frame(buf, LG_WS_OP_TEXT, 0, 7);
    check(fails, lg_ws_frame_parse(buf, n, &f) == 2 && f.len == 0,
          "empty frame");
    buf[0] = 0x81;
    buf[1] = 127;
    memset(buf + 2, 0, 8);
    buf[7] = 0x01; /* 2^24 */
    check(fails, lg_ws_frame_parse(buf, 10, &f) == LG_E_TOO_BIG, "huge frame");
}

static void
check_refused(int *fails)
{
    struct lg_frame f;
    uint8_t masked[] = {0x81, 0x81, 1, 2, 3, 4, 'a'};
    uint8_t rsv[] = {0xC1, 0x01, 'a'};
    uint8_t reserved_op[] = {0x83, 0x01, 'a'};
    uint8_t long_ping[130] = {0x89, 126, 0, 126};
    uint8_t frag_ping[] = {0x09, 0x00};

    check(fails, lg_ws_frame_parse(masked, sizeof(masked), &f) == LG_E_PROTO,
          "masked server frame is refused");
    check(fails, lg_ws_frame_parse(rsv, sizeof(rsv), &f) == LG_E_PROTO,
          "RSV1 is refused");
    check(fails,
          lg_ws_frame_parse(reserved_op, sizeof(reserved_op), &f) == LG_E_PROTO,
          "opcode 3 is refused");
    check(fails,
          lg_ws_frame_parse(long_ping, sizeof(long_ping), &f) == LG_E_PROTO,
          "126-byte ping is refused");
    check(fails,
          lg_ws_frame_parse(frag_ping, sizeof(frag_ping), &f) == LG_E_PROTO,
          "fragmented ping is refused");
}

/* Three frames back to back: every shorter prefix of the first frame is
 * LG_MORE, and walking the stream finds all three. */
static void
check_splits(int *fails)
{
    static uint8_t buf[1024];
    struct lg_frame f;
    size_t n1 = server_frame(buf, LG_WS_OP_TEXT, 200, 16);
    size_t n2 = server_frame(buf + n1, LG_WS_OP_PING, 4, 7);
    size_t n3 = server_frame(buf + n1 + n2, LG_WS_OP_TEXT, 20, 7);
    size_t off = 0;
    int frames = 0, more_ok = 1;

    for (size_t cut = 0; cut < n1; cut++) {
        more_ok &= lg_ws_frame_parse(buf, cut, &f) == LG_MORE;
    }
    check(fails, more_ok, "every prefix of a frame asks for more");
    while (off < n1 + n2 + n3) {
        long r = lg_ws_frame_parse(buf + off, n1 + n2 + n3 - off, &f);

        if (r <= 0) {
            break;
        }
        off += (size_t)r;
        frames++;
    }
    check(fails, frames == 3 && off == n1 + n2 + n3,
          "three frames in one buffer");
}

static void
check_build(int *fails)
{
    uint8_t out[140], payload[4] = {'p', 'i', 'n', 'g'};
    long n = lg_ws_frame_build(out, sizeof(out), LG_WS_OP_PONG, payload, 4,
                               0x01020304);
    int same = 1;

    check(fails, n == 10 && out[0] == 0x8A && out[1] == 0x84,
          "pong header: FIN, opcode, MASK bit, length");
    for (int i = 0; i < 4 && n == 10; i++) {
        same &= (out[6 + i] ^ out[2 + (i & 3)]) == payload[i];
    }
    check(fails, same, "pong payload is masked with its key");
    check(fails,
          lg_ws_frame_build(out, sizeof(out), LG_WS_OP_PONG, payload, 126, 1) ==
              LG_E_SPACE,
          "control payload over 125 bytes is refused");
}

static void
check_json(int *fails)
{
    static const char upd[] =
        "{\"type\":\"seat_update\",\"eventId\":123,\"availableSeats\":44,"
        "\"seatCapacity\":100,\"timestamp\":\"2024-11-11T10:30:00.000Z\"}";
    static const char odd[] =
        " { \"note\" : \"a \\\"type\\\": x\" , \"data\":{\"type\":\"error\","
        "\"availableSeats\":1,\"l\":[1,{\"x\":\"}\"}]},\"availableSeats\" : "
        "-7 , \"type\" : \"booking_created\" } ";
    static const char stats[] = "{\"type\":\"stats\",\"data\":{\"totalClients"
                                "\":15},\"timestamp\":\"t\"}";
    struct lg_msg m;

    check(fails,
          lg_json_scan(upd, sizeof(upd) - 1, &m) == 0 &&
              m.type == LG_MSG_SEAT_UPDATE && m.has_event &&
              m.event_id == 123 && m.has_available && m.available == 44,
          "seat_update fields");
    check(fails,
          lg_json_scan(odd, sizeof(odd) - 1, &m) == 0 &&
              m.type == LG_MSG_BOOKING_CREATED && m.available == -7,
          "top-level fields only, escapes and nesting skipped");
    check(fails,
          lg_json_scan(stats, sizeof(stats) - 1, &m) == 0 &&
              m.type == LG_MSG_OTHER && !m.has_available,
          "other message type");
    check(fails, lg_json_scan(upd, 30, &m) == LG_E_JSON,
          "cut object is refused");
    check(fails, !m.has_bookings || m.bookings == 1,
          "no bookings field reads as 1");
    check(fails, lg_json_scan("[1]", 3, &m) == LG_E_JSON, "array is refused");
}

static void
check_merged_json(int *fails)
{
    static const char merged[] =
        "{\"type\":\"booking_created\",\"eventId\":123,"
        "\"availableSeats\":40,\"bookings\":4,\"timestamp\":\"t\"}";
    static const char cancelled[] =
        "{\"type\":\"booking_cancelled\",\"eventId\":123,"
        "\"availableSeats\":45,\"bookings\":12,\"timestamp\":\"t\"}";
    static const char single[] =
        "{\"type\":\"booking_created\",\"eventId\":123,"
        "\"availableSeats\":44,\"timestamp\":\"t\"}";
    static const char text[] = "{\"type\":\"booking_created\","
                               "\"availableSeats\":44,\"bookings\":\"4\"}";
    struct lg_msg m;

    check(fails,
          lg_json_scan(merged, sizeof(merged) - 1, &m) == 0 &&
              m.type == LG_MSG_BOOKING_CREATED && m.available == 40 &&
              m.has_bookings && m.bookings == 4,
          "merged booking_created: bookings 4");
    check(fails,
          lg_json_scan(cancelled, sizeof(cancelled) - 1, &m) == 0 &&
              m.type == LG_MSG_BOOKING_CANCELLED && m.available == 45 &&
              m.has_bookings && m.bookings == 12,
          "merged booking_cancelled: bookings 12");
    check(fails,
          lg_json_scan(single, sizeof(single) - 1, &m) == 0 &&
              !m.has_bookings && m.bookings == 1,
          "booking_created without bookings stands for 1");
    check(fails,
          lg_json_scan(text, sizeof(text) - 1, &m) == 0 && m.has_bookings &&
              m.bookings == 0,
          "bookings that is not an integer reads as 0");
}

/* Feeds connection o a message of type `type` showing index j (bookings
 * n, 0: no field) at time t. */
static void
feed(struct lg_onsale_conn *o, uint32_t *cover, enum lg_msg_type type,
     int64_t j, int64_t n, uint32_t t, struct lg_onsale_tally *c)
{
    struct lg_msg m = {.type = type,
                       .available = 100 - 1 - j,
                       .bookings = n > 0 ? n : 1,
                       .has_event = true,
                       .has_available = true,
                       .has_bookings = n > 0};

    lg_onsale_apply(o, cover, j, 4, &m, t, c);
}

static void
check_onsale(int *fails)
{
    struct lg_onsale_conn o;
    struct lg_onsale_tally c;
    uint32_t cover[5];

    /* today: every booking is booking_created + seat_update */
    lg_onsale_reset(&o);
    memset(&c, 0, sizeof(c));
    memset(cover, 0, sizeof(cover));
    for (int j = 0; j < 5; j++) {
        feed(&o, cover, LG_MSG_BOOKING_CREATED, j, 0, 10u * (uint32_t)j, &c);
        feed(&o, cover, LG_MSG_SEAT_UPDATE, j, 0, 10u * (uint32_t)j + 1, &c);
    }
    lg_onsale_fill(cover, o.hi);
    check(fails,
          cover[0] == 0 && cover[2] == 20 && cover[4] == 40 && o.hi == 4 &&
              o.upd == 4 && o.bookings == 5 && c.bookings == 5 &&
              c.frames == 10 && c.final == 1 && c.older == 0 &&
              c.step_bad == 0 && c.bookings_bad == 0,
          "onsale: one message pair per booking");
    /* merging: 0, then 1..3 as one ("bookings": 3), then 4 */
    lg_onsale_reset(&o);
    memset(&c, 0, sizeof(c));
    memset(cover, 0, sizeof(cover));
    feed(&o, cover, LG_MSG_BOOKING_CREATED, 0, 0, 1, &c);
    feed(&o, cover, LG_MSG_SEAT_UPDATE, 0, 0, 1, &c);
    feed(&o, cover, LG_MSG_BOOKING_CREATED, 3, 3, 5, &c);
    feed(&o, cover, LG_MSG_SEAT_UPDATE, 3, 0, 6, &c);
    feed(&o, cover, LG_MSG_BOOKING_CREATED, 4, 0, 9, &c);
    feed(&o, cover, LG_MSG_SEAT_UPDATE, 4, 0, 9, &c);
    lg_onsale_fill(cover, o.hi);
    check(fails,
          cover[0] == 1 && cover[1] == 5 && cover[2] == 5 && cover[3] == 5 &&
              cover[4] == 9 && o.bookings == 5 && o.upd == 4 &&
              c.final == 1 && c.older == 0 && c.step_bad == 0 &&
              c.bookings_bad == 0,
          "onsale: a merged booking_created covers the counts it skips");
    /* faults: an older count, a wrong step, "bookings": 1 */
    lg_onsale_reset(&o);
    memset(&c, 0, sizeof(c));
    memset(cover, 0, sizeof(cover));
    feed(&o, cover, LG_MSG_SEAT_UPDATE, 3, 0, 7, &c);
    feed(&o, cover, LG_MSG_SEAT_UPDATE, 2, 0, 8, &c);
    lg_onsale_fill(cover, o.hi);
    check(fails,
          c.older == 1 && o.hi == 3 && o.upd == 2 && cover[0] == 7 &&
              cover[3] == 7,
          "onsale: an older count after a newer one");
    feed(&o, cover, LG_MSG_BOOKING_CREATED, 2, 2, 9, &c);
    feed(&o, cover, LG_MSG_BOOKING_CREATED, 3, 1, 9, &c);
    check(fails,
          c.step_bad == 1 && c.bookings_bad == 1 && o.bookings == 3 &&
              c.final == 0,
          "onsale: bookings that do not add up, bookings 1");
}

static void
check_http(int *fails)
{
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "sec-websocket-accept:  " LG_WS_ACCEPT "\r\n"
                             "\r\n\x81\x02{}";
    static const char bad_accept[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Sec-WebSocket-Accept: xyz\r\n\r\n";
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Length: 0\r\n\r\n";
    int status;

    check(fails,
          lg_http_response(ok, sizeof(ok) - 1, &status) ==
                  (long)(sizeof(ok) - 1 - 4) &&
              status == 101,
          "101 with the RFC's accept value");
    check(fails, lg_http_response(ok, 40, &status) == LG_MORE && status == 101,
          "partial response asks for more");
    check(fails,
          lg_http_response(bad_accept, sizeof(bad_accept) - 1, &status) ==
              LG_E_ACCEPT,
          "wrong accept value is refused");
    check(fails,
          lg_http_response(busy, sizeof(busy) - 1, &status) == LG_E_HTTP &&
              status == 503,
          "503 is reported with its status");
}

int
lg_selftest(void)
{
    int fails = 0;

    check_lengths(&fails);
    check_refused(&fails);
    check_splits(&fails);
    check_build(&fails);
    check_json(&fails);
    check_merged_json(&fails);
    check_onsale(&fails);
    check_http(&fails);
    fprintf(stderr, "loadgen self-test: %s\n", fails ? "FAILED" : "ok");
    return fails;
}

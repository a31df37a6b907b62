/*
 * pgoutput.h - decode PostgreSQL's logical replication stream (pgoutput,
 * protocol version 1) and its CopyData framing
 *
 * The listener of `--source logical` receives, inside a COPY BOTH
 * sub-protocol started by START_REPLICATION ... LOGICAL, CopyData messages:
 *
 *   'w' XLogData: wal start, wal end, send time, then one pgoutput message
 *   'k' primary keepalive: wal end, send time, reply requested
 *
 * and sends back standby status updates ('r': write, flush, apply, clock,
 * reply requested).  A pgoutput message is one of Begin, Commit, Origin,
 * Relation, Type, Insert, Update, Delete, Truncate and (if asked for)
 * Message, each with its fields in network byte order and NUL-terminated
 * strings (PostgreSQL's "Logical Replication Message Formats").
 *
 * Pure: bytes in, a decoded struct out; no I/O, no allocation, no globals.
 * Decoded strings and tuple data point into the caller's buffer, which must
 * outlive the struct.  Every length is checked against the buffer: a
 * message that is short, long, or malformed is refused with a reason, never
 * half decoded.
 */
#ifndef SC_PGOUTPUT_H
#define SC_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PostgreSQL's epoch (2000-01-01) in Unix seconds. */
#define SC_PGO_EPOCH_OFFSET_S INT64_C(946684800)
/* Length of a standby status update ('r'). */
#define SC_PGO_STATUS_LEN 34u
/* Longest "XXXXXXXX/XXXXXXXX" text of an LSN, with its NUL. */
#define SC_PGO_LSN_STRLEN 18u

enum sc_pgo_err {
    SC_PGO_ESHORT = -1,  /* the message ends before its fields do */
    SC_PGO_ELONG = -2,   /* bytes left over after the last field */
    SC_PGO_ETYPE = -3,   /* unknown message type byte */
    SC_PGO_EVALUE = -4,  /* a field with an impossible value */
    SC_PGO_EARG = -5     /* NULL argument */
};

/* CopyData of the replication sub-protocol, server to client. */
struct sc_pgo_copy {
    char type;           /* 'w' or 'k' */
    uint64_t wal_start;  /* 'w' only */
    uint64_t wal_end;    /* the server's end of WAL */
    int64_t send_time;   /* microseconds since 2000-01-01 */
    bool reply;          /* 'k': the server asks for a status update now */
    const uint8_t *data; /* 'w': the pgoutput message */
    size_t len;
};

/* Tuple data: ncols values, walked with sc_pgo_tuple_next(). */
struct sc_pgo_tuple {
    uint16_t ncols;
    const uint8_t *data; /* the first column's kind byte */
    size_t len;          /* bytes of all the columns */
};

/* One column value of a tuple. */
struct sc_pgo_value {
    char kind;           /* 'n' null, 'u' unchanged TOAST, 't' text,
                            'b' binary */
    const uint8_t *data; /* 't'/'b': the bytes (not NUL-terminated) */
    uint32_t len;
};

struct sc_pgo_iter {
    const uint8_t *p, *end;
    uint16_t left;
};

/* One column of a Relation message. */
struct sc_pgo_column {
    uint8_t flags;       /* 1: part of the replica identity key */
    const char *name;    /* NUL-terminated, in the buffer */
    uint32_t type_oid;
    int32_t typmod;
};

enum sc_pgo_type {
    SC_PGO_BEGIN = 'B',
    SC_PGO_COMMIT = 'C',
    SC_PGO_ORIGIN = 'O',
    SC_PGO_RELATION = 'R',
    SC_PGO_TYPE = 'Y',
    SC_PGO_INSERT = 'I',
    SC_PGO_UPDATE = 'U',
    SC_PGO_DELETE = 'D',
    SC_PGO_TRUNCATE = 'T',
    SC_PGO_MESSAGE = 'M'
};

/* One pgoutput message. */
struct sc_pgo_msg {
    enum sc_pgo_type type;
    union {
        struct {
            uint64_t final_lsn;  /* LSN of the commit record */
            int64_t commit_time; /* microseconds since 2000-01-01 */
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            uint64_t commit_lsn;
            uint64_t end_lsn;    /* end of the commit record: confirm this */
            int64_t commit_time;
        } commit;
        struct {
            uint64_t lsn;
            const char *name;
        } origin;
        struct {
            uint32_t oid;
            const char *nspname; /* "" for pg_catalog */
            const char *relname;
            char replident;      /* 'd' default, 'n' nothing, 'f' full,
                                    'i' index */
            uint16_t ncols;
            const uint8_t *cols; /* walked with sc_pgo_column_next() */
            size_t cols_len;
        } relation;
        struct {
            uint32_t oid;
            const char *nspname;
            const char *typname;
        } typ;
        struct {
            uint32_t relid;
            char old_kind;       /* Update/Delete: 'K' key, 'O' old row;
                                    0 if absent */
            struct sc_pgo_tuple old_tuple;
            struct sc_pgo_tuple new_tuple; /* Insert/Update */
        } change;
        struct {
            uint32_t nrels;
            uint8_t options;     /* 1 CASCADE, 2 RESTART IDENTITY */
            const uint8_t *relids; /* nrels big-endian uint32 */
        } truncate;
        struct {
            uint8_t flags;       /* 1: transactional */
            uint64_t lsn;
            const char *prefix;
            const uint8_t *content;
            uint32_t len;
        } message;
    } u;
};

/*
 * Decodes one CopyData payload of the replication stream.  Returns 0, or
 * an SC_PGO_* error with a reason in *why (a static string).
 */
int sc_pgo_copy_decode(const uint8_t *buf, size_t len,
                       struct sc_pgo_copy *out, const char **why);

/*
 * Decodes one pgoutput message (protocol version 1, no streaming of
 * in-progress transactions).  Returns 0, or an SC_PGO_* error with *why.
 */
int sc_pgo_decode(const uint8_t *buf, size_t len, struct sc_pgo_msg *out,
                  const char **why);

/* Starts walking a tuple's values, or a Relation's columns. */
void sc_pgo_tuple_iter(const struct sc_pgo_tuple *t, struct sc_pgo_iter *it);
void sc_pgo_columns_iter(const struct sc_pgo_msg *rel,
                         struct sc_pgo_iter *it);

/*
 * Next value / column: 1 and *out filled, 0 at the end.  The decoder has
 * checked the whole tuple, so these never fail on a decoded message.
 */
int sc_pgo_tuple_next(struct sc_pgo_iter *it, struct sc_pgo_value *out);
int sc_pgo_column_next(struct sc_pgo_iter *it, struct sc_pgo_column *out);

/* Relation id number i (0-based) of a Truncate message. */
uint32_t sc_pgo_truncate_relid(const struct sc_pgo_msg *m, uint32_t i);

/*
 * Writes a standby status update ('r') into out[SC_PGO_STATUS_LEN]: the
 * positions written, flushed and applied, the client's clock (microseconds
 * since 2000-01-01) and whether the server should answer at once.
 */
void sc_pgo_status_build(uint8_t out[SC_PGO_STATUS_LEN], uint64_t write,
                         uint64_t flush, uint64_t apply, int64_t now,
                         bool reply);

/* Unix time in microseconds to PostgreSQL's epoch, and back. */
int64_t sc_pgo_time_from_unix_us(int64_t unix_us);
int64_t sc_pgo_time_to_unix_ms(int64_t pg_us);

/* "16/B374D848" <-> 64-bit LSN.  Parse returns 0 or -1. */
void sc_pgo_lsn_format(uint64_t lsn, char out[SC_PGO_LSN_STRLEN]);
int sc_pgo_lsn_parse(const char *text, uint64_t *out);

#endif /* SC_PGOUTPUT_H */

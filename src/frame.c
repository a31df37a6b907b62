/*
 * frame.c - shared encoded frames (see frame.h)
 */
#include "frame.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

struct sc_frame *
sc_frame_new(const void *data, size_t len, int64_t merge_id)
{
    struct sc_frame *f;

    if (len > UINT32_MAX - sizeof(*f)) {
        return NULL;
    }
    f = malloc(sizeof(*f) + len);
    if (f == NULL) {
        return NULL;
    }
    f->refs = 1;
    f->len = (uint32_t)len;
    f->merge_id = merge_id;
    memcpy(f->data, data, len);
    return f;
}

struct sc_frame *
sc_frame_text(const char *json, long n, int64_t merge_id)
{
    uint8_t hdr[SC_WS_HEADER_MAX];
    struct sc_frame *f;
    size_t hl;

    if (n < 0 || (uint64_t)n > UINT32_MAX - sizeof(*f) - sizeof(hdr)) {
        return NULL;
    }
    hl = sc_ws_frame_header(hdr, SC_WS_OP_TEXT, true, (uint64_t)n);
    f = malloc(sizeof(*f) + hl + (size_t)n);
    if (f == NULL) {
        return NULL;
    }
    f->refs = 1;
    f->len = (uint32_t)(hl + (size_t)n);
    f->merge_id = merge_id;
    memcpy(f->data, hdr, hl);
    memcpy(f->data + hl, json, (size_t)n);
    return f;
}

void
sc_frame_release(struct sc_frame *f)
{
    if (f != NULL && --f->refs == 0) {
        free(f);
    }
}

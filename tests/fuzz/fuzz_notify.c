/*
 * fuzz_notify.c - libFuzzer entry point for sc_notify_parse()
 *
 * Feeds arbitrary bytes as a NOTIFY payload and checks the contract on
 * every outcome: a reason exactly on error, and on success a struct whose
 * fields respect the ranges notify_msg.h promises.  Built by
 * "make build/fuzz/fuzz_notify"; seeds in tests/fuzz/corpus/notify/.
 */
#include "notify_msg.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_result(const struct sc_notify *n)
{
    size_t jlen = strnlen(n->jti, sizeof(n->jti));

    if (sc_notify_type_name(n->type) == NULL || jlen > SC_NOTIFY_JTI_MAX ||
        n->ts_ms < 0) {
        abort();
    }
    if (n->type == SC_NOTIFY_TOKEN_REVOKED) {
        if (jlen == 0) {
            abort();
        }
        for (size_t i = 0; i < jlen; i++) {
            if (n->jti[i] < 0x20 || n->jti[i] > 0x7e) {
                abort();
            }
        }
        return;
    }
    if (n->event_id == 0 || n->event_id > SC_EVENT_ID_MAX ||
        n->version < 0 || n->available_seats < 0 ||
        n->available_seats > n->seat_capacity) {
        abort();
    }
    if (n->type != SC_NOTIFY_EVENT_DELETED && !n->has_version) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sc_notify n;
    const char *reason = NULL;
    int rc;

    rc = sc_notify_parse((const char *)data, size, &n, &reason);
    if (rc == 0) {
        if (reason != NULL) {
            abort();
        }
        check_result(&n);
    } else if (rc >= 0 || reason == NULL || reason[0] == '\0') {
        abort();
    }
    return 0;
}

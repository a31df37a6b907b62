/*
 * json_text.c - refuse the JSON text cJSON would misread (json_text.h)
 */
#include "json_text.h"

#include <string.h>

bool
sc_json_text_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            return false;
        }
        if (s[i] == '\\') {
            if (n - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0) {
                return false;
            }
            i++;
        }
    }
    return true;
}

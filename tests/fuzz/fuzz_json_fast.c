/* The fast JSON parser of request bodies against Jansson: whatever it
 * accepts, Jansson must accept too and build the equal tree (numbers bit
 * for bit, integers as integers); and every JSON number it reads must be
 * strtod's double. The first byte gives the flags (bit 0
 * JSON_REJECT_DUPLICATES, bit 1 JSON_DECODE_ANY), the rest is the text. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "json_fast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_number(const char *text, size_t len) {
    double d;
    bool integer;
    const char *end;
    if (!decimal_parse_json(text, len, &d, &integer, &end)) return;
    if (end <= text || end > text + len) abort();
    size_t n = (size_t)(end - text);
    char *copy = malloc(n + 1);
    if (!copy) return;
    memcpy(copy, text, n);
    copy[n] = '\0';
    double want = strtod(copy, NULL);
    if (memcmp(&d, &want, sizeof d)) {
        fprintf(stderr, "\"%s\": %.17g, strtod %.17g\n", copy, d, want);
        abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const size_t flags = (data[0] & 1 ? JSON_REJECT_DUPLICATES : 0) | (data[0] & 2 ? JSON_DECODE_ANY : 0);
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    check_number(text, len);
    json_t *fast = json_fast_loadb(text, len, flags);
    if (!fast) return 0; /* declined: Jansson's to parse */
    json_error_t err;
    json_t *ref = json_loadb(text, len, flags, &err);
    if (!ref || !json_equal(fast, ref)) {
        fprintf(stderr, "the fast parser accepted what Jansson %s\n", ref ? "reads differently" : "refuses");
        abort();
    }
    json_decref(ref);
    json_decref(fast);
    return 0;
}

/* The fast JSON parser of request bodies against Jansson: whatever it
 * accepts, Jansson must accept too and build the equal tree (numbers bit
 * for bit, integers as integers); and every JSON number it reads must be
 * strtod's double. With the first "inputs" member packed
 * (json_fast_or_jansson_packed), the tree is Jansson's but for the stand-in,
 * where Jansson's tree holds a rectangular array of the packed shape whose
 * numbers are the packed values bit for bit. The first byte gives the
 * flags (bit 0 JSON_REJECT_DUPLICATES, bit 1 JSON_DECODE_ANY), the rest is
 * the text. */
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

/* ref, a subtree of Jansson's, against the packed array: shape, then the
 * numbers in order. */
static void check_packed(const json_t *ref, const json_fast_packed *pk, int d, size_t *next) {
    if (d == pk->ndim) {
        double v = json_number_value(ref);
        if (!json_is_number(ref) || *next >= pk->count || memcmp(&v, &pk->values[*next], sizeof v)) abort();
        (*next)++;
        return;
    }
    if (!json_is_array(ref) || json_array_size(ref) != (size_t)pk->shape[d]) abort();
    for (size_t i = 0; i < json_array_size(ref); i++) check_packed(json_array_get(ref, i), pk, d + 1, next);
}

/* The packed parse's tree against Jansson's. */
static void check_tree(const json_t *got, const json_t *ref, const json_fast_packed *pk) {
    if (pk->node && got == pk->node) {
        size_t next = 0;
        check_packed(ref, pk, 0, &next);
        if (next != pk->count) abort();
        return;
    }
    if (json_typeof(got) != json_typeof(ref)) abort();
    if (json_is_object(got)) {
        if (json_object_size(got) != json_object_size(ref)) abort();
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)got, key, v) {
            const json_t *w = json_object_get(ref, key);
            if (!w) abort();
            check_tree(v, w, pk);
        }
    } else if (json_is_array(got)) {
        if (json_array_size(got) != json_array_size(ref)) abort();
        for (size_t i = 0; i < json_array_size(got); i++) check_tree(json_array_get(got, i), json_array_get(ref, i), pk);
    } else if (!json_equal((json_t *)got, (json_t *)ref)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const size_t flags = (data[0] & 1 ? JSON_REJECT_DUPLICATES : 0) | (data[0] & 2 ? JSON_DECODE_ANY : 0);
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    check_number(text, len);
    json_error_t err;
    json_fast_packed pk;
    json_t *packed = json_fast_or_jansson_packed(text, len, flags, "inputs", &pk, &err);
    json_t *ref = json_loadb(text, len, flags, &err);
    if (!packed != !ref) abort();
    if (packed) check_tree(packed, ref, &pk);
    json_decref(packed);
    json_fast_packed_free(&pk);
    json_decref(ref);
    json_t *fast = json_fast_loadb(text, len, flags);
    if (!fast) return 0; /* declined: Jansson's to parse */
    ref = json_loadb(text, len, flags, &err);
    if (!ref || !json_equal(fast, ref)) {
        fprintf(stderr, "the fast parser accepted what Jansson %s\n", ref ? "reads differently" : "refuses");
        abort();
    }
    json_decref(ref);
    json_decref(fast);
    return 0;
}

/* A fast JSON parser for request bodies: the same tree as Jansson's
 * json_loadb for the JSON it accepts, an order of magnitude faster on the
 * long number arrays of tensors (exact numbers through decimal.h, no
 * stream layer). It accepts a subset: anything else (malformed JSON,
 * non-ASCII or \u escapes in strings, integers beyond 64 bits, nesting
 * past 64 levels, a duplicate key under JSON_REJECT_DUPLICATES) makes it
 * decline, and the caller parses with Jansson, so errors keep Jansson's
 * messages and positions. */
#ifndef MODA_API_JSON_FAST_H
#define MODA_API_JSON_FAST_H

#include <jansson.h>
#include <stddef.h>

/* The tree of buf[0..len), or NULL when declined. flags: Jansson's
 * JSON_REJECT_DUPLICATES and JSON_DECODE_ANY, as json_loadb takes them. */
json_t *json_fast_loadb(const char *buf, size_t len, size_t flags);

/* json_fast_loadb, else json_loadb with the same flags (error filled). */
json_t *json_fast_or_jansson(const char *buf, size_t len, size_t flags, json_error_t *error);

/* A tensor's numbers, parsed straight into doubles: building a Jansson
 * node per number (an allocation each, and a free) costs more than
 * parsing it. */
#define JSON_FAST_PACK_DIMS 4
typedef struct json_fast_packed {
    const json_t *node; /* its stand-in in the tree: an empty array of its own; NULL: none packed */
    double *values;     /* row-major, owned */
    size_t count;
    int ndim;
    int shape[JSON_FAST_PACK_DIMS];
} json_fast_packed;

/* json_fast_or_jansson, except that the value of the first member named
 * key in the text (at any depth; no later one), when it is a rectangular
 * array of numbers 1 to 4 levels deep (no array empty), goes into *packed
 * and the tree holds packed->node in its place. Each value is the double json_number_value gives for that
 * number in Jansson's tree. Anything else under key (ragged, other
 * types, deeper) stays in the tree, and so do all values when Jansson
 * parses the body; then packed->node is NULL. */
json_t *json_fast_or_jansson_packed(const char *buf, size_t len, size_t flags, const char *key,
                                    json_fast_packed *packed, json_error_t *error);

void json_fast_packed_free(json_fast_packed *p); /* accepts NULL */

#endif

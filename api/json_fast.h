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

#endif

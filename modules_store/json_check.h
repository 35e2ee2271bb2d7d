/* Typed access to parsed JSON for the registry reader.
 *
 * A jcheck remembers the first problem (missing key, wrong type, value out
 * of range) as "<file>: <problem>" with the dotted key path, and every later
 * access returns NULL / false. Readers can therefore walk a document
 * linearly and test jc_ok() once, and the message still names the first
 * thing that was wrong. */
#ifndef MODA_JSON_CHECK_H
#define MODA_JSON_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum jkind { JK_ANY, JK_OBJECT, JK_ARRAY, JK_STRING, JK_INT, JK_NUMBER, JK_BOOL } jkind;

typedef struct jcheck {
    const char *file; /* names the document in messages */
    char *err;        /* may be NULL */
    size_t errlen;
    moda_status status; /* MODA_OK until the first failure */
} jcheck;

void jc_init(jcheck *c, const char *file, char *err, size_t errlen);
static inline bool jc_ok(const jcheck *c) { return c->status == MODA_OK; }

/* Record a failure (only the first one is kept); returns false. */
bool jc_fail(jcheck *c, moda_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Member `key` of object `obj`, which is at path `where` ("" for the
 * root), of the given kind. NULL (and a recorded failure) when obj is not
 * an object, the key is missing or the type differs. */
json_t *jc_get(jcheck *c, json_t *obj, const char *where, const char *key, jkind kind);
/* Element i of an array at path `where`. */
json_t *jc_at(jcheck *c, json_t *arr, const char *where, size_t i, jkind kind);
/* An array member with exactly n elements (n < 0: any length). */
json_t *jc_array(jcheck *c, json_t *obj, const char *where, const char *key, long n);

/* Scalars with range checks; false on failure (out untouched). */
bool jc_int(jcheck *c, json_t *obj, const char *where, const char *key, long long lo, long long hi,
            long long *out);
bool jc_number(jcheck *c, json_t *obj, const char *where, const char *key, double lo, double hi, double *out);
const char *jc_string(jcheck *c, json_t *obj, const char *where, const char *key);

/* Element i of an array of numbers, finite and within [lo, hi]. */
bool jc_number_at(jcheck *c, json_t *arr, const char *where, size_t i, double lo, double hi, double *out);

const char *jc_kind_name(jkind k);

/* Parse a registry JSON document (index or manifest): valid JSON without
 * duplicate keys, an object, with "format" equal to REGISTRY_FORMAT. The
 * root is returned even when a check fails, for the caller to release;
 * NULL only when the text is not JSON. */
json_t *jc_load_document(jcheck *c, const char *text, size_t len);

#endif
